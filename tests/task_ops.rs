//! Operating the failed-task list. `TXU.TASKS` and `TXU.STATUS` as an operator uses them: a
//! task is a map for RESP3 clients and a flat field/value array for RESP2 ones; a long list
//! pages with a cursor, a bounded `COUNT` and a pattern over the last error, in a stable order,
//! with bounded work per call; a dead task says when it died. A task list written by txu 0.2
//! (encoding version 1) loads. `TXU.RETRY` / `TXU.DROP` work while a failed background save
//! makes the server refuse writes (`MISCONF`).
//!
//! Every wait polls a condition with a deadline.

mod common;

use common::tasks::{ids, parse_task, status, tasks, tasks_page, TaskView};
use common::{config_set, exec_tx, expect, run, run_err, show, wait_until, RawConn, Server};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

/// `min-replicas-to-write 1`: a plain write now fails with this NOREPLICAS error.
fn noreplicas_on(con: &mut redis::Connection, c: &mut RawConn) -> String {
    config_set(con, "min-replicas-to-write", "1");
    let cause = run_err(c, &["SET", "probe", "1"]);
    assert!(cause.starts_with("NOREPLICAS "), "plain SET: {cause}");
    cause
}

fn backoff(con: &mut redis::Connection, base_ms: &str, max_ms: &str) {
    config_set(con, "txu.backoff-base-ms", base_ms);
    config_set(con, "txu.backoff-max-ms", max_ms);
}

/// `TXU.RUN RETRY <n> 3 SET <key> 1`, which must be deferred; its task id.
fn defer(c: &mut RawConn, retries: &str, key: &str) -> String {
    let (id, r) = exec_tx(c, &["RETRY", retries], &[["SET", key, "1"]]);
    assert!(
        show(&r).starts_with(&format!("-DEFERRED {id} ")),
        "{}",
        show(&r)
    );
    id
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn wait_state(con: &mut redis::Connection, id: &str, want: &str) {
    wait_until(&format!("TXU.STATUS {id} is {want}"), DEADLINE, || {
        status(con, id).state == want
    });
}

/// A reply read with RESP3 types (maps) as the `redis` crate parses it.
fn resp3(r: &[u8]) -> redis::Value {
    redis::parse_redis_value(r).unwrap_or_else(|e| panic!("{e}: {}", show(r)))
}

#[test]
fn resp3_clients_get_maps_resp2_clients_flat_arrays_and_dead_tasks_say_when_they_died() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    let cause = noreplicas_on(&mut con, &mut c);
    // A task that dies at its first retry, then one that waits out a long backoff.
    backoff(&mut con, "1", "5");
    let before = now_ms();
    let dead = defer(&mut c, "1", "d");
    wait_state(&mut con, &dead, "dead");
    let died_by = now_ms();
    backoff(&mut con, "60000", "60000");
    let pending = defer(&mut c, "5", "p");

    let listed = tasks(&mut con, &[]);
    assert_eq!(ids(&listed), [pending.clone(), dead.clone()]);
    let (p, d) = (&listed[0], &listed[1]);
    assert_eq!((p.state.as_str(), d.state.as_str()), ("pending", "dead"));
    // The dead one: no next attempt; its last attempt (its death) after its deferral.
    assert_eq!(d.next_attempt_at, None, "{d:?}");
    let died = d
        .last_attempt_at
        .unwrap_or_else(|| panic!("no last-attempt-at: {d:?}"));
    assert!(died >= d.submitted_at && died <= died_by, "{d:?}");
    assert!(d.submitted_at >= before, "{d:?}");
    assert_eq!((d.attempts, d.max_attempts), (1, 1), "{d:?}");
    assert_eq!(d.last_error, cause);
    assert_eq!(
        (d.keys.as_slice(), d.db, d.user.as_str()),
        (&["d".to_string()][..], 0, "default")
    );
    assert_eq!(d.commands, [["SET", "d", "1"]]);
    assert!(
        p.next_attempt_at
            .is_some_and(|n| n >= p.submitted_at + 30_000),
        "{p:?}"
    );

    // RESP3: the same tasks, as maps of 12 (pending) and 11 (dead) fields.
    let mut c3 = s.raw();
    c3.hello3();
    let r = run(&mut c3, &["TXU.TASKS"]);
    assert!(
        show(&r).starts_with("*2\r\n$1\r\n0\r\n*2\r\n%12\r\n$2\r\nid\r\n"),
        "{}",
        show(&r)
    );
    let redis::Value::Array(page) = resp3(&r) else {
        panic!("TXU.TASKS over RESP3: {}", show(&r));
    };
    let Some(redis::Value::Array(items)) = page.get(1) else {
        panic!("TXU.TASKS over RESP3: {}", show(&r));
    };
    let as_maps: Vec<TaskView> = items.iter().map(parse_task).collect();
    assert!(matches!(items[1], redis::Value::Map(ref m) if m.len() == 11));
    assert_eq!(as_maps, listed);
    // TXU.STATUS: the same map, and a one-field map for other states.
    let st = run(&mut c3, &["TXU.STATUS", &dead]);
    assert_eq!(parse_task(&resp3(&st)), *d);
    expect(
        &mut c3,
        &["TXU.STATUS", "nope"],
        "%1\r\n$5\r\nstate\r\n$7\r\nunknown\r\n",
    );
    expect(
        &mut c,
        &["TXU.STATUS", "nope"],
        "*2\r\n$5\r\nstate\r\n$7\r\nunknown\r\n",
    );
    assert_eq!(status(&mut con, &pending).task.as_ref(), Some(p));
    config_set(&mut con, "min-replicas-to-write", "0");
}

/// Sends every command before reading the replies (one round trip for many deferrals).
fn pipeline(c: &mut RawConn, cmds: &[Vec<String>]) -> Vec<Vec<u8>> {
    for cmd in cmds {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        c.send(&args);
    }
    cmds.iter().map(|_| c.read_reply()).collect()
}

/// The task id in a `-DEFERRED <id> ...` reply.
fn deferred_id(r: &[u8]) -> String {
    let text = show(r);
    match text.strip_prefix("-DEFERRED ") {
        Some(rest) => rest.split(' ').next().unwrap_or_default().to_string(),
        None => panic!("not deferred: {text}"),
    }
}

/// All pages of a listing with `args`; the pages' lengths too.
fn pages(con: &mut redis::Connection, args: &[&str]) -> (Vec<String>, Vec<usize>) {
    let (mut cursor, mut all, mut lens) = ("0".to_string(), Vec::new(), Vec::new());
    loop {
        let mut full = args.to_vec();
        full.extend(["CURSOR", cursor.as_str()]);
        let (next, page) = tasks_page(con, &full);
        lens.push(page.len());
        all.extend(ids(&page));
        if next == "0" {
            return (all, lens);
        }
        assert!(lens.len() < 10_000, "the listing never ends");
        cursor = next;
    }
}

#[test]
fn a_long_list_pages_with_a_cursor_a_bounded_count_and_a_pattern() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    noreplicas_on(&mut con, &mut c);
    backoff(&mut con, "60000", "60000");
    // 2,000 tasks on their own keys (last error NOREPLICAS), then 500 waiting behind the first
    // task on `k0` (last error "waiting behind ...").
    let set = |key: String, value: String| {
        let head = ["TXU.RUN", "RETRY", "5", "3", "SET"].map(str::to_string);
        head.into_iter()
            .chain([key, value])
            .collect::<Vec<String>>()
    };
    let mut cmds: Vec<Vec<String>> = (0..2000)
        .map(|i| set(format!("k{i}"), "v".into()))
        .collect();
    cmds.extend((0..500).map(|i| set("k0".into(), i.to_string())));
    let all: Vec<String> = pipeline(&mut c, &cmds)
        .iter()
        .map(|r| deferred_id(r))
        .collect();
    assert_eq!(s.info_u64("txu", "txu_tasks_pending"), 2500);

    // The default COUNT is 100; COUNT is at most 1000; every task comes once, in order.
    let (got, lens) = pages(&mut con, &[]);
    assert_eq!(got, all);
    assert!(lens.iter().all(|&n| n == 100), "{lens:?}");
    let (got, lens) = pages(&mut con, &["COUNT", "1000"]);
    assert_eq!((got, lens), (all.clone(), vec![1000, 1000, 500]));

    // A pattern over the last error. A call examines at most 10 × COUNT tasks, so the first
    // 2,000 tasks (none matches) cost 20 empty pages of COUNT 10 before the matches come.
    let (got, lens) = pages(&mut con, &["MATCH", "waiting behind*", "COUNT", "10"]);
    assert_eq!(got, all[2000..]);
    assert_eq!(lens[..20], [0; 20], "{lens:?}");
    assert!(lens[20..].iter().all(|&n| n == 10), "{lens:?}");
    let (got, _) = pages(
        &mut con,
        &["MATCH", "NOREPLICAS*", "COUNT", "1000", "PENDING"],
    );
    assert_eq!(got, all[..2000]);
    assert_eq!(
        pages(&mut con, &["DEAD", "COUNT", "1000"]).0,
        Vec::<String>::new()
    );

    // The order is stable while the list changes: tasks dropped after the first page (listed
    // or not yet) and a new task leave every other task listed exactly once.
    let (cursor, first) = tasks_page(&mut con, &["COUNT", "1000"]);
    for id in [&all[10], &all[1000], &all[1500], &all[2499]] {
        expect(&mut c, &["TXU.DROP", id], "+OK\r\n");
    }
    let late = defer(&mut c, "5", "late");
    let (rest, _) = {
        let mut full = vec!["COUNT", "1000", "CURSOR"];
        full.push(&cursor);
        let (next, page) = tasks_page(&mut con, &full);
        let mut rest = ids(&page);
        let (more, lens) = pages_from(&mut con, next);
        rest.extend(more);
        (rest, lens)
    };
    let mut want: Vec<String> = all[1000..]
        .iter()
        .filter(|id| ![&all[1000], &all[1500], &all[2499]].contains(id))
        .cloned()
        .collect();
    want.push(late);
    assert_eq!(ids(&first), all[..1000]);
    assert_eq!(rest, want);
    config_set(&mut con, "min-replicas-to-write", "0");
}

/// The rest of a listing of COUNT 1000 from `cursor` (`"0"`: nothing more).
fn pages_from(con: &mut redis::Connection, mut cursor: String) -> (Vec<String>, usize) {
    let (mut all, mut n) = (Vec::new(), 0);
    while cursor != "0" {
        let (next, page) = tasks_page(con, &["COUNT", "1000", "CURSOR", &cursor]);
        all.extend(ids(&page));
        cursor = next;
        n += 1;
        assert!(n < 1000, "the listing never ends");
    }
    (all, n)
}

/// The task ids in `tests/fixtures/txu-0.2.0-tasks.rdb` (see its README).
const OLD_DEAD: &str = "1796103599953-13700265540398874624";
const OLD_PENDING: &str = "1796103600191-13700265540398874625";
const OLD_IN_DB2: &str = "1796103600195-13700265540398874626";

/// Upgrading keeps the list: an RDB written by txu 0.2 (task encoding version 1, no time of
/// the last attempt) loads; its tasks list with what they had, run, and are written back in
/// the current encoding.
#[test]
fn a_task_list_written_by_txu_0_2_loads_lists_and_runs() {
    // The fault is still there after the upgrade, and a retry that fails waits an hour: the
    // tasks stay as loaded until the test retries them.
    let mut s = Server::start_with_module_args(
        &["--min-replicas-to-write", "1"],
        &[
            "txu.backoff-base-ms",
            "3600000",
            "txu.backoff-max-ms",
            "3600000",
        ],
    );
    s.stop();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/txu-0.2.0-tasks.rdb"
    );
    std::fs::copy(fixture, s.dir().join("dump.rdb")).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    s.start_again();
    let mut con = s.conn();
    let listed = tasks(&mut con, &[]);
    assert_eq!(ids(&listed), [OLD_PENDING, OLD_IN_DB2, OLD_DEAD]);
    let dead = &listed[2];
    assert_eq!(
        (
            dead.state.as_str(),
            dead.attempts,
            dead.max_attempts,
            dead.db
        ),
        ("dead", 1, 1, 0)
    );
    // Version 1 did not record when a task last ran.
    assert_eq!((dead.last_attempt_at, dead.next_attempt_at), (None, None));
    assert_eq!(dead.submitted_at, 1_796_103_599_953);
    assert_eq!(dead.commands, [["SET", "old:dead", "1"]]);
    assert_eq!(dead.user, "default");
    assert!(dead.last_error.starts_with("NOREPLICAS "), "{dead:?}");
    let p = &listed[0];
    assert_eq!(
        p.commands,
        vec![
            vec!["SET", "old:pending", "v1"],
            vec!["HSET", "old:h", "f", "v"]
        ]
    );
    assert_eq!(
        (p.keys.as_slice(), p.max_attempts),
        (&["old:pending".to_string(), "old:h".to_string()][..], 1000)
    );
    assert_eq!(
        (listed[1].db, listed[1].keys.as_slice()),
        (2, &["old:n".to_string()][..])
    );

    // Run now, it fails on the fault, and now says when it ran.
    expect(&mut s.raw(), &["TXU.RETRY", OLD_PENDING], "+OK\r\n");
    wait_until("the old pending task ran again", DEADLINE, || {
        status(&mut con, OLD_PENDING)
            .task
            .is_some_and(|t| t.last_attempt_at.is_some() && t.attempts >= 1)
    });
    // Written back (version 2) and read again: the same tasks.
    let before = tasks(&mut con, &["DEAD"]);
    redis::cmd("DEBUG")
        .arg("RELOAD")
        .exec(&mut con)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tasks(&mut con, &["DEAD"]), before);
    // The fault clears: both run, in their databases.
    config_set(&mut con, "min-replicas-to-write", "0");
    expect(&mut s.raw(), &["TXU.RETRY", "PENDING"], ":2\r\n");
    wait_state(&mut con, OLD_PENDING, "done");
    wait_state(&mut con, OLD_IN_DB2, "done");
    let mut c = s.raw();
    expect(&mut c, &["GET", "old:pending"], "$2\r\nv1\r\n");
    expect(&mut c, &["HGET", "old:h", "f"], "$1\r\nv\r\n");
    expect(&mut c, &["SELECT", "2"], "+OK\r\n");
    expect(&mut c, &["GET", "old:n"], "$1\r\n1\r\n");
    assert_eq!(status(&mut con, OLD_DEAD).state, "dead");
}

/// The pids of the processes whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // `pid (comm) state ppid ...`: the fields after the last ')'.
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
            rest.split_whitespace().nth(1) == Some(pid.to_string().as_str())
        })
        .collect()
}

/// A background save that fails for real (its child killed) makes the server refuse writes
/// with `MISCONF` (`stop-writes-on-bgsave-error`, with a save point set): a `RETRY` transaction
/// is deferred, and the operator commands still steer the list. A save that succeeds clears it
/// and the task applies.
#[test]
fn operator_commands_work_while_a_failed_save_refuses_writes() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    config_set(&mut con, "save", "3600 1");
    config_set(&mut con, "stop-writes-on-bgsave-error", "yes");
    backoff(&mut con, "60000", "60000");
    expect(&mut c, &["SET", "slow", "1"], "+OK\r\n");
    // A save that takes long (1 s per key), killed: the server records the save as failed.
    config_set(&mut con, "rdb-key-save-delay", "1000000");
    expect(&mut c, &["BGSAVE"], "+Background saving started\r\n");
    let server_pid = s.pid().unwrap_or_else(|| panic!("no server pid"));
    let mut child = Vec::new();
    wait_until("the save's child process", DEADLINE, || {
        child = children_of(server_pid);
        !child.is_empty()
    });
    for pid in &child {
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        assert!(killed.is_ok_and(|st| st.success()), "kill -9 {pid}");
    }
    wait_until("the save is recorded as failed", DEADLINE, || {
        s.info_field("persistence", "rdb_last_bgsave_status")
            .as_deref()
            == Some("err")
            && s.info_field("persistence", "rdb_bgsave_in_progress")
                .as_deref()
                == Some("0")
    });
    config_set(&mut con, "rdb-key-save-delay", "0");
    let cause = run_err(&mut c, &["SET", "m", "1"]);
    assert!(
        cause.starts_with("MISCONF "),
        "plain SET after a failed save: {cause}"
    );

    let (a, r) = exec_tx(&mut c, &["RETRY", "5"], &[["SET", "m1", "1"]]);
    assert_eq!(show(&r), format!("-DEFERRED {a} {cause}\r\n"));
    let (b, r) = exec_tx(&mut c, &["RETRY", "5"], &[["SET", "m2", "1"]]);
    assert_eq!(show(&r), format!("-DEFERRED {b} {cause}\r\n"));
    // MISCONF refuses plain writes, not the operator commands.
    expect(&mut c, &["TXU.DROP", &b], "+OK\r\n");
    expect(
        &mut c,
        &["TXU.RETRY", "PENDING", "MATCH", "MISCONF*"],
        ":1\r\n",
    );
    let (_, page) = tasks_page(&mut con, &["MATCH", "MISCONF*"]);
    assert_eq!(ids(&page), [a.as_str()]);
    assert_eq!(status(&mut con, &b).state, "unknown");

    // A save that succeeds lifts MISCONF: the retried task applies.
    expect(&mut c, &["BGSAVE"], "+Background saving started\r\n");
    wait_until("a save succeeded", DEADLINE, || {
        s.info_field("persistence", "rdb_last_bgsave_status")
            .as_deref()
            == Some("ok")
            && s.info_field("persistence", "rdb_bgsave_in_progress")
                .as_deref()
                == Some("0")
    });
    expect(&mut c, &["TXU.RETRY", &a], "+OK\r\n");
    wait_state(&mut con, &a, "done");
    expect(&mut c, &["GET", "m1"], "$1\r\n1\r\n");
    expect(&mut c, &["EXISTS", "m2"], ":0\r\n");
}

/// The lines of `log` that name `id` after `marker` (a batched line lists ids after it).
fn lines_naming<'a>(log: &'a str, marker: &str, id: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|l| {
            l.split_once(marker)
                .is_some_and(|(_, ids)| ids.split(", ").any(|i| i == id))
        })
        .collect()
}

/// Redis opens and closes its log file for every line: the timer and the bulk commands write
/// the lines of many transitions in batches, every task still named at notice level.
#[test]
fn many_transitions_at_once_are_logged_in_batched_lines_naming_every_task() {
    let s = Server::start();
    let mut con = s.conn();
    let mut c = s.raw();
    noreplicas_on(&mut con, &mut c);
    backoff(&mut con, "60000", "60000");
    let cmds: Vec<Vec<String>> = (0..60)
        .map(|i| {
            let key = format!("b{i}");
            ["TXU.RUN", "RETRY", "5", "3", "SET", &key, "v"]
                .map(str::to_string)
                .to_vec()
        })
        .collect();
    let ids: Vec<String> = pipeline(&mut c, &cmds)
        .iter()
        .map(|r| deferred_id(r))
        .collect();
    let (first, rest) = ids.split_at(40);
    // Bulk: drop 20, then retry the other 40 once the fault is gone (one tick runs them all).
    for id in rest {
        expect(&mut c, &["TXU.DROP", id], "+OK\r\n");
    }
    let dropped_one_by_one = s.log();
    config_set(&mut con, "min-replicas-to-write", "0");
    expect(&mut c, &["TXU.RETRY", "PENDING"], ":40\r\n");
    wait_until("the 40 tasks applied", DEADLINE, || {
        s.info_u64("txu", "txu_tasks_pending") == 0
    });
    let log = s.log();
    for id in rest {
        // Dropped one at a time: the single-task line.
        assert!(dropped_one_by_one.contains(&format!("txu: task {id} dropped (TXU.DROP)")));
    }
    let mut queued_lines = std::collections::BTreeSet::new();
    let mut applied_lines = std::collections::BTreeSet::new();
    for id in first {
        let q = lines_naming(&log, "tasks queued to run again (TXU.RETRY): ", id);
        assert_eq!(q.len(), 1, "{id} in one TXU.RETRY line: {q:?}");
        queued_lines.extend(q);
        let a = lines_naming(&log, " tasks applied: ", id);
        let single = log.contains(&format!("txu: task {id} applied"));
        assert!(
            a.len() + usize::from(single) == 1,
            "{id} in one applied line: {a:?}"
        );
        applied_lines.extend(a);
    }
    // 40 transitions each in a few lines (about 20 ids fit in one).
    assert!(queued_lines.len() <= 3, "{queued_lines:?}");
    assert!(
        !applied_lines.is_empty() && applied_lines.len() <= 10,
        "{applied_lines:?}"
    );
    assert!(
        queued_lines.iter().all(|l| l.len() < 1024),
        "{queued_lines:?}"
    );
    expect(&mut c, &["GET", "b0"], "$1\r\nv\r\n");
}
