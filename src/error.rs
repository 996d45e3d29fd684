//! The domain errors of txu and their one mapping to Redis error replies. Every reply starts
//! with an error code (`ERR`, `NOPERM`, `EXECABORT`, `ROLLBACK`, ...) that clients can match on.

use std::fmt;

pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
pub const CAPTURE_UNAVAILABLE: &str = "ERR TXU.BEGIN CAPTURE needs Redis >= 7.2 or Valkey (this server's command filters cannot tell clients apart); queue commands with TXU.QUEUE instead";
pub const NESTED: &str = "ERR TXU.BEGIN calls can not be nested";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxuError {
    /// `TXU.QUEUE`/`TXU.EXEC`/`TXU.ROLLBACK` without an open transaction.
    NoTransaction(&'static str),
    Nested,
    InMulti,
    CaptureUnavailable,
    Syntax(String),
    WrongArity(String),
    UnknownCommand(String),
    UnknownSubcommand {
        cmd: String,
        sub: String,
    },
    NotAllowed {
        cmd: String,
        reason: &'static str,
    },
    NoPerm(String),
    TooMany(i64),
    ExecAbort,
    /// Command `index` (1-based) failed; everything before it was undone.
    RolledBack {
        index: usize,
        cmd: String,
        cause: String,
    },
    /// As `RolledBack`, but a compensating write failed after every attempt: the rest of the
    /// undo log is stored, pending, and the timer finishes it.
    RollbackIncomplete {
        index: usize,
        cmd: String,
        cause: String,
        txid: String,
        first: String,
    },
    /// `TXU.ROLLBACK <txid>` of an id with no retained undo log.
    UnknownTransaction(String),
    /// `TXU.ROLLBACK <txid>` while that transaction's rollback is already pending.
    RollbackPending(String),
    /// `TXU.ROLLBACK <txid>` could not finish now; the rest is pending.
    RollbackPendingNow {
        txid: String,
        error: String,
    },
    /// `TXU.ROLLBACK <txid>`: a key changed after the transaction committed.
    Conflict {
        txid: String,
        key: String,
    },
    /// A `RETRY` transaction was put on the failed-task list.
    Deferred {
        txid: String,
        why: String,
    },
    /// A transaction without `RETRY` touches a key an earlier deferred task is waiting on.
    Pending {
        key: String,
        task: String,
    },
    /// `TXU.RETRY`/`TXU.DROP` of an id that is not on the task list.
    NoSuchTask(String),
    /// `TXU.QUEUE` while the server loads its dataset (the transaction is aborted).
    Loading,
    Internal(String),
}

/// Shortens and makes printable a piece of client input quoted in an error.
pub fn quote(bytes: &[u8]) -> String {
    const MAX: usize = 128;
    let mut s: String = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if bytes.len() > MAX {
        s.push_str("...");
    }
    s
}

impl fmt::Display for TxuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxuError::NoTransaction(cmd) => write!(f, "ERR {cmd} without TXU.BEGIN"),
            TxuError::Nested => f.write_str(NESTED),
            TxuError::InMulti => f.write_str("ERR TXU.BEGIN is not allowed inside MULTI"),
            TxuError::CaptureUnavailable => f.write_str(CAPTURE_UNAVAILABLE),
            TxuError::Syntax(what) => write!(f, "ERR syntax error: {what}"),
            TxuError::WrongArity(cmd) => write!(f, "ERR wrong number of arguments for '{cmd}' command"),
            TxuError::UnknownCommand(cmd) => write!(f, "ERR unknown command '{cmd}'"),
            TxuError::UnknownSubcommand { cmd, sub } => {
                write!(f, "ERR unknown subcommand '{sub}' of '{cmd}'")
            }
            TxuError::NotAllowed { cmd, reason } => {
                write!(f, "ERR '{cmd}' is not allowed in a TXU transaction: {reason}")
            }
            TxuError::NoPerm(msg) => write!(f, "NOPERM {msg}"),
            TxuError::TooMany(max) => write!(
                f,
                "ERR too many commands in this transaction (txu.max-queued is {max})"
            ),
            TxuError::ExecAbort => f.write_str(EXECABORT),
            TxuError::RolledBack { index, cmd, cause } => {
                write!(f, "ROLLBACK command {index} ({cmd}) failed: {cause}")
            }
            TxuError::RollbackIncomplete {
                index,
                cmd,
                cause,
                txid,
                first,
            } => write!(
                f,
                "ROLLBACK command {index} ({cmd}) failed: {cause}; rollback incomplete ({first}), pending as {txid} and retried by txu"
            ),
            TxuError::UnknownTransaction(id) => write!(
                f,
                "ERR no retained transaction '{id}' (unknown, expired or already rolled back)"
            ),
            TxuError::RollbackPending(id) => {
                write!(f, "ERR the rollback of transaction '{id}' is already pending")
            }
            TxuError::RollbackPendingNow { txid, error } => write!(
                f,
                "ERR rollback of '{txid}' incomplete ({error}); pending and retried by txu"
            ),
            TxuError::Conflict { txid, key } => write!(
                f,
                "CONFLICT key '{key}' changed after transaction {txid} committed; TXU.ROLLBACK {txid} FORCE undoes it anyway"
            ),
            TxuError::Deferred { txid, why } => write!(f, "DEFERRED {txid} {why}"),
            TxuError::Pending { key, task } => write!(
                f,
                "PENDING key '{key}' waits for deferred task {task}; nothing was applied (TXU.BEGIN RETRY queues behind it)"
            ),
            TxuError::NoSuchTask(id) => write!(f, "ERR no deferred task '{id}'"),
            TxuError::Loading => f.write_str("LOADING Redis is loading the dataset in memory"),
            TxuError::Internal(msg) => write!(f, "ERR txu internal error: {msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_codes() {
        assert_eq!(
            TxuError::NoTransaction("TXU.EXEC").to_string(),
            "ERR TXU.EXEC without TXU.BEGIN"
        );
        assert_eq!(TxuError::Nested.to_string(), NESTED);
        assert_eq!(TxuError::ExecAbort.to_string(), EXECABORT);
        assert_eq!(
            TxuError::RolledBack {
                index: 3,
                cmd: "INCR".into(),
                cause: "ERR value is not an integer or out of range".into()
            }
            .to_string(),
            "ROLLBACK command 3 (INCR) failed: ERR value is not an integer or out of range"
        );
        assert!(TxuError::NoPerm("x".into())
            .to_string()
            .starts_with("NOPERM "));
    }

    #[test]
    fn quote_is_bounded_and_printable() {
        assert_eq!(quote(b"a\r\n\0b"), "a???b");
        let long = vec![b'x'; 1000];
        assert_eq!(quote(&long).len(), 131);
        assert_eq!(quote(&[0xff, b'a']), "\u{fffd}a");
    }
}
