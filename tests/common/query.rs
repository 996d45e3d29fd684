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
