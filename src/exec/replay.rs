//! The internal commands that carry txu's state to replicas and the AOF: `TXU._LOAD` (a whole
//! value), `TXU._TASK` (one change to the failed-task list), `TXU._CONFLICT` (a conflict mark
//! of an undo log), `TXU._UNLOG` (an undo log ends). Only txu itself, the replication link and AOF loading may run them.

use crate::error::TxuError;
use crate::ffi::{CtxPtr, Str};
use crate::store::{self, tasklist, undolog};

pub use super::conflict::CONFLICT_COMMAND;
pub use store::tasklist::TASK_COMMAND;
pub use store::{LOAD_COMMAND, UNLOG_COMMAND};

/// Whether an internal command may run now (see `store::internal_allowed`).
pub fn allowed(ctx: CtxPtr) -> bool {
    store::internal_allowed(ctx)
}

/// `TXU._LOAD <kind> <key> <payload> <expire-at-ms|0>` on this server.
pub fn load(
    ctx: CtxPtr,
    kind: &[u8],
    key: Str<'_>,
    payload: &[u8],
    expire_at_ms: i64,
) -> Result<(), TxuError> {
    store::apply_load(ctx, kind, key, payload, expire_at_ms)
}

/// `TXU._TASK <op> ...` on this server (`args` after the command name).
pub fn task(ctx: CtxPtr, args: &[&[u8]]) -> Result<(), TxuError> {
    let op = tasklist::Op::from_args(args).ok_or(TxuError::MalformedInternal("TXU._TASK"))?;
    tasklist::apply_here(ctx, &op)
}

/// `TXU._CONFLICT <txid> <key>`: the primary found that `key`, written by retained transaction
/// `txid`, changed afterwards.
pub fn conflict(txid: &str, key: &[u8]) {
    undolog::mark_conflict(txid, key);
}

/// `TXU._UNLOG <txid>`: the undo log of `txid` ends (rolled back, or retention over).
pub fn unlog(ctx: CtxPtr, txid: &str) {
    store::apply_unlog(ctx, txid);
}
