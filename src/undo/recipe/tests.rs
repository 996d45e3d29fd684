//! The recipes as a whole: which reads each command plans, the fallback to whole keys, and
//! random input. Each family's own entries are tested in its file, with these helpers.

use super::*;
use crate::undo::model::show;

#[test]
fn plan_whole_copies_every_written_key_and_reads_nothing() {
    let argv: [&[u8]; 5] = [b"HSET", b"h", b"f", b"v", b"h"];
    let p = plan_whole(&argv, &[1, 4, 9]);
    assert!(p.reads().is_empty());
    assert_eq!(p.whole_keys(&[]), vec![b"h".to_vec()]);
    assert!(!p.needs_reply());
}

pub(super) fn args(s: &str) -> Vec<Vec<u8>> {
    s.split(' ').map(|a| a.as_bytes().to_vec()).collect()
}

pub(super) const NOW: i64 = 1_700_000_000_000;

/// Plans `cmd` with `keys` (positions) as the written keys.
/// Plans `cmd` with `keys` (positions) as the written keys. The plan borrows the arguments,
/// which a test leaks so that it may keep the plan.
pub(super) fn plan_of(cmd: &str, keys: &[usize]) -> Plan<'static> {
    let a: &'static [Vec<u8>] = Box::leak(args(cmd).into_boxed_slice());
    let refs: Vec<&'static [u8]> = a.iter().map(Vec::as_slice).collect();
    plan(&refs, keys, NOW)
}

pub(super) fn reads_of(p: &Plan<'_>) -> Vec<String> {
    p.reads()
        .iter()
        .map(|c| show(&c.iter().map(|a| a.to_vec()).collect::<Vec<_>>()))
        .collect()
}

pub(super) fn bulk(s: &str) -> Read {
    Read::Bulk(s.as_bytes().to_vec())
}

pub(super) fn arr(items: Vec<Read>) -> Read {
    Read::Array(items)
}

pub(super) fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub(super) fn wrongtype() -> Read {
    Read::Error(b"WRONGTYPE Operation against a key holding the wrong kind of value".to_vec())
}

pub(super) fn ttl(key: &str, t: Option<i64>) -> UndoEntry {
    UndoEntry::Expiry {
        key: k(key),
        expire_at_ms: t,
    }
}

#[test]
fn reads_match_the_write() {
    // (command, written key positions, reads, keys always snapshotted whole)
    type Case<'a> = (&'a str, &'a [usize], &'a [&'a str], &'a [&'a str]);
    let cases: &[Case] = &[
        ("set k v EX 10 GET", &[1], &["GET k", "PEXPIRETIME k"], &[]),
        ("INCRBYFLOAT k 1.5", &[1], &["GET k", "PEXPIRETIME k"], &[]),
        (
            "MSET a 1 b 2 a 3",
            &[1, 3, 5],
            &["GET a", "PEXPIRETIME a", "GET b", "PEXPIRETIME b"],
            &[],
        ),
        ("BITOP AND d a b", &[2], &["GET d", "PEXPIRETIME d"], &[]),
        (
            "HSET h f 1 g 2 f 3",
            &[1],
            &["HMGET h f g", "PEXPIRETIME h"],
            &[],
        ),
        ("HDEL h f f", &[1], &["HMGET h f", "PEXPIRETIME h"], &[]),
        (
            "HINCRBYFLOAT h f 2",
            &[1],
            &["HMGET h f", "PEXPIRETIME h"],
            &[],
        ),
        (
            "SADD s a b a",
            &[1],
            &["SMISMEMBER s a b", "PEXPIRETIME s"],
            &[],
        ),
        (
            "SMOVE a b m",
            &[1, 2],
            &[
                "SISMEMBER a m",
                "PEXPIRETIME a",
                "SISMEMBER b m",
                "PEXPIRETIME b",
            ],
            &[],
        ),
        ("SMOVE a a m", &[1, 2], &[], &[]),
        ("SPOP s 3", &[1], &["PEXPIRETIME s"], &[]),
        (
            "ZADD z NX CH 1 a 2 b",
            &[1],
            &["ZMSCORE z a b", "PEXPIRETIME z"],
            &[],
        ),
        ("ZADD z 1 nx", &[1], &["ZMSCORE z nx", "PEXPIRETIME z"], &[]),
        (
            "ZINCRBY z 2 m",
            &[1],
            &["ZMSCORE z m", "PEXPIRETIME z"],
            &[],
        ),
        (
            "GEOADD g XX CH 13.36 38.11 p 15.08 37.50 q",
            &[1],
            &["ZMSCORE g p q", "PEXPIRETIME g"],
            &[],
        ),
        (
            "ZREMRANGEBYSCORE z (1 +inf",
            &[1],
            &["ZRANGE z (1 +inf BYSCORE WITHSCORES", "PEXPIRETIME z"],
            &[],
        ),
        (
            "ZREMRANGEBYRANK z 0 -3",
            &[1],
            &["ZRANGE z 0 -3 WITHSCORES", "PEXPIRETIME z"],
            &[],
        ),
        (
            "ZMPOP 2 a b MIN COUNT 3",
            &[2, 3],
            &["PEXPIRETIME a", "PEXPIRETIME b"],
            &[],
        ),
        ("LPUSH l a b", &[1], &["PEXPIRETIME l"], &[]),
        ("RPOP l 2", &[1], &["PEXPIRETIME l"], &[]),
        (
            "LMOVE a b LEFT RIGHT",
            &[1, 2],
            &["PEXPIRETIME a", "PEXPIRETIME b"],
            &[],
        ),
        ("RPOPLPUSH a a", &[1, 2], &["PEXPIRETIME a"], &[]),
        ("LMPOP 1 l RIGHT", &[2], &["PEXPIRETIME l"], &[]),
        ("LSET l -1 x", &[1], &["LINDEX l -1", "PEXPIRETIME l"], &[]),
        (
            "LTRIM l 0 99",
            &[1],
            &["LLEN l", "PEXPIRETIME l", "LRANGE l 100 -1"],
            &[],
        ),
        (
            "LTRIM l -100 -1",
            &[1],
            &["LLEN l", "PEXPIRETIME l", "LRANGE l 0 -101"],
            &[],
        ),
        (
            "LTRIM l 2 -3",
            &[1],
            &["LLEN l", "PEXPIRETIME l", "LRANGE l 0 1", "LRANGE l -2 -1"],
            &[],
        ),
        ("EXPIRE k 10 GT", &[1], &["PEXPIRETIME k"], &[]),
        ("PEXPIREAT k 1700000002001", &[1], &["PEXPIRETIME k"], &[]),
        ("PERSIST k", &[1], &["PEXPIRETIME k"], &[]),
        ("RENAME a b", &[1, 2], &["PEXPIRETIME a"], &["b"]),
        ("RENAMENX a b", &[1, 2], &["PEXPIRETIME a"], &[]),
        ("COPY a b REPLACE", &[2], &[], &["b"]),
        // Whole keys: no recipe.
        ("DEL a b", &[1, 2], &[], &["a", "b"]),
        ("UNLINK a", &[1], &[], &["a"]),
        ("XADD s * f v", &[1], &[], &["s"]),
        ("PFADD h a", &[1], &[], &["h"]),
        ("LINSERT l BEFORE p v", &[1], &[], &["l"]),
        ("LREM l 0 v", &[1], &[], &["l"]),
        ("SUNIONSTORE d a b", &[1], &[], &["d"]),
        ("EXPIRE k 0", &[1], &[], &["k"]),
        ("PEXPIRE k -5", &[1], &[], &["k"]),
        ("EXPIREAT k 1700000001", &[1], &[], &["k"]),
        ("PEXPIREAT k 1700000002000", &[1], &[], &["k"]),
        ("EXPIREAT k 9223372036854775807", &[1], &[], &["k"]),
        ("MYMOD.SET k v", &[1], &[], &["k"]),
    ];
    for (cmd, keys, reads, whole) in cases {
        let p = plan_of(cmd, keys);
        assert_eq!(reads_of(&p), *reads, "{cmd}");
        let fake: Vec<Read> = p.reads().iter().map(|_| Read::Nil).collect();
        let always: Vec<String> = p.always_whole.iter().map(|w| show(&[w.to_vec()])).collect();
        assert_eq!(always, *whole, "{cmd}");
        let _ = p.whole_keys(&fake);
    }
    assert!(plan_of("SPOP s", &[1]).needs_reply());
    assert!(plan_of("RENAMENX a b", &[1, 2]).needs_reply());
    assert!(!plan_of("RENAME a b", &[1, 2]).needs_reply());
    assert!(!plan_of("RENAME a b", &[1, 2]).is_barrier_free());
    assert!(plan_of("COPY a b", &[2]).is_barrier_free());
    assert!(!plan_of("HSET h f v", &[1]).needs_reply());
    assert_eq!(
        plan_of("MSET a 1 b 2 a 3", &[1, 3, 5]).keys(),
        &[k("a"), k("b")]
    );
}

#[test]
fn malformed_or_unexpected_input_falls_back_to_whole_keys() {
    for (cmd, keys) in [
        ("HSET h f", &[1][..]),
        ("HSETNX h f", &[1]),
        ("MSET a 1 b", &[1, 3]),
        ("LSET l x v", &[1]),
        ("LSET l 01 v", &[1]),
        ("LTRIM l 0 +5", &[1]),
        ("LTRIM l -9223372036854775808 5", &[1]),
        ("ZADD z 1", &[1]),
        ("ZADD z NX", &[1]),
        ("GEOADD g 1 2", &[1]),
        ("LMOVE a b UP DOWN", &[1, 2]),
        ("LMPOP 0 l LEFT", &[2]),
        ("LMPOP 2 l LEFT", &[2]),
        ("ZMPOP x a MIN", &[2]),
        ("EXPIRE k soon", &[1]),
        ("SMOVE a b", &[1, 2]),
        ("RENAME a", &[1]),
        ("SPOP s 1 2", &[1]),
    ] {
        let p = plan_of(cmd, keys);
        assert!(p.reads().is_empty(), "{cmd}: {:?}", reads_of(&p));
        let w = p.whole_keys(&[]);
        assert!(!w.is_empty(), "{cmd}");
        assert_eq!(w, p.keys(), "{cmd}");
    }
    // The server and the recipe disagree about the keys: whole keys, all of them.
    let p = plan_of("SET a v", &[]);
    assert_eq!(p.whole_keys(&[]), vec![k("a")]);
    let p = plan_of("SMOVE a b m", &[1]);
    assert_eq!(p.whole_keys(&[]), vec![k("a"), k("b")]);
    // A key the server names that the recipe does not know: that key whole, the rest as usual.
    let p = plan_of("SET a v", &[1, 2]);
    assert_eq!(reads_of(&p), ["GET a", "PEXPIRETIME a"]);
    assert_eq!(p.whole_keys(&[bulk("x"), Read::Int(-1)]), vec![k("v")]);
    // Nothing at all.
    let p = plan(&[], &[], NOW);
    assert!(p.reads().is_empty() && p.whole_keys(&[]).is_empty());
    assert!(p.entries(&[], vec![], None).is_empty());
}

/// Random commands, key positions, reads and replies: never a panic.
#[test]
fn junk_never_panics() {
    let names = [
        "SET",
        "MSET",
        "BITOP",
        "HSET",
        "HDEL",
        "HSETNX",
        "SADD",
        "SMOVE",
        "SPOP",
        "ZADD",
        "GEOADD",
        "ZINCRBY",
        "ZPOPMIN",
        "ZMPOP",
        "ZREMRANGEBYRANK",
        "ZREMRANGEBYSCORE",
        "LPUSH",
        "LPOP",
        "LMOVE",
        "RPOPLPUSH",
        "LMPOP",
        "LSET",
        "LTRIM",
        "EXPIRE",
        "EXPIREAT",
        "PEXPIREAT",
        "PERSIST",
        "RENAME",
        "RENAMENX",
        "COPY",
        "DEL",
        "XADD",
    ];
    let words = [
        "k",
        "a",
        "0",
        "1",
        "-1",
        "2",
        "LEFT",
        "RIGHT",
        "NX",
        "XX",
        "COUNT",
        "MIN",
        "9223372036854775807",
        "-9223372036854775808",
        "",
        "inf",
        "x",
    ];
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let samples = [
        Read::Nil,
        Read::Int(-2),
        Read::Int(-1),
        Read::Int(0),
        Read::Int(1),
        Read::Int(3),
        Read::Int(i64::MAX),
        bulk("1"),
        bulk("k"),
        Read::Double(1.5),
        Read::Bulk(b"OK".to_vec()),
        wrongtype(),
    ];
    for _ in 0..20_000 {
        let mut argv: Vec<Vec<u8>> = vec![k(names[rng.next(names.len())])];
        for _ in 0..rng.next(7) {
            argv.push(k(words[rng.next(words.len())]));
        }
        let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let kp: Vec<usize> = (0..rng.next(4)).map(|_| rng.next(argv.len() + 2)).collect();
        let p = plan(&refs, &kp, NOW);
        let gen = |rng: &mut Rng| -> Read {
            if rng.next(3) == 0 {
                let n = rng.next(5);
                Read::Array(
                    (0..n)
                        .map(|_| samples[rng.next(samples.len())].clone())
                        .collect(),
                )
            } else {
                samples[rng.next(samples.len())].clone()
            }
        };
        let n = p.reads().len() + rng.next(2);
        let reads: Vec<Read> = (0..n).map(|_| gen(&mut rng)).collect();
        let reads = if rng.next(4) == 0 {
            &reads[..reads.len() / 2]
        } else {
            &reads[..]
        };
        let wholes: Vec<(Vec<u8>, Option<Snapshot>)> = p
            .whole_keys(reads)
            .into_iter()
            .map(|w| (w.to_vec(), None))
            .collect();
        let reply = gen(&mut rng);
        let nested = arr(vec![bulk("k"), arr(vec![arr(vec![bulk("m"), bulk("1")])])]);
        for r in [Some(&reply), Some(&nested), None] {
            for e in p.entries(reads, wholes.clone(), r) {
                assert!(e.is_well_formed(), "{e:?}");
                let _ = e.compensation();
            }
        }
    }
}

#[test]
fn compact_keys_go_whole_and_the_others_keep_their_elements() {
    use crate::undo::entry::Snapshot;
    let whole = |key: &str, before: Option<Snapshot>| UndoEntry::Whole {
        key: k(key),
        before,
    };
    let snap = Snapshot {
        payload: vec![1],
        expire_at_ms: None,
    };

    // One key, compact: no reads at all, a whole-key copy.
    let p = plan_of("HDEL h a", &[1]);
    assert_eq!(p.element_keys(), vec![k("h")]);
    let p = p.with_whole(&[&b"h"[..]]);
    assert!(p.reads().is_empty());
    assert_eq!(p.whole_keys(&[]), vec![k("h")]);
    assert_eq!(
        p.entries(&[], vec![(k("h"), Some(snap.clone()))], None),
        [whole("h", Some(snap.clone()))]
    );
    // Nothing compact: the plan is unchanged.
    let p = plan_of("ZADD z 1 m", &[1]).with_whole(&[]);
    assert_eq!(reads_of(&p), ["ZMSCORE z m", "PEXPIRETIME z"]);

    // Strings and key-space commands keep their value whole or untouched: none; nor do keys
    // that are whole anyway.
    for (cmd, keys) in [
        ("SET k v", &[1][..]),
        ("INCR k", &[1]),
        ("EXPIRE k 10", &[1]),
        ("RENAME a b", &[1, 2]),
        ("DEL a b", &[1, 2]),
        ("LINSERT l BEFORE a b", &[1]),
    ] {
        assert!(plan_of(cmd, keys).element_keys().is_empty(), "{cmd}");
    }
    for (cmd, keys, want) in [
        ("SADD s a", &[1][..], &["s"][..]),
        ("SMOVE a b m", &[1, 2], &["a", "b"]),
        ("SPOP s 2", &[1], &["s"]),
        ("ZREMRANGEBYRANK z 0 1", &[1], &["z"]),
        ("ZMPOP 2 a b MIN", &[2, 3], &["a", "b"]),
        ("LPUSH l a", &[1], &["l"]),
        ("LTRIM l 1 2", &[1], &["l"]),
        ("LMOVE a b LEFT RIGHT", &[1, 2], &["a", "b"]),
        ("HINCRBY h f 1", &[1], &["h"]),
    ] {
        let want: Vec<Vec<u8>> = want.iter().map(|w| k(w)).collect();
        assert_eq!(plan_of(cmd, keys).element_keys(), want, "{cmd}");
    }

    // Two keys, one compact: the other keeps its element-level entries.
    let smove = || plan_of("SMOVE a b m", &[1, 2]);
    let reads = [Read::Int(1), Read::Int(-1), Read::Int(0), Read::Int(5)];
    let p = smove().with_whole(&[&b"a"[..]]);
    assert_eq!(p.whole_keys(&reads), vec![k("a")]);
    assert_eq!(
        p.entries(&reads, vec![(k("a"), Some(snap.clone()))], None),
        [
            whole("a", Some(snap.clone())),
            ttl("b", Some(5)),
            UndoEntry::SetMember {
                key: k("b"),
                member: k("m"),
                present: false
            }
        ]
    );
    let p = smove().with_whole(&[&b"b"[..]]);
    assert_eq!(
        p.entries(&reads, vec![(k("b"), None)], None),
        [
            whole("b", None),
            ttl("a", None),
            UndoEntry::SetMember {
                key: k("a"),
                member: k("m"),
                present: true
            }
        ]
    );
    assert!(smove()
        .with_whole(&[&b"a"[..], &b"b"[..]])
        .reads()
        .is_empty());

    let lmove = || plan_of("LMOVE a b LEFT RIGHT", &[1, 2]);
    let reads = [Read::Int(-1), Read::Int(4)];
    let e =
        lmove()
            .with_whole(&[&b"b"[..]])
            .entries(&reads, vec![(k("b"), None)], Some(&bulk("e")));
    assert_eq!(
        e,
        [
            whole("b", None),
            ttl("a", None),
            UndoEntry::ListPush {
                key: k("a"),
                left: true,
                elems: vec![k("e")]
            }
        ]
    );
    let e =
        lmove()
            .with_whole(&[&b"a"[..]])
            .entries(&reads, vec![(k("a"), None)], Some(&bulk("e")));
    assert_eq!(
        e,
        [
            whole("a", None),
            ttl("b", Some(4)),
            UndoEntry::ListPop {
                key: k("b"),
                left: false,
                count: 1
            }
        ]
    );
}

#[test]
fn key_lists_keep_first_seen_order_across_the_switch_to_a_set() {
    use super::KeyList;
    let n = crate::undo::keymap::SMALL * 3;
    let names: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
    let mut l = KeyList::default();
    for round in 0..2 {
        for (i, name) in names.iter().enumerate() {
            assert_eq!(l.add(name), round == 0, "k{i}");
        }
    }
    assert!(l.set.is_some());
    assert_eq!(l.list, names);
    assert!(l.contains(b"k0") && !l.contains(b"k-none"));
}

#[test]
fn only_writes_that_add_or_update_claim_a_growth() {
    let growth = |line: &str, key: &str| plan_of(line, &[1]).growth(&k(key));
    let g = |kind, added, longest| {
        Some(Growth {
            kind,
            added,
            longest,
        })
    };
    let (h, z) = (Collection::Hash, Collection::ZSet);
    assert_eq!(growth("HSET h a 1 bb 22222", "h"), g(h, 2, 5));
    // Duplicates count: the server sizes its conversion check by the arguments.
    assert_eq!(growth("HMSET h a 1 a 2", "h"), g(h, 2, 1));
    assert_eq!(growth("HSETNX h field v", "h"), g(h, 1, 5));
    assert_eq!(growth("HINCRBY h f 1", "h"), g(h, 1, 20));
    assert_eq!(growth("ZADD z NX CH 1 a 2 bbb 3 a", "z"), g(z, 3, 3));
    assert_eq!(growth("ZADD z INCR 1.5 member", "z"), g(z, 1, 6));
    assert_eq!(growth("ZINCRBY z 1 abcd", "z"), g(z, 1, 4));
    assert_eq!(growth("GEOADD z 13.36 38.11 palermo", "z"), g(z, 1, 7));
    for line in [
        "HDEL h a",
        "HINCRBYFLOAT h f 1.5",
        "ZREM z a",
        "ZPOPMIN z",
        "SADD s a",
        "SREM s a",
        "LPUSH l a",
    ] {
        let key = line.split(' ').nth(1).unwrap_or_default();
        assert_eq!(growth(line, key), None, "{line}");
    }
    // Another key than the command's, and servers where hash fields may have TTLs.
    assert_eq!(growth("HSET h a 1", "other"), None);
    let ttl = Features {
        hash_field_ttl: true,
    };
    let argv: Vec<&[u8]> = ["HSET", "h", "a", "1"]
        .iter()
        .map(|a| a.as_bytes())
        .collect();
    assert_eq!(plan_with(&argv, &[1], 0, ttl).growth(b"h"), None);
}
