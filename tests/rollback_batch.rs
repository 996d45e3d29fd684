//! Batched compensations: a rolled-back transaction whose compensations are runs of plain
//! `SET key value` and of `DEL key` applies each run as one `MSET` / `DEL` with many keys.
//! Nothing else may change: the data comes back exactly (`DEBUG DIGEST`, absolute expiries,
//! `OBJECT ENCODING`), replicas and a restart from the AOF converge on it, every compensation
//! still fires its keyspace event in the order the single commands would, counts as a change,
//! signals `WATCH`ers, and injected faults still fail compensations one by one.

mod common;

use common::{
    assert_rolled_back, error_text, exec_tx, parse_info, query, run, show, text,
    wait_replica_synced, wait_until, RawConn, Server, State,
};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// Plain strings the transaction overwrites (their compensations are one `MSET`).
const PLAIN: usize = 40;
/// Keys the transaction creates (their compensations are one `DEL`).
const CREATED: usize = 10;

fn ok(c: &mut RawConn, args: &[&str]) {
    let r = run(c, args);
    assert_eq!(r, b"+OK\r\n", "{args:?}: {}", show(&r));
}

/// Keys of every kind a rollback must give back: plain strings (integers, short and long
/// values, binary), strings with an expiry, a hash, and keys that do not exist yet.
fn seed(c: &mut RawConn) {
    for i in 0..PLAIN {
        let v = match i % 4 {
            0 => format!("{i}"),
            1 => format!("short-{i}"),
            2 => format!("{}-{i}", "x".repeat(100)),
            _ => format!("-{i}"),
        };
        ok(c, &["SET", &format!("p:{i}"), &v]);
    }
    ok(c, &["SET", "bin", "a\u{0}b"]);
    for i in 0..4 {
        ok(
            c,
            &[
                "SET",
                &format!("t:{i}"),
                &format!("ttl-{i}"),
                "PX",
                "3600000",
            ],
        );
    }
    assert_eq!(run(c, &["HSET", "h", "f", "1", "g", "2"]), b":2\r\n");
    ok(c, &["SET", "bad", "not-a-number"]);
}

/// The transaction: overwrites plain strings, strings with an expiry and a hash field,
/// creates keys, replaces a string by a list, then fails on its last command.
fn failing_tx() -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let mut push = |args: &[&str]| cmds.push(args.iter().map(|a| a.to_string()).collect());
    for i in 0..PLAIN / 2 {
        push(&["SET", &format!("p:{i}"), "new"]);
    }
    for i in 0..CREATED {
        push(&["SET", &format!("n:{i}"), "created"]);
    }
    push(&["HSET", "h", "f", "changed"]);
    push(&["SET", "t:0", "no-ttl-now"]);
    push(&["SET", "t:1", "other", "PX", "5"]);
    for i in PLAIN / 2..PLAIN {
        push(&["APPEND", &format!("p:{i}"), "-more"]);
    }
    push(&["DEL", "bin"]);
    push(&["LPUSH", "bin", "now-a-list"]);
    push(&["INCR", "bad"]);
    cmds
}

fn run_failing_tx(c: &mut RawConn) {
    let cmds = failing_tx();
    let (_, r) = exec_tx(c, &[], &cmds);
    assert_rolled_back(&r, cmds.len(), "INCR");
}

/// Every key and its `OBJECT ENCODING`, sorted; an integer-encoded string reads as
/// `embstr`. A compensating write (batched or not, like any write made through the call API
/// with module-owned arguments) stores an integer-looking value as `embstr`: the module's
/// reference on the argument keeps the server from converting a shared object. Replicas and
/// a restart from the AOF hold it as `int`. The value and the digest are the same.
fn encodings(s: &Server) -> Vec<(String, String)> {
    let mut con = s.conn();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let e = text(&query(&mut con, &["OBJECT", "ENCODING", &k]));
            (k, if e == "int" { "embstr".to_string() } else { e })
        })
        .collect()
}

#[test]
fn rollback_restores_values_expiries_and_encodings() {
    let s = Server::start();
    let mut c = s.raw();
    seed(&mut c);
    let before = State::of(&s, true);
    assert_eq!(before.keys_with_ttl(), 4);
    let enc = encodings(&s);
    let dirty0 = s.info_u64("persistence", "rdb_changes_since_last_save");
    run_failing_tx(&mut c);
    before.assert_same(&State::of(&s, true), "after the rollback");
    assert_eq!(encodings(&s), enc, "OBJECT ENCODING after the rollback");
    // Every forward write and every compensation counts as a change, as the single
    // commands do: forward 20 SET + 10 SET + HSET + 2 SET + 20 APPEND + DEL + LPUSH = 55;
    // compensations: 20 + 10 + 1 + 2 + 20 + 1 = 54 (DEL+LPUSH of `bin` is one full restore).
    let dirty = s.info_u64("persistence", "rdb_changes_since_last_save") - dirty0;
    assert_eq!(dirty, 55 + 54, "changes counted for the transaction");
    assert_eq!(s.info_u64("txu", "txu_transactions_rolled_back"), 1);
    // The runs were batched: newest first, `bin` and p:39..p:20 are one MSET, the created
    // keys one DEL, p:19..p:0 another MSET (the forward DEL of `bin` is the other DEL).
    let calls = |cmd: &str| {
        let stat = s.info_field("commandstats", &format!("cmdstat_{cmd}"));
        stat.and_then(|v| {
            v.strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
    };
    assert_eq!(calls("mset"), Some(2));
    assert_eq!(calls("del"), Some(2));
}

#[test]
fn replica_and_aof_converge_after_a_batched_rollback() {
    let mut s = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let replica = s.start_replica_of();
    let mut c = s.raw();
    seed(&mut c);
    let before = State::of(&s, false);
    run_failing_tx(&mut c);
    // The same transaction again over the restored data.
    run_failing_tx(&mut c);
    let after = State::of(&s, false);
    before.assert_same(&after, "primary after the rollbacks");
    wait_replica_synced(&s, &replica);
    after.assert_same(&State::of(&replica, false), "replica vs primary");
    assert_eq!(encodings(&replica), encodings(&s), "replica encodings");
    s.kill9_and_restart();
    after.assert_same(&State::of(&s, false), "after a restart from the AOF");
}

/// Reads keyspace-event messages (`pmessage pattern channel key`) until none arrives for
/// a while; returns (event, key) pairs.
fn read_events(sub: &mut RawConn) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(r) = sub.try_read_reply(Duration::from_millis(300)) {
        let items = common::flat_array(&r).unwrap_or_default();
        if let [kind, _, channel, key] = items.as_slice() {
            if kind == "pmessage" {
                let event = channel.rsplit(':').next().unwrap_or_default().to_string();
                out.push((event, key.clone()));
            }
        }
    }
    out
}

#[test]
fn compensations_fire_their_keyspace_events_in_order() {
    let s = Server::start_with(&["--notify-keyspace-events", "KEA"]);
    let mut c = s.raw();
    for i in 0..3 {
        ok(&mut c, &["SET", &format!("e:{i}"), "old"]);
    }
    ok(&mut c, &["SET", "bad", "x"]);
    let mut sub = s.raw();
    let r = run(&mut sub, &["PSUBSCRIBE", "__keyevent@0__:*"]);
    assert!(show(&r).contains("psubscribe"), "{}", show(&r));
    let cmds: Vec<Vec<&str>> = vec![
        vec!["SET", "e:0", "new"],
        vec!["SET", "e:1", "new"],
        vec!["SET", "c:0", "new"],
        vec!["SET", "c:1", "new"],
        vec!["SET", "e:2", "new"],
        vec!["INCR", "bad"],
    ];
    let (_, r) = exec_tx(&mut c, &[], &cmds);
    assert_rolled_back(&r, 6, "INCR");
    let events = read_events(&mut sub);
    let ev = |e: &str, k: &str| (e.to_string(), k.to_string());
    let want = vec![
        // The transaction's writes.
        ev("set", "e:0"),
        ev("set", "e:1"),
        ev("set", "c:0"),
        ev("set", "c:1"),
        ev("set", "e:2"),
        // The compensations, newest first: SET e:2, DEL c:1 c:0, MSET e:1 e:0.
        ev("set", "e:2"),
        ev("del", "c:1"),
        ev("del", "c:0"),
        ev("set", "e:1"),
        ev("set", "e:0"),
    ];
    assert_eq!(events, want);
}

#[test]
fn rollback_of_a_retained_transaction_signals_watchers() {
    let s = Server::start();
    let mut c = s.raw();
    let (id, r) = exec_tx(
        &mut c,
        &["RETAIN", "600000"],
        &[
            &["SET", "w:0", "a"],
            &["SET", "w:1", "b"],
            &["SET", "w:2", "c"],
        ],
    );
    assert!(show(&r).starts_with("*3"), "{}", show(&r));
    let mut watcher = s.raw();
    ok(&mut watcher, &["WATCH", "w:1"]);
    let mut other = s.raw();
    ok(&mut other, &["WATCH", "unrelated"]);
    ok(&mut c, &["TXU.ROLLBACK", &id]);
    for k in ["w:0", "w:1", "w:2"] {
        assert_eq!(run(&mut c, &["EXISTS", k]), b":0\r\n", "{k}");
    }
    // The key the watcher watched was deleted by the rollback: its EXEC is refused.
    ok(&mut watcher, &["MULTI"]);
    assert_eq!(run(&mut watcher, &["PING"]), b"+QUEUED\r\n");
    assert_eq!(run(&mut watcher, &["EXEC"]), b"*-1\r\n");
    // A client watching nothing the rollback wrote is left alone.
    ok(&mut other, &["MULTI"]);
    assert_eq!(run(&mut other, &["PING"]), b"+QUEUED\r\n");
    assert_eq!(run(&mut other, &["EXEC"]), b"*1\r\n+PONG\r\n");
}

#[test]
fn injected_faults_still_count_per_compensation() {
    let s = Server::start_with_fault_module(&[]);
    let mut c = s.raw();
    seed(&mut c);
    let d0 = s.digest();
    // Two failures: the newest compensation fails twice, then succeeds (3 attempts).
    ok(&mut c, &["TXU._FAULT", "UNDO", "2"]);
    run_failing_tx(&mut c);
    assert_eq!(s.digest(), d0);
    assert_eq!(s.info_u64("txu", "txu_rollback_failures"), 0);

    // Three: the newest compensation fails every attempt, nothing is applied, the rest is
    // pending and names the key of the newest write; the timer finishes it.
    ok(&mut c, &["TXU._FAULT", "UNDO", "3"]);
    let cmds = failing_tx();
    let (id, r) = exec_tx(&mut c, &[], &cmds);
    let e = error_text(&r, "TXU.EXEC");
    let head = format!("ROLLBACK command {} (INCR) failed: ", cmds.len());
    assert!(e.starts_with(&head), "{e}");
    assert!(e.contains("rollback incomplete (bin: "), "{e}");
    assert!(e.contains(&format!("pending as {id}")), "{e}");
    assert_eq!(s.info_u64("txu", "txu_rollback_failures"), 1);
    wait_until("the pending rollback to finish", DEADLINE, || {
        let i = parse_info(&show(&run(&mut c, &["INFO", "txu"])));
        i.get("txu_rollbacks_pending").map(String::as_str) == Some("0")
            && i.get("txu_rollbacks_pending_finished").map(String::as_str) == Some("1")
    });
    assert_eq!(s.digest(), d0);
}
