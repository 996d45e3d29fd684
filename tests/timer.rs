//! The timer under its time budget (`txu.tick-time-us`) and when it has nothing to do.
//!
//! - A long failed-task list drains completely, each task once, in order per key, when every
//!   tick is cut short after its first task (the rest runs in continuation slices), and
//!   `INFO txu_ticks_cut_short` shows that the ticks did stop.
//! - `txu.tick-budget` still bounds the tasks run per `txu.tick-ms`, continuations included.
//! - Conflicts of retained logs are seen whenever a log is held, also after a time with none
//!   (where the server allows it, txu stops listening to keyspace events when idle).
//!
//! Every wait polls a condition with a deadline; nothing sleeps in place of a condition, and
//! nothing asserts how long anything took.

mod common;

use common::{
    config_set, exec_tx, lrange, query, run_err, show, text, txu_info, wait_until,
    watch_tick_budget, RawConn, Server,
};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// Defers `n` transactions (`RPUSH list:<i % lists> <i>` and `SET key:<i> <i>`) behind a real
/// transient fault (`min-replicas-to-write 1` without a replica); returns their ids.
fn defer_many(con: &mut redis::Connection, c: &mut RawConn, n: usize, lists: usize) -> Vec<String> {
    config_set(con, "min-replicas-to-write", "1");
    (0..n)
        .map(|i| {
            let list = format!("list:{}", i % lists);
            let key = format!("key:{i}");
            let v = i.to_string();
            let (id, r) = exec_tx(
                c,
                &["RETRY"],
                &[
                    ["RPUSH", list.as_str(), v.as_str()],
                    ["SET", key.as_str(), v.as_str()],
                ],
            );
            assert!(
                show(&r).starts_with(&format!("-DEFERRED {id} ")),
                "transaction {i}: {}",
                show(&r)
            );
            id
        })
        .collect()
}

#[test]
fn a_long_list_drains_completely_in_order_when_every_tick_is_cut_short() {
    // 1 µs: every tick and every continuation stops after its first task.
    let s = Server::start_with(&[
        "--txu.tick-time-us",
        "1",
        "--txu.tick-ms",
        "10",
        "--txu.tick-budget",
        "100000",
        "--txu.backoff-base-ms",
        "1",
        "--txu.backoff-max-ms",
        "1",
        // Retried every millisecond while the fault is on: no task may run out of attempts.
        "--txu.max-attempts",
        "1000000",
    ]);
    let mut con = s.conn();
    let mut c = s.raw();
    let (n, lists) = (400, 4);
    defer_many(&mut con, &mut c, n, lists);
    assert_eq!(txu_info(&mut con, "txu_tasks_pending"), n as i64);
    config_set(&mut con, "min-replicas-to-write", "0");
    wait_until("every task applied", DEADLINE, || {
        txu_info(&mut con, "txu_tasks_pending") == 0
    });
    assert_eq!(txu_info(&mut con, "txu_retries_succeeded"), n as i64);
    assert_eq!(txu_info(&mut con, "txu_tasks_dead"), 0);
    for l in 0..lists {
        let want: Vec<String> = (0..n)
            .filter(|i| i % lists == l)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            lrange(&mut con, &format!("list:{l}")),
            want,
            "list:{l} in order, each once"
        );
    }
    for i in [0, n / 2, n - 1] {
        let v = query(&mut con, &["GET", &format!("key:{i}")]);
        assert_eq!(text(&v), i.to_string());
    }
    assert!(
        txu_info(&mut con, "txu_ticks_cut_short") > 0,
        "no tick stopped at txu.tick-time-us with tasks left"
    );
    // The longest tick's CPU time is reported beside its wall-clock time, and is no more
    // than it (a millisecond of slack for the two clocks' granularity).
    let wall = txu_info(&mut con, "txu_tick_max_us");
    let cpu = txu_info(&mut con, "txu_tick_max_cpu_us");
    assert!(
        cpu > 0 && wall > 0,
        "tick max: {wall} us wall, {cpu} us CPU"
    );
    assert!(
        cpu <= wall + 1_000,
        "tick max: {wall} us wall, {cpu} us CPU"
    );
}

#[test]
fn tick_budget_still_bounds_the_tasks_per_tick_with_continuations() {
    let tick = Duration::from_millis(300);
    let s = Server::start_with(&[
        "--txu.tick-time-us",
        "1",
        "--txu.tick-ms",
        "300",
        "--txu.tick-budget",
        "3",
        "--txu.backoff-base-ms",
        "60000",
        "--txu.backoff-max-ms",
        "60000",
    ]);
    let mut con = s.conn();
    let mut c = s.raw();
    let ids = defer_many(&mut con, &mut c, 9, 9);
    config_set(&mut con, "min-replicas-to-write", "0");
    for id in &ids {
        let r = query(&mut con, &["TXU.RETRY", id]);
        assert_eq!(text(&r), "OK");
    }
    // A tick's first task and its continuations together run at most the budget.
    watch_tick_budget(&mut con, tick, 3, 9, DEADLINE);
    assert!(
        txu_info(&mut con, "txu_ticks_cut_short") > 0,
        "the ticks never stopped on time (a tick of 1 µs runs one task)"
    );
    wait_until("every task applied", DEADLINE, || {
        txu_info(&mut con, "txu_retries_succeeded") == 9
    });
}

/// A retained transaction writing `key`; then another client's write of `key` must make
/// `TXU.ROLLBACK <txid>` a conflict.
fn assert_conflict_seen(con: &mut redis::Connection, c: &mut RawConn, key: &str, retain: &str) {
    let (id, r) = exec_tx(
        c,
        &["RETAIN", retain],
        &[["SET", key, "by the transaction"]],
    );
    assert!(
        show(&r).starts_with('*'),
        "RETAIN transaction: {}",
        show(&r)
    );
    let v = query(con, &["SET", key, "by another client"]);
    assert_eq!(text(&v), "OK");
    let e = run_err(c, &["TXU.ROLLBACK", &id]);
    assert!(e.starts_with("CONFLICT key '"), "TXU.ROLLBACK {id}: {e}");
}

#[test]
fn conflicts_are_seen_after_a_time_with_no_log_held() {
    let s = Server::start_with(&["--txu.tick-ms", "10"]);
    let mut con = s.conn();
    let mut c = s.raw();
    // A short retention: the log ends, and the timer finds nothing held for a while.
    assert_conflict_seen(&mut con, &mut c, "a", "50");
    wait_until("the retained log ended", DEADLINE, || {
        txu_info(&mut con, "txu_undo_logs_retained") == 0
    });
    let ticks_before = txu_info(&mut con, "txu_retries_run");
    // Plain writes with nothing held, over several idle ticks.
    for i in 0..50 {
        let v = query(&mut con, &["SET", &format!("plain:{i}"), "v"]);
        assert_eq!(text(&v), "OK");
    }
    assert_eq!(txu_info(&mut con, "txu_retries_run"), ticks_before);
    // A new retained log is watched again at once.
    assert_conflict_seen(&mut con, &mut c, "b", "600000");
}
