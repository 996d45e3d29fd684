//! What the operator commands (TXU.STATUS, TXU.TASKS, TXU.RETRY, TXU.DROP) ask of the
//! failed-task list and the retained undo logs.

use crate::error::{quote, TxuError};
use crate::ffi::acl::{may_access_keys, KeyAccess};
use crate::ffi::{context, CtxPtr};
use crate::store::{tasklist, transition, undolog};
use crate::tasks::glob;
use crate::tasks::list::{self, key_name, Listing, Task};

/// Whether the caller's ACL lets it `access` every key of `task`.
fn may_access_task(ctx: CtxPtr, task: &Task, access: KeyAccess) -> bool {
    let names: Vec<&[u8]> = task.keys.iter().map(|k| key_name(k)).collect();
    may_access_keys(ctx, &names, access)
}

/// The error for an id whose keys the caller's ACL does not cover.
fn no_perm(id: &str) -> TxuError {
    TxuError::NoPerm(format!(
        "No permissions to access a key of transaction '{}'",
        quote(id.as_bytes())
    ))
}

/// Whether the caller's ACL lets it `access` every key the retained transaction `txid`
/// wrote (`true` for an id txu holds no log for).
pub fn may_access_log(ctx: CtxPtr, txid: &str, access: KeyAccess) -> bool {
    undolog::keys_of(txid).is_none_or(|keys| {
        let names: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        may_access_keys(ctx, &names, access)
    })
}

/// What txu knows of an id.
pub enum State {
    /// A deferred task on the pending or dead list.
    Listed(Listed),
    /// A deferred task that succeeded (among the last `DONE_MAX`).
    Done,
    /// A committed transaction whose undo log is retained.
    Retained,
    /// A transaction whose rollback is pending: attempts so far, the last error, and the keys
    /// other clients wrote since (the rollback leaves them alone).
    RollbackPending {
        attempts: u32,
        last_error: String,
        skipped: Vec<Vec<u8>>,
    },
    Unknown,
}

/// What txu knows of `id`, if the caller's ACL may read every key it touches; `NOPERM`
/// otherwise.
pub fn state(ctx: CtxPtr, id: &str) -> Result<State, TxuError> {
    // `None`: a task the caller may not see.
    let task = tasklist::with_list(|l| match l.get(id) {
        Some((t, st)) => may_access_task(ctx, t, KeyAccess::Read).then(|| {
            State::Listed(Listed {
                task: t.clone(),
                dead: st == list::State::Dead,
            })
        }),
        // Done tasks keep no keys or commands: their state is all there is to see.
        None => Some(if l.is_done(id) {
            State::Done
        } else {
            State::Unknown
        }),
    });
    match task {
        None => Err(no_perm(id)),
        Some(State::Unknown) => {
            if !may_access_log(ctx, id, KeyAccess::Read) {
                return Err(no_perm(id));
            }
            Ok(
                match undolog::get(id).filter(|l| !l.is_over(context::now_ms())) {
                    Some(log) => match log.pending {
                        Some(p) => State::RollbackPending {
                            attempts: p.attempts,
                            last_error: p.last_error,
                            skipped: p.skipped,
                        },
                        None => State::Retained,
                    },
                    None => State::Unknown,
                },
            )
        }
        Some(st) => Ok(st),
    }
}

/// A task as `TXU.TASKS` and `TXU.STATUS` show it.
pub struct Listed {
    pub task: Task,
    pub dead: bool,
}

/// What `TXU.TASKS` asks for.
pub struct Query<'a> {
    pub which: Listing,
    pub cursor: u64,
    pub count: usize,
    /// A glob over the last error.
    pub pattern: Option<&'a [u8]>,
}

/// How many tasks one `TXU.TASKS` call examines at most, per task it may return: a listing
/// whose pattern or ACL skips most tasks pages on instead of walking the whole list at once.
pub const EXAMINE_PER_COUNT: usize = 10;

/// One page of the tasks `q` selects and the caller may read, and the cursor to go on with.
pub fn tasks(ctx: CtxPtr, q: &Query<'_>) -> (u64, Vec<Listed>) {
    tasklist::with_list(|l| {
        let examine = q.count.saturating_mul(EXAMINE_PER_COUNT);
        let page = l.page(q.which, q.cursor, q.count, examine, |t| {
            q.pattern
                .is_none_or(|p| glob::matches(p, t.last_error.as_bytes()))
                && may_access_task(ctx, t, KeyAccess::Read)
        });
        let tasks = page
            .tasks
            .into_iter()
            .map(|(t, st)| Listed {
                task: t.clone(),
                dead: st == list::State::Dead,
            })
            .collect();
        (page.next, tasks)
    })
}

/// What an operator does to one task.
#[derive(Clone, Copy)]
pub enum Steer {
    /// Run at the next tick with its attempts reset.
    Retry,
    /// Forget it.
    Drop,
}

/// Retries or drops every task of `which` whose last error matches `pattern` (a glob; every
/// task without one) and whose keys the caller's ACL lets it write — the others are left
/// alone, as the single-id form would refuse them. Returns how many it touched.
pub fn steer_all(ctx: CtxPtr, which: Listing, pattern: Option<&[u8]>, how: Steer) -> usize {
    let ids: Vec<String> = tasklist::with_list(|l| {
        let pending = l.pending().filter(|_| which.pending);
        pending
            .chain(l.dead().filter(|_| which.dead))
            .filter(|t| pattern.is_none_or(|p| glob::matches(p, t.last_error.as_bytes())))
            .filter(|t| may_access_task(ctx, t, KeyAccess::Write))
            .map(|t| t.id.clone())
            .collect()
    });
    // One log line per task would open and close the server's log file as many times.
    transition::batch(ctx, || {
        ids.into_iter()
            .filter(|id| tasklist::submit(ctx, &how.op(id)).is_ok())
            .count()
    })
}

impl Steer {
    /// The task-list change that does it to task `id`.
    fn op(self, id: &str) -> tasklist::Op {
        let id = id.to_string();
        match self {
            Steer::Retry => tasklist::Op::Retry {
                id,
                now_ms: context::now_ms(),
            },
            Steer::Drop => tasklist::Op::Drop(id),
        }
    }
}

/// Retries or drops task `id`; the caller's ACL must let it write every key of the task.
pub fn steer(ctx: CtxPtr, id: &str, how: Steer) -> Result<(), TxuError> {
    let allowed = tasklist::with_list(|l| {
        l.get(id)
            .map(|(t, _)| may_access_task(ctx, t, KeyAccess::Write))
    });
    match allowed {
        None => return Err(TxuError::NoSuchTask(quote(id.as_bytes()))),
        Some(false) => return Err(no_perm(id)),
        Some(true) => {}
    }
    tasklist::submit(ctx, &how.op(id))
}
