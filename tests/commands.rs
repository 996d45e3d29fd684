//! The command contract of README "Commands", line by line: TXU.BEGIN, TXU.QUEUE (every
//! validation failure and every row of the refusal table), TXU.EXEC, TXU.ROLLBACK, and a
//! connection that closes with an open transaction. Replies are checked byte for byte on raw
//! connections, so the exact error texts are asserted.

mod common;

use common::{
    begin, bulk, encode_command, err, exists, expect, queue, run, run_err, show, wait_until,
    RawConn, Server, EXECABORT, QUEUED,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// Asserts that the connection has no open transaction and can open a new one.
fn assert_left_transaction(c: &mut RawConn) {
    expect(c, &["TXU.EXEC"], &err("ERR TXU.EXEC without TXU.BEGIN"));
    begin(c);
    expect(c, &["TXU.ROLLBACK"], "+OK\r\n");
}

// ----- TXU.BEGIN ----------------------------------------------------------------------------

#[test]
fn begin_ids_are_bulk_strings_distinct_across_calls_and_restart() {
    let mut s = Server::start();
    let mut ids = Vec::new();
    {
        let mut a = s.raw();
        let mut b = s.raw();
        for _ in 0..20 {
            ids.push(begin(&mut a));
            ids.push(begin(&mut b));
            expect(&mut a, &["TXU.ROLLBACK"], "+OK\r\n");
            expect(&mut b, &["TXU.EXEC"], "*0\r\n");
        }
    }
    s.restart();
    let mut c = s.raw();
    for _ in 0..20 {
        ids.push(begin(&mut c));
        expect(&mut c, &["TXU.ROLLBACK"], "+OK\r\n");
    }
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "transaction ids repeat (before and after a restart): {ids:?}"
    );
    // Each process draws its own nonce, the high half of an id's second part: a restarted
    // server (or a promoted replica whose clock is behind) never reissues an old id, even for
    // the same millisecond and counter.
    let nonce = |id: &String| {
        let n: u64 = id
            .split_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap();
        n >> 32
    };
    let (before, after) = ids.split_at(40);
    assert!(
        before.iter().all(|id| nonce(id) == nonce(&before[0])),
        "{before:?}"
    );
    assert!(
        after.iter().all(|id| nonce(id) == nonce(&after[0])),
        "{after:?}"
    );
    assert_ne!(
        nonce(&before[0]),
        nonce(&after[0]),
        "the restarted server kept its nonce"
    );
}

#[test]
fn a_promoted_replica_issues_ids_its_old_primary_never_did() {
    let primary = Server::start();
    let replica = primary.start_replica_of();
    let mut p = primary.raw();
    let old: Vec<String> = (0..50)
        .map(|_| {
            let id = begin(&mut p);
            expect(&mut p, &["TXU.ROLLBACK"], "+OK\r\n");
            id
        })
        .collect();
    drop(primary);
    let mut r = replica.raw();
    expect(&mut r, &["REPLICAOF", "NO", "ONE"], "+OK\r\n");
    for _ in 0..50 {
        let id = begin(&mut r);
        assert!(!old.contains(&id), "{id} was issued by the old primary");
        let (n_old, n_new) = (
            old[0].split_once('-').unwrap().1.parse::<u64>().unwrap() >> 32,
            id.split_once('-').unwrap().1.parse::<u64>().unwrap() >> 32,
        );
        assert_ne!(
            n_old, n_new,
            "the promoted replica shares its old primary's nonce"
        );
        expect(&mut r, &["TXU.ROLLBACK"], "+OK\r\n");
    }
}

#[test]
fn begin_cannot_be_nested_and_keeps_the_open_transaction() {
    let s = Server::start();
    let mut c = s.raw();
    begin(&mut c);
    expect(
        &mut c,
        &["TXU.BEGIN"],
        &err("ERR TXU.BEGIN calls can not be nested"),
    );
    // The first transaction is still open and intact.
    queue(&mut c, &["SET", "nested:k", "v"]);
    expect(&mut c, &["TXU.EXEC"], "*1\r\n+OK\r\n");
    assert!(exists(&s, "nested:k"));
    assert_left_transaction(&mut c);
}

#[test]
fn begin_inside_multi_is_refused() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["MULTI"], "+OK\r\n");
    expect(&mut c, &["TXU.BEGIN"], QUEUED);
    expect(&mut c, &["SET", "multi:k", "v"], QUEUED);
    expect(
        &mut c,
        &["EXEC"],
        "*2\r\n-ERR TXU.BEGIN is not allowed inside MULTI\r\n+OK\r\n",
    );
    // No transaction was opened by it.
    expect(
        &mut c,
        &["TXU.QUEUE", "GET", "multi:k"],
        &err("ERR TXU.QUEUE without TXU.BEGIN"),
    );
    assert_eq!(s.info_u64("txu", "txu_transactions_open"), 0);
}

#[test]
fn begin_from_a_script_is_refused() {
    let s = Server::start();
    let mut c = s.raw();
    let text = run_err(&mut c, &["EVAL", "return redis.call('TXU.BEGIN')", "0"]);
    assert!(
        text.to_ascii_lowercase().contains("script"),
        "EVAL of TXU.BEGIN: the error should say it is refused from a script: {text:?}"
    );
    // Neither the script nor this connection has a transaction now.
    expect(
        &mut c,
        &["TXU.QUEUE", "GET", "k"],
        &err("ERR TXU.QUEUE without TXU.BEGIN"),
    );
    assert_eq!(s.info_u64("txu", "txu_transactions_open"), 0);
}

// ----- TXU.QUEUE ----------------------------------------------------------------------------

#[test]
fn queue_replies_queued_and_runs_nothing_before_exec() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["SET", "q:n", "5"], "+OK\r\n");
    begin(&mut c);
    queue(&mut c, &["SET", "q:k", "v"]);
    queue(&mut c, &["incr", "q:n"]);
    // Nothing has run yet: another client sees the old state.
    assert!(!exists(&s, "q:k"));
    expect(&mut s.raw(), &["GET", "q:n"], &bulk("5"));
    expect(&mut c, &["TXU.EXEC"], "*2\r\n+OK\r\n:6\r\n");
    expect(&mut s.raw(), &["GET", "q:k"], &bulk("v"));
}

#[test]
fn queue_exec_and_rollback_without_begin() {
    let s = Server::start();
    let mut c = s.raw();
    expect(
        &mut c,
        &["TXU.QUEUE", "SET", "k", "v"],
        &err("ERR TXU.QUEUE without TXU.BEGIN"),
    );
    expect(
        &mut c,
        &["TXU.EXEC"],
        &err("ERR TXU.EXEC without TXU.BEGIN"),
    );
    expect(
        &mut c,
        &["TXU.ROLLBACK"],
        &err("ERR TXU.ROLLBACK without TXU.BEGIN"),
    );
    assert!(!exists(&s, "k"));
    // A transaction belongs to its connection: another one has none.
    begin(&mut c);
    let mut other = s.raw();
    expect(
        &mut other,
        &["TXU.QUEUE", "SET", "k", "v"],
        &err("ERR TXU.QUEUE without TXU.BEGIN"),
    );
    expect(
        &mut other,
        &["TXU.EXEC"],
        &err("ERR TXU.EXEC without TXU.BEGIN"),
    );
    queue(&mut c, &["SET", "k", "mine"]);
    expect(&mut c, &["TXU.EXEC"], "*1\r\n+OK\r\n");
    expect(&mut other, &["GET", "k"], &bulk("mine"));
}

/// One queue-time refusal: the command, and the error texts accepted for it (for subcommands
/// the README's `'<NAME>'` may be the container or `CONTAINER SUB`).
struct Refusal {
    args: Vec<String>,
    errors: Vec<String>,
}

fn refusal(args: &[&str], errors: &[String]) -> Refusal {
    Refusal {
        args: args.iter().map(|a| a.to_string()).collect(),
        errors: errors.to_vec(),
    }
}

/// `ERR '<NAME>' is not allowed in a TXU transaction: <why>`, once per accepted name.
fn not_allowed(names: &[&str], why: &str) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("ERR '{n}' is not allowed in a TXU transaction: {why}"))
        .collect()
}

/// In a fresh transaction: queue a write, then the refused command, then a second write; the
/// refusal must reply one of the expected errors, and TXU.EXEC must reply EXECABORT and apply
/// neither write. Returns a description of every deviation.
fn check_refusal(s: &Server, n: usize, r: &Refusal) -> Result<(), String> {
    let mut c = s.raw();
    let before = format!("refusal:{n}:before");
    let after = format!("refusal:{n}:after");
    begin(&mut c);
    queue(&mut c, &["SET", &before, "v"]);
    let mut full: Vec<&str> = vec!["TXU.QUEUE"];
    full.extend(r.args.iter().map(String::as_str));
    let got = show(&run(&mut c, &full));
    let mut problems = Vec::new();
    if !r.errors.iter().any(|e| got == err(e)) {
        problems.push(format!("queue reply {got:?}, want one of {:?}", r.errors));
    }
    let got = show(&run(&mut c, &["TXU.QUEUE", "SET", &after, "v"]));
    if got != QUEUED {
        problems.push(format!("queue after the refusal replied {got:?}"));
    }
    let got = show(&run(&mut c, &["TXU.EXEC"]));
    if got != EXECABORT {
        problems.push(format!("TXU.EXEC replied {got:?}"));
    }
    for key in [&before, &after] {
        if exists(s, key) {
            problems.push(format!("{key} was written"));
        }
    }
    let got = show(&run(&mut c, &["TXU.EXEC"]));
    if got != err("ERR TXU.EXEC without TXU.BEGIN") {
        problems.push(format!("second TXU.EXEC replied {got:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("TXU.QUEUE {:?}: {}", r.args, problems.join("; ")))
    }
}

fn check_all(s: &Server, cases: &[Refusal]) {
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, r)| check_refusal(s, i, r).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} refusals wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn unknown_commands_subcommands_and_wrong_arity_abort_the_transaction() {
    let s = Server::start();
    let arity = |n: &str| vec![format!("ERR wrong number of arguments for '{n}' command")];
    let cases = vec![
        refusal(
            &["nosuchcommand", "a"],
            &["ERR unknown command 'nosuchcommand'".to_string()],
        ),
        refusal(
            &["object", "nosuchsub", "k"],
            &["ERR unknown subcommand 'nosuchsub' of 'OBJECT'".to_string()],
        ),
        refusal(
            &["XINFO", "nosuchsub", "k"],
            &["ERR unknown subcommand 'nosuchsub' of 'XINFO'".to_string()],
        ),
        refusal(&["get"], &arity("get")),
        refusal(&["get", "a", "b"], &arity("get")),
        refusal(&["SET", "k"], &arity("set")),
        refusal(&["hset", "h", "f"], &arity("hset")),
        refusal(&["object"], &arity("object")),
        refusal(&["object", "encoding"], &arity("object|encoding")),
        refusal(&["XINFO", "STREAM"], &arity("xinfo|stream")),
        // README's order: unknown (sub)command, then arity, then the refusal table.
        refusal(
            &["CONFIG", "nosuchsub"],
            &["ERR unknown subcommand 'nosuchsub' of 'CONFIG'".to_string()],
        ),
        refusal(&["CONFIG", "GET"], &arity("config|get")),
        refusal(&["BLPOP", "q"], &arity("blpop")),
        refusal(&["MULTI", "extra"], &arity("multi")),
        refusal(&["SELECT"], &arity("select")),
    ];
    check_all(&s, &cases);
}

#[test]
fn bare_queue_is_wrong_arity_and_aborts() {
    let s = Server::start();
    let mut c = s.raw();
    begin(&mut c);
    queue(&mut c, &["SET", "bare:k", "v"]);
    expect(
        &mut c,
        &["TXU.QUEUE"],
        &err("ERR wrong number of arguments for 'txu.queue' command"),
    );
    expect(&mut c, &["TXU.EXEC"], EXECABORT);
    assert!(!exists(&s, "bare:k"));
    assert_left_transaction(&mut c);
}

#[test]
fn refused_nested_transactions_and_txu_commands() {
    let s = Server::start();
    let nested = |n: &str| not_allowed(&[n], "transactions cannot be nested");
    let txu = |n: &str| not_allowed(&[n], "TXU commands cannot be queued");
    let cases = vec![
        refusal(&["MULTI"], &nested("MULTI")),
        refusal(&["exec"], &nested("EXEC")),
        refusal(&["DISCARD"], &nested("DISCARD")),
        refusal(&["WATCH", "k"], &nested("WATCH")),
        refusal(&["UNWATCH"], &nested("UNWATCH")),
        refusal(&["TXU.BEGIN"], &txu("TXU.BEGIN")),
        refusal(&["txu.queue", "GET", "k"], &txu("TXU.QUEUE")),
        refusal(&["TXU.EXEC"], &txu("TXU.EXEC")),
        refusal(&["TXU.ROLLBACK"], &txu("TXU.ROLLBACK")),
    ];
    check_all(&s, &cases);
}

#[test]
fn refused_blocking_commands() {
    let s = Server::start();
    let why = "it can block the server";
    let blocks = |n: &str| not_allowed(&[n], why);
    let mut cases = vec![
        refusal(&["BLPOP", "q", "0"], &blocks("BLPOP")),
        refusal(&["brpop", "q", "0"], &blocks("BRPOP")),
        refusal(&["BRPOPLPUSH", "a", "b", "0"], &blocks("BRPOPLPUSH")),
        refusal(
            &["BLMOVE", "a", "b", "LEFT", "RIGHT", "0"],
            &blocks("BLMOVE"),
        ),
        refusal(&["BLMPOP", "0", "1", "a", "LEFT"], &blocks("BLMPOP")),
        refusal(&["BZPOPMIN", "z", "0"], &blocks("BZPOPMIN")),
        refusal(&["BZPOPMAX", "z", "0"], &blocks("BZPOPMAX")),
        refusal(&["BZMPOP", "0", "1", "z", "MIN"], &blocks("BZMPOP")),
        refusal(&["WAIT", "0", "0"], &blocks("WAIT")),
        refusal(
            &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"],
            &blocks("XREAD"),
        ),
        refusal(
            &["xread", "count", "1", "block", "10", "streams", "s", "0"],
            &blocks("XREAD"),
        ),
        refusal(
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
            &blocks("XREADGROUP"),
        ),
    ];
    // WAITAOF exists since Redis 7.2.
    if s.version().at_least(7, 2) {
        cases.push(refusal(&["WAITAOF", "0", "0", "0"], &blocks("WAITAOF")));
    }
    check_all(&s, &cases);
}

#[test]
fn refused_pubsub_and_connection_commands() {
    let s = Server::start();
    let ps = "pub/sub acts on connections, not on keys, and cannot be undone";
    let conn = "it acts on the connection, not on keys";
    let cases = vec![
        refusal(&["SUBSCRIBE", "ch"], &not_allowed(&["SUBSCRIBE"], ps)),
        refusal(&["PSUBSCRIBE", "ch*"], &not_allowed(&["PSUBSCRIBE"], ps)),
        refusal(&["SSUBSCRIBE", "ch"], &not_allowed(&["SSUBSCRIBE"], ps)),
        refusal(&["UNSUBSCRIBE"], &not_allowed(&["UNSUBSCRIBE"], ps)),
        refusal(&["PUNSUBSCRIBE"], &not_allowed(&["PUNSUBSCRIBE"], ps)),
        refusal(&["SUNSUBSCRIBE"], &not_allowed(&["SUNSUBSCRIBE"], ps)),
        refusal(&["PUBLISH", "ch", "m"], &not_allowed(&["PUBLISH"], ps)),
        refusal(&["SPUBLISH", "ch", "m"], &not_allowed(&["SPUBLISH"], ps)),
        refusal(
            &["PUBSUB", "CHANNELS"],
            &not_allowed(&["PUBSUB", "PUBSUB CHANNELS"], ps),
        ),
        refusal(&["SELECT", "1"], &not_allowed(&["SELECT"], conn)),
        refusal(&["AUTH", "user", "pass"], &not_allowed(&["AUTH"], conn)),
        refusal(&["HELLO", "3"], &not_allowed(&["HELLO"], conn)),
        refusal(
            &["CLIENT", "SETNAME", "x"],
            &not_allowed(&["CLIENT", "CLIENT SETNAME"], conn),
        ),
        refusal(
            &["client", "list"],
            &not_allowed(&["CLIENT", "CLIENT LIST"], conn),
        ),
        refusal(&["RESET"], &not_allowed(&["RESET"], conn)),
        refusal(&["QUIT"], &not_allowed(&["QUIT"], conn)),
        refusal(&["READONLY"], &not_allowed(&["READONLY"], conn)),
        refusal(&["READWRITE"], &not_allowed(&["READWRITE"], conn)),
        refusal(&["ASKING"], &not_allowed(&["ASKING"], conn)),
        refusal(&["MONITOR"], &not_allowed(&["MONITOR"], conn)),
    ];
    check_all(&s, &cases);
}

#[test]
fn refused_dataset_database_and_script_commands() {
    let s = Server::start();
    let whole = "it changes whole databases and cannot be undone";
    let other = "it writes to another database";
    let scripts = "it manages scripts and functions, not keys";
    let cases = vec![
        refusal(&["FLUSHALL"], &not_allowed(&["FLUSHALL"], whole)),
        refusal(&["flushdb", "ASYNC"], &not_allowed(&["FLUSHDB"], whole)),
        refusal(&["SWAPDB", "0", "1"], &not_allowed(&["SWAPDB"], whole)),
        refusal(&["MOVE", "k", "1"], &not_allowed(&["MOVE"], other)),
        refusal(
            &["COPY", "a", "b", "DB", "1"],
            &not_allowed(&["COPY"], other),
        ),
        refusal(
            &["copy", "a", "b", "REPLACE", "db", "0"],
            &not_allowed(&["COPY"], other),
        ),
        refusal(
            &["SCRIPT", "FLUSH"],
            &not_allowed(&["SCRIPT", "SCRIPT FLUSH"], scripts),
        ),
        refusal(
            &["FUNCTION", "LIST"],
            &not_allowed(&["FUNCTION", "FUNCTION LIST"], scripts),
        ),
    ];
    check_all(&s, &cases);
}

#[test]
fn refused_administration_commands() {
    let s = Server::start();
    let why = "it administers the server, not keys";
    let one = |n: &str| not_allowed(&[n], why);
    let sub = |n: &str, full: &str| not_allowed(&[n, full], why);
    let cases = vec![
        refusal(&["CONFIG", "GET", "port"], &sub("CONFIG", "CONFIG GET")),
        refusal(
            &["CONFIG", "SET", "maxmemory", "1"],
            &sub("CONFIG", "CONFIG SET"),
        ),
        refusal(&["DEBUG", "DIGEST"], &sub("DEBUG", "DEBUG DIGEST")),
        refusal(&["SHUTDOWN"], &one("SHUTDOWN")),
        refusal(&["shutdown", "NOSAVE"], &one("SHUTDOWN")),
        refusal(&["MODULE", "LIST"], &sub("MODULE", "MODULE LIST")),
        refusal(&["ACL", "WHOAMI"], &sub("ACL", "ACL WHOAMI")),
        refusal(&["SAVE"], &one("SAVE")),
        refusal(&["BGSAVE"], &one("BGSAVE")),
        refusal(&["BGREWRITEAOF"], &one("BGREWRITEAOF")),
        refusal(&["REPLICAOF", "NO", "ONE"], &one("REPLICAOF")),
        refusal(&["SLAVEOF", "NO", "ONE"], &one("SLAVEOF")),
        refusal(&["FAILOVER"], &one("FAILOVER")),
        refusal(&["CLUSTER", "INFO"], &sub("CLUSTER", "CLUSTER INFO")),
        refusal(
            &["MIGRATE", "127.0.0.1", "1", "k", "0", "0"],
            &one("MIGRATE"),
        ),
        // Flagged `admin` by the server, not named in the table.
        refusal(&["SLOWLOG", "GET"], &sub("SLOWLOG", "SLOWLOG GET")),
        refusal(&["LATENCY", "RESET"], &sub("LATENCY", "LATENCY RESET")),
    ];
    check_all(&s, &cases);
}

#[test]
fn xread_without_block_and_copy_without_db_are_allowed() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["XADD", "s", "1-1", "f", "v"], &bulk("1-1"));
    expect(&mut c, &["XADD", "block", "2-1", "g", "w"], &bulk("2-1"));
    expect(&mut c, &["SET", "a", "va"], "+OK\r\n");
    begin(&mut c);
    queue(&mut c, &["XREAD", "COUNT", "10", "STREAMS", "s", "0"]);
    // A stream named "block" after STREAMS is a key, not the BLOCK option.
    queue(&mut c, &["XREAD", "STREAMS", "block", "0"]);
    queue(&mut c, &["COPY", "a", "b"]);
    queue(&mut c, &["COPY", "a", "b", "REPLACE"]);
    let want = format!(
        "*4\r\n\
         *1\r\n*2\r\n{}*1\r\n*2\r\n{}*2\r\n{}{}\
         *1\r\n*2\r\n{}*1\r\n*2\r\n{}*2\r\n{}{}\
         :1\r\n:1\r\n",
        bulk("s"),
        bulk("1-1"),
        bulk("f"),
        bulk("v"),
        bulk("block"),
        bulk("2-1"),
        bulk("g"),
        bulk("w"),
    );
    expect(&mut c, &["TXU.EXEC"], &want);
    expect(&mut c, &["GET", "b"], &bulk("va"));
}

#[test]
fn max_queued_from_module_args() {
    let s = Server::start_with_module_args(&[], &["txu.max-queued", "3"]);
    let mut c = s.raw();
    expect(
        &mut c,
        &["CONFIG", "GET", "txu.max-queued"],
        &format!("*2\r\n{}{}", bulk("txu.max-queued"), bulk("3")),
    );
    // Exactly the limit commits.
    begin(&mut c);
    for i in 0..3 {
        queue(&mut c, &["SET", &format!("ok:{i}"), "v"]);
    }
    expect(&mut c, &["TXU.EXEC"], "*3\r\n+OK\r\n+OK\r\n+OK\r\n");
    // One more is a validation error.
    begin(&mut c);
    for i in 0..3 {
        queue(&mut c, &["SET", &format!("max:{i}"), "v"]);
    }
    expect(
        &mut c,
        &["TXU.QUEUE", "SET", "max:3", "v"],
        &err("ERR too many commands in this transaction (txu.max-queued is 3)"),
    );
    expect(&mut c, &["TXU.EXEC"], EXECABORT);
    for i in 0..4 {
        assert!(!exists(&s, &format!("max:{i}")), "max:{i} was written");
    }
    assert_left_transaction(&mut c);
}

#[test]
fn max_queued_set_at_runtime() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["CONFIG", "SET", "txu.max-queued", "2"], "+OK\r\n");
    expect(
        &mut c,
        &["CONFIG", "GET", "txu.max-queued"],
        &format!("*2\r\n{}{}", bulk("txu.max-queued"), bulk("2")),
    );
    begin(&mut c);
    queue(&mut c, &["SET", "rt:0", "v"]);
    queue(&mut c, &["SET", "rt:1", "v"]);
    expect(
        &mut c,
        &["TXU.QUEUE", "SET", "rt:2", "v"],
        &err("ERR too many commands in this transaction (txu.max-queued is 2)"),
    );
    expect(
        &mut c,
        &["TXU.QUEUE", "SET", "rt:3", "v"],
        &err("ERR too many commands in this transaction (txu.max-queued is 2)"),
    );
    expect(&mut c, &["TXU.EXEC"], EXECABORT);
    for i in 0..4 {
        assert!(!exists(&s, &format!("rt:{i}")), "rt:{i} was written");
    }
    begin(&mut c);
    queue(&mut c, &["SET", "rt:0", "v"]);
    queue(&mut c, &["SET", "rt:1", "v"]);
    expect(&mut c, &["TXU.EXEC"], "*2\r\n+OK\r\n+OK\r\n");
}

// ----- TXU.EXEC -----------------------------------------------------------------------------

#[test]
fn exec_returns_every_reply_in_order() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["SET", "a", "1"], "+OK\r\n");
    begin(&mut c);
    queue(&mut c, &["SET", "k", "v"]);
    queue(&mut c, &["INCR", "a"]);
    queue(&mut c, &["GET", "k"]);
    queue(&mut c, &["GET", "missing"]);
    queue(&mut c, &["RPUSH", "l", "x", "y"]);
    queue(&mut c, &["LRANGE", "l", "0", "-1"]);
    queue(&mut c, &["DEL", "a"]);
    queue(&mut c, &["EXISTS", "a"]);
    expect(
        &mut c,
        &["TXU.EXEC"],
        "*8\r\n+OK\r\n:2\r\n$1\r\nv\r\n$-1\r\n:2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n:1\r\n:0\r\n",
    );
    expect(&mut c, &["GET", "k"], &bulk("v"));
    expect(&mut c, &["EXISTS", "a"], ":0\r\n");
    assert_left_transaction(&mut c);
}

#[test]
fn exec_of_an_empty_transaction_is_an_empty_array() {
    let s = Server::start();
    let mut c = s.raw();
    begin(&mut c);
    expect(&mut c, &["TXU.EXEC"], "*0\r\n");
    assert_left_transaction(&mut c);
}

#[test]
fn exec_failure_rolls_back_and_names_the_failing_command() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["SET", "str", "abc"], "+OK\r\n");
    expect(&mut c, &["SET", "n", "10"], "+OK\r\n");
    expect(&mut c, &["RPUSH", "list", "x"], ":1\r\n");
    let digest = s.digest();
    let not_int = run_err(&mut c, &["INCR", "str"]);
    assert!(not_int.starts_with("ERR "), "{not_int:?}");

    // Command 3 of 4 fails: a non-integer INCR (sent in lower case).
    begin(&mut c);
    queue(&mut c, &["SET", "new", "1"]);
    queue(&mut c, &["INCRBY", "n", "5"]);
    queue(&mut c, &["incr", "str"]);
    queue(&mut c, &["SET", "after", "1"]);
    expect(
        &mut c,
        &["TXU.EXEC"],
        &err(&format!("ROLLBACK command 3 (INCR) failed: {not_int}")),
    );
    assert_eq!(s.digest(), digest, "rolled-back transaction changed data");
    expect(&mut c, &["EXISTS", "new", "after"], ":0\r\n");
    expect(&mut c, &["GET", "n"], &bulk("10"));
    assert_left_transaction(&mut c);

    // The last command fails with WRONGTYPE.
    let wrongtype = run_err(&mut c, &["LPUSH", "str", "y"]);
    assert!(wrongtype.starts_with("WRONGTYPE "), "{wrongtype:?}");
    begin(&mut c);
    queue(&mut c, &["RPUSH", "list", "y"]);
    queue(&mut c, &["DEL", "n"]);
    queue(&mut c, &["LPUSH", "str", "y"]);
    expect(
        &mut c,
        &["TXU.EXEC"],
        &err(&format!("ROLLBACK command 3 (LPUSH) failed: {wrongtype}")),
    );
    assert_eq!(s.digest(), digest);
    expect(&mut c, &["LRANGE", "list", "0", "-1"], "*1\r\n$1\r\nx\r\n");
    expect(&mut c, &["GET", "n"], &bulk("10"));
    assert_left_transaction(&mut c);

    // The first command fails; nothing after it runs.
    let hset = run_err(&mut c, &["HSET", "str", "f", "v"]);
    begin(&mut c);
    queue(&mut c, &["HSET", "str", "f", "v"]);
    queue(&mut c, &["SET", "never", "1"]);
    expect(
        &mut c,
        &["TXU.EXEC"],
        &err(&format!("ROLLBACK command 1 (HSET) failed: {hset}")),
    );
    assert!(!exists(&s, "never"));
    assert_eq!(s.digest(), digest);
    assert_left_transaction(&mut c);
}

#[test]
fn exec_leaves_the_transaction_after_success_rollback_and_abort() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["SET", "str", "abc"], "+OK\r\n");
    // Success.
    begin(&mut c);
    queue(&mut c, &["SET", "x", "1"]);
    expect(&mut c, &["TXU.EXEC"], "*1\r\n+OK\r\n");
    assert_left_transaction(&mut c);
    // Rollback.
    begin(&mut c);
    queue(&mut c, &["INCR", "str"]);
    let r = run_err(&mut c, &["TXU.EXEC"]);
    assert!(
        r.starts_with("ROLLBACK command 1 (INCR) failed: ERR "),
        "{r:?}"
    );
    assert_left_transaction(&mut c);
    // Abort.
    begin(&mut c);
    let r = run_err(&mut c, &["TXU.QUEUE", "BLPOP", "q", "0"]);
    assert!(r.starts_with("ERR 'BLPOP' is not allowed"), "{r:?}");
    expect(&mut c, &["TXU.EXEC"], EXECABORT);
    assert_left_transaction(&mut c);
    assert_eq!(s.info_u64("txu", "txu_transactions_open"), 0);
}

#[test]
fn exec_runs_in_the_selected_database() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["SELECT", "2"], "+OK\r\n");
    expect(&mut c, &["SET", "db2:old", "before"], "+OK\r\n");
    begin(&mut c);
    queue(&mut c, &["SET", "db2:k", "v"]);
    queue(&mut c, &["GET", "db2:k"]);
    queue(&mut c, &["GET", "db2:old"]);
    expect(
        &mut c,
        &["TXU.EXEC"],
        &format!("*3\r\n+OK\r\n{}{}", bulk("v"), bulk("before")),
    );
    // The keys are in database 2, not 0.
    assert!(!exists(&s, "db2:k"));
    let mut other = s.raw();
    expect(&mut other, &["SELECT", "2"], "+OK\r\n");
    expect(&mut other, &["GET", "db2:k"], &bulk("v"));

    // A rollback in database 2 restores database 2 and leaves database 0 alone.
    expect(&mut s.raw(), &["SET", "db2:old", "db0 value"], "+OK\r\n");
    let digest = s.digest();
    begin(&mut c);
    queue(&mut c, &["SET", "db2:old", "changed"]);
    queue(&mut c, &["DEL", "db2:k"]);
    queue(&mut c, &["LPUSH", "db2:old", "x"]);
    let r = run_err(&mut c, &["TXU.EXEC"]);
    assert!(
        r.starts_with("ROLLBACK command 3 (LPUSH) failed: WRONGTYPE"),
        "{r:?}"
    );
    assert_eq!(s.digest(), digest);
    expect(&mut other, &["GET", "db2:old"], &bulk("before"));
    expect(&mut other, &["GET", "db2:k"], &bulk("v"));
    expect(&mut s.raw(), &["GET", "db2:old"], &bulk("db0 value"));
}

/// `GET` reply of an integer value, `None` for nil.
fn parse_get_int(reply: &[u8]) -> Option<i64> {
    let s = show(reply);
    if s == "$-1\r\n" {
        return None;
    }
    let (_, rest) = s.split_once("\r\n")?;
    rest.strip_suffix("\r\n")?.parse().ok()
}

#[test]
fn exec_is_atomic_for_other_clients() {
    const INCRS: usize = 1000;
    const ROUNDS: i64 = 10;
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["SET", "counter", "0"], "+OK\r\n");

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(AtomicI64::new(-1));
    let port = s.port();
    let reader = {
        let (stop, reads, last) = (stop.clone(), reads.clone(), last.clone());
        thread::spawn(move || {
            let mut r = RawConn::connect(port);
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let reply = r.cmd(&[b"GET", b"counter"]);
                let v = parse_get_int(&reply)
                    .unwrap_or_else(|| panic!("GET counter: {:?}", show(&reply)));
                seen.push(v);
                last.store(v, Ordering::SeqCst);
                reads.fetch_add(1, Ordering::SeqCst);
            }
            seen
        })
    };
    wait_until("the reader is polling", DEADLINE, || {
        reads.load(Ordering::SeqCst) > 0
    });

    let mut queue_incrs = Vec::new();
    for _ in 0..INCRS {
        queue_incrs.extend(encode_command(&[b"TXU.QUEUE", b"INCR", b"counter"]));
    }
    let mut committed = 0i64;
    for round in 0..ROUNDS {
        begin(&mut c);
        c.send_raw(&queue_incrs);
        for _ in 0..INCRS {
            assert_eq!(show(&c.read_reply()), QUEUED);
        }
        if round % 2 == 1 {
            // 1000 increments, then a failure: all of it is undone.
            queue(&mut c, &["LPUSH", "counter", "x"]);
            let r = run_err(&mut c, &["TXU.EXEC"]);
            assert!(
                r.starts_with(&format!("ROLLBACK command {} (LPUSH)", INCRS + 1)),
                "{r:?}"
            );
        } else {
            let r = run(&mut c, &["TXU.EXEC"]);
            let end = format!(":{}\r\n", (committed + 1) * INCRS as i64);
            assert!(
                r.starts_with(format!("*{INCRS}\r\n").as_bytes()) && r.ends_with(end.as_bytes()),
                "TXU.EXEC reply does not end with {end:?}"
            );
            committed += 1;
        }
    }
    let end = committed * INCRS as i64;
    wait_until("the reader sees the final value", DEADLINE, || {
        last.load(Ordering::SeqCst) == end
    });
    stop.store(true, Ordering::SeqCst);
    let seen = reader.join().expect("reader thread panicked");
    let bad: Vec<i64> = seen
        .iter()
        .copied()
        .filter(|v| v % INCRS as i64 != 0 || *v < 0 || *v > end)
        .collect();
    assert!(
        bad.is_empty(),
        "another client saw intermediate states (of {} reads): {:?}",
        seen.len(),
        &bad[..bad.len().min(20)]
    );
    let values: HashSet<i64> = seen.iter().copied().collect();
    assert!(values.contains(&0) && values.contains(&end), "{values:?}");
}

// ----- TXU.ROLLBACK -------------------------------------------------------------------------

#[test]
fn rollback_discards_the_transaction() {
    let s = Server::start();
    let mut c = s.raw();
    expect(&mut c, &["SET", "keep", "v"], "+OK\r\n");
    let digest = s.digest();
    begin(&mut c);
    queue(&mut c, &["SET", "rb:k", "v"]);
    queue(&mut c, &["DEL", "keep"]);
    expect(&mut c, &["TXU.ROLLBACK"], "+OK\r\n");
    assert!(!exists(&s, "rb:k"));
    assert!(exists(&s, "keep"));
    assert_eq!(s.digest(), digest);
    expect(
        &mut c,
        &["TXU.EXEC"],
        &err("ERR TXU.EXEC without TXU.BEGIN"),
    );
    expect(
        &mut c,
        &["TXU.ROLLBACK"],
        &err("ERR TXU.ROLLBACK without TXU.BEGIN"),
    );
    // Also after a validation error.
    begin(&mut c);
    let r = run_err(&mut c, &["TXU.QUEUE", "nosuchcommand"]);
    assert_eq!(r, "ERR unknown command 'nosuchcommand'");
    expect(&mut c, &["TXU.ROLLBACK"], "+OK\r\n");
    assert_left_transaction(&mut c);
    assert_eq!(s.info_u64("txu", "txu_transactions_open"), 0);
}

// ----- closed connections -------------------------------------------------------------------

#[test]
fn a_closed_connection_frees_its_transaction() {
    let s = Server::start();
    let discarded = s.info_u64("txu", "txu_transactions_discarded");
    {
        let mut c = s.raw();
        begin(&mut c);
        queue(&mut c, &["SET", "closed:k", "v"]);
        let mut d = s.raw();
        begin(&mut d);
        assert_eq!(s.info_u64("txu", "txu_transactions_open"), 2);
        // Both connections close here with their transactions open.
    }
    wait_until("txu_transactions_open back to 0", DEADLINE, || {
        s.info_u64("txu", "txu_transactions_open") == 0
    });
    assert_eq!(
        s.info_u64("txu", "txu_transactions_discarded"),
        discarded + 2
    );
    assert!(!exists(&s, "closed:k"));
    // Client ids are not reused, but a new connection starts without a transaction.
    let mut c = s.raw();
    expect(
        &mut c,
        &["TXU.EXEC"],
        &err("ERR TXU.EXEC without TXU.BEGIN"),
    );
}
