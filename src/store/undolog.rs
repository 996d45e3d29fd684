//! Undo logs that outlive their `TXU.EXEC`: retained with `TXU.BEGIN RETAIN` (undoable by id
//! until they expire), or a rollback still pending (finished by the timer).
//!
//! The module holds each log (the index below is the truth); the key
//! `txu:undo:{<tag>}:<txid>` in the log's database holds a live handle whose RDB, AOF and digest
//! forms are that log, so it persists and replicates like data. Deleting, evicting, expiring,
//! renaming, moving or overwriting the key, or swapping its database, loses no log: the
//! primary writes it back at the next tick. Logs end only by txu's own `TXU._UNLOG` (rolled
//! back, or retention over) or a flush of their database.
//!
//! The index also maps (database, key) of every data key a log touched to the logs that
//! touched it: keyspace notifications mark a retained log as conflicted when one of its keys
//! changes afterwards, and a pending rollback then leaves that key alone.

use crate::codec::DecodeError;
use crate::ffi::types::{ModuleValue, TypeSlot};
use crate::store::keyname;
use crate::undo::log::UndoLog;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

pub static TYPE: TypeSlot = TypeSlot::new();

/// Encoding version of `StoredLog` (the first byte of its payload). Version 1 had no
/// `Pending::skipped`; it still loads.
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Rollback attempts made so far.
    pub attempts: u32,
    pub last_error: String,
    /// Keys another client wrote after the rollback failed: the rollback leaves them alone.
    pub skipped: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLog {
    pub txid: String,
    /// The key this log is stored under.
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
    pub conflict: Option<Vec<u8>>,
    /// The transaction's undo log (`undo::log::UndoLog::encode`); for a pending rollback, the
    /// part not yet applied.
    pub log: Vec<u8>,
}

/// `StoredLog` as encoding version 1 wrote it.
#[derive(Deserialize)]
struct StoredLogV1 {
    txid: String,
    key: Vec<u8>,
    db: i32,
    created_ms: i64,
    retain_until_ms: Option<i64>,
    pending: Option<PendingV1>,
    keys: Vec<Vec<u8>>,
    conflict: Option<Vec<u8>>,
    log: Vec<u8>,
}

#[derive(Deserialize)]
struct PendingV1 {
    attempts: u32,
    last_error: String,
}

impl StoredLog {
    pub fn key_for(txid: &str, first_key: Option<&[u8]>) -> Vec<u8> {
        keyname::undo_key(txid, first_key)
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode(VERSION, self)
    }

    /// Decodes a log (version 2, or 1); refuses one whose undo log (`log`) does not decode,
    /// since it could never be applied.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let v = match bytes.first() {
            Some(&VERSION_1) => Self::from_v1(crate::codec::decode(VERSION_1, bytes)?),
            _ => crate::codec::decode(VERSION, bytes)?,
        };
        UndoLog::decode(&v.log).map_err(|e| DecodeError::Corrupt(format!("its undo log: {e}")))?;
        Ok(v)
    }

    fn from_v1(v: StoredLogV1) -> Self {
        StoredLog {
            txid: v.txid,
            key: v.key,
            db: v.db,
            created_ms: v.created_ms,
            retain_until_ms: v.retain_until_ms,
            pending: v.pending.map(|p| Pending {
                attempts: p.attempts,
                last_error: p.last_error,
                skipped: Vec::new(),
            }),
            keys: v.keys,
            conflict: v.conflict,
            log: v.log,
        }
    }

    fn bytes(&self) -> usize {
        self.txid.len()
            + self.key.len()
            + self.log.len()
            + self.keys.iter().map(Vec::len).sum::<usize>()
    }

    /// A retained log whose retention ended at `now_ms` is over (the timer ends it soon).
    pub fn is_over(&self, now_ms: i64) -> bool {
        self.pending.is_none() && self.retain_until_ms.is_none_or(|t| t <= now_ms)
    }

    /// Whether the key `key` in database `db` is where this log belongs.
    fn belongs_at(&self, key: &[u8], db: i32) -> bool {
        self.key == key && self.db == db
    }
}

/// A log held by the module, shared by the index and the live handles under its key.
type Cell = Arc<Mutex<StoredLog>>;

/// A value of type `txu-undo1`: a live handle on a log the module holds, or an inert log
/// nothing reads (what a client `RESTORE`s, a renamed or moved key loaded again; its payload
/// says so wherever it goes).
pub enum LogValue {
    Live(Cell),
    Inert(Box<StoredLog>),
    /// Decoded, not yet placed (see `settle`).
    Fresh(Box<StoredLog>),
}

impl ModuleValue for LogValue {
    const NAME: &'static CStr = c"txu-undo1";
    const ENCVER: c_int = 1;
    const AOF_COMMAND: &'static CStr = super::LOAD_COMMAND;
    const KIND: &'static CStr = c"undo";

    fn encode(&self) -> Vec<u8> {
        match self {
            LogValue::Live(c) => c.lock().encode(),
            LogValue::Inert(v) | LogValue::Fresh(v) => super::inert_payload(v.encode()),
        }
    }

    /// Also refuses a log whose undo log (`log`) does not decode: it could never be applied.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (inert, bytes) = super::split_inert(bytes);
        let v = Box::new(StoredLog::decode(bytes)?);
        Ok(if inert {
            LogValue::Inert(v)
        } else {
            LogValue::Fresh(v)
        })
    }

    /// A log lives under the key and in the database it records (an inert copy anywhere).
    fn belongs_at(&self, key: &[u8], db: i32) -> bool {
        match self {
            LogValue::Fresh(v) => v.belongs_at(key, db),
            LogValue::Live(_) | LogValue::Inert(_) => true,
        }
    }

    /// Only the dataset the server loads, txu's own `TXU._LOAD`, or a slot moving here
    /// (`RESTORE-ASKING`) brings a log in. What a client restores never adds, revives or
    /// changes a log: over the key of a log the module
    /// holds it becomes a handle on that log (its own content dropped), anywhere else inert.
    fn settle(self, authoritative: bool) -> Self {
        // A slot moving here brings its logs (cluster resharding).
        let authoritative = authoritative
            || super::migration::current() == super::migration::Command::RestoreAsking;
        match self {
            LogValue::Fresh(v) if authoritative => LogValue::Live(INDEX.lock().install(*v)),
            LogValue::Fresh(v) => {
                let idx = INDEX.lock();
                match idx.by_txid.get(&v.txid) {
                    Some(e) if e.cell.lock().belongs_at(&v.key, v.db) => {
                        LogValue::Live(Arc::clone(&e.cell))
                    }
                    _ => LogValue::Inert(v),
                }
            }
            other => other,
        }
    }

    fn digest_bytes(&self) -> Vec<u8> {
        match self {
            LogValue::Live(c) => c.lock().encode(),
            LogValue::Inert(v) | LogValue::Fresh(v) => v.encode(),
        }
    }

    /// A live handle away from its log's key (renamed, moved) is written as an inert copy.
    fn encode_at(&self, key: &[u8], db: Option<i32>) -> Vec<u8> {
        match self {
            LogValue::Live(c) => {
                let v = c.lock();
                let home = v.key == key && db.is_none_or(|d| d == v.db);
                if home {
                    v.encode()
                } else {
                    super::inert_payload(v.encode())
                }
            }
            _ => self.encode(),
        }
    }

    fn mem_usage(&self) -> usize {
        match self {
            LogValue::Live(c) => c.lock().bytes(),
            LogValue::Inert(v) | LogValue::Fresh(v) => v.bytes(),
        }
    }

    fn on_detach(&self, _addr: usize) {
        if let LogValue::Live(c) = self {
            // The handle of a log the module still holds went away: write it back.
            let txid = c.lock().txid.clone();
            if INDEX
                .lock()
                .by_txid
                .get(&txid)
                .is_some_and(|e| Arc::ptr_eq(&e.cell, c))
            {
                CHECK.store(true, Ordering::Relaxed);
            }
        }
    }
}

struct Entry {
    cell: Cell,
    /// Keys watched for changes (none while a rollback of this log runs).
    watched: Vec<Vec<u8>>,
    /// Where the log sits in the timer's index: `Some(end)` in `ends` (a retained log),
    /// `None` in `pending` (a pending rollback). A log changes state only by being stored
    /// again (`install`).
    end: Option<i64>,
}

#[derive(Default)]
struct Index {
    by_txid: HashMap<String, Entry>,
    by_key: HashMap<(i32, Vec<u8>), Vec<String>>,
    /// Retained logs by the moment their retention ends (`i64::MIN`: a log retained for no
    /// time, over at once), so the timer finds the expired ones without walking every log.
    ends: BTreeSet<(i64, String)>,
    /// Pending rollbacks, for the timer to retry.
    pending: BTreeSet<String>,
}

static INDEX: LazyLock<Mutex<Index>> = LazyLock::new(|| Mutex::new(Index::default()));
/// Number of logs held (`by_txid.len()`): zero means the timer and the transaction paths
/// have nothing to look at, without taking the lock.
static LOGS: AtomicUsize = AtomicUsize::new(0);
/// Number of watched (db, key) pairs: zero means notifications return at once.
static WATCHED: AtomicUsize = AtomicUsize::new(0);
/// Set when a log's key may no longer hold its handle; the primary's tick then checks.
static CHECK: AtomicBool = AtomicBool::new(false);

impl Index {
    fn install(&mut self, v: StoredLog) -> Cell {
        self.forget(&v.txid);
        let (txid, db, keys) = (v.txid.clone(), v.db, v.keys.clone());
        for k in &keys {
            self.by_key
                .entry((db, k.clone()))
                .or_default()
                .push(txid.clone());
        }
        let end = match v.pending {
            Some(_) => None,
            None => Some(v.retain_until_ms.unwrap_or(i64::MIN)),
        };
        match end {
            Some(t) => self.ends.insert((t, txid.clone())),
            None => self.pending.insert(txid.clone()),
        };
        let cell = Arc::new(Mutex::new(v));
        self.by_txid.insert(
            txid,
            Entry {
                cell: Arc::clone(&cell),
                watched: keys,
                end,
            },
        );
        WATCHED.store(self.by_key.len(), Ordering::Relaxed);
        LOGS.store(self.by_txid.len(), Ordering::Relaxed);
        // From now on changes to its keys must be seen (conflict marks): keyspace
        // notifications are subscribed to while logs are held, and only then.
        crate::ffi::events::ensure_keyspace();
        cell
    }

    fn unwatch(&mut self, txid: &str) {
        let Some(e) = self.by_txid.get_mut(txid) else {
            return;
        };
        let keys = std::mem::take(&mut e.watched);
        let db = e.cell.lock().db;
        for k in keys {
            let slot = (db, k);
            if let Some(ids) = self.by_key.get_mut(&slot) {
                ids.retain(|t| t != txid);
                if ids.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
        WATCHED.store(self.by_key.len(), Ordering::Relaxed);
    }

    fn forget(&mut self, txid: &str) {
        self.unwatch(txid);
        if let Some(e) = self.by_txid.remove(txid) {
            match e.end {
                Some(t) => self.ends.remove(&(t, txid.to_string())),
                None => self.pending.remove(txid),
            };
        }
        LOGS.store(self.by_txid.len(), Ordering::Relaxed);
    }
}

/// Logs whose slot moved to another node (cluster), by id, most recent last: the old owner
/// can still send a client to the new one. Bounded.
static MOVED: LazyLock<Mutex<std::collections::VecDeque<(String, u16)>>> =
    LazyLock::new(|| Mutex::new(std::collections::VecDeque::new()));
const MOVED_KEPT: usize = 10_000;

/// Remembers that the log of `txid` moved away with `slot`.
pub fn moved_away(txid: &str, slot: u16) {
    let mut m = MOVED.lock();
    if m.len() >= MOVED_KEPT {
        m.pop_front();
    }
    m.push_back((txid.to_string(), slot));
}

/// The slot the log of `txid` moved away with, if it did.
pub fn moved_slot(txid: &str) -> Option<u16> {
    MOVED
        .lock()
        .iter()
        .rev()
        .find(|(t, _)| t == txid)
        .map(|&(_, s)| s)
}

/// The log of `txid` is over (rolled back, or its retention ended): the module forgets it.
pub fn forget(txid: &str) {
    INDEX.lock().forget(txid);
}

/// The server is emptying database `db` (-1: all): the logs of that database go with it.
pub fn on_flush(db: i32) {
    let mut idx = INDEX.lock();
    let gone: Vec<String> = idx
        .by_txid
        .iter()
        .filter(|(_, e)| db == -1 || e.cell.lock().db == db)
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        idx.forget(&id);
    }
}

/// A copy of the log of `txid`.
pub fn get(txid: &str) -> Option<StoredLog> {
    INDEX
        .lock()
        .by_txid
        .get(txid)
        .map(|e| e.cell.lock().clone())
}

/// Stops watching the keys of `txid` (its rollback is about to write them).
pub fn unwatch(txid: &str) {
    INDEX.lock().unwatch(txid);
}

/// Whether any log is held, retained or pending (an atomic load, no lock).
pub fn any() -> bool {
    LOGS.load(Ordering::Relaxed) != 0
}

/// Ids of logs whose rollback is pending (from the index: no walk over retained logs).
pub fn pending_ids() -> Vec<String> {
    if !any() {
        return Vec::new();
    }
    INDEX.lock().pending.iter().cloned().collect()
}

/// Most expired logs one call of [`expired`] returns: the timer ends them in bounded batches
/// (a log whose retention is over is already invisible to clients; only its end waits).
pub const EXPIRED_BATCH: usize = 64;

/// Ids of retained logs whose retention ended at `now_ms`, earliest first, at most
/// [`EXPIRED_BATCH`]: O(expired) from the index, not a walk over every log.
pub fn expired(now_ms: i64) -> Vec<String> {
    if !any() {
        return Vec::new();
    }
    INDEX
        .lock()
        .ends
        .iter()
        .take_while(|(t, _)| *t <= now_ms)
        .take(EXPIRED_BATCH)
        .map(|(_, id)| id.clone())
        .collect()
}

/// Counts for INFO at `now_ms`: (retained logs, pending rollbacks, bytes held). A log whose
/// retention is over no longer counts.
pub fn counts(now_ms: i64) -> (usize, usize, usize) {
    let idx = INDEX.lock();
    let (mut retained, mut pending, mut bytes) = (0, 0, 0);
    for e in idx.by_txid.values() {
        let v = e.cell.lock();
        if v.is_over(now_ms) {
            continue;
        }
        pending += usize::from(v.pending.is_some());
        retained += usize::from(v.pending.is_none());
        bytes += v.bytes();
    }
    (retained, pending, bytes)
}

/// Logs (by id) that touch key `key` of database `db` and would take a mark for it: retained
/// logs not yet conflicted, pending rollbacks not yet skipping that key.
pub fn unconflicted_watchers(db: i32, key: &[u8]) -> Vec<String> {
    if WATCHED.load(Ordering::Relaxed) == 0 {
        return Vec::new();
    }
    let idx = INDEX.lock();
    let Some(ids) = idx.by_key.get(&(db, key.to_vec())) else {
        return Vec::new();
    };
    ids.iter()
        .filter(|id| {
            idx.by_txid.get(*id).is_some_and(|e| {
                let v = e.cell.lock();
                match &v.pending {
                    None => v.conflict.is_none(),
                    Some(p) => !p.skipped.iter().any(|k| k == key),
                }
            })
        })
        .cloned()
        .collect()
}

/// `key` changed after log `txid` was stored: a retained log is conflicted by it (the first
/// mark wins), a pending rollback will leave it alone. Returns whether it changed anything.
pub fn mark_conflict(txid: &str, key: &[u8]) -> bool {
    let idx = INDEX.lock();
    let Some(e) = idx.by_txid.get(txid) else {
        return false;
    };
    let mut guard = e.cell.lock();
    let v = &mut *guard;
    match (&mut v.pending, &mut v.conflict) {
        (Some(p), _) if !p.skipped.iter().any(|k| k == key) => {
            p.skipped.push(key.to_vec());
            true
        }
        (Some(_), _) => false,
        (None, c @ None) => {
            *c = Some(key.to_vec());
            true
        }
        (None, Some(_)) => false,
    }
}

/// A key in database `db` was written: every log that touched it takes the mark.
#[cfg(test)]
pub fn key_changed(db: i32, key: &[u8]) {
    for id in unconflicted_watchers(db, key) {
        mark_conflict(&id, key);
    }
}

/// The data keys written by the transaction `txid`, if txu holds its undo log.
pub fn keys_of(txid: &str) -> Option<Vec<Vec<u8>>> {
    INDEX
        .lock()
        .by_txid
        .get(txid)
        .map(|e| e.cell.lock().keys.clone())
}

/// `Some(true)`: the rollback of `txid` is pending; `Some(false)`: its log is retained.
#[cfg(test)]
pub fn state_of(txid: &str) -> Option<bool> {
    INDEX
        .lock()
        .by_txid
        .get(txid)
        .map(|e| e.cell.lock().pending.is_some())
}

/// Whether a check of the logs' keys is due (some handle went away), clearing the flag.
pub fn check_due() -> bool {
    CHECK.swap(false, Ordering::Relaxed)
}

/// Asks for a check of the logs' keys at the next tick (`SWAPDB`, a txu key renamed or
/// moved: no handle is freed then).
pub fn request_check() {
    CHECK.store(true, Ordering::Relaxed);
}

/// (txid, database, key) of every log.
pub fn locations() -> Vec<(String, i32, Vec<u8>)> {
    INDEX
        .lock()
        .by_txid
        .iter()
        .map(|(id, e)| {
            let v = e.cell.lock();
            (id.clone(), v.db, v.key.clone())
        })
        .collect()
}

/// Whether `v`, found under a log's key, is that log's live handle.
pub fn is_live_handle(txid: &str, v: &LogValue) -> bool {
    let LogValue::Live(c) = v else {
        return false;
    };
    INDEX
        .lock()
        .by_txid
        .get(txid)
        .is_some_and(|e| Arc::ptr_eq(&e.cell, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `TXU._LOAD` (or loading the dataset) does with `bytes` under `key` in `db`.
    fn loaded(bytes: &[u8], key: &[u8], db: i32) -> Option<LogValue> {
        let v = LogValue::decode(bytes).ok()?;
        v.belongs_at(key, db).then(|| v.settle(true))
    }

    fn sample() -> StoredLog {
        StoredLog {
            txid: "1-2".into(),
            key: b"txu:undo:{x}:1-2".to_vec(),
            db: 0,
            created_ms: 5,
            retain_until_ms: Some(10),
            pending: None,
            keys: vec![b"a".to_vec(), b"b\0".to_vec()],
            conflict: None,
            log: UndoLog::new().encode(),
        }
    }

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        let v = sample();
        let bytes = v.encode();
        assert_eq!(StoredLog::decode(&bytes), Ok(v.clone()));
        for cut in 0..bytes.len() {
            assert!(
                StoredLog::decode(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut other = bytes.clone();
        other[0] = 3;
        assert_eq!(
            StoredLog::decode(&other),
            Err(DecodeError::UnknownVersion(3))
        );
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0xff; 16]);
        assert!(StoredLog::decode(&huge).is_err());
        let mut bad_log = v.clone();
        bad_log.log = vec![1, 0];
        assert!(
            StoredLog::decode(&bad_log.encode()).is_err(),
            "an undo log that does not decode"
        );
    }

    #[test]
    fn version_1_logs_still_load() {
        #[derive(Serialize)]
        struct V1<'a> {
            txid: &'a str,
            key: &'a [u8],
            db: i32,
            created_ms: i64,
            retain_until_ms: Option<i64>,
            pending: Option<(u32, &'a str)>,
            keys: Vec<Vec<u8>>,
            conflict: Option<Vec<u8>>,
            log: Vec<u8>,
        }
        let old = V1 {
            txid: "7-1",
            key: b"txu:undo:{k}:7-1",
            db: 2,
            created_ms: 3,
            retain_until_ms: None,
            pending: Some((4, "ERR x")),
            keys: vec![b"k".to_vec()],
            conflict: Some(b"k".to_vec()),
            log: UndoLog::new().encode(),
        };
        let v = StoredLog::decode(&crate::codec::encode(VERSION_1, &old)).expect("v1 loads");
        assert_eq!(v.txid, "7-1");
        assert_eq!(v.db, 2);
        let p = v.pending.expect("pending");
        assert_eq!((p.attempts, p.last_error.as_str()), (4, "ERR x"));
        assert!(p.skipped.is_empty());
        assert_eq!(v.conflict.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn expiry_and_pending_index_follow_installs_and_forgets() {
        // Times far in the past, so that other tests' logs (retained until 10) stay out.
        let log = |id: &str, until: Option<i64>, pending: bool| {
            let mut v = sample();
            v.txid = id.into();
            v.key = format!("txu:undo:{{x}}:{id}").into_bytes();
            v.retain_until_ms = until;
            v.pending = pending.then(|| Pending {
                attempts: 1,
                last_error: "ERR x".into(),
                skipped: Vec::new(),
            });
            v
        };
        let install = |v: StoredLog| INDEX.lock().install(v);
        let _a = install(log("exp-a", Some(-1000), false));
        let _b = install(log("exp-b", Some(-500), false));
        let _p = install(log("exp-p", Some(-2000), true));
        assert!(any());
        assert_eq!(expired(-1001), Vec::<String>::new());
        assert_eq!(expired(-700), vec!["exp-a".to_string()]);
        assert_eq!(
            expired(-500),
            vec!["exp-a".to_string(), "exp-b".to_string()]
        );
        assert!(pending_ids().contains(&"exp-p".to_string()));
        assert!(
            !expired(-500).contains(&"exp-p".to_string()),
            "pending is never over"
        );
        // Stored again, now retained: the log moves from one index to the other.
        let _p2 = install(log("exp-p", Some(-600), false));
        assert!(!pending_ids().contains(&"exp-p".to_string()));
        assert_eq!(
            expired(-600),
            vec!["exp-a".to_string(), "exp-p".to_string()]
        );
        for id in ["exp-a", "exp-b", "exp-p"] {
            forget(id);
        }
        assert_eq!(expired(-500), Vec::<String>::new());
        assert!(!pending_ids().contains(&"exp-p".to_string()));
    }

    #[test]
    fn index_tracks_conflicts_and_pending_skips() {
        let mut v = sample();
        v.txid = "idx-test".into();
        let key = v.key.clone();
        let handle = loaded(&v.encode(), &key, 0).expect("decodes");
        assert!(is_live_handle("idx-test", &handle));
        assert_eq!(state_of("idx-test"), Some(false));
        key_changed(0, b"other");
        assert_eq!(get("idx-test").and_then(|v| v.conflict), None);
        key_changed(0, b"b\0");
        assert_eq!(
            get("idx-test").and_then(|v| v.conflict).as_deref(),
            Some(&b"b\0"[..])
        );
        assert!(!mark_conflict("idx-test", b"a"), "the first mark wins");
        // The handle persists what the index holds.
        let decoded = StoredLog::decode(&handle.encode()).expect("decodes");
        assert_eq!(decoded.conflict.as_deref(), Some(&b"b\0"[..]));
        // A copy elsewhere is inert and does not replace the log.
        let mut copy = sample();
        copy.txid = "idx-test".into();
        assert!(
            loaded(&copy.encode(), b"elsewhere", 0).is_none(),
            "misplaced"
        );
        // What a client restores over the log's key is a handle on the log the module holds.
        let restored = LogValue::decode(&copy.encode())
            .expect("decodes")
            .settle(false);
        assert!(is_live_handle("idx-test", &restored));
        copy.key = b"elsewhere".to_vec();
        let inert = LogValue::decode(&copy.encode())
            .expect("decodes")
            .settle(false);
        let again = loaded(&inert.encode(), &key, 0).expect("decodes");
        assert!(
            matches!(again, LogValue::Inert(_)),
            "an inert copy stays inert even under the log's own key"
        );
        assert!(!is_live_handle("idx-test", &inert));
        assert!(!is_live_handle("idx-test", &again));
        assert!(is_live_handle("idx-test", &handle));

        // A pending rollback skips every key changed after it, once each.
        let mut p = sample();
        p.txid = "idx-pending".into();
        p.pending = Some(Pending {
            attempts: 1,
            last_error: "ERR x".into(),
            skipped: Vec::new(),
        });
        let pkey = p.key.clone();
        let _h = loaded(&p.encode(), &pkey, 0).expect("decodes");
        key_changed(0, b"a");
        key_changed(0, b"a");
        key_changed(0, b"b\0");
        let skipped = get("idx-pending")
            .and_then(|v| v.pending)
            .map(|p| p.skipped);
        assert_eq!(skipped, Some(vec![b"a".to_vec(), b"b\0".to_vec()]));
        forget("idx-test");
        forget("idx-pending");
        assert_eq!(state_of("idx-test"), None);
        assert!(
            !is_live_handle("idx-test", &handle),
            "a forgotten log has no handle"
        );
    }
}
