//! Command handlers: parse arguments, call the executor (or the runner's task list), reply.
//! Each handler is a plain `fn(ctx, args) -> c_int`; `command_entry!` gives it the C entry
//! point that runs it under `catch_unwind`, so a bug can never unwind into (and abort) the
//! server.
//!
//! - `tx`: TXU.BEGIN, TXU.QUEUE, TXU.EXEC, TXU.ROLLBACK
//! - `operator`: TXU.STATUS, TXU.TASKS, TXU.RETRY, TXU.DROP (the failed-task list)
//! - `internal`: TXU._LOAD, TXU._TASK, TXU._CONFLICT, TXU._UNLOG (replication and AOF only)
//! - `capture`: the command filter of `TXU.BEGIN CAPTURE`
//! - `faults`: TXU._FAULT (test builds only)
//! - `bench_loop`: TXU._LOOP, the bare call-API loop `make bench` measures against (builds
//!   with the `bench-loop` feature only)
//! - `options`: argument parsing of TXU.BEGIN

#[cfg(feature = "bench-loop")]
mod bench_loop;
pub mod capture;
#[cfg(feature = "test-faults")]
mod faults;
mod internal;
mod operator;
mod options;
pub mod tx;

use crate::ffi::register::{command_entry, Arg, ArgKind, CmdFn};
use std::ffi::CStr;

/// How a command is registered.
pub struct Spec {
    pub name: &'static CStr,
    pub handler: CmdFn,
    pub flags: &'static CStr,
    pub summary: &'static CStr,
    pub complexity: &'static CStr,
    /// For `COMMAND DOCS` (redis-cli's argument hints).
    pub args: &'static [Arg],
    /// The note of a key spec saying the keys come from the `getkeys-api` callback.
    pub keys: Option<&'static CStr>,
}

/// `TXU.RUN`'s and `TXU._CALL`'s key spec note.
const INNER_KEYS: Option<&CStr> = Some(
    c"the keys of each inner command, with its flags: COMMAND GETKEYS / GETKEYSANDFLAGS lists them",
);

/// `<argc> <command> [arg ...]`, one or more times (`TXU.RUN`).
const FRAMES: &[Arg] = &[Arg::new(c"frame", ArgKind::Block(FRAME)).multiple()];
const FRAME: &[Arg] = &[
    Arg::new(c"argc", ArgKind::Integer),
    Arg::new(c"command", ArgKind::String),
    Arg::new(c"arg", ArgKind::String).optional().multiple(),
];
const RUN_ARGS: &[Arg] = &[
    Arg::new(c"attempts", ArgKind::Integer)
        .with_token(c"RETRY")
        .optional(),
    Arg::new(c"ms", ArgKind::Integer)
        .with_token(c"RETAIN")
        .optional(),
    Arg::new(c"frames", ArgKind::Block(FRAMES)),
];
const BEGIN_ARGS: &[Arg] = &[
    Arg::new(c"retry", ArgKind::Block(RETRY)).optional(),
    Arg::new(c"ms", ArgKind::Integer)
        .with_token(c"RETAIN")
        .optional(),
    Arg::token(c"CAPTURE").optional(),
];
const RETRY: &[Arg] = &[
    Arg::token(c"RETRY"),
    Arg::new(c"attempts", ArgKind::Integer).optional(),
];
const QUEUE_ARGS: &[Arg] = &[
    Arg::new(c"command", ArgKind::String),
    Arg::new(c"arg", ArgKind::String).optional().multiple(),
];
const CHECK_ARGS: &[Arg] = &[
    Arg::new(c"k", ArgKind::Integer),
    Arg::new(c"op", ArgKind::OneOf(CHECK_OPS)),
    Arg::new(c"value", ArgKind::String).optional(),
];
const CHECK_OPS: &[Arg] = &[
    Arg::token(c"EQ"),
    Arg::token(c"NE"),
    Arg::token(c"LT"),
    Arg::token(c"LE"),
    Arg::token(c"GT"),
    Arg::token(c"GE"),
    Arg::token(c"NIL"),
    Arg::token(c"NOTNIL"),
];
const ROLLBACK_ARGS: &[Arg] = &[Arg::new(c"committed", ArgKind::Block(COMMITTED)).optional()];
const COMMITTED: &[Arg] = &[
    Arg::new(c"txid", ArgKind::String),
    Arg::token(c"FORCE").optional(),
];
const ID_ARG: &[Arg] = &[Arg::new(c"id", ArgKind::String)];
/// `<id>`, or `ALL|PENDING|DEAD [MATCH <pattern>]` (`TXU.RETRY`, `TXU.DROP`).
const STEER_ARGS: &[Arg] = &[Arg::new(c"target", ArgKind::OneOf(STEER_TARGETS))];
const STEER_TARGETS: &[Arg] = &[
    Arg::new(c"id", ArgKind::String),
    Arg::new(c"tasks", ArgKind::Block(BULK)),
];
const BULK: &[Arg] = &[
    Arg::new(c"which", ArgKind::OneOf(WHICH)),
    Arg::new(c"pattern", ArgKind::String)
        .with_token(c"MATCH")
        .optional(),
];
const WHICH: &[Arg] = &[
    Arg::token(c"ALL"),
    Arg::token(c"PENDING"),
    Arg::token(c"DEAD"),
];
const TASKS_ARGS: &[Arg] = &[
    Arg::new(c"state", ArgKind::OneOf(STATES)).optional(),
    Arg::new(c"cursor", ArgKind::Integer)
        .with_token(c"CURSOR")
        .optional(),
    Arg::new(c"count", ArgKind::Integer)
        .with_token(c"COUNT")
        .optional(),
    Arg::new(c"pattern", ArgKind::String)
        .with_token(c"MATCH")
        .optional(),
];
const STATES: &[Arg] = &[Arg::token(c"PENDING"), Arg::token(c"DEAD")];

/// `TXU.RETRY` and `TXU.DROP` only act on txu's task list, and must work during the very
/// faults that fill it (`min-replicas-to-write` unmet, a failing disk, over `maxmemory`): they
/// are not `write` (the server would refuse them then) but `may-replicate` (held back by
/// `CLIENT PAUSE WRITE`; their change reaches replicas and the AOF as `TXU._TASK`), and refuse
/// themselves on a read-only replica.
///
/// `TXU.RUN` declares the keys of every command it carries (`getkeys-api`): cluster clients
/// route it by them, the server answers `MOVED`/`CROSSSLOT` and checks the caller's key
/// permissions before txu runs anything. Every other command is registered with key
/// positions 0,0,0 on purpose: the keys of `TXU.QUEUE` are those of the queued command, which
/// the module checks itself (ACL, arity). If the server checked them, it could refuse a
/// `TXU.QUEUE` without the module ever seeing it, silently leaving a hole in the transaction.
/// For the same reason `TXU.QUEUE` has arity -1, is not `deny-oom`, and allows loading and
/// stale replicas. `TXU.EXEC` and `TXU.RUN` are `may-replicate` so that `CLIENT PAUSE WRITE`
/// holds them back, and not `write`/`deny-oom`: txu applies those checks per command, so a
/// `RETRY` transaction can be deferred instead of refused.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: c"txu.run",
        handler: command_entry!(tx::run),
        flags: c"getkeys-api deny-script may-replicate",
        summary: c"Runs a whole transaction in one command; undoes all of it if one command fails",
        complexity: c"The sum of the commands, plus O(size) per key written for its pre-image",
        args: RUN_ARGS,
        keys: INNER_KEYS,
    },
    Spec {
        name: c"txu.begin",
        handler: command_entry!(tx::begin),
        flags: c"deny-script fast",
        summary: c"Opens a transaction that rolls back on failure; replies its id",
        complexity: c"O(1)",
        args: BEGIN_ARGS,
        keys: None,
    },
    Spec {
        name: c"txu.queue",
        handler: command_entry!(tx::queue),
        flags: c"deny-script fast allow-loading allow-stale",
        summary: c"Validates a command and queues it in the open transaction",
        complexity: c"O(N) in the number of arguments",
        args: QUEUE_ARGS,
        keys: None,
    },
    Spec {
        name: c"txu.check",
        handler: command_entry!(tx::check),
        flags: c"deny-script fast allow-loading allow-stale",
        summary: c"Queues a guard on an earlier command's reply: a false check rolls back all",
        complexity: c"O(1)",
        args: CHECK_ARGS,
        keys: None,
    },
    Spec {
        name: c"txu.exec",
        handler: command_entry!(tx::exec),
        flags: c"deny-script may-replicate",
        summary: c"Runs the queued commands atomically; undoes all of them if one fails",
        complexity:
            c"The sum of the queued commands, plus O(size) per key written for its pre-image",
        args: &[],
        keys: None,
    },
    Spec {
        name: c"txu.rollback",
        handler: command_entry!(tx::rollback),
        flags: c"deny-script may-replicate fast",
        summary: c"Discards the open transaction",
        complexity: c"O(N) in the number of queued commands",
        args: ROLLBACK_ARGS,
        keys: None,
    },
    #[cfg(feature = "test-faults")]
    Spec {
        name: faults::FAULT_COMMAND,
        handler: command_entry!(faults::fault),
        flags: c"admin",
        summary: c"Test builds only: inject faults",
        complexity: c"O(1)",
        args: &[],
        keys: None,
    },
    #[cfg(feature = "bench-loop")]
    Spec {
        name: bench_loop::LOOP_COMMAND,
        handler: command_entry!(bench_loop::run_loop),
        flags: c"deny-script may-replicate",
        summary: c"Bench builds only: runs TXU.RUN's commands through the call API, nothing else",
        complexity: c"The sum of the commands",
        args: FRAMES,
        keys: None,
    },
    Spec {
        name: c"txu.status",
        handler: command_entry!(operator::status),
        flags: c"readonly fast",
        summary:
            c"State of a transaction or deferred task: pending, done, dead, retained or unknown",
        complexity: c"O(1)",
        args: ID_ARG,
        keys: None,
    },
    Spec {
        name: c"txu.tasks",
        handler: command_entry!(operator::list),
        flags: c"readonly",
        summary: c"Pages through the deferred tasks with a cursor: pending ones oldest first, then dead ones",
        complexity: c"O(COUNT) per call: at most 10*COUNT tasks examined",
        args: TASKS_ARGS,
        keys: None,
    },
    Spec {
        name: c"txu.retry",
        handler: command_entry!(operator::retry),
        flags: c"deny-script may-replicate",
        summary: c"Runs a dead or pending task at the next tick with its attempts reset",
        complexity: c"O(log N)",
        args: STEER_ARGS,
        keys: None,
    },
    Spec {
        name: c"txu.drop",
        handler: command_entry!(operator::drop),
        flags: c"deny-script may-replicate",
        summary: c"Forgets a deferred task",
        complexity: c"O(log N)",
        args: STEER_ARGS,
        keys: None,
    },
    Spec {
        name: internal::TASK_COMMAND,
        handler: command_entry!(internal::task),
        flags: c"write deny-script",
        summary: c"Internal: one change to the failed-task list (replication and AOF only)",
        complexity: c"O(log N)",
        args: &[],
        keys: None,
    },
    Spec {
        name: internal::CONFLICT_COMMAND,
        handler: command_entry!(internal::conflict),
        flags: c"write deny-script",
        summary: c"Internal: marks a retained transaction as conflicted (replication and AOF only)",
        complexity: c"O(1)",
        args: &[],
        keys: None,
    },
    Spec {
        name: internal::UNLOG_COMMAND,
        handler: command_entry!(internal::unlog),
        flags: c"write deny-script",
        summary: c"Internal: ends an undo log (replication and AOF only)",
        complexity: c"O(1)",
        args: &[],
        keys: None,
    },
    // Called by a transaction's script (the filter of `exec::script` routes its commands here):
    // not `deny-script`, not `write` (a read of a `no-writes` script passes through it too; the
    // command it runs is checked as a write, in script mode), keys declared per command.
    Spec {
        name: internal::CALL_COMMAND,
        handler: command_entry!(internal::script_call),
        flags: c"getkeys-api",
        summary: c"Internal: one command of a script inside a transaction, with its pre-image",
        complexity: c"That of the command, plus O(size) per key written for its pre-image",
        args: QUEUE_ARGS,
        keys: INNER_KEYS,
    },
    Spec {
        name: internal::LOAD_COMMAND,
        handler: command_entry!(internal::load),
        flags: c"write deny-script",
        summary: c"Internal: stores a txu value (replication and AOF only)",
        complexity: c"O(N) in the size of the value",
        args: &[],
        keys: None,
    },
];
