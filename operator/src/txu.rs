//! txu's operator commands as the page uses them: one function per command, each sending
//! exactly one command over the shared connection, and the parsing of their replies.
//!
//! Replies are parsed by field name, in their RESP2 form (a flat field/value array) and their
//! RESP3 form (a map) alike, so the page works whatever protocol `REDIS_URL` asks for.

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use redis::{Client, RedisError, Value};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one reply may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which list a listing or a bulk action is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Dead,
}

impl State {
    /// The word txu's commands take for this list.
    fn word(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Dead => "DEAD",
        }
    }
}

/// One task of `TXU.TASKS`, as the page shows it. Absent fields are `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Task {
    pub id: String,
    pub state: String,
    pub submitted_at: Option<i64>,
    pub attempts: Option<i64>,
    pub max_attempts: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub last_error: String,
    pub user: String,
    pub db: Option<i64>,
    pub keys: Vec<String>,
    pub commands: Vec<Vec<String>>,
}

/// One page of `TXU.TASKS`: the cursor to continue from (`"0"` when the listing is complete)
/// and the tasks.
#[derive(Debug, PartialEq, Serialize)]
pub struct Page {
    pub cursor: String,
    pub tasks: Vec<Task>,
}

/// `INFO txu`'s task counts; `None` for a field the section does not have.
#[derive(Debug, PartialEq, Serialize)]
pub struct Counts {
    pub pending: Option<i64>,
    pub dead: Option<i64>,
}

/// The only thing the operator holds: a connection to Redis, opened on first use and opened
/// again after it broke.
pub struct Redis {
    client: Client,
    con: Mutex<Option<MultiplexedConnection>>,
}

impl Redis {
    pub fn new(client: Client) -> Self {
        Redis {
            client,
            con: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let mut held = self.con.lock().await;
        if let Some(con) = held.as_ref() {
            return Ok(con.clone());
        }
        let con = self
            .client
            .get_multiplexed_async_connection_with_config(
                &AsyncConnectionConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT),
            )
            .await
            .map_err(|e| format!("cannot connect to Redis: {}", error_text(&e)))?;
        *held = Some(con.clone());
        Ok(con)
    }

    /// Sends one command; a Redis error reply becomes its text.
    async fn query(&self, cmd: &redis::Cmd) -> Result<Value, String> {
        let mut con = self.connection().await?;
        match cmd.query_async::<Value>(&mut con).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    // The next request connects again.
                    *self.con.lock().await = None;
                    return Err(format!(
                        "lost the connection to Redis: {} (try again)",
                        error_text(&e)
                    ));
                }
                Err(error_text(&e))
            }
        }
    }

    /// `TXU.TASKS <state> CURSOR <cursor> COUNT <count> [MATCH *<filter>*]`.
    pub async fn tasks(
        &self,
        state: State,
        cursor: &str,
        count: u32,
        filter: &str,
    ) -> Result<Page, String> {
        let mut cmd = redis::cmd("TXU.TASKS");
        cmd.arg(state.word())
            .arg("CURSOR")
            .arg(cursor)
            .arg("COUNT")
            .arg(count);
        if let Some(glob) = contains_glob(filter) {
            cmd.arg("MATCH").arg(glob);
        }
        parse_page(&self.query(&cmd).await?)
    }

    /// `INFO txu`: the pending and dead counts.
    pub async fn counts(&self) -> Result<Counts, String> {
        let v = self.query(redis::cmd("INFO").arg("txu")).await?;
        let text = text(&v).ok_or_else(|| format!("INFO txu: unexpected reply {v:?}"))?;
        Ok(parse_counts(&text))
    }

    /// `TXU.RETRY <id>` or `TXU.DROP <id>`: the reply (`OK`).
    pub async fn one(&self, verb: Verb, id: &str) -> Result<String, String> {
        let v = self.query(redis::cmd(verb.command()).arg(id)).await?;
        match v {
            Value::Okay => Ok("OK".to_string()),
            other => text(&other)
                .ok_or_else(|| format!("{}: unexpected reply {other:?}", verb.command())),
        }
    }

    /// `TXU.RETRY <state> [MATCH *<filter>*]` or the same `TXU.DROP`: how many tasks it touched.
    pub async fn all(&self, verb: Verb, state: State, filter: &str) -> Result<i64, String> {
        let mut cmd = redis::cmd(verb.command());
        cmd.arg(state.word());
        if let Some(glob) = contains_glob(filter) {
            cmd.arg("MATCH").arg(glob);
        }
        let v = self.query(&cmd).await?;
        int(&v).ok_or_else(|| format!("{}: unexpected reply {v:?}", verb.command()))
    }
}

/// What an action does to a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Retry,
    Drop,
}

impl Verb {
    fn command(self) -> &'static str {
        match self {
            Verb::Retry => "TXU.RETRY",
            Verb::Drop => "TXU.DROP",
        }
    }
}

/// The text of a Redis error as the server sent it (`NOPERM ...`, `ERR ...`), or the client's
/// own description (connection refused, timeout).
pub fn error_text(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// The glob that matches an error containing `filter` literally (`*`, `?`, `[`, `]` and `\`
/// escaped); `None` for an empty filter.
pub fn contains_glob(filter: &str) -> Option<String> {
    if filter.is_empty() {
        return None;
    }
    let mut glob = String::with_capacity(filter.len() + 2);
    glob.push('*');
    for c in filter.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            glob.push('\\');
        }
        glob.push(c);
    }
    glob.push('*');
    Some(glob)
}

/// A string reply in any of its forms.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// An integer reply, or a string holding one.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

fn texts(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) | Value::Set(items) => items
            .iter()
            .map(|x| text(x).ok_or_else(|| format!("not a string: {x:?}")))
            .collect(),
        Value::Nil => Ok(Vec::new()),
        other => Err(format!("not an array: {other:?}")),
    }
}

/// The field/value pairs of a RESP3 map or a RESP2 flat array.
fn pairs(v: &Value) -> Result<Vec<(String, &Value)>, String> {
    match v {
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| Ok((text(k).ok_or_else(|| format!("field name {k:?}"))?, v)))
            .collect(),
        Value::Array(f) if f.len() % 2 == 0 => f
            .chunks_exact(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((k, v)),
                _ => None,
            })
            .map(|(k, v)| Ok((text(k).ok_or_else(|| format!("field name {k:?}"))?, v)))
            .collect(),
        other => Err(format!(
            "a task is neither a map nor a field/value array: {other:?}"
        )),
    }
}

/// One task, by field name; unknown fields are ignored, absent ones left `None`/empty.
pub fn parse_task(v: &Value) -> Result<Task, String> {
    let mut t = Task::default();
    let mut has_id = false;
    for (name, value) in pairs(v)? {
        let bad = |what: &str| format!("task field {name}: {what}: {value:?}");
        let opt_int = || int(value).map(Some).ok_or_else(|| bad("not an integer"));
        let string = || text(value).ok_or_else(|| bad("not a string"));
        match name.as_str() {
            "id" => {
                t.id = string()?;
                has_id = true;
            }
            "state" => t.state = string()?,
            "submitted-at" => t.submitted_at = opt_int()?,
            "attempts" => t.attempts = opt_int()?,
            "max-attempts" => t.max_attempts = opt_int()?,
            "last-attempt-at" => t.last_attempt_at = opt_int()?,
            "next-attempt-at" => t.next_attempt_at = opt_int()?,
            "last-error" => t.last_error = string()?,
            "user" => t.user = string()?,
            "db" => t.db = opt_int()?,
            "keys" => t.keys = texts(value).map_err(|e| bad(&e))?,
            "commands" => {
                let Value::Array(cmds) = value else {
                    return Err(bad("not an array"));
                };
                t.commands = cmds
                    .iter()
                    .map(texts)
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(&e))?;
            }
            _ => {}
        }
    }
    if !has_id {
        return Err(format!("a task without an id: {v:?}"));
    }
    Ok(t)
}

/// `[next-cursor, [task, ...]]`.
pub fn parse_page(v: &Value) -> Result<Page, String> {
    let unexpected = || format!("TXU.TASKS: unexpected reply {v:?}");
    let Value::Array(parts) = v else {
        return Err(unexpected());
    };
    let [cursor, tasks] = parts.as_slice() else {
        return Err(unexpected());
    };
    let cursor = text(cursor).ok_or_else(unexpected)?;
    let Value::Array(tasks) = tasks else {
        return Err(unexpected());
    };
    let tasks = tasks.iter().map(parse_task).collect::<Result<_, _>>()?;
    Ok(Page { cursor, tasks })
}

/// `txu_tasks_pending` and `txu_tasks_dead` from the text of `INFO txu`.
pub fn parse_counts(info: &str) -> Counts {
    let field = |name: &str| {
        info.lines().find_map(|line| {
            let (k, v) = line.trim_end().split_once(':')?;
            (k == name).then(|| v.parse().ok()).flatten()
        })
    };
    Counts {
        pending: field("txu_tasks_pending"),
        dead: field("txu_tasks_dead"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn fields() -> Vec<(Value, Value)> {
        vec![
            (bulk("id"), bulk("1795000000000-4")),
            (bulk("state"), bulk("pending")),
            (bulk("submitted-at"), Value::Int(1_795_000_000_000)),
            (bulk("attempts"), Value::Int(1)),
            (bulk("max-attempts"), Value::Int(5)),
            (bulk("last-attempt-at"), Value::Int(1_795_000_001_000)),
            (bulk("next-attempt-at"), Value::Int(1_795_000_060_000)),
            (
                bulk("last-error"),
                bulk("NOREPLICAS Not enough good replicas to write."),
            ),
            (bulk("user"), bulk("default")),
            (bulk("db"), Value::Int(0)),
            (bulk("keys"), Value::Array(vec![bulk("a"), bulk("b")])),
            (
                bulk("commands"),
                Value::Array(vec![
                    Value::Array(vec![bulk("SET"), bulk("a"), bulk("1")]),
                    Value::Array(vec![bulk("INCR"), bulk("b")]),
                ]),
            ),
        ]
    }

    fn want() -> Task {
        Task {
            id: "1795000000000-4".into(),
            state: "pending".into(),
            submitted_at: Some(1_795_000_000_000),
            attempts: Some(1),
            max_attempts: Some(5),
            last_attempt_at: Some(1_795_000_001_000),
            next_attempt_at: Some(1_795_000_060_000),
            last_error: "NOREPLICAS Not enough good replicas to write.".into(),
            user: "default".into(),
            db: Some(0),
            keys: vec!["a".into(), "b".into()],
            commands: vec![
                vec!["SET".into(), "a".into(), "1".into()],
                vec!["INCR".into(), "b".into()],
            ],
        }
    }

    #[test]
    fn a_task_parses_from_resp3_and_resp2_alike() {
        let map = Value::Map(fields());
        let flat = Value::Array(fields().into_iter().flat_map(|(k, v)| [k, v]).collect());
        assert_eq!(parse_task(&map), Ok(want()));
        assert_eq!(parse_task(&flat), Ok(want()));
    }

    #[test]
    fn fields_are_found_by_name_and_may_be_absent() {
        let mut f = fields();
        f.reverse();
        f.retain(|(k, _)| *k != bulk("last-attempt-at") && *k != bulk("next-attempt-at"));
        f.push((bulk("something-new"), Value::Int(7)));
        let t = parse_task(&Value::Map(f)).unwrap();
        assert_eq!(t.last_attempt_at, None);
        assert_eq!(t.next_attempt_at, None);
        assert_eq!(t.commands, want().commands);
        assert!(parse_task(&Value::Map(vec![(bulk("state"), bulk("dead"))])).is_err());
        assert!(parse_task(&Value::Array(vec![bulk("id")])).is_err());
    }

    #[test]
    fn a_page_is_a_cursor_and_tasks() {
        let reply = Value::Array(vec![bulk("42"), Value::Array(vec![Value::Map(fields())])]);
        let page = parse_page(&reply).unwrap();
        assert_eq!(page.cursor, "42");
        assert_eq!(page.tasks, vec![want()]);
        let empty = Value::Array(vec![bulk("0"), Value::Array(vec![])]);
        assert_eq!(parse_page(&empty).unwrap().tasks, vec![]);
        assert!(parse_page(&Value::Array(vec![Value::Map(fields())])).is_err());
    }

    #[test]
    fn the_filter_is_matched_literally_anywhere_in_the_error() {
        assert_eq!(contains_glob(""), None);
        assert_eq!(contains_glob("NOREPLICAS").as_deref(), Some("*NOREPLICAS*"));
        assert_eq!(
            contains_glob(r"a*b?[c]\").as_deref(),
            Some(r"*a\*b\?\[c\]\\*")
        );
    }

    #[test]
    fn counts_come_from_info_txu() {
        let info = "# txu\r\ntxu_tasks_pending:3\r\ntxu_tasks_dead:12\r\ntxu_tasks_dead_x:1\r\n";
        assert_eq!(
            parse_counts(info),
            Counts {
                pending: Some(3),
                dead: Some(12)
            }
        );
        assert_eq!(
            parse_counts("# txu\r\n"),
            Counts {
                pending: None,
                dead: None
            }
        );
    }
}
