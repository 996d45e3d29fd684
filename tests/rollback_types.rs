//! Rollback is exact for every data type: after a rolled-back `TXU.EXEC` the dataset is what it
//! was just before — `DEBUG DIGEST`, and per key its type, `DEBUG DIGEST-VALUE`, contents,
//! absolute expiry (`PEXPIRETIME`) and, for streams, `XINFO STREAM FULL` (which `DEBUG DIGEST`
//! does not cover: groups, consumers, PEL, last id, counters). Keys the transaction created are
//! gone again; destinations of RENAME, COPY, SORT … STORE, the *STORE commands, BITOP, PFMERGE,
//! LMOVE and SMOVE are restored too.
//!
//! Each type family is one test. A family is some setup data (small and big encodings, keys with
//! and without a TTL), a list of writes, and a failing command. Every family test also commits
//! the same writes afterwards and checks that each key the writes are meant to change really
//! changed, so a rollback test can never pass because its writes did nothing.
//!
//! `committed_transaction_equals_direct_execution` checks the other direction: a transaction
//! that succeeds leaves exactly the effects (and replies) of running its commands directly on a
//! second server without the module.
//!
//! The pre-image tests check `txu_undo_entries_recorded` (one pre-image per written key per
//! transaction, none for reads).

mod common;

use common::{
    array_items, assert_rolled_back, int, query_line, run, show, text, txu, txu_run, Server,
};
use redis::{Connection, Value};
use std::collections::BTreeSet;

// ----- small helpers -----------------------------------------------------------------------

fn bytes_list(v: Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) | Value::Set(items) => items
            .into_iter()
            .map(|i| match i {
                Value::BulkString(b) => b,
                Value::SimpleString(s) => s.into_bytes(),
                Value::Int(n) => n.to_string().into_bytes(),
                other => panic!("expected a string element, got {other:?}"),
            })
            .collect(),
        Value::Map(pairs) => pairs
            .into_iter()
            .flat_map(|(k, v)| [k, v])
            .map(|i| match i {
                Value::BulkString(b) => b,
                other => panic!("expected a string element, got {other:?}"),
            })
            .collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The server's clock in ms (`TIME`).
fn server_now_ms(con: &mut Connection) -> i64 {
    let parts = bytes_list(query_line(con, "TIME"));
    let secs: i64 = String::from_utf8_lossy(&parts[0]).parse().unwrap();
    let micros: i64 = String::from_utf8_lossy(&parts[1]).parse().unwrap();
    secs * 1000 + micros / 1000
}

fn preimages_captured(s: &Server) -> u64 {
    s.info_u64("txu", "txu_undo_entries_recorded")
}

// ----- snapshots ---------------------------------------------------------------------------

/// Everything observable about one key.
#[derive(Debug, Clone, PartialEq)]
struct KeyState {
    key: String,
    type_name: String,
    /// `PEXPIRETIME`: -2 missing, -1 no expiry, else the absolute deadline in ms.
    pexpiretime: i64,
    digest_value: String,
    /// Contents in a readable form; sets and hashes sorted (RESTORE may change the encoding,
    /// and with it the iteration order).
    content: Vec<String>,
    /// `XINFO STREAM FULL COUNT 0` for streams.
    stream_full: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    digest: String,
    keys: Vec<KeyState>,
}

fn key_state(con: &mut Connection, key: &str) -> KeyState {
    let type_name = text(&query_line(con, &format!("TYPE {key}")));
    let pexpiretime = int(&query_line(con, &format!("PEXPIRETIME {key}")));
    let digest_value = match query_line(con, &format!("DEBUG DIGEST-VALUE {key}")) {
        Value::Array(mut v) if v.len() == 1 => match v.remove(0) {
            Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            Value::SimpleString(s) => s,
            other => panic!("DEBUG DIGEST-VALUE {key}: {other:?}"),
        },
        other => panic!("DEBUG DIGEST-VALUE {key}: {other:?}"),
    };
    let mut stream_full = None;
    let content: Vec<String> = match type_name.as_str() {
        "none" => Vec::new(),
        "string" => {
            let v = match query_line(con, &format!("GET {key}")) {
                Value::BulkString(b) => b,
                other => panic!("GET {key}: {other:?}"),
            };
            vec![hex(&v)]
        }
        "list" => bytes_list(query_line(con, &format!("LRANGE {key} 0 -1")))
            .iter()
            .map(|b| show(b))
            .collect(),
        "set" => {
            let set: BTreeSet<String> = bytes_list(query_line(con, &format!("SMEMBERS {key}")))
                .iter()
                .map(|b| show(b))
                .collect();
            set.into_iter().collect()
        }
        "hash" => {
            let flat = bytes_list(query_line(con, &format!("HGETALL {key}")));
            let set: BTreeSet<String> = flat
                .chunks(2)
                .map(|p| format!("{}={}", show(&p[0]), show(&p[1])))
                .collect();
            set.into_iter().collect()
        }
        "zset" => {
            let flat = bytes_list(query_line(con, &format!("ZRANGE {key} 0 -1 WITHSCORES")));
            flat.chunks(2)
                .map(|p| format!("{}={}", show(&p[0]), show(&p[1])))
                .collect()
        }
        "stream" => {
            stream_full = Some(query_line(con, &format!("XINFO STREAM {key} FULL COUNT 0")));
            vec![format!(
                "{:?}",
                query_line(con, &format!("XRANGE {key} - +"))
            )]
        }
        other => panic!("key {key} has an unexpected type {other}"),
    };
    KeyState {
        key: key.to_string(),
        type_name,
        pexpiretime,
        digest_value,
        content,
        stream_full,
    }
}

fn snapshot(s: &Server, keys: &[&str]) -> Snapshot {
    let mut con = s.conn();
    Snapshot {
        digest: s.digest(),
        keys: keys.iter().map(|k| key_state(&mut con, k)).collect(),
    }
}

/// Asserts two snapshots are equal, key by key first so that a failure names the key.
fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    for (b, a) in before.keys.iter().zip(&after.keys) {
        assert_eq!(b.type_name, a.type_name, "{what}: TYPE of {}", b.key);
        assert_eq!(
            b.pexpiretime, a.pexpiretime,
            "{what}: PEXPIRETIME of {} (absolute expiry must be kept, not re-extended)",
            b.key
        );
        assert_eq!(b.content, a.content, "{what}: contents of {}", b.key);
        assert_eq!(
            b.digest_value, a.digest_value,
            "{what}: DEBUG DIGEST-VALUE of {}",
            b.key
        );
        assert_eq!(
            b.stream_full, a.stream_full,
            "{what}: XINFO STREAM FULL of {}",
            b.key
        );
    }
    assert_eq!(before.digest, after.digest, "{what}: DEBUG DIGEST");
}

// ----- transactions ------------------------------------------------------------------------

/// The number of elements of an array reply, panicking on anything else.
fn array_len(reply: &[u8]) -> usize {
    array_items(reply)
        .unwrap_or_else(|| panic!("expected an array reply, got {:?}", show(reply)))
        .len()
}

// ----- families ----------------------------------------------------------------------------

/// One type family: setup data, the writes a transaction makes, and the command that fails.
struct Family {
    name: &'static str,
    setup: Vec<String>,
    /// Existing keys the writes change (each must really change when the writes commit).
    touched: Vec<&'static str>,
    /// Existing keys the writes only read (they must not change either way).
    untouched: Vec<&'static str>,
    /// Keys that do not exist before and that the writes create.
    created: Vec<&'static str>,
    /// Deterministic writes (also replayed on a second server in the commit test).
    writes: Vec<String>,
    /// Writes with a random outcome (SPOP): only in the rolled-back transaction.
    random_writes: Vec<String>,
    /// The command that fails, and its upper-case name as the error shows it.
    fail: String,
    fail_name: &'static str,
    /// Commands queued after the failing one: they never run, their keys never appear.
    after_fail: Vec<String>,
    after_fail_keys: Vec<&'static str>,
}

impl Family {
    fn all_keys(&self) -> Vec<&'static str> {
        let mut v = self.touched.clone();
        v.extend(&self.untouched);
        v.extend(&self.created);
        v.extend(&self.after_fail_keys);
        v.push("txu:bad");
        v
    }
}

/// A list of `n` numbered words, `prefix00000 …`.
fn numbered(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{prefix}{i:05}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn strings_family(t: i64) -> Family {
    Family {
        name: "strings",
        setup: vec![
            "SET str:plain hello".into(),
            format!("SET str:ttl value PXAT {}", t + 1),
            format!("SET str:num 10 PXAT {}", t + 2),
            "SET str:float 1.5".into(),
            // 5005 bytes: raw encoding, not embstr.
            "SETRANGE str:big 5000 tail".into(),
            "SET str:int 12345".into(),
            format!("SET str:gone bye PXAT {}", t + 3),
            format!("SET str:getex-ttl g PXAT {}", t + 4),
            "SET str:del1 d1".into(),
            format!("SET str:del2 d2 PXAT {}", t + 5),
            "SET str:rsrc source-value".into(),
            format!("SET str:rdst old-dest PXAT {}", t + 6),
            format!("SET str:copysrc copy-me PXAT {}", t + 7),
            "SET str:copydst will-be-replaced".into(),
            format!("SET str:expire-past e PXAT {}", t + 8),
            "SET str:lcs-a ohmytext".into(),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec![
            "str:plain",
            "str:ttl",
            "str:num",
            "str:float",
            "str:big",
            "str:int",
            "str:gone",
            "str:getex-ttl",
            "str:del1",
            "str:del2",
            "str:rsrc",
            "str:rdst",
            "str:copydst",
            "str:expire-past",
        ],
        untouched: vec!["str:copysrc", "str:lcs-a"],
        created: vec![
            "str:new1", "str:new2", "str:new3", "str:new4", "str:new5", "str:new6", "str:new7",
            "str:new8",
        ],
        writes: vec![
            "APPEND str:plain -world".into(),
            "SETRANGE str:big 10 abc".into(),
            "APPEND str:big more".into(),
            "INCRBY str:num 5".into(),
            "INCRBYFLOAT str:float 2.25".into(),
            "EXPIRE str:plain 100".into(),
            "PERSIST str:ttl".into(),
            "SET str:ttl changed".into(),
            format!("PEXPIREAT str:float {}", t + 100),
            "PEXPIRE str:num 5000000".into(),
            "GETDEL str:gone".into(),
            "GETEX str:int EX 500".into(),
            "GETEX str:getex-ttl PERSIST".into(),
            "DEL str:del1".into(),
            "UNLINK str:del2".into(),
            "RENAME str:rsrc str:rdst".into(),
            "COPY str:copysrc str:copydst REPLACE".into(),
            "PEXPIREAT str:expire-past 1".into(),
            "SET str:new1 fresh".into(),
            "SETEX str:new2 100 fresh2".into(),
            "MSET str:new3 a str:plain overwritten".into(),
            "MSETNX str:new4 1 str:new5 2".into(),
            "SETNX str:new6 x".into(),
            "INCR str:new7".into(),
            "COPY str:copysrc str:new8".into(),
            "DECR str:num".into(),
            "LCS str:lcs-a str:plain".into(),
            "GET str:plain".into(),
        ],
        random_writes: vec![],
        fail: "INCR txu:bad".into(),
        fail_name: "INCR",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn bitmaps_family(t: i64) -> Family {
    Family {
        name: "bitmaps",
        setup: vec![
            "SETBIT bm:a 7 1".into(),
            "SETBIT bm:a 100 1".into(),
            "SETBIT bm:big 100000 1".into(),
            format!("PEXPIREAT bm:big {}", t + 10),
            "SETBIT bm:b 3 1".into(),
            "BITFIELD bm:f SET u8 0 200".into(),
            format!("SET bm:dst olddest PXAT {}", t + 11),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec!["bm:a", "bm:big", "bm:b", "bm:f", "bm:dst"],
        untouched: vec![],
        created: vec!["bm:new-and", "bm:new-not", "bm:new-bit", "bm:new-bf"],
        writes: vec![
            "SETBIT bm:a 7 0".into(),
            "SETBIT bm:a 200000 1".into(),
            "SETBIT bm:big 5 1".into(),
            "BITFIELD bm:f SET u8 0 17 INCRBY u8 8 300 OVERFLOW SAT INCRBY u4 16 100".into(),
            "BITFIELD bm:b INCRBY i5 100 1".into(),
            "BITOP AND bm:new-and bm:a bm:b".into(),
            "BITOP OR bm:dst bm:a bm:big".into(),
            "BITOP NOT bm:new-not bm:b".into(),
            "SETBIT bm:new-bit 42 1".into(),
            "BITFIELD bm:new-bf SET i16 0 -5".into(),
            "BITCOUNT bm:a".into(),
        ],
        random_writes: vec![],
        // A WRONGTYPE failure on a key the transaction already changed.
        fail: "LPUSH bm:a x".into(),
        fail_name: "LPUSH",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn lists_family(t: i64) -> Family {
    Family {
        name: "lists",
        setup: vec![
            "RPUSH list:small a b c d e b".into(),
            format!("PEXPIREAT list:small {}", t + 20),
            // 1000 elements: a quicklist, not a listpack.
            format!("RPUSH list:big {}", numbered("element-", 1000)),
            "RPUSH list:nums 5 3 9 1 7".into(),
            "RPUSH list:dst x y".into(),
            format!("PEXPIREAT list:dst {}", t + 21),
            "RPUSH list:sorted-dst old".into(),
            format!("PEXPIREAT list:sorted-dst {}", t + 22),
            "RPUSH list:rsrc r1 r2".into(),
            // A RENAME destination of another type, with a TTL.
            "HSET list:rdst f v".into(),
            format!("PEXPIREAT list:rdst {}", t + 23),
            "RPUSH list:one only".into(),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec![
            "list:small",
            "list:big",
            "list:nums",
            "list:dst",
            "list:sorted-dst",
            "list:rsrc",
            "list:rdst",
            "list:one",
        ],
        untouched: vec![],
        created: vec!["list:new-moved", "list:new-sorted", "list:new-pushed"],
        writes: vec![
            "LPUSH list:small z".into(),
            "RPUSH list:small y".into(),
            "LPOP list:small".into(),
            "RPOP list:small 2".into(),
            "LSET list:small 0 first".into(),
            "LINSERT list:small BEFORE c inserted".into(),
            "LREM list:small 0 b".into(),
            "LTRIM list:big 10 500".into(),
            "LREM list:big 1 element-00300".into(),
            "LINSERT list:big AFTER element-00400 ins".into(),
            "LSET list:big -1 last".into(),
            "LMOVE list:small list:dst LEFT RIGHT".into(),
            "LMOVE list:big list:new-moved RIGHT LEFT".into(),
            "RPOPLPUSH list:big list:dst".into(),
            "LMPOP 2 list:nothing list:nums LEFT COUNT 2".into(),
            "SORT list:nums STORE list:new-sorted".into(),
            "SORT list:nums DESC STORE list:sorted-dst".into(),
            "RENAME list:rsrc list:rdst".into(),
            "LPOP list:one".into(),
            "RPUSHX list:dst tail".into(),
            "EXPIRE list:big 1000".into(),
            "LPUSH list:new-pushed p".into(),
            "LRANGE list:small 0 -1".into(),
        ],
        random_writes: vec![],
        fail: "INCR txu:bad".into(),
        fail_name: "INCR",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn hashes_family(t: i64) -> Family {
    let big: Vec<String> = (0..1000).map(|i| format!("f{i:04} {i}")).collect();
    Family {
        name: "hashes",
        setup: vec![
            "HSET hash:small a 1 b 2 c 3.5".into(),
            format!("PEXPIREAT hash:small {}", t + 30),
            // 1000 fields: a hashtable, not a listpack.
            format!("HSET hash:big {}", big.join(" ")),
            "HSET hash:plain x 1".into(),
            "HSET hash:del a 1".into(),
            format!("PEXPIREAT hash:del {}", t + 31),
            "HSET hash:rdst z 9".into(),
            format!("PEXPIREAT hash:rdst {}", t + 32),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec![
            "hash:small",
            "hash:big",
            "hash:plain",
            "hash:del",
            "hash:rdst",
        ],
        untouched: vec![],
        created: vec!["hash:new", "hash:new2", "hash:new-copy"],
        writes: vec![
            "HSET hash:small a 10 d 4".into(),
            "HDEL hash:small b".into(),
            "HINCRBY hash:small a 5".into(),
            "HINCRBYFLOAT hash:small c 1.25".into(),
            "HINCRBYFLOAT hash:big f0001 2.5".into(),
            "HDEL hash:big f0002 f0003".into(),
            "HSET hash:big newfield newvalue".into(),
            "HSETNX hash:big brandnew yes".into(),
            "HMSET hash:plain y 2".into(),
            "EXPIRE hash:plain 500".into(),
            "DEL hash:del".into(),
            "RENAME hash:plain hash:rdst".into(),
            "HSET hash:new a b".into(),
            "HINCRBY hash:new2 cnt 1".into(),
            "COPY hash:small hash:new-copy".into(),
            "HGETALL hash:small".into(),
        ],
        random_writes: vec![],
        // The failing command is a hash command on a key the transaction already changed.
        fail: "HINCRBY hash:big f0005 notanumber".into(),
        fail_name: "HINCRBY",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn sets_family(t: i64) -> Family {
    Family {
        name: "sets",
        setup: vec![
            // Integers only: an intset.
            "SADD set:int 1 2 3 4 5".into(),
            format!("PEXPIREAT set:int {}", t + 40),
            "SADD set:small a b c d".into(),
            // 1000 members: a hashtable.
            format!("SADD set:big {}", numbered("m", 1000)),
            "SADD set:src x y z".into(),
            "SADD set:dst q".into(),
            format!("PEXPIREAT set:dst {}", t + 41),
            "SADD set:store-dst old".into(),
            format!("PEXPIREAT set:store-dst {}", t + 42),
            "SADD set:single only".into(),
            "SADD set:rnd r1 r2 r3 r4 r5 r6".into(),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec![
            "set:int",
            "set:small",
            "set:big",
            "set:src",
            "set:dst",
            "set:store-dst",
            "set:single",
        ],
        untouched: vec!["set:rnd"],
        created: vec!["set:new-moved", "set:new-union", "set:new-inter"],
        writes: vec![
            "SADD set:int 6 notint".into(),
            "SREM set:int 1".into(),
            "SREM set:small a".into(),
            "SADD set:big extra".into(),
            "SREM set:big m00000 m00001".into(),
            "SMOVE set:src set:dst x".into(),
            "SMOVE set:src set:new-moved y".into(),
            "SUNIONSTORE set:new-union set:small set:src".into(),
            "SINTERSTORE set:new-inter set:big set:small set:big".into(),
            "SADD set:new-inter placeholder".into(),
            "SDIFFSTORE set:store-dst set:big set:small".into(),
            "SPOP set:single".into(),
            "EXPIRE set:small 900".into(),
            "SCARD set:small".into(),
            "SMISMEMBER set:small a b c".into(),
        ],
        // Random pops, only in the rolled-back run (set:rnd is then touched, and restored).
        random_writes: vec![
            "SPOP set:big".into(),
            "SPOP set:int 2".into(),
            "SPOP set:rnd 3".into(),
        ],
        fail: "SADD txu:bad x".into(),
        fail_name: "SADD",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn zsets_family(t: i64) -> Family {
    let big: Vec<String> = (0..1000).map(|i| format!("{i} z{i:04}")).collect();
    Family {
        name: "sorted sets",
        setup: vec![
            "ZADD zset:small 1 a 2 b 3 c 4 d 5 e".into(),
            format!("PEXPIREAT zset:small {}", t + 50),
            // 1000 members: a skiplist, not a listpack.
            format!("ZADD zset:big {}", big.join(" ")),
            "ZADD zset:lex 0 a 0 b 0 c 0 d".into(),
            "ZADD zset:dst 1 old".into(),
            format!("PEXPIREAT zset:dst {}", t + 51),
            "ZADD zset:src 10 s1 20 s2".into(),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec!["zset:small", "zset:big", "zset:lex", "zset:dst", "zset:src"],
        untouched: vec![],
        created: vec!["zset:new-union", "zset:new-range", "zset:new-diff"],
        writes: vec![
            "ZADD zset:small 10 f".into(),
            "ZINCRBY zset:small 2.5 a".into(),
            "ZREM zset:small b".into(),
            "ZPOPMIN zset:small".into(),
            "ZPOPMAX zset:small 2".into(),
            "ZADD zset:small GT CH 100 c".into(),
            "ZREMRANGEBYSCORE zset:big 100 199".into(),
            "ZREMRANGEBYRANK zset:big 0 9".into(),
            "ZPOPMIN zset:big 3".into(),
            "ZINCRBY zset:big 1000 z0500".into(),
            "ZREMRANGEBYLEX zset:lex [b [c".into(),
            "ZUNIONSTORE zset:new-union 2 zset:small zset:src WEIGHTS 1 2".into(),
            // Empty intersection: the existing destination (with a TTL) is deleted.
            "ZINTERSTORE zset:dst 2 zset:big zset:src".into(),
            "ZRANGESTORE zset:new-range zset:big 0 4".into(),
            "ZDIFFSTORE zset:new-diff 2 zset:big zset:small".into(),
            "ZMPOP 2 zset:none zset:src MIN COUNT 1".into(),
            "ZRANGE zset:small 0 -1 WITHSCORES".into(),
        ],
        random_writes: vec![],
        fail: "INCR txu:bad".into(),
        fail_name: "INCR",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn streams_family(t: i64) -> Family {
    let mut setup: Vec<String> = (1..=5)
        .map(|i| format!("XADD stream:s {i}-1 f v{i}"))
        .collect();
    setup.extend([
        "XGROUP CREATE stream:s g1 0".to_string(),
        // No BLOCK: creates pending entries 1-1, 2-1, 3-1 for alice.
        "XREADGROUP GROUP g1 alice COUNT 3 STREAMS stream:s >".into(),
        "XGROUP CREATE stream:s g2 $".into(),
        format!("PEXPIREAT stream:s {}", t + 60),
    ]);
    // 1000 entries (many listpack nodes), a group with 100 pending entries.
    setup.extend((1..=1000).map(|i| format!("XADD stream:big {i}-1 n {i}")));
    setup.extend([
        "XGROUP CREATE stream:big gb 0".to_string(),
        "XREADGROUP GROUP gb bob COUNT 100 STREAMS stream:big >".into(),
        "XADD stream:other 1-1 a 1".into(),
        "XGROUP CREATE stream:other go 0".into(),
        "XREADGROUP GROUP go olga STREAMS stream:other >".into(),
        format!("PEXPIREAT stream:other {}", t + 61),
        "SET txu:bad notanumber".into(),
    ]);
    Family {
        name: "streams",
        setup,
        touched: vec!["stream:s", "stream:big", "stream:other"],
        untouched: vec![],
        created: vec!["stream:new", "stream:new2"],
        writes: vec![
            "XADD stream:s 6-1 f v6".into(),
            "XADD stream:s MAXLEN 10 7-1 f v7".into(),
            "XDEL stream:s 4-1".into(),
            "XACK stream:s g1 1-1".into(),
            "XCLAIM stream:s g1 bob 0 2-1".into(),
            "XAUTOCLAIM stream:s g1 carol 0 0-0 COUNT 1".into(),
            "XREADGROUP GROUP g2 dave COUNT 2 STREAMS stream:s >".into(),
            "XGROUP CREATE stream:s g3 0".into(),
            "XGROUP CREATECONSUMER stream:s g1 erin".into(),
            "XGROUP DELCONSUMER stream:s g1 alice".into(),
            "XGROUP SETID stream:s g2 0".into(),
            "XSETID stream:s 100-1".into(),
            "XTRIM stream:big MAXLEN 500".into(),
            "XDEL stream:big 600-1".into(),
            "XACK stream:big gb 1-1 2-1".into(),
            "XGROUP DESTROY stream:other go".into(),
            "XADD stream:new 1-1 a b".into(),
            "XGROUP CREATE stream:new2 g 0 MKSTREAM".into(),
            "XRANGE stream:s - +".into(),
        ],
        random_writes: vec![],
        // XADD with an id below the top item fails, on a key the transaction changed.
        fail: "XADD stream:s 1-1 f again".into(),
        fail_name: "XADD",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn hll_family(t: i64) -> Family {
    Family {
        name: "hyperloglogs",
        setup: vec![
            "PFADD hll:sparse a b c".into(),
            format!("PEXPIREAT hll:sparse {}", t + 70),
            // 3000 elements: the dense representation.
            format!("PFADD hll:dense {}", numbered("e", 3000)),
            "PFADD hll:dst x".into(),
            format!("PEXPIREAT hll:dst {}", t + 71),
            // Make every cached cardinality valid, so that reading does not change the bytes.
            "PFCOUNT hll:sparse".into(),
            "PFCOUNT hll:dense".into(),
            "PFCOUNT hll:dst".into(),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec!["hll:sparse", "hll:dense", "hll:dst"],
        untouched: vec![],
        created: vec!["hll:new-merge", "hll:new"],
        writes: vec![
            "PFADD hll:sparse d e f".into(),
            "PFADD hll:dense new1 new2 new3".into(),
            "PFMERGE hll:dst hll:sparse hll:dense".into(),
            "PFMERGE hll:new-merge hll:sparse".into(),
            "PFADD hll:new a".into(),
            "EXPIRE hll:dense 700".into(),
        ],
        random_writes: vec![],
        fail: "INCR txu:bad".into(),
        fail_name: "INCR",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

fn geo_family(t: i64) -> Family {
    // A 40 x 25 grid of points around (0, 0).
    let grid: Vec<String> = (0..1000)
        .map(|i| {
            let lon = (i % 40) as f64 * 0.5 - 10.0;
            let lat = (i / 40) as f64 * 0.5 - 6.0;
            format!("{lon} {lat} p{i:04}")
        })
        .collect();
    Family {
        name: "geo",
        setup: vec![
            "GEOADD geo:cities 13.361389 38.115556 Palermo 15.087269 37.502669 Catania".into(),
            format!("PEXPIREAT geo:cities {}", t + 80),
            format!("GEOADD geo:big {}", grid.join(" ")),
            "GEOADD geo:dst 0 0 old".into(),
            format!("PEXPIREAT geo:dst {}", t + 81),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec!["geo:cities", "geo:big", "geo:dst"],
        untouched: vec![],
        created: vec!["geo:new-search", "geo:new-radius", "geo:new-dist"],
        writes: vec![
            "GEOADD geo:cities 12.496366 41.902782 Rome".into(),
            "GEOADD geo:cities XX CH 13.0 38.0 Palermo".into(),
            "ZREM geo:cities Catania".into(),
            "GEOSEARCHSTORE geo:new-search geo:big FROMLONLAT 0 0 BYRADIUS 2000 km ASC".into(),
            "GEOSEARCHSTORE geo:dst geo:cities FROMMEMBER Rome BYRADIUS 1000 km STOREDIST".into(),
            "GEORADIUS geo:big 0 0 500 km STORE geo:new-radius".into(),
            "GEORADIUSBYMEMBER geo:cities Rome 800 km STOREDIST geo:new-dist".into(),
            "GEOADD geo:big 1 1 extra".into(),
            "GEOPOS geo:cities Rome".into(),
        ],
        random_writes: vec![],
        fail: "GEOADD geo:cities 200 100 bad".into(),
        fail_name: "GEOADD",
        after_fail: vec![],
        after_fail_keys: vec![],
    }
}

/// Whole-key operations across types: RENAME over an existing destination of another type,
/// RENAMENX, COPY REPLACE, DEL/UNLINK of big keys, EXPIRE options. The failing command is in
/// the middle: the commands queued after it never run.
fn keyspace_family(t: i64) -> Family {
    Family {
        name: "keyspace",
        setup: vec![
            format!("RPUSH ks:list {}", numbered("l", 1000)),
            format!("PEXPIREAT ks:list {}", t + 90),
            "ZADD ks:zset 1 a 2 b".into(),
            format!("PEXPIREAT ks:zset {}", t + 91),
            "XADD ks:stream 1-1 f v".into(),
            "XGROUP CREATE ks:stream g 0".into(),
            format!("PEXPIREAT ks:stream {}", t + 92),
            "HSET ks:hash f v".into(),
            format!("SADD ks:bigset {}", numbered("s", 1000)),
            format!("PEXPIREAT ks:bigset {}", t + 93),
            "SET ks:nx-src v".into(),
            "SET ks:gt v".into(),
            format!("PEXPIREAT ks:gt {}", t + 94),
            "SET ks:lt v".into(),
            format!("PEXPIREAT ks:lt {}", t + 95),
            "SET ks:nottl v".into(),
            "SET ks:expireat v".into(),
            "SET txu:bad notanumber".into(),
        ],
        touched: vec![
            "ks:list",
            "ks:zset",
            "ks:stream",
            "ks:hash",
            "ks:bigset",
            "ks:nx-src",
            "ks:gt",
            "ks:lt",
            "ks:nottl",
            "ks:expireat",
        ],
        untouched: vec![],
        created: vec!["ks:nx-dst", "ks:list-copy"],
        writes: vec![
            // A list (with TTL) renamed over a sorted set (with another TTL).
            "RENAME ks:list ks:zset".into(),
            // A stream with a group copied over a hash.
            "COPY ks:stream ks:hash REPLACE".into(),
            "COPY ks:zset ks:list-copy".into(),
            "RENAMENX ks:nx-src ks:nx-dst".into(),
            "UNLINK ks:bigset".into(),
            "DEL ks:stream".into(),
            format!("PEXPIREAT ks:gt {} GT", t + 1_000_000),
            format!("PEXPIREAT ks:lt {} LT", t - 1_000_000),
            "EXPIRE ks:nottl 300 NX".into(),
            format!("EXPIREAT ks:expireat {}", (t + 500_000) / 1000),
            "PERSIST ks:nottl".into(),
            "EXPIRE ks:nottl 400 NX".into(),
        ],
        random_writes: vec![],
        fail: "INCR txu:bad".into(),
        fail_name: "INCR",
        after_fail: vec![
            "SET ks:after-fail x".into(),
            "DEL ks:hash".into(),
            "LPUSH ks:after-list y".into(),
        ],
        after_fail_keys: vec!["ks:after-fail", "ks:after-list"],
    }
}

fn all_families(t: i64) -> Vec<Family> {
    vec![
        strings_family(t),
        bitmaps_family(t),
        lists_family(t),
        hashes_family(t),
        sets_family(t),
        zsets_family(t),
        streams_family(t),
        hll_family(t),
        geo_family(t),
        keyspace_family(t),
    ]
}

fn setup(con: &mut Connection, lines: &[String]) {
    for line in lines {
        query_line(con, line);
    }
}

/// Deadlines one hour ahead: no key can expire during a test.
fn base_time(con: &mut Connection) -> i64 {
    server_now_ms(con) + 3_600_000
}

/// The rollback test for one family (see the module comment).
fn check_family(make: fn(i64) -> Family) {
    let s = Server::start();
    let mut con = s.conn();
    let t = base_time(&mut con);
    let f = make(t);
    setup(&mut con, &f.setup);
    for k in f.touched.iter().chain(&f.untouched) {
        assert_eq!(
            int(&query_line(&mut con, &format!("EXISTS {k}"))),
            1,
            "{}: setup must create {k}",
            f.name
        );
    }
    for k in f.created.iter().chain(&f.after_fail_keys) {
        assert_eq!(
            int(&query_line(&mut con, &format!("EXISTS {k}"))),
            0,
            "{}: {k} must not exist before",
            f.name
        );
    }
    let keys = f.all_keys();
    let before = snapshot(&s, &keys);
    assert!(
        before.keys.iter().any(|k| k.pexpiretime > 0),
        "{}: some keys should have a TTL",
        f.name
    );

    // 1. Writes, then a failure: everything is put back.
    let mut lines: Vec<String> = f.writes.clone();
    lines.extend(f.random_writes.iter().cloned());
    lines.push(f.fail.clone());
    let k = lines.len();
    lines.extend(f.after_fail.iter().cloned());
    let captured = preimages_captured(&s);
    let mut raw = s.raw();
    let reply = txu(&mut raw, &lines);
    assert_rolled_back(&reply, k, f.fail_name);
    let after = snapshot(&s, &keys);
    assert_same(&before, &after, &format!("{} after a rollback", f.name));
    for key in f.created.iter().chain(&f.after_fail_keys) {
        assert_eq!(
            int(&query_line(&mut con, &format!("EXISTS {key}"))),
            0,
            "{}: {key} must be gone after the rollback",
            f.name
        );
    }
    assert!(
        preimages_captured(&s) > captured,
        "{}: the rolled-back writes took no pre-image",
        f.name
    );
    // The same transaction as one TXU.RUN rolls back the same way.
    let reply = txu_run(&mut raw, &lines);
    assert_rolled_back(&reply, k, f.fail_name);
    let after = snapshot(&s, &keys);
    assert_same(
        &before,
        &after,
        &format!("{} after a TXU.RUN rollback", f.name),
    );

    // 2. The same writes committed really change every key they are meant to change, so the
    //    check above could fail.
    let reply = txu(&mut raw, &f.writes);
    assert_eq!(
        array_len(&reply),
        f.writes.len(),
        "{}: committed transaction reply {}",
        f.name,
        show(&reply)
    );
    let committed = snapshot(&s, &keys);
    assert_ne!(
        before.digest, committed.digest,
        "{}: writes changed nothing",
        f.name
    );
    for (b, a) in before.keys.iter().zip(&committed.keys) {
        let name = b.key.as_str();
        if f.touched.contains(&name) {
            assert_ne!(b, a, "{}: the writes should change {name}", f.name);
        } else if f.created.contains(&name) {
            assert!(
                a.type_name != "none",
                "{}: the writes should create {name}",
                f.name
            );
        } else {
            assert_eq!(b, a, "{}: the writes should not change {name}", f.name);
        }
    }
}

#[test]
fn strings_roll_back_exactly() {
    check_family(strings_family);
}

#[test]
fn bitmaps_roll_back_exactly() {
    check_family(bitmaps_family);
}

#[test]
fn lists_roll_back_exactly() {
    check_family(lists_family);
}

#[test]
fn hashes_roll_back_exactly() {
    check_family(hashes_family);
}

#[test]
fn sets_roll_back_exactly() {
    check_family(sets_family);
}

#[test]
fn sorted_sets_roll_back_exactly() {
    check_family(zsets_family);
}

#[test]
fn streams_with_groups_and_pel_roll_back_exactly() {
    check_family(streams_family);
}

#[test]
fn hyperloglogs_roll_back_exactly() {
    check_family(hll_family);
}

#[test]
fn geo_sets_roll_back_exactly() {
    check_family(geo_family);
}

#[test]
fn keyspace_operations_roll_back_exactly() {
    check_family(keyspace_family);
}

/// A transaction that succeeds has exactly the effects, and the replies, of its commands run
/// directly (one by one, no module) on a second server holding the same data.
#[test]
fn committed_transaction_equals_direct_execution() {
    let a = Server::start();
    let b = Server::start_without_module();
    let mut ca = a.conn();
    let mut cb = b.conn();
    let t = base_time(&mut ca);
    let families = all_families(t);
    for f in &families {
        setup(&mut ca, &f.setup);
        setup(&mut cb, &f.setup);
    }
    assert_eq!(a.digest(), b.digest(), "the two servers start equal");
    let before = a.digest();

    let writes: Vec<String> = families.iter().flat_map(|f| f.writes.clone()).collect();
    let mut ra = a.raw();
    let reply = txu(&mut ra, &writes);

    let mut rb = b.raw();
    let mut direct = format!("*{}\r\n", writes.len()).into_bytes();
    for line in &writes {
        let r = run(&mut rb, &line.split_whitespace().collect::<Vec<_>>());
        assert_ne!(r.first(), Some(&b'-'), "`{line}` failed: {}", show(&r));
        direct.extend(r);
    }
    assert_eq!(
        show(&reply),
        show(&direct),
        "TXU.EXEC replies differ from the commands' direct replies"
    );

    let keys: Vec<&str> = families.iter().flat_map(|f| f.all_keys()).collect();
    let mut ka = a.conn();
    let mut kb = b.conn();
    for key in &keys {
        let sa = key_state(&mut ka, key);
        let sb = key_state(&mut kb, key);
        assert_eq!(sa.type_name, sb.type_name, "TYPE of {key}");
        assert_eq!(sa.content, sb.content, "contents of {key}");
        assert_eq!(
            sa.digest_value, sb.digest_value,
            "DEBUG DIGEST-VALUE of {key}"
        );
        // Relative TTLs were set at slightly different times on the two servers: compare
        // whether a key has one.
        assert_eq!(
            sa.pexpiretime.signum(),
            sb.pexpiretime.signum(),
            "TTL presence of {key}: {} vs {}",
            sa.pexpiretime,
            sb.pexpiretime
        );
    }
    assert_eq!(
        a.digest(),
        b.digest(),
        "DEBUG DIGEST after commit vs direct"
    );
    assert_ne!(a.digest(), before, "the transaction changed nothing");
}

// ----- pre-image accounting ----------------------------------------------------------------

/// A transaction that writes one key five times takes one pre-image (the failing command here
/// is a read, which takes none).
/// A key the transaction creates costs one pre-image ("it did not exist"), whatever writes it
/// and however often: undoing the transaction deletes it. A key that exists goes through its
/// type's recipe as before.
#[test]
fn created_keys_take_one_pre_image_each() {
    let s = Server::start();
    let mut con = s.conn();
    query_line(&mut con, "SET bad x");
    query_line(&mut con, "HSET old f 1");
    let before_digest = s.digest();
    let mut raw = s.raw();
    let lines = [
        "HSET new:h f v",
        "HSET new:h g w",
        "HINCRBY new:h n 1",
        "LPUSH new:l a",
        "RPUSH new:l b",
        "SADD new:s m",
        "ZADD new:z 1 m",
        "XADD new:x * f v",
        "INCR new:n",
        "HDEL old f",
        "INCR bad",
    ];
    for form in ["TXU.EXEC", "TXU.RUN"] {
        let n0 = preimages_captured(&s);
        let reply = if form == "TXU.RUN" {
            txu_run(&mut raw, &lines)
        } else {
            txu(&mut raw, &lines)
        };
        assert_rolled_back(&reply, lines.len(), "INCR");
        // new:h, new:l, new:s, new:z, new:x, new:n once each; old is copied whole (a small
        // hash, which HDEL could reorder): 7.
        assert_eq!(preimages_captured(&s) - n0, 7, "{form}: pre-images");
        assert_eq!(s.digest(), before_digest, "{form}");
        for key in ["new:h", "new:l", "new:s", "new:z", "new:x", "new:n"] {
            assert_eq!(
                int(&query_line(&mut con, &format!("EXISTS {key}"))),
                0,
                "{form}: {key} must be gone"
            );
        }
        assert_eq!(text(&query_line(&mut con, "HGET old f")), "1", "{form}");
    }
}

#[test]
fn one_preimage_per_key_however_often_it_is_written() {
    let s = Server::start();
    let mut con = s.conn();
    query_line(&mut con, "SET k start");
    query_line(&mut con, "SET other x");
    let before_digest = s.digest();
    let n0 = preimages_captured(&s);
    let mut raw = s.raw();
    let lines = [
        "SET k a",
        "APPEND k b",
        "APPEND k c",
        "SETRANGE k 0 z",
        "APPEND k d",
        "LRANGE k 0 -1",
    ];
    let reply = txu(&mut raw, &lines);
    assert_rolled_back(&reply, 6, "LRANGE");
    assert_eq!(preimages_captured(&s) - n0, 1, "pre-images for k");
    assert_eq!(s.digest(), before_digest);
    assert_eq!(text(&query_line(&mut con, "GET k")), "start");

    // Two keys written by several multi-key commands: two pre-images, and a key first written
    // as a new key keeps its "did not exist" pre-image.
    let n0 = preimages_captured(&s);
    let lines = [
        "MSET k 1 fresh 2",
        "MSET k 3 fresh 4",
        "INCR k",
        "DEL fresh",
        "SET fresh again",
        "LPUSH k x",
    ];
    let reply = txu(&mut raw, &lines);
    // The failing command writes k, which already has its pre-image.
    assert_rolled_back(&reply, 6, "LPUSH");
    assert_eq!(preimages_captured(&s) - n0, 2, "pre-images for k and fresh");
    assert_eq!(s.digest(), before_digest);
    assert_eq!(int(&query_line(&mut con, "EXISTS fresh")), 0);

    // Committed: the same rule.
    let n0 = preimages_captured(&s);
    let lines = ["INCR n", "INCR n", "INCRBY n 5", "GET n"];
    let reply = txu(&mut raw, &lines);
    assert_eq!(show(&reply), "*4\r\n:1\r\n:2\r\n:7\r\n$1\r\n7\r\n");
    assert_eq!(preimages_captured(&s) - n0, 1);
}

/// Read-only commands take no pre-image, whether the transaction commits or rolls back.
#[test]
fn read_only_commands_capture_nothing() {
    let s = Server::start();
    let mut con = s.conn();
    for line in [
        "SET str v",
        "RPUSH list 3 1 2",
        "HSET hash f v",
        "SADD set a b",
        "ZADD zset 1 a",
        "XADD stream 1-1 f v",
        "XGROUP CREATE stream g 0",
        "PFADD hll a b",
        "PFCOUNT hll",
        "SETBIT bits 3 1",
        "GEOADD geo 1 1 p",
    ] {
        query_line(&mut con, line);
    }
    let reads = [
        "GET str",
        "STRLEN str",
        "GETRANGE str 0 -1",
        "MGET str list",
        "EXISTS str list hash",
        "TYPE list",
        "TTL str",
        "PEXPIRETIME str",
        "LRANGE list 0 -1",
        "LINDEX list 0",
        "LLEN list",
        "SORT_RO list",
        "HGETALL hash",
        "HGET hash f",
        "SMEMBERS set",
        "SISMEMBER set a",
        "SINTER set set",
        "ZRANGE zset 0 -1 WITHSCORES",
        "ZSCORE zset a",
        "XRANGE stream - +",
        "XLEN stream",
        "XREAD COUNT 1 STREAMS stream 0",
        "XINFO GROUPS stream",
        "XPENDING stream g",
        // Not PFCOUNT: it may rewrite the cached count inside the HyperLogLog, so txu takes
        // its pre-image (see pfcount_cache_update_is_rolled_back).
        "BITCOUNT bits",
        "GETBIT bits 3",
        "BITFIELD_RO bits GET u4 0",
        "GEOPOS geo p",
        "GEOSEARCH geo FROMLONLAT 1 1 BYRADIUS 10 km",
        "DBSIZE",
        "RANDOMKEY",
        "SCAN 0",
        "DUMP str",
    ];
    let digest = s.digest();
    let mut raw = s.raw();

    let n0 = preimages_captured(&s);
    let reply = txu(&mut raw, &reads);
    assert_eq!(array_len(&reply), reads.len(), "{}", show(&reply));
    assert_eq!(
        preimages_captured(&s) - n0,
        0,
        "committed read-only transaction"
    );

    let mut failing = reads.to_vec();
    failing.push("LRANGE str 0 -1");
    let n0 = preimages_captured(&s);
    let reply = txu(&mut raw, &failing);
    assert_rolled_back(&reply, failing.len(), "LRANGE");
    assert_eq!(
        preimages_captured(&s) - n0,
        0,
        "rolled-back read-only transaction"
    );
    assert_eq!(s.digest(), digest);
}

/// SORT without STORE and BITFIELD with only GET are write commands by their flags, but they
/// read: the server marks their keys read-only, and txu takes no pre-image.
#[test]
fn write_commands_used_for_reading_capture_nothing() {
    let s = Server::start();
    let mut con = s.conn();
    query_line(&mut con, "RPUSH list 3 1 2");
    query_line(&mut con, "SETBIT bits 3 1");
    query_line(&mut con, "SET bad notanumber");
    let mut raw = s.raw();
    let n0 = preimages_captured(&s);
    let lines = ["SORT list", "BITFIELD bits GET u4 0", "LRANGE bad 0 -1"];
    let reply = txu(&mut raw, &lines);
    assert_rolled_back(&reply, 3, "LRANGE");
    assert_eq!(preimages_captured(&s) - n0, 0);
}

/// Commands that read some keys and write another (SUNIONSTORE, ZUNIONSTORE, COPY, BITOP,
/// PFMERGE, SORT … STORE, GEOSEARCHSTORE) take a pre-image of the key they write only: the
/// keys they read are not written by the transaction.
#[test]
fn store_commands_capture_only_their_destination() {
    let s = Server::start();
    let mut con = s.conn();
    for line in [
        "SADD s1 a b",
        "SADD s2 c",
        "ZADD z1 1 a",
        "ZADD z2 2 b",
        "SET b1 x",
        "SET b2 y",
        "PFADD h1 a",
        "PFADD h2 b",
        "RPUSH l 2 1",
        "GEOADD g 1 1 p",
        "SET bad notanumber",
    ] {
        query_line(&mut con, line);
    }
    let cases = [
        "SUNIONSTORE sdst s1 s2",
        "SINTERSTORE sdst s1 s2",
        "SDIFFSTORE sdst s1 s2",
        "ZUNIONSTORE zdst 2 z1 z2",
        "ZINTERSTORE zdst 2 z1 z2",
        "ZDIFFSTORE zdst 2 z1 z2",
        "ZRANGESTORE zdst z1 0 -1",
        "COPY s1 cdst",
        "BITOP OR bdst b1 b2",
        "PFMERGE hdst h1 h2",
        "SORT l STORE ldst",
        "GEOSEARCHSTORE gdst g FROMLONLAT 1 1 BYRADIUS 10 km",
        "GEORADIUS g 1 1 10 km STORE gdst",
    ];
    let digest = s.digest();
    let mut raw = s.raw();
    let mut wrong = Vec::new();
    for case in cases {
        let n0 = preimages_captured(&s);
        let reply = txu(&mut raw, &[case, "LRANGE bad 0 -1"]);
        assert_rolled_back(&reply, 2, "LRANGE");
        assert_eq!(s.digest(), digest, "after rolling back {case}");
        let n = preimages_captured(&s) - n0;
        if n != 1 {
            wrong.push(format!("{case}: {n} pre-images"));
        }
    }
    assert!(
        wrong.is_empty(),
        "each command writes one key and should take one pre-image: {wrong:#?}"
    );
}

/// PFCOUNT is a read-only command that may rewrite the HyperLogLog's cached cardinality. A
/// rolled-back transaction that ran it must still leave the key's bytes as they were.
#[test]
fn pfcount_cache_update_is_rolled_back() {
    let s = Server::start();
    let mut con = s.conn();
    // PFADD leaves the cached cardinality invalid until the next PFCOUNT.
    query_line(&mut con, "PFADD hll a b c d");
    query_line(&mut con, "SET bad notanumber");
    let before = snapshot(&s, &["hll"]);
    let mut raw = s.raw();
    let lines = ["PFCOUNT hll", "INCR bad"];
    let reply = txu(&mut raw, &lines);
    assert_rolled_back(&reply, 2, "INCR");
    let after = snapshot(&s, &["hll"]);
    assert_same(&before, &after, "PFCOUNT in a rolled-back transaction");
}
