//! Runs the deferred tasks that are due: each as its own atomic transaction with rollback, as
//! the user who submitted it, oldest first, within a time budget per tick.

use crate::cluster::SlotMap;
use crate::config;
use crate::error::{quote, TxuError};
use crate::exec::defer::{self, delay_ms, is_transient, TaskOutcome};
use crate::exec::{rollback, run_with, validate_at, Acl, Failed};
use crate::ffi::{acl, context, keys, CtxPtr, OwnedStr, Str};
use crate::stats::{add, STATS};
use crate::tasks::list::Task;
use crate::undo::log::UndoLog;

/// Flags for a task's commands run by the timer: replicate, errors as replies, script mode
/// (min-replicas, disk errors). No `C` (the timer has no client: the task's user is checked
/// explicitly) and no `M` (the OOM state it reads is stale in a timer: checked explicitly).
const TASK_FLAGS: &std::ffi::CStr = c"v!ES";

/// Runs the tasks that are due (at most `txu.tick-budget`). Returns how many ran.
pub fn run_due(ctx: CtxPtr, map: Option<&SlotMap>) -> usize {
    let budget = usize::try_from(config::tick_budget()).unwrap_or(1);
    let due = defer::due_tasks(context::now_ms(), budget, map);
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
                TaskOutcome::Done(task.id.clone())
            }
            Err(e) => {
                let cause = e.to_string();
                TaskOutcome::Fail {
                    id: task.id.clone(),
                    transient: is_transient(&cause),
                    now_ms: context::now_ms(),
                    // The failing TXU.EXEC was the first failure (its retry waited `delay_ms(1)`),
                    // so this run's failure is number `attempts + 2`.
                    delay_ms: delay_ms(task.attempts.saturating_add(2)),
                    dead_max: usize::try_from(config::dead_max()).unwrap_or(0),
                    error: cause,
                }
            }
        };
        if let Err(e) = defer::record(ctx, &op) {
            context::log_warning(ctx, &format!("txu: could not update task {}: {e}", task.id));
        }
    }
    ran
}

/// Most time one tick spends running tasks (besides `txu.tick-budget`).
const TICK_TIME_BUDGET: std::time::Duration = std::time::Duration::from_micros(800);

/// Runs one task as its own atomic transaction with rollback, as its submitter.
fn run_task(ctx: CtxPtr, task: &Task) -> Result<(), TxuError> {
    let prev = keys::select_db(ctx, task.db).ok_or(TxuError::NoDatabase(task.db))?;
    let r = run_task_in_db(ctx, task);
    keys::select_db(ctx, prev);
    r
}

fn run_task_in_db(ctx: CtxPtr, task: &Task) -> Result<(), TxuError> {
    let user = OwnedStr::create(&task.user).ok_or(TxuError::OutOfMemory)?;
    let mut queued = Vec::with_capacity(task.commands.len());
    for cmd in &task.commands {
        let owned = OwnedStr::create_all(cmd).ok_or(TxuError::OutOfMemory)?;
        let argv: Vec<Str<'_>> = owned.iter().map(OwnedStr::as_str).collect();
        // A retry never gets more permission than its submitter has now.
        if acl::allows_user(&user, &argv) != Some(true) {
            let why = acl::dryrun_reason_for(ctx, &user, &argv).unwrap_or_else(|| {
                format!(
                    "user '{}' may no longer run this command",
                    quote(&task.user)
                )
            });
            return Err(TxuError::NoPerm(why));
        }
        let q = validate_at(ctx, &argv, &queued, Acl::Skip)?;
        queued.push(q);
    }
    // The OOM state `M` would read is sampled at the last client command; read it now.
    if queued.iter().any(|q| q.denyoom) && context::used_memory_ratio() > 1.0 {
        return Err(TxuError::Oom);
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
            Err(TxuError::Reply(cause))
        }
    }
}
