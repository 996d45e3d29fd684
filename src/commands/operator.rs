//! TXU.STATUS, TXU.TASKS, TXU.RETRY, TXU.DROP: looking at and steering the failed-task list.

use crate::error::TxuError;
use crate::exec::admin::{self, Listed, State, Steer, Which};
use crate::ffi::{context, reply, CtxPtr, Str};
use crate::tasks::list::Status;
use std::ffi::c_int;

fn arg<'a>(argv: &[Str<'a>], i: usize) -> Option<&'a [u8]> {
    argv.get(i).map(|a| a.bytes())
}

/// A flat list of field/value pairs (RESP2-friendly; clients map it).
enum Field<'a> {
    Str(&'a [u8]),
    Int(i64),
}

/// Replies the pairs as consecutive elements (the caller has opened the array).
fn reply_pairs(ctx: CtxPtr, fields: &[(&str, Field<'_>)]) {
    for (name, v) in fields {
        reply::bulk(ctx, name.as_bytes());
        match v {
            Field::Str(s) => reply::bulk(ctx, s),
            Field::Int(i) => reply::integer(ctx, *i),
        };
    }
}

fn reply_fields(ctx: CtxPtr, fields: &[(&str, Field<'_>)]) -> c_int {
    reply::array(ctx, fields.len() * 2);
    reply_pairs(ctx, fields);
    0
}

/// `TXU.STATUS <id>` → `state` and, for tasks, `attempts`, `next_attempt_ms`, `last_error`.
pub fn status(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let [_, id] = argv else {
        return reply::error(ctx, &TxuError::WrongArity("txu.status".into()));
    };
    let id = String::from_utf8_lossy(id.bytes()).into_owned();
    let state = |s: &'static [u8]| [("state", Field::Str(s))];
    let st = match admin::state(ctx, &id) {
        Ok(st) => st,
        Err(e) => return reply::error(ctx, &e),
    };
    match st {
        State::Task(Status::Pending {
            attempts,
            next_attempt_ms,
            last_error,
        }) => reply_fields(
            ctx,
            &[
                ("state", Field::Str(b"pending")),
                ("attempts", Field::Int(i64::from(attempts))),
                ("next_attempt_ms", Field::Int(next_attempt_ms)),
                ("last_error", Field::Str(last_error.as_bytes())),
            ],
        ),
        State::Task(Status::Dead {
            attempts,
            last_error,
        }) => reply_fields(
            ctx,
            &[
                ("state", Field::Str(b"dead")),
                ("attempts", Field::Int(i64::from(attempts))),
                ("last_error", Field::Str(last_error.as_bytes())),
            ],
        ),
        State::Task(Status::Done) => reply_fields(ctx, &state(b"done")),
        State::RollbackPending {
            attempts,
            last_error,
            skipped,
        } => {
            let fields = [
                ("state", Field::Str(b"rollback-pending")),
                ("attempts", Field::Int(i64::from(attempts))),
                ("last_error", Field::Str(last_error.as_bytes())),
            ];
            // The fields, then `skipped_keys` and its array.
            reply::array(ctx, fields.len() * 2 + 2);
            reply_pairs(ctx, &fields);
            reply::bulk(ctx, b"skipped_keys");
            reply::array(ctx, skipped.len());
            for k in &skipped {
                reply::bulk(ctx, k);
            }
            0
        }
        State::Retained => reply_fields(ctx, &state(b"retained")),
        State::Task(Status::Unknown) | State::Unknown => reply_fields(ctx, &state(b"unknown")),
    }
}

/// `COUNT` of `TXU.TASKS` when none is given.
const TASKS_DEFAULT_COUNT: usize = 1000;

/// `TXU.TASKS [PENDING|DEAD] [COUNT n]` → one entry per task, oldest first (pending before dead).
pub fn list(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
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
                    return reply::error(
                        ctx,
                        &TxuError::Syntax("COUNT needs a non-negative number".into()),
                    )
                }
            }
            i += 1;
        } else {
            return reply::error(
                ctx,
                &TxuError::Syntax("TXU.TASKS [PENDING|DEAD] [COUNT n]".into()),
            );
        }
        i += 1;
    }
    if !pending && !dead {
        return reply::error(
            ctx,
            &TxuError::Syntax("PENDING and DEAD exclude each other".into()),
        );
    }
    let tasks = admin::tasks(ctx, pending, dead, count);
    reply::array(ctx, tasks.len());
    for Listed { task: t, dead } in &tasks {
        let state: &[u8] = if *dead { b"dead" } else { b"pending" };
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
        reply::array(ctx, fields.len() * 2 + 2);
        reply_pairs(ctx, &fields);
        reply::bulk(ctx, b"commands");
        reply::array(ctx, t.commands.len());
        for c in &t.commands {
            reply::array(ctx, c.len());
            for a in c {
                reply::bulk(ctx, a);
            }
        }
    }
    0
}

fn steer(ctx: CtxPtr, argv: &[Str<'_>], name: &str, how: Steer) -> c_int {
    // Not flagged `write` (see `commands::COMMANDS`): a read-only replica refuses it here.
    if context::is_readonly_replica(ctx) {
        return reply::error(ctx, &TxuError::ReadOnly);
    }
    let which = |a: &Str<'_>| {
        let a = a.bytes();
        if a.eq_ignore_ascii_case(b"all") {
            Some(Which::All)
        } else if a.eq_ignore_ascii_case(b"dead") {
            Some(Which::Dead)
        } else {
            None
        }
    };
    match argv {
        // `ALL` / `DEAD` [MATCH <pattern>]: every such task the caller may write.
        [_, w, rest @ ..] if which(w).is_some() => {
            let pattern = match rest {
                [] => None,
                [m, p] if m.bytes().eq_ignore_ascii_case(b"match") => Some(p.bytes()),
                _ => {
                    let usage = format!("{} ALL|DEAD [MATCH <pattern>]", name.to_uppercase());
                    return reply::error(ctx, &TxuError::Syntax(usage));
                }
            };
            let Some(w) = which(w) else {
                return reply::error(ctx, &TxuError::WrongArity(name.into()));
            };
            let n = admin::steer_all(ctx, w, pattern, how);
            reply::integer(ctx, i64::try_from(n).unwrap_or(i64::MAX))
        }
        [_, id] => {
            let id = String::from_utf8_lossy(id.bytes()).into_owned();
            match admin::steer(ctx, &id, how) {
                Ok(()) => reply::ok(ctx),
                Err(e) => reply::error(ctx, &e),
            }
        }
        _ => reply::error(ctx, &TxuError::WrongArity(name.into())),
    }
}

/// `TXU.RETRY <id>` → `OK`: the task runs at the next tick with its attempts reset.
/// `TXU.RETRY ALL|DEAD [MATCH <pattern>]` → how many tasks it requeued.
pub fn retry(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    steer(ctx, argv, "txu.retry", Steer::Retry)
}

/// `TXU.DROP <id>` → `OK`: the task is forgotten.
/// `TXU.DROP ALL|DEAD [MATCH <pattern>]` → how many tasks it dropped.
pub fn drop(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    steer(ctx, argv, "txu.drop", Steer::Drop)
}
