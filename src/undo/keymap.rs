//! A map from key names to small values, cheap for the few keys a typical transaction touches
//! and safe for many: a plain vector searched in order up to [`SMALL`] keys (no hashing, one
//! allocation per key), then a `HashMap` with std's randomly keyed hasher (a client chooses the
//! key names, so a predictable hash would let it make one transaction quadratic).

use std::collections::HashMap;

/// Keys held in the vector before the map switches to hashing.
pub const SMALL: usize = 16;

#[derive(Debug, Clone)]
pub enum KeyMap<V> {
    Small(Vec<(Vec<u8>, V)>),
    Large(HashMap<Vec<u8>, V>),
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap::Small(Vec::new())
    }
}

impl<V> KeyMap<V> {
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        match self {
            KeyMap::Small(v) => v.iter().find(|(k, _)| k.as_slice() == key).map(|(_, v)| v),
            KeyMap::Large(m) => m.get(key),
        }
    }

    /// Applies `f` to the value of `key`, inserted as `make()` first if absent (the key is
    /// copied only then).
    pub fn upsert(&mut self, key: &[u8], make: impl FnOnce() -> V, f: impl FnOnce(&mut V)) {
        if let KeyMap::Small(v) = self {
            if v.len() >= SMALL && !v.iter().any(|(k, _)| k.as_slice() == key) {
                *self = KeyMap::Large(std::mem::take(v).into_iter().collect());
            }
        }
        match self {
            KeyMap::Small(v) => match v.iter_mut().find(|(k, _)| k.as_slice() == key) {
                Some((_, x)) => f(x),
                None => {
                    let mut x = make();
                    f(&mut x);
                    v.push((key.to_vec(), x));
                }
            },
            KeyMap::Large(m) => match m.get_mut(key) {
                Some(x) => f(x),
                None => {
                    let mut x = make();
                    f(&mut x);
                    m.insert(key.to_vec(), x);
                }
            },
        }
    }

    pub fn len(&self) -> usize {
        match self {
            KeyMap::Small(v) => v.len(),
            KeyMap::Large(m) => m.len(),
        }
    }
}

/// Equal when they hold the same keys with equal values, whatever their layout.
impl<V: PartialEq> PartialEq for KeyMap<V> {
    fn eq(&self, other: &Self) -> bool {
        let entries: Box<dyn Iterator<Item = (&[u8], &V)>> = match self {
            KeyMap::Small(v) => Box::new(v.iter().map(|(k, v)| (k.as_slice(), v))),
            KeyMap::Large(m) => Box::new(m.iter().map(|(k, v)| (k.as_slice(), v))),
        };
        let mut n = 0;
        for (k, v) in entries {
            n += 1;
            if other.get(k) != Some(v) {
                return false;
            }
        }
        n == other.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyMap, SMALL};

    #[test]
    fn small_and_large_maps_agree() {
        let mut m: KeyMap<u32> = KeyMap::default();
        let n = SMALL * 3;
        for round in 0..2u32 {
            for i in 0..n {
                let key = format!("k{i}");
                m.upsert(key.as_bytes(), || 100, |v| *v += round + 1);
                assert_eq!(m.get(key.as_bytes()), Some(&(100 + round + 1 + round)));
                if i < SMALL && round == 0 {
                    assert!(matches!(m, KeyMap::Small(_)), "{i} keys stay in the vector");
                }
            }
        }
        assert!(matches!(m, KeyMap::Large(_)));
        assert_eq!(m.len(), n);
        for i in 0..n {
            assert_eq!(m.get(format!("k{i}").as_bytes()), Some(&103));
        }
        assert_eq!(m.get(b"k-none"), None);
    }

    #[test]
    fn the_vector_holds_each_key_once() {
        let mut m: KeyMap<()> = KeyMap::default();
        for _ in 0..3 {
            for i in 0..SMALL {
                m.upsert(format!("k{i}").as_bytes(), || (), |_| {});
            }
        }
        assert!(matches!(m, KeyMap::Small(_)));
        assert_eq!(m.len(), SMALL);
        // One more key switches to hashing, every key kept.
        m.upsert(b"extra", || (), |_| {});
        assert!(matches!(m, KeyMap::Large(_)));
        assert_eq!(m.len(), SMALL + 1);
    }
}
