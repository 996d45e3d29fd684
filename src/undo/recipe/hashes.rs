//! Hashes: HSET, HMSET, HSETNX, HDEL, HINCRBY, HINCRBYFLOAT. `HMGET` of the touched fields
//! gives their values (and existence); each field that changes gets a `HashField` entry.
//! With `Features::hash_field_ttl`, a field with its own TTL sends the key whole: putting it
//! back with `HSET` would lose the TTL.

use super::{
    bad_unless, distinct, per_element, with_expiry, Builder, Collection, Features, Growth,
    Observed, Read, ReadCmd, Recipe, Ttl,
};
use crate::undo::entry::UndoEntry;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashOp {
    /// HSET, HMSET, HINCRBY, HINCRBYFLOAT: every field may change.
    Set,
    /// HSETNX: only an absent field changes.
    SetNx,
    /// HDEL: only a present field changes.
    Del,
}

#[derive(Debug, Clone)]
pub(super) struct HashRecipe<'a> {
    key: &'a [u8],
    op: HashOp,
    fields: Vec<&'a [u8]>,
    values: usize,
    ttl: usize,
    field_ttls: Option<usize>,
    /// HSET, HMSET, HSETNX, HINCRBY on a server without field TTLs: `(added, longest)` of
    /// their [`Growth`].
    grows: Option<(usize, usize)>,
}

/// The most bytes of a value `HINCRBY` writes (`-9223372036854775808`).
const INT_TEXT_MAX: usize = 20;

pub(super) fn build<'a>(
    name: &[u8],
    argv: &[&'a [u8]],
    features: Features,
    b: &mut Builder<'a>,
) -> Option<Recipe<'a>> {
    let argc = argv.len();
    let k = argv.get(1).copied()?;
    let (op, fields) = match name {
        b"hset" | b"hmset" if argc >= 4 && argc.is_multiple_of(2) => (
            HashOp::Set,
            argv.iter().skip(2).step_by(2).copied().collect(),
        ),
        b"hsetnx" if argc == 4 => (HashOp::SetNx, vec![argv.get(2).copied()?]),
        b"hincrby" | b"hincrbyfloat" if argc == 4 => (HashOp::Set, vec![argv.get(2).copied()?]),
        b"hdel" if argc >= 3 => (HashOp::Del, argv.get(2..)?.to_vec()),
        _ => return None,
    };
    // A field with a TTL is put back whole (see `before`), and where fields may have TTLs a
    // listpack orders them by TTL: no growth is claimed there.
    let longest = |args: &[&[u8]]| args.iter().map(|a| a.len()).max().unwrap_or(0);
    let grows = match name {
        _ if features.hash_field_ttl => None,
        b"hset" | b"hmset" | b"hsetnx" => argv.get(2..).map(|a| (a.len() / 2, longest(a))),
        b"hincrby" => argv.get(2).map(|f| (1, f.len().max(INT_TEXT_MAX))),
        _ => None,
    };
    let fields = distinct(fields);
    let key = b.key(k);
    let values = b.read_with(b"HMGET", k, &fields);
    let ttl = b.ttl(k);
    let field_ttls = features.hash_field_ttl.then(|| {
        let mut c: ReadCmd<'a> = vec![
            Cow::Borrowed(&b"HPEXPIRETIME"[..]),
            Cow::Borrowed(k),
            Cow::Borrowed(&b"FIELDS"[..]),
            Cow::Owned(fields.len().to_string().into_bytes()),
        ];
        c.extend(fields.iter().map(|&f| Cow::Borrowed(f)));
        b.read_cmd(c)
    });
    Some(Recipe::Hash(HashRecipe {
        key,
        op,
        fields,
        values,
        ttl,
        field_ttls,
        grows,
    }))
}

impl<'a> HashRecipe<'a> {
    /// Whether the reads check out (as [`HashRecipe::before`] would find, without copying
    /// the values).
    fn checks_out(&self, reads: &[Read]) -> bool {
        let present = |r: &Read| match r {
            Read::Nil => Some(false),
            Read::Bulk(_) => Some(true),
            _ => None,
        };
        self.parse(reads, present, |&p| p).is_some()
    }

    /// Per-field values from `HMGET`, validated (and field TTLs, when read).
    fn before(&self, reads: &[Read]) -> Option<(Ttl, Vec<Option<Vec<u8>>>)> {
        let value = |r: &Read| match r {
            Read::Nil => Some(None),
            Read::Bulk(v) => Some(Some(v.clone())),
            _ => None,
        };
        self.parse(reads, value, Option::is_some)
    }

    /// The reads, each field's value parsed by `value` (`there`: the field exists).
    fn parse<T>(
        &self,
        reads: &[Read],
        value: impl Fn(&Read) -> Option<T>,
        there: impl Fn(&T) -> bool,
    ) -> Option<(Ttl, Vec<T>)> {
        let n = self.fields.len();
        let (t, vals) = per_element(reads, self.values, n, self.ttl, value, there)?;
        if let (Some(i), true) = (self.field_ttls, t.exists()) {
            // -2 no such field, -1 no TTL; a field with a TTL (>= 0) cannot be put back by HSET.
            match reads.get(i)? {
                Read::Array(ts) if ts.len() == n => {
                    if !ts.iter().all(|x| matches!(x, Read::Int(-2 | -1))) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        Some((t, vals))
    }

    /// The hash: a field put back with `HSET` goes to the end of a listpack, and a value that
    /// converted it to a hashtable leaves the hashtable behind.
    pub(super) fn element_keys(&self) -> Vec<&'a [u8]> {
        vec![self.key]
    }

    pub(super) fn fields_of(&self, key: &[u8]) -> Option<&[&'a [u8]]> {
        (key == self.key).then_some(self.fields.as_slice())
    }

    pub(super) fn growth(&self, key: &[u8]) -> Option<Growth> {
        let (added, longest) = self.grows.filter(|_| key == self.key)?;
        Some(Growth {
            kind: Collection::Hash,
            added,
            longest,
        })
    }

    pub(super) fn bad_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        bad_unless(self.checks_out(reads), [self.key])
    }

    pub(super) fn entries(&self, seen: &Observed, out: &mut Vec<UndoEntry>) {
        let Observed { reads, .. } = *seen;
        if seen.is_whole(self.key) {
            return;
        }
        let Some((t, vals)) = self.before(reads) else {
            return;
        };
        let changed: Vec<UndoEntry> = self
            .fields
            .iter()
            .zip(vals)
            .filter(|(_, v)| match self.op {
                HashOp::Set => true,
                HashOp::SetNx => v.is_none(),
                HashOp::Del => v.is_some(),
            })
            .map(|(f, before)| UndoEntry::HashField {
                key: self.key.to_vec(),
                field: f.to_vec(),
                before,
            })
            .collect();
        with_expiry(self.key, t, changed, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{args, arr, bulk, k, plan_of, reads_of, ttl, wrongtype, NOW};
    use crate::undo::entry::UndoEntry;
    use crate::undo::recipe::{plan_with, Features, Read};

    fn hf(key: &str, f: &str, before: Option<&str>) -> UndoEntry {
        UndoEntry::HashField {
            key: k(key),
            field: k(f),
            before: before.map(k),
        }
    }

    #[test]
    fn hashes_record_touched_fields_once() {
        let p = plan_of("HSET h f 1 g 2 f 3", &[1]);
        let e = p.entries(
            &[arr(vec![bulk("0"), Read::Nil]), Read::Int(77)],
            vec![],
            None,
        );
        assert_eq!(
            e,
            [
                ttl("h", Some(77)),
                hf("h", "f", Some("0")),
                hf("h", "g", None)
            ]
        );
        // A new hash: no expiry to restore (undoing the fields deletes it).
        let e = p.entries(
            &[arr(vec![Read::Nil, Read::Nil]), Read::Int(-2)],
            vec![],
            None,
        );
        assert_eq!(e, [hf("h", "f", None), hf("h", "g", None)]);
        // HDEL: only fields that were there.
        let p = plan_of("HDEL h f g", &[1]);
        let e = p.entries(
            &[arr(vec![bulk("1"), Read::Nil]), Read::Int(-1)],
            vec![],
            None,
        );
        assert_eq!(e, [ttl("h", None), hf("h", "f", Some("1"))]);
        let e = p.entries(
            &[arr(vec![Read::Nil, Read::Nil]), Read::Int(-1)],
            vec![],
            None,
        );
        assert!(e.is_empty());
        // HSETNX on a present field changes nothing.
        let p = plan_of("HSETNX h f v", &[1]);
        assert!(p
            .entries(&[arr(vec![bulk("1")]), Read::Int(-1)], vec![], None)
            .is_empty());
        // Wrong type, wrong length, or values for an absent key: whole.
        for reads in [
            [wrongtype(), Read::Int(-1)],
            [arr(vec![]), Read::Int(-1)],
            [arr(vec![bulk("1")]), Read::Int(-2)],
        ] {
            assert_eq!(p.whole_keys(&reads), vec![k("h")]);
        }
    }

    #[test]
    fn hash_fields_with_their_own_ttl_go_whole() {
        let a = args("HDEL h f g");
        let refs: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
        let p = plan_with(
            &refs,
            &[1],
            NOW,
            Features {
                hash_field_ttl: true,
            },
        );
        assert_eq!(
            reads_of(&p),
            [
                "HMGET h f g",
                "PEXPIRETIME h",
                "HPEXPIRETIME h FIELDS 2 f g"
            ]
        );
        let vals = arr(vec![bulk("1"), bulk("2")]);
        let ok = [
            vals.clone(),
            Read::Int(-1),
            arr(vec![Read::Int(-1), Read::Int(-2)]),
        ];
        assert!(p.whole_keys(&ok).is_empty());
        let with_ttl = [
            vals.clone(),
            Read::Int(-1),
            arr(vec![Read::Int(NOW), Read::Int(-1)]),
        ];
        assert_eq!(p.whole_keys(&with_ttl), vec![k("h")]);
        let refused = [
            vals,
            Read::Int(-1),
            Read::Error(b"ERR unknown command".to_vec()),
        ];
        assert_eq!(p.whole_keys(&refused), vec![k("h")]);
        // An absent key has no fields, whatever HPEXPIRETIME answers for it.
        let absent = [arr(vec![Read::Nil, Read::Nil]), Read::Int(-2), Read::Nil];
        assert!(p.whole_keys(&absent).is_empty());
    }
}
