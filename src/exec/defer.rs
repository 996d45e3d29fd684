//! Deferred transactions: a `TXU.BEGIN RETRY` transaction that fails for a transient reason is
//! rolled back, then kept on the failed-task list (in the database, see `store::tasks`) and run
//! again by the timer, oldest first, never overtaking an earlier task on the same key.

use super::txn::{Queued, Tx};
use super::{rollback, run_with, validate, Acl, Failed};
use crate::config;
use crate::error::{quote, TxuError};
use crate::server::{self, CtxPtr, OwnedStr, StrPtr};
use crate::stats::{add, STATS};
use crate::store::tasks::{self as store, Op};
use crate::tasks::backoff::{next_delay_ms, SplitMix64};
use crate::tasks::classify;
use crate::tasks::list::Task;
use crate::undo::log::UndoLog;
use parking_lot::Mutex;
use std::sync::LazyLock;

/// Flags for a task's commands run by the timer: replicate, errors as replies, script mode
/// (min-replicas, disk errors). No `C` (the timer has no client: the task's user is checked
/// explicitly) and no `M` (the OOM state it reads is stale in a timer: checked explicitly).
const TASK_FLAGS: &std::ffi::CStr = c"v!ES";

static RNG: LazyLock<Mutex<SplitMix64>> =
    LazyLock::new(|| Mutex::new(SplitMix64::from_clock(0x0074_7875)));

/// A key as the task list knows it: database and name (the same name in two databases is two
/// keys).
fn key_id(db: i32, key: &[u8]) -> Vec<u8> {
    let mut v = db.to_be_bytes().to_vec();
    v.extend_from_slice(key);
    v
}

fn key_name(id: &[u8]) -> &[u8] {
    id.get(4..).unwrap_or_default()
}

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
pub fn blocking_task(ctx: CtxPtr, db: i32, queued: &[Queued]) -> Option<(String, Vec<u8>)> {
    if !store::has_pending() {
        return None;
    }
    let keys = tx_keys(db, queued);
    store::with_list(ctx, false, |l| {
        l.blocking_key(&keys)
            .map(|(id, k)| (id.to_string(), key_name(k).to_vec()))
    })
    .flatten()
}

fn delay_ms(attempt: u32) -> u64 {
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
) -> Result<(), String> {
    let now = server::now_ms();
    let user = server::current_user(ctx)
        .map(|u| u.as_bytes().to_vec())
        .unwrap_or_else(|| b"default".to_vec());
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
    };
    store::submit(ctx, &Op::Push(task))?;
    add(&STATS.deferred, 1);
    Ok(())
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

/// Timer: runs the tasks that are due (at most `txu.tick-budget`). Returns how many ran.
pub fn run_due(ctx: CtxPtr) -> usize {
    if !store::has_pending() {
        return 0;
    }
    let now = server::now_ms();
    let budget = usize::try_from(config::tick_budget()).unwrap_or(1);
    let due: Vec<Task> = store::with_list(ctx, false, |l| {
        l.due(now, budget)
            .iter()
            .filter_map(|id| l.get(id).map(|(t, _)| t.clone()))
            .collect()
    })
    .unwrap_or_default();
    let started = std::time::Instant::now();
    let mut ran = 0;
    for task in &due {
        // Keep each tick short for the clients waiting behind it: what is left runs next tick.
        if started.elapsed() >= TICK_TIME_BUDGET {
            break;
        }
        ran += 1;
        add(&STATS.retries_run, 1);
        let op = match run_task(ctx, task) {
            Ok(()) => {
                add(&STATS.retries_succeeded, 1);
                Op::Done(task.id.clone())
            }
            Err(cause) => Op::Fail {
                id: task.id.clone(),
                transient: is_transient(&cause),
                now_ms: server::now_ms(),
                // The failing TXU.EXEC was the first failure (its retry waited `delay_ms(1)`),
                // so this run's failure is number `attempts + 2`.
                delay_ms: delay_ms(task.attempts.saturating_add(2)),
                dead_max: usize::try_from(config::dead_max()).unwrap_or(0),
                error: cause,
            },
        };
        if let Err(e) = store::submit(ctx, &op) {
            server::log_warning(ctx, &format!("txu: could not update task {}: {e}", task.id));
        }
    }
    ran
}

/// Most time one tick spends running tasks (besides `txu.tick-budget`).
const TICK_TIME_BUDGET: std::time::Duration = std::time::Duration::from_micros(800);

/// Runs one task as its own atomic transaction with rollback, as its submitter.
fn run_task(ctx: CtxPtr, task: &Task) -> Result<(), String> {
    let prev = server::select_db(ctx, task.db).ok_or("ERR cannot select the task's database")?;
    let r = run_task_in_db(ctx, task);
    server::select_db(ctx, prev);
    r
}

fn run_task_in_db(ctx: CtxPtr, task: &Task) -> Result<(), String> {
    let user = OwnedStr::create(&task.user).ok_or("ERR out of memory")?;
    let mut queued = Vec::with_capacity(task.commands.len());
    for cmd in &task.commands {
        let argv: Vec<OwnedStr> = cmd
            .iter()
            .map(|a| OwnedStr::create(a).ok_or("ERR out of memory"))
            .collect::<Result<_, _>>()?;
        let ptrs: Vec<StrPtr> = argv.iter().map(OwnedStr::as_ptr).collect();
        // A retry never gets more permission than its submitter has now.
        if server::acl_allows_user(&user, &ptrs) != Some(true) {
            let why = server::acl_dryrun_reason_for(ctx, &user, &ptrs).unwrap_or_else(|| {
                format!(
                    "user '{}' may no longer run this command",
                    quote(&task.user)
                )
            });
            return Err(format!("NOPERM {why}"));
        }
        queued.push(validate(ctx, &ptrs, Acl::Skip).map_err(|e| e.to_string())?);
    }
    // The OOM state `M` would read is sampled at the last client command; read it now.
    if queued.iter().any(|q| q.denyoom) && server::used_memory_ratio() > 1.0 {
        return Err("OOM command not allowed when used memory > 'maxmemory'.".into());
    }
    let mut undo = UndoLog::new();
    match run_with(ctx, &queued, &mut undo, TASK_FLAGS, false) {
        Ok(_) => Ok(()),
        Err(Failed { index, cmd, cause }) => {
            let meta = rollback::TxMeta {
                txid: &task.id,
                db: task.db,
            };
            let _ = rollback::after_failure(ctx, meta, &undo, index, cmd, cause.clone());
            Err(cause)
        }
    }
}
