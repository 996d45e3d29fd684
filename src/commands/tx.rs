//! TXU.BEGIN, TXU.QUEUE, TXU.EXEC, TXU.ROLLBACK.

use super::{capture, options};
use crate::config;
use crate::error::{quote, TxuError};
use crate::exec::{self, rollback, txn};
use crate::ffi::{acl, context, keys, reply, CtxPtr, Str};
use crate::stats::{add, STATS};
use std::ffi::c_int;

fn reply_err(ctx: CtxPtr, e: &TxuError) -> c_int {
    reply::error(ctx, e)
}

/// `TXU.BEGIN` → the transaction id.
pub fn begin(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let args: Vec<&[u8]> = argv.iter().skip(1).map(|a| a.bytes()).collect();
    let opts = match options::parse_begin(&args) {
        Ok(o) => o,
        Err(e) => return reply_err(ctx, &e),
    };
    if context::in_multi(ctx) {
        return reply_err(ctx, &TxuError::InMulti);
    }
    if (opts.retry.is_some() || opts.retain_ms.is_some()) && context::is_readonly_replica(ctx) {
        return reply_err(ctx, &TxuError::ReadOnly);
    }
    if opts.capture && !capture::available() {
        return reply_err(ctx, &TxuError::CaptureUnavailable);
    }
    let client = context::client_id(ctx);
    let id = txn::next_id(context::now_ms());
    let retry = opts
        .retry
        .map(|n| n.unwrap_or_else(|| u32::try_from(config::max_attempts()).unwrap_or(u32::MAX)));
    if txn::open(client, id.clone(), opts.capture, opts.retain_ms, retry) {
        reply::bulk(ctx, id.as_bytes())
    } else {
        reply_err(ctx, &TxuError::Nested)
    }
}

/// `TXU.RUN [RETRY <n>] [RETAIN <ms>] <argc> <command> [arg ...] ...` → what `TXU.EXEC` would
/// reply for the same commands (with `RETAIN`: `[txid, replies]` on success).
pub fn run(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let args: Vec<&[u8]> = argv.iter().skip(1).map(|a| a.bytes()).collect();
    let frames = options::parse_run(&args);
    // The arguments after `TXU.RUN` start at 1 in argv.
    let shift = |r: &std::ops::Range<usize>| r.start + 1..r.end + 1;
    if keys::is_keys_position_request(ctx) {
        if let Ok(f) = &frames {
            let commands: Vec<_> = f.commands.iter().map(shift).collect();
            exec::declare_keys(ctx, argv, &commands);
        }
        return 0;
    }
    let frames = match frames {
        Ok(f) => f,
        Err(e) => return reply_err(ctx, &e),
    };
    if (frames.retry.is_some() || frames.retain_ms.is_some()) && context::is_readonly_replica(ctx) {
        return reply_err(ctx, &TxuError::ReadOnly);
    }
    let max = config::max_queued();
    let mut queued = Vec::with_capacity(frames.commands.len());
    // One user lookup for every command's ACL check.
    let user = acl::UserHandle::current(ctx);
    let who = user.as_ref().map_or(exec::Acl::Caller, exec::Acl::User);
    for (i, range) in frames.commands.iter().enumerate() {
        let cmd = argv.get(shift(range)).unwrap_or(&[]);
        let abort = |cause: TxuError| {
            add(&STATS.aborted, 1);
            add(&STATS.commands_refused, 1);
            let name = cmd.first().map(|n| n.bytes()).unwrap_or_default();
            reply_err(
                ctx,
                &TxuError::RunAbort {
                    index: i + 1,
                    cmd: quote(name).to_ascii_uppercase(),
                    cause: cause.to_string(),
                },
            )
        };
        if i64::try_from(i).unwrap_or(i64::MAX) >= max {
            return abort(TxuError::TooMany(max));
        }
        let q = match exec::validate_at(ctx, cmd, &queued, who) {
            Ok(q) => q,
            Err(e) => return abort(e),
        };
        if q.write && context::is_readonly_replica(ctx) {
            return abort(TxuError::ReadOnly);
        }
        queued.push(q);
    }
    let acl_checked = user.is_some();
    drop(user);
    add(&STATS.commands_queued, queued.len() as u64);
    let tx = txn::Tx {
        id: txn::next_id(context::now_ms()),
        accepted: queued.len(),
        queued,
        aborted: false,
        capture: false,
        retain_ms: frames.retain_ms,
        retry: frames.retry,
        acl_checked,
        // The server routed TXU.RUN by its keys: they are in one slot served here.
        slot: None,
    };
    match exec::run(ctx, &tx) {
        Ok(replies) => {
            add(&STATS.committed, 1);
            if tx.retain_ms.is_some() {
                reply::array(ctx, 2);
                reply::bulk(ctx, tx.id.as_bytes());
            }
            reply_all(ctx, &replies)
        }
        Err(e) => reply_err(ctx, &e),
    }
}

/// The replies of a transaction's commands, as an array, each exactly as the command sent it
/// (`OK` for a check that held).
fn reply_all(ctx: CtxPtr, replies: &[exec::Reply]) -> c_int {
    reply::array(ctx, replies.len());
    for r in replies {
        match r {
            exec::Reply::Call(r) => {
                if !reply::call_reply(ctx, r) {
                    // Never leave the array short: the client would wait forever.
                    reply::null(ctx);
                }
            }
            exec::Reply::CheckHeld => {
                reply::ok(ctx);
            }
        }
    }
    0
}

/// `TXU.QUEUE <command> [arg ...]` → `QUEUED`.
pub fn queue(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let client = context::client_id(ctx);
    if !txn::is_open(client) {
        return reply_err(ctx, &TxuError::NoTransaction("TXU.QUEUE"));
    }
    let refuse = |e: TxuError| {
        txn::with(client, |tx| tx.aborted = true);
        add(&STATS.commands_refused, 1);
        reply_err(ctx, &e)
    };
    let state = context::State::of(ctx);
    if state.loading() {
        return refuse(TxuError::Loading);
    }
    let cmd = argv.get(1..).unwrap_or(&[]);
    let checked = if exec::is_check(cmd) {
        // A guard is placed among the commands queued so far.
        txn::with(client, |tx| {
            exec::validate_at(ctx, cmd, &tx.queued, exec::Acl::Caller)
        })
        .unwrap_or(Err(TxuError::NoTransaction("TXU.QUEUE")))
    } else {
        // Validation makes server calls; the registry lock is not held across them.
        exec::validate(ctx, cmd, exec::Acl::Caller)
    };
    let queued = match checked {
        Ok(q) => q,
        Err(e) => return refuse(e),
    };
    // As MULTI does on a read-only replica: a write is refused when it is queued.
    if queued.write && state.readonly_replica() {
        return refuse(TxuError::ReadOnly);
    }
    // Cluster: one slot per transaction, served here (the server does not route TXU.QUEUE).
    if exec::cluster::enabled() {
        let tx_slot = txn::with(client, |tx| tx.slot).flatten();
        let slot = match exec::cluster::check_queued(ctx, tx_slot, &queued) {
            Ok(s) => s,
            Err(e) => return refuse(e),
        };
        txn::with(client, |tx| tx.slot = slot);
    }
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
            reply::simple(ctx, c"QUEUED")
        }
        Some(Err(e)) => {
            add(&STATS.commands_refused, 1);
            reply_err(ctx, &e)
        }
        None => reply_err(ctx, &TxuError::NoTransaction("TXU.QUEUE")),
    }
}

/// `TXU.CHECK <k> <op> [<value>]` sent directly, on a connection with an open transaction →
/// `QUEUED` (as `TXU.QUEUE TXU.CHECK ...`).
pub fn check(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    if !txn::is_open(context::client_id(ctx)) {
        return reply_err(ctx, &TxuError::NoTransaction("TXU.CHECK"));
    }
    // `argv` is the check itself: queue it as `TXU.QUEUE` would.
    let mut with_queue: Vec<Str<'_>> = Vec::with_capacity(argv.len() + 1);
    with_queue.extend(argv.first().copied());
    with_queue.extend_from_slice(argv);
    queue(ctx, &with_queue)
}

/// `TXU.EXEC` → array of the queued commands' replies, or a `ROLLBACK ...` error.
pub fn exec(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    if argv.len() > 1 {
        return reply_err(ctx, &TxuError::WrongArity("txu.exec".into()));
    }
    let client = context::client_id(ctx);
    let Some(tx) = txn::take(client) else {
        return reply_err(ctx, &TxuError::NoTransaction("TXU.EXEC"));
    };
    if tx.aborted {
        add(&STATS.aborted, 1);
        return reply_err(ctx, &TxuError::ExecAbort);
    }
    if let Err(e) = exec::cluster::check_exec(ctx, tx.slot) {
        return reply_err(ctx, &e);
    }
    match exec::run(ctx, &tx) {
        Ok(replies) => {
            add(&STATS.committed, 1);
            reply_all(ctx, &replies)
        }
        Err(e) => reply_err(ctx, &e),
    }
}

/// `TXU.ROLLBACK` → `OK`: discards the open transaction.
pub fn rollback(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    match argv {
        [_] => match txn::take(context::client_id(ctx)) {
            Some(_) => {
                add(&STATS.discarded, 1);
                reply::ok(ctx)
            }
            None => reply_err(ctx, &TxuError::NoTransaction("TXU.ROLLBACK")),
        },
        [_, id, rest @ ..] => {
            let force = match rest {
                [] => false,
                [f] if f.bytes().eq_ignore_ascii_case(b"force") => true,
                _ => {
                    return reply_err(
                        ctx,
                        &TxuError::Syntax("TXU.ROLLBACK [<txid> [FORCE]]".into()),
                    )
                }
            };
            let id = String::from_utf8_lossy(id.bytes()).into_owned();
            match rollback::rollback_committed(ctx, &id, force) {
                Ok(()) => reply::ok(ctx),
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
