//! One undo step: how to put back one thing a write changed (a whole key, a string, a hash
//! field, a set or sorted-set member, a key's expiry, a few list elements, a rename), and the
//! compensating command that does it. Pure: no Redis types.
//!
//! Rollback applies entries newest first. Every compensation is an ordinary, deterministic
//! command, so it reaches replicas and the AOF as it is.
//!
//! The variants are serialized by position (bincode): never reorder or remove them; add new
//! ones at the end, or bump the undo log's encoding version.

use serde::{Deserialize, Serialize};

/// A key's whole value as `DUMP` serializes it, and its absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub payload: Vec<u8>,
    /// Absolute Unix time in ms at which the key expires; `None` for no expiry.
    pub expire_at_ms: Option<i64>,
}

/// One undo step. `before`-style fields hold the pre-image; `None` means "was absent".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UndoEntry {
    /// The whole key: `RESTORE key <abs-ms|0> payload REPLACE [ABSTTL]`, or `DEL key`.
    Whole {
        key: Vec<u8>,
        before: Option<Snapshot>,
    },
    /// A string key, value and absolute expiry: `SET key value [PXAT ms]`, or `DEL key`.
    /// Like `Whole`, a full restore of the key whatever it holds at rollback time.
    Str {
        key: Vec<u8>,
        before: Option<(Vec<u8>, Option<i64>)>,
    },
    /// `HSET key field value`, or `HDEL key field`.
    HashField {
        key: Vec<u8>,
        field: Vec<u8>,
        before: Option<Vec<u8>>,
    },
    /// `SADD key member` (it was present), or `SREM key member`.
    SetMember {
        key: Vec<u8>,
        member: Vec<u8>,
        present: bool,
    },
    /// `ZADD key score member`, or `ZREM key member`.
    ZMember {
        key: Vec<u8>,
        member: Vec<u8>,
        score: Option<f64>,
    },
    /// `PEXPIREAT key ms`, or `PERSIST key` (a no-op if the key does not exist).
    Expiry {
        key: Vec<u8>,
        expire_at_ms: Option<i64>,
    },
    /// `LPUSH`/`RPUSH key elems...`, the elements in this order.
    ListPush {
        key: Vec<u8>,
        left: bool,
        elems: Vec<Vec<u8>>,
    },
    /// `LPOP`/`RPOP key count`.
    ListPop {
        key: Vec<u8>,
        left: bool,
        count: u64,
    },
    /// `LSET key index value`.
    ListSet {
        key: Vec<u8>,
        index: i64,
        value: Vec<u8>,
    },
    /// A rename from `from` to `to`; undone by `RENAME to from`.
    Rename { from: Vec<u8>, to: Vec<u8> },
}

/// What an entry restores, for compaction: entries with equal slots (of the same key, with no
/// rename of that key between them) overwrite the same thing, so only the earliest is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `Whole` or `Str`: everything about the key.
    Full,
    Ttl,
    Hash,
    Set,
    ZSet,
    List,
    Rename,
}

fn cmd(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

fn num(n: impl ToString) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// A score as `ZADD` parses it back to the same `f64`: Rust's `Display` of an `f64` is the
/// shortest decimal that round-trips (never an exponent); infinities are `inf` and `-inf`.
pub fn format_score(s: f64) -> Vec<u8> {
    format!("{s}").into_bytes()
}

/// A compensation that runs as one part of a multi-key command together with its
/// neighbours of the same kind (see `UndoEntry::batchable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batchable<'a> {
    /// `SET key value` with no expiry: a run of these is `MSET k1 v1 k2 v2 ...`, which
    /// does for each key, in order, exactly what `SET` does (overwrite whatever the key
    /// holds, drop its expiry, signal the key, fire `set`, count one change).
    Set { key: &'a [u8], value: &'a [u8] },
    /// `DEL key`: a run of these is `DEL k1 k2 ...`, which deletes each key in order exactly
    /// as `DEL key` does (and does nothing for a key that is absent).
    Del { key: &'a [u8] },
}

impl UndoEntry {
    /// The compensating command: its arguments, name first (uppercase).
    pub fn compensation(&self) -> Vec<Vec<u8>> {
        match self {
            UndoEntry::Whole { key, before } => match before {
                None => cmd(&[b"DEL", key]),
                // A deadline at or before the epoch: the key would be gone (and RESTORE
                // would read 0 as "no expiry", a negative one as an error).
                Some(Snapshot {
                    expire_at_ms: Some(t),
                    ..
                }) if *t <= 0 => cmd(&[b"DEL", key]),
                Some(s) => {
                    let mut c = vec![
                        b"RESTORE".to_vec(),
                        key.clone(),
                        num(s.expire_at_ms.unwrap_or(0)),
                        s.payload.clone(),
                        b"REPLACE".to_vec(),
                    ];
                    if s.expire_at_ms.is_some() {
                        c.push(b"ABSTTL".to_vec());
                    }
                    c
                }
            },
            UndoEntry::Str { key, before } => match before {
                None => cmd(&[b"DEL", key]),
                Some((_, Some(t))) if *t <= 0 => cmd(&[b"DEL", key]),
                Some((v, None)) => cmd(&[b"SET", key, v]),
                Some((v, Some(t))) => cmd(&[b"SET", key, v, b"PXAT", &num(t)]),
            },
            UndoEntry::HashField { key, field, before } => match before {
                None => cmd(&[b"HDEL", key, field]),
                Some(v) => cmd(&[b"HSET", key, field, v]),
            },
            UndoEntry::SetMember {
                key,
                member,
                present,
            } => cmd(&[if *present { b"SADD" } else { b"SREM" }, key, member]),
            UndoEntry::ZMember { key, member, score } => match score {
                None => cmd(&[b"ZREM", key, member]),
                Some(s) => cmd(&[b"ZADD", key, &format_score(*s), member]),
            },
            UndoEntry::Expiry { key, expire_at_ms } => match expire_at_ms {
                None => cmd(&[b"PERSIST", key]),
                Some(t) => cmd(&[b"PEXPIREAT", key, &num(t)]),
            },
            UndoEntry::ListPush { key, left, elems } => {
                let mut c = Vec::with_capacity(elems.len() + 2);
                c.push(if *left {
                    b"LPUSH".to_vec()
                } else {
                    b"RPUSH".to_vec()
                });
                c.push(key.clone());
                c.extend(elems.iter().cloned());
                c
            }
            UndoEntry::ListPop { key, left, count } => {
                cmd(&[if *left { b"LPOP" } else { b"RPOP" }, key, &num(count)])
            }
            UndoEntry::ListSet { key, index, value } => cmd(&[b"LSET", key, &num(index), value]),
            UndoEntry::Rename { from, to } => cmd(&[b"RENAME", to, from]),
        }
    }

    /// The compensation as a batchable write, when it is a plain `SET key value` or a
    /// `DEL key` (exactly what `compensation` gives for it); `None` otherwise.
    pub fn batchable(&self) -> Option<Batchable<'_>> {
        match self {
            UndoEntry::Whole { key, before } => match before {
                None => Some(Batchable::Del { key }),
                Some(Snapshot {
                    expire_at_ms: Some(t),
                    ..
                }) if *t <= 0 => Some(Batchable::Del { key }),
                Some(_) => None,
            },
            UndoEntry::Str { key, before } => match before {
                None => Some(Batchable::Del { key }),
                Some((_, Some(t))) if *t <= 0 => Some(Batchable::Del { key }),
                Some((value, None)) => Some(Batchable::Set { key, value }),
                Some((_, Some(_))) => None,
            },
            _ => None,
        }
    }

    /// The keys the compensation writes (both names for a rename).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            UndoEntry::Rename { from, to } => vec![from, to],
            other => vec![other.key()],
        }
    }

    /// The key of a single-key entry (`to` for a rename: the key the forward write created).
    pub fn key(&self) -> &[u8] {
        match self {
            UndoEntry::Whole { key, .. }
            | UndoEntry::Str { key, .. }
            | UndoEntry::HashField { key, .. }
            | UndoEntry::SetMember { key, .. }
            | UndoEntry::ZMember { key, .. }
            | UndoEntry::Expiry { key, .. }
            | UndoEntry::ListPush { key, .. }
            | UndoEntry::ListPop { key, .. }
            | UndoEntry::ListSet { key, .. } => key,
            UndoEntry::Rename { to, .. } => to,
        }
    }

    /// Whether the compensation puts back everything about its key (type, value, expiry).
    pub fn is_full_restore(&self) -> bool {
        matches!(self, UndoEntry::Whole { .. } | UndoEntry::Str { .. })
    }

    /// Bytes held: the entry itself plus the keys and values it owns (lengths, not
    /// capacities). Used for `INFO` and `mem_usage`.
    pub fn weight(&self) -> usize {
        let heap = match self {
            UndoEntry::Whole { key, before } => {
                key.len() + before.as_ref().map_or(0, |s| s.payload.len())
            }
            UndoEntry::Str { key, before } => {
                key.len() + before.as_ref().map_or(0, |(v, _)| v.len())
            }
            UndoEntry::HashField { key, field, before } => {
                key.len() + field.len() + before.as_ref().map_or(0, Vec::len)
            }
            UndoEntry::SetMember { key, member, .. } | UndoEntry::ZMember { key, member, .. } => {
                key.len() + member.len()
            }
            UndoEntry::Expiry { key, .. } | UndoEntry::ListPop { key, .. } => key.len(),
            UndoEntry::ListPush { key, elems, .. } => {
                key.len()
                    + elems
                        .iter()
                        .map(|e| e.len() + std::mem::size_of::<Vec<u8>>())
                        .sum::<usize>()
            }
            UndoEntry::ListSet { key, value, .. } => key.len() + value.len(),
            UndoEntry::Rename { from, to } => from.len() + to.len(),
        };
        std::mem::size_of::<UndoEntry>() + heap
    }

    /// Whether the compensation is a command the server accepts (a decoded log may hold
    /// anything): a list push has elements, a pop a positive count, a score is a number.
    pub fn is_well_formed(&self) -> bool {
        match self {
            UndoEntry::ListPush { elems, .. } => !elems.is_empty(),
            UndoEntry::ListPop { count, .. } => *count > 0,
            UndoEntry::ZMember { score, .. } => !score.is_some_and(f64::is_nan),
            _ => true,
        }
    }

    /// The slot this entry restores, for compaction (`None` for list steps and renames, which
    /// are never merged with each other).
    pub(crate) fn slot(&self) -> (Kind, Option<&[u8]>) {
        match self {
            UndoEntry::Whole { .. } | UndoEntry::Str { .. } => (Kind::Full, None),
            UndoEntry::Expiry { .. } => (Kind::Ttl, None),
            UndoEntry::HashField { field, .. } => (Kind::Hash, Some(field)),
            UndoEntry::SetMember { member, .. } => (Kind::Set, Some(member)),
            UndoEntry::ZMember { member, .. } => (Kind::ZSet, Some(member)),
            UndoEntry::ListPush { .. } | UndoEntry::ListPop { .. } | UndoEntry::ListSet { .. } => {
                (Kind::List, None)
            }
            UndoEntry::Rename { .. } => (Kind::Rename, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(c: &[Vec<u8>]) -> Vec<String> {
        c.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn whole_restores_with_absolute_ttl_or_deletes() {
        let e = UndoEntry::Whole {
            key: k("k"),
            before: Some(Snapshot {
                payload: vec![0, 1, 2],
                expire_at_ms: Some(99),
            }),
        };
        let c = e.compensation();
        assert_eq!(
            strs(&c),
            ["RESTORE", "k", "99", "\0\u{1}\u{2}", "REPLACE", "ABSTTL"]
        );
        let e = UndoEntry::Whole {
            key: k("k"),
            before: Some(Snapshot {
                payload: vec![7],
                expire_at_ms: None,
            }),
        };
        assert_eq!(
            strs(&e.compensation()),
            ["RESTORE", "k", "0", "\u{7}", "REPLACE"]
        );
        let e = UndoEntry::Whole {
            key: k("k"),
            before: None,
        };
        assert_eq!(strs(&e.compensation()), ["DEL", "k"]);
        let e = UndoEntry::Whole {
            key: k("k"),
            before: Some(Snapshot {
                payload: vec![7],
                expire_at_ms: Some(0),
            }),
        };
        assert_eq!(strs(&e.compensation()), ["DEL", "k"]);
    }

    #[test]
    fn every_variant_has_its_command() {
        let cases: Vec<(UndoEntry, Vec<&str>)> = vec![
            (
                UndoEntry::Str {
                    key: k("s"),
                    before: Some((k("v"), Some(1234))),
                },
                vec!["SET", "s", "v", "PXAT", "1234"],
            ),
            (
                UndoEntry::Str {
                    key: k("s"),
                    before: Some((k("v"), None)),
                },
                vec!["SET", "s", "v"],
            ),
            (
                UndoEntry::Str {
                    key: k("s"),
                    before: None,
                },
                vec!["DEL", "s"],
            ),
            (
                UndoEntry::HashField {
                    key: k("h"),
                    field: k("f"),
                    before: Some(k("1")),
                },
                vec!["HSET", "h", "f", "1"],
            ),
            (
                UndoEntry::HashField {
                    key: k("h"),
                    field: k("f"),
                    before: None,
                },
                vec!["HDEL", "h", "f"],
            ),
            (
                UndoEntry::SetMember {
                    key: k("s"),
                    member: k("m"),
                    present: true,
                },
                vec!["SADD", "s", "m"],
            ),
            (
                UndoEntry::SetMember {
                    key: k("s"),
                    member: k("m"),
                    present: false,
                },
                vec!["SREM", "s", "m"],
            ),
            (
                UndoEntry::ZMember {
                    key: k("z"),
                    member: k("m"),
                    score: Some(1.5),
                },
                vec!["ZADD", "z", "1.5", "m"],
            ),
            (
                UndoEntry::ZMember {
                    key: k("z"),
                    member: k("m"),
                    score: None,
                },
                vec!["ZREM", "z", "m"],
            ),
            (
                UndoEntry::Expiry {
                    key: k("k"),
                    expire_at_ms: Some(5),
                },
                vec!["PEXPIREAT", "k", "5"],
            ),
            (
                UndoEntry::Expiry {
                    key: k("k"),
                    expire_at_ms: None,
                },
                vec!["PERSIST", "k"],
            ),
            (
                UndoEntry::ListPush {
                    key: k("l"),
                    left: true,
                    elems: vec![k("b"), k("a")],
                },
                vec!["LPUSH", "l", "b", "a"],
            ),
            (
                UndoEntry::ListPush {
                    key: k("l"),
                    left: false,
                    elems: vec![k("x")],
                },
                vec!["RPUSH", "l", "x"],
            ),
            (
                UndoEntry::ListPop {
                    key: k("l"),
                    left: false,
                    count: 3,
                },
                vec!["RPOP", "l", "3"],
            ),
            (
                UndoEntry::ListPop {
                    key: k("l"),
                    left: true,
                    count: 1,
                },
                vec!["LPOP", "l", "1"],
            ),
            (
                UndoEntry::ListSet {
                    key: k("l"),
                    index: -2,
                    value: k("old"),
                },
                vec!["LSET", "l", "-2", "old"],
            ),
            (
                UndoEntry::Rename {
                    from: k("a"),
                    to: k("b"),
                },
                vec!["RENAME", "b", "a"],
            ),
        ];
        for (e, want) in cases {
            assert_eq!(strs(&e.compensation()), want, "{e:?}");
            assert!(e.is_well_formed());
            assert!(e.weight() >= std::mem::size_of::<UndoEntry>());
        }
    }

    #[test]
    fn batchable_matches_the_compensation() {
        let snap = |t| Snapshot {
            payload: vec![1],
            expire_at_ms: t,
        };
        let cases = vec![
            UndoEntry::Str {
                key: k("s"),
                before: Some((k("v"), None)),
            },
            UndoEntry::Str {
                key: k("s"),
                before: Some((k("v"), Some(5))),
            },
            UndoEntry::Str {
                key: k("s"),
                before: Some((k("v"), Some(0))),
            },
            UndoEntry::Str {
                key: k("s"),
                before: None,
            },
            UndoEntry::Whole {
                key: k("w"),
                before: None,
            },
            UndoEntry::Whole {
                key: k("w"),
                before: Some(snap(Some(-1))),
            },
            UndoEntry::Whole {
                key: k("w"),
                before: Some(snap(None)),
            },
            UndoEntry::HashField {
                key: k("h"),
                field: k("f"),
                before: None,
            },
            UndoEntry::Expiry {
                key: k("k"),
                expire_at_ms: None,
            },
        ];
        let mut batched = 0;
        for e in cases {
            let c = strs(&e.compensation());
            match e.batchable() {
                Some(Batchable::Set { key, value }) => {
                    batched += 1;
                    assert_eq!(
                        c,
                        [&b"SET"[..], key, value].map(|a| String::from_utf8_lossy(a).into_owned())
                    );
                }
                Some(Batchable::Del { key }) => {
                    batched += 1;
                    assert_eq!(
                        c,
                        [&b"DEL"[..], key].map(|a| String::from_utf8_lossy(a).into_owned())
                    );
                }
                None => assert!(c[0] != "DEL" && !(c[0] == "SET" && c.len() == 3), "{c:?}"),
            }
        }
        assert_eq!(batched, 5);
    }

    #[test]
    fn scores_round_trip_exactly() {
        for s in [
            0.0,
            -0.0,
            1.0,
            0.1,
            -2.5,
            1e300,
            -1e-300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            123_456_789.123_456_79,
            4_503_599_627_370_495.0, // a 52-bit geohash
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let text = String::from_utf8(format_score(s)).unwrap();
            assert!(!text.contains('e'), "{text}");
            let back: f64 = text.parse().unwrap();
            assert_eq!(back.to_bits(), s.to_bits(), "{text}");
        }
        assert_eq!(format_score(f64::INFINITY), b"inf");
        assert_eq!(format_score(f64::NEG_INFINITY), b"-inf");
    }

    #[test]
    fn keys_and_weights() {
        let r = UndoEntry::Rename {
            from: k("a"),
            to: k("bb"),
        };
        assert_eq!(r.keys(), vec![&b"a"[..], &b"bb"[..]]);
        let base = std::mem::size_of::<UndoEntry>();
        assert_eq!(r.weight(), base + 3);
        let h = UndoEntry::HashField {
            key: k("h"),
            field: k("ff"),
            before: Some(k("vvv")),
        };
        assert_eq!(h.keys(), vec![&b"h"[..]]);
        assert_eq!(h.weight(), base + 6);
        assert!(!UndoEntry::ListPush {
            key: k("l"),
            left: true,
            elems: vec![]
        }
        .is_well_formed());
        assert!(!UndoEntry::ListPop {
            key: k("l"),
            left: true,
            count: 0
        }
        .is_well_formed());
        assert!(!UndoEntry::ZMember {
            key: k("z"),
            member: k("m"),
            score: Some(f64::NAN)
        }
        .is_well_formed());
    }
}
