//! The failed-task list: held by the module, persisted under one key, `txu:tasks` in database
//! 0, of type `txu-tasks`. Every change to it is one `TXU._TASK <op> ...` command, applied the
//! same way on the primary, on replicas (replication stream) and from the AOF, so they all
//! hold the same list; RDB and AOF rewrites store the whole list. Nothing a client does to the
//! key loses a task (see [`StoredTasks`]).

use crate::codec::DecodeError;
use crate::error::TxuError;
use crate::ffi::types::{self, ModuleValue, TypeSlot};
use crate::ffi::{keys, CtxPtr, OwnedStr};
use crate::tasks::list::{Task, TaskList};
use crate::tasks::ErrorClass;
use parking_lot::Mutex;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::LazyLock;

pub static TYPE: TypeSlot = TypeSlot::new();
/// The key holding the list, in database 0.
pub const KEY: &[u8] = b"txu:tasks";
pub const DB: i32 = 0;
pub const TASK_COMMAND: &CStr = c"txu._task";

/// A value of type `txu-tasks`. The list itself lives in the module ([`LIST`]); the key
/// `txu:tasks` in database 0 holds a `Live` handle whose RDB, AOF and digest forms are the
/// module's list at that moment, so the list persists and replicates like data. Deleting,
/// evicting, expiring, renaming or moving the key, or swapping its database, frees or moves a
/// handle and loses no task: the list stays in the module and the primary writes the key back
/// at the next tick (see [`ensure_saved`]). Any other value of the type — what a client
/// `RESTORE`s, a renamed or moved key when it is loaded again — is `Inert`: it holds its own
/// list, which nothing reads, and its payload says so wherever it goes.
pub enum StoredTasks {
    Live,
    Inert(Box<TaskList>),
    /// Decoded, not yet placed (see `settle`).
    Fresh(Box<TaskList>),
}

impl ModuleValue for StoredTasks {
    const NAME: &'static CStr = c"txu-tasks";
    const ENCVER: c_int = 1;
    const AOF_COMMAND: &'static CStr = super::LOAD_COMMAND;
    const KIND: &'static CStr = c"tasks";

    fn encode(&self) -> Vec<u8> {
        match self {
            StoredTasks::Live => LIST.lock().encode(),
            StoredTasks::Inert(l) | StoredTasks::Fresh(l) => super::inert_payload(l.encode()),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (inert, bytes) = super::split_inert(bytes);
        let list = Box::new(TaskList::decode(bytes)?);
        Ok(if inert {
            StoredTasks::Inert(list)
        } else {
            StoredTasks::Fresh(list)
        })
    }

    /// The list lives at `txu:tasks` in database 0 only (an inert copy may be anywhere).
    fn belongs_at(&self, key: &[u8], db: i32) -> bool {
        matches!(self, StoredTasks::Inert(_)) || (key == KEY && db == DB)
    }

    /// Only the dataset the server loads, or txu's own `TXU._LOAD`, brings a list back. What
    /// a client restores over the list's key never changes the tasks: it becomes a handle on
    /// the module's list (its own content is dropped), so the key keeps persisting the list.
    fn settle(self, authoritative: bool) -> Self {
        match self {
            StoredTasks::Fresh(list) => {
                if authoritative {
                    install(*list);
                }
                SAVED.store(true, Ordering::Relaxed);
                StoredTasks::Live
            }
            other => other,
        }
    }

    fn digest_bytes(&self) -> Vec<u8> {
        match self {
            StoredTasks::Live => LIST.lock().encode(),
            StoredTasks::Inert(l) | StoredTasks::Fresh(l) => l.encode(),
        }
    }

    /// A live handle away from the list's key (renamed, moved) is written as an inert copy.
    fn encode_at(&self, key: &[u8], db: Option<i32>) -> Vec<u8> {
        match self {
            StoredTasks::Live if key == KEY && db.is_none_or(|d| d == DB) => self.encode(),
            StoredTasks::Live => super::inert_payload(LIST.lock().encode()),
            _ => self.encode(),
        }
    }

    fn on_detach(&self, _addr: usize) {
        if matches!(self, StoredTasks::Live) {
            SAVED.store(false, Ordering::Relaxed);
        }
    }

    fn mem_usage(&self) -> usize {
        let size = |l: &TaskList| -> usize {
            l.pending()
                .chain(l.dead())
                .map(|t| {
                    std::mem::size_of::<Task>()
                        + t.id.len()
                        + t.last_error.len()
                        + t.commands.iter().flatten().map(Vec::len).sum::<usize>()
                        + t.keys.iter().map(Vec::len).sum::<usize>()
                })
                .sum()
        };
        match self {
            StoredTasks::Live => size(&LIST.lock()),
            StoredTasks::Inert(l) | StoredTasks::Fresh(l) => size(l),
        }
    }
}

/// One change to the list. Its arguments are everything needed to apply it deterministically
/// (the clock reading and the backoff delay come from the primary).
#[derive(Debug, Clone)]
pub enum Op {
    Push(Task),
    Done(String),
    Fail {
        id: String,
        transient: bool,
        now_ms: i64,
        delay_ms: u64,
        dead_max: usize,
        error: String,
    },
    Retry {
        id: String,
        now_ms: i64,
    },
    Drop(String),
}

/// Version byte of an encoded task in `TXU._TASK PUSH`.
const TASK_VERSION: u8 = 1;

fn encode_task(t: &Task) -> Vec<u8> {
    crate::codec::encode(TASK_VERSION, t)
}

fn decode_task(b: &[u8]) -> Option<Task> {
    crate::codec::decode(TASK_VERSION, b).ok()
}

impl Op {
    /// The arguments of `TXU._TASK` for this op.
    pub fn to_args(&self) -> Vec<Vec<u8>> {
        match self {
            Op::Push(t) => vec![b"PUSH".to_vec(), encode_task(t)],
            Op::Done(id) => vec![b"DONE".to_vec(), id.clone().into_bytes()],
            Op::Fail {
                id,
                transient,
                now_ms,
                delay_ms,
                dead_max,
                error,
            } => vec![
                b"FAIL".to_vec(),
                id.clone().into_bytes(),
                if *transient {
                    b"1".to_vec()
                } else {
                    b"0".to_vec()
                },
                now_ms.to_string().into_bytes(),
                delay_ms.to_string().into_bytes(),
                dead_max.to_string().into_bytes(),
                error.clone().into_bytes(),
            ],
            Op::Retry { id, now_ms } => vec![
                b"RETRY".to_vec(),
                id.clone().into_bytes(),
                now_ms.to_string().into_bytes(),
            ],
            Op::Drop(id) => vec![b"DROP".to_vec(), id.clone().into_bytes()],
        }
    }

    /// Parses the arguments of `TXU._TASK` (after the command name): exactly what `to_args`
    /// writes, or `None` (a damaged command, refused before anything changes).
    pub fn from_args(args: &[&[u8]]) -> Option<Op> {
        fn num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
            std::str::from_utf8(b).ok()?.parse().ok()
        }
        fn flag(b: &[u8]) -> Option<bool> {
            match b {
                b"1" => Some(true),
                b"0" => Some(false),
                _ => None,
            }
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match args {
            [op, t] if op.eq_ignore_ascii_case(b"push") => decode_task(t).map(Op::Push),
            [op, id] if op.eq_ignore_ascii_case(b"done") => Some(Op::Done(text(id))),
            [op, id, tr, now, delay, dead_max, err] if op.eq_ignore_ascii_case(b"fail") => {
                Some(Op::Fail {
                    id: text(id),
                    transient: flag(tr)?,
                    now_ms: num(now)?,
                    delay_ms: num(delay)?,
                    dead_max: num(dead_max)?,
                    error: text(err),
                })
            }
            [op, id, now] if op.eq_ignore_ascii_case(b"retry") => Some(Op::Retry {
                id: text(id),
                now_ms: num(now)?,
            }),
            [op, id] if op.eq_ignore_ascii_case(b"drop") => Some(Op::Drop(text(id))),
            _ => None,
        }
    }

    /// Applies the op to a list.
    pub fn apply(&self, list: &mut TaskList) {
        match self {
            Op::Push(t) => list.push(t.clone()),
            Op::Done(id) => {
                list.succeeded(id);
            }
            Op::Fail {
                id,
                transient,
                now_ms,
                delay_ms,
                dead_max,
                error,
            } => {
                list.set_dead_max(*dead_max);
                let class = if *transient {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                };
                list.failed(id, error.clone(), class, *now_ms, *delay_ms);
            }
            Op::Retry { id, now_ms } => {
                list.retry(id, *now_ms);
            }
            Op::Drop(id) => {
                list.drop_task(id);
            }
        }
    }
}

/// The failed-task list of this server: the truth, which `txu:tasks` persists.
static LIST: LazyLock<Mutex<TaskList>> = LazyLock::new(|| Mutex::new(TaskList::new()));
/// Whether the list's key is known to hold a live handle (cleared when one is freed).
static SAVED: AtomicBool = AtomicBool::new(false);

// What INFO and the fast paths need, published after every change so they never lock the list.
static PENDING: AtomicU64 = AtomicU64::new(0);
static DEAD: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
static OLDEST_MS: AtomicI64 = AtomicI64::new(0);

fn publish(l: &TaskList) {
    PENDING.store(l.pending_len() as u64, Ordering::Relaxed);
    DEAD.store(l.dead_len() as u64, Ordering::Relaxed);
    DROPPED.store(l.dropped_by_bound(), Ordering::Relaxed);
    OLDEST_MS.store(
        l.oldest_pending_created_ms().unwrap_or(0),
        Ordering::Relaxed,
    );
}

/// Makes `list` the module's list (loading it from the dataset or a `TXU._LOAD`).
fn install(list: TaskList) {
    let mut l = LIST.lock();
    *l = list;
    publish(&l);
}

/// The server is emptying database `db` (-1: all of them): tasks are data of their
/// database, so the tasks on that database's keys go with it.
pub fn on_flush(db: i32) {
    let mut l = LIST.lock();
    if db == -1 {
        l.clear();
    } else {
        l.drop_db(db);
    }
    publish(&l);
}

/// Whether any task is pending (cheap: no lock).
pub fn has_pending() -> bool {
    PENDING.load(Ordering::Relaxed) != 0
}

pub struct Counts {
    pub pending: u64,
    pub dead: u64,
    pub dropped: u64,
    pub oldest_age_ms: u64,
}

pub fn counts(now_ms: i64) -> Counts {
    let pending = PENDING.load(Ordering::Relaxed);
    let oldest = OLDEST_MS.load(Ordering::Relaxed);
    Counts {
        pending,
        dead: DEAD.load(Ordering::Relaxed),
        dropped: DROPPED.load(Ordering::Relaxed),
        oldest_age_ms: if pending == 0 {
            0
        } else {
            u64::try_from(now_ms.saturating_sub(oldest)).unwrap_or(0)
        },
    }
}

/// Applies `op` to the list (the body of `TXU._TASK`, on the primary, on replicas and from
/// the AOF alike), and makes sure the list's key holds it.
pub fn apply_here(ctx: CtxPtr, op: &Op) -> Result<(), TxuError> {
    with_list(|l| {
        op.apply(l);
        publish(l);
    });
    place_handle(ctx);
    Ok(())
}

/// Runs `op` through `TXU._TASK` with replication on (primary side).
pub fn submit(ctx: CtxPtr, op: &Op) -> Result<(), TxuError> {
    let args = op.to_args();
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    super::call_internal(ctx, TASK_COMMAND, &refs)
}

/// Runs `f` on the task list.
pub fn with_list<R>(f: impl FnOnce(&mut TaskList) -> R) -> R {
    f(&mut LIST.lock())
}

/// Whether the list's key holds a live handle, read in database 0.
fn handle_in_place(ctx: CtxPtr) -> Option<bool> {
    let prev = keys::select_db(ctx, DB)?;
    let key = OwnedStr::create(KEY);
    let live = key.and_then(|k| {
        types::with_value(ctx, &TYPE, k.as_str(), |v: &mut StoredTasks| {
            matches!(v, StoredTasks::Live)
        })
    });
    keys::select_db(ctx, prev);
    Some(live.unwrap_or(false))
}

/// Puts a live handle under the list's key on this server if none is there and the name is
/// free (`TXU._TASK` does it on every server alike, so it needs no replication).
fn place_handle(ctx: CtxPtr) {
    if SAVED.load(Ordering::Relaxed) {
        return;
    }
    let Some(prev) = keys::select_db(ctx, DB) else {
        return;
    };
    if let Some(k) = OwnedStr::create(KEY) {
        let free = keys::key_expiry(ctx, k.as_str()).is_none();
        if free && types::set_value(ctx, &TYPE, k.as_str(), StoredTasks::Live, 0).is_ok() {
            SAVED.store(true, Ordering::Relaxed);
        }
    }
    keys::select_db(ctx, prev);
}

/// Primary, from the timer: if the list has tasks and its key does not hold a live handle
/// (deleted, evicted, expired, renamed, moved, swapped to another database, replaced by a
/// `RESTORE` or by a client's write), writes the list back under its key with `TXU._LOAD`,
/// replicated, replacing whatever is there. Returns whether it wrote.
pub fn ensure_saved(ctx: CtxPtr) -> Result<bool, TxuError> {
    let empty = with_list(|l| l.pending_len() == 0 && l.dead_len() == 0);
    if empty || handle_in_place(ctx) != Some(false) {
        return Ok(false);
    }
    let payload = with_list(|l| l.encode());
    let prev = keys::select_db(ctx, DB).ok_or(TxuError::NoDatabase(DB))?;
    let r = super::call_internal(
        ctx,
        super::LOAD_COMMAND,
        &[StoredTasks::KIND.to_bytes(), KEY, &payload, b"0"],
    );
    keys::select_db(ctx, prev);
    r.map(|()| true)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn sample_task() -> Task {
        Task {
            id: "1-2".into(),
            db: 0,
            user: b"default".to_vec(),
            commands: vec![vec![b"SET".to_vec(), b"k".to_vec(), b"1".to_vec()]],
            keys: vec![b"k".to_vec()],
            created_ms: 5,
            attempts: 1,
            max_attempts: 3,
            next_attempt_ms: 7,
            last_error: "NOREPLICAS x".into(),
        }
    }

    fn parse(args: &[&[u8]]) -> Option<Op> {
        Op::from_args(args)
    }

    #[test]
    fn every_op_parses_back_from_its_arguments() {
        let ops = [
            Op::Push(sample_task()),
            Op::Done("1-2".into()),
            Op::Fail {
                id: "1-2".into(),
                transient: true,
                now_ms: 9,
                delay_ms: 100,
                dead_max: 10,
                error: "OOM x".into(),
            },
            Op::Retry {
                id: "1-2".into(),
                now_ms: 9,
            },
            Op::Drop("1-2".into()),
        ];
        for op in ops {
            let args = op.to_args();
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let back = parse(&refs).map(|o| o.to_args());
            assert_eq!(back, Some(args), "{op:?}");
        }
    }

    #[test]
    fn damaged_arguments_are_refused() {
        let task = encode_task(&sample_task());
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![b"BOGUS", b"1-2"],
            vec![b"DONE"],
            vec![b"DONE", b"1-2", b"extra"],
            vec![b"DROP"],
            vec![b"PUSH"],
            vec![b"PUSH", &task[..task.len() - 1]],
            vec![b"PUSH", b""],
            vec![b"RETRY", b"1-2", b"12x"],
            vec![b"RETRY", b"1-2"],
            vec![b"FAIL", b"1-2", b"1", b"9", b"100", b"10"],
            vec![b"FAIL", b"1-2", b"yes", b"9", b"100", b"10", b"e"],
            vec![b"FAIL", b"1-2", b"", b"9", b"100", b"10", b"e"],
            vec![b"FAIL", b"1-2", b"1", b"soon", b"100", b"10", b"e"],
            vec![b"FAIL", b"1-2", b"1", b"9", b"-1", b"10", b"e"],
            vec![b"FAIL", b"1-2", b"1", b"9", b"100", b"\xff", b"e"],
        ];
        for args in cases {
            assert!(parse(&args).is_none(), "{args:?}");
        }
    }
}
