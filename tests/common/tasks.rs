//! `TXU.TASKS` and `TXU.STATUS` replies, parsed by field name with the field list checked
//! (RESP2 flat arrays and RESP3 maps alike).

use super::query::{int, query, text};
use redis::Value;

/// One task as `TXU.TASKS` lists it and `TXU.STATUS` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    pub id: String,
    pub state: String,
    pub submitted_at: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub last_attempt_at: Option<i64>,
    /// Pending tasks only.
    pub next_attempt_at: Option<i64>,
    pub last_error: String,
    pub user: String,
    pub db: i64,
    pub keys: Vec<String>,
    pub commands: Vec<Vec<String>>,
}

/// The name/value pairs of a map reply: a RESP3 map or a RESP2 flat array.
pub fn pairs(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Value::Array(f) => {
            assert!(f.len() % 2 == 0, "an odd field/value array: {f:?}");
            f.chunks(2).map(|p| (text(&p[0]), p[1].clone())).collect()
        }
        other => panic!("not a map reply: {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(text).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// A task, its fields checked: exactly these names in this order, `last-attempt-at` once it
/// ran, `next-attempt-at` exactly when it is pending.
pub fn parse_task(v: &Value) -> TaskView {
    let f = pairs(v);
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    let field = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v);
    let state = field("state").map(text).unwrap_or_default();
    let mut want = vec!["id", "state", "submitted-at", "attempts", "max-attempts"];
    if field("last-attempt-at").is_some() {
        want.push("last-attempt-at");
    }
    if state == "pending" {
        want.push("next-attempt-at");
    }
    want.extend(["last-error", "user", "db", "keys", "commands"]);
    assert_eq!(names, want, "fields of a {state} task: {v:?}");
    let need = |n: &str| field(n).unwrap_or_else(|| panic!("no {n} in {v:?}"));
    TaskView {
        id: text(need("id")),
        submitted_at: int(need("submitted-at")),
        attempts: int(need("attempts")),
        max_attempts: int(need("max-attempts")),
        last_attempt_at: field("last-attempt-at").map(int),
        next_attempt_at: field("next-attempt-at").map(int),
        last_error: text(need("last-error")),
        user: text(need("user")),
        db: int(need("db")),
        keys: strings(need("keys")),
        commands: match need("commands") {
            Value::Array(cs) => cs.iter().map(strings).collect(),
            other => panic!("commands of a task is not an array: {other:?}"),
        },
        state,
    }
}

/// One page of `TXU.TASKS <args>`: the next cursor and the tasks.
pub fn tasks_page(con: &mut redis::Connection, args: &[&str]) -> (String, Vec<TaskView>) {
    let mut full = vec!["TXU.TASKS"];
    full.extend_from_slice(args);
    match query(con, &full) {
        Value::Array(r) => match r.as_slice() {
            [cursor, Value::Array(items)] => (text(cursor), items.iter().map(parse_task).collect()),
            _ => panic!("{full:?}: {r:?}"),
        },
        other => panic!("{full:?}: {other:?}"),
    }
}

/// The whole listing of `TXU.TASKS <args>`, page after page until the cursor is `0`.
pub fn tasks(con: &mut redis::Connection, args: &[&str]) -> Vec<TaskView> {
    let (mut cursor, mut all) = ("0".to_string(), Vec::new());
    for _ in 0..100_000 {
        let mut full = args.to_vec();
        full.extend(["CURSOR", cursor.as_str()]);
        let (next, page) = tasks_page(con, &full);
        all.extend(page);
        if next == "0" {
            return all;
        }
        cursor = next;
    }
    panic!("TXU.TASKS {args:?} never ended");
}

pub fn ids(ts: &[TaskView]) -> Vec<String> {
    ts.iter().map(|t| t.id.clone()).collect()
}

/// `TXU.STATUS <id>`, with the field list checked against the state.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub state: String,
    pub attempts: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    /// The whole task, for a pending or dead one.
    pub task: Option<TaskView>,
}

pub fn status(con: &mut redis::Connection, id: &str) -> Status {
    let v = query(con, &["TXU.STATUS", id]);
    let f = pairs(&v);
    let state = f
        .iter()
        .find(|(n, _)| n == "state")
        .map(|(_, v)| text(v))
        .unwrap_or_else(|| panic!("TXU.STATUS {id}: {v:?}"));
    if state == "pending" || state == "dead" {
        let t = parse_task(&v);
        assert_eq!(t.id, id, "TXU.STATUS {id}");
        return Status {
            state,
            attempts: Some(t.attempts),
            next_attempt_at: t.next_attempt_at,
            last_error: Some(t.last_error.clone()),
            task: Some(t),
        };
    }
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    let want: &[&str] = match state.as_str() {
        "rollback-pending" => &["state", "attempts", "last-error", "skipped-keys"],
        "done" | "retained" | "unknown" => &["state"],
        other => panic!("TXU.STATUS {id}: unexpected state {other:?}"),
    };
    assert_eq!(names, want, "TXU.STATUS {id} fields: {v:?}");
    let field = |n: &str| f.iter().find(|(k, _)| k == n).map(|(_, v)| v);
    Status {
        attempts: field("attempts").map(int),
        next_attempt_at: None,
        last_error: field("last-error").map(text),
        task: None,
        state,
    }
}
