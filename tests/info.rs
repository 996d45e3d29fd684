//! `INFO txu`: every field README names, with the right counts after a known sequence of
//! committed, rolled-back, discarded and aborted transactions.

mod common;

use common::{begin, queue, queue_bytes, run_text, show, wait_until, Server, EXECABORT};
use std::collections::BTreeMap;
use std::time::Duration;

const FIELDS: [&str; 11] = [
    "txu_transactions_open",
    "txu_transactions_committed",
    "txu_transactions_rolled_back",
    "txu_transactions_discarded",
    "txu_transactions_aborted",
    "txu_commands_queued",
    "txu_commands_refused",
    "txu_commands_executed",
    "txu_undo_entries_recorded",
    "txu_preimage_bytes",
    "txu_rollback_failures",
];

/// Every README field of `INFO txu`, as numbers.
fn counters(s: &Server) -> BTreeMap<&'static str, u64> {
    let info = s.info("txu");
    FIELDS
        .iter()
        .map(|f| {
            let v = info
                .get(*f)
                .unwrap_or_else(|| panic!("INFO txu has no field {f}: {info:?}"));
            let n = v
                .parse()
                .unwrap_or_else(|e| panic!("INFO txu {f}={v:?} is not a number: {e}"));
            (*f, n)
        })
        .collect()
}

/// Asserts the counters changed by exactly `changes` since `before` (others unchanged).
fn assert_delta(
    s: &Server,
    before: &BTreeMap<&'static str, u64>,
    changes: &[(&str, u64)],
    what: &str,
) -> BTreeMap<&'static str, u64> {
    let now = counters(s);
    let mut want = before.clone();
    for (f, d) in changes {
        *want
            .get_mut(f)
            .unwrap_or_else(|| panic!("unknown field {f}")) += d;
    }
    assert_eq!(now, want, "INFO txu after {what}");
    now
}

#[test]
fn fields_start_at_zero() {
    let s = Server::start();
    let c = counters(&s);
    for (f, v) in &c {
        assert_eq!(*v, 0, "{f} on a fresh server");
    }
    assert_eq!(c.len(), FIELDS.len());
}

#[test]
fn counts_after_a_known_sequence() {
    let s = Server::start();
    let mut c = s.raw();
    // A value of known size for the byte count.
    let value: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    assert_eq!(show(&c.cmd(&[b"SET", b"big", &value])), "+OK\r\n");
    assert_eq!(run_text(&mut c, &["SET", "str", "abc"]), "+OK\r\n");
    // String pre-images hold the old value itself (not a DUMP of the key).
    let big_len = value.len() as u64;
    let str_len = 3u64;
    let c0 = counters(&s);
    assert!(c0.values().all(|v| *v == 0), "{c0:?}");

    // 1. Committed: writes `big` twice (one pre-image), a new key once, and reads.
    begin(&mut c);
    assert_eq!(counters(&s)["txu_transactions_open"], 1);
    queue(&mut c, &["APPEND", "big", "x"]);
    queue_bytes(&mut c, &[b"SET", b"big", &value]);
    queue(&mut c, &["SET", "new", "v"]);
    queue(&mut c, &["GET", "new"]);
    let r = run_text(&mut c, &["TXU.EXEC"]);
    assert!(r.starts_with("*4\r\n"), "{r:?}");
    let c1 = assert_delta(
        &s,
        &c0,
        &[
            ("txu_transactions_committed", 1),
            ("txu_commands_queued", 4),
            ("txu_commands_executed", 4),
            ("txu_undo_entries_recorded", 2),
            // "big" existed (key + its old value); "new" did not (key only).
            ("txu_preimage_bytes", 3 + big_len + 3),
        ],
        "a committed transaction",
    );

    // 2. Committed, read-only: no pre-images.
    begin(&mut c);
    queue(&mut c, &["GET", "big"]);
    queue(&mut c, &["EXISTS", "new", "str"]);
    queue(&mut c, &["STRLEN", "big"]);
    let r = run_text(&mut c, &["TXU.EXEC"]);
    assert!(r.starts_with("*3\r\n"), "{r:?}");
    let c2 = assert_delta(
        &s,
        &c1,
        &[
            ("txu_transactions_committed", 1),
            ("txu_commands_queued", 3),
            ("txu_commands_executed", 3),
        ],
        "a read-only transaction",
    );

    // 3. Rolled back at command 3 of 4: 3 commands run, 2 pre-images ("str" twice, "n").
    begin(&mut c);
    queue(&mut c, &["APPEND", "str", "d"]);
    queue(&mut c, &["SET", "n", "1"]);
    queue(&mut c, &["LPUSH", "str", "x"]);
    queue(&mut c, &["SET", "never", "1"]);
    let r = run_text(&mut c, &["TXU.EXEC"]);
    assert!(r.starts_with("-ROLLBACK command 3 (LPUSH)"), "{r:?}");
    let c3 = assert_delta(
        &s,
        &c2,
        &[
            ("txu_transactions_rolled_back", 1),
            ("txu_commands_queued", 4),
            ("txu_commands_executed", 3),
            ("txu_undo_entries_recorded", 2),
            ("txu_preimage_bytes", 3 + str_len + 1),
        ],
        "a rolled-back transaction",
    );

    // 4. Discarded with TXU.ROLLBACK.
    begin(&mut c);
    queue(&mut c, &["SET", "d", "1"]);
    queue(&mut c, &["SET", "e", "1"]);
    assert_eq!(run_text(&mut c, &["TXU.ROLLBACK"]), "+OK\r\n");
    let c4 = assert_delta(
        &s,
        &c3,
        &[
            ("txu_transactions_discarded", 1),
            ("txu_commands_queued", 2),
        ],
        "a discarded transaction",
    );

    // 5. Aborted: one command refused, EXEC replies EXECABORT and runs nothing.
    begin(&mut c);
    queue(&mut c, &["SET", "f", "1"]);
    let r = run_text(&mut c, &["TXU.QUEUE", "FLUSHALL"]);
    assert!(r.starts_with("-ERR 'FLUSHALL' is not allowed"), "{r:?}");
    assert_eq!(run_text(&mut c, &["TXU.EXEC"]), EXECABORT);
    let c5 = assert_delta(
        &s,
        &c4,
        &[
            ("txu_transactions_aborted", 1),
            ("txu_commands_queued", 1),
            ("txu_commands_refused", 1),
        ],
        "an aborted transaction",
    );

    // 6. Discarded by closing the connection; two open at once before that.
    let mut d = s.raw();
    let mut e = s.raw();
    begin(&mut d);
    begin(&mut e);
    queue(&mut d, &["SET", "g", "1"]);
    assert_delta(
        &s,
        &c5,
        &[("txu_transactions_open", 2), ("txu_commands_queued", 1)],
        "two open transactions",
    );
    drop(d);
    wait_until(
        "txu_transactions_open drops to 1 after a disconnect",
        Duration::from_secs(10),
        || counters(&s)["txu_transactions_open"] == 1,
    );
    assert_eq!(run_text(&mut e, &["TXU.ROLLBACK"]), "+OK\r\n");
    let c6 = assert_delta(
        &s,
        &c5,
        &[
            ("txu_transactions_discarded", 2),
            ("txu_commands_queued", 1),
        ],
        "a closed connection and a TXU.ROLLBACK",
    );

    // Errors that are not transactions change nothing.
    assert!(run_text(&mut c, &["TXU.EXEC"]).starts_with("-ERR TXU.EXEC without"));
    assert!(run_text(&mut c, &["TXU.ROLLBACK"]).starts_with("-ERR TXU.ROLLBACK without"));
    assert!(run_text(&mut c, &["TXU.QUEUE", "GET", "k"]).starts_with("-ERR TXU.QUEUE without"));
    assert_delta(&s, &c6, &[], "commands without a transaction");

    // The totals of the whole sequence.
    let total = counters(&s);
    let want: BTreeMap<&str, u64> = [
        ("txu_transactions_open", 0),
        ("txu_transactions_committed", 2),
        ("txu_transactions_rolled_back", 1),
        ("txu_transactions_discarded", 3),
        ("txu_transactions_aborted", 1),
        ("txu_commands_queued", 15),
        ("txu_commands_refused", 1),
        ("txu_commands_executed", 10),
        ("txu_undo_entries_recorded", 4),
        ("txu_preimage_bytes", 3 + big_len + 3 + 3 + str_len + 1),
        ("txu_rollback_failures", 0),
    ]
    .into_iter()
    .collect();
    assert_eq!(total, want);
}

#[test]
fn refused_commands_are_counted_once_each() {
    let s = Server::start();
    let mut c = s.raw();
    assert_eq!(
        run_text(&mut c, &["CONFIG", "SET", "txu.max-queued", "2"]),
        "+OK\r\n"
    );
    let before = counters(&s);
    begin(&mut c);
    // Each kind of validation failure: unknown, arity, not allowed, too many.
    assert!(run_text(&mut c, &["TXU.QUEUE", "nosuchcommand"]).starts_with("-ERR unknown command"));
    assert!(run_text(&mut c, &["TXU.QUEUE", "GET"]).starts_with("-ERR wrong number"));
    assert!(run_text(&mut c, &["TXU.QUEUE"]).starts_with("-ERR wrong number"));
    assert!(run_text(&mut c, &["TXU.QUEUE", "BLPOP", "q", "0"]).starts_with("-ERR 'BLPOP'"));
    assert!(run_text(&mut c, &["TXU.EXEC"]).starts_with("-EXECABORT"));
    begin(&mut c);
    queue(&mut c, &["SET", "a", "1"]);
    queue(&mut c, &["SET", "b", "1"]);
    assert!(run_text(&mut c, &["TXU.QUEUE", "SET", "c", "1"]).starts_with("-ERR too many"));
    assert!(run_text(&mut c, &["TXU.EXEC"]).starts_with("-EXECABORT"));
    assert_delta(
        &s,
        &before,
        &[
            ("txu_commands_refused", 5),
            ("txu_commands_queued", 2),
            ("txu_transactions_aborted", 2),
        ],
        "five refusals",
    );
}

/// `MODULE LIST` reports the crate's version as major × 10000 + minor × 100 + patch (0.2.0 →
/// 200), and the load line in the log says both.
#[test]
fn module_list_reports_the_crate_version() {
    let s = Server::start();
    let version = env!("CARGO_PKG_VERSION");
    let parts: Vec<i64> = version
        .split(['.', '-', '+'])
        .take(3)
        .map(|p| p.parse().unwrap_or_else(|_| panic!("version {version}")))
        .collect();
    let expected = parts[0] * 10000 + parts[1] * 100 + parts[2];
    let mut con = s.conn();
    let modules: Vec<Vec<redis::Value>> = redis::cmd("MODULE")
        .arg("LIST")
        .query(&mut con)
        .unwrap_or_else(|e| panic!("MODULE LIST: {e}"));
    let ver = modules
        .iter()
        .find_map(|m| {
            let field = |name: &str| {
                m.chunks(2).find_map(|kv| match kv {
                    [redis::Value::BulkString(k), v] if k == name.as_bytes() => Some(v.clone()),
                    [redis::Value::SimpleString(k), v] if k == name => Some(v.clone()),
                    _ => None,
                })
            };
            let named_txu =
                matches!(field("name"), Some(redis::Value::BulkString(n)) if n == b"txu");
            named_txu.then(|| field("ver")).flatten()
        })
        .unwrap_or_else(|| panic!("txu not in MODULE LIST: {modules:?}"));
    assert_eq!(
        ver,
        redis::Value::Int(expected),
        "MODULE LIST ver of txu {version}"
    );
    let line = format!("txu {version} (MODULE LIST ver {expected}) loaded on");
    assert!(s.log().contains(&line), "the log has no line with {line:?}");
}

/// `COMMAND DOCS` carries each command's arguments (redis-cli's hints): names, types, tokens,
/// optional and multiple flags.
#[test]
fn command_docs_list_the_arguments() {
    let s = Server::start();
    let mut c = s.raw();
    let docs = |c: &mut common::RawConn, cmd: &str| {
        show(&c.cmd(&[b"COMMAND", b"DOCS", cmd.as_bytes()]))
            .replace("\r\n", " ")
            .replace(" +", " ")
    };
    for (cmd, wanted) in [
        (
            "txu.begin",
            &[
                "RETRY",
                "RETAIN",
                "CAPTURE",
                "attempts",
                "pure-token",
                "optional",
            ][..],
        ),
        (
            "txu.run",
            &["RETRY", "RETAIN", "frame", "argc", "block", "multiple"],
        ),
        ("txu.queue", &["command", "arg", "multiple"]),
        ("txu.check", &["oneof", "GE", "NOTNIL", "value"]),
        ("txu.rollback", &["txid", "FORCE"]),
        ("txu.tasks", &["PENDING", "DEAD", "COUNT"]),
        ("txu.retry", &["id"]),
    ] {
        let d = docs(&mut c, cmd);
        assert!(d.contains("arguments"), "{cmd}: no arguments in {d}");
        if cmd == "txu.run" {
            // Its key spec says the keys come from the getkeys-api callback.
            let info = show(&c.cmd(&[b"COMMAND", b"INFO", b"txu.run"])).replace("\r\n", " ");
            for w in ["variable_flags", "unknown", "GETKEYSANDFLAGS"] {
                assert!(info.contains(w), "COMMAND INFO txu.run: no {w:?} in {info}");
            }
        }
        for w in wanted {
            assert!(d.contains(&format!(" {w} ")), "{cmd}: no {w:?} in {d}");
        }
    }
}
