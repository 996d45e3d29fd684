//! Open transactions, one per client connection, keyed by client id.

use crate::fasthash::{FastMap, FastSet};
use crate::ffi::OwnedStr;
use parking_lot::Mutex;
use std::ffi::CStr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::LazyLock;

/// A validated command waiting for `TXU.EXEC`.
pub struct Queued {
    /// The command exactly as the client sent it; `argv[0]` is the command name.
    pub argv: Vec<OwnedStr>,
    /// The command name as a C string, for `RedisModule_Call`.
    pub cname: Arc<CStr>,
    /// Upper-case name for error messages (`SET`, `CONFIG|GET`).
    pub display: Arc<str>,
    /// A string command writing only its first argument (`SET`, `INCR`...): the executor reads
    /// that key's pre-image itself (see `catalog::CmdInfo::string_key`).
    pub string_key: bool,
    /// Positions in `argv` of the keys whose pre-images must be taken (empty for reads).
    pub write_keys: Positions,
    /// Positions in `argv` of all the command's keys (read or written), for task ordering.
    pub keys: Positions,
    /// Flagged `denyoom`: refused while the server is over `maxmemory`.
    pub denyoom: bool,
    /// Flagged `write`: refused on a read-only replica.
    pub write: bool,
    /// Undo this command's own pre-images if it fails. Core commands change nothing when they
    /// fail, so undoing them would only write; other modules' commands may fail half-way.
    pub undo_own_failure: bool,
    /// `TXU.CHECK`: a guard on an earlier command's reply instead of a command to run.
    pub check: Option<super::check::Check>,
    /// `EVAL`, `FCALL` and the like: their writes are covered as they happen (see
    /// `exec::script`), not before the command.
    pub script: Option<super::script::Script>,
}

/// Positions of a command's keys in its `argv`. Most commands have one or two: those are held
/// inline, so queueing a command does not allocate for them.
#[derive(Debug, Clone)]
pub enum Positions {
    Inline { len: u8, at: [usize; INLINE] },
    Heap(Vec<usize>),
}

const INLINE: usize = 3;

impl Default for Positions {
    fn default() -> Self {
        Positions::Inline {
            len: 0,
            at: [0; INLINE],
        }
    }
}

impl Positions {
    pub fn one(p: usize) -> Positions {
        Positions::Inline {
            len: 1,
            at: [p, 0, 0],
        }
    }

    pub fn push(&mut self, p: usize) {
        match self {
            Positions::Inline { len, at } => match at.get_mut(usize::from(*len)) {
                Some(slot) => {
                    *slot = p;
                    *len += 1;
                }
                None => {
                    let mut v = at.to_vec();
                    v.push(p);
                    *self = Positions::Heap(v);
                }
            },
            Positions::Heap(v) => v.push(p),
        }
    }
}

impl std::ops::Deref for Positions {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        match self {
            Positions::Inline { len, at } => at.get(..usize::from(*len)).unwrap_or_default(),
            Positions::Heap(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a Positions {
    type Item = &'a usize;
    type IntoIter = std::slice::Iter<'a, usize>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<usize> for Positions {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Positions {
        let mut out = Positions::default();
        for p in iter {
            out.push(p);
        }
        out
    }
}

/// A transaction opened by `TXU.BEGIN` and not yet ended.
pub struct Tx {
    /// Reported by TXU.BEGIN; names retained undo logs and deferred tasks.
    pub id: String,
    pub queued: Vec<Queued>,
    /// Commands accepted so far (kept counting after an abort, for `txu.max-queued`).
    pub accepted: usize,
    /// Set when a queued command failed validation: `TXU.EXEC` then applies nothing.
    pub aborted: bool,
    /// `TXU.BEGIN CAPTURE`: the command filter queues this client's commands.
    pub capture: bool,
    /// `TXU.BEGIN RETAIN <ms>`: keep the undo log after a commit.
    pub retain_ms: Option<i64>,
    /// `TXU.BEGIN RETRY [<n>]`: defer on a transient failure, with this many attempts.
    pub retry: Option<u32>,
    /// Every command's ACL was checked within the command running the transaction
    /// (`TXU.RUN`, with the caller's user found): the calls need not check it again.
    pub acl_checked: bool,
    /// Cluster: the one slot of the transaction's keys (set by its first keyed command).
    pub slot: Option<u16>,
}

static OPEN: LazyLock<Mutex<FastMap<u64, Tx>>> = LazyLock::new(|| Mutex::new(FastMap::default()));

/// Clients in capture mode. The count is read first by the command filter, so connections
/// not capturing pay one atomic load per command.
static CAPTURING: LazyLock<Mutex<FastSet<u64>>> = LazyLock::new(|| Mutex::new(FastSet::default()));
static CAPTURE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Opens a transaction for `client`. False if one is already open.
pub fn open(
    client: u64,
    id: String,
    capture: bool,
    retain_ms: Option<i64>,
    retry: Option<u32>,
) -> bool {
    let mut open = OPEN.lock();
    if open.contains_key(&client) {
        return false;
    }
    open.insert(
        client,
        Tx {
            id,
            queued: Vec::new(),
            accepted: 0,
            aborted: false,
            capture,
            retain_ms,
            retry,
            acl_checked: false,
            slot: None,
        },
    );
    if capture {
        let mut c = CAPTURING.lock();
        c.insert(client);
        CAPTURE_COUNT.store(c.len(), Ordering::Relaxed);
    }
    true
}

/// Whether `client` is in capture mode (cheap when nobody is).
pub fn is_capturing(client: u64) -> bool {
    CAPTURE_COUNT.load(Ordering::Relaxed) != 0 && CAPTURING.lock().contains(&client)
}

pub fn anyone_capturing() -> bool {
    CAPTURE_COUNT.load(Ordering::Relaxed) != 0
}

/// Runs `f` on the client's open transaction, if any.
pub fn with<R>(client: u64, f: impl FnOnce(&mut Tx) -> R) -> Option<R> {
    OPEN.lock().get_mut(&client).map(f)
}

pub fn is_open(client: u64) -> bool {
    OPEN.lock().contains_key(&client)
}

/// Ends the client's transaction and hands it over.
pub fn take(client: u64) -> Option<Tx> {
    let tx = OPEN.lock().remove(&client)?;
    if tx.capture {
        let mut c = CAPTURING.lock();
        c.remove(&client);
        CAPTURE_COUNT.store(c.len(), Ordering::Relaxed);
    }
    Some(tx)
}

pub fn open_count() -> usize {
    OPEN.lock().len()
}

/// Issues transaction ids `<unix-ms>-<n>`. `n` is this process's random 32-bit nonce in its
/// high half and a counter in its low half, so ids are unique within a process (the counter)
/// and across processes — a restart, a replica promoted after a failover, a clock that steps
/// backwards — because no two processes share a nonce (but with odds of 1 in 2^32). The
/// millisecond part never goes backwards within a process, so ids of one process sort by time.
struct IdGen {
    nonce: u64,
    seq: AtomicU64,
    last_ms: AtomicI64,
}

impl IdGen {
    fn next(&self, now_ms: i64) -> String {
        let prev = self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
        let ms = prev.max(now_ms);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
        format!("{ms}-{}", (self.nonce << 32) | seq)
    }
}

/// A random nonce: std seeds `RandomState` from the operating system's randomness.
fn random_nonce() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x7478_7521_u64) & 0xffff_ffff
}

static IDS: LazyLock<IdGen> = LazyLock::new(|| IdGen {
    nonce: random_nonce(),
    seq: AtomicU64::new(0),
    last_ms: AtomicI64::new(0),
});

/// A new transaction id (see [`IdGen`]).
pub fn next_id(now_ms: i64) -> String {
    IDS.next(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(id: &str) -> (i64, u64) {
        let (ms, n) = id.split_once('-').expect("<ms>-<n>");
        (ms.parse().expect("ms"), n.parse().expect("n"))
    }

    #[test]
    fn ids_are_unique_and_never_go_back_in_time() {
        let a = next_id(1000);
        let b = next_id(999);
        assert_ne!(a, b);
        assert!(parts(&b).0 >= parts(&a).0);
    }

    #[test]
    fn two_processes_never_issue_the_same_id_even_when_their_clocks_agree() {
        // Two generators stand for two processes: say a primary and the replica promoted
        // after it failed, whose clock is behind and whose counter starts at zero again.
        let old = IdGen {
            nonce: random_nonce(),
            seq: AtomicU64::new(0),
            last_ms: AtomicI64::new(0),
        };
        let new = IdGen {
            nonce: random_nonce(),
            seq: AtomicU64::new(0),
            last_ms: AtomicI64::new(0),
        };
        assert_ne!(old.nonce, new.nonce, "each process draws its own nonce");
        let from_old: std::collections::HashSet<String> =
            (0..1000).map(|i| old.next(5000 + i / 10)).collect();
        assert_eq!(from_old.len(), 1000);
        for i in 0..1000 {
            let id = new.next(4990 + i / 10);
            assert!(!from_old.contains(&id), "{id} issued twice");
            assert_eq!(parts(&id).1 >> 32, new.nonce);
        }
    }

    #[test]
    fn positions_hold_a_few_inline_and_any_number_on_the_heap() {
        let few: Positions = [4, 1].into_iter().collect();
        assert!(matches!(few, Positions::Inline { len: 2, .. }));
        assert_eq!(&*few, &[4, 1]);
        let many: Positions = (1..=7).collect();
        assert!(matches!(many, Positions::Heap(_)));
        assert_eq!(&*many, &[1, 2, 3, 4, 5, 6, 7]);
        assert!(Positions::default().is_empty());
        assert_eq!(&*Positions::one(1), &[1]);
    }

    #[test]
    fn one_transaction_per_client() {
        assert!(open(u64::MAX - 7, "x".into(), false, None, None));
        assert!(!open(u64::MAX - 7, "y".into(), false, None, None));
        assert!(is_open(u64::MAX - 7));
        assert_eq!(take(u64::MAX - 7).map(|t| t.id), Some("x".to_string()));
        assert!(!is_open(u64::MAX - 7));
    }

    #[test]
    fn capture_mode_is_tracked_and_cleared() {
        let c = u64::MAX - 9;
        assert!(!is_capturing(c));
        assert!(open(c, "x".into(), true, None, None));
        assert!(is_capturing(c));
        assert!(take(c).is_some());
        assert!(!is_capturing(c));
    }
}
