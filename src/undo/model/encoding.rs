//! How the model holds a hash, set, sorted set or list: like the server, in a compact encoding
//! while it is small (a listpack, an intset), in a large one (hashtable, skiplist, quicklist)
//! once it outgrows it. In a compact encoding the order of the elements is part of the value
//! (what `DUMP` serializes): a listpack keeps insertion order and updates in place, an intset
//! keeps its integers sorted. A large encoding's order is not modelled.
//!
//! The model's configs are tiny, so that random transactions cross them often. Conversions
//! happen where the server makes them: growing past a limit, a long element, a string added
//! to an intset; only a list turns compact again, once it shrinks to half its limit. `RESTORE`
//! picks the encoding the contents would get now ([`Val::reencode`]), as the server does.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::ops::{Deref, DerefMut};

/// `hash-max-listpack-entries`, `set-max-listpack-entries`, `zset-max-listpack-entries`.
pub const MAX_ENTRIES: usize = 3;
/// `set-max-intset-entries`.
pub const MAX_INTSET: usize = 4;
/// `*-max-listpack-value`: the longest field, value or member a listpack holds.
pub const MAX_VALUE: usize = 4;
/// `list-max-listpack-size`, in elements; a quicklist turns back into a listpack at half.
pub const MAX_LIST: usize = 4;

fn short(b: &[u8]) -> bool {
    b.len() <= MAX_VALUE
}

/// A canonical integer (what an intset holds).
fn int_of(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// A hash: a listpack (`compact`, insertion order) or a hashtable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hash {
    pub compact: bool,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Default for Hash {
    fn default() -> Hash {
        Hash {
            compact: true,
            pairs: Vec::new(),
        }
    }
}

impl Hash {
    /// A hash of `pairs` as the server would create it.
    pub fn of(pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Hash {
        let mut h = Hash::default();
        for (f, v) in pairs {
            h.insert(f, v);
        }
        h
    }

    pub fn get(&self, f: &[u8]) -> Option<&Vec<u8>> {
        self.pairs.iter().find(|(k, _)| k == f).map(|(_, v)| v)
    }

    pub fn contains_key(&self, f: &[u8]) -> bool {
        self.get(f).is_some()
    }

    /// Sets a field: in place when it exists, at the end otherwise. The old value.
    pub fn insert(&mut self, f: Vec<u8>, v: Vec<u8>) -> Option<Vec<u8>> {
        if !short(&f) || !short(&v) {
            self.compact = false;
        }
        let old = match self.pairs.iter_mut().find(|(k, _)| *k == f) {
            Some((_, slot)) => Some(std::mem::replace(slot, v)),
            None => {
                self.pairs.push((f, v));
                None
            }
        };
        if self.pairs.len() > MAX_ENTRIES {
            self.compact = false;
        }
        old
    }

    pub fn remove(&mut self, f: &[u8]) -> Option<Vec<u8>> {
        let i = self.pairs.iter().position(|(k, _)| k == f)?;
        Some(self.pairs.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn sorted(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v = self.pairs.clone();
        v.sort();
        v
    }
}

/// Same encoding, and same contents in the same order when compact.
impl PartialEq for Hash {
    fn eq(&self, o: &Hash) -> bool {
        self.compact == o.compact
            && if self.compact {
                self.pairs == o.pairs
            } else {
                self.sorted() == o.sorted()
            }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetEnc {
    /// Integers, sorted.
    Intset,
    /// Insertion order.
    Listpack,
    Hashtable,
}

/// A set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Set {
    pub enc: SetEnc,
    members: Vec<Vec<u8>>,
}

impl Default for Set {
    fn default() -> Set {
        Set {
            enc: SetEnc::Intset,
            members: Vec::new(),
        }
    }
}

impl Set {
    /// A set of `members` as the server would create it.
    pub fn of(members: impl IntoIterator<Item = Vec<u8>>) -> Set {
        let mut s = Set::default();
        for m in members {
            s.insert(m);
        }
        s
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.members.iter().any(|x| x == m)
    }

    /// Adds a member; whether it was new. An intset keeps integers sorted; a string turns it
    /// into a listpack (in the intset's order) when that can hold it, else a hashtable.
    pub fn insert(&mut self, m: Vec<u8>) -> bool {
        if self.contains(&m) {
            return false;
        }
        if self.enc == SetEnc::Intset {
            if let Some(n) = int_of(&m) {
                let at = self
                    .members
                    .iter()
                    .position(|x| int_of(x).is_some_and(|x| x > n))
                    .unwrap_or(self.members.len());
                self.members.insert(at, m);
                if self.members.len() > MAX_INTSET {
                    self.enc = SetEnc::Hashtable;
                }
                return true;
            }
            let fits = self.members.len() < MAX_ENTRIES && short(&m);
            self.enc = if fits {
                SetEnc::Listpack
            } else {
                SetEnc::Hashtable
            };
        }
        self.members.push(m);
        if self.enc == SetEnc::Listpack
            && (self.members.len() > MAX_ENTRIES || self.members.iter().any(|x| !short(x)))
        {
            self.enc = SetEnc::Hashtable;
        }
        true
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.members.iter().position(|x| x == m) {
            Some(i) => {
                self.members.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.members.iter()
    }

    fn sorted(&self) -> Vec<Vec<u8>> {
        let mut v = self.members.clone();
        v.sort();
        v
    }
}

impl PartialEq for Set {
    fn eq(&self, o: &Set) -> bool {
        self.enc == o.enc
            && if self.enc == SetEnc::Hashtable {
                self.sorted() == o.sorted()
            } else {
                self.members == o.members
            }
    }
}

/// A sorted set: a listpack (`compact`) or a skiplist. Either way ordered by score, then
/// member, so only the encoding is more than the contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZSet {
    pub compact: bool,
    scores: BTreeMap<Vec<u8>, f64>,
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet {
            compact: true,
            scores: BTreeMap::new(),
        }
    }
}

impl ZSet {
    pub fn of(pairs: impl IntoIterator<Item = (Vec<u8>, f64)>) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in pairs {
            z.insert(m, s);
        }
        z
    }

    pub fn get(&self, m: &[u8]) -> Option<&f64> {
        self.scores.get(m)
    }

    pub fn insert(&mut self, m: Vec<u8>, s: f64) -> Option<f64> {
        if !short(&m) {
            self.compact = false;
        }
        let old = self.scores.insert(m, s);
        if self.scores.len() > MAX_ENTRIES {
            self.compact = false;
        }
        old
    }

    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        self.scores.remove(m)
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn scores(&self) -> &BTreeMap<Vec<u8>, f64> {
        &self.scores
    }
}

/// A list: a listpack (`compact`) or a quicklist, both in list order. Used as the
/// `VecDeque` it holds; [`List::settle`] converts it after each command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List {
    pub compact: bool,
    items: VecDeque<Vec<u8>>,
}

impl Default for List {
    fn default() -> List {
        List {
            compact: true,
            items: VecDeque::new(),
        }
    }
}

impl Deref for List {
    type Target = VecDeque<Vec<u8>>;
    fn deref(&self) -> &VecDeque<Vec<u8>> {
        &self.items
    }
}

impl DerefMut for List {
    fn deref_mut(&mut self) -> &mut VecDeque<Vec<u8>> {
        &mut self.items
    }
}

impl List {
    pub fn of(items: impl IntoIterator<Item = Vec<u8>>) -> List {
        let mut l = List {
            compact: true,
            items: items.into_iter().collect(),
        };
        l.settle();
        l
    }

    /// A listpack that grew too big (too many or too long elements) becomes a quicklist; a
    /// quicklist that shrank to half the limit becomes a listpack again.
    pub fn settle(&mut self) {
        let all_short = self.items.iter().all(|e| short(e));
        if self.compact && (self.items.len() > MAX_LIST || !all_short) {
            self.compact = false;
        } else if !self.compact && self.items.len() <= MAX_LIST / 2 && all_short {
            self.compact = true;
        }
    }
}

/// A key's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Val {
    Str(Vec<u8>),
    Hash(Hash),
    Set(Set),
    ZSet(ZSet),
    List(List),
}

impl Val {
    /// `OBJECT ENCODING` (strings: `embstr`, the model does not tell them apart).
    pub fn encoding(&self) -> &'static str {
        match self {
            Val::Str(_) => "embstr",
            Val::Hash(h) if h.compact => "listpack",
            Val::Hash(_) => "hashtable",
            Val::Set(s) => match s.enc {
                SetEnc::Intset => "intset",
                SetEnc::Listpack => "listpack",
                SetEnc::Hashtable => "hashtable",
            },
            Val::ZSet(z) if z.compact => "listpack",
            Val::ZSet(_) => "skiplist",
            Val::List(l) if l.compact => "listpack",
            Val::List(_) => "quicklist",
        }
    }

    /// Whether it is held in a compact encoding.
    pub fn is_compact(&self) -> bool {
        matches!(self.encoding(), "listpack" | "intset")
    }

    /// The encoding `RESTORE` gives a value loaded from a `DUMP`: a compact one keeps its
    /// bytes; a large one that the contents fit in a compact encoding again is converted
    /// (the server loads what it can into a listpack or an intset).
    pub fn reencode(&mut self) {
        match self {
            Val::Str(_) => {}
            Val::Hash(h) => {
                if !h.compact {
                    let pairs = std::mem::take(&mut h.pairs);
                    *h = Hash::of(pairs);
                }
            }
            Val::Set(s) => {
                if s.enc == SetEnc::Hashtable {
                    *s = Set::of(std::mem::take(&mut s.members));
                }
            }
            Val::ZSet(z) => {
                if !z.compact {
                    *z = ZSet::of(std::mem::take(&mut z.scores));
                }
            }
            Val::List(l) => {
                if !l.compact && l.len() <= MAX_LIST && l.iter().all(|e| short(e)) {
                    l.compact = true;
                }
            }
        }
    }

    /// Whether `self` is what a rollback must give back for a value that was `before`: the
    /// very representation when `before` was compact (`DUMP`-equal), the same contents (in
    /// whatever encoding) when it was large.
    pub fn restores(&self, before: &Val) -> bool {
        if before.is_compact() {
            return self == before;
        }
        match (self, before) {
            (Val::Hash(a), Val::Hash(b)) => a.sorted() == b.sorted(),
            (Val::Set(a), Val::Set(b)) => a.sorted() == b.sorted(),
            (Val::ZSet(a), Val::ZSet(b)) => a.scores == b.scores,
            (Val::List(a), Val::List(b)) => a.items == b.items,
            (a, b) => a == b,
        }
    }

    /// Converts a collection after a command changed it (see [`List::settle`]; the other
    /// types convert as they grow).
    pub fn settle(&mut self) {
        if let Val::List(l) = self {
            l.settle();
        }
    }
}
