//! TXU.BEGIN, TXU.QUEUE, TXU.EXEC, TXU.ROLLBACK.

use super::{capture, guard, options};
use crate::config;
use crate::error::TxuError;
use crate::exec::{self, rollback, txn};
use crate::server::{self, CtxPtr, StrPtr};
use crate::stats::{add, STATS};
use redis_module::raw;
use std::ffi::c_int;

fn reply_err(ctx: CtxPtr, e: &TxuError) -> c_int {
    server::reply_error(ctx, &e.to_string())
}

/// `TXU.BEGIN` → the transaction id.
pub unsafe extern "C" fn begin(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, begin_impl)
}

fn begin_impl(ctx: CtxPtr, argv: &[StrPtr]) -> c_int {
    let args: Vec<&[u8]> = argv.iter().skip(1).map(|p| server::str_bytes(*p)).collect();
    let opts = match options::parse_begin(&args) {
        Ok(o) => o,
        Err(e) => return reply_err(ctx, &e),
    };
    if server::in_multi(ctx) {
        return reply_err(ctx, &TxuError::InMulti);
    }
    if opts.capture && !capture::available() {
        return reply_err(ctx, &TxuError::CaptureUnavailable);
    }
    let client = server::client_id(ctx);
    let id = txn::next_id(server::now_ms());
    let retry = opts
        .retry
        .map(|n| n.unwrap_or_else(|| u32::try_from(config::max_attempts()).unwrap_or(u32::MAX)));
    if txn::open(client, id.clone(), opts.capture, opts.retain_ms, retry) {
        server::reply_bulk(ctx, id.as_bytes())
    } else {
        reply_err(ctx, &TxuError::Nested)
    }
}

/// `TXU.QUEUE <command> [arg ...]` → `QUEUED`.
pub unsafe extern "C" fn queue(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, queue_impl)
}

fn queue_impl(ctx: CtxPtr, argv: &[StrPtr]) -> c_int {
    let client = server::client_id(ctx);
    if !txn::is_open(client) {
        return reply_err(ctx, &TxuError::NoTransaction("TXU.QUEUE"));
    }
    let refuse = |e: TxuError| {
        txn::with(client, |tx| tx.aborted = true);
        add(&STATS.commands_refused, 1);
        reply_err(ctx, &e)
    };
    if server::context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_LOADING != 0 {
        return refuse(TxuError::Loading);
    }
    // Validation makes server calls; the registry lock is not held across them.
    let checked = exec::validate(ctx, argv.get(1..).unwrap_or(&[]), exec::Acl::Caller);
    let queued = match checked {
        Ok(q) => q,
        Err(e) => return refuse(e),
    };
    let max = config::max_queued();
    let outcome = txn::with(client, |tx| {
        if i64::try_from(tx.accepted).unwrap_or(i64::MAX) >= max {
            tx.aborted = true;
            Err(TxuError::TooMany(max))
        } else {
            tx.accepted += 1;
            if !tx.aborted {
                tx.queued.push(queued);
            }
            Ok(())
        }
    });
    match outcome {
        Some(Ok(())) => {
            add(&STATS.commands_queued, 1);
            server::reply_simple(ctx, c"QUEUED")
        }
        Some(Err(e)) => {
            add(&STATS.commands_refused, 1);
            reply_err(ctx, &e)
        }
        None => reply_err(ctx, &TxuError::NoTransaction("TXU.QUEUE")),
    }
}

/// `TXU.EXEC` → array of the queued commands' replies, or a `ROLLBACK ...` error.
pub unsafe extern "C" fn exec(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, exec_impl)
}

fn exec_impl(ctx: CtxPtr, argv: &[StrPtr]) -> c_int {
    if argv.len() > 1 {
        return reply_err(ctx, &TxuError::WrongArity("txu.exec".into()));
    }
    let client = server::client_id(ctx);
    let Some(tx) = txn::take(client) else {
        return reply_err(ctx, &TxuError::NoTransaction("TXU.EXEC"));
    };
    if tx.aborted {
        add(&STATS.aborted, 1);
        return reply_err(ctx, &TxuError::ExecAbort);
    }
    match exec::run(ctx, &tx) {
        Ok(replies) => {
            add(&STATS.committed, 1);
            server::reply_array(ctx, replies.len());
            for r in &replies {
                if !server::reply_with_call_reply(ctx, r) {
                    // Never leave the array short: the client would wait forever.
                    server::reply_null(ctx);
                }
            }
            raw::REDISMODULE_OK as c_int
        }
        Err(e) => reply_err(ctx, &e),
    }
}

/// `TXU.ROLLBACK` → `OK`: discards the open transaction.
pub unsafe extern "C" fn rollback(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, rollback_impl)
}

fn rollback_impl(ctx: CtxPtr, argv: &[StrPtr]) -> c_int {
    match argv {
        [_] => match txn::take(server::client_id(ctx)) {
            Some(_) => {
                add(&STATS.discarded, 1);
                server::reply_simple(ctx, c"OK")
            }
            None => reply_err(ctx, &TxuError::NoTransaction("TXU.ROLLBACK")),
        },
        [_, id, rest @ ..] => {
            let force = match rest {
                [] => false,
                [f] if server::str_bytes(*f).eq_ignore_ascii_case(b"force") => true,
                _ => {
                    return reply_err(
                        ctx,
                        &TxuError::Syntax("TXU.ROLLBACK [<txid> [FORCE]]".into()),
                    )
                }
            };
            let id = String::from_utf8_lossy(server::str_bytes(*id)).into_owned();
            match rollback::rollback_committed(ctx, &id, force) {
                Ok(()) => server::reply_simple(ctx, c"OK"),
                Err(e) => reply_err(ctx, &e),
            }
        }
        [] => reply_err(ctx, &TxuError::WrongArity("txu.rollback".into())),
    }
}

/// A client disconnected: its open transaction (if any) is discarded.
pub fn client_gone(client: u64) {
    if txn::take(client).is_some() {
        add(&STATS.discarded, 1);
    }
}
