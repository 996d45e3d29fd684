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
    /// A command a transaction's script called that txu refuses in a transaction.
    NotAllowedInScript {
        cmd: String,
        reason: &'static str,
    },
    NoPerm(String),
    TooMany(i64),
    ExecAbort,
    /// A `TXU.CHECK` that does not parse or names no earlier command.
    BadCheck(String),
    /// `TXU.RUN`: command `index` (1-based) did not validate; nothing ran.
    RunAbort {
        index: usize,
        cmd: String,
        cause: String,
    },
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
    /// Cluster: the slot is served by another node.
    Moved {
        slot: u16,
        addr: String,
    },
    /// Cluster: the slot is moving between nodes; the client retries when it has moved.
    TryAgain(u16),
    /// Cluster: a transaction's keys are in more than one slot.
    CrossSlot,
    /// Cluster: nobody serves the slot.
    ClusterDown(u16),
    /// A write, a `RETRY` or a `RETAIN` transaction on a read-only replica (the server's own
    /// text).
    ReadOnly,
    /// A `RETRY` transaction whose caller's ACL user the server cannot name: a deferred task
    /// must run as its submitter, so nothing runs.
    NoUser,
    /// An internal command (`TXU._LOAD`, `TXU._TASK`, `TXU._CONFLICT`) sent by a client.
    InternalOnly(&'static str),
    /// An internal command whose arguments do not parse (a damaged AOF, say).
    MalformedInternal(&'static str),
    /// A txu value that does not decode (wrong version, truncated, damaged).
    CorruptPayload,
    /// `TXU._LOAD` of a kind of value txu does not have.
    UnknownValueKind,
    /// A txu value sent to a key or database other than the one it records (an undo log keeps
    /// its own key and database, the task list lives at `txu:tasks` in database 0).
    MisplacedValue {
        key: String,
        db: i32,
    },
    /// A stored undo log that does not decode.
    CorruptUndoLog(String),
    /// txu could not store one of its values (the key is held by another type, say).
    CannotStore(&'static str),
    /// An error reply of a command txu ran, in the server's own words (code included).
    Reply(String),
    /// `RedisModule_Call` returned no reply at all (the OS error, if any).
    CallRefused(String),
    /// The server lacks an API txu needs here.
    MissingApi(&'static str),
    OutOfMemory,
    /// A deferred task's commands may not run while the server is over `maxmemory` (the
    /// timer reads the memory state itself: the server's own check is stale there).
    Oom,
    /// The database of a deferred task cannot be selected.
    NoDatabase(i32),
    /// Test builds only: a compensating write refused on purpose (`TXU._FAULT UNDO`).
    #[cfg(feature = "test-faults")]
    InjectedFault,
    /// A panic was caught in a command handler.
    Panic,
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
            TxuError::NotAllowedInScript { cmd, reason } => write!(
                f,
                "ERR '{cmd}' is not allowed in a script inside a TXU transaction: {reason}"
            ),
            TxuError::NoPerm(msg) => write!(f, "NOPERM {msg}"),
            TxuError::TooMany(max) => write!(
                f,
                "ERR too many commands in this transaction (txu.max-queued is {max})"
            ),
            TxuError::ExecAbort => f.write_str(EXECABORT),
            TxuError::BadCheck(why) => write!(f, "ERR TXU.CHECK {why}"),
            TxuError::RunAbort { index, cmd, cause } => write!(
                f,
                "EXECABORT Transaction discarded because of an error in command {index} ({cmd}): {cause}"
            ),
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
            TxuError::Moved { slot, addr } => write!(f, "MOVED {slot} {addr}"),
            TxuError::TryAgain(slot) => write!(
                f,
                "TRYAGAIN slot {slot} is moving between nodes; retry when it has moved"
            ),
            TxuError::CrossSlot => f.write_str("CROSSSLOT Keys in request don't hash to the same slot"),
            TxuError::ClusterDown(slot) => write!(f, "CLUSTERDOWN Hash slot {slot} not served"),
            TxuError::ReadOnly => {
                f.write_str("READONLY You can't write against a read only replica.")
            }
            TxuError::NoUser => f.write_str(
                "ERR TXU.BEGIN RETRY needs the caller's ACL user name, which the server does not give here; nothing was applied",
            ),
            TxuError::InternalOnly(cmd) => write!(f, "ERR {cmd} is internal to txu"),
            TxuError::MalformedInternal(cmd) => write!(f, "ERR malformed {cmd}"),
            TxuError::CorruptPayload => f.write_str("ERR corrupt txu payload"),
            TxuError::UnknownValueKind => f.write_str("ERR unknown txu value kind"),
            TxuError::MisplacedValue { key, db } => write!(
                f,
                "ERR this txu value belongs under another key than '{key}' in database {db}"
            ),
            TxuError::CorruptUndoLog(e) => write!(f, "ERR cannot read the undo log: {e}"),
            TxuError::CannotStore(what) => write!(f, "ERR cannot store {what}"),
            TxuError::Reply(text) => f.write_str(text),
            TxuError::CallRefused(why) => write!(f, "ERR call refused by the server ({why})"),
            TxuError::MissingApi(name) => write!(f, "ERR {name} missing"),
            TxuError::OutOfMemory => f.write_str("ERR out of memory"),
            TxuError::Oom => {
                f.write_str("OOM command not allowed when used memory > 'maxmemory'.")
            }
            TxuError::NoDatabase(db) => write!(f, "ERR cannot select database {db}"),
            #[cfg(feature = "test-faults")]
            TxuError::InjectedFault => {
                f.write_str("ERR txu test fault: compensating write refused")
            }
            TxuError::Panic => f.write_str("ERR txu internal error"),
            TxuError::Internal(msg) => write!(f, "ERR txu internal error: {msg}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error a client can see, with its exact text: the one place a wording change
    /// shows up.
    #[test]
    fn every_error_text() {
        let s = |x: &str| x.to_string();
        let cases: Vec<(TxuError, &str)> = vec![
            (TxuError::NoTransaction("TXU.EXEC"), "ERR TXU.EXEC without TXU.BEGIN"),
            (TxuError::Nested, NESTED),
            (TxuError::InMulti, "ERR TXU.BEGIN is not allowed inside MULTI"),
            (TxuError::CaptureUnavailable, CAPTURE_UNAVAILABLE),
            (TxuError::Syntax(s("RETAIN needs ms")), "ERR syntax error: RETAIN needs ms"),
            (
                TxuError::WrongArity(s("txu.exec")),
                "ERR wrong number of arguments for 'txu.exec' command",
            ),
            (TxuError::UnknownCommand(s("foo")), "ERR unknown command 'foo'"),
            (
                TxuError::UnknownSubcommand {
                    cmd: s("CONFIG"),
                    sub: s("x"),
                },
                "ERR unknown subcommand 'x' of 'CONFIG'",
            ),
            (
                TxuError::NotAllowed {
                    cmd: s("WATCH"),
                    reason: "no",
                },
                "ERR 'WATCH' is not allowed in a TXU transaction: no",
            ),
            (
                TxuError::NotAllowedInScript {
                    cmd: s("PUBLISH"),
                    reason: "no",
                },
                "ERR 'PUBLISH' is not allowed in a script inside a TXU transaction: no",
            ),
            (TxuError::NoPerm(s("why")), "NOPERM why"),
            (
                TxuError::TooMany(5),
                "ERR too many commands in this transaction (txu.max-queued is 5)",
            ),
            (TxuError::ExecAbort, EXECABORT),
            (TxuError::BadCheck(s("needs a value")), "ERR TXU.CHECK needs a value"),
            (
                TxuError::RunAbort {
                    index: 2,
                    cmd: s("GET"),
                    cause: s("ERR wrong number of arguments for 'get' command"),
                },
                "EXECABORT Transaction discarded because of an error in command 2 (GET): ERR wrong number of arguments for 'get' command",
            ),
            (
                TxuError::RolledBack {
                    index: 3,
                    cmd: s("INCR"),
                    cause: s("ERR value is not an integer or out of range"),
                },
                "ROLLBACK command 3 (INCR) failed: ERR value is not an integer or out of range",
            ),
            (
                TxuError::RollbackIncomplete {
                    index: 2,
                    cmd: s("SET"),
                    cause: s("ERR x"),
                    txid: s("1-1"),
                    first: s("k: ERR y"),
                },
                "ROLLBACK command 2 (SET) failed: ERR x; rollback incomplete (k: ERR y), pending as 1-1 and retried by txu",
            ),
            (
                TxuError::UnknownTransaction(s("1-1")),
                "ERR no retained transaction '1-1' (unknown, expired or already rolled back)",
            ),
            (
                TxuError::RollbackPending(s("1-1")),
                "ERR the rollback of transaction '1-1' is already pending",
            ),
            (
                TxuError::RollbackPendingNow {
                    txid: s("1-1"),
                    error: s("ERR y"),
                },
                "ERR rollback of '1-1' incomplete (ERR y); pending and retried by txu",
            ),
            (
                TxuError::Conflict {
                    txid: s("1-1"),
                    key: s("k"),
                },
                "CONFLICT key 'k' changed after transaction 1-1 committed; TXU.ROLLBACK 1-1 FORCE undoes it anyway",
            ),
            (
                TxuError::Deferred {
                    txid: s("1-1"),
                    why: s("OOM x"),
                },
                "DEFERRED 1-1 OOM x",
            ),
            (
                TxuError::Pending {
                    key: s("k"),
                    task: s("1-1"),
                },
                "PENDING key 'k' waits for deferred task 1-1; nothing was applied (TXU.BEGIN RETRY queues behind it)",
            ),
            (TxuError::NoSuchTask(s("1-1")), "ERR no deferred task '1-1'"),
            (TxuError::Loading, "LOADING Redis is loading the dataset in memory"),
            (
                TxuError::Moved {
                    slot: 12182,
                    addr: s("127.0.0.1:7002"),
                },
                "MOVED 12182 127.0.0.1:7002",
            ),
            (
                TxuError::TryAgain(7),
                "TRYAGAIN slot 7 is moving between nodes; retry when it has moved",
            ),
            (
                TxuError::CrossSlot,
                "CROSSSLOT Keys in request don't hash to the same slot",
            ),
            (TxuError::ClusterDown(7), "CLUSTERDOWN Hash slot 7 not served"),
            (
                TxuError::ReadOnly,
                "READONLY You can't write against a read only replica.",
            ),
            (
                TxuError::NoUser,
                "ERR TXU.BEGIN RETRY needs the caller's ACL user name, which the server does not give here; nothing was applied",
            ),
            (TxuError::InternalOnly("TXU._LOAD"), "ERR TXU._LOAD is internal to txu"),
            (TxuError::MalformedInternal("TXU._TASK"), "ERR malformed TXU._TASK"),
            (TxuError::CorruptPayload, "ERR corrupt txu payload"),
            (TxuError::UnknownValueKind, "ERR unknown txu value kind"),
            (
                TxuError::MisplacedValue {
                    key: s("victim"),
                    db: 2,
                },
                "ERR this txu value belongs under another key than 'victim' in database 2",
            ),
            (
                TxuError::CorruptUndoLog(s("truncated")),
                "ERR cannot read the undo log: truncated",
            ),
            (TxuError::CannotStore("txu value"), "ERR cannot store txu value"),
            (TxuError::Reply(s("WRONGTYPE x")), "WRONGTYPE x"),
            (
                TxuError::CallRefused(s("EINVAL")),
                "ERR call refused by the server (EINVAL)",
            ),
            (TxuError::MissingApi("RedisModule_Call"), "ERR RedisModule_Call missing"),
            (TxuError::OutOfMemory, "ERR out of memory"),
            (
                TxuError::Oom,
                "OOM command not allowed when used memory > 'maxmemory'.",
            ),
            (TxuError::NoDatabase(3), "ERR cannot select database 3"),
            (TxuError::Panic, "ERR txu internal error"),
            (TxuError::Internal(s("x")), "ERR txu internal error: x"),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text, "{e:?}");
            let code = text.split(' ').next().unwrap_or_default();
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{text:?} starts with an error code"
            );
        }
    }

    #[test]
    fn quote_is_bounded_and_printable() {
        assert_eq!(quote(b"a\r\n\0b"), "a???b");
        let long = vec![b'x'; 1000];
        assert_eq!(quote(&long).len(), 131);
        assert_eq!(quote(&[0xff, b'a']), "\u{fffd}a");
    }
}
