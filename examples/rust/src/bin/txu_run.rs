//! txu from Rust with the `redis` crate (sync API), against one Redis server.
//!
//! Shows: `TXU.RUN` that commits and that rolls back; the three-command form
//! (`TXU.BEGIN` / `TXU.QUEUE` / `TXU.EXEC`) on ONE connection with `redis::pipe()`;
//! turning txu's error replies into a typed `Outcome`; a transaction refused before it
//! ran (`EXECABORT`); and a `RETRY` transaction that is deferred, blocks a later one
//! (`PENDING`), and is applied once the fault clears.
//!
//! Run: TXU_URL=redis://127.0.0.1:6379 cargo run --release --bin txu_run

use std::time::{Duration, Instant};

use redis::{Connection, ErrorKind, RedisResult, ServerErrorKind, Value};
use txu_examples::{outcome, txu_run, Outcome};

/// The three-command form, safely: TXU.BEGIN / TXU.QUEUE ... / TXU.EXEC keep the
/// transaction ON THE CONNECTION, so all of them must go over one connection that nobody
/// else uses meanwhile. A `redis::pipe()` run on a `Connection` you hold does exactly
/// that: it writes the commands back to back and reads their replies, on that socket.
///
/// Wrong: sending them as separate calls through a pool (r2d2, bb8) — each call may get
/// another connection, so TXU.QUEUE lands outside the transaction or in another thread's;
/// or as separate calls on a shared `MultiplexedConnection` / `ConnectionManager` — other
/// tasks' commands interleave on the same socket, into this transaction. (A pipeline is
/// written in one piece even there.) Prefer `TXU.RUN`: it keeps no connection state.
fn txu_exec_pinned(con: &mut Connection, commands: &[&[&str]]) -> RedisResult<Outcome> {
    let mut pipe = redis::pipe();
    pipe.cmd("TXU.BEGIN");
    for command in commands {
        pipe.cmd("TXU.QUEUE").arg(*command);
    }
    pipe.cmd("TXU.EXEC");
    // Without ignore_errors() any error reply in the pipeline makes query() return one
    // aggregated "Pipeline failure" error whose code() is None for txu's codes (see main).
    // With it, each command's reply comes back as its own RedisResult.
    let mut replies: Vec<RedisResult<Value>> = pipe.ignore_errors().query(con)?;
    let exec = replies.pop().expect("one reply per command");
    let mut replies = replies.into_iter();
    // TXU.BEGIN replies the transaction id, or an error (e.g. "calls can not be nested").
    replies.next().expect("TXU.BEGIN's reply")?;
    // A refused TXU.QUEUE spoils the transaction (TXU.EXEC then says only "previous
    // errors"): report the TXU.QUEUE error itself, which says what was wrong. (The crate's
    // Display says "ResponseError: ..." for ERR: rebuild the server's text from code() and
    // detail().)
    for (i, reply) in replies.enumerate() {
        if let Err(e) = reply {
            let (code, detail) = (e.code().unwrap_or("?"), e.detail().unwrap_or(""));
            return Ok(Outcome::Refused(format!("command {} refused: {code} {detail}", i + 1)));
        }
    }
    outcome(exec)
}

fn mget(con: &mut Connection, keys: &[&str]) -> RedisResult<Vec<Option<String>>> {
    redis::cmd("MGET").arg(keys).query(con)
}

/// Forces NOREPLICAS for writes (min-replicas-to-write 1 on a server with no replica)
/// until dropped: the reset runs even when the example fails half-way.
struct NoReplicasFault(redis::Client);

impl NoReplicasFault {
    fn start(client: &redis::Client) -> RedisResult<Self> {
        let fault = NoReplicasFault(client.clone());
        fault.set(1)?;
        Ok(fault)
    }
    fn set(&self, n: u32) -> RedisResult<()> {
        let mut con = self.0.get_connection()?;
        redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg(n).query(&mut con)
    }
}

impl Drop for NoReplicasFault {
    fn drop(&mut self) {
        if let Err(e) = self.set(0) {
            eprintln!("could not reset min-replicas-to-write: {e}");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("TXU_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let client = redis::Client::open(url.as_str())?;
    let mut con = client.get_connection()?;

    let (alice, bob) = ("rs:balance:alice", "rs:balance:bob");
    redis::cmd("DEL").arg(&[alice, bob, "rs:order"]).exec(&mut con)?;
    redis::cmd("MSET").arg(&[alice, "100", bob, "20"]).exec(&mut con)?;

    // 1. TXU.RUN commits: move 30 from alice to bob, if alice stays >= 0.
    let transfer = |amount: &str| {
        txu_run(
            &[],
            &[
                &["DECRBY", alice, amount],
                &["TXU.CHECK", "1", "GE", "0"], // a guard on command 1's reply
                &["INCRBY", bob, amount],
            ],
        )
    };
    match outcome(transfer("30").query(&mut con))? {
        Outcome::Committed(replies) => {
            println!("committed: replies {replies:?}");
            assert_eq!(replies, vec![Value::Int(70), Value::Okay, Value::Int(50)]);
        }
        other => panic!("transfer of 30 should commit, got {other:?}"),
    }

    // 2. TXU.RUN rolls back: the check fails after DECRBY ran; DECRBY is undone.
    match outcome(transfer("100").query(&mut con))? {
        Outcome::RolledBack { command, name, error } => {
            println!("rolled back: command {command} ({name}) failed: {error}");
            assert_eq!((command, name.as_str()), (2, "TXU.CHECK"));
            assert!(error.contains("replied -30"), "unexpected check error: {error}");
        }
        other => panic!("transfer of 100 should roll back, got {other:?}"),
    }
    let balances = mget(&mut con, &[alice, bob])?;
    println!("balances after the rollback: {balances:?}");
    assert_eq!(balances, [Some("70".into()), Some("50".into())], "rollback left a write");

    // What the crate itself gives for txu's error replies.
    let err = transfer("100").query::<Value>(&mut con).unwrap_err();
    println!("raw RedisError: kind {:?}, code {:?}", err.kind(), err.code());
    assert_eq!(err.kind(), ErrorKind::Extension, "the crate learned the ROLLBACK code?");
    assert_eq!(err.code(), Some("ROLLBACK"));
    assert!(err.detail().unwrap().starts_with("command 2 (TXU.CHECK) failed: "));

    // 3. Refused before running: BLPOP could block the server, so nothing runs.
    let refused = txu_run(&[], &[&["SET", alice, "0"], &["BLPOP", "rs:queue", "0"]]);
    let err = refused.query::<Value>(&mut con).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server(ServerErrorKind::ExecAbort));
    match outcome(Err(err))? {
        Outcome::Refused(why) => {
            println!("refused: {why}");
            assert!(why.contains("command 2 (BLPOP)"), "unexpected refusal: {why}");
        }
        other => panic!("BLPOP should be refused, got {other:?}"),
    }

    // 4. The three-command form, pinned to one connection by a pipeline.
    match txu_exec_pinned(&mut con, &[&["DECRBY", alice, "10"], &["INCRBY", bob, "10"]])? {
        Outcome::Committed(replies) => {
            println!("three-command form committed: {replies:?}");
            assert_eq!(replies, vec![Value::Int(60), Value::Int(60)]);
        }
        other => panic!("pinned transfer should commit, got {other:?}"),
    }
    let wrongtype: &[&[&str]] = &[&["DECRBY", alice, "10"], &["HSET", bob, "currency", "EUR"]];
    match txu_exec_pinned(&mut con, wrongtype)? {
        Outcome::RolledBack { command, name, error } => {
            println!("three-command form rolled back: command {command} ({name}): {error}");
            assert_eq!((command, name.as_str()), (2, "HSET"));
            assert!(error.starts_with("WRONGTYPE"), "unexpected error: {error}");
        }
        other => panic!("HSET on a string should roll back, got {other:?}"),
    }
    assert_eq!(mget(&mut con, &[alice, bob])?, [Some("60".into()), Some("60".into())]);
    match txu_exec_pinned(&mut con, &[&["SET", alice, "0"], &["BLPOP", "rs:queue", "0"]])? {
        Outcome::Refused(why) => {
            println!("three-command form refused: {why}");
            assert!(why.contains("'BLPOP' is not allowed"), "unexpected refusal: {why}");
        }
        other => panic!("queued BLPOP should be refused, got {other:?}"),
    }
    // The crate's gotcha: the same pipeline WITHOUT ignore_errors() fails with one
    // aggregated error that names no code for txu's replies (code() is None).
    let mut pipe = redis::pipe();
    pipe.cmd("TXU.BEGIN").cmd("TXU.QUEUE").arg(wrongtype[1]).cmd("TXU.EXEC");
    let err = pipe.query::<Value>(&mut con).unwrap_err();
    println!("pipeline without ignore_errors(): {err}");
    assert_eq!((err.kind(), err.code(), err.detail()), (ErrorKind::Extension, None, None));

    // 5. DEFERRED, then PENDING, then done. Writes fail with NOREPLICAS while the fault
    // lasts; a RETRY transaction is then rolled back and kept as a task.
    let fault = NoReplicasFault::start(&client)?;
    let place = txu_run(&["RETRY", "5"], &[&["SET", "rs:order", "placed"]]);
    let task = match outcome(place.query(&mut con))? {
        Outcome::Deferred { task, why } => {
            println!("deferred as task {task}: {why}");
            assert!(why.starts_with("NOREPLICAS"), "unexpected cause: {why}");
            task
        }
        other => panic!("RETRY under NOREPLICAS should be deferred, got {other:?}"),
    };
    // A plain transaction on the same key may not overtake the task.
    let cancel = txu_run(&[], &[&["SET", "rs:order", "cancelled"]]);
    match outcome(cancel.query(&mut con))? {
        Outcome::Pending { key, task: blocker } => {
            println!("pending: key {key} waits for task {blocker}; nothing applied");
            assert_eq!((key.as_str(), blocker.as_str()), ("rs:order", task.as_str()));
        }
        other => panic!("a write behind a deferred task should be PENDING, got {other:?}"),
    }
    drop(fault); // the fault clears: the server's timer retries the task

    // TXU.STATUS replies field/value pairs (a map over RESP3): `state`, then for a pending
    // or dead task the whole task (numbers, and arrays for its keys and commands).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status: Vec<redis::Value> = redis::cmd("TXU.STATUS").arg(&task).query(&mut con)?;
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let state = status
            .chunks(2)
            .find(|p| text(&p[0]).as_deref() == Some("state"))
            .and_then(|p| p.get(1).and_then(text));
        let state = state.as_deref();
        if state == Some("done") {
            break;
        }
        assert!(state == Some("pending"), "task {task} is not pending: {status:?}");
        assert!(Instant::now() < deadline, "task {task} still pending: {status:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let order: Option<String> = redis::cmd("GET").arg("rs:order").query(&mut con)?;
    println!("task {task} done: rs:order = {order:?}");
    assert_eq!(order.as_deref(), Some("placed"));
    Ok(())
}
