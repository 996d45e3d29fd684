//! A bug in txu (a panic) in the middle of `TXU.EXEC`, after some writes ran, fails that
//! command and rolls back what ran: the server stays up and the data is as before. The
//! test-faults build makes the next transaction panic just before a chosen command.

mod common;

use common::{assert_rolled_back, query, show, txu, Server, State};

#[test]
fn a_panic_after_writes_rolls_them_back_and_the_server_stays_up() {
    let s = Server::start_with_fault_module(&[]);
    let mut admin = s.conn();
    query(&mut admin, &["SET", "s", "old", "EX", "1000"]);
    query(&mut admin, &["HSET", "h", "a", "1", "b", "2"]);
    query(&mut admin, &["RPUSH", "l", "x", "y"]);
    let before = State::of(&s, true);
    let mut c = s.raw();
    query(&mut admin, &["TXU._FAULT", "PANIC", "4"]);
    let r = txu(
        &mut c,
        &["SET s new", "HDEL h a", "LPOP l", "SADD set m", "INCR n"],
    );
    let cause = assert_rolled_back(&r, 4, "SADD");
    assert_eq!(cause, "ERR txu internal error");
    State::of(&s, true).assert_same(&before, "after the panic");
    assert_eq!(show(&c.cmd(&[b"PING"])), "+PONG\r\n");
    // The fault fired once: the same transaction now commits.
    let r = txu(&mut c, &["SET s new", "SADD set m"]);
    assert_eq!(show(&r), "*2\r\n+OK\r\n:1\r\n");
    assert_eq!(s.info_u64("txu", "txu_transactions_rolled_back"), 1);
}
