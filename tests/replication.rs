//! Replicas converge: after a mix of committed and rolled-back transactions a replica has
//! exactly the primary's data (`DEBUG DIGEST`, every key's `PEXPIRETIME`, stream metadata),
//! whether it followed the mix live or did a full sync afterwards. On a read-only replica a
//! write is refused with `READONLY` when it is queued (as `MULTI` does), `RETRY` and `RETAIN`
//! transactions are refused when they begin, and nothing changes; a read-only transaction
//! runs.
//!
//! The mix (`common::mix`, also used by tests/persistence.rs for the AOF and RDB) covers strings,
//! lists, hashes, sets, sorted sets, streams with a consumer group, bitmaps and HyperLogLogs;
//! relative TTLs (`EXPIRE`, `SET EX`, `GETEX EX`, which the server propagates as absolute
//! deadlines); keys created and then rolled back; `INCRBYFLOAT`; `SPOP`, `SRANDMEMBER`,
//! `XAUTOCLAIM` and other commands whose effect is not determined by their arguments; and the
//! rollback of keys that had a TTL (shortened, persisted, deleted, renamed).

mod common;

use common::mix::{assert_interesting, run_mix, run_mix_again, MIX_LEN};
use common::{
    begin, exec_tx, query, queue, queue_reply, run, run_err, show, wait_replica_synced, wait_until,
    Server, State,
};

const READONLY: &str = "-READONLY You can't write against a read only replica.\r\n";
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
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
    run_mix_again(&primary);
    wait_replica_synced(&primary, &replica);
    let p = State::of(&primary, false);
    p.assert_same(&State::of(&replica, false), "replica vs primary");
}

#[test]
fn read_only_replica_refuses_writes_and_runs_reads() {
    let primary = Server::start();
    {
        let mut con = primary.conn();
        query(&mut con, &["SET", "k1", "v1"]);
        query(&mut con, &["SET", "kt", "v", "EX", "1000"]);
        query(&mut con, &["RPUSH", "l", "a", "b"]);
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
    // The write comes after a read and before a create: refused when queued, and the
    // transaction applies nothing.
    begin(&mut raw);
    queue(&mut raw, &["GET", "k1"]);
    assert_eq!(
        show(&queue_reply(&mut raw, &["SET", "kt", "x"])),
        show(READONLY.as_bytes())
    );
    assert_eq!(
        show(&queue_reply(&mut raw, &["LPUSH", "new", "x"])),
        show(READONLY.as_bytes())
    );
    // As with MULTI, later commands still queue; the transaction is already spoiled.
    queue(&mut raw, &["GET", "kt"]);
    assert_eq!(run_err(&mut raw, &["TXU.EXEC"]), EXECABORT);
    // The write is the first command, on a key that does not exist.
    begin(&mut raw);
    assert_eq!(
        show(&queue_reply(&mut raw, &["INCR", "counter"])),
        show(READONLY.as_bytes())
    );
    assert_eq!(run_err(&mut raw, &["TXU.EXEC"]), EXECABORT);
    // RETRY and RETAIN would keep a task or an undo log on the replica alone (gone at the next
    // resync): refused when the transaction begins, even before any write.
    for opts in [&["RETRY"][..], &["RETRY", "3"], &["RETAIN", "1000"]] {
        let mut args = vec!["TXU.BEGIN"];
        args.extend_from_slice(opts);
        assert_eq!(
            show(&run(&mut raw, &args)),
            show(READONLY.as_bytes()),
            "{opts:?}"
        );
    }
    assert_eq!(replica.info_u64("txu", "txu_tasks_pending"), 0);
    assert_eq!(replica.info_u64("txu", "txu_undo_logs_retained"), 0);
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
        want.extend(run(&mut raw, c));
    }
    assert_eq!(show(&exec_tx(&mut raw, &[], &reads).1), show(&want));
    assert_eq!(replica.info_u64("txu", "txu_transactions_committed"), 1);
    assert_eq!(replica.info_u64("txu", "txu_transactions_aborted"), 2);
    assert_eq!(replica.info_u64("txu", "txu_transactions_rolled_back"), 0);

    // Replication still works and the replica still matches the primary.
    query(&mut primary.conn(), &["SET", "k2", "v2"]);
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
    query(&mut pcon, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    query(&mut pcon, &["SET", "keep", "v"]);
    query(&mut pcon, &["SET", "gone", "v", "PX", "1"]);
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

    let mut raw = replica.raw();
    begin(&mut raw);
    assert_eq!(
        show(&queue_reply(&mut raw, &["SET", "gone", "x"])),
        show(READONLY.as_bytes())
    );
    assert_eq!(run_err(&mut raw, &["TXU.EXEC"]), EXECABORT);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut rcon).unwrap();
    assert_eq!(
        dbsize, 2,
        "a refused transaction on a read-only replica deleted a key the primary still has"
    );
    assert_eq!(replica.digest(), digest, "the replica's data changed");
    assert_eq!(replica.digest(), primary.digest(), "replica diverged");
}
