//! Lists: enough to restore order exactly. Pushes are undone by popping as many elements from
//! the same side; pops (LPOP/RPOP, LMPOP, LMOVE, RPOPLPUSH) by pushing their reply back; LSET
//! by setting the old element (`LINDEX`); LTRIM by pushing back what it removes (`LRANGE` of
//! both ends). LINSERT and LREM have no recipe: they go whole.

use super::{
    bad_unless, expiry, mpop_reply, numkeys, parse_i64, pop_key, popped, ttl_at, ttl_per_key,
    ttls_ok, Builder, Observed, Read, Recipe, Ttl,
};
use crate::undo::entry::UndoEntry;
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub(super) enum ListRecipe<'a> {
    /// LPUSH, RPUSH, LPUSHX, RPUSHX (`only_existing`): `count` elements on one side.
    Push {
        key: &'a [u8],
        left: bool,
        count: u64,
        only_existing: bool,
        ttl: usize,
    },
    /// LPOP / RPOP: the elements come from the reply.
    Pop {
        key: &'a [u8],
        left: bool,
        ttl: usize,
    },
    /// LMOVE, RPOPLPUSH: the element comes from the reply.
    Move {
        src: &'a [u8],
        dst: &'a [u8],
        from_left: bool,
        to_left: bool,
        src_ttl: usize,
        dst_ttl: usize,
    },
    /// LMPOP: the key and the elements come from the reply.
    MPop {
        keys: Vec<(&'a [u8], usize)>,
        left: bool,
    },
    /// LSET: `LINDEX` of the index.
    Set {
        key: &'a [u8],
        index: i64,
        old: usize,
        ttl: usize,
    },
    Trim(Trim<'a>),
}

/// LTRIM: `LLEN`, and `LRANGE` of the head and of the tail it may remove.
#[derive(Debug, Clone)]
pub(super) struct Trim<'a> {
    key: &'a [u8],
    start: i64,
    stop: i64,
    len: usize,
    ttl: usize,
    head: Option<usize>,
    tail: Option<usize>,
}

pub(super) fn build<'a>(name: &[u8], argv: &[&'a [u8]], b: &mut Builder<'a>) -> Option<Recipe<'a>> {
    let argc = argv.len();
    let key1 = argv.get(1).copied();
    let recipe = match name {
        b"lpush" | b"rpush" | b"lpushx" | b"rpushx" => {
            let k = key1?;
            if argc < 3 {
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            ListRecipe::Push {
                key,
                left: name.starts_with(b"l"),
                count: u64::try_from(argc - 2).ok()?,
                only_existing: name.ends_with(b"x"),
                ttl,
            }
        }
        b"lpop" | b"rpop" => {
            let (key, ttl) = pop_key(argv, b)?;
            ListRecipe::Pop {
                key,
                left: name == b"lpop",
                ttl,
            }
        }
        b"lmove" | b"rpoplpush" => {
            let (src, dst, from_left, to_left) = match (name, argv) {
                (b"lmove", [_, s, d, f, t]) => (*s, *d, side(f)?, side(t)?),
                (b"rpoplpush", [_, s, d]) => (*s, *d, false, true),
                _ => return None,
            };
            let (srck, dstk) = (b.key(src), b.key(dst));
            let src_ttl = b.ttl(src);
            let dst_ttl = if src == dst { src_ttl } else { b.ttl(dst) };
            ListRecipe::Move {
                src: srck,
                dst: dstk,
                from_left,
                to_left,
                src_ttl,
                dst_ttl,
            }
        }
        b"lmpop" => {
            let (keys, after) = numkeys(argv)?;
            let left = side(argv.get(after)?)?;
            ListRecipe::MPop {
                keys: ttl_per_key(&keys, b),
                left,
            }
        }
        b"lset" => {
            let (&k, &idx) = match argv {
                [_, k, i, _] => (k, i),
                _ => return None,
            };
            let index = parse_i64(idx)?;
            let key = b.key(k);
            let old = b.read(&[b"LINDEX", k, idx]);
            let ttl = b.ttl(k);
            ListRecipe::Set {
                key,
                index,
                old,
                ttl,
            }
        }
        b"ltrim" => {
            let (&k, start, stop) = match argv {
                [_, k, s, e] => (k, parse_i64(s)?, parse_i64(e)?),
                _ => return None,
            };
            let key = b.key(k);
            let len = b.read(&[b"LLEN", k]);
            let ttl = b.ttl(k);
            // The elements before `start` (none when it is 0; LRANGE 0 -1 would be all).
            let head = if start == 0 {
                None
            } else {
                let end = start.checked_sub(1)?.to_string().into_bytes();
                Some(b.read_cmd(vec![
                    Cow::Borrowed(&b"LRANGE"[..]),
                    Cow::Borrowed(k),
                    Cow::Borrowed(&b"0"[..]),
                    Cow::Owned(end),
                ]))
            };
            // The elements after `stop` (none when it is -1).
            let tail = if stop == -1 {
                None
            } else {
                let from = stop.checked_add(1)?.to_string().into_bytes();
                Some(b.read_cmd(vec![
                    Cow::Borrowed(&b"LRANGE"[..]),
                    Cow::Borrowed(k),
                    Cow::Owned(from),
                    Cow::Borrowed(&b"-1"[..]),
                ]))
            };
            ListRecipe::Trim(Trim {
                key,
                start,
                stop,
                len,
                ttl,
                head,
                tail,
            })
        }
        _ => return None,
    };
    Some(Recipe::List(recipe))
}

/// `LEFT` / `RIGHT`, any case: whether it is the left side.
fn side(b: &[u8]) -> Option<bool> {
    if b.eq_ignore_ascii_case(b"left") {
        Some(true)
    } else if b.eq_ignore_ascii_case(b"right") {
        Some(false)
    } else {
        None
    }
}

/// Puts popped elements back on the side they came from: reversed, so that pushing them one by
/// one rebuilds the original order.
fn list_pushback(
    key: &[u8],
    left: bool,
    t: Ttl,
    mut elems: Vec<Vec<u8>>,
    out: &mut Vec<UndoEntry>,
) {
    if elems.is_empty() {
        return;
    }
    expiry(key, t, out);
    elems.reverse();
    out.push(UndoEntry::ListPush {
        key: key.to_vec(),
        left,
        elems,
    });
}

fn bulk_list(r: &Read) -> Option<Vec<&[u8]>> {
    match r {
        Read::Array(items) => items
            .iter()
            .map(|i| match i {
                Read::Bulk(b) => Some(b.as_slice()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// What LTRIM removes, from LLEN and the LRANGEs of both ends: `(ttl, head, tail)`, the head
/// elements in list order (index 0 first) and the tail elements in list order, borrowed from
/// the reads.
type Trimmed<'r> = (Ttl, Vec<&'r [u8]>, Vec<&'r [u8]>);

impl Trim<'_> {
    /// What the command removes, validated against the list's length.
    fn removed<'r>(&self, reads: &'r [Read]) -> Option<Trimmed<'r>> {
        let t = ttl_at(reads, self.ttl)?;
        let n = match reads.get(self.len)? {
            Read::Int(n) if *n >= 0 => *n,
            _ => return None,
        };
        if (n == 0) == t.exists() {
            return None;
        }
        let head = match self.head {
            Some(i) => bulk_list(reads.get(i)?)?,
            None => Vec::new(),
        };
        let tail = match self.tail {
            Some(i) => bulk_list(reads.get(i)?)?,
            None => Vec::new(),
        };
        let n_us = usize::try_from(n).ok()?;
        if head.len() > n_us || tail.len() > n_us {
            return None;
        }
        // Redis's ltrimCommand.
        let (mut s, mut e) = (self.start, self.stop);
        if s < 0 {
            s = n.saturating_add(s);
        }
        if e < 0 {
            e = n.saturating_add(e);
        }
        if s < 0 {
            s = 0;
        }
        let (ltrim, rtrim) = if s > e || s >= n {
            (n, 0)
        } else {
            if e >= n {
                e = n - 1;
            }
            (s, n - e - 1)
        };
        let ltrim = usize::try_from(ltrim).ok()?;
        let rtrim = usize::try_from(rtrim).ok()?;
        // The head read covers indexes [0, head.len()), the tail read [n - tail.len(), n).
        let tail_from = n_us - tail.len();
        let at = |i: usize| -> Option<&'r [u8]> {
            if i < head.len() {
                head.get(i).copied()
            } else if i >= tail_from {
                tail.get(i - tail_from).copied()
            } else {
                None
            }
        };
        // Collecting stops at the first uncovered index, so this walks at most what was read.
        let removed_head: Vec<&[u8]> = (0..ltrim).map(at).collect::<Option<_>>()?;
        let removed_tail: Vec<&[u8]> = (n_us - rtrim..n_us).map(at).collect::<Option<_>>()?;
        Some((t, removed_head, removed_tail))
    }
}

impl<'a> ListRecipe<'a> {
    pub(super) fn needs_reply(&self) -> bool {
        matches!(
            self,
            ListRecipe::Pop { .. } | ListRecipe::Move { .. } | ListRecipe::MPop { .. }
        )
    }

    /// Every key: a push that made a listpack too big for one converts it to a quicklist, and
    /// popping the elements back leaves the quicklist (it turns back only at half the size).
    pub(super) fn element_keys(&self) -> Vec<&'a [u8]> {
        match self {
            ListRecipe::Push { key, .. }
            | ListRecipe::Pop { key, .. }
            | ListRecipe::Set { key, .. } => vec![key],
            ListRecipe::Trim(t) => vec![t.key],
            ListRecipe::Move { src, dst, .. } => vec![src, dst],
            ListRecipe::MPop { keys, .. } => keys.iter().map(|&(k, _)| k).collect(),
        }
    }

    pub(super) fn bad_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        match self {
            ListRecipe::Push { key, ttl, .. } | ListRecipe::Pop { key, ttl, .. } => {
                bad_unless(ttl_at(reads, *ttl).is_some(), [*key])
            }
            ListRecipe::Move {
                src,
                dst,
                src_ttl,
                dst_ttl,
                ..
            } => bad_unless(
                ttl_at(reads, *src_ttl).is_some() && ttl_at(reads, *dst_ttl).is_some(),
                [*src, *dst],
            ),
            ListRecipe::MPop { keys, .. } => {
                bad_unless(ttls_ok(reads, keys), keys.iter().map(|&(k, _)| k))
            }
            ListRecipe::Set { key, old, ttl, .. } => {
                let ok = match (reads.get(*old), ttl_at(reads, *ttl)) {
                    (Some(Read::Nil), Some(_)) => true,
                    (Some(Read::Bulk(_)), Some(t)) => t.exists(),
                    _ => false,
                };
                bad_unless(ok, [*key])
            }
            ListRecipe::Trim(trim) => bad_unless(trim.removed(reads).is_some(), [trim.key]),
        }
    }

    pub(super) fn entries(&self, seen: &Observed, out: &mut Vec<UndoEntry>) {
        let Observed { reads, reply, .. } = *seen;
        match self {
            ListRecipe::Push {
                key,
                left,
                count,
                only_existing,
                ttl,
            } => {
                if seen.is_whole(key) {
                    return;
                }
                let Some(t) = ttl_at(reads, *ttl) else {
                    return;
                };
                if *count == 0 || (*only_existing && !t.exists()) {
                    return;
                }
                expiry(key, t, out);
                out.push(UndoEntry::ListPop {
                    key: key.to_vec(),
                    left: *left,
                    count: *count,
                });
            }
            ListRecipe::Pop { key, left, ttl } => {
                if seen.is_whole(key) {
                    return;
                }
                let Some(t) = ttl_at(reads, *ttl) else {
                    return;
                };
                list_pushback(key, *left, t, popped(reply), out);
            }
            ListRecipe::Move {
                src,
                dst,
                from_left,
                to_left,
                src_ttl,
                dst_ttl,
            } => {
                let (Some(st), Some(dt), Some(Read::Bulk(e))) =
                    (ttl_at(reads, *src_ttl), ttl_at(reads, *dst_ttl), reply)
                else {
                    return;
                };
                // Either key may be whole (a compact one): the other gets its entries.
                let (src_whole, dst_whole) = (seen.is_whole(src), seen.is_whole(dst));
                if !src_whole {
                    expiry(src, st, out);
                }
                if src != dst && !dst_whole {
                    expiry(dst, dt, out);
                }
                if !src_whole {
                    out.push(UndoEntry::ListPush {
                        key: src.to_vec(),
                        left: *from_left,
                        elems: vec![e.clone()],
                    });
                }
                if !dst_whole {
                    out.push(UndoEntry::ListPop {
                        key: dst.to_vec(),
                        left: *to_left,
                        count: 1,
                    });
                }
            }
            ListRecipe::MPop { keys, left } => {
                let Some((key, ttl, elems)) = mpop_reply(reply, keys) else {
                    return;
                };
                if seen.is_whole(key) {
                    return;
                }
                if let Some(t) = ttl_at(reads, ttl) {
                    list_pushback(key, *left, t, popped(Some(elems)), out);
                }
            }
            ListRecipe::Set {
                key,
                index,
                old,
                ttl,
            } => {
                if seen.is_whole(key) {
                    return;
                }
                if let (Some(Read::Bulk(v)), Some(t)) = (reads.get(*old), ttl_at(reads, *ttl)) {
                    expiry(key, t, out);
                    out.push(UndoEntry::ListSet {
                        key: key.to_vec(),
                        index: *index,
                        value: v.clone(),
                    });
                }
            }
            ListRecipe::Trim(trim) => {
                let key = trim.key;
                if seen.is_whole(key) {
                    return;
                }
                let Some((t, h, tl)) = trim.removed(reads) else {
                    return;
                };
                let mut h: Vec<Vec<u8>> = h.into_iter().map(<[u8]>::to_vec).collect();
                let tl: Vec<Vec<u8>> = tl.into_iter().map(<[u8]>::to_vec).collect();
                if h.is_empty() && tl.is_empty() {
                    return;
                }
                expiry(key, t, out);
                if !h.is_empty() {
                    h.reverse();
                    out.push(UndoEntry::ListPush {
                        key: key.to_vec(),
                        left: true,
                        elems: h,
                    });
                }
                if !tl.is_empty() {
                    out.push(UndoEntry::ListPush {
                        key: key.to_vec(),
                        left: false,
                        elems: tl,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{arr, bulk, k, plan_of, reads_of, ttl, wrongtype};
    use crate::undo::entry::UndoEntry;
    use crate::undo::recipe::Read;

    fn push(key: &str, left: bool, elems: &[&str]) -> UndoEntry {
        UndoEntry::ListPush {
            key: k(key),
            left,
            elems: elems.iter().map(|e| k(e)).collect(),
        }
    }

    fn pop(key: &str, left: bool, count: u64) -> UndoEntry {
        UndoEntry::ListPop {
            key: k(key),
            left,
            count,
        }
    }

    #[test]
    fn list_recipes() {
        // Pushes: pop the same number back from the same side.
        let p = plan_of("RPUSH l a b c", &[1]);
        assert_eq!(
            p.entries(&[Read::Int(-2)], vec![], None),
            [pop("l", false, 3)]
        );
        assert_eq!(
            p.entries(&[Read::Int(5)], vec![], None),
            [ttl("l", Some(5)), pop("l", false, 3)]
        );
        let p = plan_of("LPUSHX l a", &[1]);
        assert!(p.entries(&[Read::Int(-2)], vec![], None).is_empty());
        // Pops: push back, reversed.
        let p = plan_of("LPOP l 3", &[1]);
        let reply = arr(vec![bulk("a"), bulk("b"), bulk("c")]);
        assert_eq!(
            p.entries(&[Read::Int(-1)], vec![], Some(&reply)),
            [ttl("l", None), push("l", true, &["c", "b", "a"])]
        );
        assert!(p
            .entries(&[Read::Int(-2)], vec![], Some(&Read::Nil))
            .is_empty());
        let p = plan_of("RPOP l", &[1]);
        assert_eq!(
            p.entries(&[Read::Int(-1)], vec![], Some(&bulk("z"))),
            [ttl("l", None), push("l", false, &["z"])]
        );
        // LMOVE: back to the source side, off the destination side.
        let p = plan_of("LMOVE a b LEFT RIGHT", &[1, 2]);
        assert_eq!(
            p.entries(&[Read::Int(-1), Read::Int(4)], vec![], Some(&bulk("e"))),
            [
                ttl("a", None),
                ttl("b", Some(4)),
                push("a", true, &["e"]),
                pop("b", false, 1)
            ]
        );
        assert!(p
            .entries(&[Read::Int(-2), Read::Int(4)], vec![], Some(&Read::Nil))
            .is_empty());
        let p = plan_of("RPOPLPUSH a a", &[1, 2]);
        assert_eq!(
            p.entries(&[Read::Int(-1)], vec![], Some(&bulk("e"))),
            [ttl("a", None), push("a", false, &["e"]), pop("a", true, 1)]
        );
        let p = plan_of("LMPOP 2 a b RIGHT COUNT 2", &[2, 3]);
        let reply = arr(vec![bulk("b"), arr(vec![bulk("x"), bulk("y")])]);
        assert_eq!(
            p.entries(&[Read::Int(-2), Read::Int(-1)], vec![], Some(&reply)),
            [ttl("b", None), push("b", false, &["y", "x"])]
        );
        // LSET: the old element at that index.
        let p = plan_of("LSET l -1 new", &[1]);
        assert_eq!(
            p.entries(&[bulk("old"), Read::Int(-1)], vec![], None),
            [
                ttl("l", None),
                UndoEntry::ListSet {
                    key: k("l"),
                    index: -1,
                    value: k("old")
                }
            ]
        );
        assert!(p
            .entries(&[Read::Nil, Read::Int(-2)], vec![], None)
            .is_empty());
        assert_eq!(p.whole_keys(&[wrongtype(), Read::Int(-1)]), vec![k("l")]);
    }

    #[test]
    fn ltrim_reads_both_ends() {
        let list: Vec<String> = (0..10).map(|i| format!("e{i}")).collect();
        let lrange = |s: usize, e: usize| arr(list[s..e].iter().map(|x| bulk(x)).collect());
        // LTRIM l 2 -3 on 10 elements: removes e0 e1 and e8 e9.
        let p = plan_of("LTRIM l 2 -3", &[1]);
        let reads = [Read::Int(10), Read::Int(-1), lrange(0, 2), lrange(8, 10)];
        assert!(p.whole_keys(&reads).is_empty());
        assert_eq!(
            p.entries(&reads, vec![], None),
            [
                ttl("l", None),
                push("l", true, &["e1", "e0"]),
                push("l", false, &["e8", "e9"])
            ]
        );
        // LTRIM l -1 -5: start > stop, everything goes; head and tail reads cover it all.
        let p = plan_of("LTRIM l -1 -5", &[1]);
        assert_eq!(
            reads_of(&p),
            ["LLEN l", "PEXPIRETIME l", "LRANGE l 0 -2", "LRANGE l -4 -1"]
        );
        let reads = [Read::Int(10), Read::Int(-1), lrange(0, 9), lrange(6, 10)];
        let all: Vec<&str> = list.iter().rev().map(String::as_str).collect();
        assert_eq!(
            p.entries(&reads, vec![], None),
            [ttl("l", None), push("l", true, &all)]
        );
        // LTRIM l 0 -11 on 10 elements: everything, from the tail read.
        let p = plan_of("LTRIM l 0 -11", &[1]);
        let reads = [Read::Int(10), Read::Int(-1), lrange(0, 10)];
        assert_eq!(
            p.entries(&reads, vec![], None),
            [ttl("l", None), push("l", true, &all)]
        );
        // LTRIM l 5 2 on 10: head covers 0..5, tail 3..10: all of it.
        let p = plan_of("LTRIM l 5 2", &[1]);
        let reads = [Read::Int(10), Read::Int(-1), lrange(0, 5), lrange(3, 10)];
        assert_eq!(
            p.entries(&reads, vec![], None),
            [ttl("l", None), push("l", true, &all)]
        );
        // Replies that do not cover what goes: whole.
        let p = plan_of("LTRIM l 2 -3", &[1]);
        let reads = [Read::Int(10), Read::Int(-1), lrange(0, 1), lrange(8, 10)];
        assert_eq!(p.whole_keys(&reads), vec![k("l")]);
        let reads = [Read::Int(3), Read::Int(-1), lrange(0, 5), lrange(8, 10)];
        assert_eq!(p.whole_keys(&reads), vec![k("l")]);
        // Nothing removed, or no list.
        let p = plan_of("LTRIM l 0 -1", &[1]);
        assert_eq!(reads_of(&p), ["LLEN l", "PEXPIRETIME l"]);
        assert!(p
            .entries(&[Read::Int(10), Read::Int(-1)], vec![], None)
            .is_empty());
        assert!(p
            .entries(&[Read::Int(0), Read::Int(-2)], vec![], None)
            .is_empty());
    }
}
