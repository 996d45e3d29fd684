//! The failed-task list: held by the module, persisted under one key, `txu:tasks` in database
//! 0, of type `txu-tasks`. Every change to it is one `TXU._TASK <op> ...` command, applied the
//! same way on the primary, on replicas (replication stream) and from the AOF, so they all
//! hold the same list; RDB and AOF rewrites store the whole list. Nothing a client does to the
//! key loses a task (see [`StoredTasks`]).

use super::keyname::{self, slot_of};
pub use super::transition::{Transition, TransitionKind};
use crate::cluster::{SlotMap, SlotState};
use crate::codec::DecodeError;
use crate::error::TxuError;
use crate::ffi::types::{self, ModuleValue, TypeSlot};
use crate::ffi::{keys, CtxPtr, OwnedStr};
use crate::tasks::list::{key_name, State, Task, TaskList};
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
    /// A handle on the module's list: all of it, or in cluster mode the tasks of one slot.
    Live(Option<u16>),
    Inert(Box<TaskList>),
    /// Decoded, not yet placed (see `settle`).
    Fresh(Box<TaskList>),
}

/// In cluster mode each slot's tasks are kept under a key of their own, in that slot, so they
/// move with the slot (`MIGRATE`) and no node holds a key of a slot it does not serve.
static CLUSTER: AtomicBool = AtomicBool::new(false);

pub fn set_cluster(on: bool) {
    CLUSTER.store(on, Ordering::Relaxed);
    if on {
        // Which slots hold tasks, kept with every change (the timer and every op ask).
        LIST.lock().set_grouping(task_slot);
    }
}

pub fn cluster() -> bool {
    CLUSTER.load(Ordering::Relaxed)
}

/// The slot a task belongs to: that of its keys (one slot per transaction in a cluster), or
/// of its id for a task without keys.
pub fn task_slot(t: &Task) -> u16 {
    t.keys
        .first()
        .map_or_else(|| slot_of(t.id.as_bytes()), |k| slot_of(key_name(k)))
}

/// The key that persists the tasks of `slot` (cluster mode), or the whole list.
pub fn key_for(slot: Option<u16>) -> Vec<u8> {
    match slot {
        None => KEY.to_vec(),
        Some(s) => format!("txu:tasks:{{{}}}", keyname::tag_for_slot(usize::from(s))).into_bytes(),
    }
}

/// Bytes a task holds.
fn task_size(t: &Task) -> usize {
    std::mem::size_of::<Task>()
        + t.id.len()
        + t.last_error.len()
        + t.commands.iter().flatten().map(Vec::len).sum::<usize>()
        + t.keys.iter().map(Vec::len).sum::<usize>()
}

/// What a handle persists.
fn encode_part(slot: Option<u16>) -> Vec<u8> {
    let l = LIST.lock();
    match slot {
        None => l.encode(),
        Some(s) => l.encode_where(|t| task_slot(t) == s),
    }
}

/// The slot all of `list`'s tasks belong to, if they share one.
fn common_slot(list: &TaskList) -> Option<u16> {
    let mut slots = list.all().map(task_slot);
    let first = slots.next()?;
    slots.all(|s| s == first).then_some(first)
}

impl ModuleValue for StoredTasks {
    const NAME: &'static CStr = c"txu-tasks";
    const ENCVER: c_int = 1;
    const AOF_COMMAND: &'static CStr = super::LOAD_COMMAND;
    const KIND: &'static CStr = c"tasks";

    fn encode(&self) -> Vec<u8> {
        match self {
            StoredTasks::Live(slot) => encode_part(*slot),
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

    /// The list lives at `txu:tasks` in database 0; in cluster mode each slot's tasks under
    /// that slot's key. An inert copy may be anywhere.
    fn belongs_at(&self, key: &[u8], db: i32) -> bool {
        let StoredTasks::Fresh(list) = self else {
            return true;
        };
        if db != DB {
            return false;
        }
        if !cluster() {
            return key == KEY;
        }
        let slot = slot_of(key);
        key == key_for(Some(slot)).as_slice() && list.all().all(|t| task_slot(t) == slot)
    }

    /// Only the dataset the server loads, txu's own `TXU._LOAD`, or a slot moving here
    /// (`RESTORE-ASKING`) brings tasks in. What a client restores over the list's key never
    /// changes the tasks: it becomes a handle on the module's list (its content dropped).
    fn settle(self, authoritative: bool) -> Self {
        let StoredTasks::Fresh(list) = self else {
            return self;
        };
        let authoritative = authoritative
            || super::migration::current() == super::migration::Command::RestoreAsking;
        if !cluster() {
            if authoritative {
                install(*list);
            }
            SAVED.store(true, Ordering::Relaxed);
            return StoredTasks::Live(None);
        }
        match common_slot(&list) {
            Some(slot) => {
                if authoritative {
                    let mut l = LIST.lock();
                    l.absorb(*list);
                    publish(&l);
                }
                StoredTasks::Live(Some(slot))
            }
            None => StoredTasks::Inert(list),
        }
    }

    fn digest_bytes(&self) -> Vec<u8> {
        match self {
            StoredTasks::Live(slot) => encode_part(*slot),
            StoredTasks::Inert(l) | StoredTasks::Fresh(l) => l.encode(),
        }
    }

    /// A live handle away from its key (renamed, moved) is written as an inert copy.
    fn encode_at(&self, key: &[u8], db: Option<i32>) -> Vec<u8> {
        match self {
            StoredTasks::Live(slot) => {
                let home = key == key_for(*slot).as_slice() && db.is_none_or(|d| d == DB);
                let bytes = encode_part(*slot);
                if home {
                    bytes
                } else {
                    super::inert_payload(bytes)
                }
            }
            _ => self.encode(),
        }
    }

    fn on_detach(&self, _addr: usize) {
        if matches!(self, StoredTasks::Live(_)) {
            SAVED.store(false, Ordering::Relaxed);
        }
    }

    fn mem_usage(&self) -> usize {
        match self {
            StoredTasks::Live(None) => LIST.lock().all().map(task_size).sum(),
            StoredTasks::Live(Some(s)) => LIST
                .lock()
                .all()
                .filter(|t| task_slot(t) == *s)
                .map(task_size)
                .sum(),
            StoredTasks::Inert(l) | StoredTasks::Fresh(l) => l.all().map(task_size).sum(),
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
    /// Cluster: every task of a slot another node now serves is dropped here (they moved
    /// with the slot's key).
    DropSlot(u16),
}

impl Op {
    /// The arguments of `TXU._TASK` for this op.
    pub fn to_args(&self) -> Vec<Vec<u8>> {
        match self {
            Op::Push(t) => vec![b"PUSH".to_vec(), t.encode()],
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
            Op::DropSlot(slot) => vec![b"DROPSLOT".to_vec(), slot.to_string().into_bytes()],
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
            [op, t] if op.eq_ignore_ascii_case(b"push") => Task::decode(t).ok().map(Op::Push),
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
            [op, slot] if op.eq_ignore_ascii_case(b"dropslot") => num::<u16>(slot)
                .filter(|s| usize::from(*s) < crate::cluster::SLOTS)
                .map(Op::DropSlot),
            _ => None,
        }
    }

    /// Applies the op to a list.
    pub fn apply(&self, list: &mut TaskList) -> Option<Transition> {
        use TransitionKind as K;
        match self {
            Op::Push(t) => {
                let new = list.get(&t.id).is_none();
                list.push(t.clone());
                new.then(|| Transition::of(K::Deferred, &t.id, list))
            }
            Op::Done(id) => list
                .succeeded(id)
                .map(|_| Transition::of(K::Applied, id, list)),
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
                let kind = match list.failed(id, error.clone(), class, *now_ms, *delay_ms)? {
                    State::Pending => K::Retried,
                    State::Dead => K::Dead,
                };
                let mut t = Transition::of(kind, id, list);
                // A dead task may already have fallen off a full dead list.
                if t.last_error.is_empty() {
                    t.last_error.clone_from(error);
                }
                Some(t)
            }
            Op::Retry { id, now_ms } => list
                .retry(id, *now_ms)
                .then(|| Transition::of(K::Requeued, id, list)),
            Op::DropSlot(slot) => {
                let ids: Vec<String> = list
                    .all()
                    .filter(|t| task_slot(t) == *slot)
                    .map(|t| t.id.clone())
                    .collect();
                for id in ids {
                    list.drop_task(&id);
                }
                None
            }
            Op::Drop(id) => list
                .drop_task(id)
                .then(|| Transition::of(K::Dropped, id, list)),
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
fn install(mut list: TaskList) {
    if cluster() {
        list.set_grouping(task_slot);
    }
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

/// Whether the list holds any task, pending or dead (cheap: no lock).
pub fn holds_any() -> bool {
    PENDING.load(Ordering::Relaxed) != 0 || DEAD.load(Ordering::Relaxed) != 0
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
/// the AOF alike), and makes sure the key persisting the list (cluster: the op's slot) holds
/// it, or, for a slot left without tasks, is gone.
pub fn apply_here(ctx: CtxPtr, op: &Op) -> Result<Option<TransitionKind>, TxuError> {
    let slot = cluster().then(|| op_slot(op)).flatten();
    let change = with_list(|l| {
        let change = op.apply(l);
        publish(l);
        change
    });
    if let Some(t) = &change {
        crate::ffi::events::notify_module_event(ctx, t.kind.event(), t.id.as_bytes());
        super::transition::log(ctx, t);
    }
    if !cluster() {
        place_handle(ctx, None);
    } else if let Some(s) = slot {
        if with_list(|l| l.group_len(s) > 0) {
            place_handle(ctx, Some(s));
        } else {
            remove_handle(ctx, s);
        }
    }
    Ok(change.map(|t| t.kind))
}

/// The slot of the task `op` is about (before it is applied).
fn op_slot(op: &Op) -> Option<u16> {
    let id = match op {
        Op::Push(t) => return Some(task_slot(t)),
        Op::DropSlot(slot) => return Some(*slot),
        Op::Done(id) | Op::Drop(id) => id,
        Op::Fail { id, .. } | Op::Retry { id, .. } => id,
    };
    with_list(|l| l.get(id).map(|(t, _)| task_slot(t)))
}

/// Applies `op` here and propagates it as `TXU._TASK` to replicas and the AOF, in the same
/// place of the stream as `submit` would, without a call through the call API (the timer
/// records one op per task it runs: this halves the call-API round trips of a task run).
/// Primary side, from the timer.
pub fn apply_and_replicate(ctx: CtxPtr, op: &Op) -> Result<Option<TransitionKind>, TxuError> {
    let change = apply_here(ctx, op)?;
    let args = op.to_args();
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    if crate::ffi::call::replicate(ctx, TASK_COMMAND, &refs) {
        Ok(change)
    } else {
        Err(TxuError::Internal(
            "TXU._TASK could not be propagated".into(),
        ))
    }
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

/// Whether the key of `slot` (or of the whole list) holds a live handle for it, read in
/// database 0.
fn handle_in_place(ctx: CtxPtr, slot: Option<u16>) -> Option<bool> {
    let prev = keys::select_db(ctx, DB)?;
    let key = OwnedStr::create(&key_for(slot));
    let live = key.and_then(|k| {
        types::with_value(
            ctx,
            &TYPE,
            k.as_str(),
            |v: &mut StoredTasks| matches!(v, StoredTasks::Live(s) if *s == slot),
        )
    });
    keys::select_db(ctx, prev);
    Some(live.unwrap_or(false))
}

/// Puts a live handle under the key of `slot` (or of the whole list) on this server if
/// none is there and the name is free (`TXU._TASK` does it on every server alike, so it needs
/// no replication).
fn place_handle(ctx: CtxPtr, slot: Option<u16>) {
    if slot.is_none() && SAVED.load(Ordering::Relaxed) {
        return;
    }
    let Some(prev) = keys::select_db(ctx, DB) else {
        return;
    };
    if let Some(k) = OwnedStr::create(&key_for(slot)) {
        let free = keys::key_expiry(ctx, k.as_str()).is_none();
        if free && types::set_value(ctx, &TYPE, k.as_str(), StoredTasks::Live(slot), 0).is_ok() {
            SAVED.store(true, Ordering::Relaxed);
        }
    }
    keys::select_db(ctx, prev);
}

/// Deletes the key of a slot that has no tasks left (this server only, as `place_handle`).
fn remove_handle(ctx: CtxPtr, slot: u16) {
    let Some(prev) = keys::select_db(ctx, DB) else {
        return;
    };
    let key = key_for(Some(slot));
    if let Some(k) = OwnedStr::create(&key) {
        if types::with_value(ctx, &TYPE, k.as_str(), |_: &mut StoredTasks| ()).is_some() {
            let _ = crate::ffi::call::call_ok(ctx, c"DEL", c"vE", &[&key]);
        }
    }
    keys::select_db(ctx, prev);
}

/// Primary, from the timer: writes the list back under its key (cluster: each slot's tasks
/// under its slot's key) wherever the key does not hold a live handle — deleted, evicted,
/// expired, renamed, moved, swapped to another database, replaced by a `RESTORE` or a
/// client's write — with `TXU._LOAD`, replicated, replacing whatever is there. In a cluster,
/// the tasks of a slot another node now serves have moved with it: they are dropped here.
/// Slots on the move are left alone. Returns how many keys it wrote.
pub fn ensure_saved(ctx: CtxPtr, map: Option<&SlotMap>) -> Result<usize, TxuError> {
    let (cluster_map, slots): (Option<&SlotMap>, Vec<Option<u16>>) = match (cluster(), map) {
        (true, Some(m)) => {
            // The slots holding tasks, from the list's per-slot counts (not a walk over it).
            let slots: Vec<u16> = with_list(|l| l.groups().collect());
            (Some(m), slots.into_iter().map(Some).collect())
        }
        (true, None) => return Ok(0),
        (false, _) => {
            let empty = with_list(|l| l.pending_len() == 0 && l.dead_len() == 0);
            (None, if empty { Vec::new() } else { vec![None] })
        }
    };
    let mut written = 0;
    for slot in slots {
        if let (Some(m), Some(s)) = (cluster_map, slot) {
            match m.state(s) {
                SlotState::Mine => {}
                SlotState::Elsewhere(_) => {
                    // One op for the whole slot: dropping task by task would write the rest
                    // back under the slot's key, a key of a slot this node does not serve.
                    submit(ctx, &Op::DropSlot(s))?;
                    continue;
                }
                SlotState::Migrating | SlotState::Importing | SlotState::Unassigned => continue,
            }
        }
        if handle_in_place(ctx, slot) != Some(false) {
            continue;
        }
        let payload = encode_part(slot);
        let prev = keys::select_db(ctx, DB).ok_or(TxuError::NoDatabase(DB))?;
        let r = super::call_internal(
            ctx,
            super::LOAD_COMMAND,
            &[StoredTasks::KIND.to_bytes(), &key_for(slot), &payload, b"0"],
        );
        keys::select_db(ctx, prev);
        r?;
        written += 1;
    }
    Ok(written)
}
