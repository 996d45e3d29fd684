//! TXU.STATUS, TXU.TASKS, TXU.RETRY, TXU.DROP: looking at and steering the failed-task list.

use super::guard;
use crate::error::{quote, TxuError};
use crate::server::{self, CtxPtr, StrPtr};
use crate::store::tasks::{self as store, Op};
use crate::store::undolog;
use crate::tasks::list::{Status, Task};
use std::ffi::c_int;

fn arg(argv: &[StrPtr], i: usize) -> Option<&[u8]> {
    argv.get(i).map(|p| server::str_bytes(*p))
}

/// A flat list of field/value pairs (RESP2-friendly; clients map it).
enum Field<'a> {
    Str(&'a [u8]),
    Int(i64),
}

/// Replies the pairs as consecutive elements (the caller has opened the array).
fn reply_pairs(ctx: CtxPtr, fields: &[(&str, Field<'_>)]) {
    for (name, v) in fields {
        server::reply_bulk(ctx, name.as_bytes());
        match v {
            Field::Str(s) => server::reply_bulk(ctx, s),
            Field::Int(i) => server::reply_integer(ctx, *i),
        };
    }
}

fn reply_fields(ctx: CtxPtr, fields: &[(&str, Field<'_>)]) -> c_int {
    server::reply_array(ctx, fields.len() * 2);
    reply_pairs(ctx, fields);
    0
}

/// `TXU.STATUS <id>` → `state` and, for tasks, `attempts`, `next_attempt_ms`, `last_error`.
pub unsafe extern "C" fn status(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, |ctx, argv| {
        let [_, id] = argv else {
            return server::reply_error(
                ctx,
                &TxuError::WrongArity("txu.status".into()).to_string(),
            );
        };
        let id = String::from_utf8_lossy(server::str_bytes(*id)).into_owned();
        let st = store::with_list(ctx, false, |l| l.status(&id)).unwrap_or(Status::Unknown);
        match st {
            Status::Pending {
                attempts,
                next_attempt_ms,
                last_error,
            } => reply_fields(
                ctx,
                &[
                    ("state", Field::Str(b"pending")),
                    ("attempts", Field::Int(i64::from(attempts))),
                    ("next_attempt_ms", Field::Int(next_attempt_ms)),
                    ("last_error", Field::Str(last_error.as_bytes())),
                ],
            ),
            Status::Dead {
                attempts,
                last_error,
            } => reply_fields(
                ctx,
                &[
                    ("state", Field::Str(b"dead")),
                    ("attempts", Field::Int(i64::from(attempts))),
                    ("last_error", Field::Str(last_error.as_bytes())),
                ],
            ),
            Status::Done => reply_fields(ctx, &[("state", Field::Str(b"done"))]),
            Status::Unknown => {
                let state: &[u8] = match undolog::state_of(&id) {
                    Some(true) => b"rollback-pending",
                    Some(false) => b"retained",
                    None => b"unknown",
                };
                reply_fields(ctx, &[("state", Field::Str(state))])
            }
        }
    })
}

/// Default and largest `COUNT` of `TXU.TASKS`.
const TASKS_DEFAULT_COUNT: usize = 1000;

/// `TXU.TASKS [PENDING|DEAD] [COUNT n]` → one entry per task, oldest first (pending before dead).
pub unsafe extern "C" fn list(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, |ctx, argv| {
        let (mut pending, mut dead, mut count) = (true, true, TASKS_DEFAULT_COUNT);
        let mut i = 1;
        while let Some(a) = arg(argv, i) {
            if a.eq_ignore_ascii_case(b"pending") {
                dead = false;
            } else if a.eq_ignore_ascii_case(b"dead") {
                pending = false;
            } else if a.eq_ignore_ascii_case(b"count") {
                let n = arg(argv, i + 1)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .and_then(|n| n.parse::<usize>().ok());
                match n {
                    Some(n) => count = n,
                    None => {
                        return server::reply_error(
                            ctx,
                            "ERR syntax error: COUNT needs a non-negative number",
                        )
                    }
                }
                i += 1;
            } else {
                return server::reply_error(
                    ctx,
                    "ERR syntax error: TXU.TASKS [PENDING|DEAD] [COUNT n]",
                );
            }
            i += 1;
        }
        if !pending && !dead {
            return server::reply_error(
                ctx,
                "ERR syntax error: PENDING and DEAD exclude each other",
            );
        }
        let tasks: Vec<(Task, &'static [u8])> = store::with_list(ctx, false, |l| {
            let p = l
                .pending()
                .filter(|_| pending)
                .map(|t| (t.clone(), &b"pending"[..]));
            let d = l.dead().filter(|_| dead).map(|t| (t.clone(), &b"dead"[..]));
            p.chain(d).take(count).collect()
        })
        .unwrap_or_default();
        server::reply_array(ctx, tasks.len());
        for (t, state) in &tasks {
            let fields: [(&str, Field<'_>); 8] = [
                ("id", Field::Str(t.id.as_bytes())),
                ("state", Field::Str(state)),
                ("db", Field::Int(i64::from(t.db))),
                ("attempts", Field::Int(i64::from(t.attempts))),
                ("max_attempts", Field::Int(i64::from(t.max_attempts))),
                ("next_attempt_ms", Field::Int(t.next_attempt_ms)),
                ("created_ms", Field::Int(t.created_ms)),
                ("last_error", Field::Str(t.last_error.as_bytes())),
            ];
            // The fields, then `commands` and its value.
            server::reply_array(ctx, fields.len() * 2 + 2);
            reply_pairs(ctx, &fields);
            server::reply_bulk(ctx, b"commands");
            server::reply_array(ctx, t.commands.len());
            for c in &t.commands {
                server::reply_array(ctx, c.len());
                for a in c {
                    server::reply_bulk(ctx, a);
                }
            }
        }
        0
    })
}

fn steer(ctx: CtxPtr, argv: &[StrPtr], name: &str, make: fn(String, i64) -> Op) -> c_int {
    let [_, id] = argv else {
        return server::reply_error(ctx, &TxuError::WrongArity(name.into()).to_string());
    };
    let id = String::from_utf8_lossy(server::str_bytes(*id)).into_owned();
    let known = store::with_list(ctx, false, |l| l.contains(&id)).unwrap_or(false);
    if !known {
        return server::reply_error(ctx, &TxuError::NoSuchTask(quote(id.as_bytes())).to_string());
    }
    match store::submit(ctx, &make(id, server::now_ms())) {
        Ok(()) => server::reply_simple(ctx, c"OK"),
        Err(e) => server::reply_error(ctx, &e),
    }
}

/// `TXU.RETRY <id>` → `OK`: the task runs at the next tick with its attempts reset.
pub unsafe extern "C" fn retry(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, |ctx, argv| {
        steer(ctx, argv, "txu.retry", |id, now_ms| Op::Retry {
            id,
            now_ms,
        })
    })
}

/// `TXU.DROP <id>` → `OK`: the task is forgotten.
pub unsafe extern "C" fn drop(ctx: CtxPtr, argv: *mut StrPtr, argc: c_int) -> c_int {
    guard(ctx, argv, argc, |ctx, argv| {
        steer(ctx, argv, "txu.drop", |id, _| Op::Drop(id))
    })
}
