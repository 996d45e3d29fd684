//! Nothing removes an accepted task or a retained undo log behind txu's back. A deferred task
//! ends applied once, dead, dropped by `TXU.DROP`, or with a `FLUSHALL`/`FLUSHDB` of its
//! database; a retained log ends rolled back, expired, or flushed. Whatever clients do to
//! txu's keys — `DEL`, `UNLINK`, `EXPIRE`, `RENAME`, `MOVE`, `SWAPDB`, a `RESTORE` of an old
//! copy over the key (one under another name is refused), a `SET` over the name — and
//! whatever the `maxmemory-policy` evicts, the module keeps the state and writes the key
//! back, and `INFO txu` counts what `TXU.TASKS` lists.

mod common;

use common::{config_set, exec_tx, query, run, task_ids, text, wait_until, RawConn, Server};
use redis::Value;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// Defers `INCR <key>` under a real NOREPLICAS fault (on for the call only); tasks wait ten
/// minutes before their first retry, so they stay pending until the test retries them.
fn defer_incr(con: &mut redis::Connection, c: &mut RawConn, key: &str) -> String {
    config_set(con, "txu.backoff-base-ms", "600000");
    config_set(con, "txu.backoff-max-ms", "600000");
    config_set(con, "min-replicas-to-write", "1");
    let (id, r) = exec_tx(c, &["RETRY"], &[&["INCR", key]]);
    config_set(con, "min-replicas-to-write", "0");
    let r = String::from_utf8_lossy(&r).into_owned();
    assert!(r.starts_with(&format!("-DEFERRED {id} NOREPLICAS")), "{r}");
    id
}

/// `RESTORE <name> 0 <dump> REPLACE`.
fn restore(con: &mut redis::Connection, name: &str, dump: &[u8]) -> redis::RedisResult<String> {
    redis::cmd("RESTORE")
        .arg(name)
        .arg(0)
        .arg(dump)
        .arg("REPLACE")
        .query::<String>(con)
}

/// Switches to `allkeys-random` with little room and writes 10 kB values until the INFO txu
/// counter `restored` shows that eviction took one of txu's keys and txu wrote it back.
fn evict_until_restored(s: &Server, restored: &str) {
    let mut con = s.conn();
    config_set(&mut con, "maxmemory-policy", "allkeys-random");
    let used = s.info_u64("memory", "used_memory");
    config_set(&mut con, "maxmemory", &(used + 300_000).to_string());
    let value = "x".repeat(10_000);
    let mut n = 0u64;
    wait_until(&format!("{restored} after evictions"), DEADLINE, || {
        for _ in 0..20 {
            n += 1;
            query(&mut con, &["SET", &format!("fill:{n}"), &value]);
        }
        s.info_u64("txu", restored) >= 1
    });
    assert!(
        s.info_u64("stats", "evicted_keys") > 0,
        "nothing was evicted"
    );
    config_set(&mut con, "maxmemory", "0");
}

fn type_of(con: &mut redis::Connection, key: &str) -> String {
    text(&query(con, &["TYPE", key]))
}

/// The list is whole: `TXU.TASKS` lists `ids`, `INFO` counts them, and the key `txu:tasks`
/// holds the list again (written back by the primary within a tick or so).
fn assert_intact(s: &Server, c: &mut RawConn, ids: &[String], after: &str) {
    let mut con = s.conn();
    wait_until(
        &format!("txu:tasks is back after {after}"),
        DEADLINE,
        || type_of(&mut con, "txu:tasks") == "txu-tasks",
    );
    assert_eq!(task_ids(c, &[]).0, ids, "TXU.TASKS after {after}");
    assert_eq!(
        s.info_u64("txu", "txu_tasks_pending"),
        ids.len() as u64,
        "INFO after {after}"
    );
    assert_eq!(
        query(&mut con, &["PTTL", "txu:tasks"]),
        Value::Int(-1),
        "{after}"
    );
}

/// Lets every task run now and expects each to apply exactly once.
fn run_all_once(s: &Server, ids: &[String], keys: &[&str]) {
    let mut con = s.conn();
    config_set(&mut con, "txu.backoff-base-ms", "10");
    config_set(&mut con, "txu.backoff-max-ms", "10");
    for id in ids {
        assert_eq!(text(&query(&mut con, &["TXU.RETRY", id])), "OK");
    }
    wait_until("every task applied", DEADLINE, || {
        s.info_u64("txu", "txu_tasks_pending") == 0
    });
    for k in keys {
        assert_eq!(
            text(&query(&mut con, &["GET", k])),
            "1",
            "{k} applied exactly once"
        );
    }
    assert_eq!(s.info_u64("txu", "txu_tasks_dead"), 0);
}

#[test]
fn client_commands_on_txu_tasks_lose_no_task() {
    let mut s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    let keys = ["n1", "n2", "n3"];
    let ids: Vec<String> = keys
        .iter()
        .map(|k| defer_incr(&mut con, &mut c, k))
        .collect();
    assert_intact(&s, &mut c, &ids, "deferral");

    let steps: &[&[&str]] = &[
        &["DEL", "txu:tasks"],
        &["UNLINK", "txu:tasks"],
        &["RENAME", "txu:tasks", "stolen"],
        &["DEL", "stolen"],
        &["MOVE", "txu:tasks", "1"],
        &["SWAPDB", "0", "1"],
        &["SET", "txu:tasks", "squatter"],
    ];
    for step in steps {
        // A new connection each time: after SWAPDB, Valkey moves existing connections along
        // with the data.
        let r = query(&mut s.conn(), step);
        assert!(!matches!(r, Value::ServerError(_)), "{step:?}: {r:?}");
        assert_intact(&s, &mut c, &ids, &format!("{step:?}"));
    }
    // A copy restored under another name is refused; over the list's own key it is accepted
    // and changes nothing.
    let mut con = s.conn();
    let Value::BulkString(dump) = query(&mut con, &["DUMP", "txu:tasks"]) else {
        panic!("DUMP txu:tasks");
    };
    assert!(
        restore(&mut con, "copy", &dump).is_err(),
        "a copy under another name"
    );
    assert_eq!(query(&mut con, &["EXISTS", "copy"]), Value::Int(0));
    assert_eq!(restore(&mut con, "txu:tasks", &dump).as_deref(), Ok("OK"));
    assert_intact(&s, &mut c, &ids, "RESTORE of a copy over the key");
    // A TTL set by a client: the key expires, the list is written back without one.
    let restored = s.info_u64("txu", "txu_task_list_restored");
    query(&mut con, &["PEXPIRE", "txu:tasks", "50"]);
    wait_until("txu:tasks expired and was written back", DEADLINE, || {
        s.info_u64("txu", "txu_task_list_restored") > restored
            && query(&mut con, &["PTTL", "txu:tasks"]) == Value::Int(-1)
    });
    assert_intact(&s, &mut c, &ids, "EXPIRE");

    // The list the module kept is the one that persists.
    query(&mut con, &["DEBUG", "RELOAD"]);
    assert_intact(&s, &mut c, &ids, "DEBUG RELOAD");
    query(&mut con, &["SAVE"]);
    s.restart();
    let mut c = s.raw();
    assert_intact(&s, &mut c, &ids, "restart");
    run_all_once(&s, &ids, &keys);
}

#[test]
fn a_restored_old_copy_of_the_list_never_brings_back_a_task() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    let old = defer_incr(&mut con, &mut c, "once");
    let Value::BulkString(dump) = query(&mut con, &["DUMP", "txu:tasks"]) else {
        panic!("DUMP txu:tasks");
    };
    run_all_once(&s, std::slice::from_ref(&old), &["once"]);
    let keep = defer_incr(&mut con, &mut c, "later");

    // A client puts the old list (with `old` still pending) back under the list's key.
    let r = redis::cmd("RESTORE")
        .arg("txu:tasks")
        .arg(0)
        .arg(&dump)
        .arg("REPLACE")
        .query::<String>(&mut con);
    assert_eq!(r.as_deref(), Ok("OK"));
    // The key holds the module's list again at once: the copy's content is dropped.
    assert_eq!(task_ids(&mut c, &[]).0, vec![keep.clone()]);
    query(&mut con, &["DEBUG", "RELOAD"]);
    assert_eq!(task_ids(&mut c, &[]).0, vec![keep.clone()]);
    let state = String::from_utf8_lossy(&run(&mut c, &["TXU.STATUS", &old])).into_owned();
    assert!(state.contains("\r\ndone\r\n"), "{state}");
    run_all_once(&s, &[keep], &["once", "later"]);
}

#[test]
fn eviction_loses_no_task_whatever_the_policy() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    // Deferred before the policy changes.
    let keys = ["e1", "e2"];
    let ids: Vec<String> = keys
        .iter()
        .map(|k| defer_incr(&mut con, &mut c, k))
        .collect();
    evict_until_restored(&s, "txu_task_list_restored");
    assert_intact(&s, &mut c, &ids, "evictions");
    query(&mut con, &["DEBUG", "RELOAD"]);
    assert_intact(&s, &mut c, &ids, "DEBUG RELOAD after evictions");
    run_all_once(&s, &ids, &keys);
}

/// The name of the hidden key holding the undo log of `txid`.
fn undo_key(con: &mut redis::Connection, txid: &str) -> String {
    let Value::Array(r) = query(
        con,
        &[
            "SCAN",
            "0",
            "MATCH",
            &format!("txu:undo:*:{txid}"),
            "COUNT",
            "10000",
        ],
    ) else {
        panic!("SCAN");
    };
    let Some(Value::Array(keys)) = r.get(1) else {
        panic!("SCAN reply {r:?}");
    };
    assert_eq!(keys.len(), 1, "one undo key for {txid}: {keys:?}");
    text(&keys[0])
}

/// The retained log of `txid` is whole: counted, undoable, and its key holds it again with
/// a TTL within the retention (none after a client's PERSIST: the timer ends the log when
/// its retention is over, whatever the key's TTL).
fn assert_log_intact(s: &Server, txid: &str, key: &str, retain_ms: i64, after: &str) {
    let mut con = s.conn();
    wait_until(&format!("{key} is back after {after}"), DEADLINE, || {
        type_of(&mut con, key) == "txu-undo1"
    });
    let Value::Int(pttl) = query(&mut con, &["PTTL", key]) else {
        panic!("PTTL");
    };
    assert!(
        pttl == -1 || (pttl > 0 && pttl <= retain_ms),
        "PTTL {key} = {pttl} after {after}"
    );
    assert_eq!(
        s.info_u64("txu", "txu_undo_logs_retained"),
        1,
        "INFO after {after}"
    );
    let st = String::from_utf8_lossy(&run(&mut s.raw(), &["TXU.STATUS", txid])).into_owned();
    assert!(
        st.contains("\r\nretained\r\n"),
        "TXU.STATUS after {after}: {st}"
    );
}

#[test]
fn client_commands_on_an_undo_log_key_lose_no_log() {
    let mut s = Server::start();
    let mut con = s.conn();
    query(&mut con, &["SET", "k", "old"]);
    let retain = 600_000;
    let (txid, r) = exec_tx(&mut s.raw(), &["RETAIN", "600000"], &[&["SET", "k", "new"]]);
    assert_eq!(r, b"*1\r\n+OK\r\n");
    let key = undo_key(&mut con, &txid);
    assert_log_intact(&s, &txid, &key, retain, "commit");

    let steps: Vec<Vec<&str>> = vec![
        vec!["DEL", &key],
        vec!["UNLINK", &key],
        vec!["RENAME", &key, "stolen"],
        vec!["DEL", "stolen"],
        vec!["MOVE", &key, "1"],
        vec!["SWAPDB", "0", "1"],
        vec!["SET", &key, "squatter"],
        vec!["PERSIST", &key],
        vec!["PEXPIRE", &key, "30"],
    ];
    for step in &steps {
        let r = query(&mut s.conn(), step);
        assert!(!matches!(r, Value::ServerError(_)), "{step:?}: {r:?}");
        assert_log_intact(&s, &txid, &key, retain, &format!("{step:?}"));
    }
    // A copy restored under another name, then deleted; an old copy restored over the key.
    let mut con = s.conn();
    let Value::BulkString(dump) = query(&mut con, &["DUMP", &key]) else {
        panic!("DUMP {key}");
    };
    assert!(
        restore(&mut con, "copy", &dump).is_err(),
        "a copy under another name"
    );
    assert_eq!(restore(&mut con, &key, &dump).as_deref(), Ok("OK"));
    assert_log_intact(&s, &txid, &key, retain, "RESTORE of a copy over the key");

    query(&mut con, &["DEBUG", "RELOAD"]);
    assert_log_intact(&s, &txid, &key, retain, "DEBUG RELOAD");
    query(&mut con, &["SAVE"]);
    s.restart();
    assert_log_intact(&s, &txid, &key, retain, "restart");
    let mut c = s.raw();
    assert_eq!(run(&mut c, &["TXU.ROLLBACK", &txid]), b"+OK\r\n");
    let mut con = s.conn();
    assert_eq!(text(&query(&mut con, &["GET", "k"])), "old");

    // The log is over: a copy restored under its key never brings it back, not even after a
    // reload, and it cannot be undone twice.
    assert_eq!(restore(&mut con, &key, &dump).as_deref(), Ok("OK"));
    query(&mut con, &["SET", "k", "later"]);
    query(&mut con, &["DEBUG", "RELOAD"]);
    let e = String::from_utf8_lossy(&run(&mut c, &["TXU.ROLLBACK", &txid, "FORCE"])).into_owned();
    assert!(e.starts_with("-ERR no retained transaction"), "{e}");
    assert_eq!(text(&query(&mut con, &["GET", "k"])), "later");
    assert_eq!(s.info_u64("txu", "txu_undo_logs_retained"), 0);
}

#[test]
fn eviction_loses_no_undo_log() {
    let s = Server::start();
    let mut con = s.conn();
    query(&mut con, &["SET", "k", "old"]);
    let (txid, r) = exec_tx(&mut s.raw(), &["RETAIN", "600000"], &[&["SET", "k", "new"]]);
    assert_eq!(r, b"*1\r\n+OK\r\n");
    let key = undo_key(&mut con, &txid);
    evict_until_restored(&s, "txu_undo_logs_restored");
    // `k` itself may have been evicted: put the committed value back before undoing.
    query(&mut con, &["SET", "k", "new"]);
    assert_log_intact(&s, &txid, &key, 600_000, "evictions");
    let r =
        String::from_utf8_lossy(&run(&mut s.raw(), &["TXU.ROLLBACK", &txid, "FORCE"])).into_owned();
    assert_eq!(r, "+OK\r\n");
    assert_eq!(text(&query(&mut con, &["GET", "k"])), "old");
}

#[test]
fn a_pending_rollback_never_overwrites_a_later_write_of_another_client() {
    let s = Server::start_with_fault_module(&[]);
    let mut con = s.conn();
    query(&mut con, &["SET", "a", "a0"]);
    query(&mut con, &["SET", "b", "b0"]);
    // Every compensating write fails for now: the rollback stays pending.
    query(&mut con, &["TXU._FAULT", "UNDO", "1000000"]);
    let (txid, r) = exec_tx(
        &mut s.raw(),
        &[],
        &[&["SET", "a", "a1"][..], &["SET", "b", "b1"], &["INCR", "a"]],
    );
    let r = String::from_utf8_lossy(&r).into_owned();
    assert!(r.contains("rollback incomplete"), "{r}");
    // Another client writes `a` after the failure.
    query(&mut con, &["SET", "a", "theirs"]);
    wait_until(
        "the pending rollback reports the skipped key",
        DEADLINE,
        || {
            let st =
                String::from_utf8_lossy(&run(&mut s.raw(), &["TXU.STATUS", &txid])).into_owned();
            st.contains("\r\nrollback-pending\r\n")
                && st.ends_with("skipped-keys\r\n*1\r\n$1\r\na\r\n")
        },
    );
    query(&mut con, &["TXU._FAULT", "UNDO", "0"]);
    wait_until("the pending rollback finishes", DEADLINE, || {
        s.info_u64("txu", "txu_rollbacks_pending") == 0
    });
    assert_eq!(
        text(&query(&mut con, &["GET", "a"])),
        "theirs",
        "their write stays"
    );
    assert_eq!(
        text(&query(&mut con, &["GET", "b"])),
        "b0",
        "the rest is undone"
    );
    let log = s.log();
    assert!(
        log.contains(&format!(
            "rollback of {txid} finished; left alone keys other clients wrote after it failed: a"
        )),
        "the server log names the key"
    );
}
