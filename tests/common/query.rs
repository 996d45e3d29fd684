//! The `redis` crate side of the harness: a command given as text on a [`redis::Connection`],
//! its [`redis::Value`], and that value as text or a number. Each panics when the reply is
//! not what it expects.

use redis::{Connection, Value};

/// Runs one command and returns its reply; panics on an error reply.
#[track_caller]
pub fn query(con: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query(con) {
        Ok(v) => v,
        Err(e) => panic!("`{}` failed: {e}", abbreviate(&args.join(" "))),
    }
}

/// Runs one whitespace-separated command line (see [`query`]).
#[track_caller]
pub fn query_line(con: &mut Connection, line: &str) -> Value {
    query(con, &line.split_whitespace().collect::<Vec<_>>())
}

/// A command line cut after 120 bytes (for messages).
pub fn abbreviate(line: &str) -> String {
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// A bulk or simple string reply as text.
#[track_caller]
pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".to_string(),
        other => panic!("expected a string, got {other:?}"),
    }
}

/// An integer reply.
#[track_caller]
pub fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// `CONFIG SET name value`; panics unless it replies OK.
#[track_caller]
pub fn config_set(con: &mut Connection, name: &str, value: &str) {
    let v = query(con, &["CONFIG", "SET", name, value]);
    assert_eq!(text(&v), "OK", "CONFIG SET {name} {value}");
}

/// A numeric field of an `INFO` section.
#[track_caller]
pub fn info_i64(con: &mut Connection, section: &str, field: &str) -> i64 {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query(con)
        .unwrap_or_else(|e| panic!("INFO {section}: {e}"));
    super::parse_info(&text)
        .get(field)
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
        .parse()
        .unwrap_or_else(|e| panic!("INFO {section} {field} is not a number: {e}"))
}

/// A numeric field of `INFO txu`.
#[track_caller]
pub fn txu_info(con: &mut Connection, field: &str) -> i64 {
    info_i64(con, "txu", field)
}

/// `LRANGE key 0 -1` as text.
#[track_caller]
pub fn lrange(con: &mut Connection, key: &str) -> Vec<String> {
    match query(con, &["LRANGE", key, "0", "-1"]) {
        Value::Array(items) => items.iter().map(text).collect(),
        other => panic!("LRANGE {key}: {other:?}"),
    }
}

/// Polls `txu_retries_run` until `total` deferred tasks have run (panics after `deadline`),
/// asserting that two readings taken less than one `tick` apart — so with at most one tick
/// between them — differ by at most `budget` (`txu.tick-budget`). Returns the largest such
/// step seen.
#[track_caller]
pub fn watch_tick_budget(
    con: &mut Connection,
    tick: std::time::Duration,
    budget: i64,
    total: i64,
    deadline: std::time::Duration,
) -> i64 {
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let mut biggest_step = 0;
    let mut prev: Option<(Instant, i64)> = None;
    loop {
        let before = Instant::now();
        let ran = txu_info(con, "txu_retries_run");
        if let Some((t0, r0)) = prev {
            if before.elapsed() + (before - t0) < tick {
                assert!(
                    ran - r0 <= budget,
                    "{} tasks ran within one tick (budget {budget})",
                    ran - r0
                );
                biggest_step = biggest_step.max(ran - r0);
            }
        }
        prev = Some((before, ran));
        if ran >= total {
            return biggest_step;
        }
        assert!(
            started.elapsed() < deadline,
            "only {ran} of {total} tasks ran"
        );
        // The polling interval, shorter than a tick.
        std::thread::sleep(Duration::from_millis(10));
    }
}
