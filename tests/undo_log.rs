//! Undoing a committed transaction: `TXU.BEGIN RETAIN <ms>` keeps the transaction's
//! undo log in a hidden key `txu:undo:{<tag>}:<txid>` of type `txu-undo1` (same cluster slot as
//! the first key the transaction wrote), and `TXU.ROLLBACK <txid> [FORCE]` undoes it, refusing
//! with `CONFLICT` when a key it wrote changed since. Also: retention expiry, persistence (RDB,
//! AOF with and without the RDB preamble, AOF rewrite, SIGKILL, `DEBUG RELOAD`), replicas and
//! promoted replicas, the `INFO txu` fields, and rollbacks that cannot finish at once (with the
//! test-faults build: stored pending and finished by the timer, across restarts too).
//!
//! Exactness: `DEBUG DIGEST` of the whole dataset where no other hidden key exists, otherwise
//! `DEBUG DIGEST-VALUE` and `PEXPIRETIME` of every data key involved.

mod common;

use common::cluster::key_slot;

use common::{
    array_items, assert_rolled_back, begin, begin_with, bulk_body, encode_command, error_text,
    exec_tx, queue, rewrite_aof, run, run_err, run_text, show, wait_replica_synced, wait_until,
    RawConn, Server,
};
use std::time::Duration;

/// Deadline for conditions polled with `wait_until`.
const DEADLINE: Duration = Duration::from_secs(10);
/// A retention long enough that nothing expires during a test (10 minutes).
const LONG: &str = "600000";
/// The error every injected compensating-write failure carries (test-faults build).
const FAULT_ERROR: &str = "ERR txu test fault: compensating write refused";

// ----- replies ---------------------------------------------------------------------------------

fn run_ok(c: &mut RawConn, args: &[&str]) {
    assert_eq!(run_text(c, args), "+OK\r\n", "{args:?}");
}

fn run_int(c: &mut RawConn, args: &[&str]) -> i64 {
    let r = run_text(c, args);
    r.strip_prefix(':')
        .and_then(|n| n.strip_suffix("\r\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{args:?}: expected an integer reply, got {r:?}"))
}

fn run_simple(c: &mut RawConn, args: &[&str]) -> String {
    let r = run_text(c, args);
    match r.strip_prefix('+').and_then(|s| s.strip_suffix("\r\n")) {
        Some(s) => s.to_string(),
        None => panic!("{args:?}: expected a simple string, got {r:?}"),
    }
}

/// The body of a bulk string reply to `args`, as text.
fn run_bulk(c: &mut RawConn, args: &[&str]) -> String {
    let r = run_text(c, args);
    bulk_body(r.as_bytes())
        .map(show)
        .unwrap_or_else(|| panic!("{args:?}: expected a bulk string, got {r:?}"))
}

/// An array of bulk or simple strings (KEYS, DEBUG DIGEST-VALUE), elements without CRLF.
fn string_array(c: &mut RawConn, args: &[&str]) -> Vec<String> {
    let r = run(c, args);
    let items = array_items(&r)
        .unwrap_or_else(|| panic!("{args:?}: expected an array, got {:?}", show(&r)));
    items
        .iter()
        .map(|e| match e.strip_prefix(b"+") {
            Some(simple) => show(&simple[..simple.len() - 2]),
            None => bulk_body(e)
                .map(show)
                .unwrap_or_else(|| panic!("{args:?}: element {:?} in {:?}", show(e), show(&r))),
        })
        .collect()
}

// ----- transactions ----------------------------------------------------------------------------

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn queue_all(c: &mut RawConn, cmds: &[Vec<String>]) {
    for q in cmds {
        queue(c, &q.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// Runs a transaction that must commit (`opts`: those of `TXU.BEGIN`); returns its id.
fn commit(c: &mut RawConn, opts: &[&str], cmds: &[Vec<String>]) -> String {
    let (id, r) = exec_tx(c, opts, cmds);
    assert!(
        r.starts_with(format!("*{}\r\n", cmds.len()).as_bytes()),
        "TXU.EXEC of {cmds:?} did not commit: {}",
        show(&r)
    );
    id
}

fn unknown(id: &str) -> String {
    format!("ERR no retained transaction '{id}' (unknown, expired or already rolled back)")
}

fn conflict(id: &str, key: &str) -> String {
    format!(
        "CONFLICT key '{key}' changed after transaction {id} committed; TXU.ROLLBACK {id} FORCE \
         undoes it anyway"
    )
}

// ----- data ------------------------------------------------------------------------------------

/// Creates one key of each type under `prefix` (two with TTLs, one to be deleted) and returns
/// the names the transaction of [`tx_cmds`] touches, including the key it creates.
fn seed(c: &mut RawConn, p: &str) -> Vec<String> {
    let k = |s: &str| format!("{p}{s}");
    run_ok(c, &["SET", &k("s"), "v0"]);
    run_ok(c, &["SET", &k("t"), "10", "PX", "500000"]);
    assert_eq!(run_int(c, &["RPUSH", &k("l"), "a", "b", "c"]), 3);
    assert_eq!(run_int(c, &["PEXPIRE", &k("l"), "700000"]), 1);
    assert_eq!(run_int(c, &["HSET", &k("h"), "f1", "v1", "f2", "v2"]), 2);
    assert_eq!(run_int(c, &["SADD", &k("set"), "m1", "m2"]), 2);
    assert_eq!(run_int(c, &["ZADD", &k("z"), "1", "one", "2", "two"]), 2);
    assert_eq!(run_bulk(c, &["XADD", &k("x"), "1-1", "f", "v"]), "1-1");
    run_ok(c, &["SET", &k("gone"), "bye"]);
    assert_eq!(run_int(c, &["EXISTS", &k("new")]), 0);
    ["s", "t", "l", "h", "set", "z", "x", "gone", "new"]
        .iter()
        .map(|s| k(s))
        .collect()
}

/// A transaction over the keys of [`seed`]: one write of each kind, a TTL removed, a key
/// deleted, a key created with a TTL. Its first written key is `<prefix>s`.
fn tx_cmds(p: &str) -> Vec<Vec<String>> {
    let k = |s: &str| format!("{p}{s}");
    vec![
        args(&["SET", &k("s"), "v1"]),
        args(&["INCRBY", &k("t"), "5"]),
        args(&["LPUSH", &k("l"), "z"]),
        args(&["PERSIST", &k("l")]),
        args(&["HSET", &k("h"), "f3", "v3"]),
        args(&["SREM", &k("set"), "m1"]),
        args(&["ZINCRBY", &k("z"), "10", "one"]),
        args(&["XADD", &k("x"), "2-1", "f", "v2"]),
        args(&["DEL", &k("gone")]),
        args(&["SET", &k("new"), "created", "PX", "900000"]),
        // A read in the middle changes nothing.
        args(&["GET", &k("s")]),
    ]
}

/// Per key: exists, absolute expiry, value digest.
fn key_states(c: &mut RawConn, keys: &[String]) -> Vec<(String, i64, i64, String)> {
    keys.iter()
        .map(|k| {
            let exists = run_int(c, &["EXISTS", k]);
            let exp = run_int(c, &["PEXPIRETIME", k]);
            let d = string_array(c, &["DEBUG", "DIGEST-VALUE", k]);
            assert_eq!(d.len(), 1, "DEBUG DIGEST-VALUE {k}: {d:?}");
            (k.clone(), exists, exp, d[0].clone())
        })
        .collect()
}

/// Keys seeded under several prefixes, and one retained transaction per prefix over them.
struct Retained {
    keys: Vec<String>,
    /// `DEBUG DIGEST` and [`key_states`] before the transactions.
    digest: String,
    before: Vec<(String, i64, i64, String)>,
    /// The transaction ids, in the order of the prefixes.
    ids: Vec<String>,
}

/// Seeds every prefix (see [`seed`]), then commits a [`tx_cmds`] transaction retained for
/// [`LONG`] per prefix.
fn seed_and_retain(s: &Server, c: &mut RawConn, prefixes: &[&str]) -> Retained {
    let keys: Vec<String> = prefixes.iter().flat_map(|p| seed(c, p)).collect();
    let digest = s.digest();
    let before = key_states(c, &keys);
    let ids = prefixes
        .iter()
        .map(|p| commit(c, &["RETAIN", LONG], &tx_cmds(p)))
        .collect();
    Retained {
        keys,
        digest,
        before,
        ids,
    }
}

// ----- hidden keys -----------------------------------------------------------------------------

/// Every `txu:undo:*` key of the connection's database.
fn undo_keys(c: &mut RawConn) -> Vec<String> {
    let mut keys = string_array(c, &["KEYS", "txu:undo:*"]);
    keys.sort();
    keys
}

/// The one hidden key that holds the undo log of `id`; checks its name.
fn undo_key_of(c: &mut RawConn, id: &str) -> String {
    let suffix = format!("}}:{id}");
    let all = undo_keys(c);
    let mine: Vec<&String> = all.iter().filter(|k| k.ends_with(&suffix)).collect();
    assert_eq!(mine.len(), 1, "hidden key of {id} among {all:?}");
    let key = mine[0].clone();
    let tag = key
        .strip_prefix("txu:undo:{")
        .and_then(|t| t.strip_suffix(&suffix))
        .unwrap_or_else(|| panic!("hidden key {key:?} is not txu:undo:{{<tag>}}:{id}"));
    assert!(
        !tag.is_empty() && !tag.contains('{') && !tag.contains('}'),
        "hidden key {key:?} has a bad tag {tag:?}"
    );
    key
}

/// Checks the hidden key of a retained transaction: its type, that ordinary commands cannot
/// touch it, its TTL (0 < PTTL <= retain), and its slot. Returns its name.
fn check_retained_key(c: &mut RawConn, id: &str, first_key: &str, retain_ms: i64) -> String {
    let key = undo_key_of(c, id);
    assert_eq!(run_simple(c, &["TYPE", &key]), "txu-undo1", "TYPE {key}");
    assert_eq!(
        key_slot(key.as_bytes()),
        key_slot(first_key.as_bytes()),
        "{key} is not in the slot of the first written key {first_key:?}"
    );
    let pttl = run_int(c, &["PTTL", &key]);
    assert!(
        pttl > 0 && pttl <= retain_ms,
        "PTTL {key} = {pttl}, want 0 < PTTL <= {retain_ms}"
    );
    let ordinary: [&[&str]; 8] = [
        &["GET", &key],
        &["SET", &key, "x", "XX", "GET"],
        &["APPEND", &key, "x"],
        &["INCR", &key],
        &["HSET", &key, "f", "v"],
        &["LPUSH", &key, "v"],
        &["SADD", &key, "m"],
        &["ZADD", &key, "1", "m"],
    ];
    for a in ordinary {
        let e = run_err(c, a);
        assert!(e.starts_with("WRONGTYPE"), "{a:?} on the hidden key: {e}");
    }
    assert_eq!(
        run_simple(c, &["TYPE", &key]),
        "txu-undo1",
        "TYPE {key} after"
    );
    key
}

/// Asserts `txu_undo_logs_retained`, `txu_rollbacks_pending`, and whether
/// `txu_undo_log_memory` is above zero.
fn assert_logs(s: &Server, retained: u64, pending: u64, what: &str) {
    assert_eq!(
        s.info_u64("txu", "txu_undo_logs_retained"),
        retained,
        "txu_undo_logs_retained {what}"
    );
    assert_eq!(
        s.info_u64("txu", "txu_rollbacks_pending"),
        pending,
        "txu_rollbacks_pending {what}"
    );
    let mem = s.info_u64("txu", "txu_undo_log_memory");
    if retained + pending > 0 {
        assert!(mem > 0, "txu_undo_log_memory {what}: {mem}");
    } else {
        assert_eq!(mem, 0, "txu_undo_log_memory {what}");
    }
}

// ----- RETAIN and TXU.ROLLBACK <txid> ----------------------------------------------------------

/// The slots `CLUSTER KEYSLOT` gives for these keys: `foo` 12182, `bar` 5061, and a key with
/// the hash tag `{foo}` that of `foo`.
#[test]
fn slot_function_matches_cluster_keyslot() {
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"bar"), 5061);
    assert_eq!(key_slot(b"{foo}:x"), 12182);
}

#[test]
fn retain_takes_1_ms_to_a_year() {
    let s = Server::start();
    let mut c = s.raw();
    for bad in [
        "0",
        "-1",
        "31536000001",
        "abc",
        "1.5",
        "",
        "99999999999999999999",
    ] {
        let e = run_err(&mut c, &["TXU.BEGIN", "RETAIN", bad]);
        assert!(
            e.starts_with("ERR syntax error: RETAIN needs"),
            "RETAIN {bad:?}: {e}"
        );
    }
    let e = run_err(&mut c, &["TXU.BEGIN", "RETAIN"]);
    assert!(e.starts_with("ERR syntax error: RETAIN needs"), "{e}");
    // None of those opened a transaction.
    assert_eq!(
        run_err(&mut c, &["TXU.EXEC"]),
        "ERR TXU.EXEC without TXU.BEGIN"
    );
    for good in ["1", "31536000000"] {
        begin_with(&mut c, &["RETAIN", good]);
        run_ok(&mut c, &["TXU.ROLLBACK"]);
    }
    // The longest retention is kept as asked.
    let id = commit(
        &mut c,
        &["RETAIN", "31536000000"],
        &[args(&["SET", "foo", "1"])],
    );
    let key = check_retained_key(&mut c, &id, "foo", 31_536_000_000);
    assert!(run_int(&mut c, &["PTTL", &key]) > 31_536_000_000 - 60_000);
    assert_logs(&s, 1, 0, "after a year-long RETAIN");
}

#[test]
fn retained_commit_rolls_back_exactly() {
    let s = Server::start();
    let mut c = s.raw();
    let keys = seed(&mut c, "foo");
    let d0 = s.digest();
    let before = key_states(&mut c, &keys);
    assert_logs(&s, 0, 0, "before any transaction");

    let id = commit(&mut c, &["RETAIN", LONG], &tx_cmds("foo"));
    // The first written key is "foos"; the data really changed.
    let key = check_retained_key(&mut c, &id, "foos", 600_000);
    assert_eq!(undo_keys(&mut c), std::slice::from_ref(&key));
    assert_ne!(key_states(&mut c, &keys), before);
    assert_eq!(run_bulk(&mut c, &["GET", "foonew"]), "created");
    assert_logs(&s, 1, 0, "with one retained log");
    assert_eq!(s.info_u64("txu", "txu_rollbacks_of_committed"), 0);

    run_ok(&mut c, &["TXU.ROLLBACK", &id]);
    assert_eq!(s.digest(), d0, "DEBUG DIGEST after TXU.ROLLBACK {id}");
    assert_eq!(key_states(&mut c, &keys), before);
    assert_eq!(
        run_int(&mut c, &["EXISTS", "foonew"]),
        0,
        "created key is gone"
    );
    assert_eq!(run_int(&mut c, &["EXISTS", &key]), 0, "hidden key is gone");
    assert!(undo_keys(&mut c).is_empty());
    assert_logs(&s, 0, 0, "after the rollback");
    assert_eq!(s.info_u64("txu", "txu_rollbacks_of_committed"), 1);

    // Only once.
    assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &id]), unknown(&id));
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &id, "FORCE"]),
        unknown(&id)
    );
    assert_eq!(s.digest(), d0);
    assert_eq!(s.info_u64("txu", "txu_rollbacks_of_committed"), 1);

    // Ids never issued.
    for bogus in ["1-1", "99999999999999-0", "nonsense"] {
        assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", bogus]), unknown(bogus));
    }
    // A plain transaction's id was never retained.
    let plain = commit(&mut c, &[], &[args(&["SET", "fooplain", "1"])]);
    assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &plain]), unknown(&plain));
    assert_eq!(run_bulk(&mut c, &["GET", "fooplain"]), "1");
}

#[test]
fn hidden_key_is_in_the_slot_of_the_first_written_key() {
    let s = Server::start();
    let mut c = s.raw();
    // (keys written in order, the first written key)
    let cases: [(&[&str], &str); 6] = [
        (&["foo", "bar"], "foo"),
        (&["bar", "foo"], "bar"),
        (&["{user1}:balance", "x"], "{user1}:balance"),
        (&["a}b{c"], "a}b{c"),
        (&["x{}y", "foo"], "x{}y"),
        (&["k:\u{e9}\u{263a}"], "k:\u{e9}\u{263a}"),
    ];
    for (written, first) in cases {
        // Reads first: a read is not a write, so it does not decide the slot.
        let mut cmds = vec![args(&["GET", "zzz-read-only"])];
        cmds.extend(written.iter().map(|k| args(&["SET", k, "v"])));
        let id = commit(&mut c, &["RETAIN", LONG], &cmds);
        check_retained_key(&mut c, &id, first, 600_000);
    }
    assert_logs(&s, 6, 0, "after six retained transactions");
}

#[test]
fn plain_and_rolled_back_transactions_leave_no_undo_key() {
    let s = Server::start();
    let mut c = s.raw();
    assert_eq!(run_int(&mut c, &["HSET", "h", "f", "v"]), 1);

    let plain = commit(
        &mut c,
        &[],
        &[args(&["SET", "a", "1"]), args(&["INCR", "a"])],
    );
    assert!(undo_keys(&mut c).is_empty(), "after a plain commit");
    assert_eq!(run_int(&mut c, &["DBSIZE"]), 2);
    assert_logs(&s, 0, 0, "after a plain commit");

    let d = s.digest();
    for opts in [&[][..], &["RETAIN", LONG]] {
        let (id, r) = exec_tx(
            &mut c,
            opts,
            &[args(&["SET", "b", "1"]), args(&["INCR", "h"])],
        );
        let e = assert_rolled_back(&r, 2, "INCR");
        assert!(e.starts_with("WRONGTYPE"), "{e}");
        assert!(!e.contains("rollback incomplete"), "{e}");
        assert!(undo_keys(&mut c).is_empty(), "after a rollback ({opts:?})");
        assert_eq!(run_int(&mut c, &["DBSIZE"]), 2);
        assert_eq!(s.digest(), d);
        assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &id]), unknown(&id));
        assert_logs(&s, 0, 0, "after a rolled-back transaction");
    }
    assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &plain]), unknown(&plain));
    // A discarded RETAIN transaction leaves nothing either.
    let id = begin_with(&mut c, &["RETAIN", LONG]);
    queue_all(&mut c, &[args(&["SET", "c", "1"])]);
    run_ok(&mut c, &["TXU.ROLLBACK"]);
    assert!(undo_keys(&mut c).is_empty());
    assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &id]), unknown(&id));
    assert_eq!(s.digest(), d);
}

#[test]
fn retention_expires() {
    let s = Server::start();
    let mut c = s.raw();
    run_ok(&mut c, &["SET", "k", "old"]);
    let id = commit(&mut c, &["RETAIN", "200"], &[args(&["SET", "k", "new"])]);
    let key = check_retained_key(&mut c, &id, "k", 200);
    let mut probe = s.raw();
    wait_until("the 200 ms undo log to expire", DEADLINE, || {
        run_int(&mut probe, &["EXISTS", &key]) == 0
    });
    assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &id]), unknown(&id));
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &id, "FORCE"]),
        unknown(&id)
    );
    assert_eq!(run_bulk(&mut c, &["GET", "k"]), "new", "nothing was undone");
    assert!(undo_keys(&mut c).is_empty());
    assert_logs(&s, 0, 0, "after the retention expired");
    assert_eq!(s.info_u64("txu", "txu_rollbacks_of_committed"), 0);
}

#[test]
fn expired_retention_is_refused_before_the_key_is_reclaimed() {
    let s = Server::start();
    let mut c = s.raw();
    // No active expiry: only a lookup can find the hidden key expired.
    run_ok(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    run_ok(&mut c, &["SET", "k", "old"]);
    let id = commit(&mut c, &["RETAIN", "200"], &[args(&["SET", "k", "new"])]);
    let key = check_retained_key(&mut c, &id, "k", 200);
    let deadline = run_int(&mut c, &["PEXPIRETIME", &key]);
    assert!(deadline > 0);
    // Poll the server clock, not the key (a lookup would reclaim it).
    wait_until("the server clock to pass the retention", DEADLINE, || {
        let t = string_array(&mut c, &["TIME"]);
        let now_ms = t[0].parse::<i64>().unwrap() * 1000 + t[1].parse::<i64>().unwrap() / 1000;
        now_ms > deadline
    });
    assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &id]), unknown(&id));
    assert_eq!(run_bulk(&mut c, &["GET", "k"]), "new", "nothing was undone");
    assert_eq!(run_int(&mut c, &["EXISTS", &key]), 0);
}

#[test]
fn rollback_works_from_another_database() {
    let s = Server::start();
    let mut c3 = s.raw();
    run_ok(&mut c3, &["SELECT", "3"]);
    let keys = seed(&mut c3, "d:");
    let before = key_states(&mut c3, &keys);
    let d0 = s.digest();
    let id = commit(&mut c3, &["RETAIN", LONG], &tx_cmds("d:"));
    check_retained_key(&mut c3, &id, "d:s", 600_000);

    let mut c0 = s.raw();
    assert!(undo_keys(&mut c0).is_empty(), "the log lives in db 3");
    run_ok(&mut c0, &["TXU.ROLLBACK", &id]);
    assert_eq!(s.digest(), d0);
    assert_eq!(key_states(&mut c3, &keys), before);
    // The caller's database is still 0.
    run_ok(&mut c0, &["SET", "marker", "1"]);
    assert_eq!(run_int(&mut c3, &["EXISTS", "marker"]), 0);
    run_ok(&mut c0, &["SELECT", "3"]);
    assert_eq!(run_int(&mut c0, &["EXISTS", "marker"]), 0);
}

/// How a key written by a retained transaction is changed afterwards.
#[derive(Clone, Copy, Debug)]
enum Change {
    Set,
    Pexpire,
    Persist,
    Del,
    DelOfCreatedKey,
    Hset,
    PlainTxu,
    RetainedTxu,
    MultiExec,
    Eval,
}

#[test]
fn any_later_write_is_a_conflict_and_force_undoes_anyway() {
    use Change::*;
    let s = Server::start();
    let mut c = s.raw();
    let mut other = s.raw();
    for (n, change) in [
        Set,
        Pexpire,
        Persist,
        Del,
        DelOfCreatedKey,
        Hset,
        PlainTxu,
        RetainedTxu,
        MultiExec,
        Eval,
    ]
    .into_iter()
    .enumerate()
    {
        let p = format!("c{n}:");
        let k = |s: &str| format!("{p}{s}");
        let keys = seed(&mut c, &p);
        let before = key_states(&mut c, &keys);
        let id = commit(&mut c, &["RETAIN", LONG], &tx_cmds(&p));
        let hidden = check_retained_key(&mut c, &id, &k("s"), 600_000);

        let mut later = None;
        let changed = match change {
            Set => {
                run_ok(&mut other, &["SET", &k("t"), "99"]);
                k("t")
            }
            Pexpire => {
                assert_eq!(run_int(&mut other, &["PEXPIRE", &k("t"), "123456"]), 1);
                k("t")
            }
            Persist => {
                assert_eq!(run_int(&mut other, &["PERSIST", &k("t")]), 1);
                k("t")
            }
            Del => {
                assert_eq!(run_int(&mut other, &["DEL", &k("h")]), 1);
                k("h")
            }
            DelOfCreatedKey => {
                assert_eq!(run_int(&mut other, &["DEL", &k("new")]), 1);
                k("new")
            }
            Hset => {
                assert_eq!(run_int(&mut other, &["HSET", &k("h"), "f9", "v9"]), 1);
                k("h")
            }
            PlainTxu => {
                commit(&mut other, &[], &[args(&["INCRBY", &k("t"), "1"])]);
                k("t")
            }
            RetainedTxu => {
                later = Some(commit(
                    &mut other,
                    &["RETAIN", LONG],
                    &[args(&["INCRBY", &k("t"), "1"])],
                ));
                k("t")
            }
            MultiExec => {
                run_ok(&mut other, &["MULTI"]);
                assert_eq!(
                    run_text(&mut other, &["ZADD", &k("z"), "5", "five"]),
                    "+QUEUED\r\n"
                );
                assert_eq!(run_text(&mut other, &["EXEC"]), "*1\r\n:1\r\n");
                k("z")
            }
            Eval => {
                let r = run_text(
                    &mut other,
                    &[
                        "EVAL",
                        "return redis.call('SADD', KEYS[1], 'm9')",
                        "1",
                        &k("set"),
                    ],
                );
                assert_eq!(r, ":1\r\n");
                k("set")
            }
        };
        let what = format!("{change:?}");
        let d_changed = s.digest();
        let changed_states = key_states(&mut c, &keys);
        assert_eq!(
            run_err(&mut c, &["TXU.ROLLBACK", &id]),
            conflict(&id, &changed),
            "{what}"
        );
        assert_eq!(
            s.digest(),
            d_changed,
            "{what}: a refused rollback changed data"
        );
        assert_eq!(key_states(&mut c, &keys), changed_states, "{what}");
        assert_eq!(run_int(&mut c, &["EXISTS", &hidden]), 1, "{what}: log kept");
        // Refused again: nothing changed in between.
        assert_eq!(
            run_err(&mut c, &["TXU.ROLLBACK", &id]),
            conflict(&id, &changed),
            "{what}, second try"
        );
        assert_eq!(s.digest(), d_changed, "{what}");

        run_ok(&mut c, &["TXU.ROLLBACK", &id, "FORCE"]);
        assert_eq!(
            key_states(&mut c, &keys),
            before,
            "{what}: FORCE restores the pre-images"
        );
        assert_eq!(
            run_int(&mut c, &["EXISTS", &hidden]),
            0,
            "{what}: log deleted"
        );
        assert_eq!(
            run_err(&mut c, &["TXU.ROLLBACK", &id]),
            unknown(&id),
            "{what}"
        );
        assert_eq!(
            run_err(&mut c, &["TXU.ROLLBACK", &id, "FORCE"]),
            unknown(&id),
            "{what}"
        );

        if let Some(later) = later {
            // The forced rollback wrote the key the later retained transaction wrote.
            assert_eq!(
                run_err(&mut c, &["TXU.ROLLBACK", &later]),
                conflict(&later, &k("t")),
                "{what}: the later transaction"
            );
        }
    }
    assert_eq!(s.info_u64("txu", "txu_rollbacks_of_committed"), 10);
}

#[test]
fn reading_the_keys_is_not_a_change() {
    let s = Server::start();
    let mut c = s.raw();
    let keys = seed(&mut c, "r:");
    let before = key_states(&mut c, &keys);
    let d0 = s.digest();
    let id = commit(&mut c, &["RETAIN", LONG], &tx_cmds("r:"));

    let mut other = s.raw();
    let reads: [&[&str]; 16] = [
        &["GET", "r:s"],
        &["MGET", "r:s", "r:t", "r:new"],
        &["STRLEN", "r:t"],
        &["LRANGE", "r:l", "0", "-1"],
        &["HGETALL", "r:h"],
        &["SMEMBERS", "r:set"],
        &["ZRANGE", "r:z", "0", "-1", "WITHSCORES"],
        &["XRANGE", "r:x", "-", "+"],
        &["EXISTS", "r:gone", "r:new"],
        &["TYPE", "r:h"],
        &["PTTL", "r:new"],
        &["PEXPIRETIME", "r:t"],
        &["DUMP", "r:l"],
        &["OBJECT", "ENCODING", "r:set"],
        &["SCAN", "0", "COUNT", "1000"],
        &["DEBUG", "DIGEST-VALUE", "r:z"],
    ];
    for r in reads {
        assert!(!run_text(&mut other, r).starts_with('-'), "{r:?}");
    }
    // A TXU transaction that only reads, and reads inside MULTI and a script.
    commit(
        &mut other,
        &[],
        &[
            args(&["GET", "r:s"]),
            args(&["HGET", "r:h", "f3"]),
            args(&["ZSCORE", "r:z", "one"]),
        ],
    );
    run_ok(&mut other, &["MULTI"]);
    assert_eq!(run_text(&mut other, &["GET", "r:t"]), "+QUEUED\r\n");
    assert!(run_text(&mut other, &["EXEC"]).starts_with("*1\r\n"));
    let r = run_text(
        &mut other,
        &["EVAL", "return redis.call('GET', KEYS[1])", "1", "r:s"],
    );
    assert_eq!(bulk_body(r.as_bytes()).map(show).as_deref(), Some("v1"));

    run_ok(&mut c, &["TXU.ROLLBACK", &id]);
    assert_eq!(s.digest(), d0);
    assert_eq!(key_states(&mut c, &keys), before);
}

// ----- persistence -----------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Restart {
    /// `SAVE`, graceful restart from the RDB.
    Save,
    /// Graceful restart from the AOF (optionally rewritten first).
    Aof { preamble: bool, rewrite: bool },
    /// SIGKILL with `appendfsync always`, restart from the AOF.
    AofKill9,
    /// `DEBUG RELOAD` in the same process.
    DebugReload,
}

fn server_for(mode: Restart, fault_module: bool) -> Server {
    let a: Vec<&str> = match mode {
        Restart::Save | Restart::DebugReload => vec![],
        Restart::Aof { preamble, .. } => vec![
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            if preamble { "yes" } else { "no" },
        ],
        Restart::AofKill9 => vec!["--appendonly", "yes", "--appendfsync", "always"],
    };
    if fault_module {
        Server::start_with_fault_module(&a)
    } else {
        Server::start_with(&a)
    }
}

fn persist_and_restart(s: &mut Server, mode: Restart) {
    match mode {
        Restart::Save => {
            run_ok(&mut s.raw(), &["SAVE"]);
            s.restart();
        }
        Restart::Aof { rewrite, .. } => {
            if rewrite {
                rewrite_aof(s);
            }
            s.restart();
            assert_eq!(
                s.info_field("persistence", "aof_enabled").as_deref(),
                Some("1")
            );
        }
        Restart::AofKill9 => s.kill9_and_restart(),
        Restart::DebugReload => run_ok(&mut s.raw(), &["DEBUG", "RELOAD"]),
    }
}

/// Three retained transactions (p:, q:, r:); r: conflicted before the restart, q: after it;
/// p: rolls back cleanly after the restart, the others with FORCE.
fn retained_logs_survive(mode: Restart) {
    let mut s = server_for(mode, false);
    let mut c = s.raw();
    let Retained {
        keys,
        digest,
        before,
        ids,
    } = seed_and_retain(&s, &mut c, &["p:", "q:", "r:"]);
    let hidden: Vec<(String, i64)> = ids
        .iter()
        .zip(["p:s", "q:s", "r:s"])
        .map(|(id, first)| {
            let k = check_retained_key(&mut c, id, first, 600_000);
            let exp = run_int(&mut c, &["PEXPIRETIME", &k]);
            (k, exp)
        })
        .collect();
    // A change before the restart.
    run_ok(&mut c, &["SET", "r:s", "changed before the restart"]);
    let after_tx = key_states(&mut c, &keys);
    assert_logs(&s, 3, 0, "before the restart");
    drop(c);

    persist_and_restart(&mut s, mode);
    let mut c = s.raw();
    let what = format!("after {mode:?}");
    assert_eq!(key_states(&mut c, &keys), after_tx, "data {what}");
    for (id, (k, exp)) in ids.iter().zip(&hidden) {
        assert_eq!(&undo_key_of(&mut c, id), k, "{what}");
        assert_eq!(run_simple(&mut c, &["TYPE", k]), "txu-undo1", "{what}");
        assert_eq!(
            run_int(&mut c, &["PEXPIRETIME", k]),
            *exp,
            "absolute expiry of {k} {what}"
        );
    }
    assert_eq!(undo_keys(&mut c).len(), 3, "{what}");
    assert_logs(&s, 3, 0, &what);

    // The conflict from before the restart is remembered.
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &ids[2]]),
        conflict(&ids[2], "r:s"),
        "{what}"
    );
    // A write after the restart is detected.
    assert_eq!(run_int(&mut c, &["HSET", "q:h", "f9", "v9"]), 1);
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &ids[1]]),
        conflict(&ids[1], "q:h"),
        "{what}"
    );
    // The untouched one rolls back exactly.
    run_ok(&mut c, &["TXU.ROLLBACK", &ids[0]]);
    assert_eq!(
        key_states(&mut c, &keys[..9]),
        before[..9],
        "p: keys after TXU.ROLLBACK {what}"
    );
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &ids[0]]),
        unknown(&ids[0])
    );
    assert_logs(&s, 2, 0, &what);
    run_ok(&mut c, &["TXU.ROLLBACK", &ids[1], "FORCE"]);
    run_ok(&mut c, &["TXU.ROLLBACK", &ids[2], "FORCE"]);
    assert_eq!(key_states(&mut c, &keys), before, "{what}");
    assert_eq!(s.digest(), digest, "DEBUG DIGEST {what}");
    assert!(undo_keys(&mut c).is_empty(), "{what}");
    assert_logs(&s, 0, 0, &what);
}

#[test]
fn retained_logs_survive_save_and_restart() {
    retained_logs_survive(Restart::Save);
}

#[test]
fn retained_logs_survive_aof_restart() {
    retained_logs_survive(Restart::Aof {
        preamble: true,
        rewrite: false,
    });
}

#[test]
fn retained_logs_survive_aof_restart_without_rdb_preamble() {
    retained_logs_survive(Restart::Aof {
        preamble: false,
        rewrite: false,
    });
}

#[test]
fn retained_logs_survive_aof_rewrite_and_restart() {
    retained_logs_survive(Restart::Aof {
        preamble: true,
        rewrite: true,
    });
}

#[test]
fn retained_logs_survive_aof_rewrite_without_rdb_preamble_and_restart() {
    retained_logs_survive(Restart::Aof {
        preamble: false,
        rewrite: true,
    });
}

#[test]
fn retained_logs_survive_kill9_with_aof() {
    retained_logs_survive(Restart::AofKill9);
}

#[test]
fn retained_logs_survive_debug_reload() {
    retained_logs_survive(Restart::DebugReload);
}

// ----- replication -----------------------------------------------------------------------------

#[test]
fn replica_follows_retained_commit_conflict_and_rollback() {
    let p = Server::start();
    let r = p.start_replica_of();
    let mut c = p.raw();
    let mut rc = r.raw();
    seed(&mut c, "a:");
    let d0 = p.digest();
    wait_replica_synced(&p, &r);
    assert_eq!(r.digest(), d0);

    let id = commit(&mut c, &["RETAIN", LONG], &tx_cmds("a:"));
    let key = check_retained_key(&mut c, &id, "a:s", 600_000);
    wait_replica_synced(&p, &r);
    assert_eq!(r.digest(), p.digest(), "after a retained commit");
    assert_eq!(undo_key_of(&mut rc, &id), key);
    assert_eq!(run_simple(&mut rc, &["TYPE", &key]), "txu-undo1");
    assert_eq!(
        run_int(&mut rc, &["PEXPIRETIME", &key]),
        run_int(&mut c, &["PEXPIRETIME", &key])
    );
    assert_logs(&r, 1, 0, "on the replica");

    // A second one, conflicted on the primary.
    let id2 = commit(&mut c, &["RETAIN", LONG], &[args(&["SET", "b:1", "x"])]);
    run_ok(&mut c, &["SET", "b:1", "y"]);
    wait_replica_synced(&p, &r);
    assert_eq!(r.digest(), p.digest(), "after a conflicting write");
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &id2]),
        conflict(&id2, "b:1")
    );

    run_ok(&mut c, &["TXU.ROLLBACK", &id]);
    wait_replica_synced(&p, &r);
    assert_eq!(r.digest(), p.digest(), "after TXU.ROLLBACK");
    assert_eq!(run_int(&mut rc, &["EXISTS", &key]), 0);
    assert_logs(&r, 1, 0, "on the replica after one rollback");

    run_ok(&mut c, &["TXU.ROLLBACK", &id2, "FORCE"]);
    wait_replica_synced(&p, &r);
    assert_eq!(p.digest(), d0);
    assert_eq!(r.digest(), d0, "replica after TXU.ROLLBACK FORCE");
    assert!(undo_keys(&mut rc).is_empty());
    assert_logs(&r, 0, 0, "on the replica at the end");
}

#[test]
fn promoted_replica_rolls_back() {
    let p = Server::start();
    let r = p.start_replica_of();
    let mut c = p.raw();
    let Retained {
        keys,
        digest,
        before,
        ids,
    } = seed_and_retain(&p, &mut c, &["a:", "b:", "c:"]);
    // Changed on the primary while the replica follows.
    assert_eq!(run_int(&mut c, &["HSET", "b:h", "f9", "v9"]), 1);
    wait_replica_synced(&p, &r);
    assert_eq!(r.digest(), p.digest());

    let mut rc = r.raw();
    run_ok(&mut rc, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(
        r.info_field("replication", "role").as_deref(),
        Some("master")
    );
    assert_logs(&r, 3, 0, "on the promoted replica");
    assert_eq!(
        run_err(&mut rc, &["TXU.ROLLBACK", &ids[1]]),
        conflict(&ids[1], "b:h")
    );
    // Changed on the promoted replica.
    assert_eq!(run_int(&mut rc, &["SADD", "c:set", "m7"]), 1);
    assert_eq!(
        run_err(&mut rc, &["TXU.ROLLBACK", &ids[2]]),
        conflict(&ids[2], "c:set")
    );
    run_ok(&mut rc, &["TXU.ROLLBACK", &ids[0]]);
    assert_eq!(key_states(&mut rc, &keys[..9]), before[..9]);
    run_ok(&mut rc, &["TXU.ROLLBACK", &ids[1], "FORCE"]);
    run_ok(&mut rc, &["TXU.ROLLBACK", &ids[2], "FORCE"]);
    assert_eq!(r.digest(), digest, "promoted replica after the rollbacks");
    assert_eq!(key_states(&mut rc, &keys), before);
    assert!(undo_keys(&mut rc).is_empty());
    assert_logs(&r, 0, 0, "on the promoted replica at the end");
}

#[test]
fn replica_that_syncs_after_the_commit_gets_the_log() {
    let p = Server::start();
    let mut c = p.raw();
    seed(&mut c, "a:");
    let d0 = p.digest();
    let id = commit(&mut c, &["RETAIN", LONG], &tx_cmds("a:"));
    let key = check_retained_key(&mut c, &id, "a:s", 600_000);
    // Full synchronization: the log arrives in the RDB.
    let r = p.start_replica_of();
    assert_eq!(r.digest(), p.digest());
    let mut rc = r.raw();
    assert_eq!(undo_key_of(&mut rc, &id), key);
    assert_eq!(
        run_int(&mut rc, &["PEXPIRETIME", &key]),
        run_int(&mut c, &["PEXPIRETIME", &key])
    );
    run_ok(&mut rc, &["REPLICAOF", "NO", "ONE"]);
    run_ok(&mut rc, &["TXU.ROLLBACK", &id]);
    assert_eq!(r.digest(), d0);
    assert_eq!(run_err(&mut rc, &["TXU.ROLLBACK", &id]), unknown(&id));
}

// ----- rollbacks that cannot finish (test-faults build) ----------------------------------------

/// `SET z 1; INCR h` with `h` a hash: command 2 fails, `SET z 1` must be undone.
fn failing_tx() -> Vec<Vec<String>> {
    vec![args(&["SET", "z", "1"]), args(&["INCR", "h"])]
}

fn assert_incomplete(e: &str, id: &str) {
    assert!(e.starts_with("ROLLBACK command 2 (INCR) failed:"), "{e}");
    assert!(e.contains("rollback incomplete"), "{e}");
    assert!(e.contains(&format!("pending as {id}")), "{e}");
}

fn wait_pending_finished(s: &Server, finished: u64) {
    wait_until("the pending rollback to finish", DEADLINE, || {
        let i = s.info("txu");
        i.get("txu_rollbacks_pending").map(String::as_str) == Some("0")
            && i.get("txu_rollbacks_pending_finished") == Some(&finished.to_string())
    });
}

#[test]
fn pending_rollback_is_finished_by_the_timer() {
    let s = Server::start_with_fault_module(&[]);
    let mut c = s.raw();
    assert_eq!(run_int(&mut c, &["HSET", "h", "f", "v"]), 1);
    let d0 = s.digest();
    run_ok(&mut c, &["TXU._FAULT", "UNDO", "5"]);
    let id = begin(&mut c);
    queue_all(&mut c, &failing_tx());
    // TXU.EXEC and INFO in one write: the server runs both before its timer can fire.
    let mut req = encode_command(&[b"TXU.EXEC"]);
    req.extend(encode_command(&[b"INFO", b"txu"]));
    c.send_raw(&req);
    let e = error_text(c.read_reply(), "TXU.EXEC");
    assert_incomplete(&e, &id);
    let info = c.read_reply();
    let info = common::parse_info(&show(bulk_body(&info).expect("INFO txu reply")));
    assert_eq!(
        info.get("txu_rollbacks_pending").map(String::as_str),
        Some("1"),
        "right after TXU.EXEC: {info:?}"
    );
    assert_eq!(
        info.get("txu_rollbacks_pending_finished")
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(
        info.get("txu_rollback_failures").map(String::as_str),
        Some("1")
    );

    wait_pending_finished(&s, 1);
    assert_eq!(s.digest(), d0);
    assert!(undo_keys(&mut c).is_empty());
    assert_logs(&s, 0, 0, "after the pending rollback finished");
}

#[test]
fn pending_rollback_inside_multi() {
    let s = Server::start_with_fault_module(&[]);
    let mut c = s.raw();
    assert_eq!(run_int(&mut c, &["HSET", "h", "f", "v"]), 1);
    let d0 = s.digest();
    run_ok(&mut c, &["TXU._FAULT", "UNDO", "5"]);
    let id = begin(&mut c);
    queue_all(&mut c, &failing_tx());
    run_ok(&mut c, &["MULTI"]);
    assert_eq!(run_text(&mut c, &["TXU.EXEC"]), "+QUEUED\r\n");
    assert_eq!(run_text(&mut c, &["INFO", "txu"]), "+QUEUED\r\n");
    let r = run_text(&mut c, &["EXEC"]);
    let rest = r
        .strip_prefix("*2\r\n-")
        .unwrap_or_else(|| panic!("EXEC: {r:?}"));
    let (e, info) = rest.split_once("\r\n").unwrap();
    assert_incomplete(e, &id);
    assert!(info.contains("txu_rollbacks_pending:1\r\n"), "{info:?}");
    wait_pending_finished(&s, 1);
    assert_eq!(s.digest(), d0);
    assert!(undo_keys(&mut c).is_empty());
}

#[test]
fn pending_rollback_waits_while_writes_keep_failing() {
    let s = Server::start_with_fault_module(&[]);
    let mut c = s.raw();
    assert_eq!(run_int(&mut c, &["HSET", "h", "f", "v"]), 1);
    let d0 = s.digest();
    run_ok(&mut c, &["TXU._FAULT", "UNDO", "1000"]);
    let (id, r) = exec_tx(&mut c, &[], &failing_tx());
    let e = error_text(&r, "TXU.EXEC");
    assert_incomplete(&e, &id);
    assert!(e.contains(FAULT_ERROR), "{e}");
    assert_logs(&s, 0, 1, "while the rollback is pending");
    assert_eq!(s.info_u64("txu", "txu_rollbacks_pending_finished"), 0);
    // The pending log is stored under its hidden key, in the slot of the key to undo.
    let key = undo_key_of(&mut c, &id);
    assert_eq!(run_simple(&mut c, &["TYPE", &key]), "txu-undo1");
    assert_eq!(key_slot(key.as_bytes()), key_slot(b"z"));
    assert!(run_err(&mut c, &["GET", &key]).starts_with("WRONGTYPE"));
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &id]),
        format!("ERR the rollback of transaction '{id}' is already pending")
    );

    run_ok(&mut c, &["TXU._FAULT", "UNDO", "0"]);
    wait_pending_finished(&s, 1);
    assert_eq!(s.digest(), d0);
    assert!(undo_keys(&mut c).is_empty());
    assert_logs(&s, 0, 0, "after the pending rollback finished");
    assert_eq!(run_err(&mut c, &["TXU.ROLLBACK", &id]), unknown(&id));
}

#[test]
fn rollback_of_a_committed_transaction_that_cannot_finish_is_pending() {
    let s = Server::start_with_fault_module(&[]);
    let mut c = s.raw();
    let keys = seed(&mut c, "a:");
    let d0 = s.digest();
    let before = key_states(&mut c, &keys);
    let id = commit(&mut c, &["RETAIN", LONG], &tx_cmds("a:"));
    run_ok(&mut c, &["TXU._FAULT", "UNDO", "1000"]);
    let e = run_err(&mut c, &["TXU.ROLLBACK", &id]);
    assert!(
        e.starts_with(&format!("ERR rollback of '{id}' incomplete")) && e.contains("pending"),
        "{e}"
    );
    assert_logs(&s, 0, 1, "while the rollback is pending");
    assert_eq!(
        run_err(&mut c, &["TXU.ROLLBACK", &id]),
        format!("ERR the rollback of transaction '{id}' is already pending")
    );
    run_ok(&mut c, &["TXU._FAULT", "UNDO", "0"]);
    wait_pending_finished(&s, 1);
    assert_eq!(s.digest(), d0);
    assert_eq!(key_states(&mut c, &keys), before);
    assert!(undo_keys(&mut c).is_empty());
    assert_logs(&s, 0, 0, "after the pending rollback finished");
}

/// The fault lasts until the restart (the switch is in memory); the restarted server finishes
/// the stored pending rollback.
fn pending_rollback_survives(mode: Restart) {
    let mut s = server_for(mode, true);
    let mut c = s.raw();
    assert_eq!(run_int(&mut c, &["HSET", "h", "f", "v"]), 1);
    let d0 = s.digest();
    run_ok(&mut c, &["TXU._FAULT", "UNDO", "1000"]);
    let (id, r) = exec_tx(&mut c, &[], &failing_tx());
    assert_incomplete(&error_text(&r, "TXU.EXEC"), &id);
    assert_logs(&s, 0, 1, "before the restart");
    undo_key_of(&mut c, &id);
    drop(c);

    persist_and_restart(&mut s, mode);
    wait_pending_finished(&s, 1);
    let mut c = s.raw();
    assert_eq!(s.digest(), d0, "after {mode:?}");
    assert!(undo_keys(&mut c).is_empty());
    assert_logs(&s, 0, 0, "after the pending rollback finished");
}

#[test]
fn pending_rollback_survives_save_and_restart() {
    pending_rollback_survives(Restart::Save);
}

#[test]
fn pending_rollback_survives_aof_restart() {
    pending_rollback_survives(Restart::Aof {
        preamble: true,
        rewrite: false,
    });
}

#[test]
fn pending_rollback_survives_aof_restart_without_rdb_preamble() {
    pending_rollback_survives(Restart::Aof {
        preamble: false,
        rewrite: false,
    });
}

#[test]
fn pending_rollback_survives_aof_rewrite_without_rdb_preamble() {
    pending_rollback_survives(Restart::Aof {
        preamble: false,
        rewrite: true,
    });
}

#[test]
fn replica_converges_after_a_pending_rollback_finishes() {
    let p = Server::start_with_fault_module(&[]);
    let r = p.start_replica_of();
    let mut c = p.raw();
    let mut rc = r.raw();
    assert_eq!(run_int(&mut c, &["HSET", "h", "f", "v"]), 1);
    let d0 = p.digest();
    run_ok(&mut c, &["TXU._FAULT", "UNDO", "1000"]);
    let (id, reply) = exec_tx(&mut c, &[], &failing_tx());
    assert_incomplete(&error_text(&reply, "TXU.EXEC"), &id);
    wait_replica_synced(&p, &r);
    assert_eq!(r.digest(), p.digest(), "while pending");
    let key = undo_key_of(&mut rc, &id);
    assert_eq!(run_simple(&mut rc, &["TYPE", &key]), "txu-undo1");
    assert_logs(&r, 0, 1, "on the replica while pending");

    run_ok(&mut c, &["TXU._FAULT", "UNDO", "0"]);
    wait_pending_finished(&p, 1);
    wait_replica_synced(&p, &r);
    assert_eq!(p.digest(), d0);
    assert_eq!(
        r.digest(),
        d0,
        "replica after the pending rollback finished"
    );
    assert!(undo_keys(&mut rc).is_empty());
    assert_logs(&r, 0, 0, "on the replica at the end");
}

#[test]
fn a_transaction_that_rolls_back_completely_is_no_conflict() {
    let s = Server::start();
    let mut c = s.raw();
    run_ok(&mut c, &["SET", "k", "1"]);
    assert_eq!(run_int(&mut c, &["HSET", "h", "f", "v"]), 1);
    let id = commit(&mut c, &["RETAIN", "60000"], &[args(&["INCR", "k"])]);
    // Another transaction writes k, then fails: k is back to 2, nothing changed.
    let (_, reply) = exec_tx(&mut c, &[], &[args(&["INCR", "k"]), args(&["INCR", "h"])]);
    assert_rolled_back(&reply, 2, "INCR");
    assert_eq!(run_bulk(&mut c, &["GET", "k"]), "2");
    // So the retained transaction is still undoable without FORCE.
    run_ok(&mut c, &["TXU.ROLLBACK", &id]);
    assert_eq!(run_bulk(&mut c, &["GET", "k"]), "1");
}
