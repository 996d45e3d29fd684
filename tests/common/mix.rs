//! The mix shared by tests/replication.rs and tests/persistence.rs: 25 transactions over
//! every type (13 commit, 12 roll back at various positions), run with every reply checked
//! (a rolled-back one must leave the [`State`] as it was).

use super::{exec_tx, show, Server, State};

/// Transactions in [`mix`].
pub const MIX_LEN: usize = 25;

// ----- the mix ---------------------------------------------------------------------------------

/// What `TXU.EXEC` must reply for one transaction of the mix.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// An array with one reply per queued command.
    Commit,
    /// `ROLLBACK command <at> (<name>) failed: <code> ...`.
    Rollback {
        at: usize,
        name: &'static str,
        code: &'static str,
    },
}

pub struct Tx {
    pub cmds: Vec<Vec<String>>,
    pub outcome: Outcome,
}

pub fn tx(outcome: Outcome, cmds: &[&[&str]]) -> Tx {
    Tx {
        cmds: cmds
            .iter()
            .map(|c| c.iter().map(|a| a.to_string()).collect())
            .collect(),
        outcome,
    }
}

pub fn rb(at: usize, name: &'static str, code: &'static str) -> Outcome {
    Outcome::Rollback { at, name, code }
}

/// 25 transactions (13 commit, 12 roll back), meant to run in order on an empty database.
pub fn mix() -> Vec<Tx> {
    use Outcome::Commit;
    let big = "x".repeat(1000);
    vec![
        // 1. One key of each type.
        tx(
            Commit,
            &[
                &["SET", "s:a", "1"],
                &["SET", "s:b", "hello"],
                &["RPUSH", "l:a", "a", "b", "c", "d"],
                &["HSET", "h:a", "f1", "v1", "f2", "v2"],
                &[
                    "SADD", "set:a", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
                ],
                &["ZADD", "z:a", "1", "one", "2", "two", "3", "three"],
                &["XADD", "x:a", "*", "f", "v"],
            ],
        ),
        // 2. Relative TTLs, committed.
        tx(
            Commit,
            &[
                &["EXPIRE", "s:a", "1000"],
                &["PEXPIRE", "l:a", "500000"],
                &["SET", "s:ttl", "v", "EX", "2000"],
                &["SET", "s:kept", "v"],
                &["EXPIRE", "h:a", "3000"],
            ],
        ),
        // 3. A key created by INCRBYFLOAT, then rolled back.
        tx(
            rb(3, "LPUSH", "WRONGTYPE"),
            &[
                &["INCRBYFLOAT", "s:f", "1.5"],
                &["APPEND", "s:b", " world"],
                &["LPUSH", "s:b", "x"],
            ],
        ),
        // 4. INCRBYFLOAT committed, also on a key with a TTL (KEEPTTL on the wire).
        tx(
            Commit,
            &[
                &["INCRBYFLOAT", "s:f", "2.25"],
                &["INCRBYFLOAT", "s:f", "0.1"],
                &["INCRBYFLOAT", "s:a", "0.5"],
            ],
        ),
        // 5. Rollback of keys that had a TTL: one shortened, one persisted.
        tx(
            rb(3, "INCR", "ERR"),
            &[
                &["EXPIRE", "s:a", "5"],
                &["PERSIST", "l:a"],
                &["INCR", "s:b"],
            ],
        ),
        // 6. Random pops, committed (replicated as SREM of what was popped).
        tx(
            Commit,
            &[
                &["SPOP", "set:a"],
                &["SRANDMEMBER", "set:a", "2"],
                &["SPOP", "set:a", "2"],
                &["SADD", "set:a", "m9"],
            ],
        ),
        // 7. A random pop, rolled back.
        tx(
            rb(3, "HSET", "WRONGTYPE"),
            &[
                &["SPOP", "set:a"],
                &["SADD", "set:a", "new"],
                &["HSET", "set:a", "f", "v"],
            ],
        ),
        // 8. Lists, committed.
        tx(
            Commit,
            &[
                &["LPUSH", "l:a", "z"],
                &["LMOVE", "l:a", "l:b", "LEFT", "RIGHT"],
                &["LTRIM", "l:a", "0", "2"],
                &["RPUSH", "l:b", "y"],
            ],
        ),
        // 9. A list created, a list with a TTL deleted, a string changed: all undone.
        tx(
            rb(4, "ZADD", "WRONGTYPE"),
            &[
                &["RPUSH", "l:new", "1", "2", "3"],
                &["DEL", "l:a"],
                &["SET", "s:kept", "changed"],
                &["ZADD", "s:kept", "1", "x"],
            ],
        ),
        // 10. Hashes, committed.
        tx(
            Commit,
            &[
                &["HINCRBY", "h:a", "n", "5"],
                &["HINCRBYFLOAT", "h:a", "fl", "1.25"],
                &["HDEL", "h:a", "f1"],
                &["HSETNX", "h:a", "f3", "v3"],
            ],
        ),
        // 11. The first command fails (its key, which has a TTL, is put back as it was).
        tx(
            rb(1, "INCR", "WRONGTYPE"),
            &[&["INCR", "h:a"], &["SET", "s:never", "x"]],
        ),
        // 12. Sorted sets, committed.
        tx(
            Commit,
            &[
                &["ZINCRBY", "z:a", "1.5", "two"],
                &["ZADD", "z:a", "10", "ten"],
                &["ZREM", "z:a", "one"],
                &["ZUNIONSTORE", "z:u", "2", "z:a", "z:a"],
                &["EXPIRE", "z:u", "4000"],
            ],
        ),
        // 13. Sorted sets, rolled back.
        tx(
            rb(3, "ZADD", "ERR"),
            &[
                &["ZPOPMIN", "z:a"],
                &["ZADD", "z:new", "1", "a"],
                &["ZADD", "z:a", "notanumber", "x"],
            ],
        ),
        // 14. A stream with a consumer group, committed.
        tx(
            Commit,
            &[
                &["XADD", "x:a", "*", "f2", "v2"],
                &["XGROUP", "CREATE", "x:a", "g", "0"],
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g",
                    "c1",
                    "COUNT",
                    "1",
                    "STREAMS",
                    "x:a",
                    ">",
                ],
                &["XADD", "x:a", "MAXLEN", "10", "*", "f3", "v3"],
            ],
        ),
        // 15. The stream, its group and its PEL changed, then put back.
        tx(
            rb(4, "XGROUP CREATE", "BUSYGROUP"),
            &[
                &["XADD", "x:a", "*", "f4", "v4"],
                &["XREADGROUP", "GROUP", "g", "c2", "STREAMS", "x:a", ">"],
                &["XTRIM", "x:a", "MAXLEN", "0"],
                &["XGROUP", "CREATE", "x:a", "g", "$"],
            ],
        ),
        // 16. More relative TTLs, committed.
        tx(
            Commit,
            &[
                &["SET", "s:exp", "v"],
                &["EXPIRE", "s:exp", "300"],
                &["GETEX", "s:kept", "EX", "700"],
                &["PERSIST", "s:ttl"],
                &["SETEX", "s:setex", "100", "v"],
                &["PSETEX", "s:psetex", "100000", "v"],
            ],
        ),
        // 17. A key with a TTL shortened and deleted, then rolled back.
        tx(
            rb(3, "INCR", "ERR"),
            &[
                &["PEXPIRE", "s:exp", "10"],
                &["DEL", "s:exp"],
                &["INCR", "s:b"],
            ],
        ),
        // 18. Strings, bitmaps and HyperLogLogs, committed.
        tx(
            Commit,
            &[
                &["SET", "s:big", &big],
                &["SETRANGE", "s:big", "10", "xyz"],
                &["SETBIT", "bm:a", "7", "1"],
                &["PFADD", "hll:a", "a", "b", "c"],
                &["EXPIRE", "bm:a", "6000"],
            ],
        ),
        // 19. RENAME of a key with a TTL and *STORE / SMOVE destinations, rolled back.
        tx(
            rb(5, "LPOP", "WRONGTYPE"),
            &[
                &["RENAME", "s:kept", "s:renamed"],
                &["SADD", "set:b", "a", "b"],
                &["SINTERSTORE", "set:c", "set:a", "set:b"],
                &["SMOVE", "set:a", "set:b", "m9"],
                &["LPOP", "s:b"],
            ],
        ),
        // 20. HyperLogLog and bitmap, rolled back.
        tx(
            rb(3, "INCRBY", "ERR"),
            &[
                &["PFADD", "hll:a", "d", "e"],
                &["SETBIT", "bm:a", "100", "1"],
                &["INCRBY", "s:f", "1"],
            ],
        ),
        // 21. Lists again, committed.
        tx(
            Commit,
            &[
                &["RPOPLPUSH", "l:b", "l:b"],
                &["LSET", "l:b", "0", "first"],
                &["EXPIRE", "l:b", "900"],
                &["LINSERT", "l:b", "BEFORE", "first", "zero"],
            ],
        ),
        // 22. A TTL added to a key without one, then rolled back.
        tx(
            rb(2, "SETRANGE", "ERR"),
            &[&["EXPIRE", "set:a", "50"], &["SETRANGE", "s:a", "-1", "x"]],
        ),
        // 23. Reads only (random ones included).
        tx(
            Commit,
            &[
                &["GET", "s:a"],
                &["LRANGE", "l:b", "0", "-1"],
                &["HGETALL", "h:a"],
                &["SRANDMEMBER", "set:a"],
                &["ZRANGE", "z:a", "0", "-1", "WITHSCORES"],
                &["XLEN", "x:a"],
                &["HRANDFIELD", "h:a"],
            ],
        ),
        // 24. Keys of every type created (some with a TTL), then rolled back.
        tx(
            rb(7, "XADD", "ERR"),
            &[
                &["XADD", "x:new", "*", "a", "1"],
                &["HSET", "h:new", "f", "v"],
                &["EXPIRE", "h:new", "100"],
                &["SADD", "set:new", "a"],
                &["ZADD", "z:new2", "1", "a"],
                &["SET", "s:new", "v", "PX", "100000"],
                &["XADD", "x:a", "1-1", "f", "v"],
            ],
        ),
        // 25. A last mix, committed: claims, random pops, a float, a TTL.
        tx(
            Commit,
            &[
                &["SET", "s:new", "v", "EX", "5000"],
                &["XAUTOCLAIM", "x:a", "g", "c3", "0", "0-0"],
                &["SPOP", "set:a"],
                &["ZRANDMEMBER", "z:a", "2"],
                &["HINCRBYFLOAT", "h:a", "fl", "0.5"],
                &["GETDEL", "s:psetex"],
            ],
        ),
    ]
}

// ----- driving transactions ------------------------------------------------------------------

/// Runs transactions `range` of the mix on `s`, checking each transaction's reply, and that a
/// rolled-back one left the server exactly as it was (digest, absolute expiries, streams).
pub fn run_mix(s: &Server, range: std::ops::Range<usize>) {
    let committed = s.info_u64("txu", "txu_transactions_committed");
    let rolled_back = s.info_u64("txu", "txu_transactions_rolled_back");
    let mut raw = s.raw();
    let txs = mix();
    assert_eq!(txs.len(), MIX_LEN);
    assert!(range.start < range.end && range.end <= txs.len());
    let (mut commits, mut rollbacks) = (0u64, 0u64);
    for (i, t) in txs.iter().enumerate().take(range.end).skip(range.start) {
        let n = i + 1;
        let before = matches!(t.outcome, Outcome::Rollback { .. }).then(|| State::of(s, true));
        let (_, reply) = exec_tx(&mut raw, &[], &t.cmds);
        match t.outcome {
            Outcome::Commit => {
                commits += 1;
                let head = format!("*{}\r\n", t.cmds.len());
                assert!(
                    reply.starts_with(head.as_bytes()),
                    "transaction {n} should commit, TXU.EXEC replied {}",
                    show(&reply)
                );
            }
            Outcome::Rollback { at, name, code } => {
                rollbacks += 1;
                let head = format!("-ROLLBACK command {at} ({name}) failed: {code} ");
                assert!(
                    reply.starts_with(head.as_bytes()),
                    "transaction {n}: expected a reply starting with {head:?}, got {}",
                    show(&reply)
                );
                let before = before.expect("state taken before a rollback");
                before.assert_same(&State::of(s, true), &format!("after rollback {n}"));
            }
        }
    }
    assert_eq!(
        s.info_u64("txu", "txu_transactions_committed") - committed,
        commits
    );
    assert_eq!(
        s.info_u64("txu", "txu_transactions_rolled_back") - rolled_back,
        rollbacks
    );
}

/// Runs the whole mix once more over what an earlier run left (other outcomes, other
/// pre-images): each transaction must commit or roll back. Returns how many rolled back.
pub fn run_mix_again(s: &Server) -> usize {
    let mut raw = s.raw();
    let mut rollbacks = 0;
    for (i, t) in mix().iter().enumerate() {
        let (_, reply) = exec_tx(&mut raw, &[], &t.cmds);
        if reply.starts_with(b"-ROLLBACK command ") {
            rollbacks += 1;
        } else {
            assert!(
                reply.starts_with(b"*"),
                "second run, transaction {}: {}",
                i + 1,
                show(&reply)
            );
        }
    }
    rollbacks
}

/// The mix must have left something worth comparing.
pub fn assert_interesting(state: &State) {
    assert!(
        state.expire_at.len() >= 15,
        "the mix left too few keys: {:?}",
        state.expire_at.keys()
    );
    assert!(
        state.keys_with_ttl() >= 8,
        "the mix left too few keys with a TTL: {:?}",
        state.expire_at
    );
    for k in ["s:f", "l:b", "h:a", "set:a", "z:a", "z:u", "x:a", "hll:a"] {
        assert!(state.expire_at.contains_key(k), "{k} missing after the mix");
    }
    for k in ["l:new", "s:never", "x:new", "set:new", "s:renamed", "set:c"] {
        assert!(
            !state.expire_at.contains_key(k),
            "{k} was created by a rolled-back transaction and must be gone"
        );
    }
    assert_eq!(
        state.streams.len(),
        1,
        "x:a is the only stream: {:?}",
        state.streams
    );
}
