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
    tasklist::apply_here(ctx, &op).map(|_| ())
}

/// `TXU._CONFLICT <txid> <key>`: the primary found that `key`, written by retained transaction
/// `txid`, changed afterwards. A `txid` that is not a transaction id (`<ms>-<seq>`) is a
/// damaged command; a well-formed id txu does not hold is a no-op (the log may be gone).
pub fn conflict(txid: &[u8], key: &[u8]) -> Result<(), TxuError> {
    undolog::mark_conflict(txid_arg(txid, "TXU._CONFLICT")?, key);
    Ok(())
}

/// A transaction id argument of the internal command `cmd`, or a damaged command.
fn txid_arg<'a>(txid: &'a [u8], cmd: &'static str) -> Result<&'a str, TxuError> {
    std::str::from_utf8(txid)
        .ok()
        .filter(|t| is_txid(t))
        .ok_or(TxuError::MalformedInternal(cmd))
}

/// `<unix-ms>-<n>`, both decimal `u64` (see `exec::txn::next_id`).
fn is_txid(t: &str) -> bool {
    let number = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
    };
    t.split_once('-')
        .is_some_and(|(ms, seq)| number(ms) && number(seq))
}

/// `TXU._UNLOG <txid>`: the undo log of `txid` ends (rolled back, or retention over). A
/// `txid` that is not a transaction id is a damaged command.
pub fn unlog(ctx: CtxPtr, txid: &[u8]) -> Result<(), TxuError> {
    store::apply_unlog(ctx, txid_arg(txid, "TXU._UNLOG")?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txids_are_two_decimal_numbers() {
        assert!(is_txid("1796076833835-0"));
        assert!(is_txid("0-18446744073709551615"));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "a-1",
            "1-+2",
            " 1-2",
            "1-18446744073709551616",
        ] {
            assert!(!is_txid(bad), "{bad:?}");
        }
    }
}
