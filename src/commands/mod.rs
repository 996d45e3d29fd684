//! Command handlers: parse arguments, call the executor, reply. Each `extern "C"` entry point
//! runs its body under `guard`, so a bug can never unwind into (and abort) the server.

mod tx;

use crate::server::{self, CtxPtr, StrPtr};
use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Name, handler, flags. Every command is registered with key positions 0,0,0 on purpose:
/// the keys of `TXU.QUEUE` are those of the queued command, which the module checks itself
/// (ACL, arity). If the server checked them, it could refuse a `TXU.QUEUE` without the module
/// ever seeing it, silently leaving a hole in the transaction. For the same reason
/// `TXU.QUEUE` has arity -1, is not `deny-oom`, and allows loading and stale replicas.
pub const COMMANDS: &[(&CStr, server::CmdFn, &CStr)] = &[
    (c"txu.begin", tx::begin, c"deny-script fast"),
    (
        c"txu.queue",
        tx::queue,
        c"deny-script fast allow-loading allow-stale",
    ),
    (c"txu.exec", tx::exec, c"deny-script may-replicate"),
    (
        c"txu.rollback",
        tx::rollback,
        c"deny-script may-replicate fast",
    ),
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
