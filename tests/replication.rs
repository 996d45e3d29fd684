//! Replicas converge: after a mix of committed and rolled-back transactions a replica has
//! exactly the primary's data (`DEBUG DIGEST`, every key's `PEXPIRETIME`, stream metadata),
//! whether it followed the mix live or did a full sync afterwards. On a read-only replica a
//! transaction that writes fails with `READONLY` and changes nothing, while a read-only
//! transaction runs.
//!
//! The mix (`common::mix`, also used by tests/persistence.rs for the AOF and RDB) covers strings,
//! lists, hashes, sets, sorted sets, streams with a consumer group, bitmaps and HyperLogLogs;
//! relative TTLs (`EXPIRE`, `SET EX`, `GETEX EX`, which the server propagates as absolute
//! deadlines); keys created and then rolled back; `INCRBYFLOAT`; `SPOP`, `SRANDMEMBER`,
//! `XAUTOCLAIM` and other commands whose effect is not determined by their arguments; and the
//! rollback of keys that had a TTL (shortened, persisted, deleted, renamed).

mod common;

use common::mix::{assert_interesting, mix, run_mix, run_tx, txu_counter, State, MIX_LEN};
use common::{show, wait_replica_synced, wait_until, RawConn, Server};
use std::time::Duration;

// ----- tests -----------------------------------------------------------------------------------

#[test]
fn replica_converges_after_committed_and_rolled_back_transactions() {
    let primary = Server::start();
    let replica = primary.start_replica_of();
    run_mix(&primary, 0..MIX_LEN);
    wait_replica_synced(&primary, &replica);

    let p = State::of(&primary, false);
    assert_interesting(&p);
    p.assert_same(&State::of(&replica, false), "live replica vs primary");

    // A replica that joins afterwards gets the data by full sync.
    let late = primary.start_replica_of();
    p.assert_same(&State::of(&late, false), "late replica vs primary");
    // The replicas were only reading: the primary still holds the same.
    p.assert_same(&State::of(&primary, false), "primary after the comparisons");
}

#[test]
fn replica_converges_when_the_mix_runs_twice_over_existing_data() {
    // The second run meets keys that already exist (other outcomes, other pre-images): every
    // transaction still replicates to the same data.
    let primary = Server::start();
    let replica = primary.start_replica_of();
    run_mix(&primary, 0..MIX_LEN);
    let mut raw = primary.raw();
    for (i, t) in mix().iter().enumerate() {
        let reply = run_tx(&mut raw, &t.cmds);
        assert!(
            reply.starts_with(b"*") || reply.starts_with(b"-ROLLBACK command "),
            "second run, transaction {}: {}",
            i + 1,
            show(&reply)
        );
    }
    wait_replica_synced(&primary, &replica);
    let p = State::of(&primary, false);
    p.assert_same(&State::of(&replica, false), "replica vs primary");
}

/// Raw bytes of `cmd` run directly on `raw`.
fn direct(raw: &mut RawConn, cmd: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
    raw.cmd(&args)
}

#[test]
fn read_only_replica_refuses_writes_and_runs_reads() {
    let primary = Server::start();
    {
        let mut con = primary.conn();
        redis::cmd("SET")
            .arg("k1")
            .arg("v1")
            .exec(&mut con)
            .unwrap();
        redis::cmd("SET")
            .arg("kt")
            .arg("v")
            .arg("EX")
            .arg("1000")
            .exec(&mut con)
            .unwrap();
        redis::cmd("RPUSH")
            .arg("l")
            .arg("a")
            .arg("b")
            .exec(&mut con)
            .unwrap();
    }
    let replica = primary.start_replica_of();
    assert_eq!(
        replica.info_field("replication", "role").as_deref(),
        Some("slave")
    );
    let before = State::of(&replica, true);
    assert_eq!(before.expire_at.len(), 3, "replica synced: {before:?}");
    before.assert_same(&State::of(&primary, true), "replica vs primary before");

    let mut raw = replica.raw();
    // The write comes after a read and before a create.
    let r = run_tx(
        &mut raw,
        &[
            vec!["GET".into(), "k1".into()],
            vec!["SET".into(), "kt".into(), "x".into()],
            vec!["LPUSH".into(), "new".into(), "x".into()],
        ],
    );
    assert!(
        r.starts_with(b"-ROLLBACK command 2 (SET) failed: READONLY "),
        "{}",
        show(&r)
    );
    // The write is the first command, on a key that does not exist.
    let r = run_tx(&mut raw, &[vec!["INCR".into(), "counter".into()]]);
    assert!(
        r.starts_with(b"-ROLLBACK command 1 (INCR) failed: READONLY "),
        "{}",
        show(&r)
    );
    before.assert_same(&State::of(&replica, true), "replica after refused writes");

    // A read-only transaction runs and replies as the commands do directly.
    let reads: [&[&str]; 4] = [
        &["GET", "k1"],
        &["LRANGE", "l", "0", "-1"],
        &["EXISTS", "kt", "counter"],
        &["STRLEN", "kt"],
    ];
    let mut want = format!("*{}\r\n", reads.len()).into_bytes();
    for c in reads {
        want.extend(direct(&mut raw, c));
    }
    let cmds: Vec<Vec<String>> = reads
        .iter()
        .map(|c| c.iter().map(|a| a.to_string()).collect())
        .collect();
    assert_eq!(show(&run_tx(&mut raw, &cmds)), show(&want));
    assert_eq!(txu_counter(&replica, "txu_transactions_committed"), 1);
    assert_eq!(txu_counter(&replica, "txu_transactions_rolled_back"), 2);

    // Replication still works and the replica still matches the primary.
    redis::cmd("SET")
        .arg("k2")
        .arg("v2")
        .exec(&mut primary.conn())
        .unwrap();
    wait_replica_synced(&primary, &replica);
    State::of(&primary, true).assert_same(&State::of(&replica, true), "replica vs primary after");
}

#[test]
fn refused_write_on_a_replica_leaves_a_logically_expired_key_alone() {
    // A replica keeps a key whose TTL has passed until the primary's DEL arrives (it reports
    // the key as missing but still holds it). Here the primary does not expire keys actively,
    // and nobody touches the key on the primary, so both servers keep it.
    let primary = Server::start();
    let mut pcon = primary.conn();
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg("0")
        .exec(&mut pcon)
        .unwrap();
    redis::cmd("SET")
        .arg("keep")
        .arg("v")
        .exec(&mut pcon)
        .unwrap();
    redis::cmd("SET")
        .arg("gone")
        .arg("v")
        .arg("PX")
        .arg("1")
        .exec(&mut pcon)
        .unwrap();
    let replica = primary.start_replica_of();
    let mut rcon = replica.conn();
    wait_until(
        "the replica sees `gone` as expired",
        Duration::from_secs(5),
        || {
            redis::cmd("EXISTS")
                .arg("gone")
                .query::<i64>(&mut rcon)
                .unwrap()
                == 0
        },
    );
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut rcon).unwrap();
    assert_eq!(dbsize, 2, "the replica still holds the expired key");
    let digest = replica.digest();
    assert_eq!(digest, primary.digest());

    let r = run_tx(
        &mut replica.raw(),
        &[vec!["SET".into(), "gone".into(), "x".into()]],
    );
    assert!(
        r.starts_with(b"-ROLLBACK command 1 (SET) failed: READONLY "),
        "{}",
        show(&r)
    );
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut rcon).unwrap();
    assert_eq!(
        dbsize, 2,
        "a refused transaction on a read-only replica deleted a key the primary still has"
    );
    assert_eq!(replica.digest(), digest, "the replica's data changed");
    assert_eq!(replica.digest(), primary.digest(), "replica diverged");
}
