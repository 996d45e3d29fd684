//! Deferred transactions: a `TXU.BEGIN RETRY` transaction that fails for a transient reason is
//! rolled back, then kept on the failed-task list (in the database, see `store::tasks`) and run
//! again by the timer, oldest first, never overtaking an earlier task on the same key.

use super::txn::{Queued, Tx};
use crate::cluster::SlotMap;
use crate::config;
use crate::error::TxuError;
use crate::ffi::{acl, context, CtxPtr};
use crate::stats::{add, STATS};
use crate::store::tasklist::{self, Op};
use crate::tasks::backoff::{next_delay_ms, SplitMix64};
use crate::tasks::classify;
use crate::tasks::list::{key_id, key_name, Task};
use parking_lot::Mutex;
use std::sync::LazyLock;

static RNG: LazyLock<Mutex<SplitMix64>> =
    LazyLock::new(|| Mutex::new(SplitMix64::from_clock(0x0074_7875)));

fn tx_keys(db: i32, queued: &[Queued]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for q in queued {
        for &p in &q.keys {
            if let Some(k) = q.argv.get(p) {
                let id = key_id(db, k.as_bytes());
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
    out
}

/// The earliest pending task that touches one of the transaction's keys.
pub fn blocking_task(db: i32, queued: &[Queued]) -> Option<(String, Vec<u8>)> {
    if !tasklist::has_pending() {
        return None;
    }
    let keys = tx_keys(db, queued);
    tasklist::with_list(|l| {
        l.blocking_key(&keys)
            .map(|(id, k)| (id.to_string(), key_name(k).to_vec()))
    })
}

/// How long a task waits before run number `attempt` (1 is the first retry).
pub fn delay_ms(attempt: u32) -> u64 {
    let jitter = RNG.lock().next_u64();
    next_delay_ms(
        attempt.max(1),
        u64::try_from(config::backoff_base_ms()).unwrap_or(1),
        u64::try_from(config::backoff_max_ms()).unwrap_or(1),
        jitter,
    )
}

/// Appends the transaction to the failed-task list. `after_failure`: it has just failed (the
/// first retry waits for the backoff); otherwise it waits behind an earlier task.
pub fn defer(
    ctx: CtxPtr,
    tx: &Tx,
    db: i32,
    max: u32,
    why: &str,
    after_failure: bool,
) -> Result<(), TxuError> {
    let now = context::now_ms();
    // A task runs as the user who submitted it, never as anybody else.
    let user = submitter(ctx).ok_or(TxuError::NoUser)?;
    let next = if after_failure {
        now.saturating_add(i64::try_from(delay_ms(1)).unwrap_or(i64::MAX))
    } else {
        now
    };
    let task = Task {
        id: tx.id.clone(),
        db,
        user,
        commands: tx
            .queued
            .iter()
            .map(|q| q.argv.iter().map(|a| a.as_bytes().to_vec()).collect())
            .collect(),
        keys: tx_keys(db, &tx.queued),
        created_ms: now,
        attempts: 0,
        max_attempts: max,
        next_attempt_ms: next,
        last_error: why.to_string(),
        last_attempt_ms: after_failure.then_some(now),
    };
    tasklist::submit(ctx, &Op::Push(task))?;
    add(&STATS.deferred, 1);
    Ok(())
}

/// Test builds only: pretend the server cannot name the caller's user (`TXU._FAULT NOUSER`).
#[cfg(feature = "test-faults")]
static NO_USER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(feature = "test-faults")]
pub fn fault_no_user(on: bool) {
    NO_USER.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The name of the caller's ACL user, which a deferred task runs as.
pub fn submitter(ctx: CtxPtr) -> Option<Vec<u8>> {
    #[cfg(feature = "test-faults")]
    if NO_USER.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    acl::current_user(ctx).map(|u| u.as_bytes().to_vec())
}

/// The `TXU.EXEC` reply for a deferred transaction.
pub fn deferred(txid: &str, why: &str) -> TxuError {
    TxuError::Deferred {
        txid: txid.to_string(),
        why: why.to_string(),
    }
}

/// Whether a failure's cause defers a `RETRY` transaction.
pub fn is_transient(cause: &str) -> bool {
    classify(cause.as_bytes()).is_transient()
}

/// What happened to a task the timer ran (a `TXU._TASK` op).
pub type TaskOutcome = Op;

/// Whether any task is pending (an atomic load).
pub fn has_pending() -> bool {
    tasklist::has_pending()
}

/// Whether the task list holds any task, pending or dead (atomic loads).
pub fn holds_tasks() -> bool {
    tasklist::holds_any()
}

/// Up to `budget` pending tasks due at `now`, oldest first; in a cluster only those of slots
/// this node serves and is not moving (`map`).
pub fn due_tasks(now: i64, budget: usize, map: Option<&SlotMap>) -> Vec<DueTask> {
    if !tasklist::has_pending() {
        return Vec::new();
    }
    tasklist::with_list(|l| {
        l.due_tasks(now, budget)
            .into_iter()
            .filter(|t| map.is_none_or(|m| m.state(tasklist::task_slot(t)).is_stably_mine()))
            .map(DueTask::of)
            .collect()
    })
}

/// What running a task needs of it (a copy: the list is not locked while it runs).
pub struct DueTask {
    pub id: String,
    pub db: i32,
    pub user: Vec<u8>,
    pub commands: Vec<Vec<Vec<u8>>>,
    pub attempts: u32,
}

impl DueTask {
    fn of(t: &Task) -> DueTask {
        DueTask {
            id: t.id.clone(),
            db: t.db,
            user: t.user.clone(),
            commands: t.commands.clone(),
            attempts: t.attempts,
        }
    }
}

/// Runs `f` (the timer running due tasks) with the log lines of the tasks' transitions
/// written in batches (see `store::transition`).
pub fn batched_log<R>(ctx: CtxPtr, f: impl FnOnce() -> R) -> R {
    crate::store::transition::batch(ctx, f)
}

/// Records what happened to a task the timer ran, replicated.
/// Applies and replicates a run's outcome; says whether a failed run left the task pending
/// (`Some(true)`) or dead (`Some(false)`).
pub fn record(ctx: CtxPtr, outcome: &TaskOutcome) -> Result<Option<bool>, TxuError> {
    use tasklist::TransitionKind as K;
    Ok(match tasklist::apply_and_replicate(ctx, outcome)? {
        Some(K::Retried) => Some(true),
        Some(K::Dead) => Some(false),
        _ => None,
    })
}

/// Primary, from the timer: writes the task list back under its key if the key lost it (see
/// `store::tasklist::ensure_saved`), and says so in the log.
pub fn keep_list_saved(ctx: CtxPtr, map: Option<&SlotMap>) {
    match tasklist::ensure_saved(ctx, map) {
        Ok(0) => {}
        Ok(n) => {
            add(&STATS.task_list_restored, n as u64);
            context::log_warning(
            ctx,
            "txu: the key txu:tasks no longer held the failed-task list (deleted, evicted, renamed, moved or overwritten); wrote the list back from the module",
        )
        }
        Err(e) => context::log_warning(ctx, &format!("txu: could not write txu:tasks back: {e}")),
    }
}
