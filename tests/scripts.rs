//! Scripts and functions inside a transaction: every write a script makes — to its declared
//! keys or not — is undone when the script fails (an error reply, a Lua runtime error, a
//! failing `redis.call`) or a later command of the transaction fails, byte for byte (`DUMP`,
//! `OBJECT ENCODING`, `PEXPIRETIME` of each key, `DEBUG DIGEST`); an error the script catches
//! with `pcall` does not fail it; what txu refuses in a transaction is refused inside a script
//! too; a script's commands get no more than the transaction's user's ACL allows; read-only
//! scripts take no pre-images; replicas and an AOF-restarted server converge.

mod common;

use common::{
    array_items, assert_rolled_back, begin, bulk_body, error_text, queue, queue_reply, run,
    run_frames, show, wait_replica_synced, wait_until, RawConn, Server, State,
};
use std::time::Duration;

/// Sets up keys of five types (a TTL on two of them), all in compact encodings.
fn setup(c: &mut RawConn) {
    for cmd in [
        &["SET", "s", "before"][..],
        &["PEXPIRE", "s", "5000000"],
        &["HSET", "h", "a", "1", "b", "2"],
        &["RPUSH", "l", "x", "y"],
        &["ZADD", "z", "1", "m", "2", "n"],
        &["PEXPIRE", "z", "6000000"],
        &["SADD", "st", "1", "2", "3"],
    ] {
        let r = run(c, cmd);
        assert!(!r.starts_with(b"-"), "{cmd:?}: {}", show(&r));
    }
}

/// The keys a script of these tests may write, and one it creates.
const KEYS: [&str; 6] = ["s", "h", "l", "z", "st", "fresh"];

/// `DUMP`, `OBJECT ENCODING` and `PEXPIRETIME` of each key, and the digest.
fn state(s: &Server, c: &mut RawConn) -> (Vec<String>, String) {
    let keys = KEYS
        .iter()
        .map(|k| {
            let dump = run(c, &["DUMP", k]);
            let enc = run(c, &["OBJECT", "ENCODING", k]);
            let at = run(c, &["PEXPIRETIME", k]);
            format!("{k}: {} {} {}", show(&dump), show(&enc), show(&at))
        })
        .collect();
    (keys, s.digest())
}

/// `TXU.RUN` of commands given as argument lists.
fn txu_run(c: &mut RawConn, cmds: &[&[&str]]) -> Vec<u8> {
    run_frames(c, &[], cmds)
}

/// The same through `TXU.BEGIN` / `TXU.QUEUE` / `TXU.EXEC`.
fn txu_exec(c: &mut RawConn, cmds: &[&[&str]]) -> Vec<u8> {
    begin(c);
    for cmd in cmds {
        queue(c, cmd);
    }
    run(c, &["TXU.EXEC"])
}

/// `txu_run` or `txu_exec`, by name.
fn txu_in(form: &str, c: &mut RawConn, cmds: &[&[&str]]) -> Vec<u8> {
    if form == "TXU.RUN" {
        txu_run(c, cmds)
    } else {
        txu_exec(c, cmds)
    }
}

/// Writes all five keys and creates `fresh` (none of them declared), then `ending`.
fn writer(ending: &str) -> String {
    format!(
        "redis.call('SET', 's', 'after'); redis.call('HSET', 'h', 'c', '3', 'a', '9'); \
         redis.call('HDEL', 'h', 'b'); redis.call('LPUSH', 'l', 'w'); \
         redis.call('ZADD', 'z', '5', 'm', '0', 'o'); redis.call('SREM', 'st', '2'); \
         redis.call('SADD', 'st', 'word'); redis.call('SET', 'fresh', '1'); {ending}"
    )
}

#[test]
fn a_script_that_fails_after_its_writes_is_undone() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let before = state(&s, &mut c);
    let endings = [
        ("return redis.error_reply('boom')", "ERR boom"),
        ("error('lua runtime')", "ERR "),
        ("return redis.call('INCR', 'h')", "WRONGTYPE "),
    ];
    for (ending, code) in endings {
        let script = writer(ending);
        for form in ["TXU.RUN", "TXU.EXEC"] {
            let r = txu_in(
                form,
                &mut c,
                &[&["SET", "other", "1"], &["EVAL", &script, "0"]],
            );
            let cause = assert_rolled_back(&r, 2, "EVAL");
            assert!(cause.starts_with(code), "{form} {ending}: {cause}");
            assert_eq!(state(&s, &mut c), before, "{form} {ending}");
            assert_eq!(
                run(&mut c, &["EXISTS", "other"]),
                b":0\r\n",
                "{form} {ending}"
            );
        }
    }
}

#[test]
fn a_later_failure_undoes_a_script_that_succeeded() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let before = state(&s, &mut c);
    let script = writer("return 'done'");
    // Declared or not, every key the script wrote comes back.
    for numkeys in [&["0"][..], &["2", "s", "h"]] {
        let mut eval = vec!["EVAL", script.as_str()];
        eval.extend_from_slice(numkeys);
        let r = txu_run(&mut c, &[&eval, &["INCR", "h"]]);
        assert_eq!(
            assert_rolled_back(&r, 2, "INCR").get(..9),
            Some("WRONGTYPE")
        );
        assert_eq!(state(&s, &mut c), before, "{numkeys:?}");
    }
    // Committed: the script's writes stay, its reply is in the transaction's reply.
    let r = txu_run(&mut c, &[&["EVAL", &script, "0"], &["GET", "s"]]);
    assert_eq!(show(&r), "*2\r\n$4\r\ndone\r\n$5\r\nafter\r\n");
    assert_eq!(run(&mut c, &["GET", "fresh"]), b"$1\r\n1\r\n");
}

#[test]
fn functions_roll_back_like_scripts() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let lib = "#!lua name=txulib\n\
               redis.register_function('put', function(keys, args) \
                 redis.call('SET', keys[1], args[1]); redis.call('HSET', 'h', 'f', args[1]); \
                 redis.call('SET', 'fresh', args[1]); \
                 if args[2] == 'fail' then return redis.error_reply('nope') end \
                 return 'ok' end)";
    let r = run(&mut c, &["FUNCTION", "LOAD", lib]);
    assert_eq!(show(&r), "$6\r\ntxulib\r\n");
    let before = state(&s, &mut c);
    let r = txu_run(&mut c, &[&["FCALL", "put", "1", "s", "v", "fail"]]);
    assert_eq!(assert_rolled_back(&r, 1, "FCALL"), "ERR nope");
    assert_eq!(state(&s, &mut c), before);
    let r = txu_run(
        &mut c,
        &[&["FCALL", "put", "1", "s", "v", "go"], &["INCR", "h"]],
    );
    assert_rolled_back(&r, 2, "INCR");
    assert_eq!(state(&s, &mut c), before);
    let r = txu_run(&mut c, &[&["FCALL", "put", "1", "s", "v", "go"]]);
    assert_eq!(show(&r), "*1\r\n$2\r\nok\r\n");
    assert_eq!(run(&mut c, &["HGET", "h", "f"]), b"$1\r\nv\r\n");
}

#[test]
fn errors_the_script_catches_do_not_fail_it() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let script = "local r = redis.pcall('INCR', 'h'); redis.call('SET', 'fresh', 'kept'); \
                  return r['err']";
    let r = txu_run(&mut c, &[&["EVAL", script, "0"], &["GET", "fresh"]]);
    let items = array_items(&r).unwrap_or_else(|| panic!("{}", show(&r)));
    assert_eq!(items.len(), 2, "{}", show(&r));
    let caught = bulk_body(items[0]).map(show).unwrap_or_default();
    assert!(caught.starts_with("WRONGTYPE"), "{caught}");
    assert_eq!(show(items[1]), "$4\r\nkept\r\n");
}

#[test]
fn what_txu_refuses_in_a_transaction_it_refuses_in_a_script() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let before = state(&s, &mut c);
    // Managing scripts and functions is refused when queued.
    for cmd in [&["SCRIPT", "FLUSH"][..], &["FUNCTION", "FLUSH"]] {
        let r = txu_run(&mut c, &[cmd]);
        let text = error_text(&r, "TXU.RUN");
        assert!(
            text.contains("is not allowed in a TXU transaction: it manages scripts and functions"),
            "{cmd:?}: {text}"
        );
    }
    // Inside a script, the call fails; the script did not catch it, so the transaction rolls
    // back the script's earlier write.
    for (call, why) in [
        (
            "redis.call('PUBLISH', 'ch', 'm')",
            "pub/sub acts on connections",
        ),
        ("redis.call('SELECT', '1')", "it acts on the connection"),
        ("redis.call('BLPOP', 'l', '0')", "it can block the server"),
        ("redis.call('FLUSHALL')", "it changes whole databases"),
        (
            "redis.call('TXU.RUN', '3', 'SET', 'q', '1')",
            "TXU commands cannot be queued",
        ),
    ] {
        let script = format!("redis.call('SET', 's', 'changed'); {call}");
        let r = txu_run(&mut c, &[&["EVAL", &script, "0"]]);
        let cause = assert_rolled_back(&r, 1, "EVAL");
        assert!(
            cause.contains("is not allowed in a script inside a TXU transaction")
                && cause.contains(why),
            "{call}: {cause}"
        );
        assert_eq!(state(&s, &mut c), before, "{call}");
    }
    // The routing command is txu's own.
    let r = run(&mut c, &["TXU._CALL", "SET", "s", "x"]);
    assert_eq!(
        error_text(&r, "TXU._CALL"),
        "ERR TXU._CALL is internal to txu"
    );
}

#[test]
fn read_only_scripts_take_no_pre_images() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let entries = |s: &Server| s.info_u64("txu", "txu_undo_entries_recorded");
    let n0 = entries(&s);
    let no_writes = "#!lua flags=no-writes\nreturn redis.call('GET', KEYS[1])";
    let r = txu_run(
        &mut c,
        &[
            &["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "s"],
            &["EVAL", no_writes, "1", "s"],
        ],
    );
    assert_eq!(show(&r), "*2\r\n$6\r\nbefore\r\n$6\r\nbefore\r\n");
    assert_eq!(entries(&s), n0, "reads recorded undo entries");
    // The server refuses a read-only script's write: the transaction rolls back.
    let r = txu_run(
        &mut c,
        &[
            &["SET", "fresh", "1"],
            &[
                "EVAL_RO",
                "return redis.call('SET', KEYS[1], 'x')",
                "1",
                "s",
            ],
        ],
    );
    assert_rolled_back(&r, 2, "EVAL_RO");
    assert_eq!(run(&mut c, &["EXISTS", "fresh"]), b":0\r\n");
}

#[test]
fn a_scripts_commands_get_no_more_than_the_users_acl() {
    let s = Server::start();
    let mut admin = s.raw();
    setup(&mut admin);
    // Allowed: TXU, EVAL, SET and GET on keys a*; not TXU._CALL, not HSET.
    let r = run(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "u",
            "on",
            ">pw",
            "~a*",
            "+txu.run",
            "+txu.begin",
            "+txu.queue",
            "+txu.exec",
            "+eval",
            "+set",
            "+get",
        ],
    );
    assert_eq!(r, b"+OK\r\n", "{}", show(&r));
    let mut c = s.raw();
    assert_eq!(run(&mut c, &["AUTH", "u", "pw"]), b"+OK\r\n");
    let ok = "redis.call('SET', 'a1', 'x'); return redis.call('GET', 'a1')";
    assert_eq!(
        show(&txu_run(&mut c, &[&["EVAL", ok, "0"]])),
        "*1\r\n$1\r\nx\r\n"
    );
    for (script, what) in [
        (
            "redis.call('SET', 'a2', 'x'); redis.call('SET', 'b1', 'y')",
            "key",
        ),
        (
            "redis.call('SET', 'a2', 'x'); redis.call('HSET', 'a3', 'f', 'v')",
            "command",
        ),
    ] {
        for form in ["TXU.RUN", "TXU.EXEC"] {
            let r = txu_in(form, &mut c, &[&["EVAL", script, "0"]]);
            let cause = assert_rolled_back(&r, 1, "EVAL");
            assert!(cause.starts_with("NOPERM"), "{form} {what}: {cause}");
            assert_eq!(run(&mut admin, &["EXISTS", "a2", "b1", "a3"]), b":0\r\n");
        }
    }
    // The script command itself is checked again when it runs: queued while allowed, refused
    // after the permission went.
    begin(&mut c);
    queue(&mut c, &["SET", "a4", "1"]);
    queue(&mut c, &["EVAL", ok, "0"]);
    assert_eq!(
        run(&mut admin, &["ACL", "SETUSER", "u", "-eval"]),
        b"+OK\r\n"
    );
    let cause = assert_rolled_back(run(&mut c, &["TXU.EXEC"]), 2, "EVAL");
    assert!(cause.starts_with("NOPERM"), "{cause}");
    assert_eq!(run(&mut admin, &["EXISTS", "a4"]), b":0\r\n");
}

#[test]
fn replicas_and_the_aof_converge_after_scripts() {
    let mut primary = Server::start_with(&["--appendonly", "yes"]);
    let replica = primary.start_replica_of();
    let mut c = primary.raw();
    setup(&mut c);
    let script = writer("return 'done'");
    let failing = writer("return redis.error_reply('boom')");
    let r = txu_run(&mut c, &[&["EVAL", &script, "0"]]);
    assert_eq!(show(&r), "*1\r\n$4\r\ndone\r\n");
    assert_rolled_back(txu_run(&mut c, &[&["EVAL", &failing, "0"]]), 1, "EVAL");
    let again = "redis.call('HSET', 'h', 'late', '1'); redis.call('DEL', 'l')";
    let r = txu_run(&mut c, &[&["EVAL", again, "0"], &["INCR", "h"]]);
    assert_rolled_back(&r, 2, "INCR");
    let r = txu_run(&mut c, &[&["EVAL", again, "0"], &["SET", "tail", "1"]]);
    assert!(r.starts_with(b"*2"), "{}", show(&r));
    wait_replica_synced(&primary, &replica);
    let p = State::of(&primary, false);
    p.assert_same(&State::of(&replica, false), "replica vs primary");
    primary.restart();
    p.assert_same(&State::of(&primary, false), "after a restart from the AOF");
}

#[test]
fn a_retry_transaction_with_a_script_is_deferred_then_applied() {
    let s = Server::start();
    let mut c = s.raw();
    assert_eq!(
        run(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "1"]),
        b"+OK\r\n"
    );
    let script = "redis.call('SET', KEYS[1], 'v'); redis.call('HSET', 'undeclared', 'f', 'v')";
    let r = run_frames(&mut c, &["RETRY", "5"], &[&["EVAL", script, "1", "k"]]);
    let text = error_text(&r, "TXU.RUN RETRY");
    assert!(text.starts_with("DEFERRED "), "{text}");
    assert_eq!(run(&mut c, &["EXISTS", "k", "undeclared"]), b":0\r\n");
    assert_eq!(
        run(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "0"]),
        b"+OK\r\n"
    );
    wait_until("the deferred script ran", Duration::from_secs(10), || {
        run(&mut c, &["HGET", "undeclared", "f"]) == b"$1\r\nv\r\n"
    });
    assert_eq!(run(&mut c, &["GET", "k"]), b"$1\r\nv\r\n");
}

#[test]
fn script_replies_follow_the_clients_protocol() {
    let s = Server::start();
    let mut c = s.raw();
    let hello = run(&mut c, &["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    let script = "redis.setresp(3); redis.call('HSET', 'h3', 'f', 'v'); \
                  return redis.call('HGETALL', 'h3')";
    let r = txu_run(&mut c, &[&["EVAL", script, "0"]]);
    assert_eq!(show(&r), "*1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    let r = queue_reply(&mut c, &["EVAL", "return 1", "0"]);
    assert!(
        r.starts_with(b"-"),
        "TXU.QUEUE without TXU.BEGIN: {}",
        show(&r)
    );
}

/// A script of a transaction that runs too long can be killed even after it wrote (the server
/// refuses `SCRIPT KILL` for a plain script that wrote): the transaction then rolls back.
#[test]
fn a_busy_script_that_wrote_can_be_killed_and_is_undone() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let before = state(&s, &mut c);
    assert_eq!(
        run(&mut c, &["CONFIG", "SET", "busy-reply-threshold", "50"]),
        b"+OK\r\n"
    );
    let script = writer("while true do end");
    let mut busy = s.raw();
    busy.send(&[b"TXU.RUN", b"3", b"EVAL", script.as_bytes(), b"0"]);
    // Until the script started and ran past the threshold: NOTBUSY before, then OK.
    wait_until("SCRIPT KILL", Duration::from_secs(10), || {
        let r = run(&mut c, &["SCRIPT", "KILL"]);
        assert!(
            r == b"+OK\r\n" || r.starts_with(b"-NOTBUSY"),
            "{}",
            show(&r)
        );
        r == b"+OK\r\n"
    });
    let cause = assert_rolled_back(busy.read_reply(), 1, "EVAL");
    assert!(cause.contains("Script killed by user"), "{cause}");
    assert_eq!(state(&s, &mut c), before);
}

/// A committed transaction with a script, retained, is undone later by `TXU.ROLLBACK <txid>`:
/// the script's writes (whole-key pre-images, as for any retained transaction) included.
#[test]
fn a_retained_script_transaction_rolls_back_by_id() {
    let s = Server::start();
    let mut c = s.raw();
    setup(&mut c);
    let before = state(&s, &mut c);
    let script = writer("return 'done'");
    let r = run_frames(&mut c, &["RETAIN", "60000"], &[&["EVAL", &script, "0"]]);
    let items = array_items(&r).unwrap_or_else(|| panic!("{}", show(&r)));
    let id = bulk_body(items[0]).map(show).unwrap_or_default();
    assert_eq!(show(items[1]), "*1\r\n$4\r\ndone\r\n");
    assert_ne!(state(&s, &mut c), before);
    assert_eq!(run(&mut c, &["TXU.ROLLBACK", &id]), b"+OK\r\n");
    assert_eq!(state(&s, &mut c), before);
}
