//! TXU.STATUS, TXU.TASKS, TXU.RETRY, TXU.DROP: looking at and steering the failed-task list.

use crate::error::TxuError;
use crate::exec::admin::{self, Listed, Query, State, Steer};
use crate::ffi::{context, reply, CtxPtr, Str};
use crate::tasks::list::{key_name, Listing};
use std::ffi::c_int;

fn arg<'a>(argv: &[Str<'a>], i: usize) -> Option<&'a [u8]> {
    argv.get(i).map(|a| a.bytes())
}

/// One value of a reply map.
enum Field<'a> {
    Str(&'a [u8]),
    Int(i64),
    /// An array of strings.
    Strs(Vec<&'a [u8]>),
    /// An array of commands, each an array of its arguments.
    Commands(&'a [Vec<Vec<u8>>]),
}

/// Replies a map (RESP3) or flat field/value array (RESP2) of `fields`, in their order.
fn reply_map(ctx: CtxPtr, fields: &[(&str, Field<'_>)]) -> c_int {
    reply::map(ctx, fields.len());
    for (name, v) in fields {
        reply::bulk(ctx, name.as_bytes());
        match v {
            Field::Str(s) => reply::bulk(ctx, s),
            Field::Int(i) => reply::integer(ctx, *i),
            Field::Strs(items) => {
                reply::array(ctx, items.len());
                for s in items {
                    reply::bulk(ctx, s);
                }
                0
            }
            Field::Commands(cmds) => {
                reply::array(ctx, cmds.len());
                for c in cmds.iter() {
                    reply::array(ctx, c.len());
                    for a in c {
                        reply::bulk(ctx, a);
                    }
                }
                0
            }
        };
    }
    0
}

/// A pending or dead task, as `TXU.TASKS` lists it and `TXU.STATUS` shows it. Times are Unix
/// ms; `last-attempt-at` only once it ran, `next-attempt-at` only while it is pending.
fn reply_task(ctx: CtxPtr, Listed { task: t, dead }: &Listed) -> c_int {
    let state: &[u8] = if *dead { b"dead" } else { b"pending" };
    let mut fields: Vec<(&str, Field<'_>)> = vec![
        ("id", Field::Str(t.id.as_bytes())),
        ("state", Field::Str(state)),
        ("submitted-at", Field::Int(t.created_ms)),
        ("attempts", Field::Int(i64::from(t.attempts))),
        ("max-attempts", Field::Int(i64::from(t.max_attempts))),
    ];
    if let Some(at) = t.last_attempt_ms {
        fields.push(("last-attempt-at", Field::Int(at)));
    }
    if !dead {
        fields.push(("next-attempt-at", Field::Int(t.next_attempt_ms)));
    }
    fields.extend([
        ("last-error", Field::Str(t.last_error.as_bytes())),
        ("user", Field::Str(&t.user)),
        ("db", Field::Int(i64::from(t.db))),
        (
            "keys",
            Field::Strs(t.keys.iter().map(|k| key_name(k)).collect()),
        ),
        ("commands", Field::Commands(&t.commands)),
    ]);
    reply_map(ctx, &fields)
}

/// `TXU.STATUS <id>` → a map: `state` (`pending`, `dead`, `done`, `retained`,
/// `rollback-pending`, `unknown`), and the whole task for a pending or dead one.
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
        State::Listed(task) => reply_task(ctx, &task),
        State::Done => reply_map(ctx, &state(b"done")),
        State::RollbackPending {
            attempts,
            last_error,
            skipped,
        } => reply_map(
            ctx,
            &[
                ("state", Field::Str(b"rollback-pending")),
                ("attempts", Field::Int(i64::from(attempts))),
                ("last-error", Field::Str(last_error.as_bytes())),
                (
                    "skipped-keys",
                    Field::Strs(skipped.iter().map(Vec::as_slice).collect()),
                ),
            ],
        ),
        State::Retained => reply_map(ctx, &state(b"retained")),
        State::Unknown => reply_map(ctx, &state(b"unknown")),
    }
}

/// `COUNT` of `TXU.TASKS` when none is given, and the most it accepts.
pub const TASKS_DEFAULT_COUNT: usize = 100;
pub const TASKS_MAX_COUNT: usize = 1000;

const TASKS_USAGE: &str =
    "TXU.TASKS [PENDING|DEAD] [CURSOR <cursor>] [COUNT <1..1000>] [MATCH <pattern>]";

/// The options of `TXU.TASKS`, in any order.
fn tasks_query<'a>(argv: &[Str<'a>]) -> Result<Query<'a>, TxuError> {
    let mut q = Query {
        which: Listing {
            pending: true,
            dead: true,
        },
        cursor: 0,
        count: TASKS_DEFAULT_COUNT,
        pattern: None,
    };
    let syntax = |why: &str| TxuError::Syntax(format!("{why}: {TASKS_USAGE}"));
    let mut i = 1;
    while let Some(a) = arg(argv, i) {
        let value = arg(argv, i + 1);
        let number = || value.and_then(|n| std::str::from_utf8(n).ok());
        if a.eq_ignore_ascii_case(b"pending") {
            q.which.dead = false;
        } else if a.eq_ignore_ascii_case(b"dead") {
            q.which.pending = false;
        } else if a.eq_ignore_ascii_case(b"cursor") {
            q.cursor = number()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| syntax("invalid cursor"))?;
            i += 1;
        } else if a.eq_ignore_ascii_case(b"count") {
            q.count = number()
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=TASKS_MAX_COUNT).contains(n))
                .ok_or_else(|| syntax("COUNT must be between 1 and 1000"))?;
            i += 1;
        } else if a.eq_ignore_ascii_case(b"match") {
            q.pattern = Some(value.ok_or_else(|| syntax("MATCH needs a pattern"))?);
            i += 1;
        } else {
            return Err(syntax("unknown option"));
        }
        i += 1;
    }
    if !q.which.pending && !q.which.dead {
        return Err(syntax("PENDING and DEAD exclude each other"));
    }
    Ok(q)
}

/// `TXU.TASKS [PENDING|DEAD] [CURSOR c] [COUNT n] [MATCH p]` → `[next-cursor, [task, ...]]`:
/// one page, pending tasks oldest first then dead ones in the order they died (see
/// `TaskList::page`), those the caller's ACL may read and whose last error matches.
pub fn list(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    let q = match tasks_query(argv) {
        Ok(q) => q,
        Err(e) => return reply::error(ctx, &e),
    };
    let (next, tasks) = admin::tasks(ctx, &q);
    reply::array(ctx, 2);
    reply::bulk(ctx, next.to_string().as_bytes());
    reply::array(ctx, tasks.len());
    for t in &tasks {
        reply_task(ctx, t);
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
        let (pending, dead) = if a.eq_ignore_ascii_case(b"all") {
            (true, true)
        } else if a.eq_ignore_ascii_case(b"pending") {
            (true, false)
        } else if a.eq_ignore_ascii_case(b"dead") {
            (false, true)
        } else {
            return None;
        };
        Some(Listing { pending, dead })
    };
    match argv {
        // `ALL` / `PENDING` / `DEAD` [MATCH <pattern>]: every such task the caller may write.
        [_, w, rest @ ..] if which(w).is_some() => {
            let pattern = match rest {
                [] => None,
                [m, p] if m.bytes().eq_ignore_ascii_case(b"match") => Some(p.bytes()),
                _ => {
                    let usage =
                        format!("{} ALL|PENDING|DEAD [MATCH <pattern>]", name.to_uppercase());
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
/// `TXU.RETRY ALL|PENDING|DEAD [MATCH <pattern>]` → how many tasks it requeued.
pub fn retry(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    steer(ctx, argv, "txu.retry", Steer::Retry)
}

/// `TXU.DROP <id>` → `OK`: the task is forgotten.
/// `TXU.DROP ALL|PENDING|DEAD [MATCH <pattern>]` → how many tasks it dropped.
pub fn drop(ctx: CtxPtr, argv: &[Str<'_>]) -> c_int {
    steer(ctx, argv, "txu.drop", Steer::Drop)
}
