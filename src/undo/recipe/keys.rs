//! Key-space commands. The EXPIRE family and PERSIST record the old absolute deadline
//! (`PEXPIRETIME`), unless the new one deletes the key: then the key goes whole. RENAME and
//! RENAMENX record the source's expiry and the rename itself (RENAME's destination goes
//! whole). COPY changes only its destination, which goes whole. DEL and UNLINK have no
//! recipe: their keys go whole.

use super::{
    bad_unless, expiry, parse_i64, ttl_at, Builder, Observed, Read, Recipe, EXPIRY_MARGIN_MS,
};
use crate::undo::entry::UndoEntry;

#[derive(Debug, Clone)]
pub(super) enum KeyRecipe<'a> {
    /// The EXPIRE family (when the deadline keeps the key) and PERSIST.
    Expire { key: &'a [u8], ttl: usize },
    /// RENAME / RENAMENX (`nx`): src's expiry, then the rename (dst is snapshotted whole for
    /// RENAME; RENAMENX succeeds only when dst does not exist).
    Rename {
        src: &'a [u8],
        dst: &'a [u8],
        ttl: usize,
        nx: bool,
    },
}

/// Whether `name` (lowercase) moves a key to another name (RENAME, RENAMENX): after it the
/// names hold other values, and its undo is a rename back, never skipped.
pub fn is_rename(name: &[u8]) -> bool {
    matches!(name, b"rename" | b"renamenx")
}

pub(super) fn build<'a>(
    name: &[u8],
    argv: &[&'a [u8]],
    now_ms: i64,
    b: &mut Builder<'a>,
) -> Option<Recipe<'a>> {
    let recipe = match name {
        b"expire" | b"pexpire" | b"expireat" | b"pexpireat" => {
            let (&k, &t) = match argv {
                [_, k, t, ..] => (k, t),
                _ => return None,
            };
            let t = parse_i64(t)?;
            let deletes = match name {
                b"expire" | b"pexpire" => t <= 0,
                b"expireat" => t
                    .checked_mul(1000)
                    .is_none_or(|ms| ms <= now_ms.saturating_add(EXPIRY_MARGIN_MS)),
                _ => t <= now_ms.saturating_add(EXPIRY_MARGIN_MS),
            };
            if deletes {
                b.key(k);
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            KeyRecipe::Expire { key, ttl }
        }
        b"persist" => {
            let k = argv.get(1).copied()?;
            if argv.len() != 2 {
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            KeyRecipe::Expire { key, ttl }
        }
        n if is_rename(n) => {
            let (&src, &dst) = match argv {
                [_, s, d] => (s, d),
                _ => return None,
            };
            let (srck, dstk) = (b.key(src), b.key(dst));
            if src == dst {
                return Some(Recipe::Nothing);
            }
            let nx = name == b"renamenx";
            if !nx {
                b.whole.add(dst);
            }
            // src's expiry, so that src's first entry in the log restores its deadline.
            let ttl = b.ttl(src);
            KeyRecipe::Rename {
                src: srck,
                dst: dstk,
                ttl,
                nx,
            }
        }
        b"copy" => {
            // COPY src dst [REPLACE]: only dst changes (the DB option is refused at queue time).
            let dst = argv.get(2).copied()?;
            b.key(dst);
            b.whole.add(dst);
            return Some(Recipe::Nothing);
        }
        _ => return None,
    };
    Some(Recipe::Key(recipe))
}

impl<'a> KeyRecipe<'a> {
    /// RENAMENX's entries depend on whether it renamed.
    pub(super) fn needs_reply(&self) -> bool {
        matches!(self, KeyRecipe::Rename { nx: true, .. })
    }

    pub(super) fn renames(&self) -> bool {
        matches!(self, KeyRecipe::Rename { .. })
    }

    pub(super) fn bad_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        match self {
            KeyRecipe::Expire { key: k, ttl } | KeyRecipe::Rename { src: k, ttl, .. } => {
                bad_unless(ttl_at(reads, *ttl).is_some(), [*k])
            }
        }
    }

    pub(super) fn entries(&self, seen: &Observed, out: &mut Vec<UndoEntry>) {
        let Observed { reads, reply, .. } = *seen;
        match self {
            KeyRecipe::Expire { key, ttl } => {
                if seen.is_whole(key) {
                    return;
                }
                if let Some(t) = ttl_at(reads, *ttl) {
                    expiry(key, t, out);
                }
            }
            KeyRecipe::Rename { src, dst, ttl, nx } => {
                if *nx && reply != Some(&Read::Int(1)) {
                    return;
                }
                if !seen.is_whole(src) {
                    if let Some(t) = ttl_at(reads, *ttl) {
                        expiry(src, t, out);
                    }
                }
                out.push(UndoEntry::Rename {
                    from: src.to_vec(),
                    to: dst.to_vec(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{k, plan_of, ttl};
    use crate::undo::entry::UndoEntry;
    use crate::undo::recipe::Read;

    #[test]
    fn expiry_and_renames() {
        let p = plan_of("PEXPIRE k 100", &[1]);
        assert_eq!(
            p.entries(&[Read::Int(5)], vec![], None),
            [ttl("k", Some(5))]
        );
        assert!(p.entries(&[Read::Int(-2)], vec![], None).is_empty());
        // The absolute deadlines near now delete the key: whole.
        for (cmd, whole) in [
            ("PEXPIREAT k 1700000002000", true),
            ("PEXPIREAT k 1700000002001", false),
            ("EXPIREAT k 1700000002", true),
            ("EXPIREAT k 1700000003", false),
            ("EXPIRE k 1", false),
            ("EXPIRE k -1", true),
            ("PEXPIRE k 0", true),
        ] {
            let p = plan_of(cmd, &[1]);
            assert_eq!(
                p.whole_keys(&[Read::Int(-1)]) == vec![k("k")],
                whole,
                "{cmd}"
            );
        }
        // RENAME: src's expiry, dst whole, then the rename.
        let p = plan_of("RENAME a b", &[1, 2]);
        let e = p.entries(&[Read::Int(7)], vec![(k("b"), None)], None);
        assert_eq!(
            e,
            [
                UndoEntry::Whole {
                    key: k("b"),
                    before: None
                },
                ttl("a", Some(7)),
                UndoEntry::Rename {
                    from: k("a"),
                    to: k("b")
                }
            ]
        );
        let p = plan_of("RENAMENX a b", &[1, 2]);
        assert!(p
            .entries(&[Read::Int(7)], vec![], Some(&Read::Int(0)))
            .is_empty());
        assert_eq!(
            p.entries(&[Read::Int(-1)], vec![], Some(&Read::Int(1))),
            [
                ttl("a", None),
                UndoEntry::Rename {
                    from: k("a"),
                    to: k("b")
                }
            ]
        );
        assert!(plan_of("RENAME a a", &[1, 2]).whole_keys(&[]).is_empty());
    }
}
