//! A server restarted from its AOF, or from an RDB file, has exactly the data it had: the same
//! `DEBUG DIGEST`, the same absolute expiry (`PEXPIRETIME`) on every key and the same stream
//! metadata, after a mix of committed and rolled-back transactions. A rolled-back transaction
//! reaches the AOF as its writes followed by their undo, inside one MULTI/EXEC.
//!
//! Cases: AOF with and without the RDB preamble, each after a graceful restart (with an AOF
//! rewrite in the middle of the mix, so a base file and an incremental file are both replayed)
//! and after SIGKILL with `appendfsync always`; an RDB written by `SAVE`; `DEBUG RELOAD`.
//!
//! The mix is the one of tests/replication.rs (kept in step by hand: each test file is its
//! own crate).

mod common;

use common::{show, wait_until, RawConn, Server};
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

/// Runs transactions `range` of the mix on `s`, checking each transaction's reply, and that a
/// rolled-back one left the server exactly as it was (digest, absolute expiries, streams).
fn run_mix(s: &Server, range: std::ops::Range<usize>) {
    let committed = txu_counter(s, "txu_transactions_committed");
    let rolled_back = txu_counter(s, "txu_transactions_rolled_back");
    let mut raw = s.raw();
    let txs = mix();
    assert_eq!(txs.len(), MIX_LEN);
    assert!(range.start < range.end && range.end <= txs.len());
    let (mut commits, mut rollbacks) = (0u64, 0u64);
    for (i, t) in txs.iter().enumerate().take(range.end).skip(range.start) {
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

const MIX_LEN: usize = 25;

/// `BGREWRITEAOF`, then wait until no rewrite is running or scheduled, and check it succeeded.
fn rewrite_aof(s: &Server) {
    let before: u64 = s
        .info_field("persistence", "aof_rewrites")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let r: String = redis::cmd("BGREWRITEAOF").query(&mut s.conn()).unwrap();
    assert!(r.contains("rewriting"), "BGREWRITEAOF: {r}");
    wait_until("the AOF rewrite to finish", Duration::from_secs(20), || {
        let p = s.info("persistence");
        p.get("aof_rewrite_in_progress").map(String::as_str) == Some("0")
            && p.get("aof_rewrite_scheduled").map(String::as_str) == Some("0")
    });
    let p = s.info("persistence");
    assert_eq!(
        p.get("aof_last_bgrewrite_status").map(String::as_str),
        Some("ok")
    );
    if let Some(after) = p.get("aof_rewrites").and_then(|v| v.parse::<u64>().ok()) {
        assert!(after > before, "no AOF rewrite happened");
    }
}

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
    let mut raw = s.raw();
    let mut rollbacks = 0;
    for (i, t) in mix().iter().enumerate() {
        let reply = run_tx(&mut raw, &t.cmds);
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
