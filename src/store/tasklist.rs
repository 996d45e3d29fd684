//! The failed-task list lives in the database: one key, `txu:tasks` in database 0, of type
//! `txu-tasks`. Every change to it is one `TXU._TASK <op> ...` command, applied the same way on
//! the primary, on replicas (replication stream) and from the AOF, so they all hold the same
//! list; RDB and AOF rewrites store the whole list.

use crate::error::TxuError;
use crate::ffi::types::{self, ModuleValue, TypeSlot};
use crate::ffi::{keys, CtxPtr, OwnedStr};
use crate::tasks::list::{Task, TaskList};
use crate::tasks::ErrorClass;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

pub static TYPE: TypeSlot = TypeSlot::new();
/// The key holding the list, in database 0.
pub const KEY: &[u8] = b"txu:tasks";
pub const DB: i32 = 0;
pub const TASK_COMMAND: &CStr = c"txu._task";

pub struct StoredTasks(pub TaskList);

impl ModuleValue for StoredTasks {
    const NAME: &'static CStr = c"txu-tasks";
    const ENCVER: c_int = 1;
    const AOF_COMMAND: &'static CStr = super::LOAD_COMMAND;
    const KIND: &'static CStr = c"tasks";

    fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        TaskList::decode(bytes).ok().map(StoredTasks)
    }

    fn on_attach(&self, addr: usize) {
        let _g = PUBLISH.lock();
        CURRENT.store(addr, Ordering::Relaxed);
        publish(&self.0);
    }

    fn on_detach(&self, addr: usize) {
        // An old list freed late (FLUSHALL ASYNC, a full resync) must not clear the counters
        // of a newer one.
        if CURRENT
            .compare_exchange(addr, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            publish(&TaskList::new());
        }
    }

    fn mem_usage(&self) -> usize {
        self.0
            .pending()
            .chain(self.0.dead())
            .map(|t| {
                std::mem::size_of::<Task>()
                    + t.id.len()
                    + t.last_error.len()
                    + t.commands.iter().flatten().map(Vec::len).sum::<usize>()
                    + t.keys.iter().map(Vec::len).sum::<usize>()
            })
            .sum()
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

// What INFO and the fast paths need, published after every change so they never open the key.
/// Serializes attach/detach (detach may run on a background thread).
static PUBLISH: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
/// Address of the list the counters describe.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
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

/// The server is emptying database `db` (-1: all): the list, if there, is going away now,
/// even if its memory is freed later on a background thread.
pub fn on_flush(db: i32) {
    if db == -1 || db == DB {
        let _g = PUBLISH.lock();
        CURRENT.store(0, Ordering::Relaxed);
        publish(&TaskList::new());
    }
}

/// Whether any task is pending (cheap: no key lookup).
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

/// Applies `op` to the list in this server's database (the body of `TXU._TASK`).
pub fn apply_here(ctx: CtxPtr, op: &Op) -> Result<(), TxuError> {
    with_list(ctx, true, |l| {
        op.apply(l);
        publish(l);
    })
    .ok_or(TxuError::CannotStore("the task list under 'txu:tasks'"))
}

/// Runs `op` through `TXU._TASK` with replication on (primary side).
pub fn submit(ctx: CtxPtr, op: &Op) -> Result<(), TxuError> {
    let args = op.to_args();
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    super::call_internal(ctx, TASK_COMMAND, &refs)
}

/// Runs `f` on the task list (creating the key if `create`), in database 0, restoring the
/// caller's database afterwards. `None` if there is no list and `create` is false.
pub fn with_list<R>(ctx: CtxPtr, create: bool, f: impl FnOnce(&mut TaskList) -> R) -> Option<R> {
    let prev = keys::select_db(ctx, DB)?;
    let out = OwnedStr::create(KEY).and_then(|key| {
        let key = key.as_str();
        let mut f = Some(f);
        let mut run = |v: &mut StoredTasks| f.take().map(|f| f(&mut v.0));
        if let Some(r) = types::with_value(ctx, &TYPE, key, &mut run) {
            return r;
        }
        // Never overwrite a user's key of another type that squats on the name.
        if !create || keys::key_expiry(ctx, key).is_some() {
            return None;
        }
        types::set_value(ctx, &TYPE, key, StoredTasks(TaskList::new()), 0).ok()?;
        types::with_value(ctx, &TYPE, key, &mut run).flatten()
    });
    keys::select_db(ctx, prev);
    out
}
