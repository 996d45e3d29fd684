//! Clients blocked on a key (BLPOP, BZPOPMIN, XREAD/XREADGROUP BLOCK) never see a write that a
//! rolled-back transaction made and undid, and they are woken by a committed one.
//!
//! How "still blocked" is proven without sleeping: the server serves blocked clients right
//! after the command that made their key ready, before it answers anyone else. So once
//! `TXU.EXEC` has replied, `blocked_clients` tells whether the blocked client was served, and
//! the first reply the blocked client gets after a later plain write is decisive: had it been
//! served the rolled-back value, that value would be its first reply.

mod common;

use common::{assert_rolled_back, bulk, run_line, show, txu, wait_until, RawConn, Server};
use std::time::Duration;

const BLOCK_DEADLINE: Duration = Duration::from_secs(10);

fn blocked_clients(s: &Server) -> u64 {
    s.info_u64("clients", "blocked_clients")
}

/// Sends a blocking command on a new connection and waits until the server shows
/// `expected` blocked clients.
fn block(s: &Server, args: &[&[u8]], expected: u64) -> RawConn {
    let mut b = s.raw();
    b.send(args);
    wait_until(
        &format!(
            "{expected} blocked client(s) after {}",
            show(&args.concat())
        ),
        BLOCK_DEADLINE,
        || blocked_clients(s) == expected,
    );
    b
}

/// The reply of `XREAD`/`XREADGROUP` delivering one entry `id` with one field to a reader.
fn one_entry(key: &str, id: &str, field: &str, value: &str) -> String {
    format!(
        "*1\r\n*2\r\n{}*1\r\n*2\r\n{}*2\r\n{}{}",
        bulk(key),
        bulk(id),
        bulk(field),
        bulk(value)
    )
}

#[test]
fn rolled_back_lpush_does_not_wake_blpop() {
    let s = Server::start();
    let mut a = s.raw();
    run_line(&mut a, "SET bad notanumber");
    let mut b = block(&s, &[b"BLPOP", b"q", b"0"], 1);

    let reply = txu(&mut a, &["LPUSH q x", "INCR bad"]);
    assert_rolled_back(&reply, 2, "INCR");
    assert_eq!(blocked_clients(&s), 1, "B must still be blocked after EXEC");
    assert_eq!(run_line(&mut a, "EXISTS q"), ":0\r\n");

    assert_eq!(run_line(&mut a, "LPUSH q real"), ":1\r\n");
    let got = show(&b.read_reply());
    assert_eq!(
        got,
        format!("*2\r\n{}{}", bulk("q"), bulk("real")),
        "B's first reply must be the real value, never the rolled-back one"
    );
    assert_eq!(run_line(&mut a, "EXISTS q"), ":0\r\n");
    wait_until("B unblocked", BLOCK_DEADLINE, || blocked_clients(&s) == 0);
}

#[test]
fn committed_lpush_wakes_blpop_after_the_whole_transaction() {
    let s = Server::start();
    let mut a = s.raw();
    let mut b = block(&s, &[b"BLPOP", b"q", b"0"], 1);

    let reply = txu(&mut a, &["LPUSH q x", "LPUSH q y", "GET unrelated"]);
    assert_eq!(show(&reply), "*3\r\n:1\r\n:2\r\n$-1\r\n");
    // B is served once the transaction is over: it pops the head, y; x stays.
    let got = show(&b.read_reply());
    assert_eq!(got, format!("*2\r\n{}{}", bulk("q"), bulk("y")));
    assert_eq!(
        run_line(&mut a, "LRANGE q 0 -1"),
        format!("*1\r\n{}", bulk("x"))
    );
    wait_until("B unblocked", BLOCK_DEADLINE, || blocked_clients(&s) == 0);
}

#[test]
fn committed_single_lpush_wakes_blpop_with_the_value() {
    let s = Server::start();
    let mut a = s.raw();
    let mut b = block(&s, &[b"BLPOP", b"q", b"0"], 1);
    assert_eq!(show(&txu(&mut a, &["LPUSH q x"])), "*1\r\n:1\r\n");
    assert_eq!(
        show(&b.read_reply()),
        format!("*2\r\n{}{}", bulk("q"), bulk("x"))
    );
    assert_eq!(run_line(&mut a, "EXISTS q"), ":0\r\n");
}

/// The key a blocked client waits on is the destination of a rolled-back LMOVE: the client
/// is not woken, and the source list is back as it was.
#[test]
fn rolled_back_lmove_into_the_key_does_not_wake_blpop() {
    let s = Server::start();
    let mut a = s.raw();
    run_line(&mut a, "RPUSH src s1 s2");
    run_line(&mut a, "SET bad notanumber");
    let mut b = block(&s, &[b"BLPOP", b"q", b"0"], 1);

    let reply = txu(
        &mut a,
        &["LMOVE src q LEFT RIGHT", "RPOPLPUSH src q", "INCR bad"],
    );
    assert_rolled_back(&reply, 3, "INCR");
    assert_eq!(blocked_clients(&s), 1);
    assert_eq!(run_line(&mut a, "EXISTS q"), ":0\r\n");
    assert_eq!(
        run_line(&mut a, "LRANGE src 0 -1"),
        format!("*2\r\n{}{}", bulk("s1"), bulk("s2"))
    );

    run_line(&mut a, "RPUSH q real");
    assert_eq!(
        show(&b.read_reply()),
        format!("*2\r\n{}{}", bulk("q"), bulk("real"))
    );
}

/// A client blocked on two keys, both written by the rolled-back transaction.
#[test]
fn rolled_back_pushes_to_several_watched_keys_wake_nobody() {
    let s = Server::start();
    let mut a = s.raw();
    run_line(&mut a, "SET bad notanumber");
    let mut b = block(&s, &[b"BLPOP", b"q1", b"q2", b"0"], 1);
    let mut c = block(&s, &[b"BRPOP", b"q2", b"0"], 2);

    let reply = txu(
        &mut a,
        &["RPUSH q2 a", "LPUSH q1 b", "RPUSH q2 c", "LPUSH bad x"],
    );
    assert_rolled_back(&reply, 4, "LPUSH");
    assert_eq!(blocked_clients(&s), 2);
    assert_eq!(run_line(&mut a, "EXISTS q1 q2"), ":0\r\n");

    // One real element for each: B (blocked first on q2) gets the first, C the second.
    run_line(&mut a, "RPUSH q2 real1");
    assert_eq!(
        show(&b.read_reply()),
        format!("*2\r\n{}{}", bulk("q2"), bulk("real1"))
    );
    run_line(&mut a, "RPUSH q2 real2");
    assert_eq!(
        show(&c.read_reply()),
        format!("*2\r\n{}{}", bulk("q2"), bulk("real2"))
    );
    wait_until("all unblocked", BLOCK_DEADLINE, || blocked_clients(&s) == 0);
}

#[test]
fn rolled_back_zadd_does_not_wake_bzpopmin() {
    let s = Server::start();
    let mut a = s.raw();
    run_line(&mut a, "SET bad notanumber");
    let mut b = block(&s, &[b"BZPOPMIN", b"z", b"0"], 1);

    let reply = txu(&mut a, &["ZADD z 1 rolled", "INCR bad"]);
    assert_rolled_back(&reply, 2, "INCR");
    assert_eq!(blocked_clients(&s), 1);
    assert_eq!(run_line(&mut a, "EXISTS z"), ":0\r\n");

    run_line(&mut a, "ZADD z 2 real");
    assert_eq!(
        show(&b.read_reply()),
        format!("*3\r\n{}{}{}", bulk("z"), bulk("real"), bulk("2"))
    );
}

/// XREAD BLOCK on an existing stream: a rolled-back XADD (the stream is put back with
/// RESTORE) delivers nothing; the next real entry is the first thing the reader gets.
#[test]
fn rolled_back_xadd_does_not_wake_xread() {
    let s = Server::start();
    let mut a = s.raw();
    run_line(&mut a, "XADD s 1-1 f old");
    run_line(&mut a, "SET bad notanumber");
    let info_before = run_line(&mut a, "XINFO STREAM s FULL");
    let mut b = block(&s, &[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"], 1);

    let reply = txu(&mut a, &["XADD s 5-1 f rolled", "INCR bad"]);
    assert_rolled_back(&reply, 2, "INCR");
    assert_eq!(blocked_clients(&s), 1);
    assert_eq!(run_line(&mut a, "XINFO STREAM s FULL"), info_before);

    run_line(&mut a, "XADD s 6-1 f real");
    let want = one_entry("s", "6-1", "f", "real");
    assert_eq!(show(&b.read_reply()), want);
}

/// `XINFO STREAM FULL` with every consumer's `seen-time` value masked.
///
/// Redis 7.2+ and Valkey re-run a blocked XREADGROUP whenever its stream key is signalled
/// (here by the rolled-back XADD and by the RESTORE that undoes it); the re-run finds nothing
/// new and blocks again, but refreshes the consumer's seen-time. A plain `RESTORE … REPLACE`
/// or `MULTI XADD XDEL EXEC` does the same, so it is the blocked reader's own doing, not a
/// leftover of the transaction. Everything else must be exactly as before.
fn xinfo_full_masking_seen_time(raw: &mut RawConn, key: &str) -> String {
    let full = run_line(raw, &format!("XINFO STREAM {key} FULL"));
    let marker = "$9\r\nseen-time\r\n";
    let mut out = String::new();
    let mut rest = full.as_str();
    while let Some(i) = rest.find(marker) {
        let after = i + marker.len();
        out.push_str(&rest[..after]);
        let end = rest[after..].find("\r\n").expect("seen-time value") + after + 2;
        assert!(rest[after..].starts_with(':'), "seen-time is an integer");
        out.push_str(":<masked>\r\n");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// XREADGROUP BLOCK with `>`: a rolled-back XADD neither delivers the entry nor disturbs the
/// blocked reader (the stream and its group are replaced by their restored copies).
#[test]
fn rolled_back_xadd_does_not_wake_xreadgroup() {
    let s = Server::start();
    let mut a = s.raw();
    run_line(&mut a, "XADD s 1-1 f old");
    run_line(&mut a, "XGROUP CREATE s g $");
    run_line(&mut a, "SET bad notanumber");
    let mut b = block(
        &s,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"reader",
            b"BLOCK",
            b"0",
            b"STREAMS",
            b"s",
            b">",
        ],
        1,
    );
    let info_before = xinfo_full_masking_seen_time(&mut a, "s");

    let reply = txu(&mut a, &["XADD s 5-1 f rolled", "INCR bad"]);
    assert_rolled_back(&reply, 2, "INCR");
    assert_eq!(blocked_clients(&s), 1);
    assert_eq!(xinfo_full_masking_seen_time(&mut a, "s"), info_before);

    run_line(&mut a, "XADD s 6-1 f real");
    let want = one_entry("s", "6-1", "f", "real");
    assert_eq!(show(&b.read_reply()), want);
    // Only the real entry is pending for the reader.
    let pending = run_line(&mut a, "XPENDING s g - + 10");
    assert!(
        pending.contains("6-1") && !pending.contains("5-1"),
        "XPENDING: {pending:?}"
    );
}

#[test]
fn committed_xadd_wakes_xread() {
    let s = Server::start();
    let mut a = s.raw();
    run_line(&mut a, "XADD s 1-1 f old");
    let mut b = block(&s, &[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"], 1);
    assert_eq!(
        show(&txu(&mut a, &["XADD s 2-1 f new"])),
        format!("*1\r\n{}", bulk("2-1"))
    );
    let want = one_entry("s", "2-1", "f", "new");
    assert_eq!(show(&b.read_reply()), want);
}
