//! `TXU.BEGIN CAPTURE`: on servers whose command filters know the client (Redis ≥ 7.2, Valkey)
//! every command of the capturing connection is queued as `TXU.QUEUE` would; on Redis 7.0 the
//! option is refused with a documented error.
//!
//! Every test runs on every server. Where capture is not offered, a test checks that refusal
//! (the exact error, and that no transaction was opened) instead of capturing, and says so on
//! stderr: `<test>: capture not supported on this server (...): checked the refusal instead`.

mod common;

use common::{err, expect, query, Flavor, Server};
use redis::{Connection, Value};
use std::io::Write;

/// The refusal on servers without `CommandFilterGetClientId` (README, `TXU.BEGIN`).
const REFUSAL: &str = "ERR TXU.BEGIN CAPTURE needs Redis >= 7.2 or Valkey (this server's command \
                       filters cannot tell clients apart); queue commands with TXU.QUEUE instead";

fn capture_expected(server: &Server) -> bool {
    let v = server.version();
    v.flavor == Flavor::Valkey || v.at_least(7, 2)
}

/// True where the server offers `TXU.BEGIN CAPTURE`. Elsewhere asserts the documented refusal
/// on a new connection: the exact error, no transaction opened (`TXU.EXEC` has none), and the
/// next command runs as itself (not captured); then writes a line saying `test` checked the
/// refusal instead (to stderr directly, so that it shows without `--nocapture`).
fn capture_offered(server: &Server, test: &str) -> bool {
    if capture_expected(server) {
        return true;
    }
    let mut c = server.raw();
    expect(&mut c, &["TXU.BEGIN", "CAPTURE"], &err(REFUSAL));
    expect(
        &mut c,
        &["TXU.EXEC"],
        &err("ERR TXU.EXEC without TXU.BEGIN"),
    );
    expect(&mut c, &["SET", "refused:k", "v"], "+OK\r\n");
    expect(&mut c, &["DEL", "refused:k"], ":1\r\n");
    let v = server.version();
    let _ = writeln!(
        std::io::stderr(),
        "{test}: capture not supported on this server ({:?} {}.{}.{}): checked the refusal \
         instead",
        v.flavor,
        v.major,
        v.minor,
        v.patch
    );
    false
}

/// `TXU.BEGIN CAPTURE`; returns the transaction id.
fn begin_capture(c: &mut Connection) -> String {
    let id = common::text(&query(c, &["TXU.BEGIN", "CAPTURE"]));
    assert!(id.contains('-'), "a transaction id: {id}");
    id
}

/// Runs `args` on a capturing connection: it must reply `QUEUED`.
fn captured(c: &mut Connection, args: &[&str]) {
    let v = query(c, args);
    assert!(
        matches!(&v, Value::SimpleString(s) if s == "QUEUED"),
        "{args:?} → {v:?}"
    );
}

fn is_ok(v: &Value) -> bool {
    matches!(v, Value::Okay) || matches!(v, Value::SimpleString(s) if s == "OK")
}

/// The error text of a command that must fail.
fn error_of(c: &mut Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    cmd.arg(&args[1..]);
    cmd.query::<Value>(c)
        .expect_err(&format!("{args:?} must fail"))
        .to_string()
}

#[test]
fn capture_is_refused_or_offered_according_to_the_server() {
    let server = Server::start();
    if capture_offered(
        &server,
        "capture_is_refused_or_offered_according_to_the_server",
    ) {
        let mut c = server.conn();
        begin_capture(&mut c);
        let _: () = redis::cmd("TXU.ROLLBACK")
            .query(&mut c)
            .expect("rollback ends capture");
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
    if !capture_offered(&server, "captured_commands_are_queued_and_run_atomically") {
        return;
    }
    let mut c = server.conn();
    let mut other = server.conn();
    begin_capture(&mut c);
    for cmd in [["SET", "a", "1"].as_slice(), &["INCR", "a"], &["GET", "a"]] {
        captured(&mut c, cmd);
    }
    // Another connection is not captured and sees nothing yet.
    assert_eq!(query(&mut other, &["GET", "a"]), Value::Nil);
    match query(&mut c, &["TXU.EXEC"]) {
        Value::Array(items) => {
            assert_eq!(items.len(), 3);
            assert!(is_ok(&items[0]));
            assert_eq!(items[1], Value::Int(2));
            assert_eq!(items[2], Value::BulkString(b"2".to_vec()));
        }
        other => panic!("expected an array, got {other:?}"),
    }
    // Capture ended with EXEC: commands run directly again.
    assert_eq!(query(&mut c, &["INCR", "a"]), Value::Int(3));
}

#[test]
fn captured_failure_rolls_back_and_refusals_abort() {
    let server = Server::start();
    if !capture_offered(&server, "captured_failure_rolls_back_and_refusals_abort") {
        return;
    }
    let mut c = server.conn();
    query(&mut c, &["SET", "s", "text"]);
    let before = server.digest();
    begin_capture(&mut c);
    captured(&mut c, &["SET", "n", "1"]);
    captured(&mut c, &["INCR", "s"]);
    let e = error_of(&mut c, &["TXU.EXEC"]);
    assert!(
        e.starts_with("ROLLBACK") && e.contains("command 2 (INCR) failed"),
        "{e}"
    );
    assert_eq!(server.digest(), before);

    // A command refused at queue time aborts the whole transaction, as with TXU.QUEUE.
    begin_capture(&mut c);
    captured(&mut c, &["SET", "n", "1"]);
    let e = error_of(&mut c, &["SELECT", "1"]);
    assert!(
        e.contains("'SELECT' is not allowed in a TXU transaction"),
        "{e}"
    );
    let e = error_of(&mut c, &["TXU.EXEC"]);
    assert!(
        e.contains("Transaction discarded because of previous errors"),
        "{e}"
    );
    assert_eq!(server.digest(), before);
}

/// MULTI's habits in capture mode: `EXEC` runs the transaction (`TXU.EXEC`), `DISCARD` drops
/// it (`TXU.ROLLBACK`); with arguments they are queued, refused, and spoil the transaction.
#[test]
fn exec_and_discard_end_a_captured_transaction() {
    let server = Server::start();
    if !capture_offered(&server, "exec_and_discard_end_a_captured_transaction") {
        return;
    }
    let mut c = server.conn();
    begin_capture(&mut c);
    captured(&mut c, &["SET", "e", "1"]);
    captured(&mut c, &["INCR", "e"]);
    match query(&mut c, &["EXEC"]) {
        Value::Array(items) => {
            assert_eq!(items.len(), 2, "{items:?}");
            assert!(is_ok(&items[0]), "{items:?}");
            assert_eq!(items[1], Value::Int(2));
        }
        other => panic!("EXEC ran TXU.EXEC: expected its replies, got {other:?}"),
    }
    assert_eq!(
        query(&mut c, &["GET", "e"]),
        Value::BulkString(b"2".to_vec())
    );

    begin_capture(&mut c);
    captured(&mut c, &["SET", "d", "1"]);
    assert!(is_ok(&query(&mut c, &["DISCARD"])));
    assert_eq!(
        query(&mut c, &["EXISTS", "d"]),
        Value::Int(0),
        "nothing applied"
    );
    // Capture ended: EXEC is the server's own again.
    let e = error_of(&mut c, &["EXEC"]);
    assert!(e.contains("EXEC without MULTI"), "{e}");
}

#[test]
fn rollback_ends_capture_and_disconnect_frees_it() {
    let server = Server::start();
    if !capture_offered(&server, "rollback_ends_capture_and_disconnect_frees_it") {
        return;
    }
    let mut c = server.conn();
    begin_capture(&mut c);
    captured(&mut c, &["SET", "x", "1"]);
    assert!(is_ok(&query(&mut c, &["TXU.ROLLBACK"])));
    assert_eq!(
        query(&mut c, &["GET", "x"]),
        Value::Nil,
        "nothing applied and GET ran directly"
    );

    {
        let mut gone = server.conn();
        begin_capture(&mut gone);
    }
    common::wait_until(
        "the closed connection's transaction is freed",
        std::time::Duration::from_secs(10),
        || server.info_field("txu", "txu_transactions_open").as_deref() == Some("0"),
    );
    // With nobody capturing, other clients' commands are untouched.
    assert!(is_ok(&query(&mut c, &["SET", "y", "2"])));
}

#[test]
fn capture_leaves_replication_alone() {
    let primary = Server::start();
    if !capture_offered(&primary, "capture_leaves_replication_alone") {
        return;
    }
    let replica = primary.start_replica_of();
    let mut c = primary.conn();
    begin_capture(&mut c);
    captured(&mut c, &["SET", "k", "v"]);
    captured(&mut c, &["LPUSH", "l", "a"]);
    query(&mut c, &["TXU.EXEC"]);
    // While another client captures on the primary, the replication stream still applies.
    let mut d = primary.conn();
    begin_capture(&mut d);
    assert!(is_ok(&query(&mut c, &["SET", "plain", "1"])));
    common::wait_replica_synced(&primary, &replica);
    assert_eq!(primary.digest(), replica.digest());
    assert_eq!(
        query(&mut replica.conn(), &["GET", "plain"]),
        Value::BulkString(b"1".to_vec())
    );
}
