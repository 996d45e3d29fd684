//! Sorted sets: ZADD, GEOADD (a sorted set of geohash scores), ZINCRBY and ZREM read the
//! touched members' scores (`ZMSCORE`); ZREMRANGEBYRANK / BYSCORE read the matching range;
//! ZPOPMIN/MAX and ZMPOP take the members from their reply. Each member that changes gets a
//! `ZMember` entry with its old score.

use super::{
    bad_unless, bytes_of, distinct, mpop_reply, numkeys, per_element, pop_key, tail, ttl_at,
    ttl_per_key, ttls_ok, with_expiry, Builder, Collection, Growth, KeyList, Observed, Read,
    Recipe, Ttl,
};
use crate::undo::entry::UndoEntry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZOp {
    /// ZADD / ZINCRBY / GEOADD; `nx`: only absent members change, `xx`: only present ones.
    Add {
        nx: bool,
        xx: bool,
    },
    Rem,
}

#[derive(Debug, Clone)]
pub(super) enum ZSetRecipe<'a> {
    Members(Scores<'a>),
    /// ZPOPMIN / ZPOPMAX: the members and scores come from the reply.
    Pop {
        key: &'a [u8],
        ttl: usize,
    },
    /// ZREMRANGEBYRANK / ZREMRANGEBYSCORE: the matching ZRANGE ... WITHSCORES was read.
    RemRange {
        key: &'a [u8],
        range: usize,
        ttl: usize,
    },
    /// ZMPOP: the key, members and scores come from the reply.
    MPop {
        keys: Vec<(&'a [u8], usize)>,
    },
}

/// ZADD, GEOADD, ZINCRBY, ZREM: `ZMSCORE` of the members.
#[derive(Debug, Clone)]
pub(super) struct Scores<'a> {
    key: &'a [u8],
    op: ZOp,
    members: Vec<&'a [u8]>,
    scores: usize,
    ttl: usize,
    /// ZADD, GEOADD, ZINCRBY: `(added, longest)` of their [`Growth`] (members in the
    /// arguments, duplicates counted; the longest member).
    grows: Option<(usize, usize)>,
}

pub(super) fn build<'a>(name: &[u8], argv: &[&'a [u8]], b: &mut Builder<'a>) -> Option<Recipe<'a>> {
    let argc = argv.len();
    let key1 = argv.get(1).copied();
    let recipe = match name {
        b"zadd" | b"geoadd" => {
            let k = key1?;
            let (mut nx, mut xx) = (false, false);
            let mut i = 2;
            while let Some(a) = argv.get(i) {
                let a = a.to_ascii_lowercase();
                match a.as_slice() {
                    b"nx" => nx = true,
                    b"xx" => xx = true,
                    b"ch" => {}
                    b"incr" | b"gt" | b"lt" if name == b"zadd" => {}
                    _ => break,
                }
                i += 1;
            }
            let rest = argv.get(i..)?;
            let group = if name == b"zadd" { 2 } else { 3 };
            if rest.is_empty() || rest.len() % group != 0 {
                return None;
            }
            let named = || rest.chunks(group).filter_map(|c| c.last());
            let grows = (
                rest.len() / group,
                named().map(|m| m.len()).max().unwrap_or(0),
            );
            let members = distinct(named().copied());
            Scores::plan(k, ZOp::Add { nx, xx }, members, Some(grows), b)
        }
        b"zincrby" => {
            let (&k, &m) = match argv {
                [_, k, _, m] => (k, m),
                _ => return None,
            };
            let op = ZOp::Add {
                nx: false,
                xx: false,
            };
            Scores::plan(k, op, vec![m], Some((1, m.len())), b)
        }
        b"zrem" => {
            let k = key1?;
            if argc < 3 {
                return None;
            }
            Scores::plan(k, ZOp::Rem, distinct(tail(argv, 2)), None, b)
        }
        b"zpopmin" | b"zpopmax" => {
            let (key, ttl) = pop_key(argv, b)?;
            ZSetRecipe::Pop { key, ttl }
        }
        b"zremrangebyrank" | b"zremrangebyscore" => {
            let (&k, &min, &max) = match argv {
                [_, k, min, max] => (k, min, max),
                _ => return None,
            };
            let key = b.key(k);
            let range = if name == b"zremrangebyrank" {
                b.read(&[b"ZRANGE", k, min, max, b"WITHSCORES"])
            } else {
                b.read(&[b"ZRANGE", k, min, max, b"BYSCORE", b"WITHSCORES"])
            };
            let ttl = b.ttl(k);
            ZSetRecipe::RemRange { key, range, ttl }
        }
        b"zmpop" => {
            let (keys, after) = numkeys(argv)?;
            argv.get(after)?;
            ZSetRecipe::MPop {
                keys: ttl_per_key(&keys, b),
            }
        }
        _ => return None,
    };
    Some(Recipe::ZSet(recipe))
}

impl<'a> Scores<'a> {
    /// `ZMSCORE k members` and `PEXPIRETIME k`.
    fn plan(
        k: &'a [u8],
        op: ZOp,
        members: Vec<&'a [u8]>,
        grows: Option<(usize, usize)>,
        b: &mut Builder<'a>,
    ) -> ZSetRecipe<'a> {
        let key = b.key(k);
        let scores = b.read_with(b"ZMSCORE", k, &members);
        let ttl = b.ttl(k);
        ZSetRecipe::Members(Scores {
            key,
            op,
            members,
            scores,
            ttl,
            grows,
        })
    }

    /// The members' scores before the command (`None`: absent), validated.
    fn before(&self, reads: &[Read]) -> Option<(Ttl, Vec<Option<f64>>)> {
        let score = |r: &Read| match r {
            Read::Nil => Some(None),
            other => score_of(other).map(Some),
        };
        let n = self.members.len();
        per_element(reads, self.scores, n, self.ttl, score, Option::is_some)
    }

    /// A `ZMember` entry per member the command changes, with its old score.
    fn entries(&self, reads: &[Read], out: &mut Vec<UndoEntry>) {
        let Some((t, before)) = self.before(reads) else {
            return;
        };
        let changed: Vec<UndoEntry> = self
            .members
            .iter()
            .zip(before)
            .filter(|(_, s)| match self.op {
                ZOp::Add { nx, xx } => !((nx && s.is_some()) || (xx && s.is_none())),
                ZOp::Rem => s.is_some(),
            })
            .map(|(m, score)| UndoEntry::ZMember {
                key: self.key.to_vec(),
                member: m.to_vec(),
                score,
            })
            .collect();
        with_expiry(self.key, t, changed, out);
    }
}

/// A score: a RESP3 double, or RESP2 text (`inf`, `-inf`, `+inf` included). Never NaN.
fn score_of(r: &Read) -> Option<f64> {
    let s = match r {
        Read::Double(d) => *d,
        Read::Bulk(b) => std::str::from_utf8(b).ok()?.parse::<f64>().ok()?,
        _ => return None,
    };
    (!s.is_nan()).then_some(s)
}

/// Members and scores.
type Scored = Vec<(Vec<u8>, f64)>;

/// `(member, score)` pairs: RESP2 flat `[m, s, m, s]`, RESP3 nested `[[m, s], ...]`, or
/// `Nil`/empty for none.
fn score_pairs(r: &Read) -> Option<Scored> {
    let items = match r {
        Read::Nil => return Some(Vec::new()),
        Read::Array(items) => items,
        _ => return None,
    };
    if items.iter().all(|i| matches!(i, Read::Array(_))) {
        items
            .iter()
            .map(|i| match i {
                Read::Array(p) => match p.as_slice() {
                    [m, s] => Some((bytes_of(m)?.to_vec(), score_of(s)?)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    } else if items.len().is_multiple_of(2) {
        items
            .chunks(2)
            .map(|p| match p {
                [m, s] => Some((bytes_of(m)?.to_vec(), score_of(s)?)),
                _ => None,
            })
            .collect()
    } else {
        None
    }
}

fn removed_range(reads: &[Read], range: usize, ttl: usize) -> Option<(Ttl, Scored)> {
    let t = ttl_at(reads, ttl)?;
    let pairs = score_pairs(reads.get(range)?)?;
    if !t.exists() && !pairs.is_empty() {
        return None;
    }
    Some((t, pairs))
}

/// Puts removed members back with their scores (each once).
fn zmembers(key: &[u8], t: Ttl, pairs: Scored, out: &mut Vec<UndoEntry>) {
    let mut seen = KeyList::default();
    let members = pairs
        .iter()
        .filter(|(m, _)| seen.add(m))
        .map(|(m, s)| UndoEntry::ZMember {
            key: key.to_vec(),
            member: m.clone(),
            score: Some(*s),
        })
        .collect();
    with_expiry(key, t, members, out);
}

impl<'a> ZSetRecipe<'a> {
    pub(super) fn needs_reply(&self) -> bool {
        matches!(self, ZSetRecipe::Pop { .. } | ZSetRecipe::MPop { .. })
    }

    /// Every key: a member that converted a listpack to a skiplist (one member too many, or
    /// too long) leaves the skiplist behind when it is removed again.
    pub(super) fn element_keys(&self) -> Vec<&'a [u8]> {
        match self {
            ZSetRecipe::Members(m) => vec![m.key],
            ZSetRecipe::Pop { key, .. } | ZSetRecipe::RemRange { key, .. } => vec![key],
            ZSetRecipe::MPop { keys } => keys.iter().map(|&(k, _)| k).collect(),
        }
    }

    pub(super) fn growth(&self, key: &[u8]) -> Option<Growth> {
        let ZSetRecipe::Members(m) = self else {
            return None;
        };
        let (added, longest) = m.grows.filter(|_| key == m.key)?;
        Some(Growth {
            kind: Collection::ZSet,
            added,
            longest,
        })
    }

    pub(super) fn bad_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        match self {
            ZSetRecipe::Members(m) => bad_unless(m.before(reads).is_some(), [m.key]),
            ZSetRecipe::Pop { key, ttl } => bad_unless(ttl_at(reads, *ttl).is_some(), [*key]),
            ZSetRecipe::RemRange { key, range, ttl } => {
                bad_unless(removed_range(reads, *range, *ttl).is_some(), [*key])
            }
            ZSetRecipe::MPop { keys } => {
                bad_unless(ttls_ok(reads, keys), keys.iter().map(|&(k, _)| k))
            }
        }
    }

    pub(super) fn entries(&self, seen: &Observed, out: &mut Vec<UndoEntry>) {
        let Observed { reads, reply, .. } = *seen;
        match self {
            ZSetRecipe::Members(m) => {
                if !seen.is_whole(m.key) {
                    m.entries(reads, out);
                }
            }
            ZSetRecipe::Pop { key, ttl } => {
                if seen.is_whole(key) {
                    return;
                }
                let (Some(t), Some(pairs)) = (ttl_at(reads, *ttl), reply.and_then(score_pairs))
                else {
                    return;
                };
                zmembers(key, t, pairs, out);
            }
            ZSetRecipe::RemRange { key, range, ttl } => {
                if seen.is_whole(key) {
                    return;
                }
                if let Some((t, pairs)) = removed_range(reads, *range, *ttl) {
                    zmembers(key, t, pairs, out);
                }
            }
            ZSetRecipe::MPop { keys } => {
                let Some((key, ttl, pairs)) = mpop_reply(reply, keys) else {
                    return;
                };
                let Some(pairs) = score_pairs(pairs) else {
                    return;
                };
                if seen.is_whole(key) {
                    return;
                }
                if let Some(t) = ttl_at(reads, ttl) {
                    zmembers(key, t, pairs, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{arr, bulk, k, plan_of, ttl};
    use crate::undo::entry::UndoEntry;
    use crate::undo::recipe::Read;

    fn zm(key: &str, m: &str, s: Option<f64>) -> UndoEntry {
        UndoEntry::ZMember {
            key: k(key),
            member: k(m),
            score: s,
        }
    }

    #[test]
    fn scores_parse_from_resp2_and_resp3() {
        let p = plan_of("ZADD z 1 a 1 b 1 c 1 d 1 e 1 f", &[1]);
        let reads = [
            arr(vec![
                bulk("inf"),
                bulk("-inf"),
                bulk("0.10000000000000001"),
                Read::Double(2.5),
                Read::Nil,
                bulk("+inf"),
            ]),
            Read::Int(-1),
        ];
        assert!(p.whole_keys(&reads).is_empty());
        let e = p.entries(&reads, vec![], None);
        assert_eq!(
            e,
            [
                ttl("z", None),
                zm("z", "a", Some(f64::INFINITY)),
                zm("z", "b", Some(f64::NEG_INFINITY)),
                zm("z", "c", Some(0.1)),
                zm("z", "d", Some(2.5)),
                zm("z", "e", None),
                zm("z", "f", Some(f64::INFINITY)),
            ]
        );
        for bad in [bulk("nan"), bulk("x"), Read::Double(f64::NAN), Read::Int(1)] {
            let reads = [
                arr(vec![
                    bad,
                    Read::Nil,
                    Read::Nil,
                    Read::Nil,
                    Read::Nil,
                    Read::Nil,
                ]),
                Read::Int(-1),
            ];
            assert_eq!(p.whole_keys(&reads), vec![k("z")]);
        }
        // NX: present members do not change; XX: absent ones do not.
        let p = plan_of("ZADD z NX 1 a 2 b", &[1]);
        let reads = [arr(vec![bulk("1"), Read::Nil]), Read::Int(-1)];
        assert_eq!(
            p.entries(&reads, vec![], None),
            [ttl("z", None), zm("z", "b", None)]
        );
        let p = plan_of("ZADD z XX 1 a 2 b", &[1]);
        assert_eq!(
            p.entries(&reads, vec![], None),
            [ttl("z", None), zm("z", "a", Some(1.0))]
        );
    }

    #[test]
    fn popped_members_come_from_every_reply_shape() {
        let p = plan_of("ZPOPMIN z 2", &[1]);
        let want = [
            ttl("z", Some(9)),
            zm("z", "a", Some(1.0)),
            zm("z", "b", Some(2.0)),
        ];
        for reply in [
            arr(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]),
            arr(vec![
                arr(vec![bulk("a"), Read::Double(1.0)]),
                arr(vec![bulk("b"), Read::Double(2.0)]),
            ]),
            arr(vec![
                bulk("a"),
                Read::Double(1.0),
                bulk("b"),
                Read::Double(2.0),
            ]),
        ] {
            assert_eq!(p.entries(&[Read::Int(9)], vec![], Some(&reply)), want);
        }
        assert!(p
            .entries(&[Read::Int(-2)], vec![], Some(&arr(vec![])))
            .is_empty());
        let p = plan_of("ZMPOP 2 y z MAX COUNT 2", &[2, 3]);
        let reply = arr(vec![
            bulk("z"),
            arr(vec![
                arr(vec![bulk("a"), bulk("1")]),
                arr(vec![bulk("b"), bulk("2")]),
            ]),
        ]);
        assert_eq!(
            p.entries(&[Read::Int(-2), Read::Int(9)], vec![], Some(&reply)),
            want
        );
        assert!(p
            .entries(&[Read::Int(-2), Read::Int(-2)], vec![], Some(&Read::Nil))
            .is_empty());
        // ZREMRANGEBYSCORE reads what it removes.
        let p = plan_of("ZREMRANGEBYSCORE z 1 2", &[1]);
        let reads = [
            arr(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")]),
            Read::Int(9),
        ];
        assert_eq!(p.entries(&reads, vec![], None), want);
        let reads = [arr(vec![bulk("a")]), Read::Int(9)];
        assert_eq!(p.whole_keys(&reads), vec![k("z")]);
    }
}
