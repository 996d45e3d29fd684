//! No command of txu gives anyone more than their ACL: the operator commands show and steer
//! only what the caller's key patterns cover, undoing a retained transaction needs permission
//! for every compensating write, and a deferred task runs as the user who submitted it —
//! never as anybody else.
//!
//! Two users throughout: the default user (`~*`, everything) owns `secret:*`; `tenant` may
//! use txu, GET and SET on `tenant:*` only. `reader` may read `secret:*` but not write it.

mod common;

use common::{
    exec_tx, fields, query, run, show, task_ids, text, txu_with, wait_until, RawConn, Server,
};
use redis::Value;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

const TXU_COMMANDS: &[&str] = &[
    "+txu.begin",
    "+txu.queue",
    "+txu.exec",
    "+txu.rollback",
    "+txu.status",
    "+txu.tasks",
    "+txu.retry",
    "+txu.drop",
];

fn setuser(admin: &mut redis::Connection, user: &str, rules: &[&str]) {
    let mut args = vec!["ACL", "SETUSER", user, "reset", "on", ">pw"];
    args.extend_from_slice(TXU_COMMANDS);
    args.extend_from_slice(rules);
    assert_eq!(text(&query(admin, &args)), "OK", "{args:?}");
}

fn login(s: &Server, user: &str) -> RawConn {
    let mut raw = s.raw();
    let r = raw.cmd(&[b"AUTH", user.as_bytes(), b"pw"]);
    assert_eq!(r, b"+OK\r\n", "AUTH {user}: {}", show(&r));
    raw
}

fn config_set(admin: &mut redis::Connection, name: &str, value: &str) {
    assert_eq!(text(&query(admin, &["CONFIG", "SET", name, value])), "OK");
}

/// A server with the three users; deferred tasks wait ten minutes before their first retry,
/// so they stay pending (and steerable) for the whole test.
fn setup() -> (Server, redis::Connection) {
    let s = Server::start();
    let mut admin = s.conn();
    setuser(&mut admin, "tenant", &["+get", "+set", "~tenant:*"]);
    setuser(&mut admin, "reader", &["+get", "%R~secret:*"]);
    config_set(&mut admin, "txu.backoff-base-ms", "600000");
    config_set(&mut admin, "txu.backoff-max-ms", "600000");
    (s, admin)
}

/// Runs `cmds` as a `RETRY` transaction under a real NOREPLICAS fault (switched on for the
/// call only) and returns the id of the deferred task.
fn defer(admin: &mut redis::Connection, c: &mut RawConn, cmds: &[&[&str]]) -> String {
    config_set(admin, "min-replicas-to-write", "1");
    let (id, r) = exec_tx(c, &["RETRY"], cmds);
    config_set(admin, "min-replicas-to-write", "0");
    let r = String::from_utf8_lossy(&r).into_owned();
    assert!(r.starts_with(&format!("-DEFERRED {id} NOREPLICAS")), "{r}");
    id
}

fn listed(c: &mut RawConn) -> (Vec<String>, String) {
    task_ids(c, &[])
}

fn noperm(id: &str) -> String {
    format!("-NOPERM No permissions to access a key of transaction '{id}'\r\n")
}

fn status_state(c: &mut RawConn, id: &str) -> String {
    let r = run(c, &["TXU.STATUS", id]);
    fields(&r)
        .and_then(|mut f| f.remove("state"))
        .unwrap_or_else(|| show(&r))
}

/// (state, attempts) of a task as the default user sees it.
fn task_state(admin: &mut redis::Connection, id: &str) -> (String, Option<i64>) {
    let Value::Array(f) = query(admin, &["TXU.STATUS", id]) else {
        panic!("TXU.STATUS {id} is not an array");
    };
    let field = |name: &str| {
        f.chunks(2)
            .find(|p| text(&p[0]) == name)
            .map(|p| p[1].clone())
    };
    let state = field("state").map(|v| text(&v)).unwrap_or_default();
    let attempts = field("attempts").and_then(|v| match v {
        Value::Int(i) => Some(i),
        _ => None,
    });
    (state, attempts)
}

#[test]
fn tasks_and_status_show_a_task_only_to_callers_who_may_read_all_its_keys() {
    let (s, mut admin) = setup();
    let mut root = s.raw();
    let secret = defer(
        &mut admin,
        &mut root,
        &[&["SET", "secret:card", "4111-1111-1111-1111"]],
    );
    // One key in the tenant's pattern, one outside it: still not the tenant's to see.
    let mixed = defer(
        &mut admin,
        &mut root,
        &[&["SET", "tenant:a", "1"], &["SET", "secret:b", "2"]],
    );
    let mut tenant = login(&s, "tenant");
    let own = defer(&mut admin, &mut tenant, &[&["SET", "tenant:mine", "1"]]);

    let (ids, _) = listed(&mut root);
    assert_eq!(
        ids,
        [secret.clone(), mixed.clone(), own.clone()],
        "the default user (~*) sees every task"
    );

    let (ids, whole) = listed(&mut tenant);
    assert_eq!(ids, vec![own.clone()], "the tenant sees only its own task");
    assert!(!whole.contains("secret"), "TXU.TASKS leaked: {whole}");
    assert!(!whole.contains("4111"), "TXU.TASKS leaked: {whole}");
    assert_eq!(
        show(&run(&mut tenant, &["TXU.STATUS", &secret])),
        noperm(&secret)
    );
    assert_eq!(
        show(&run(&mut tenant, &["TXU.STATUS", &mixed])),
        noperm(&mixed)
    );
    assert_eq!(status_state(&mut tenant, &own), "pending");

    // Read permission is enough to look.
    let mut reader = login(&s, "reader");
    let (ids, _) = listed(&mut reader);
    assert_eq!(ids, vec![secret.clone()], "reader may read secret:* only");
    assert_eq!(status_state(&mut reader, &secret), "pending");
    assert_eq!(show(&run(&mut reader, &["TXU.STATUS", &own])), noperm(&own));
}

#[test]
fn retry_and_drop_need_write_permission_on_every_key_of_the_task() {
    let (s, mut admin) = setup();
    let mut root = s.raw();
    let secret = defer(&mut admin, &mut root, &[&["SET", "secret:card", "4111"]]);
    let mut tenant = login(&s, "tenant");
    let own = defer(&mut admin, &mut tenant, &[&["SET", "tenant:mine", "1"]]);
    let before = task_state(&mut admin, &secret);
    assert_eq!(before, ("pending".to_string(), Some(0)));

    for cmd in ["TXU.DROP", "TXU.RETRY"] {
        assert_eq!(
            show(&run(&mut tenant, &[cmd, &secret])),
            noperm(&secret),
            "{cmd}"
        );
    }
    // Reading is not enough to steer.
    let mut reader = login(&s, "reader");
    for cmd in ["TXU.DROP", "TXU.RETRY"] {
        assert_eq!(
            show(&run(&mut reader, &[cmd, &secret])),
            noperm(&secret),
            "{cmd}"
        );
    }
    assert_eq!(task_state(&mut admin, &secret), before, "nothing changed");
    assert_eq!(query(&mut admin, &["EXISTS", "secret:card"]), Value::Int(0));

    // Its own task the tenant may steer; the default user may steer any.
    assert_eq!(show(&run(&mut tenant, &["TXU.DROP", &own])), "+OK\r\n");
    assert_eq!(task_state(&mut admin, &own).0, "unknown");
    assert_eq!(show(&run(&mut root, &["TXU.DROP", &secret])), "+OK\r\n");
    assert_eq!(task_state(&mut admin, &secret).0, "unknown");
}

#[test]
fn rolling_back_a_retained_transaction_needs_every_compensating_write() {
    let (s, mut admin) = setup();
    query(&mut admin, &["SET", "secret:x", "old"]);
    let mut root = s.raw();
    let (txid, r) = txu_with(&mut root, &["RETAIN", "600000"], &["SET secret:x new"]);
    assert!(r.starts_with(b"*1\r\n"), "{}", show(&r));

    let mut tenant = login(&s, "tenant");
    assert_eq!(
        show(&run(&mut tenant, &["TXU.STATUS", &txid])),
        noperm(&txid)
    );
    for args in [
        &["TXU.ROLLBACK", &txid][..],
        &["TXU.ROLLBACK", &txid, "FORCE"],
    ] {
        let r = String::from_utf8_lossy(&run(&mut tenant, args)).into_owned();
        assert!(r.starts_with("-NOPERM "), "{args:?}: {r}");
    }
    assert_eq!(text(&query(&mut admin, &["GET", "secret:x"])), "new");
    assert_eq!(
        task_state(&mut admin, &txid).0,
        "retained",
        "still undoable"
    );

    // The tenant's own retained transaction: undoing it puts the old value back with RESTORE,
    // which the tenant may not run until it is allowed to.
    query(&mut admin, &["SET", "tenant:y", "old"]);
    let (own, r) = txu_with(&mut tenant, &["RETAIN", "600000"], &["SET tenant:y new"]);
    assert!(r.starts_with(b"*1\r\n"), "{}", show(&r));
    let why = text(&query(
        &mut admin,
        &[
            "ACL", "DRYRUN", "tenant", "RESTORE", "tenant:y", "0", "x", "REPLACE",
        ],
    ));
    assert_ne!(why, "OK");
    assert_eq!(
        show(&run(&mut tenant, &["TXU.ROLLBACK", &own])),
        format!("-NOPERM {why}\r\n")
    );
    assert_eq!(text(&query(&mut admin, &["GET", "tenant:y"])), "new");
    assert_eq!(
        text(&query(
            &mut admin,
            &["ACL", "SETUSER", "tenant", "+restore", "+del"]
        )),
        "OK"
    );
    assert_eq!(show(&run(&mut tenant, &["TXU.ROLLBACK", &own])), "+OK\r\n");
    assert_eq!(text(&query(&mut admin, &["GET", "tenant:y"])), "old");

    // The default user undoes its own.
    assert_eq!(show(&run(&mut root, &["TXU.ROLLBACK", &txid])), "+OK\r\n");
    assert_eq!(text(&query(&mut admin, &["GET", "secret:x"])), "old");
}

#[test]
fn a_retry_transaction_whose_user_cannot_be_named_is_refused_before_anything_runs() {
    let s = Server::start_with_fault_module(&[]);
    let mut admin = s.conn();
    let mut c = s.raw();
    assert_eq!(
        text(&query(&mut admin, &["TXU._FAULT", "NOUSER", "1"])),
        "OK"
    );
    let (_, r) = exec_tx(
        &mut c,
        &["RETRY"],
        &[&["SET", "k", "v"][..], &["INCR", "n"]],
    );
    assert_eq!(
        show(&r),
        "-ERR TXU.BEGIN RETRY needs the caller's ACL user name, which the server does not \
         give here; nothing was applied\r\n"
    );
    assert_eq!(
        query(&mut admin, &["DBSIZE"]),
        Value::Int(0),
        "nothing applied"
    );
    assert_eq!(
        s.info_u64("txu", "txu_tasks_pending"),
        0,
        "nothing deferred"
    );
    // Without RETRY there is nothing to run as anybody: the transaction commits.
    let (_, r) = exec_tx(&mut c, &[], &[&["SET", "k", "v"]]);
    assert_eq!(show(&r), "*1\r\n+OK\r\n");
    assert_eq!(
        text(&query(&mut admin, &["TXU._FAULT", "NOUSER", "0"])),
        "OK"
    );
    let (_, r) = exec_tx(&mut c, &["RETRY"], &[&["INCR", "n"]]);
    assert_eq!(show(&r), "*1\r\n:1\r\n");
}

/// Defers a SET on `key` as `user`, changes the user with `change`, lets the task run and
/// expects it dead with the server's NOPERM text, the key untouched.
fn task_of_changed_user_dies(change: &[&str], reply: Value, user: &str, key: &str) {
    let (s, mut admin) = setup();
    setuser(&mut admin, user, &["+get", "+set", "~tenant:*"]);
    let mut c = login(&s, user);
    let id = defer(&mut admin, &mut c, &[&["SET", key, "1"]]);
    assert_eq!(query(&mut admin, change), reply, "{change:?}");
    config_set(&mut admin, "txu.backoff-base-ms", "10");
    config_set(&mut admin, "txu.backoff-max-ms", "10");
    assert_eq!(text(&query(&mut admin, &["TXU.RETRY", &id])), "OK");
    wait_until(&format!("task {id} is dead"), DEADLINE, || {
        task_state(&mut admin, &id).0 == "dead"
    });
    let Value::Array(f) = query(&mut admin, &["TXU.STATUS", &id]) else {
        panic!("TXU.STATUS");
    };
    let last_error = f
        .chunks(2)
        .find(|p| text(&p[0]) == "last-error")
        .map(|p| text(&p[1]))
        .unwrap_or_default();
    assert!(last_error.starts_with("NOPERM "), "{last_error}");
    assert_eq!(
        query(&mut admin, &["EXISTS", key]),
        Value::Int(0),
        "the task never ran"
    );
    assert_eq!(s.info_u64("txu", "txu_tasks_dead"), 1);
}

#[test]
fn a_task_of_a_deleted_user_dies_with_noperm() {
    task_of_changed_user_dies(
        &["ACL", "DELUSER", "gone"],
        Value::Int(1),
        "gone",
        "tenant:a",
    );
}

#[test]
fn a_task_of_a_narrowed_user_dies_with_noperm() {
    task_of_changed_user_dies(
        &["ACL", "SETUSER", "narrowed", "resetkeys", "~other:*"],
        Value::Okay,
        "narrowed",
        "tenant:b",
    );
}
