//! What the operator commands (TXU.STATUS, TXU.TASKS, TXU.RETRY, TXU.DROP) ask of the
//! failed-task list and the retained undo logs.

use crate::error::{quote, TxuError};
use crate::ffi::{context, CtxPtr};
use crate::store::{tasklist, undolog};
use crate::tasks::list::{Status, Task};

/// What txu knows of an id.
pub enum State {
    /// A deferred task (pending, dead or done).
    Task(Status),
    /// A committed transaction whose undo log is retained.
    Retained,
    /// A transaction whose rollback is pending.
    RollbackPending,
    Unknown,
}

pub fn state(ctx: CtxPtr, id: &str) -> State {
    match tasklist::with_list(ctx, false, |l| l.status(id)) {
        Some(Status::Unknown) | None => match undolog::state_of(id) {
            Some(true) => State::RollbackPending,
            Some(false) => State::Retained,
            None => State::Unknown,
        },
        Some(st) => State::Task(st),
    }
}

/// A task as listed, with its state.
pub struct Listed {
    pub task: Task,
    pub dead: bool,
}

/// Up to `count` tasks, oldest first, pending before dead.
pub fn tasks(ctx: CtxPtr, pending: bool, dead: bool, count: usize) -> Vec<Listed> {
    tasklist::with_list(ctx, false, |l| {
        let p = l.pending().filter(|_| pending).map(|t| Listed {
            task: t.clone(),
            dead: false,
        });
        let d = l.dead().filter(|_| dead).map(|t| Listed {
            task: t.clone(),
            dead: true,
        });
        p.chain(d).take(count).collect()
    })
    .unwrap_or_default()
}

/// What an operator does to one task.
#[derive(Clone, Copy)]
pub enum Steer {
    /// Run at the next tick with its attempts reset.
    Retry,
    /// Forget it.
    Drop,
}

pub fn steer(ctx: CtxPtr, id: &str, how: Steer) -> Result<(), TxuError> {
    let known = tasklist::with_list(ctx, false, |l| l.contains(id)).unwrap_or(false);
    if !known {
        return Err(TxuError::NoSuchTask(quote(id.as_bytes())));
    }
    let id = id.to_string();
    let op = match how {
        Steer::Retry => tasklist::Op::Retry {
            id,
            now_ms: context::now_ms(),
        },
        Steer::Drop => tasklist::Op::Drop(id),
    };
    tasklist::submit(ctx, &op)
}
