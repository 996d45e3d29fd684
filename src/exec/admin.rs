//! What the operator commands (TXU.STATUS, TXU.TASKS, TXU.RETRY, TXU.DROP) ask of the
//! failed-task list and the retained undo logs.

use crate::error::{quote, TxuError};
use crate::ffi::acl::{may_access_keys, KeyAccess};
use crate::ffi::{context, CtxPtr};
use crate::store::{tasklist, undolog};
use crate::tasks::glob;
use crate::tasks::list::key_name;
use crate::tasks::list::{Status, Task};

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
    /// A deferred task (pending, dead or done).
    Task(Status),
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
        Some((t, _)) => may_access_task(ctx, t, KeyAccess::Read).then(|| l.status(id)),
        // Done tasks keep no keys or commands: their state is all there is to see.
        None => Some(l.status(id)),
    });
    match task {
        None => Err(no_perm(id)),
        Some(st) if st != Status::Unknown => Ok(State::Task(st)),
        _ => {
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
    }
}

/// A task as listed, with its state.
pub struct Listed {
    pub task: Task,
    pub dead: bool,
}

/// Up to `count` tasks whose keys the caller may read, oldest first, pending before dead.
pub fn tasks(ctx: CtxPtr, pending: bool, dead: bool, count: usize) -> Vec<Listed> {
    tasklist::with_list(|l| {
        let p = l.pending().filter(|_| pending).map(|t| (t, false));
        let d = l.dead().filter(|_| dead).map(|t| (t, true));
        p.chain(d)
            .filter(|(t, _)| may_access_task(ctx, t, KeyAccess::Read))
            .take(count)
            .map(|(t, dead)| Listed {
                task: t.clone(),
                dead,
            })
            .collect()
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

/// Which tasks a bulk `TXU.RETRY` / `TXU.DROP` acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Pending and dead.
    All,
    Dead,
}

/// Retries or drops every task of `which` whose last error matches `pattern` (a glob; every
/// task without one) and whose keys the caller's ACL lets it write — the others are left
/// alone, as the single-id form would refuse them. Returns how many it touched.
pub fn steer_all(ctx: CtxPtr, which: Which, pattern: Option<&[u8]>, how: Steer) -> usize {
    let ids: Vec<String> = tasklist::with_list(|l| {
        let pending = l.pending().filter(|_| which == Which::All);
        pending
            .chain(l.dead())
            .filter(|t| pattern.is_none_or(|p| glob::matches(p, t.last_error.as_bytes())))
            .filter(|t| may_access_task(ctx, t, KeyAccess::Write))
            .map(|t| t.id.clone())
            .collect()
    });
    ids.into_iter()
        .filter(|id| tasklist::submit(ctx, &how.op(id)).is_ok())
        .count()
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
