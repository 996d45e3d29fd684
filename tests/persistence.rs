//! A server restarted from its AOF, or from an RDB file, has exactly the data it had: the same
//! `DEBUG DIGEST`, the same absolute expiry (`PEXPIRETIME`) on every key and the same stream
//! metadata, after a mix of committed and rolled-back transactions. A rolled-back transaction
//! reaches the AOF as its writes followed by their undo, inside one MULTI/EXEC.
//!
//! Cases: AOF with and without the RDB preamble, each after a graceful restart (with an AOF
//! rewrite in the middle of the mix, so a base file and an incremental file are both replayed)
//! and after SIGKILL with `appendfsync always`; an RDB written by `SAVE`; `DEBUG RELOAD`.
//!
//! The mix is `common::mix`, shared with tests/replication.rs.

mod common;

use common::mix::{assert_interesting, run_mix, run_mix_again, MIX_LEN};
use common::{rewrite_aof, Server, State};

// ----- tests -----------------------------------------------------------------------------------

fn aof_graceful_restart(preamble: &str) {
    let mut s = Server::start_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", preamble]);
    run_mix(&s, 0..12);
    rewrite_aof(&s);
    run_mix(&s, 12..MIX_LEN);
    let before = State::of(&s, false);
    assert_interesting(&before);
    s.restart();
    assert_eq!(
        s.info_field("persistence", "aof_enabled").as_deref(),
        Some("1")
    );
    before.assert_same(
        &State::of(&s, false),
        "after a graceful restart from the AOF",
    );
}

fn aof_kill9_restart(preamble: &str) {
    let mut s = Server::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-use-rdb-preamble",
        preamble,
    ]);
    run_mix(&s, 0..MIX_LEN);
    let before = State::of(&s, false);
    assert_interesting(&before);
    s.kill9_and_restart();
    before.assert_same(
        &State::of(&s, false),
        "after SIGKILL and a restart from the AOF",
    );
}

#[test]
fn aof_with_rdb_preamble_graceful_restart() {
    aof_graceful_restart("yes");
}

#[test]
fn aof_without_rdb_preamble_graceful_restart() {
    aof_graceful_restart("no");
}

#[test]
fn aof_with_rdb_preamble_kill9_restart() {
    aof_kill9_restart("yes");
}

#[test]
fn aof_without_rdb_preamble_kill9_restart() {
    aof_kill9_restart("no");
}

#[test]
fn aof_replay_then_more_transactions_then_restart() {
    // A server restarted from its AOF keeps appending to it: the mix run a second time over
    // the replayed data (other outcomes, other pre-images) survives another restart.
    let mut s = Server::start_with(&["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]);
    run_mix(&s, 0..MIX_LEN);
    s.restart();
    let rollbacks = run_mix_again(&s);
    assert!(rollbacks > 0, "the second run rolled nothing back");
    let before = State::of(&s, false);
    s.restart();
    before.assert_same(&State::of(&s, false), "after the second restart");
}

#[test]
fn rdb_save_then_restart() {
    // The harness starts servers with `--save ""`: only the explicit SAVE writes dump.rdb, and
    // the graceful SHUTDOWN does not.
    let mut s = Server::start_with(&["--save", "", "--appendonly", "no"]);
    run_mix(&s, 0..MIX_LEN);
    let r: String = redis::cmd("SAVE").query(&mut s.conn()).unwrap();
    assert_eq!(r, "OK");
    assert!(s.dir().join("dump.rdb").is_file(), "SAVE wrote no dump.rdb");
    let before = State::of(&s, true);
    assert_interesting(&before);
    s.restart();
    before.assert_same(&State::of(&s, true), "after a restart from the RDB");
}

#[test]
fn debug_reload_keeps_the_data() {
    let s = Server::start();
    run_mix(&s, 0..MIX_LEN);
    let before = State::of(&s, true);
    assert_interesting(&before);
    let r: String = redis::cmd("DEBUG")
        .arg("RELOAD")
        .query(&mut s.conn())
        .unwrap();
    assert_eq!(r, "OK");
    before.assert_same(&State::of(&s, true), "after DEBUG RELOAD");
}
