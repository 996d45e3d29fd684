//! The hidden undo-log key: an undo log that outlives its `TXU.EXEC` (retained with
//! `TXU.BEGIN RETAIN`, or a rollback still pending) lives under `txu:undo:{<tag>}:<txid>`, a
//! key of type `txu-undo1`, so it is saved, loaded and replicated like data.
//!
//! An in-memory index maps transaction ids to their key, and (database, key) of every data key
//! a retained transaction touched to the transactions that touched it; keyspace notifications
//! mark a retained log as conflicted when one of its keys changes afterwards.

use crate::ffi::types::{ModuleValue, TypeSlot};
use crate::store::keyname;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

pub static TYPE: TypeSlot = TypeSlot::new();

/// Encoding version of `StoredLog` (the first byte of its payload).
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Rollback attempts made so far.
    pub attempts: u32,
    pub last_error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLog {
    pub txid: String,
    /// The key this log is stored under (so loading from RDB can rebuild the index).
    pub key: Vec<u8>,
    pub db: i32,
    pub created_ms: i64,
    /// `TXU.BEGIN RETAIN`: until when `TXU.ROLLBACK <txid>` may undo the transaction.
    pub retain_until_ms: Option<i64>,
    /// Set while a rollback could not finish; a timer retries it.
    pub pending: Option<Pending>,
    /// Data keys the transaction wrote (for conflict detection).
    pub keys: Vec<Vec<u8>>,
    /// The first of `keys` that changed after the transaction committed.
    pub conflict: ConflictMark,
    /// The transaction's undo log (`undo::log::UndoLog::encode`); for a pending rollback, the
    /// part not yet applied.
    pub log: Vec<u8>,
}

/// The conflict mark of a stored log: the value persists it, the index sets it (from a
/// keyspace notification or `TXU._CONFLICT`) through a handle shared with the value, so the
/// index never needs a pointer to a value the server owns. Encoded exactly as the
/// `Option<Vec<u8>>` it holds; a clone is a copy, not another handle.
#[derive(Debug, Default)]
pub struct ConflictMark(Arc<Mutex<Option<Vec<u8>>>>);

impl ConflictMark {
    pub fn get(&self) -> Option<Vec<u8>> {
        self.0.lock().clone()
    }

    fn is_set(&self) -> bool {
        self.0.lock().is_some()
    }

    /// Sets the mark unless it is set already (the first key wins).
    fn set_first(&self, key: &[u8]) -> bool {
        let mut m = self.0.lock();
        if m.is_some() {
            return false;
        }
        *m = Some(key.to_vec());
        true
    }

    fn handle(&self) -> ConflictMark {
        ConflictMark(Arc::clone(&self.0))
    }
}

impl Clone for ConflictMark {
    fn clone(&self) -> Self {
        ConflictMark(Arc::new(Mutex::new(self.get())))
    }
}

impl PartialEq for ConflictMark {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for ConflictMark {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ConflictMark {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<Vec<u8>>::deserialize(d).map(|m| ConflictMark(Arc::new(Mutex::new(m))))
    }
}

impl StoredLog {
    pub fn key_for(txid: &str, first_key: Option<&[u8]>) -> Vec<u8> {
        keyname::undo_key(txid, first_key)
    }
}

impl ModuleValue for StoredLog {
    const NAME: &'static CStr = c"txu-undo1";
    const ENCVER: c_int = 1;
    const AOF_COMMAND: &'static CStr = super::LOAD_COMMAND;
    const KIND: &'static CStr = c"undo";

    fn encode(&self) -> Vec<u8> {
        crate::codec::encode(VERSION, self)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        crate::codec::decode(VERSION, bytes).ok()
    }

    fn mem_usage(&self) -> usize {
        self.txid.len()
            + self.key.len()
            + self.log.len()
            + self.keys.iter().map(Vec::len).sum::<usize>()
    }

    fn on_attach(&self, addr: usize) {
        INDEX.lock().attach(self, addr);
    }

    fn on_detach(&self, addr: usize) {
        INDEX.lock().detach(self, addr);
    }
}

/// What the index knows of a stored log. It copies what it reports and shares the conflict
/// mark; `addr` only tells a value from an older one with the same id (freed late).
struct Entry {
    key: Vec<u8>,
    db: i32,
    addr: usize,
    keys: Vec<Vec<u8>>,
    /// Every data key the transaction wrote (watched or not): what a caller's ACL must cover
    /// to see or undo it.
    data_keys: Vec<Vec<u8>>,
    pending: bool,
    bytes: usize,
    conflict: ConflictMark,
}

#[derive(Default)]
struct Index {
    by_txid: HashMap<String, Entry>,
    by_key: HashMap<(i32, Vec<u8>), Vec<String>>,
}

static INDEX: LazyLock<Mutex<Index>> = LazyLock::new(|| Mutex::new(Index::default()));
/// Number of watched (db, key) pairs: zero means notifications return at once.
static WATCHED: AtomicUsize = AtomicUsize::new(0);

impl Index {
    fn attach(&mut self, v: &StoredLog, addr: usize) {
        self.detach_txid(&v.txid);
        // Only retained logs can be undone later, so only they watch their keys.
        let keys = if v.pending.is_none() {
            v.keys.clone()
        } else {
            Vec::new()
        };
        for k in &keys {
            self.by_key
                .entry((v.db, k.clone()))
                .or_default()
                .push(v.txid.clone());
        }
        self.by_txid.insert(
            v.txid.clone(),
            Entry {
                key: v.key.clone(),
                db: v.db,
                addr,
                keys,
                data_keys: v.keys.clone(),
                pending: v.pending.is_some(),
                bytes: v.mem_usage(),
                conflict: v.conflict.handle(),
            },
        );
        WATCHED.store(self.by_key.len(), Ordering::Relaxed);
    }

    fn detach(&mut self, v: &StoredLog, addr: usize) {
        // A value freed late (async flush) must not remove a newer value's entry.
        if self.by_txid.get(&v.txid).is_some_and(|e| e.addr == addr) {
            self.detach_txid(&v.txid);
        }
    }

    fn detach_txid(&mut self, txid: &str) {
        let Some(e) = self.by_txid.remove(txid) else {
            return;
        };
        for k in e.keys {
            let slot = (e.db, k);
            if let Some(ids) = self.by_key.get_mut(&slot) {
                ids.retain(|t| t != txid);
                if ids.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
        WATCHED.store(self.by_key.len(), Ordering::Relaxed);
    }
}

/// The server is emptying database `db` (-1: all): its logs are gone now, even if their
/// memory is freed later on a background thread.
pub fn on_flush(db: i32) {
    let mut idx = INDEX.lock();
    let gone: Vec<String> = idx
        .by_txid
        .iter()
        .filter(|(_, e)| db == -1 || e.db == db)
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        idx.detach_txid(&id);
    }
}

/// Where the log of `txid` is stored: (database, key).
pub fn locate(txid: &str) -> Option<(i32, Vec<u8>)> {
    INDEX
        .lock()
        .by_txid
        .get(txid)
        .map(|e| (e.db, e.key.clone()))
}

/// Stops watching the keys of `txid` (its rollback is about to write them).
pub fn unwatch(txid: &str) {
    let mut idx = INDEX.lock();
    let Some(e) = idx.by_txid.get_mut(txid) else {
        return;
    };
    let keys = std::mem::take(&mut e.keys);
    let db = e.db;
    for k in keys {
        let slot = (db, k);
        if let Some(ids) = idx.by_key.get_mut(&slot) {
            ids.retain(|t| t != txid);
            if ids.is_empty() {
                idx.by_key.remove(&slot);
            }
        }
    }
    WATCHED.store(idx.by_key.len(), Ordering::Relaxed);
}

/// Ids of logs whose rollback is pending.
pub fn pending_ids() -> Vec<(String, i32, Vec<u8>)> {
    let idx = INDEX.lock();
    idx.by_txid
        .iter()
        .filter(|(_, e)| e.pending)
        .map(|(id, e)| (id.clone(), e.db, e.key.clone()))
        .collect()
}

/// Counts for INFO: (retained logs, pending rollbacks, bytes held).
pub fn counts() -> (usize, usize, usize) {
    let idx = INDEX.lock();
    let pending = idx.by_txid.values().filter(|e| e.pending).count();
    let bytes = idx.by_txid.values().map(|e| e.bytes).sum();
    (idx.by_txid.len() - pending, pending, bytes)
}

/// Retained logs (by id) that touch key `key` of database `db` and are not yet conflicted.
pub fn unconflicted_watchers(db: i32, key: &[u8]) -> Vec<String> {
    if WATCHED.load(Ordering::Relaxed) == 0 {
        return Vec::new();
    }
    let idx = INDEX.lock();
    let Some(ids) = idx.by_key.get(&(db, key.to_vec())) else {
        return Vec::new();
    };
    ids.iter()
        .filter(|id| idx.by_txid.get(*id).is_some_and(|e| !e.conflict.is_set()))
        .cloned()
        .collect()
}

/// Marks the retained log `txid` as conflicted by `key` (the first mark wins). Returns whether
/// it changed anything.
pub fn mark_conflict(txid: &str, key: &[u8]) -> bool {
    INDEX
        .lock()
        .by_txid
        .get(txid)
        .is_some_and(|e| e.conflict.set_first(key))
}

/// A key in database `db` was written: every retained log that touched it is now conflicted.
#[cfg(test)]
pub fn key_changed(db: i32, key: &[u8]) {
    for id in unconflicted_watchers(db, key) {
        mark_conflict(&id, key);
    }
}

/// The data keys written by the transaction `txid`, if txu holds its undo log.
pub fn keys_of(txid: &str) -> Option<Vec<Vec<u8>>> {
    INDEX.lock().by_txid.get(txid).map(|e| e.data_keys.clone())
}

/// `Some(true)`: the rollback of `txid` is pending; `Some(false)`: its log is retained.
pub fn state_of(txid: &str) -> Option<bool> {
    INDEX.lock().by_txid.get(txid).map(|e| e.pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredLog {
        StoredLog {
            txid: "1-2".into(),
            key: b"txu:undo:{x}:1-2".to_vec(),
            db: 0,
            created_ms: 5,
            retain_until_ms: Some(10),
            pending: None,
            keys: vec![b"a".to_vec(), b"b\0".to_vec()],
            conflict: ConflictMark::default(),
            log: vec![1, 0],
        }
    }

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        let v = sample();
        let bytes = v.encode();
        assert_eq!(StoredLog::decode(&bytes), Some(v));
        for cut in 0..bytes.len() {
            assert_eq!(StoredLog::decode(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(StoredLog::decode(&other), None, "unknown version");
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0xff; 16]);
        assert_eq!(StoredLog::decode(&huge), None);
    }

    #[test]
    fn index_tracks_conflicts_and_ignores_stale_frees() {
        let mut v = sample();
        v.txid = "idx-test".into();
        let addr = 0x1000;
        v.on_attach(addr);
        assert_eq!(locate("idx-test").map(|l| l.0), Some(0));
        key_changed(0, b"other");
        assert_eq!(v.conflict.get(), None);
        key_changed(0, b"b\0");
        assert_eq!(v.conflict.get().as_deref(), Some(&b"b\0"[..]));
        assert!(!mark_conflict("idx-test", b"a"), "the first mark wins");
        let copy = v.clone();
        assert_eq!(copy.conflict.get().as_deref(), Some(&b"b\0"[..]));
        assert_eq!(
            StoredLog::decode(&v.encode()).map(|d| d.conflict.get()),
            Some(Some(b"b\0".to_vec())),
            "the mark is persisted"
        );
        // A stale value with the same id (different address) does not detach the live one.
        let mut stale = sample();
        stale.txid = "idx-test".into();
        stale.on_detach(1);
        assert!(locate("idx-test").is_some());
        v.on_detach(addr);
        assert!(locate("idx-test").is_none());
    }
}
