//! `TXU.BEGIN CAPTURE` (issue 6): on servers whose command filters know the client (Redis ≥ 7.2,
//! Valkey) every command of the capturing connection is queued as `TXU.QUEUE` would; on Redis
//! 7.0 the option is refused loudly.

mod common;

use common::{Flavor, Server};
use redis::Value;

fn capture_expected(server: &Server) -> bool {
    let v = server.version();
    v.flavor == Flavor::Valkey || v.at_least(7, 2)
}

fn ok(v: &Value) -> bool {
    matches!(v, Value::Okay) || matches!(v, Value::SimpleString(s) if s == "OK")
}

fn queued(v: &Value) -> bool {
    matches!(v, Value::SimpleString(s) if s == "QUEUED")
}

#[test]
fn capture_is_refused_or_offered_according_to_the_server() {
    let server = Server::start();
    let mut c = server.conn();
    let r: redis::RedisResult<String> = redis::cmd("TXU.BEGIN").arg("CAPTURE").query(&mut c);
    if capture_expected(&server) {
        let id = r.expect("capture is offered on this server");
        assert!(id.contains('-'), "a transaction id: {id}");
        let _: () = redis::cmd("TXU.ROLLBACK")
            .query(&mut c)
            .expect("rollback ends capture");
    } else {
        let e = r.expect_err("Redis 7.0 must refuse CAPTURE").to_string();
        assert!(e.contains("CAPTURE needs Redis >= 7.2 or Valkey"), "{e}");
        assert!(
            e.contains("TXU.QUEUE"),
            "the refusal says what to use instead: {e}"
        );
        // Refused means no transaction was opened: the next command runs as itself.
        let r: redis::RedisResult<Value> = redis::cmd("TXU.EXEC").query(&mut c);
        assert!(r.unwrap_err().to_string().contains("without TXU.BEGIN"));
    }
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("txu") && l.contains("loaded on"))
        .expect("the module logs one line naming the server and its features");
    let want = if capture_expected(&server) {
        "capture=yes"
    } else {
        "capture=no"
    };
    assert!(line.contains(want), "{line}");
}

#[test]
fn captured_commands_are_queued_and_run_atomically() {
    let server = Server::start();
    if !capture_expected(&server) {
        return; // covered by the refusal test above
    }
    let mut c = server.conn();
    let mut other = server.conn();
    let _: String = redis::cmd("TXU.BEGIN")
        .arg("CAPTURE")
        .query(&mut c)
        .unwrap();
    for cmd in [vec!["SET", "a", "1"], vec!["INCR", "a"], vec!["GET", "a"]] {
        let v: Value = redis::cmd(cmd[0]).arg(&cmd[1..]).query(&mut c).unwrap();
        assert!(queued(&v), "{cmd:?} → {v:?}");
    }
    // Another connection is not captured and sees nothing yet.
    let seen: Option<String> = redis::cmd("GET").arg("a").query(&mut other).unwrap();
    assert_eq!(seen, None);
    let v: Value = redis::cmd("TXU.EXEC").query(&mut c).unwrap();
    match v {
        Value::Array(items) => {
            assert_eq!(items.len(), 3);
            assert!(ok(&items[0]));
            assert_eq!(items[1], Value::Int(2));
            assert_eq!(items[2], Value::BulkString(b"2".to_vec()));
        }
        other => panic!("expected an array, got {other:?}"),
    }
    // Capture ended with EXEC: commands run directly again.
    let v: Value = redis::cmd("INCR").arg("a").query(&mut c).unwrap();
    assert_eq!(v, Value::Int(3));
}

#[test]
fn captured_failure_rolls_back_and_refusals_abort() {
    let server = Server::start();
    if !capture_expected(&server) {
        return;
    }
    let mut c = server.conn();
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("text")
        .query(&mut c)
        .unwrap();
    let before = server.digest();
    let _: String = redis::cmd("TXU.BEGIN")
        .arg("CAPTURE")
        .query(&mut c)
        .unwrap();
    let _: Value = redis::cmd("SET").arg("n").arg("1").query(&mut c).unwrap();
    let _: Value = redis::cmd("INCR").arg("s").query(&mut c).unwrap();
    let e = redis::cmd("TXU.EXEC")
        .query::<Value>(&mut c)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ROLLBACK") && e.contains("command 2 (INCR) failed"),
        "{e}"
    );
    assert_eq!(server.digest(), before);

    // A command refused at queue time aborts the whole transaction, as with TXU.QUEUE.
    let _: String = redis::cmd("TXU.BEGIN")
        .arg("CAPTURE")
        .query(&mut c)
        .unwrap();
    let _: Value = redis::cmd("SET").arg("n").arg("1").query(&mut c).unwrap();
    let e = redis::cmd("SELECT")
        .arg(1)
        .query::<Value>(&mut c)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'SELECT' is not allowed in a TXU transaction"),
        "{e}"
    );
    let e = redis::cmd("TXU.EXEC")
        .query::<Value>(&mut c)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Transaction discarded because of previous errors"),
        "{e}"
    );
    assert_eq!(server.digest(), before);
}

#[test]
fn rollback_ends_capture_and_disconnect_frees_it() {
    let server = Server::start();
    if !capture_expected(&server) {
        return;
    }
    let mut c = server.conn();
    let _: String = redis::cmd("TXU.BEGIN")
        .arg("CAPTURE")
        .query(&mut c)
        .unwrap();
    let _: Value = redis::cmd("SET").arg("x").arg("1").query(&mut c).unwrap();
    let _: () = redis::cmd("TXU.ROLLBACK").query(&mut c).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("x").query(&mut c).unwrap();
    assert_eq!(v, None, "nothing applied and GET ran directly");

    {
        let mut gone = server.conn();
        let _: String = redis::cmd("TXU.BEGIN")
            .arg("CAPTURE")
            .query(&mut gone)
            .unwrap();
    }
    common::wait_until(
        "the closed connection's transaction is freed",
        std::time::Duration::from_secs(10),
        || server.info_field("txu", "txu_transactions_open").as_deref() == Some("0"),
    );
    // With nobody capturing, other clients' commands are untouched.
    let v: Value = redis::cmd("SET").arg("y").arg("2").query(&mut c).unwrap();
    assert!(ok(&v));
}

#[test]
fn capture_leaves_replication_alone() {
    let primary = Server::start();
    if !capture_expected(&primary) {
        return;
    }
    let replica = primary.start_replica_of();
    let mut c = primary.conn();
    let _: String = redis::cmd("TXU.BEGIN")
        .arg("CAPTURE")
        .query(&mut c)
        .unwrap();
    let _: Value = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let _: Value = redis::cmd("LPUSH").arg("l").arg("a").query(&mut c).unwrap();
    let _: Value = redis::cmd("TXU.EXEC").query(&mut c).unwrap();
    // While another client captures on the primary, the replication stream still applies.
    let mut d = primary.conn();
    let _: String = redis::cmd("TXU.BEGIN")
        .arg("CAPTURE")
        .query(&mut d)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("1")
        .query(&mut c)
        .unwrap();
    common::wait_replica_synced(&primary, &replica);
    assert_eq!(primary.digest(), replica.digest());
    let v: Option<String> = redis::cmd("GET")
        .arg("plain")
        .query(&mut replica.conn())
        .unwrap();
    assert_eq!(v.as_deref(), Some("1"));
}
