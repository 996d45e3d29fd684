//! `TXU.RUN`: a whole transaction in one command. Each command is its argument count and its
//! arguments; everything is validated before anything runs; the reply is `TXU.EXEC`'s (with
//! `RETAIN`: the id and the replies). It keeps no connection state, so it works through
//! pooled and shared connections, and it declares its keys, so the server routes and checks
//! them (`COMMAND GETKEYS`, ACL key patterns).
//!
//! Reply exactness (RESP2/RESP3) is checked in tests/replies.rs and rollback of every type in
//! tests/rollback_types.rs, both against `TXU.EXEC` and `TXU.RUN`.

mod common;

use common::{
    exec_tx, query, queue, run, run_frames, show, text, wait_replica_synced, RawConn, Server, State,
};
use redis::Value;
use std::sync::{Arc, Mutex};

fn raw_run(c: &mut RawConn, args: &[&str]) -> String {
    let mut full = vec!["TXU.RUN"];
    full.extend_from_slice(args);
    show(&run(c, &full))
}

#[test]
fn commits_and_rolls_back_like_exec() {
    let s = Server::start();
    let mut c = s.raw();
    assert_eq!(
        raw_run(
            &mut c,
            &["3", "SET", "alice", "100", "3", "INCRBY", "alice", "5", "2", "GET", "alice"]
        ),
        "*3\r\n+OK\r\n:105\r\n$3\r\n105\r\n"
    );
    // A binary argument is just an argument.
    let bin: &[u8] = b"a\r\n$3\r\n*1\0\xff";
    let r = c.cmd(&[b"TXU.RUN", b"3", b"SET", b"b", bin, b"2", b"GET", b"b"]);
    let mut want = b"*2\r\n+OK\r\n$11\r\n".to_vec();
    want.extend_from_slice(bin);
    want.extend_from_slice(b"\r\n");
    assert_eq!(r, want);
    // A failing command undoes the ones before it.
    let before = s.digest();
    assert_eq!(
        raw_run(
            &mut c,
            &["3", "SET", "alice", "0", "2", "DEL", "b", "3", "HSET", "alice", "f"]
        ),
        "-EXECABORT Transaction discarded because of an error in command 3 (HSET): ERR wrong \
         number of arguments for 'hset' command\r\n"
    );
    assert_eq!(
        raw_run(
            &mut c,
            &["3", "SET", "alice", "x", "2", "DEL", "b", "2", "INCR", "alice"]
        ),
        "-ROLLBACK command 3 (INCR) failed: ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(s.digest(), before, "the failed transaction changed nothing");
    assert_eq!(s.info_u64("txu", "txu_transactions_rolled_back"), 1);
}

#[test]
fn malformed_frames_are_syntax_errors_and_apply_nothing() {
    let s = Server::start();
    let mut c = s.raw();
    let cases: [(&[&str], &str); 6] = [
        (
            &[],
            "ERR syntax error: TXU.RUN needs at least one command: [RETRY <n>] [RETAIN <ms>] \
             <argc> <command> [arg ...] ...",
        ),
        (
            &["RETAIN", "1000"],
            "ERR syntax error: TXU.RUN needs at least one command: [RETRY <n>] [RETAIN <ms>] \
             <argc> <command> [arg ...] ...",
        ),
        (
            &["SET", "k", "v"],
            "ERR syntax error: expected the argument count of command 1, got 'SET'",
        ),
        (
            &["3", "SET", "k", "v", "0"],
            "ERR syntax error: the argument count of command 2 must be at least 1 (its name)",
        ),
        (
            &["3", "SET", "k", "v", "3", "SET", "j"],
            "ERR syntax error: command 2 has 3 arguments, but only 2 follow",
        ),
        (
            &["RETRY", "0", "3", "SET", "k", "v"],
            "ERR syntax error: RETRY needs a number of attempts of at least 1",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(raw_run(&mut c, args), format!("-{want}\r\n"), "{args:?}");
    }
    assert_eq!(query(&mut s.conn(), &["DBSIZE"]), Value::Int(0));
}

#[test]
fn a_command_that_does_not_validate_aborts_everything_with_its_position() {
    let s = Server::start();
    let mut c = s.raw();
    let cases: [(&[&str], &str); 4] = [
        (
            &["3", "SET", "k", "v", "2", "NOPE", "x"],
            "EXECABORT Transaction discarded because of an error in command 2 (NOPE): ERR \
             unknown command 'NOPE'",
        ),
        (
            &["3", "SET", "k", "v", "1", "GET"],
            "EXECABORT Transaction discarded because of an error in command 2 (GET): ERR wrong \
             number of arguments for 'get' command",
        ),
        (
            &["2", "WATCH", "k", "3", "SET", "k", "v"],
            "EXECABORT Transaction discarded because of an error in command 1 (WATCH): ERR \
             'WATCH' is not allowed in a TXU transaction: transactions cannot be nested",
        ),
        (
            &["3", "SET", "k", "v", "4", "TXU.RUN", "2", "GET", "k"],
            "EXECABORT Transaction discarded because of an error in command 2 (TXU.RUN): ERR \
             'TXU.RUN' is not allowed in a TXU transaction: TXU commands cannot be queued",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(raw_run(&mut c, args), format!("-{want}\r\n"), "{args:?}");
    }
    assert_eq!(
        query(&mut s.conn(), &["DBSIZE"]),
        Value::Int(0),
        "nothing applied"
    );
    assert_eq!(s.info_u64("txu", "txu_transactions_aborted"), 4);
}

#[test]
fn retain_replies_the_id_and_retry_defers() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    query(&mut con, &["SET", "k", "old"]);
    let Value::Array(r) = query(
        &mut con,
        &["TXU.RUN", "RETAIN", "60000", "3", "SET", "k", "new"],
    ) else {
        panic!("TXU.RUN RETAIN");
    };
    assert_eq!(r.len(), 2, "{r:?}");
    let txid = text(&r[0]);
    assert_eq!(r[1], Value::Array(vec![Value::Okay]));
    assert_eq!(text(&query(&mut con, &["TXU.ROLLBACK", &txid])), "OK");
    assert_eq!(text(&query(&mut con, &["GET", "k"])), "old");

    query(&mut con, &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    let r = raw_run(&mut c, &["RETRY", "5", "3", "SET", "k", "later"]);
    query(&mut con, &["CONFIG", "SET", "min-replicas-to-write", "0"]);
    assert!(
        r.starts_with("-DEFERRED ") && r.contains(" NOREPLICAS "),
        "{r}"
    );
    common::wait_until(
        "the deferred TXU.RUN applies",
        std::time::Duration::from_secs(10),
        || query(&mut con, &["GET", "k"]) == Value::BulkString(b"later".to_vec()),
    );
}

#[test]
fn it_declares_its_keys_for_routing_and_acl() {
    let s = Server::start();
    let mut con = s.conn();
    let Value::Array(keys) = query(
        &mut con,
        &[
            "COMMAND", "GETKEYS", "TXU.RUN", "RETAIN", "5", "3", "SET", "a", "1", "2", "GET", "b",
            "5", "MSET", "c", "1", "d", "2",
        ],
    ) else {
        panic!("COMMAND GETKEYS");
    };
    let keys: Vec<String> = keys.iter().map(text).collect();
    assert_eq!(keys, ["a", "b", "c", "d"]);
    // A user who may only read `ro:*` reads them through TXU.RUN, and may not write them.
    assert_eq!(
        text(&query(
            &mut con,
            &["ACL", "SETUSER", "r", "on", ">pw", "+txu.run", "+get", "+set", "%R~ro:*", "~rw:*"]
        )),
        "OK"
    );
    query(&mut con, &["SET", "ro:x", "1"]);
    let mut c = s.raw();
    assert_eq!(run(&mut c, &["AUTH", "r", "pw"]), b"+OK\r\n");
    assert_eq!(
        raw_run(&mut c, &["2", "GET", "ro:x", "3", "SET", "rw:y", "2"]),
        "*2\r\n$1\r\n1\r\n+OK\r\n"
    );
    let r = raw_run(&mut c, &["3", "SET", "rw:z", "1", "3", "SET", "ro:x", "2"]);
    assert!(r.starts_with("-NOPERM "), "{r}");
    assert_eq!(
        query(&mut con, &["EXISTS", "rw:z"]),
        Value::Int(0),
        "refused before anything ran"
    );
}

#[test]
fn shared_connections_and_open_transactions_do_not_mix() {
    let s = Server::start();
    let mut con = s.conn();
    query(&mut con, &["MSET", "alice", "1000", "bob", "0"]);
    // Two threads share one connection, as a pool may hand it out: each TXU.RUN is whole.
    let shared = Arc::new(Mutex::new(s.raw()));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let r = shared.lock().unwrap().cmd(&[
                        b"TXU.RUN", b"3", b"DECRBY", b"alice", b"1", b"3", b"INCRBY", b"bob", b"1",
                    ]);
                    assert!(r.starts_with(b"*2\r\n:"), "{}", show(&r));
                }
            })
        })
        .collect();
    // Meanwhile another connection has a three-command transaction open.
    let mut other = s.raw();
    let id = common::begin(&mut other);
    queue(&mut other, &["INCRBY", "bob", "1000"]);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        raw_run(&mut s.raw(), &["2", "GET", "bob"]),
        "*1\r\n$3\r\n200\r\n"
    );
    assert_eq!(
        show(&run(&mut other, &["TXU.EXEC"])),
        "*1\r\n:1200\r\n",
        "{id}"
    );
    assert_eq!(text(&query(&mut con, &["GET", "alice"])), "800");
}

#[test]
fn inside_multi_it_runs_when_exec_does() {
    let s = Server::start();
    let mut c = s.raw();
    assert_eq!(run(&mut c, &["MULTI"]), b"+OK\r\n");
    assert_eq!(
        run(&mut c, &["TXU.RUN", "3", "SET", "k", "1", "2", "INCR", "k"]),
        b"+QUEUED\r\n"
    );
    assert_eq!(run(&mut c, &["EXEC"]), b"*1\r\n*2\r\n+OK\r\n:2\r\n");
}

#[test]
fn replicas_and_the_aof_get_what_the_primary_has() {
    let mut s = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let replica = s.start_replica_of();
    let mut c = s.raw();
    query(&mut s.conn(), &["HSET", "h", "a", "1"]);
    for i in 0..20 {
        let v = i.to_string();
        let r = run_frames(
            &mut c,
            &[],
            &[
                vec!["HSET", "h", "a", v.as_str()],
                vec!["RPUSH", "l", v.as_str()],
                vec!["SADD", "s", v.as_str()],
                // Every third transaction fails at its end and is undone.
                if i % 3 == 0 {
                    vec!["INCR", "h"]
                } else {
                    vec!["INCR", "n"]
                },
            ],
        );
        assert_eq!(
            r.starts_with(b"-ROLLBACK command 4 (INCR)"),
            i % 3 == 0,
            "{}",
            show(&r)
        );
    }
    let (_, r) = exec_tx(&mut c, &[], &[["GET", "n"]]);
    assert_eq!(r, b"*1\r\n$2\r\n13\r\n");
    wait_replica_synced(&s, &replica);
    let primary = State::of(&s, true);
    primary.assert_same(&State::of(&replica, true), "replica");
    s.restart();
    primary.assert_same(&State::of(&s, true), "after an AOF restart");
}
