//! Replicas converge: after a mix of committed and rolled-back transactions a replica has
//! exactly the primary's data (`DEBUG DIGEST`, every key's `PEXPIRETIME`, stream metadata),
//! whether it followed the mix live or did a full sync afterwards. On a read-only replica a
//! transaction that writes fails with `READONLY` and changes nothing, while a read-only
//! transaction runs.
//!
//! The mix (also in tests/persistence.rs, which checks the AOF and RDB with it) covers strings,
//! lists, hashes, sets, sorted sets, streams with a consumer group, bitmaps and HyperLogLogs;
//! relative TTLs (`EXPIRE`, `SET EX`, `GETEX EX`, which the server propagates as absolute
//! deadlines); keys created and then rolled back; `INCRBYFLOAT`; `SPOP`, `SRANDMEMBER`,
//! `XAUTOCLAIM` and other commands whose effect is not determined by their arguments; and the
//! rollback of keys that had a TTL (shortened, persisted, deleted, renamed).

mod common;

use common::{show, wait_replica_synced, wait_until, RawConn, Server};
use redis::Value;
use std::collections::BTreeMap;
use std::time::Duration;

// ----- the mix ---------------------------------------------------------------------------------

/// What `TXU.EXEC` must reply for one transaction of the mix.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    /// An array with one reply per queued command.
    Commit,
    /// `ROLLBACK command <at> (<name>) failed: <code> ...`.
    Rollback {
        at: usize,
        name: &'static str,
        code: &'static str,
    },
}

struct Tx {
    cmds: Vec<Vec<String>>,
    outcome: Outcome,
}

fn tx(outcome: Outcome, cmds: &[&[&str]]) -> Tx {
    Tx {
        cmds: cmds
            .iter()
            .map(|c| c.iter().map(|a| a.to_string()).collect())
            .collect(),
        outcome,
    }
}

fn rb(at: usize, name: &'static str, code: &'static str) -> Outcome {
    Outcome::Rollback { at, name, code }
}

/// 25 transactions (13 commit, 12 roll back), meant to run in order on an empty database.
fn mix() -> Vec<Tx> {
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

/// `TXU.BEGIN`, one `TXU.QUEUE` per command (each must reply `QUEUED`), `TXU.EXEC`.
/// Returns the raw `TXU.EXEC` reply.
fn run_tx(raw: &mut RawConn, cmds: &[Vec<String>]) -> Vec<u8> {
    let id = raw.cmd(&[b"TXU.BEGIN"]);
    assert_eq!(id.first(), Some(&b'$'), "TXU.BEGIN: {}", show(&id));
    for c in cmds {
        let mut args: Vec<&[u8]> = vec![b"TXU.QUEUE"];
        args.extend(c.iter().map(|a| a.as_bytes()));
        let r = raw.cmd(&args);
        assert_eq!(r, b"+QUEUED\r\n", "TXU.QUEUE {c:?}: {}", show(&r));
    }
    raw.cmd(&[b"TXU.EXEC"])
}

fn txu_counter(s: &Server, field: &str) -> u64 {
    s.info_field("txu", field)
        .unwrap_or_else(|| panic!("INFO txu has no {field}"))
        .parse()
        .unwrap_or_else(|e| panic!("INFO txu {field} is not a number: {e}"))
}

/// Runs the mix on `s`, checking each transaction's reply, and that a rolled-back one left the
/// server exactly as it was (digest, every key's absolute expiry, stream metadata).
fn run_mix(s: &Server) {
    let committed = txu_counter(s, "txu_transactions_committed");
    let rolled_back = txu_counter(s, "txu_transactions_rolled_back");
    let mut raw = s.raw();
    let txs = mix();
    let (mut commits, mut rollbacks) = (0u64, 0u64);
    for (i, t) in txs.iter().enumerate() {
        let n = i + 1;
        let before = matches!(t.outcome, Outcome::Rollback { .. }).then(|| State::of(s, true));
        let reply = run_tx(&mut raw, &t.cmds);
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
        txu_counter(s, "txu_transactions_committed") - committed,
        commits
    );
    assert_eq!(
        txu_counter(s, "txu_transactions_rolled_back") - rolled_back,
        rollbacks
    );
}

// ----- comparing servers ----------------------------------------------------------------------

/// What two servers holding the same data must agree on.
#[derive(Debug, PartialEq)]
struct State {
    digest: String,
    /// `PEXPIRETIME` of every key (-1 for none).
    expire_at: BTreeMap<String, i64>,
    /// `XINFO STREAM <key> FULL` of every stream, rendered.
    streams: BTreeMap<String, String>,
}

impl State {
    /// `strict`: keep consumers' `seen-time`/`active-time`. Those record when a consumer was
    /// last seen by *this* server: a replica, or a server replaying its AOF, sets them to its
    /// own clock when it applies a propagated XREADGROUP/XAUTOCLAIM (as `XCLAIM`).
    fn of(s: &Server, strict: bool) -> State {
        let mut con = s.conn();
        let digest = s.digest();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
        keys.sort();
        let mut expire_at = BTreeMap::new();
        let mut streams = BTreeMap::new();
        for k in keys {
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut con).unwrap();
            assert_ne!(at, -2, "key {k} vanished while reading the state");
            let ty: String = redis::cmd("TYPE").arg(&k).query(&mut con).unwrap();
            if ty == "stream" {
                let info: Value = redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(&k)
                    .arg("FULL")
                    .query(&mut con)
                    .unwrap();
                streams.insert(k.clone(), render(&info, strict));
            }
            expire_at.insert(k, at);
        }
        State {
            digest,
            expire_at,
            streams,
        }
    }

    fn assert_same(&self, other: &State, what: &str) {
        assert_eq!(
            self.expire_at, other.expire_at,
            "{what}: keys or absolute expiries differ"
        );
        assert_eq!(self.streams, other.streams, "{what}: streams differ");
        assert_eq!(self.digest, other.digest, "{what}: DEBUG DIGEST differs");
    }

    fn keys_with_ttl(&self) -> usize {
        self.expire_at.values().filter(|&&t| t > 0).count()
    }
}

/// A reply as text; in flat `name, value, ...` arrays, the pairs named `seen-time` and
/// `active-time` are left out unless `strict`.
fn render(v: &Value, strict: bool) -> String {
    match v {
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < items.len() {
                let name = match &items[i] {
                    Value::BulkString(b) => Some(b.as_slice()),
                    _ => None,
                };
                if !strict && matches!(name, Some(b"seen-time") | Some(b"active-time")) {
                    i += 2;
                    continue;
                }
                out.push(render(&items[i], strict));
                i += 1;
            }
            format!("[{}]", out.join(", "))
        }
        Value::BulkString(b) => format!("{:?}", show(b)),
        other => format!("{other:?}"),
    }
}

/// The mix must have left something worth comparing.
fn assert_interesting(state: &State) {
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

// ----- tests -----------------------------------------------------------------------------------

#[test]
fn replica_converges_after_committed_and_rolled_back_transactions() {
    let primary = Server::start();
    let replica = primary.start_replica_of();
    run_mix(&primary);
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
    run_mix(&primary);
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
