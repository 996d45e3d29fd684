//! Sets: SADD and SREM read the membership of the members they touch (`SMISMEMBER`) — of one
//! member, their reply says whether it changed, so they read nothing but the key's expiry —
//! SMOVE the member's membership in both sets (`SISMEMBER`), SPOP takes the members from its
//! reply. Each member that changes gets a `SetMember` entry.

use super::{
    bad_unless, distinct, expiry, per_element, pop_key, popped, tail, ttl_at, with_expiry, Builder,
    Observed, Read, Recipe, Ttl,
};
use crate::undo::entry::UndoEntry;

#[derive(Debug, Clone)]
pub(super) enum SetRecipe<'a> {
    Members(Membership<'a>),
    /// SMOVE: `SISMEMBER` of the member in both sets.
    Move {
        src: &'a [u8],
        dst: &'a [u8],
        member: &'a [u8],
        src_has: usize,
        src_ttl: usize,
        dst_has: usize,
        dst_ttl: usize,
    },
    /// SPOP: the members come from the reply.
    Pop {
        key: &'a [u8],
        ttl: usize,
    },
}

/// SADD (`add`) / SREM: `SMISMEMBER` of the members, or (`flags` `None`) of one member, the
/// command's reply (how many members it added or removed: 1 or 0).
#[derive(Debug, Clone)]
pub(super) struct Membership<'a> {
    key: &'a [u8],
    add: bool,
    members: Vec<&'a [u8]>,
    flags: Option<usize>,
    ttl: usize,
}

pub(super) fn build<'a>(name: &[u8], argv: &[&'a [u8]], b: &mut Builder<'a>) -> Option<Recipe<'a>> {
    let argc = argv.len();
    let key1 = argv.get(1).copied();
    let recipe = match name {
        b"sadd" | b"srem" => {
            let k = key1?;
            if argc < 3 {
                return None;
            }
            let members = distinct(tail(argv, 2));
            let key = b.key(k);
            let flags = (members.len() > 1).then(|| b.read_with(b"SMISMEMBER", k, &members));
            let ttl = b.ttl(k);
            SetRecipe::Members(Membership {
                key,
                add: name == b"sadd",
                members,
                flags,
                ttl,
            })
        }
        b"smove" => {
            let (&src, &dst, &m) = match argv {
                [_, s, d, m] => (s, d, m),
                _ => return None,
            };
            if src == dst {
                // Redis: SMOVE between a set and itself changes nothing.
                b.key(src);
                return Some(Recipe::Nothing);
            }
            let (srck, dstk) = (b.key(src), b.key(dst));
            let src_has = b.read(&[b"SISMEMBER", src, m]);
            let src_ttl = b.ttl(src);
            let dst_has = b.read(&[b"SISMEMBER", dst, m]);
            let dst_ttl = b.ttl(dst);
            SetRecipe::Move {
                src: srck,
                dst: dstk,
                member: m,
                src_has,
                src_ttl,
                dst_has,
                dst_ttl,
            }
        }
        b"spop" => {
            let (key, ttl) = pop_key(argv, b)?;
            SetRecipe::Pop { key, ttl }
        }
        _ => return None,
    };
    Some(Recipe::Set(recipe))
}

impl Membership<'_> {
    /// Whether each member was in the set before the command, validated. Of one member, from
    /// the command's `reply` (`None` before the command ran: only the expiry is checked).
    fn before(&self, reads: &[Read], reply: Option<&Read>) -> Option<(Ttl, Vec<bool>)> {
        let flag = |r: &Read| match r {
            Read::Int(0) => Some(false),
            Read::Int(1) => Some(true),
            _ => None,
        };
        let n = self.members.len();
        let Some(flags) = self.flags else {
            let t = ttl_at(reads, self.ttl)?;
            let Some(reply) = reply else {
                return Some((t, Vec::new()));
            };
            // SADD added the member (1): it was absent; SREM removed it (1): it was there.
            let present = flag(reply)? != self.add;
            if present && !t.exists() {
                return None;
            }
            return Some((t, vec![present]));
        };
        per_element(reads, flags, n, self.ttl, flag, |&present| present)
    }

    /// A `SetMember` entry per member the command adds (SADD) or removes (SREM).
    fn entries(&self, reads: &[Read], reply: Option<&Read>, out: &mut Vec<UndoEntry>) {
        let Some((t, present)) = self.before(reads, reply) else {
            return;
        };
        let changed: Vec<UndoEntry> = self
            .members
            .iter()
            .zip(present)
            .filter(|(_, p)| *p != self.add)
            .map(|(m, present)| UndoEntry::SetMember {
                key: self.key.to_vec(),
                member: m.to_vec(),
                present,
            })
            .collect();
        with_expiry(self.key, t, changed, out);
    }
}

fn member_flag(reads: &[Read], i: usize, ttl: usize) -> Option<(Ttl, bool)> {
    let t = ttl_at(reads, ttl)?;
    let has = match reads.get(i)? {
        Read::Int(0) => false,
        Read::Int(1) => true,
        _ => return None,
    };
    if has && !t.exists() {
        return None;
    }
    Some((t, has))
}

impl<'a> SetRecipe<'a> {
    pub(super) fn needs_reply(&self) -> bool {
        match self {
            SetRecipe::Pop { .. } => true,
            SetRecipe::Members(m) => m.flags.is_none(),
            SetRecipe::Move { .. } => false,
        }
    }

    /// Every key: a member put back with `SADD` goes to the end of a listpack, and one that
    /// converted an intset (a string, or one member too many) leaves the new encoding behind.
    pub(super) fn element_keys(&self) -> Vec<&'a [u8]> {
        match self {
            SetRecipe::Members(m) => vec![m.key],
            SetRecipe::Move { src, dst, .. } => vec![src, dst],
            SetRecipe::Pop { key, .. } => vec![key],
        }
    }

    pub(super) fn bad_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        match self {
            SetRecipe::Members(m) => bad_unless(m.before(reads, None).is_some(), [m.key]),
            SetRecipe::Move {
                src,
                dst,
                src_has,
                src_ttl,
                dst_has,
                dst_ttl,
                ..
            } => bad_unless(
                member_flag(reads, *src_has, *src_ttl).is_some()
                    && member_flag(reads, *dst_has, *dst_ttl).is_some(),
                [*src, *dst],
            ),
            SetRecipe::Pop { key, ttl } => bad_unless(ttl_at(reads, *ttl).is_some(), [*key]),
        }
    }

    pub(super) fn entries(&self, seen: &Observed, out: &mut Vec<UndoEntry>) {
        let Observed { reads, reply, .. } = *seen;
        match self {
            SetRecipe::Members(m) => {
                if !seen.is_whole(m.key) {
                    m.entries(reads, reply, out);
                }
            }
            SetRecipe::Move {
                src,
                dst,
                member,
                src_has,
                src_ttl,
                dst_has,
                dst_ttl,
            } => {
                let (Some((st, true)), Some((dt, dhas))) = (
                    member_flag(reads, *src_has, *src_ttl),
                    member_flag(reads, *dst_has, *dst_ttl),
                ) else {
                    return;
                };
                // Either key may be whole (a compact one): the other gets its entries.
                let (src_whole, dst_whole) = (seen.is_whole(src), seen.is_whole(dst));
                if !src_whole {
                    expiry(src, st, out);
                }
                if !dst_whole {
                    expiry(dst, dt, out);
                }
                if !src_whole {
                    out.push(UndoEntry::SetMember {
                        key: src.to_vec(),
                        member: member.to_vec(),
                        present: true,
                    });
                }
                if !dhas && !dst_whole {
                    out.push(UndoEntry::SetMember {
                        key: dst.to_vec(),
                        member: member.to_vec(),
                        present: false,
                    });
                }
            }
            SetRecipe::Pop { key, ttl } => {
                if seen.is_whole(key) {
                    return;
                }
                let Some(t) = ttl_at(reads, *ttl) else {
                    return;
                };
                let popped = popped(reply);
                let members = distinct(popped.iter().map(Vec::as_slice))
                    .into_iter()
                    .map(|m| UndoEntry::SetMember {
                        key: key.to_vec(),
                        member: m.to_vec(),
                        present: true,
                    })
                    .collect();
                with_expiry(key, t, members, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{arr, bulk, k, plan_of, ttl, wrongtype};
    use crate::undo::entry::UndoEntry;
    use crate::undo::recipe::Read;

    #[test]
    fn one_member_changes_are_read_from_the_reply() {
        for (cmd, present) in [("SADD s m", false), ("SREM s m", true)] {
            let p = plan_of(cmd, &[1]);
            assert_eq!(p.reads(), [vec![k("PEXPIRETIME"), k("s")]], "{cmd}");
            assert!(p.needs_reply(), "{cmd}");
            assert!(p.whole_keys(&[Read::Int(-1)]).is_empty(), "{cmd}");
            assert_eq!(p.whole_keys(&[bulk("?")]), vec![k("s")], "{cmd}");
            // Changed (1): one entry after the expiry; unchanged (0): none.
            let e = p.entries(&[Read::Int(7)], vec![], Some(&Read::Int(1)));
            assert_eq!(
                e,
                [
                    ttl("s", Some(7)),
                    UndoEntry::SetMember {
                        key: k("s"),
                        member: k("m"),
                        present
                    }
                ],
                "{cmd}"
            );
            assert!(p
                .entries(&[Read::Int(7)], vec![], Some(&Read::Int(0)))
                .is_empty());
            // A reply that is not 0 or 1 is not trusted.
            assert!(p
                .entries(&[Read::Int(7)], vec![], Some(&Read::Int(2)))
                .is_empty());
        }
        // SADD creating the set: no expiry entry, the member goes again.
        let p = plan_of("SADD s m", &[1]);
        assert_eq!(
            p.entries(&[Read::Int(-2)], vec![], Some(&Read::Int(1))),
            [UndoEntry::SetMember {
                key: k("s"),
                member: k("m"),
                present: false
            }]
        );
        // SREM cannot have removed a member from a set that did not exist.
        let p = plan_of("SREM s m", &[1]);
        assert!(p
            .entries(&[Read::Int(-2)], vec![], Some(&Read::Int(1)))
            .is_empty());
    }

    #[test]
    fn sets_record_membership_changes() {
        let p = plan_of("SADD s a b a", &[1]);
        let e = p.entries(
            &[arr(vec![Read::Int(1), Read::Int(0)]), Read::Int(5)],
            vec![],
            None,
        );
        assert_eq!(
            e,
            [
                ttl("s", Some(5)),
                UndoEntry::SetMember {
                    key: k("s"),
                    member: k("b"),
                    present: false
                }
            ]
        );
        let p = plan_of("SMOVE a b m", &[1, 2]);
        let e = p.entries(
            &[Read::Int(1), Read::Int(-1), Read::Int(0), Read::Int(-2)],
            vec![],
            None,
        );
        assert_eq!(
            e,
            [
                ttl("a", None),
                UndoEntry::SetMember {
                    key: k("a"),
                    member: k("m"),
                    present: true
                },
                UndoEntry::SetMember {
                    key: k("b"),
                    member: k("m"),
                    present: false
                }
            ]
        );
        let reads = [Read::Int(1), Read::Int(-1), wrongtype(), Read::Int(-1)];
        assert_eq!(p.whole_keys(&reads), vec![k("a"), k("b")]);
        // SPOP: a bulk, an array, or nil.
        let p = plan_of("SPOP s 2", &[1]);
        let e = p.entries(
            &[Read::Int(-1)],
            vec![],
            Some(&arr(vec![bulk("x"), bulk("y")])),
        );
        assert_eq!(e.len(), 3);
        let p = plan_of("SPOP s", &[1]);
        assert_eq!(
            p.entries(&[Read::Int(-1)], vec![], Some(&bulk("x"))).len(),
            2
        );
        assert!(p
            .entries(&[Read::Int(-2)], vec![], Some(&Read::Nil))
            .is_empty());
    }
}
