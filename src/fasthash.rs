//! A fast, unkeyed hasher for the module's internal maps whose keys no client chooses: client
//! ids, and the names of the server's own commands. std's `HashMap` hashes with SipHash-1-3,
//! keyed at random to resist a client that picks colliding keys; these maps need no such
//! defence, and a transaction looks them up once per queued command. Maps keyed by names a
//! client chooses (key names) keep std's hasher (see `undo::keymap`). Pure.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// The multiply-rotate hash of the Rust compiler's `FxHasher`, a word at a time.
#[derive(Default, Clone, Copy)]
pub struct Fast(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fast {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for Fast {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            if let Some(head) = w.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fast>>;
pub type FastSet<K> = HashSet<K, BuildHasherDefault<Fast>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(v: impl std::hash::Hash) -> u64 {
        BuildHasherDefault::<Fast>::default().hash_one(v)
    }

    #[test]
    fn equal_keys_hash_alike_and_near_keys_apart() {
        assert_eq!(hash(b"set".as_slice()), hash(b"set".to_vec()));
        assert_ne!(hash(b"set".as_slice()), hash(b"get".as_slice()));
        // Lengths that are not a multiple of the word, and the tail's zero padding.
        assert_ne!(
            hash(b"hincrbyfloat".as_slice()),
            hash(b"hincrbyfloa".as_slice())
        );
        assert_ne!(hash(b"a".as_slice()), hash(b"a\0".as_slice()));
        assert_ne!(hash(1u64), hash(2u64));
    }

    #[test]
    fn sequential_client_ids_spread_over_the_top_bits() {
        // hashbrown keeps the top 7 bits as a bucket's control byte: ids that shared it would
        // cost a key comparison each (128 random hashes give about 81 distinct values).
        let tops: FastSet<u64> = (0..128u64).map(|id| hash(id) >> 57).collect();
        assert!(tops.len() > 48, "{} distinct top bytes", tops.len());
        let mut m: FastMap<u64, u64> = FastMap::default();
        for id in 0..10_000 {
            m.insert(id, id * 2);
        }
        assert!((0..10_000).all(|id| m.get(&id) == Some(&(id * 2))));
    }
}
