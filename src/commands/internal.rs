//! TXU._LOAD, TXU._TASK, TXU._CONFLICT, TXU._UNLOG: the internal commands that carry txu's state to
//! replicas and the AOF byte for byte. Clients cannot run them (see `exec::replay`).
//! TXU._CALL: one command of a transaction's script (see `exec::script`); nothing else can.

use crate::error::TxuError;
use crate::exec::replay;
use crate::ffi::{call, reply, CtxPtr, Str};
use std::ffi::c_int;

pub use crate::exec::script::CALL_COMMAND;
pub use replay::{CONFLICT_COMMAND, LOAD_COMMAND, TASK_COMMAND, UNLOG_COMMAND};

/// `TXU._CALL <command> [arg ...]`
pub fn script_call(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    crate::exec::script::call(ctx, argv)
}

/// Replies to an internal command: on success it is propagated exactly as received.
fn done(ctx: CtxPtr, r: Result<(), TxuError>) -> c_int {
    match r {
        Ok(()) => {
            call::replicate_verbatim(ctx);
            reply::ok(ctx)
        }
        Err(e) => reply::error(ctx, &e),
    }
}

/// `TXU._LOAD <kind> <key> <payload> <expire-at-ms|0>`
pub fn load(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    if !replay::allowed(ctx) {
        return reply::error(ctx, &TxuError::InternalOnly("TXU._LOAD"));
    }
    let [_, kind, key, payload, exp] = argv else {
        return reply::error(ctx, &TxuError::WrongArity("txu._load".into()));
    };
    // An absolute expiry in ms, 0 for none; anything else is a damaged command, refused
    // before anything changes.
    let Some(expire_at_ms) = std::str::from_utf8(exp.bytes())
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|ms| *ms >= 0)
    else {
        return reply::error(ctx, &TxuError::MalformedInternal("TXU._LOAD"));
    };
    let r = replay::load(ctx, kind.bytes(), *key, payload.bytes(), expire_at_ms);
    done(ctx, r)
}

/// `TXU._TASK <op> ...`: one change to the failed-task list (see `store::tasklist::Op`).
pub fn task(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    if !replay::allowed(ctx) {
        return reply::error(ctx, &TxuError::InternalOnly("TXU._TASK"));
    }
    let args: Vec<&[u8]> = argv.iter().skip(1).map(|a| a.bytes()).collect();
    let r = replay::task(ctx, &args);
    done(ctx, r)
}

/// `TXU._CONFLICT <txid> <key>`
pub fn conflict(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    if !replay::allowed(ctx) {
        return reply::error(ctx, &TxuError::InternalOnly("TXU._CONFLICT"));
    }
    let [_, txid, key] = argv else {
        return reply::error(ctx, &TxuError::WrongArity("txu._conflict".into()));
    };
    let r = replay::conflict(txid.bytes(), key.bytes());
    done(ctx, r)
}

/// `TXU._UNLOG <txid>`
pub fn unlog(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    if !replay::allowed(ctx) {
        return reply::error(ctx, &TxuError::InternalOnly("TXU._UNLOG"));
    }
    let [_, txid] = argv else {
        return reply::error(ctx, &TxuError::WrongArity("txu._unlog".into()));
    };
    let r = replay::unlog(ctx, txid.bytes());
    done(ctx, r)
}
