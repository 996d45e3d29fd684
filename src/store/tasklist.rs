//! The failed-task list: held by the module, persisted under one key, `txu:tasks` in database
//! 0, of type `txu-tasks`. Every change to it is one `TXU._TASK <op> ...` command, applied the
//! same way on the primary, on replicas (replication stream) and from the AOF, so they all
//! hold the same list; RDB and AOF rewrites store the whole list. Nothing a client does to the
//! key loses a task (see [`StoredTasks`]).

use crate::error::TxuError;
use crate::ffi::types::{self, LoadedFrom, ModuleValue, TypeSlot};
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
/// at the next tick (see [`ensure_saved`]). Any other value of the type — a copy `RESTORE`d by
/// a client, a renamed or moved key when it is loaded again — is `Inert`: it holds its own
/// list, which nothing reads.
pub enum StoredTasks {
    Live,
    Inert(Box<TaskList>),
}

impl StoredTasks {
    /// The value for `key` in database `db` holding `list`: a live handle (and `list`
    /// becomes the module's list) if that is the list's own key.
    fn placed(list: TaskList, key: &[u8], db: i32) -> StoredTasks {
        if key == KEY && db == DB {
            install(list);
            StoredTasks::Live
        } else {
            StoredTasks::Inert(Box::new(list))
        }
    }
}

impl ModuleValue for StoredTasks {
    const NAME: &'static CStr = c"txu-tasks";
    const ENCVER: c_int = 1;
    const AOF_COMMAND: &'static CStr = super::LOAD_COMMAND;
    const KIND: &'static CStr = c"tasks";

    fn encode(&self) -> Vec<u8> {
        match self {
            StoredTasks::Live => LIST.lock().encode(),
            StoredTasks::Inert(l) => super::inert_payload(l.encode()),
        }
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (_, bytes) = super::split_inert(bytes);
        TaskList::decode(bytes)
            .ok()
            .map(|l| StoredTasks::Inert(Box::new(l)))
    }

    /// Only the dataset the server loads (RDB, full sync) brings a list back, and only from
    /// the list's own key: a `RESTORE` by a client never changes the tasks.
    fn load(bytes: &[u8], from: &LoadedFrom<'_>) -> Option<Self> {
        let (inert, bytes) = super::split_inert(bytes);
        let list = TaskList::decode(bytes).ok()?;
        Some(match (inert, from.loading, from.key, from.db) {
            (false, true, Some(key), Some(db)) => StoredTasks::placed(list, key, db),
            _ => StoredTasks::Inert(Box::new(list)),
        })
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
            StoredTasks::Inert(l) => size(l),
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

    /// Parses the arguments of `TXU._TASK` (after the command name).
    pub fn from_args(args: &[&[u8]]) -> Option<Op> {
        fn num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
            std::str::from_utf8(b).ok()?.parse().ok()
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match args {
            [op, t] if op.eq_ignore_ascii_case(b"push") => decode_task(t).map(Op::Push),
            [op, id] if op.eq_ignore_ascii_case(b"done") => Some(Op::Done(text(id))),
            [op, id, tr, now, delay, dead_max, err] if op.eq_ignore_ascii_case(b"fail") => {
                Some(Op::Fail {
                    id: text(id),
                    transient: *tr == b"1",
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

/// The value `TXU._LOAD tasks <key> <payload>` stores: a live handle under the list's own
/// key (and the payload becomes the list), inert anywhere else or for an inert payload.
pub fn loaded(payload: &[u8], key: &[u8], db: i32) -> Option<StoredTasks> {
    let (inert, bytes) = super::split_inert(payload);
    let list = TaskList::decode(bytes).ok()?;
    if inert {
        return Some(StoredTasks::Inert(Box::new(list)));
    }
    let v = StoredTasks::placed(list, key, db);
    if matches!(v, StoredTasks::Live) {
        SAVED.store(true, Ordering::Relaxed);
    }
    Some(v)
}
