//! The failed-task list against real faults: `TXU.BEGIN RETRY` transactions that fail with a
//! transient error (a real `OOM` under `maxmemory` + `noeviction`, a real `NOREPLICAS` under
//! `min-replicas-to-write`) are rolled back, kept on the list in `txu:tasks`, and run again by
//! the timer once the fault clears: oldest first, never overtaking an earlier task on a shared
//! key, each exactly once. Permanent failures and used-up attempts go to the dead list.
//!
//! Also: the list survives `kill -9` with `appendfsync always`, SAVE + restart, an AOF rewrite
//! without the RDB preamble, `DEBUG RELOAD`, replication (live and full resync) and promotion;
//! `FLUSHALL`/`FLUSHDB` on database 0 drop it; `TXU.STATUS`, `TXU.TASKS`, `TXU.RETRY`,
//! `TXU.DROP` and the INFO fields; the `PENDING` refusal of a transaction without `RETRY`.
//!
//! Every wait polls a condition with a deadline; nothing sleeps in place of a condition.

mod common;

use common::tasks::{ids, status, tasks, tasks_page, TaskView};
use common::{
    begin_with, config_set, exec_tx, exists, expect, info_i64, lrange, query, rewrite_aof, run_err,
    run_text, show, text, txu, txu_info, txu_with, wait_replica_synced, wait_until,
    watch_tick_budget, RawConn, Server,
};
use redis::Value;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);
/// How long a task may take to apply once its fault is gone, with `txu.backoff-max-ms` 300 and
/// the default tick: the pending backoff, plus a few ticks, plus slack for a loaded machine.
const APPLY_DEADLINE: Duration = Duration::from_secs(3);

// ----- raw connection helpers ------------------------------------------------------------------

/// A transaction that must be deferred because a command failed with `cause`.
fn defer_now(c: &mut RawConn, opts: &[&str], cmds: &[&[&str]], cause: &str) -> String {
    let (id, r) = exec_tx(c, opts, cmds);
    assert_eq!(
        show(&r),
        format!("-DEFERRED {id} {cause}\r\n"),
        "TXU.EXEC of {cmds:?} with {opts:?}"
    );
    id
}

/// A transaction that must be deferred at once behind `task` (which holds `key`).
fn defer_behind(c: &mut RawConn, opts: &[&str], cmds: &[&[&str]], task: &str, key: &str) -> String {
    let (id, r) = exec_tx(c, opts, cmds);
    assert_eq!(
        show(&r),
        format!("-DEFERRED {id} waiting behind deferred task {task} on key '{key}'\r\n"),
        "TXU.EXEC of {cmds:?} with {opts:?}"
    );
    id
}

fn pending_refusal(key: &str, task: &str) -> String {
    format!(
        "-PENDING key '{key}' waits for deferred task {task}; nothing was applied (TXU.BEGIN \
         RETRY queues behind it)\r\n"
    )
}

// ----- redis-crate helpers ---------------------------------------------------------------------

/// Turns on a real transient fault, `min-replicas-to-write 1` without a replica, and returns
/// the error a plain write of `key` gets under it (`NOREPLICAS ...`).
fn noreplicas_on(con: &mut redis::Connection, c: &mut RawConn, key: &str) -> String {
    config_set(con, "min-replicas-to-write", "1");
    let cause = run_err(c, &["SET", key, "1"]);
    assert!(cause.starts_with("NOREPLICAS "), "plain SET: {cause}");
    cause
}

/// Sets `txu.backoff-base-ms` and `txu.backoff-max-ms`.
fn backoff(con: &mut redis::Connection, base_ms: &str, max_ms: &str) {
    config_set(con, "txu.backoff-base-ms", base_ms);
    config_set(con, "txu.backoff-max-ms", max_ms);
}

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    match query(con, &["GET", key]) {
        Value::Nil => None,
        v => Some(text(&v)),
    }
}

/// Id, state, db, max_attempts, submitted-at, commands of a task: what a retry does not change.
type Stable = (String, String, i64, i64, i64, Vec<Vec<String>>);

fn state(con: &mut redis::Connection, id: &str) -> String {
    status(con, id).state
}

fn wait_state(con: &mut redis::Connection, id: &str, want: &str, deadline: Duration) {
    wait_until(&format!("TXU.STATUS {id} is {want}"), deadline, || {
        state(con, id) == want
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes a 4 MiB `filler` key, then lowers `maxmemory` below what the server uses (with
/// `noeviction`) until a plain `SET` is refused with OOM; returns that error. Deleting the
/// filler brings the server well under the limit again.
fn fill_until_oom(con: &mut redis::Connection, c: &mut RawConn) -> String {
    const FILLER: usize = 4 * 1024 * 1024;
    expect(
        c,
        &["SETRANGE", "filler", &(FILLER - 1).to_string(), "x"],
        &format!(":{FILLER}\r\n"),
    );
    let start = Instant::now();
    loop {
        let used = info_i64(con, "memory", "used_memory");
        let limit = used - 1024 * 1024;
        assert!(limit > 0, "used_memory {used} is too small to fill");
        config_set(con, "maxmemory", &limit.to_string());
        let r = run_text(c, &["SET", "probe", "1"]);
        if r.starts_with("-OOM ") {
            return common::error_text(&r, "SET probe");
        }
        assert_eq!(r, "+OK\r\n", "SET probe");
        expect(c, &["DEL", "probe"], ":1\r\n");
        assert!(
            start.elapsed() < DEADLINE,
            "a SET never failed with OOM (last reply {r:?})"
        );
    }
}

// ----- real faults -----------------------------------------------------------------------------

#[test]
fn noreplicas_defers_the_transaction_and_it_applies_once_the_fault_clears() {
    let s = Server::start_with(&["--txu.backoff-max-ms", "300"]);
    let mut con = s.conn();
    let mut c = s.raw();
    let cause = noreplicas_on(&mut con, &mut c, "a");

    let id = defer_now(
        &mut c,
        &["RETRY"],
        &[&["SET", "a", "1"], &["RPUSH", "l", "x"]],
        &cause,
    );
    assert_eq!(get(&mut con, "a"), None);
    assert!(!exists(&s, "l"));
    let st = status(&mut con, &id);
    assert_eq!(st.state, "pending");
    assert_eq!(st.last_error.as_deref(), Some(cause.as_str()));
    assert_eq!(txu_info(&mut con, "txu_transactions_deferred"), 1);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 1);

    // The timer retries under the fault, and the retry fails the same way.
    wait_until("the timer retried the task", DEADLINE, || {
        status(&mut con, &id).attempts.unwrap_or(0) >= 1
    });
    let st = status(&mut con, &id);
    assert_eq!(st.state, "pending");
    assert_eq!(st.last_error.as_deref(), Some(cause.as_str()));
    assert_eq!(get(&mut con, "a"), None);
    assert!(txu_info(&mut con, "txu_retries_run") >= 1);
    assert_eq!(txu_info(&mut con, "txu_retries_succeeded"), 0);

    config_set(&mut con, "min-replicas-to-write", "0");
    wait_state(&mut con, &id, "done", APPLY_DEADLINE);
    assert_eq!(get(&mut con, "a").as_deref(), Some("1"));
    assert_eq!(lrange(&mut con, "l"), ["x"]);
    assert_eq!(txu_info(&mut con, "txu_retries_succeeded"), 1);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    assert_eq!(txu_info(&mut con, "txu_oldest_pending_age_ms"), 0);
    assert!(tasks(&mut con, &[]).is_empty());
}

#[test]
fn oom_defers_the_transaction_and_it_applies_once_memory_is_freed() {
    let s = Server::start_with(&[
        "--maxmemory-policy",
        "noeviction",
        "--txu.backoff-max-ms",
        "300",
    ]);
    let mut con = s.conn();
    let mut c = s.raw();
    expect(&mut c, &["SET", "old", "keep"], "+OK\r\n");
    // A 4 MiB string.
    let cause = fill_until_oom(&mut con, &mut c);

    // DEL is not deny-oom and runs; SET is refused with OOM; the DEL is undone.
    let id = defer_now(
        &mut c,
        &["RETRY"],
        &[&["DEL", "old"], &["SET", "k", "v"]],
        &cause,
    );
    assert_eq!(get(&mut con, "old").as_deref(), Some("keep"));
    assert_eq!(get(&mut con, "k"), None);

    wait_until("the timer retried the task under OOM", DEADLINE, || {
        status(&mut con, &id).attempts.unwrap_or(0) >= 1
    });
    let st = status(&mut con, &id);
    assert_eq!(st.state, "pending");
    assert_eq!(st.last_error.as_deref(), Some(cause.as_str()));
    assert_eq!(get(&mut con, "old").as_deref(), Some("keep"));
    assert_eq!(get(&mut con, "k"), None);

    expect(&mut c, &["DEL", "filler"], ":1\r\n");
    wait_state(&mut con, &id, "done", APPLY_DEADLINE);
    assert_eq!(get(&mut con, "k").as_deref(), Some("v"));
    assert!(!exists(&s, "old"));
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    assert_eq!(txu_info(&mut con, "txu_retries_succeeded"), 1);
}

#[test]
fn permanent_error_in_a_retry_goes_dead_and_txu_retry_applies_it_after_the_fix() {
    let s = Server::start_with(&[
        "--maxmemory-policy",
        "noeviction",
        "--txu.backoff-max-ms",
        "300",
    ]);
    let mut con = s.conn();
    let mut c = s.raw();
    expect(&mut c, &["HSET", "h", "f", "v"], ":1\r\n");
    let cause = fill_until_oom(&mut con, &mut c);
    let id = defer_now(
        &mut c,
        &["RETRY"],
        &[&["SET", "side", "1"], &["INCR", "k"]],
        &cause,
    );
    // While the fault lasts, a plain command (RENAME is not deny-oom) makes `k` a hash.
    expect(&mut c, &["RENAME", "h", "k"], "+OK\r\n");
    assert_eq!(state(&mut con, &id), "pending");

    config_set(&mut con, "maxmemory", "0");
    wait_state(&mut con, &id, "dead", APPLY_DEADLINE);
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    let st = status(&mut con, &id);
    assert_eq!(st.last_error.as_deref(), Some(wrongtype));
    assert!(st.attempts.unwrap_or(0) >= 1, "{st:?}");
    // The retry was rolled back: SET side did not stay.
    assert!(!exists(&s, "side"));
    assert_eq!(
        show(&c.cmd(&[b"HGET", b"k", b"f"])),
        "$1\r\nv\r\n",
        "k is still the hash"
    );
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 1);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    let dead = tasks(&mut con, &["DEAD"]);
    assert_eq!(ids(&dead), [id.as_str()]);
    assert_eq!(dead[0].state, "dead");
    assert_eq!(dead[0].last_error, wrongtype);

    // A dead task no longer holds its keys.
    let r = txu(&mut c, &["TYPE k"]);
    assert_eq!(show(&r), "*1\r\n+hash\r\n");

    // Fix the cause, retry.
    expect(&mut c, &["DEL", "k"], ":1\r\n");
    expect(&mut c, &["TXU.RETRY", &id], "+OK\r\n");
    wait_state(&mut con, &id, "done", APPLY_DEADLINE);
    assert_eq!(get(&mut con, "k").as_deref(), Some("1"));
    assert_eq!(get(&mut con, "side").as_deref(), Some("1"));
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 0);
    assert!(tasks(&mut con, &[]).is_empty());
}

#[test]
fn attempts_used_up_move_the_task_to_the_dead_list() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    backoff(&mut con, "1", "5");
    let cause = noreplicas_on(&mut con, &mut c, "x");
    let id = defer_now(&mut c, &["RETRY", "2"], &[&["SET", "x", "1"]], &cause);
    wait_state(&mut con, &id, "dead", DEADLINE);
    let st = status(&mut con, &id);
    assert_eq!(st.attempts, Some(2), "{st:?}");
    assert_eq!(st.last_error.as_deref(), Some(cause.as_str()));
    let dead = tasks(&mut con, &["DEAD"]);
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].max_attempts), (2, 2));
    assert_eq!(txu_info(&mut con, "txu_retries_run"), 2);
    assert_eq!(txu_info(&mut con, "txu_retries_succeeded"), 0);
    // The first run failed and left it pending, the second moved it to the dead list.
    assert_eq!(txu_info(&mut con, "txu_retries_failed"), 1);
    assert_eq!(txu_info(&mut con, "txu_retries_died"), 1);
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 1);
    assert_eq!(txu_info(&mut con, "txu_dead_max"), 10_000);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    assert!(tasks(&mut con, &["PENDING"]).is_empty());
    // Still not applied, also once the fault is gone: a dead task is not run.
    config_set(&mut con, "min-replicas-to-write", "0");
    assert_eq!(get(&mut con, "x"), None);
}

#[test]
fn dead_list_is_bounded_by_dead_max() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    backoff(&mut con, "1", "5");
    config_set(&mut con, "txu.dead-max", "1");
    let cause = noreplicas_on(&mut con, &mut c, "x");
    let first = defer_now(&mut c, &["RETRY", "1"], &[&["SET", "x", "1"]], &cause);
    wait_state(&mut con, &first, "dead", DEADLINE);
    let second = defer_now(&mut c, &["RETRY", "1"], &[&["SET", "y", "1"]], &cause);
    wait_state(&mut con, &second, "dead", DEADLINE);
    assert_eq!(state(&mut con, &first), "unknown");
    assert_eq!(ids(&tasks(&mut con, &["DEAD"])), [second]);
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 1);
    assert_eq!(txu_info(&mut con, "txu_tasks_dropped_by_bound"), 1);
}

// ----- order -----------------------------------------------------------------------------------

#[test]
fn tasks_on_shared_keys_run_exactly_once_each_in_submission_order() {
    let s = Server::start_with(&["--txu.backoff-max-ms", "300"]);
    let mut con = s.conn();
    let mut c = s.raw();
    let cause = noreplicas_on(&mut con, &mut c, "k");
    let first = defer_now(
        &mut c,
        &["RETRY", "1000"],
        &[&["SET", "k", "1"], &["RPUSH", "log", "1"]],
        &cause,
    );
    let mut all = vec![first.clone()];
    for i in 2..=4 {
        let n = i.to_string();
        all.push(defer_behind(
            &mut c,
            &["RETRY"],
            &[&["INCR", "k"], &["RPUSH", "log", &n]],
            &first,
            "k",
        ));
    }
    // Keys k and b: behind the first task on k. Then one on b alone: behind that one.
    let kb = defer_behind(
        &mut c,
        &["RETRY"],
        &[&["INCR", "k"], &["SET", "b", "x"]],
        &first,
        "k",
    );
    let b = defer_behind(&mut c, &["RETRY"], &[&["APPEND", "b", "y"]], &kb, "b");
    all.push(kb.clone());
    all.push(b.clone());

    let listed = tasks(&mut con, &[]);
    assert_eq!(ids(&listed), all);
    assert!(listed
        .windows(2)
        .all(|w| w[0].submitted_at <= w[1].submitted_at));
    assert_eq!(
        listed[1].last_error,
        format!("waiting behind deferred task {first} on key 'k'")
    );

    // Without RETRY: refused, nothing applied (not even the read), named after the first task.
    let r = txu(&mut c, &["GET b"]);
    assert_eq!(show(&r), pending_refusal("b", &kb));
    // Plain commands are not held back.
    expect(&mut c, &["GET", "k"], "$-1\r\n");

    config_set(&mut con, "min-replicas-to-write", "0");
    wait_until("every task ran", DEADLINE, || {
        txu_info(&mut con, "txu_tasks_pending") == 0
    });
    assert_eq!(get(&mut con, "k").as_deref(), Some("5"));
    assert_eq!(lrange(&mut con, "log"), ["1", "2", "3", "4"]);
    assert_eq!(get(&mut con, "b").as_deref(), Some("xy"));
    for id in &all {
        assert_eq!(state(&mut con, id), "done", "task {id}");
    }
    assert_eq!(
        txu_info(&mut con, "txu_retries_succeeded"),
        all.len() as i64
    );
}

#[test]
fn a_head_waiting_for_its_backoff_does_not_hold_up_an_unrelated_key() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    backoff(&mut con, "60000", "60000");
    let cause = noreplicas_on(&mut con, &mut c, "a");
    let slow = defer_now(&mut c, &["RETRY"], &[&["SET", "a", "1"]], &cause);
    let behind = defer_behind(&mut c, &["RETRY"], &[&["INCR", "a"]], &slow, "a");
    let t = &tasks(&mut con, &[])[0];
    assert!(
        t.next_attempt_at.unwrap_or(0) - t.submitted_at >= 30_000,
        "first retry of {slow} should wait at least half of 60 s: {t:?}"
    );

    backoff(&mut con, "50", "100");
    let fast = defer_now(&mut c, &["RETRY"], &[&["SET", "b", "1"]], &cause);
    config_set(&mut con, "min-replicas-to-write", "0");
    wait_state(&mut con, &fast, "done", APPLY_DEADLINE);
    assert_eq!(get(&mut con, "b").as_deref(), Some("1"));
    assert_eq!(state(&mut con, &slow), "pending");
    assert_eq!(state(&mut con, &behind), "pending");
    assert_eq!(status(&mut con, &slow).attempts, Some(0));
    assert_eq!(get(&mut con, "a"), None);

    // TXU.RETRY of a pending task: it runs at the next tick, then the one behind it.
    expect(&mut c, &["TXU.RETRY", &slow], "+OK\r\n");
    wait_state(&mut con, &behind, "done", APPLY_DEADLINE);
    assert_eq!(state(&mut con, &slow), "done");
    assert_eq!(get(&mut con, "a").as_deref(), Some("2"));
}

#[test]
fn tick_budget_bounds_the_tasks_run_per_tick() {
    let tick = Duration::from_millis(200);
    let s = Server::start_with(&[
        "--txu.tick-ms",
        "200",
        "--txu.tick-budget",
        "2",
        "--txu.backoff-base-ms",
        "60000",
        "--txu.backoff-max-ms",
        "60000",
    ]);
    let mut con = s.conn();
    let mut c = s.raw();
    let cause = noreplicas_on(&mut con, &mut c, "x");
    let keys = ["t1", "t2", "t3", "t4", "t5", "t6"];
    let all: Vec<String> = keys
        .iter()
        .map(|k| defer_now(&mut c, &["RETRY"], &[&["SET", k, "1"]], &cause))
        .collect();
    config_set(&mut con, "min-replicas-to-write", "0");
    let started = Instant::now();
    for id in &all {
        expect(&mut c, &["TXU.RETRY", id], "+OK\r\n");
    }
    let biggest_step = watch_tick_budget(&mut con, tick, 2, 6, DEADLINE);
    // Six tasks at two per tick need three ticks.
    assert!(
        started.elapsed() >= 2 * tick,
        "6 tasks ran in {:?}, faster than 3 ticks of 2",
        started.elapsed()
    );
    assert_eq!(biggest_step, 2, "no tick was seen running its full budget");
    wait_until("every task applied", DEADLINE, || {
        txu_info(&mut con, "txu_retries_succeeded") == 6
    });
    for k in keys {
        assert_eq!(get(&mut con, k).as_deref(), Some("1"));
    }
}

// ----- commands and INFO -----------------------------------------------------------------------

#[test]
fn status_tasks_retry_drop_and_info() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    let mut c2 = s.raw();
    expect(&mut c2, &["SELECT", "2"], "+OK\r\n");
    backoff(&mut con, "60000", "60000");
    let cause = noreplicas_on(&mut con, &mut c, "a");
    let before = now_ms();
    let t1 = defer_now(
        &mut c,
        &["RETRY", "3"],
        &[&["SET", "a", "1"], &["GET", "a"]],
        &cause,
    );
    let t2 = defer_now(&mut c2, &["RETRY"], &[&["INCR", "b"]], &cause);
    let t3 = defer_behind(&mut c, &["RETRY"], &[&["SET", "a", "2"]], &t1, "a");
    let after = now_ms();

    let st = status(&mut con, &t1);
    assert_eq!(st.state, "pending");
    assert_eq!(st.attempts, Some(0));
    assert_eq!(st.last_error.as_deref(), Some(cause.as_str()));
    let next = st.next_attempt_at.unwrap_or(0);
    assert!(
        next >= before + 30_000 && next <= after + 60_000,
        "next_attempt_at {next} not within [{before}+30s, {after}+60s]"
    );

    let all = tasks(&mut con, &[]);
    assert_eq!(ids(&all), [t1.as_str(), t2.as_str(), t3.as_str()]);
    let want = |t: &TaskView, db, max, cmds: &[&[&str]], keys: &[&str], err: &str| {
        assert_eq!(t.state, "pending", "{t:?}");
        assert_eq!(t.db, db, "{t:?}");
        assert_eq!(t.attempts, 0, "{t:?}");
        assert_eq!(t.max_attempts, max, "{t:?}");
        assert_eq!(t.last_error, err, "{t:?}");
        assert_eq!(t.user, "default", "{t:?}");
        assert_eq!(t.keys, keys, "{t:?}");
        let cmds: Vec<Vec<String>> = cmds
            .iter()
            .map(|c| c.iter().map(|a| a.to_string()).collect())
            .collect();
        assert_eq!(t.commands, cmds, "{t:?}");
        assert!(t.submitted_at >= before && t.submitted_at <= after, "{t:?}");
    };
    let set_get: &[&[&str]] = &[&["SET", "a", "1"], &["GET", "a"]];
    want(&all[0], 0, 3, set_get, &["a"], &cause);
    assert_eq!(all[0].next_attempt_at, Some(next));
    // Its EXEC ran and failed: that was its last attempt.
    assert_eq!(all[0].last_attempt_at, Some(all[0].submitted_at));
    want(&all[1], 2, 10, &[&["INCR", "b"]], &["b"], &cause);
    let behind = format!("waiting behind deferred task {t1} on key 'a'");
    want(&all[2], 0, 10, &[&["SET", "a", "2"]], &["a"], &behind);
    assert_eq!(all[2].next_attempt_at, Some(all[2].submitted_at));
    // Deferred behind t1 without running: no attempt yet.
    assert_eq!(all[2].last_attempt_at, None);
    // TXU.STATUS shows the same task as TXU.TASKS.
    assert_eq!(status(&mut con, &t3).task.as_ref(), Some(&all[2]));

    // Pages: a cursor that goes on until it is 0.
    let (cursor, page) = tasks_page(&mut con, &["PENDING", "COUNT", "2"]);
    assert_eq!(ids(&page), [t1.as_str(), t2.as_str()]);
    assert_ne!(cursor, "0");
    let (end, page) = tasks_page(&mut con, &["COUNT", "2", "CURSOR", &cursor, "PENDING"]);
    assert_eq!((end.as_str(), ids(&page)), ("0", vec![t3.clone()]));
    let (_, page) = tasks_page(&mut con, &["COUNT", "1"]);
    assert_eq!(ids(&page), [t1.as_str()]);
    assert!(tasks(&mut con, &["DEAD"]).is_empty());
    assert_eq!(ids(&tasks(&mut con, &["COUNT", "1"])), ids(&all));
    let usage = "TXU.TASKS [PENDING|DEAD] [CURSOR <cursor>] [COUNT <1..1000>] [MATCH <pattern>]";
    for (args, why) in [
        (
            &["PENDING", "DEAD"][..],
            "PENDING and DEAD exclude each other",
        ),
        (&["COUNT", "x"], "COUNT must be between 1 and 1000"),
        (&["COUNT", "0"], "COUNT must be between 1 and 1000"),
        (&["COUNT", "1001"], "COUNT must be between 1 and 1000"),
        (&["COUNT"], "COUNT must be between 1 and 1000"),
        (&["CURSOR", "-1"], "invalid cursor"),
        (&["MATCH"], "MATCH needs a pattern"),
        (&["BOGUS"], "unknown option"),
    ] {
        let mut full = vec!["TXU.TASKS"];
        full.extend_from_slice(args);
        expect(
            &mut c,
            &full,
            &format!("-ERR syntax error: {why}: {usage}\r\n"),
        );
    }

    assert_eq!(txu_info(&mut con, "txu_transactions_deferred"), 3);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 3);
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 0);
    assert_eq!(txu_info(&mut con, "txu_tasks_dropped_by_bound"), 0);
    assert_eq!(txu_info(&mut con, "txu_retries_run"), 0);
    let b = now_ms();
    let age = txu_info(&mut con, "txu_oldest_pending_age_ms");
    let a = now_ms();
    let oldest = all[0].submitted_at;
    assert!(
        age >= b - oldest - 5 && age <= a - oldest + 5,
        "txu_oldest_pending_age_ms {age} vs created {oldest}, now {b}..{a}"
    );

    // PENDING refusal: nothing applied, also the command on an unrelated key before it.
    let r = txu(&mut c, &["GET zz", "GET a"]);
    assert_eq!(show(&r), pending_refusal("a", &t1));
    // Same key name in another database is another key.
    let r = txu(&mut c, &["GET b"]);
    assert_eq!(show(&r), "*1\r\n$-1\r\n");
    let r = txu(&mut c2, &["GET b"]);
    assert_eq!(show(&r), pending_refusal("b", &t2));

    // The rest with the fault cleared (TXU.RETRY and TXU.DROP are writes), while every task
    // waits for its 60 s backoff.
    config_set(&mut con, "min-replicas-to-write", "0");
    // Unknown ids.
    assert_eq!(state(&mut con, "1-1"), "unknown");
    expect(
        &mut c,
        &["TXU.RETRY", "1-1"],
        "-ERR no deferred task '1-1'\r\n",
    );
    expect(
        &mut c,
        &["TXU.DROP", "nope"],
        "-ERR no deferred task 'nope'\r\n",
    );
    expect(
        &mut c,
        &["TXU.STATUS"],
        "-ERR wrong number of arguments for 'txu.status' command\r\n",
    );

    expect(&mut c, &["TXU.DROP", &t2], "+OK\r\n");
    assert_eq!(state(&mut con, &t2), "unknown");
    expect(
        &mut c,
        &["TXU.DROP", &t2],
        &format!("-ERR no deferred task '{t2}'\r\n"),
    );
    assert_eq!(ids(&tasks(&mut con, &[])), [t1.as_str(), t3.as_str()]);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 2);

    expect(&mut c, &["TXU.RETRY", &t1], "+OK\r\n");
    wait_state(&mut con, &t3, "done", APPLY_DEADLINE);
    assert_eq!(state(&mut con, &t1), "done");
    assert_eq!(get(&mut con, "a").as_deref(), Some("2"));
    expect(&mut c2, &["EXISTS", "b"], ":0\r\n");
    expect(
        &mut c,
        &["TXU.RETRY", &t1],
        &format!("-ERR no deferred task '{t1}'\r\n"),
    );
    assert_eq!(txu_info(&mut con, "txu_retries_run"), 2);
    assert_eq!(txu_info(&mut con, "txu_retries_succeeded"), 2);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    assert_eq!(txu_info(&mut con, "txu_oldest_pending_age_ms"), 0);

    // Other states TXU.STATUS knows.
    let (r1, r) = txu_with(&mut c, &["RETAIN", "60000"], &["SET r 1"]);
    assert_eq!(show(&r), "*1\r\n+OK\r\n");
    assert_eq!(state(&mut con, &r1), "retained");
    let (plain, r) = txu_with(&mut c, &["RETRY"], &["SET p 1"]);
    assert_eq!(show(&r), "*1\r\n+OK\r\n");
    assert_eq!(state(&mut con, &plain), "unknown");
}

#[test]
fn permanent_errors_at_exec_are_rolled_back_not_deferred() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    expect(&mut c, &["SET", "s", "text"], "+OK\r\n");
    let (_, r) = txu_with(&mut c, &["RETRY"], &["SET n 1", "INCR s"]);
    assert_eq!(
        show(&r),
        "-ROLLBACK command 2 (INCR) failed: ERR value is not an integer or out of range\r\n"
    );
    expect(&mut c, &["HSET", "h", "f", "v"], ":1\r\n");
    let (_, r) = txu_with(&mut c, &["RETRY"], &["SET n 1", "LPUSH h x"]);
    assert_eq!(
        show(&r),
        "-ROLLBACK command 2 (LPUSH) failed: WRONGTYPE Operation against a key holding the \
         wrong kind of value\r\n"
    );
    // BUSYKEY only starts like a transient code.
    let payload: Vec<u8> = redis::cmd("DUMP")
        .arg("s")
        .query(&mut con)
        .unwrap_or_else(|e| panic!("DUMP s: {e}"));
    let id = begin_with(&mut c, &["RETRY"]);
    assert!(!id.is_empty());
    expect(&mut c, &["TXU.QUEUE", "SET", "n", "1"], "+QUEUED\r\n");
    assert_eq!(
        show(&c.cmd(&[b"TXU.QUEUE", b"RESTORE", b"s", b"0", &payload])),
        "+QUEUED\r\n"
    );
    let r = run_text(&mut c, &["TXU.EXEC"]);
    assert!(
        r.starts_with("-ROLLBACK command 2 (RESTORE) failed: BUSYKEY "),
        "{r:?}"
    );
    assert!(!exists(&s, "n"));
    assert_eq!(txu_info(&mut con, "txu_transactions_deferred"), 0);
    assert!(tasks(&mut con, &[]).is_empty());
    assert!(!exists(&s, "txu:tasks"));
}

// ----- FLUSHALL / FLUSHDB ----------------------------------------------------------------------

#[test]
fn flushall_and_flushdb_drop_the_tasks_of_their_database_and_a_new_deferral_works() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    let mut c1 = s.raw();
    expect(&mut c1, &["SELECT", "1"], "+OK\r\n");
    // Tasks wait 60 s, so the fault can be cleared for the flushes (they are writes).
    backoff(&mut con, "60000", "60000");
    let cause = noreplicas_on(&mut con, &mut c, "a");
    let t0 = defer_now(&mut c, &["RETRY"], &[&["SET", "a", "1"]], &cause);
    let t1 = defer_now(&mut c1, &["RETRY"], &[&["SET", "a", "1"]], &cause);
    expect(&mut c, &["TYPE", "txu:tasks"], "+txu-tasks\r\n");
    config_set(&mut con, "min-replicas-to-write", "0");

    // Tasks are data of their database: FLUSHDB in database 1 drops the task on its keys.
    expect(&mut c1, &["FLUSHDB"], "+OK\r\n");
    assert_eq!(ids(&tasks(&mut con, &[])), [t0.as_str()]);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 1);
    assert_eq!(state(&mut con, &t1), "unknown");

    // FLUSHDB in database 0 drops its task but not database 1's, although the list's key
    // lives in database 0: the key comes back holding the rest of the list.
    config_set(&mut con, "min-replicas-to-write", "1");
    let t1 = defer_now(&mut c1, &["RETRY"], &[&["SET", "a", "1"]], &cause);
    config_set(&mut con, "min-replicas-to-write", "0");
    expect(&mut c, &["FLUSHDB"], "+OK\r\n");
    assert_eq!(ids(&tasks(&mut con, &[])), [t1.as_str()]);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 1);
    assert_eq!(state(&mut con, &t0), "unknown");
    wait_until("txu:tasks is written back", DEADLINE, || {
        exists(&s, "txu:tasks")
    });
    expect(&mut c1, &["FLUSHDB"], "+OK\r\n");
    assert!(tasks(&mut con, &[]).is_empty());
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);

    // A new deferral works; then FLUSHALL drops it again.
    config_set(&mut con, "min-replicas-to-write", "1");
    let t2 = defer_now(&mut c, &["RETRY"], &[&["SET", "b", "1"]], &cause);
    // The same key is free again: a transaction without RETRY on `a` is not refused.
    let r = txu(&mut c, &["GET a"]);
    assert_eq!(show(&r), "*1\r\n$-1\r\n");
    config_set(&mut con, "min-replicas-to-write", "0");
    expect(&mut c, &["FLUSHALL"], "+OK\r\n");
    assert!(tasks(&mut con, &[]).is_empty());
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 0);
    assert_eq!(txu_info(&mut con, "txu_oldest_pending_age_ms"), 0);
    assert_eq!(state(&mut con, &t2), "unknown");

    // After FLUSHALL: a new deferral is retried and applied.
    backoff(&mut con, "50", "100");
    config_set(&mut con, "min-replicas-to-write", "1");
    let t3 = defer_now(&mut c, &["RETRY"], &[&["SET", "c", "1"]], &cause);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 1);
    config_set(&mut con, "min-replicas-to-write", "0");
    wait_state(&mut con, &t3, "done", APPLY_DEADLINE);
    assert_eq!(get(&mut con, "c").as_deref(), Some("1"));
    assert!(!exists(&s, "a"));
    assert!(!exists(&s, "b"));
}

/// `FLUSHALL ASYNC` frees the old list in a background thread. A deferral made right after it
/// must still be counted and run once the fault clears.
#[test]
fn a_deferral_right_after_flushall_async_of_a_big_dataset_is_still_run() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    backoff(&mut con, "60000", "60000");
    let cause = noreplicas_on(&mut con, &mut c, "a");
    let old = defer_now(&mut c, &["RETRY"], &[&["SET", "a", "1"]], &cause);
    config_set(&mut con, "min-replicas-to-write", "0");
    backoff(&mut con, "50", "100");
    expect(&mut c, &["DEBUG", "POPULATE", "500000"], "+OK\r\n");

    // One write: the flush, the fault back on, a new deferral.
    let mut pipeline = Vec::new();
    let cmds: [&[&str]; 6] = [
        &["FLUSHALL", "ASYNC"],
        &["CONFIG", "SET", "min-replicas-to-write", "1"],
        &["TXU.BEGIN", "RETRY"],
        &["TXU.QUEUE", "SET", "b", "1"],
        &["TXU.EXEC"],
        &["PING"],
    ];
    for cmd in cmds {
        let v: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        pipeline.extend(common::encode_command(&v));
    }
    c.send_raw(&pipeline);
    let replies: Vec<String> = (0..cmds.len()).map(|_| show(&c.read_reply())).collect();
    assert_eq!(replies[0], "+OK\r\n");
    assert_eq!(replies[1], "+OK\r\n");
    let id = replies[2]
        .split("\r\n")
        .nth(1)
        .unwrap_or_else(|| panic!("TXU.BEGIN: {:?}", replies[2]))
        .to_string();
    assert_eq!(replies[4], format!("-DEFERRED {id} {cause}\r\n"));

    wait_until("the background free is over", DEADLINE, || {
        info_i64(&mut con, "memory", "lazyfree_pending_objects") == 0
    });
    assert_eq!(state(&mut con, &old), "unknown");
    assert_eq!(ids(&tasks(&mut con, &[])), [id.as_str()]);
    assert_eq!(
        txu_info(&mut con, "txu_tasks_pending"),
        1,
        "INFO must count the task TXU.TASKS lists"
    );
    config_set(&mut con, "min-replicas-to-write", "0");
    wait_state(&mut con, &id, "done", APPLY_DEADLINE);
    assert_eq!(get(&mut con, "b").as_deref(), Some("1"));
}

// ----- persistence -----------------------------------------------------------------------------

const LOG_TASKS: usize = 8;

/// Server args for the persistence tests: the fault is a startup arg, so it is back after every
/// restart until `CONFIG SET min-replicas-to-write 0`.
const FAULT_ARGS: [&str; 6] = [
    "--min-replicas-to-write",
    "1",
    "--txu.backoff-max-ms",
    "200",
    "--txu.tick-ms",
    "20",
];

struct Submitted {
    /// `RPUSH log <i>` for i in 1..=LOG_TASKS, in order.
    log: Vec<String>,
    /// `RPUSH log db1`, submitted from database 1.
    db1: String,
    /// A task that went dead (`RETRY 1`).
    dead: String,
    cause: String,
}

fn submit_log_tasks(s: &Server) -> Submitted {
    let mut con = s.conn();
    let mut c = s.raw();
    let cause = run_err(&mut c, &["SET", "probe", "1"]);
    assert!(cause.starts_with("NOREPLICAS "), "{cause}");
    let first = defer_now(
        &mut c,
        &["RETRY", "1000"],
        &[&["RPUSH", "log", "1"]],
        &cause,
    );
    let mut log = vec![first.clone()];
    for i in 2..=LOG_TASKS {
        let n = i.to_string();
        log.push(defer_behind(
            &mut c,
            &["RETRY", "1000"],
            &[&["RPUSH", "log", &n]],
            &first,
            "log",
        ));
    }
    let mut c1 = s.raw();
    expect(&mut c1, &["SELECT", "1"], "+OK\r\n");
    let db1 = defer_now(
        &mut c1,
        &["RETRY", "1000"],
        &[&["RPUSH", "log", "db1"]],
        &cause,
    );
    let dead = defer_now(&mut c, &["RETRY", "1"], &[&["SET", "gone", "1"]], &cause);
    wait_state(&mut con, &dead, "dead", DEADLINE);
    let all = tasks(&mut con, &[]);
    let mut want = log.clone();
    want.push(db1.clone());
    want.push(dead.clone());
    assert_eq!(ids(&all), want);
    Submitted {
        log,
        db1,
        dead,
        cause,
    }
}

fn stable(ts: &[TaskView]) -> Vec<Stable> {
    ts.iter()
        .map(|t| {
            let (id, state) = (t.id.clone(), t.state.clone());
            (
                id,
                state,
                t.db,
                t.max_attempts,
                t.submitted_at,
                t.commands.clone(),
            )
        })
        .collect()
}

/// After a restart/reload: the same list, nothing applied; then the fault clears and every
/// task applies exactly once, in order.
fn check_recovered_then_applied(s: &Server, before: &[TaskView], sub: &Submitted) {
    let mut con = s.conn();
    let after = tasks(&mut con, &[]);
    assert_eq!(stable(&after), stable(before), "the list after reloading");
    let dead = after.last().map(|t| t.last_error.clone());
    assert_eq!(dead.as_deref(), Some(sub.cause.as_str()));
    assert_eq!(
        txu_info(&mut con, "txu_tasks_pending"),
        LOG_TASKS as i64 + 1
    );
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 1);
    assert!(lrange(&mut con, "log").is_empty());

    config_set(&mut con, "min-replicas-to-write", "0");
    wait_until("every pending task ran", DEADLINE, || {
        txu_info(&mut con, "txu_tasks_pending") == 0
    });
    let want: Vec<String> = (1..=LOG_TASKS).map(|i| i.to_string()).collect();
    assert_eq!(lrange(&mut con, "log"), want);
    for id in sub.log.iter().chain([&sub.db1]) {
        assert_eq!(state(&mut con, id), "done", "task {id}");
    }
    assert_eq!(state(&mut con, &sub.dead), "dead");
    assert!(!exists(s, "gone"));
    let _ = query(&mut con, &["SELECT", "1"]);
    assert_eq!(lrange(&mut con, "log"), ["db1"]);
}

#[test]
fn kill9_with_appendfsync_always_loses_no_task_and_runs_each_once() {
    let mut args = vec!["--appendonly", "yes", "--appendfsync", "always"];
    args.extend(FAULT_ARGS);
    let mut s = Server::start_with(&args);
    let sub = submit_log_tasks(&s);
    let before = tasks(&mut s.conn(), &[]);
    s.kill9_and_restart();
    check_recovered_then_applied(&s, &before, &sub);

    // Once done, a crash does not bring them back.
    s.kill9_and_restart();
    let mut con = s.conn();
    let left = tasks(&mut con, &[]);
    assert_eq!(ids(&left), [sub.dead.as_str()]);
    let want: Vec<String> = (1..=LOG_TASKS).map(|i| i.to_string()).collect();
    assert_eq!(lrange(&mut con, "log"), want);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    for id in &sub.log {
        assert_eq!(
            state(&mut con, id),
            "done",
            "task {id} after the second restart"
        );
    }
}

#[test]
fn save_and_restart_from_rdb_keeps_the_list() {
    let mut s = Server::start_with(&FAULT_ARGS);
    let sub = submit_log_tasks(&s);
    let mut con = s.conn();
    assert_eq!(text(&query(&mut con, &["SAVE"])), "OK");
    let before = tasks(&mut con, &[]);
    drop(con);
    s.restart();
    check_recovered_then_applied(&s, &before, &sub);
}

#[test]
fn aof_rewrite_without_rdb_preamble_keeps_the_list() {
    let mut args = vec!["--appendonly", "yes", "--aof-use-rdb-preamble", "no"];
    args.extend(FAULT_ARGS);
    let mut s = Server::start_with(&args);
    let sub = submit_log_tasks(&s);
    rewrite_aof(&s);
    let dir = s.dir().join("appendonlydir");
    let base_has_list = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let bytes = common::read_file_bytes(&e.path());
                name.ends_with(".base.aof")
                    && !bytes.starts_with(b"REDIS")
                    && show(&bytes).to_ascii_lowercase().contains("txu._load")
            })
        })
        .unwrap_or(false);
    assert!(
        base_has_list,
        "the rewritten AOF base (no preamble) holds the list"
    );
    let mut con = s.conn();
    let before = tasks(&mut con, &[]);
    drop(con);
    s.restart();
    check_recovered_then_applied(&s, &before, &sub);
}

#[test]
fn debug_reload_keeps_the_list() {
    let s = Server::start_with(&FAULT_ARGS);
    let sub = submit_log_tasks(&s);
    let mut con = s.conn();
    let before = tasks(&mut con, &[]);
    assert_eq!(text(&query(&mut con, &["DEBUG", "RELOAD"])), "OK");
    check_recovered_then_applied(&s, &before, &sub);
}

// ----- replication -----------------------------------------------------------------------------

/// Polls until the replica's list equals the primary's at a moment the primary's did not
/// change (the primary's timer keeps updating attempts while the fault lasts).
fn wait_same_list(primary: &Server, replica: &Server) -> Vec<TaskView> {
    let mut pc = primary.conn();
    let mut rc = replica.conn();
    let mut seen = Vec::new();
    wait_until(
        "the replica's TXU.TASKS equals the primary's",
        DEADLINE,
        || {
            let p1 = tasks(&mut pc, &[]);
            wait_replica_synced(primary, replica);
            let r = tasks(&mut rc, &[]);
            let p2 = tasks(&mut pc, &[]);
            seen = r.clone();
            p1 == p2 && r == p1
        },
    );
    seen
}

fn wait_same_digest(primary: &Server, replica: &Server) {
    wait_until(
        "DEBUG DIGEST of the replica equals the primary's",
        DEADLINE,
        || {
            let p1 = primary.digest();
            wait_replica_synced(primary, replica);
            let r = replica.digest();
            p1 == primary.digest() && r == p1
        },
    );
}

#[test]
fn a_replica_keeps_the_list_without_running_it_and_runs_it_once_promoted() {
    let primary = Server::start_with(&[
        "--min-replicas-to-write",
        "2",
        "--txu.backoff-max-ms",
        "200",
    ]);
    let replica = primary.start_replica_with(&[
        "--min-replicas-to-write",
        "1",
        "--txu.backoff-max-ms",
        "200",
    ]);
    let mut pcon = primary.conn();
    let mut rcon = replica.conn();
    let mut c = primary.raw();
    let cause = run_err(&mut c, &["SET", "k", "0"]);
    assert!(cause.starts_with("NOREPLICAS "), "{cause}");
    let head = defer_now(
        &mut c,
        &["RETRY", "1000"],
        &[&["SET", "k", "1"], &["RPUSH", "log", "1"]],
        &cause,
    );
    let second = defer_behind(
        &mut c,
        &["RETRY", "1000"],
        &[&["INCR", "k"], &["RPUSH", "log", "2"]],
        &head,
        "k",
    );
    let other = defer_now(&mut c, &["RETRY", "1000"], &[&["SET", "o", "1"]], &cause);

    let listed = wait_same_list(&primary, &replica);
    assert_eq!(
        ids(&listed),
        [head.as_str(), second.as_str(), other.as_str()]
    );
    wait_same_digest(&primary, &replica);

    // The primary keeps retrying (replicated); the replica itself runs nothing.
    wait_until(
        "the replica saw three retries of the head task",
        DEADLINE,
        || status(&mut rcon, &head).attempts.unwrap_or(0) >= 3,
    );
    assert_eq!(txu_info(&mut rcon, "txu_retries_run"), 0);
    assert_eq!(txu_info(&mut rcon, "txu_tasks_pending"), 3);
    for id in [&head, &second, &other] {
        assert_eq!(state(&mut rcon, id), "pending", "task {id} on the replica");
    }
    assert_eq!(get(&mut rcon, "k"), None);
    assert!(txu_info(&mut pcon, "txu_retries_run") >= 3);

    // Promotion: the new primary retries (its own fault: min-replicas-to-write 1, no replica)...
    assert_eq!(text(&query(&mut rcon, &["REPLICAOF", "NO", "ONE"])), "OK");
    wait_until("the promoted server retries the tasks", DEADLINE, || {
        txu_info(&mut rcon, "txu_retries_run") >= 1
    });
    assert_eq!(state(&mut rcon, &head), "pending");
    assert_eq!(get(&mut rcon, "k"), None);
    // ...and applies them once its fault clears.
    config_set(&mut rcon, "min-replicas-to-write", "0");
    wait_until("the promoted server ran every task", DEADLINE, || {
        txu_info(&mut rcon, "txu_tasks_pending") == 0
    });
    assert_eq!(get(&mut rcon, "k").as_deref(), Some("2"));
    assert_eq!(get(&mut rcon, "o").as_deref(), Some("1"));
    assert_eq!(lrange(&mut rcon, "log"), ["1", "2"]);
    for id in [&head, &second, &other] {
        assert_eq!(
            state(&mut rcon, id),
            "done",
            "task {id} on the promoted server"
        );
    }
    // The old primary, still faulty, has applied nothing.
    assert_eq!(get(&mut pcon, "k"), None);
}

#[test]
fn a_replica_started_later_gets_the_list_by_full_resync() {
    let primary = Server::start_with(&[
        "--min-replicas-to-write",
        "2",
        "--txu.backoff-max-ms",
        "200",
    ]);
    let mut pcon = primary.conn();
    let mut c = primary.raw();
    let cause = run_err(&mut c, &["SET", "k", "0"]);
    let head = defer_now(&mut c, &["RETRY", "1000"], &[&["SET", "k", "1"]], &cause);
    let second = defer_behind(&mut c, &["RETRY", "1000"], &[&["INCR", "k"]], &head, "k");
    let dead = defer_now(&mut c, &["RETRY", "1"], &[&["SET", "d", "1"]], &cause);
    wait_state(&mut pcon, &dead, "dead", DEADLINE);

    let replica = primary.start_replica_of();
    let mut rcon = replica.conn();
    let listed = wait_same_list(&primary, &replica);
    assert_eq!(
        ids(&listed),
        [head.as_str(), second.as_str(), dead.as_str()]
    );
    assert_eq!(listed[2].state, "dead");
    wait_same_digest(&primary, &replica);
    assert_eq!(txu_info(&mut rcon, "txu_tasks_pending"), 2);
    assert_eq!(txu_info(&mut rcon, "txu_tasks_dead"), 1);

    config_set(&mut pcon, "min-replicas-to-write", "0");
    wait_until("the primary ran the pending tasks", DEADLINE, || {
        txu_info(&mut pcon, "txu_tasks_pending") == 0
    });
    wait_replica_synced(&primary, &replica);
    assert_eq!(get(&mut rcon, "k").as_deref(), Some("2"));
    assert_eq!(state(&mut rcon, &head), "done");
    assert_eq!(state(&mut rcon, &second), "done");
    assert_eq!(state(&mut rcon, &dead), "dead");
    assert_eq!(txu_info(&mut rcon, "txu_tasks_pending"), 0);
    assert_eq!(txu_info(&mut rcon, "txu_retries_run"), 0);
    wait_same_digest(&primary, &replica);
}

// ----- configuration ---------------------------------------------------------------------------

/// README "Configuration": every module config can be given at load time as a module argument
/// (`--loadmodule libtxu.so txu.tick-ms 50`), the task configs included.
#[test]
fn task_configs_are_accepted_as_module_arguments() {
    let configs = [
        ("txu.tick-ms", "50"),
        ("txu.tick-budget", "7"),
        ("txu.max-attempts", "3"),
        ("txu.backoff-base-ms", "20"),
        ("txu.backoff-max-ms", "40"),
        ("txu.dead-max", "5"),
    ];
    let module_args: Vec<&str> = configs.iter().flat_map(|(n, v)| [*n, *v]).collect();
    let s = Server::start_with_module_args(&[], &module_args);
    let mut con = s.conn();
    for (name, want) in configs {
        match query(&mut con, &["CONFIG", "GET", name]) {
            Value::Array(kv) => {
                assert_eq!(kv.len(), 2, "CONFIG GET {name}: {kv:?}");
                assert_eq!(text(&kv[1]), want, "CONFIG GET {name}");
            }
            other => panic!("CONFIG GET {name}: {other:?}"),
        }
    }
}

// ----- operating the list during faults, events and log lines ----------------------------------

/// `TXU.RETRY` and `TXU.DROP` run while `min-replicas-to-write` is unmet and over
/// `maxmemory` (they only act on txu's list), their effect reaches a replica, and a read-only
/// replica refuses them.
#[test]
fn operator_commands_run_during_the_faults_that_fill_the_list() {
    let primary = Server::start();
    let replica = primary.start_replica_of();
    let mut con = primary.conn();
    let mut c = primary.raw();
    backoff(&mut con, "60000", "60000");
    // Two good replicas wanted, one connected.
    wait_replica_synced(&primary, &replica);
    config_set(&mut con, "min-replicas-to-write", "2");
    let cause = run_err(&mut c, &["SET", "f1", "1"]);
    assert!(cause.starts_with("NOREPLICAS "), "plain SET: {cause}");
    let a = defer_now(&mut c, &["RETRY", "5"], &[&["SET", "f1", "1"]], &cause);
    let b = defer_now(&mut c, &["RETRY", "5"], &[&["SET", "f2", "1"]], &cause);
    // NOREPLICAS: a plain write is refused, the operator commands are not.
    expect(&mut c, &["TXU.RETRY", &a], "+OK\r\n");
    expect(&mut c, &["TXU.DROP", &b], "+OK\r\n");
    // Over maxmemory (noeviction): the same.
    config_set(&mut con, "maxmemory", "1");
    let oom = run_err(&mut c, &["SET", "f3", "1"]);
    assert!(oom.starts_with("OOM "), "plain SET over maxmemory: {oom}");
    expect(&mut c, &["TXU.DROP", &a], "+OK\r\n");
    config_set(&mut con, "maxmemory", "0");
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    // The replica followed (its list is empty too) and refuses to steer it.
    config_set(&mut con, "min-replicas-to-write", "0");
    wait_replica_synced(&primary, &replica);
    let mut rcon = replica.conn();
    assert_eq!(txu_info(&mut rcon, "txu_tasks_pending"), 0);
    let mut r = replica.raw();
    for cmd in ["TXU.RETRY", "TXU.DROP"] {
        let e = run_err(&mut r, &[cmd, &a]);
        assert!(e.starts_with("READONLY "), "{cmd} on a replica: {e}");
    }
}

/// Each transition of a task is a module keyspace event (class `d`) named after it, with the
/// task id as its key, and a notice-level log line.
#[test]
fn each_transition_is_a_keyspace_event_and_a_log_line() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    config_set(&mut con, "notify-keyspace-events", "Ed");
    let mut sub = s.raw();
    sub.send(&[b"PSUBSCRIBE", b"__keyevent@*__:txu.*"]);
    let confirm = sub.read_reply();
    assert!(show(&confirm).contains("psubscribe"), "{}", show(&confirm));
    backoff(&mut con, "1", "5");
    let cause = noreplicas_on(&mut con, &mut c, "e1");
    // Deferred; its first run by the timer fails (retried), its second too (dead).
    let a = defer_now(&mut c, &["RETRY", "2"], &[&["SET", "e1", "1"]], &cause);
    wait_state(&mut con, &a, "dead", DEADLINE);
    // The fault clears; TXU.RETRY runs it again and it applies.
    config_set(&mut con, "min-replicas-to-write", "0");
    expect(&mut c, &["TXU.RETRY", &a], "+OK\r\n");
    wait_state(&mut con, &a, "done", DEADLINE);
    // Another one, dropped.
    config_set(&mut con, "min-replicas-to-write", "1");
    backoff(&mut con, "60000", "60000");
    let b = defer_now(&mut c, &["RETRY", "5"], &[&["SET", "e2", "1"]], &cause);
    expect(&mut c, &["TXU.DROP", &b], "+OK\r\n");
    config_set(&mut con, "min-replicas-to-write", "0");

    let expected = [
        ("txu.deferred", &a),
        ("txu.retried", &a),
        ("txu.dead", &a),
        ("txu.retried", &a),
        ("txu.applied", &a),
        ("txu.deferred", &b),
        ("txu.dropped", &b),
    ];
    for (event, id) in expected {
        let m = show(&sub.read_reply());
        assert!(
            m.contains(&format!(":{event}\r\n"))
                && m.contains(&format!("${}\r\n{id}\r\n", id.len())),
            "expected {event} of {id}, got {m:?}"
        );
    }
    let log = s.log();
    for line in [
        format!("txu: task {a} deferred: {cause}"),
        format!("txu: task {a} failed again (attempt 1 of 2): {cause}; will retry"),
        format!("txu: task {a} is dead after 2 attempts: {cause}"),
        format!("txu: task {a} queued to run again (TXU.RETRY)"),
        format!("txu: task {a} applied"),
        format!("txu: task {b} dropped (TXU.DROP)"),
    ] {
        assert!(log.contains(&line), "the log has no line {line:?}");
    }
}

/// `TXU.RETRY` / `TXU.DROP` `ALL|PENDING|DEAD [MATCH <pattern>]`: every task of that state whose last
/// error matches the glob, and whose keys the caller may write (the others are left alone, as
/// the single-id form would refuse them); the reply says how many.
#[test]
fn bulk_retry_and_drop_select_by_state_error_and_acl() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    // A dead task: one attempt, which the fault makes fail.
    backoff(&mut con, "1", "5");
    let cause = noreplicas_on(&mut con, &mut c, "bulk:dead");
    let dead = defer_now(
        &mut c,
        &["RETRY", "1"],
        &[&["SET", "bulk:dead", "1"]],
        &cause,
    );
    wait_state(&mut con, &dead, "dead", DEADLINE);
    // Two pending ones, waiting out a long backoff.
    backoff(&mut con, "60000", "60000");
    let a = defer_now(&mut c, &["RETRY", "5"], &[&["SET", "bulk:a", "1"]], &cause);
    let b = defer_now(&mut c, &["RETRY", "5"], &[&["SET", "other:b", "1"]], &cause);

    expect(&mut c, &["TXU.DROP", "DEAD", "MATCH", "OOM*"], ":0\r\n");
    expect(
        &mut c,
        &["TXU.DROP", "dead", "match", "NOREPLICAS*"],
        ":1\r\n",
    );
    assert_eq!(state(&mut con, &dead), "unknown");
    // A user who may write bulk:* only: one of the two pending tasks is theirs.
    let r = run_text(
        &mut c,
        &[
            "ACL",
            "SETUSER",
            "ops",
            "on",
            ">pw",
            "%RW~bulk:*",
            "+txu.retry",
            "+txu.drop",
        ],
    );
    assert_eq!(r, "+OK\r\n");
    let mut ops = s.raw();
    expect(&mut ops, &["AUTH", "ops", "pw"], "+OK\r\n");
    expect(
        &mut ops,
        &["TXU.RETRY", "ALL", "MATCH", "*replicas*"],
        ":1\r\n",
    );
    expect(&mut ops, &["TXU.DROP", "ALL"], ":1\r\n");
    assert_eq!(state(&mut con, &a), "unknown");
    assert_eq!(state(&mut con, &b), "pending");
    // PENDING leaves the dead list alone.
    backoff(&mut con, "1", "5");
    let dead2 = defer_now(&mut c, &["RETRY", "1"], &[&["SET", "d2", "1"]], &cause);
    wait_state(&mut con, &dead2, "dead", DEADLINE);
    expect(&mut c, &["TXU.RETRY", "PENDING", "MATCH", "x*"], ":0\r\n");
    expect(&mut c, &["TXU.DROP", "PENDING"], ":1\r\n");
    assert_eq!(state(&mut con, &b), "unknown");
    assert_eq!(state(&mut con, &dead2), "dead");
    // The default user drops the rest.
    expect(&mut c, &["TXU.DROP", "ALL"], ":1\r\n");
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), 0);
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 0);
    // Usage errors.
    let e = run_err(&mut c, &["TXU.DROP", "ALL", "MATCH"]);
    assert_eq!(
        e,
        "ERR syntax error: TXU.DROP ALL|PENDING|DEAD [MATCH <pattern>]"
    );
    let e = run_err(&mut c, &["TXU.RETRY"]);
    assert_eq!(e, "ERR wrong number of arguments for 'txu.retry' command");
    config_set(&mut con, "min-replicas-to-write", "0");
}
