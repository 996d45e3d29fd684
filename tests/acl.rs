//! Queued commands never get more permission than their caller: the ACL is checked on the
//! command and its keys when it is queued (`NOPERM`, and the transaction is discarded at
//! `TXU.EXEC` with `EXECABORT`), and again when it runs (`ROLLBACK command <k> (<NAME>) failed:
//! NOPERM ...`, earlier writes undone).
//!
//! Error texts: txu's part is matched exactly; the server's reason (which differs between Redis
//! 7.0, 8.2 and Valkey) is matched by its code, or compared with what `ACL DRYRUN` says for the
//! same user and command, which is where txu takes it from.

mod common;

use common::{
    assert_rolled_back, begin, queue, queue_reply, run, run_text, show, RawConn, Server, State,
    EXECABORT,
};

/// Runs a command on the admin (default user) connection and expects `OK`.
fn admin_ok(con: &mut redis::Connection, args: &[&str]) {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    let r: redis::RedisResult<String> = c.query(con);
    assert_eq!(r.as_deref(), Ok("OK"), "{args:?}");
}

/// A raw connection authenticated as `user` (password `pw`).
fn login(s: &Server, user: &str) -> RawConn {
    let mut raw = s.raw();
    let r = raw.cmd(&[b"AUTH", user.as_bytes(), b"pw"]);
    assert_eq!(r, b"+OK\r\n", "AUTH {user}: {}", show(&r));
    raw
}

/// What `ACL DRYRUN user cmd...` says: `OK`, or the reason the server would refuse it.
fn dryrun(con: &mut redis::Connection, user: &str, args: &[&str]) -> String {
    let mut c = redis::cmd("ACL");
    c.arg("DRYRUN").arg(user);
    for a in args {
        c.arg(*a);
    }
    c.query(con).unwrap()
}

/// Queues `args` as `user` and expects `NOPERM <the server's reason>`.
fn queue_noperm(raw: &mut RawConn, admin: &mut redis::Connection, user: &str, args: &[&str]) {
    let why = dryrun(admin, user, args);
    assert_ne!(why, "OK", "the ACL should forbid {args:?} to {user}");
    let r = queue_reply(raw, args);
    assert_eq!(
        show(&r),
        format!("-NOPERM {why}\r\n"),
        "TXU.QUEUE {args:?} as {user}"
    );
}

/// carol may run only the TXU commands, GET, SET and INCR, on `app:*`, and read `ro:*`.
fn add_carol(admin: &mut redis::Connection) {
    admin_ok(
        admin,
        &[
            "ACL",
            "SETUSER",
            "carol",
            "reset",
            "on",
            ">pw",
            "+txu.begin",
            "+txu.queue",
            "+txu.exec",
            "+txu.rollback",
            "+get",
            "+set",
            "+incr",
            "~app:*",
            "%R~ro:*",
        ],
    );
}

/// alice may run everything but FLUSHALL, on `app:*` only.
fn add_alice(admin: &mut redis::Connection) {
    admin_ok(
        admin,
        &[
            "ACL",
            "SETUSER",
            "alice",
            "reset",
            "on",
            ">pw",
            "~app:*",
            "+@all",
            "-flushall",
        ],
    );
}

fn seed(admin: &mut redis::Connection) {
    admin_ok(admin, &["SET", "app:n", "10", "EX", "1000"]);
    admin_ok(admin, &["SET", "ro:1", "r"]);
    admin_ok(admin, &["SET", "other", "o"]);
    let _: i64 = redis::cmd("RPUSH")
        .arg("ro:l")
        .arg("a")
        .arg("b")
        .query(admin)
        .unwrap();
}

// ----- queue time ------------------------------------------------------------------------------

#[test]
fn queue_refuses_a_command_the_user_may_not_run() {
    let s = Server::start();
    let mut admin = s.conn();
    add_carol(&mut admin);
    seed(&mut admin);
    let before = State::of(&s, true);
    let refused = s.info_u64("txu", "txu_commands_refused");
    let aborted = s.info_u64("txu", "txu_transactions_aborted");

    let mut carol = login(&s, "carol");
    begin(&mut carol);
    queue(&mut carol, &["SET", "app:a", "1"]);
    queue_noperm(&mut carol, &mut admin, "carol", &["DEL", "app:n"]);
    queue_noperm(
        &mut carol,
        &mut admin,
        "carol",
        &["HSET", "app:h", "f", "v"],
    );
    // Later commands are still validated and accepted, but nothing will run.
    queue(&mut carol, &["INCR", "app:n"]);
    assert_eq!(run_text(&mut carol, &["TXU.EXEC"]), EXECABORT);

    assert_eq!(
        State::of(&s, true),
        before,
        "an aborted transaction changed data"
    );
    assert_eq!(s.info_u64("txu", "txu_commands_refused") - refused, 2);
    assert_eq!(s.info_u64("txu", "txu_transactions_aborted") - aborted, 1);
    // The connection left the transaction.
    assert_eq!(
        run_text(&mut carol, &["TXU.EXEC"]),
        "-ERR TXU.EXEC without TXU.BEGIN\r\n"
    );
}

#[test]
fn queue_refuses_keys_outside_the_users_patterns() {
    let s = Server::start();
    let mut admin = s.conn();
    add_alice(&mut admin);
    seed(&mut admin);
    admin_ok(&mut admin, &["SET", "app:a", "a"]);
    let before = State::of(&s, true);

    let mut alice = login(&s, "alice");
    let forbidden: [&[&str]; 6] = [
        &["SET", "other", "1"],
        &["GET", "other"],
        // Only one of several keys is outside the patterns.
        &["MSET", "app:1", "a", "other", "b"],
        &["SUNIONSTORE", "app:dst", "app:s", "other"],
        &["RENAME", "app:a", "other"],
        &["COPY", "other", "app:copy"],
    ];
    for f in forbidden {
        begin(&mut alice);
        queue(&mut alice, &["SET", "app:a", "changed"]);
        queue_noperm(&mut alice, &mut admin, "alice", f);
        assert_eq!(
            run_text(&mut alice, &["TXU.EXEC"]),
            EXECABORT,
            "after refusing {f:?}"
        );
        assert_eq!(State::of(&s, true), before, "after refusing {f:?}");
    }

    // FLUSHALL is forbidden to alice by the ACL and to everyone by txu: txu's refusal comes
    // first (validation order of the README).
    begin(&mut alice);
    assert_eq!(
        show(&queue_reply(&mut alice, &["FLUSHALL"])),
        "-ERR 'FLUSHALL' is not allowed in a TXU transaction: it changes whole databases and \
         cannot be undone\r\n"
    );
    assert_eq!(run_text(&mut alice, &["TXU.EXEC"]), EXECABORT);

    // Within her keys alice's transactions run.
    begin(&mut alice);
    queue(&mut alice, &["MSET", "app:1", "a", "app:2", "b"]);
    queue(&mut alice, &["INCR", "app:n"]);
    queue(&mut alice, &["MGET", "app:1", "app:2"]);
    assert_eq!(
        run_text(&mut alice, &["TXU.EXEC"]),
        "*3\r\n+OK\r\n:11\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    );
}

#[test]
fn read_only_key_permission_queues_reads_but_not_writes() {
    let s = Server::start();
    let mut admin = s.conn();
    add_carol(&mut admin);
    seed(&mut admin);
    // dave may run everything but FLUSHALL; app:* fully, ro:* read-only, wo:* write-only.
    admin_ok(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "dave",
            "reset",
            "on",
            ">pw",
            "+@all",
            "-flushall",
            "~app:*",
            "%R~ro:*",
            "%W~wo:*",
        ],
    );
    let before = State::of(&s, true);

    let mut carol = login(&s, "carol");
    begin(&mut carol);
    queue(&mut carol, &["GET", "ro:1"]);
    queue_noperm(&mut carol, &mut admin, "carol", &["SET", "ro:1", "x"]);
    assert_eq!(run_text(&mut carol, &["TXU.EXEC"]), EXECABORT);
    assert_eq!(State::of(&s, true), before);

    begin(&mut carol);
    queue(&mut carol, &["GET", "ro:1"]);
    queue(&mut carol, &["SET", "app:x", "from-ro"]);
    assert_eq!(
        run_text(&mut carol, &["TXU.EXEC"]),
        "*2\r\n$1\r\nr\r\n+OK\r\n"
    );

    let mut dave = login(&s, "dave");
    let before = State::of(&s, true);
    // The key flags of each command decide: COPY reads its source and writes its destination;
    // LMOVE writes its source too; GET reads.
    let refused: [&[&str]; 4] = [
        &["COPY", "app:x", "ro:copy"],
        &["LMOVE", "ro:l", "app:l", "LEFT", "LEFT"],
        &["GET", "wo:1"],
        &["APPEND", "ro:1", "x"],
    ];
    for f in refused {
        begin(&mut dave);
        queue_noperm(&mut dave, &mut admin, "dave", f);
        assert_eq!(run_text(&mut dave, &["TXU.EXEC"]), EXECABORT);
    }
    assert_eq!(State::of(&s, true), before);
    begin(&mut dave);
    queue(&mut dave, &["COPY", "ro:1", "app:copy"]);
    queue(&mut dave, &["LRANGE", "ro:l", "0", "-1"]);
    queue(&mut dave, &["SET", "wo:1", "w"]);
    queue(&mut dave, &["GET", "app:copy"]);
    assert_eq!(
        run_text(&mut dave, &["TXU.EXEC"]),
        "*4\r\n:1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n+OK\r\n$1\r\nr\r\n"
    );
}

// ----- exec time -------------------------------------------------------------------------------

/// Asserts a `TXU.EXEC` reply `ROLLBACK command <at> (<name>) failed: NOPERM ...`.
fn assert_rollback_noperm(reply: &[u8], at: usize, name: &str) {
    let cause = assert_rolled_back(reply, at, name);
    assert!(
        cause.starts_with("NOPERM "),
        "the command's own error should be the server's NOPERM, got {cause:?}"
    );
}

#[test]
fn exec_rechecks_the_command_and_rolls_back() {
    let s = Server::start();
    let mut admin = s.conn();
    add_carol(&mut admin);
    seed(&mut admin);
    let before = State::of(&s, true);

    let mut carol = login(&s, "carol");
    begin(&mut carol);
    queue(&mut carol, &["INCR", "app:n"]);
    queue(&mut carol, &["SET", "app:a", "1"]);
    queue(&mut carol, &["GET", "app:a"]);
    // Between queueing and EXEC, an admin takes SET away.
    admin_ok(&mut admin, &["ACL", "SETUSER", "carol", "-set"]);
    let reply = run(&mut carol, &["TXU.EXEC"]);

    // app:n is back at 10 with its original deadline; app:a was never created.
    assert_eq!(State::of(&s, true), before, "reply was {}", show(&reply));
    assert_eq!(s.info_u64("txu", "txu_transactions_rolled_back"), 1);
    assert_rollback_noperm(&reply, 2, "SET");
    assert!(show(&reply).contains("'set'"), "{}", show(&reply));
}

#[test]
fn exec_rechecks_the_keys_and_rolls_back() {
    let s = Server::start();
    let mut admin = s.conn();
    add_carol(&mut admin);
    seed(&mut admin);
    let before = State::of(&s, true);
    let mut carol = login(&s, "carol");

    // Keys reset to app:a only: the SET of app:b fails.
    begin(&mut carol);
    queue(&mut carol, &["SET", "app:a", "1"]);
    queue(&mut carol, &["SET", "app:b", "2"]);
    queue(&mut carol, &["INCR", "app:n"]);
    admin_ok(
        &mut admin,
        &["ACL", "SETUSER", "carol", "resetkeys", "~app:a", "%R~ro:*"],
    );
    let reply = run(&mut carol, &["TXU.EXEC"]);
    assert_eq!(State::of(&s, true), before, "reply was {}", show(&reply));
    assert_rollback_noperm(&reply, 2, "SET");

    // Keys downgraded to read-only: INCR, after a write that is allowed, fails.
    admin_ok(
        &mut admin,
        &["ACL", "SETUSER", "carol", "resetkeys", "~app:*", "%R~ro:*"],
    );
    begin(&mut carol);
    queue(&mut carol, &["SET", "app:a", "1"]);
    queue(&mut carol, &["GET", "app:n"]);
    queue(&mut carol, &["INCR", "app:n"]);
    admin_ok(
        &mut admin,
        &["ACL", "SETUSER", "carol", "resetkeys", "~app:a", "%R~app:n"],
    );
    let reply = run(&mut carol, &["TXU.EXEC"]);
    assert_eq!(State::of(&s, true), before, "reply was {}", show(&reply));
    assert_rollback_noperm(&reply, 3, "INCR");
}

#[test]
fn exec_runs_as_the_user_the_connection_has_then() {
    // Queued by the default user, run after AUTH as carol: carol's rights apply.
    let s = Server::start();
    let mut admin = s.conn();
    add_carol(&mut admin);
    seed(&mut admin);
    let before = State::of(&s, true);

    let mut raw = s.raw();
    begin(&mut raw);
    queue(&mut raw, &["SET", "app:a", "1"]);
    queue(&mut raw, &["SET", "other", "x"]);
    assert_eq!(run(&mut raw, &["AUTH", "carol", "pw"]), b"+OK\r\n");
    let reply = run(&mut raw, &["TXU.EXEC"]);
    assert_eq!(State::of(&s, true), before, "reply was {}", show(&reply));
    assert_rollback_noperm(&reply, 2, "SET");
}

// ----- the default user ------------------------------------------------------------------------

#[test]
fn default_user_without_restrictions() {
    let s = Server::start();
    let mut admin = s.conn();
    seed(&mut admin);
    let mut raw = s.raw();
    assert_eq!(run(&mut raw, &["ACL", "WHOAMI"]), b"$7\r\ndefault\r\n");
    begin(&mut raw);
    queue(&mut raw, &["SET", "anything", "1"]);
    queue(&mut raw, &["INCR", "app:n"]);
    queue(&mut raw, &["HSET", "h", "f", "v"]);
    queue(&mut raw, &["DEL", "other"]);
    queue(&mut raw, &["LMOVE", "ro:l", "ro:l", "LEFT", "RIGHT"]);
    assert_eq!(
        run_text(&mut raw, &["TXU.EXEC"]),
        "*5\r\n+OK\r\n:11\r\n:1\r\n:1\r\n$1\r\na\r\n"
    );
    let before = State::of(&s, true);
    begin(&mut raw);
    queue(&mut raw, &["SET", "x", "1"]);
    queue(&mut raw, &["LPUSH", "anything", "x"]);
    let reply = run_text(&mut raw, &["TXU.EXEC"]);
    assert!(
        reply.starts_with("-ROLLBACK command 2 (LPUSH) failed: WRONGTYPE "),
        "{reply}"
    );
    assert_eq!(State::of(&s, true), before);
}

// ----- the documented hole: TXU.QUEUE itself forbidden -----------------------------------------

#[test]
fn caller_without_txu_queue_gets_noperm_from_the_server() {
    let s = Server::start();
    let mut admin = s.conn();
    add_carol(&mut admin);
    seed(&mut admin);
    let refused = s.info_u64("txu", "txu_commands_refused");
    let aborted = s.info_u64("txu", "txu_transactions_aborted");

    // A user who never had TXU.QUEUE: the server refuses it before txu sees it, so the
    // transaction is not marked and TXU.EXEC runs the (empty) queue.
    admin_ok(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "erin",
            "reset",
            "on",
            ">pw",
            "+txu.begin",
            "+txu.exec",
            "+txu.rollback",
            "+set",
            "~*",
        ],
    );
    let mut erin = login(&s, "erin");
    begin(&mut erin);
    let r = show(&queue_reply(&mut erin, &["SET", "k", "1"]));
    assert!(r.starts_with("-NOPERM "), "{r}");
    assert!(r.to_ascii_lowercase().contains("'txu.queue'"), "{r}");
    assert_eq!(run_text(&mut erin, &["TXU.EXEC"]), "*0\r\n");

    // TXU.QUEUE taken away mid-transaction: what was queued before still runs, the refused
    // command leaves a hole (README, "Hidden holes").
    let mut carol = login(&s, "carol");
    begin(&mut carol);
    queue(&mut carol, &["SET", "app:a", "1"]);
    admin_ok(&mut admin, &["ACL", "SETUSER", "carol", "-txu.queue"]);
    let r = show(&queue_reply(&mut carol, &["SET", "app:b", "2"]));
    assert!(r.starts_with("-NOPERM "), "{r}");
    assert_eq!(run_text(&mut carol, &["TXU.EXEC"]), "*1\r\n+OK\r\n");
    let mut con = s.conn();
    let got: (Option<String>, Option<String>) = redis::cmd("MGET")
        .arg("app:a")
        .arg("app:b")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, (Some("1".into()), None));

    // The README's advice: TXU.ROLLBACK after such a refusal, and nothing is applied.
    admin_ok(&mut admin, &["ACL", "SETUSER", "carol", "+txu.queue"]);
    begin(&mut carol);
    queue(&mut carol, &["SET", "app:c", "1"]);
    admin_ok(&mut admin, &["ACL", "SETUSER", "carol", "-txu.queue"]);
    assert!(show(&queue_reply(&mut carol, &["SET", "app:d", "2"])).starts_with("-NOPERM "));
    assert_eq!(run(&mut carol, &["TXU.ROLLBACK"]), b"+OK\r\n");
    let n: i64 = redis::cmd("EXISTS")
        .arg("app:c")
        .arg("app:d")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 0);

    // txu never saw the refused TXU.QUEUE calls: nothing was counted as refused or aborted.
    assert_eq!(s.info_u64("txu", "txu_commands_refused"), refused);
    assert_eq!(s.info_u64("txu", "txu_transactions_aborted"), aborted);
}
