//! `TXU._LOAD`: writes a txu value (undo log, task list) under a key. Only txu itself, the
//! replication link and AOF loading may call it; it is how those values reach replicas and
//! the AOF byte for byte.

use super::guard;
use crate::server::{self, CtxPtr, StrPtr};
use crate::store::{self, tasks, undolog};
use std::ffi::c_int;

/// `TXU._LOAD <kind> <key> <payload> <expire-at-ms|0>`
pub unsafe extern "C" fn load(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, load_impl)
}

fn load_impl(ctx: CtxPtr, argv: &[StrPtr]) -> c_int {
    if !store::internal_allowed(ctx) {
        return server::reply_error(ctx, "ERR TXU._LOAD is internal to txu");
    }
    let [_, kind, key, payload, exp] = argv else {
        return server::reply_error(ctx, "ERR wrong number of arguments for 'txu._load' command");
    };
    let expire_at_ms = std::str::from_utf8(server::str_bytes(*exp))
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    let r = match server::str_bytes(*kind) {
        b"undo" => store::apply_load::<undolog::StoredLog>(
            ctx,
            &undolog::TYPE,
            *key,
            server::str_bytes(*payload),
            expire_at_ms,
        ),
        b"tasks" => store::apply_load::<tasks::StoredTasks>(
            ctx,
            &tasks::TYPE,
            *key,
            server::str_bytes(*payload),
            expire_at_ms,
        ),
        _ => Err("ERR unknown txu value kind".to_string()),
    };
    match r {
        Ok(()) => {
            server::replicate_verbatim(ctx);
            server::reply_simple(ctx, c"OK")
        }
        Err(e) => server::reply_error(ctx, &e),
    }
}

/// Keyspace notification: a key changed; retained undo logs that touched it are conflicted.
///
/// # Safety
/// Called by Redis with a valid context and key.
pub unsafe extern "C" fn on_keyspace_event(
    ctx: CtxPtr,
    _type: c_int,
    _event: *const std::ffi::c_char,
    key: StrPtr,
) -> c_int {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::exec::conflict::key_changed(ctx, server::str_bytes(key));
    }));
    0
}

/// `TXU._TASK <op> ...`: one change to the failed-task list (see `store::tasks::Op`).
pub unsafe extern "C" fn task(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, task_impl)
}

fn task_impl(ctx: CtxPtr, argv: &[StrPtr]) -> c_int {
    if !store::internal_allowed(ctx) {
        return server::reply_error(ctx, "ERR TXU._TASK is internal to txu");
    }
    let args: Vec<&[u8]> = argv.iter().skip(1).map(|p| server::str_bytes(*p)).collect();
    let Some(op) = tasks::Op::from_args(&args) else {
        return server::reply_error(ctx, "ERR malformed TXU._TASK");
    };
    match tasks::apply_here(ctx, &op) {
        Ok(()) => {
            server::replicate_verbatim(ctx);
            server::reply_simple(ctx, c"OK")
        }
        Err(e) => server::reply_error(ctx, &e),
    }
}

/// `TXU._CONFLICT <txid> <key>`: the primary found that `key`, written by retained transaction
/// `txid`, changed afterwards.
pub unsafe extern "C" fn conflict(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, |ctx, argv| {
        if !store::internal_allowed(ctx) {
            return server::reply_error(ctx, "ERR TXU._CONFLICT is internal to txu");
        }
        let [_, txid, key] = argv else {
            return server::reply_error(
                ctx,
                "ERR wrong number of arguments for 'txu._conflict' command",
            );
        };
        let txid = String::from_utf8_lossy(server::str_bytes(*txid)).into_owned();
        undolog::mark_conflict(&txid, server::str_bytes(*key));
        server::replicate_verbatim(ctx);
        server::reply_simple(ctx, c"OK")
    })
}
