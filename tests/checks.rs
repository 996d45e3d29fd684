//! `TXU.CHECK <k> <op> [<value>]`: guards that abort. A check looks at the reply an earlier
//! command of the same transaction produced; a false one undoes every earlier write and
//! replies `ROLLBACK command <j> (TXU.CHECK) failed: CHECK command <k> (<NAME>) replied
//! <value>, expected <OP>[ <value>]`. Queued with `TXU.QUEUE TXU.CHECK ...`, sent directly on a
//! connection with an open transaction, or as a frame of `TXU.RUN`.

mod common;

use common::{begin, exec_tx, query, queue_reply, run, run_frames, show, RawConn, Server, State};
use redis::Value;

fn frames<'a>(lines: &[&'a str]) -> Vec<Vec<&'a str>> {
    lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// Runs `lines` as TXU.RUN and as TXU.BEGIN/QUEUE/EXEC; both replies must be the same (the
/// commands must leave the data as they found it, or be undone).
fn both(c: &mut RawConn, lines: &[&str]) -> String {
    let cmds = frames(lines);
    let by_run = show(&run_frames(c, &[], &cmds));
    let (_, by_exec) = exec_tx(c, &[], &cmds);
    assert_eq!(show(&by_exec), by_run, "TXU.EXEC and TXU.RUN of {lines:?}");
    by_run
}

fn failed(j: usize, k: usize, name: &str, value: &str, expected: &str) -> String {
    format!(
        "-ROLLBACK command {j} (TXU.CHECK) failed: CHECK command {k} ({name}) replied {value}, \
         expected {expected}\r\n"
    )
}

#[test]
fn the_transfer_commits_only_while_alice_stays_non_negative() {
    let s = Server::start();
    let mut con = s.conn();
    query(&mut con, &["MSET", "alice", "100", "bob", "0"]);
    let mut c = s.raw();
    let transfer = ["DECRBY alice 30", "TXU.CHECK 1 GE 0", "INCRBY bob 30"];
    let cmds = frames(&transfer);
    assert_eq!(
        show(&run_frames(&mut c, &[], &cmds)),
        "*3\r\n:70\r\n+OK\r\n:30\r\n"
    );
    let before = s.digest();
    let too_much = ["DECRBY alice 300", "TXU.CHECK 1 GE 0", "INCRBY bob 300"];
    assert_eq!(
        show(&run_frames(&mut c, &[], &frames(&too_much))),
        failed(2, 1, "DECRBY", "-230", "GE 0")
    );
    assert_eq!(s.digest(), before, "nothing changed");
    // A failed check is never transient: a RETRY transaction is not deferred.
    let r = show(&run_frames(&mut c, &["RETRY", "5"], &frames(&too_much)));
    assert_eq!(r, failed(2, 1, "DECRBY", "-230", "GE 0"));
    assert_eq!(s.info_u64("txu", "txu_tasks_pending"), 0);
    assert_eq!(s.digest(), before);
}

#[test]
fn every_operator_on_every_kind_of_reply() {
    let s = Server::start();
    let mut con = s.conn();
    query(&mut con, &["SET", "str", "abc"]);
    query(&mut con, &["SET", "num", "5"]);
    query(&mut con, &["RPUSH", "list", "a"]);
    let mut c = s.raw();
    // (command, check, holds, reply text when it does not)
    let cases: &[(&str, &str, bool, &str)] = &[
        ("INCRBY num 0", "GE 5", true, ""),
        ("INCRBY num 0", "GT 5", false, "5"),
        ("INCRBY num 0", "LT 5.5", true, ""),
        ("INCRBY num 0", "LE 4", false, "5"),
        ("INCRBY num 0", "EQ 5", true, ""),
        ("INCRBY num 0", "NE 5", false, "5"),
        ("GET str", "EQ abc", true, ""),
        ("GET str", "NE abc", false, "abc"),
        ("GET str", "GT 1", false, "abc"),
        ("GET num", "LE 5", true, ""),
        ("INCRBYFLOAT num 0", "GT 4.5", true, ""),
        ("INCRBYFLOAT num 0", "EQ 5", true, ""),
        ("INCRBYFLOAT num 0", "LT 4.5", false, "5"),
        ("GET missing", "NIL", true, ""),
        ("GET missing", "NOTNIL", false, "nil"),
        ("GET missing", "NE x", true, ""),
        ("GET missing", "EQ x", false, "nil"),
        ("GET missing", "GE 0", false, "nil"),
        ("LRANGE list 0 -1", "NOTNIL", true, ""),
        ("LRANGE list 0 -1", "GE 0", false, "(array)"),
        ("LRANGE list 0 -1", "EQ a", false, "(array)"),
    ];
    for (cmd, check, holds, value) in cases {
        let name = cmd.split_whitespace().next().unwrap_or_default();
        let lines = [
            cmd.to_string(),
            format!("TXU.CHECK -1 {check}"),
            "SET after 1".into(),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = both(&mut c, &lines);
        if *holds {
            assert!(
                r.starts_with("*3\r\n") && r.contains("+OK\r\n+OK\r\n"),
                "{cmd} / {check}: {r}"
            );
            query(&mut con, &["DEL", "after"]);
        } else {
            assert_eq!(r, failed(2, 1, name, value, check), "{cmd} / {check}");
            assert_eq!(query(&mut con, &["EXISTS", "after"]), Value::Int(0));
        }
    }
}

#[test]
fn a_false_check_undoes_writes_of_every_type_in_resp2_and_resp3() {
    for resp3 in [false, true] {
        let s = Server::start();
        let mut con = s.conn();
        query(&mut con, &["SET", "s", "v", "EX", "1000"]);
        query(&mut con, &["HSET", "h", "a", "1"]);
        query(&mut con, &["ZADD", "z", "1", "m"]);
        let before = State::of(&s, true);
        let mut c = s.raw();
        if resp3 {
            c.hello3();
        }
        let lines = [
            "SET s w",
            "HSET h b 2",
            "RPUSH l x",
            "SADD set m",
            "ZINCRBY z 2 m",
            "XADD st 1-1 f v",
            "TXU.CHECK 5 LT 3",
        ];
        let r = both(&mut c, &lines);
        // A double reply (RESP3) and a bulk string (RESP2) read the same.
        assert_eq!(r, failed(7, 5, "ZINCRBY", "3", "LT 3"), "RESP3 {resp3}");
        State::of(&s, true).assert_same(&before, "after the false check");
    }
}

#[test]
fn bad_checks_are_refused_when_queued() {
    let s = Server::start();
    let mut c = s.raw();
    let refusals: &[(&[&str], &str)] = &[
        (
            &["TXU.CHECK", "2", "GE", "0"],
            "<k> 2 does not name an earlier command of this transaction",
        ),
        (
            &["TXU.CHECK", "0", "NIL"],
            "<k> 0 does not name an earlier command of this transaction",
        ),
        (
            &["TXU.CHECK", "1", "ABOUT", "1"],
            "<op> must be EQ, NE, LT, LE, GT, GE, NIL or NOTNIL",
        ),
        (&["TXU.CHECK", "1", "GE"], "GE needs a value"),
        (&["TXU.CHECK", "1", "GE", "x"], "GE needs a number"),
        (&["TXU.CHECK", "1", "NIL", "x"], "NIL takes no value"),
    ];
    for (args, why) in refusals {
        begin(&mut c);
        assert_eq!(show(&queue_reply(&mut c, &["GET", "k"])), "+QUEUED\r\n");
        assert_eq!(
            show(&queue_reply(&mut c, args)),
            format!("-ERR TXU.CHECK {why}\r\n"),
            "{args:?}"
        );
        assert_eq!(
            show(&run(&mut c, &["TXU.EXEC"])),
            "-EXECABORT Transaction discarded because of previous errors.\r\n"
        );
    }
    // A check of a check.
    begin(&mut c);
    queue_reply(&mut c, &["GET", "k"]);
    assert_eq!(
        show(&run(&mut c, &["TXU.CHECK", "1", "NIL"])),
        "+QUEUED\r\n"
    );
    assert_eq!(
        show(&run(&mut c, &["TXU.CHECK", "-1", "NIL"])),
        "-ERR TXU.CHECK command 2 is a check, not a command\r\n"
    );
    run(&mut c, &["TXU.ROLLBACK"]);
    // Sent directly without a transaction.
    assert_eq!(
        show(&run(&mut c, &["TXU.CHECK", "1", "NIL"])),
        "-ERR TXU.CHECK without TXU.BEGIN\r\n"
    );
}
