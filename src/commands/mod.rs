//! Command handlers: parse arguments, call the executor, reply. Each `extern "C"` entry point
//! runs its body under `guard`, so a bug can never unwind into (and abort) the server.

pub mod capture;
pub mod internal;
mod options;
mod tasks;
pub mod timer;
mod tx;

use crate::server::{self, CtxPtr, StrPtr};
use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// How a command is registered.
pub struct Spec {
    pub name: &'static CStr,
    pub handler: server::CmdFn,
    pub flags: &'static CStr,
    pub summary: &'static CStr,
    pub complexity: &'static CStr,
}

/// Every command is registered with key positions 0,0,0 on purpose: the keys of `TXU.QUEUE`
/// are those of the queued command, which the module checks itself (ACL, arity). If the server
/// checked them, it could refuse a `TXU.QUEUE` without the module ever seeing it, silently
/// leaving a hole in the transaction. For the same reason `TXU.QUEUE` has arity -1, is not
/// `deny-oom`, and allows loading and stale replicas. `TXU.EXEC` is `may-replicate` so that
/// `CLIENT PAUSE WRITE` holds it back.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: c"txu.begin",
        handler: tx::begin,
        flags: c"deny-script fast",
        summary: c"Opens a transaction that rolls back on failure; replies its id",
        complexity: c"O(1)",
    },
    Spec {
        name: c"txu.queue",
        handler: tx::queue,
        flags: c"deny-script fast allow-loading allow-stale",
        summary: c"Validates a command and queues it in the open transaction",
        complexity: c"O(N) in the number of arguments",
    },
    Spec {
        name: c"txu.exec",
        handler: tx::exec,
        flags: c"deny-script may-replicate",
        summary: c"Runs the queued commands atomically; undoes all of them if one fails",
        complexity:
            c"The sum of the queued commands, plus O(size) per key written for its pre-image",
    },
    Spec {
        name: c"txu.rollback",
        handler: tx::rollback,
        flags: c"deny-script may-replicate fast",
        summary: c"Discards the open transaction",
        complexity: c"O(N) in the number of queued commands",
    },
    #[cfg(feature = "test-faults")]
    Spec {
        name: crate::exec::rollback::FAULT_COMMAND,
        handler: timer::fault,
        flags: c"admin",
        summary: c"Test builds only: inject faults",
        complexity: c"O(1)",
    },
    Spec {
        name: c"txu.status",
        handler: tasks::status,
        flags: c"readonly fast",
        summary:
            c"State of a transaction or deferred task: pending, done, dead, retained or unknown",
        complexity: c"O(1)",
    },
    Spec {
        name: c"txu.tasks",
        handler: tasks::list,
        flags: c"readonly",
        summary: c"Lists deferred tasks, oldest first",
        complexity: c"O(N) in the number of tasks returned",
    },
    Spec {
        name: c"txu.retry",
        handler: tasks::retry,
        flags: c"write deny-script",
        summary: c"Runs a dead or pending task at the next tick with its attempts reset",
        complexity: c"O(log N)",
    },
    Spec {
        name: c"txu.drop",
        handler: tasks::drop,
        flags: c"write deny-script",
        summary: c"Forgets a deferred task",
        complexity: c"O(log N)",
    },
    Spec {
        name: crate::store::tasks::TASK_COMMAND,
        handler: internal::task,
        flags: c"write deny-script",
        summary: c"Internal: one change to the failed-task list (replication and AOF only)",
        complexity: c"O(log N)",
    },
    Spec {
        name: crate::exec::conflict::CONFLICT_COMMAND,
        handler: internal::conflict,
        flags: c"write deny-script",
        summary: c"Internal: marks a retained transaction as conflicted (replication and AOF only)",
        complexity: c"O(1)",
    },
    Spec {
        name: crate::store::LOAD_COMMAND,
        handler: internal::load,
        flags: c"write deny-script",
        summary: c"Internal: stores a txu value (replication and AOF only)",
        complexity: c"O(N) in the size of the value",
    },
];

/// Runs a handler body, turning a panic into an error reply.
fn guard(
    ctx: CtxPtr,
    argv: *mut StrPtr,
    argc: c_int,
    body: fn(CtxPtr, &[StrPtr]) -> c_int,
) -> c_int {
    let args: &[StrPtr] = match usize::try_from(argc) {
        // SAFETY: Redis passes `argc` valid string pointers in `argv`.
        Ok(n) if !argv.is_null() => unsafe { std::slice::from_raw_parts(argv, n) },
        _ => &[],
    };
    match catch_unwind(AssertUnwindSafe(|| body(ctx, args))) {
        Ok(rc) => rc,
        Err(_) => {
            server::log_warning(
                ctx,
                "txu: internal error (panic caught in a command handler)",
            );
            server::reply_error(ctx, "ERR txu internal error")
        }
    }
}

/// Another module was loaded or unloaded: the command table may have changed.
///
/// # Safety
/// Called by Redis for module-change events.
pub unsafe extern "C" fn on_module_change(
    _ctx: CtxPtr,
    _eid: redis_module::raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut std::ffi::c_void,
) {
    let _ = catch_unwind(crate::exec::catalog::clear);
}

/// A database is being emptied (FLUSHDB/FLUSHALL, a full resync, DEBUG RELOAD).
///
/// # Safety
/// Called by Redis with the event data of a flush event.
pub unsafe extern "C" fn on_flush(
    _ctx: CtxPtr,
    _eid: redis_module::raw::RedisModuleEvent,
    subevent: u64,
    data: *mut std::ffi::c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if subevent != redis_module::raw::REDISMODULE_SUBEVENT_FLUSHDB_START {
            return;
        }
        let info = data.cast::<redis_module::raw::RedisModuleFlushInfo>();
        // SAFETY: Redis passes a RedisModuleFlushInfo for flush events.
        let Some(info) = (unsafe { info.as_ref() }) else {
            return;
        };
        crate::store::tasks::on_flush(info.dbnum);
        crate::store::undolog::on_flush(info.dbnum);
    }));
}

/// Frees the transaction of a client that disconnects.
///
/// # Safety
/// Called by Redis with the event data of a client-change event.
pub unsafe extern "C" fn on_client_change(
    _ctx: CtxPtr,
    _eid: redis_module::raw::RedisModuleEvent,
    subevent: u64,
    data: *mut std::ffi::c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if subevent != redis_module::raw::REDISMODULE_SUBEVENT_CLIENT_CHANGE_DISCONNECTED {
            return;
        }
        if let Some(id) = server::client_event_id(data) {
            tx::client_gone(id);
        }
    }));
}
