//! Runs the deferred tasks that are due: each as its own atomic transaction with rollback, as
//! the user who submitted it, oldest first, within the tick's task and time budgets.

use crate::cluster::SlotMap;
use crate::config;
use crate::error::{quote, TxuError};
use crate::exec::defer::{self, delay_ms, is_transient, DueTask, TaskOutcome};
use crate::exec::{rollback, run_with, validate_at, Acl, Failed, Mode};
use crate::ffi::{acl, context, keys, CtxPtr, OwnedStr, Str};
use crate::stats::{add, STATS};
use crate::undo::log::UndoLog;

/// Flags for a task's commands run by the timer: replicate, errors as replies, script mode
/// (min-replicas, disk errors). No `C` (the timer has no client: the task's user is checked
/// explicitly) and no `M` (the OOM state it reads is stale in a timer: checked explicitly).
const TASK_FLAGS: &std::ffi::CStr = c"v!ES";

/// And for a task's script commands: without script mode (they are denied in scripts; the
/// script's own commands run with `TASK_FLAGS`).
const SCRIPT_TASK_FLAGS: &std::ffi::CStr = c"v!E";

/// What one slice of a tick did.
pub struct Ran {
    /// Tasks run.
    pub ran: usize,
    /// Stopped at the deadline with due tasks left (they run in a continuation slice).
    pub out_of_time: bool,
}

/// Due tasks are fetched this many at a time: a slice that runs out of time has cloned
/// little it does not run, and tasks that became heads meanwhile can run in the same slice.
const BATCH: usize = 16;

/// Runs the tasks that are due, oldest first: at most `left`, and none once `deadline` has
/// passed (checked on a monotonic clock before each task but the first, so a slice always
/// makes progress and overruns its deadline by at most one task).
pub fn run_due(
    ctx: CtxPtr,
    map: Option<&SlotMap>,
    left: usize,
    deadline: std::time::Instant,
) -> Ran {
    let now = context::now_ms();
    let mut ran = 0;
    while ran < left {
        let due = defer::due_tasks(now, BATCH.min(left - ran), map);
        if due.is_empty() {
            break;
        }
        for task in &due {
            if ran > 0 && std::time::Instant::now() >= deadline {
                return Ran {
                    ran,
                    out_of_time: true,
                };
            }
            ran += 1;
            run_one(ctx, task);
        }
    }
    Ran {
        ran,
        out_of_time: false,
    }
}

/// Runs one due task and records its outcome (replicated).
fn run_one(ctx: CtxPtr, task: &DueTask) {
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
    let recorded = defer::record(ctx, &op);
    match recorded {
        Ok(Some(true)) => add(&STATS.retries_failed, 1),
        Ok(Some(false)) => add(&STATS.retries_died, 1),
        _ => {}
    }
    if let Err(e) = recorded {
        context::log_warning(ctx, &format!("txu: could not update task {}: {e}", task.id));
    }
}

/// Runs one task as its own atomic transaction with rollback, as its submitter.
fn run_task(ctx: CtxPtr, task: &DueTask) -> Result<(), TxuError> {
    let prev = keys::select_db(ctx, task.db).ok_or(TxuError::NoDatabase(task.db))?;
    let r = run_task_in_db(ctx, task);
    keys::select_db(ctx, prev);
    r
}

fn run_task_in_db(ctx: CtxPtr, task: &DueTask) -> Result<(), TxuError> {
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
    let mode = Mode {
        flags: TASK_FLAGS,
        checked_flags: TASK_FLAGS,
        script_flags: SCRIPT_TASK_FLAGS,
        whole_only: false,
        user: Some(&user),
    };
    match run_with(ctx, &queued, &mut undo, &mode) {
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
