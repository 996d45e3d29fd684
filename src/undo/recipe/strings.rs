//! Strings: the SET family, APPEND, SETRANGE, INCR*/DECR*, GETDEL, GETEX, GETSET, SETBIT,
//! BITFIELD, MSET(NX) and BITOP's destination. The value and the expiry are put back whole
//! (`UndoEntry::Str`). SET overwrites any type: a key that is not a string makes GET fail, and
//! is then snapshotted whole.

use super::{parse_i64, ttl_at, Builder, KeyList, Observed, Read, Recipe, Ttl};
use crate::undo::entry::UndoEntry;

/// The string keys a command writes, each once.
#[derive(Debug, Clone)]
pub(super) struct StrRecipe<'a>(Vec<StrKey<'a>>);

#[derive(Debug, Clone)]
struct StrKey<'a> {
    key: &'a [u8],
    get: usize,
    ttl: usize,
}

/// Whether `name` (lowercase) is a string command that writes one key, its first argument,
/// whose whole undo is that key's value and expiry before it (`UndoEntry::Str`). The executor
/// may then read the pre-image itself ([`crate::undo::recipe::Plan`] would plan exactly
/// `GET key` + `PEXPIRETIME key`) when the server reports that key, and only it, as written.
pub fn writes_first_key(name: &[u8]) -> bool {
    matches!(
        name,
        b"set"
            | b"setnx"
            | b"setex"
            | b"psetex"
            | b"getset"
            | b"getdel"
            | b"getex"
            | b"append"
            | b"setrange"
            | b"incr"
            | b"decr"
            | b"incrby"
            | b"decrby"
            | b"incrbyfloat"
            | b"setbit"
            | b"bitfield"
    )
}

/// What `INCR`, `DECR`, `INCRBY` or `DECRBY` (`name` lowercase, `args` after it) adds to its
/// key: its old value is then its reply minus this (it succeeds only on a canonical integer,
/// and changes nothing otherwise). `None` for other commands, or an increment not in the one
/// form the command accepts.
pub fn counter_delta(name: &[u8], args: &[&[u8]]) -> Option<i64> {
    match (name, args) {
        (b"incr", [_]) => Some(1),
        (b"decr", [_]) => Some(-1),
        (b"incrby", [_, d]) => parse_i64(d),
        (b"decrby", [_, d]) => parse_i64(d)?.checked_neg(),
        _ => None,
    }
}

pub(super) fn build<'a>(name: &[u8], argv: &[&'a [u8]], b: &mut Builder<'a>) -> Option<Recipe<'a>> {
    let argc = argv.len();
    let keys: Vec<&'a [u8]> = match name {
        n if writes_first_key(n) => vec![argv.get(1).copied()?],
        b"mset" | b"msetnx" => {
            if argc < 3 || argc.is_multiple_of(2) {
                return None;
            }
            argv.iter().skip(1).step_by(2).copied().collect()
        }
        b"bitop" => vec![argv.get(2).copied()?],
        _ => return None,
    };
    let mut seen = KeyList::default();
    let mut out: Vec<StrKey<'a>> = Vec::new();
    for k in keys {
        if !seen.add(k) {
            continue;
        }
        let key = b.key(k);
        let get = b.read(&[b"GET", k]);
        let ttl = b.ttl(k);
        out.push(StrKey { key, get, ttl });
    }
    Some(Recipe::Str(StrRecipe(out)))
}

/// `GET` + `PEXPIRETIME` of a string key: `Some(None)` absent, `Some(Some(..))` a string.
type StrBefore = Option<(Vec<u8>, Option<i64>)>;

fn str_before(reads: &[Read], s: &StrKey) -> Option<StrBefore> {
    match (reads.get(s.get)?, ttl_at(reads, s.ttl)?) {
        (Read::Nil, Ttl::Absent) => Some(None),
        (Read::Bulk(v), Ttl::At(t)) => Some(Some((v.clone(), t))),
        _ => None,
    }
}

impl<'a> StrRecipe<'a> {
    /// Each key on its own: a key whose GET fails (not a string) goes whole, the rest do not.
    pub(super) fn bad_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        self.0
            .iter()
            .filter(|s| str_before(reads, s).is_none())
            .map(|s| s.key)
            .collect()
    }

    pub(super) fn entries(&self, seen: &Observed, out: &mut Vec<UndoEntry>) {
        let Observed { reads, .. } = *seen;
        for s in &self.0 {
            if seen.is_whole(s.key) {
                continue;
            }
            if let Some(before) = str_before(reads, s) {
                out.push(UndoEntry::Str {
                    key: s.key.to_vec(),
                    before,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bulk, k, plan_of, wrongtype, NOW};
    use crate::undo::entry::{Snapshot, UndoEntry};
    use crate::undo::recipe::Read;

    #[test]
    fn first_key_commands_plan_get_and_expiry_of_that_key() {
        use crate::undo::recipe::writes_first_key;
        for name in [
            "SET",
            "SETNX",
            "SETEX",
            "PSETEX",
            "GETSET",
            "GETDEL",
            "GETEX",
            "APPEND",
            "SETRANGE",
            "INCR",
            "DECR",
            "INCRBY",
            "DECRBY",
            "INCRBYFLOAT",
            "SETBIT",
            "BITFIELD",
        ] {
            assert!(
                writes_first_key(name.to_ascii_lowercase().as_bytes()),
                "{name}"
            );
            let p = plan_of(&format!("{name} k 1 2"), &[1]);
            assert_eq!(
                p.reads(),
                [vec![k("GET"), k("k")], vec![k("PEXPIRETIME"), k("k")]],
                "{name}"
            );
            assert_eq!(p.keys(), [k("k")], "{name}");
            assert!(p.is_barrier_free() && !p.needs_reply(), "{name}");
            assert!(
                p.whole_keys(&[Read::Nil, Read::Int(-2)]).is_empty(),
                "{name}"
            );
        }
        for name in ["mset", "msetnx", "bitop", "get", "hset", "del"] {
            assert!(!writes_first_key(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn counters_say_what_they_add() {
        use crate::undo::recipe::counter_delta;
        let d = |line: &str| {
            let v: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            counter_delta(v[0], &v[1..])
        };
        assert_eq!(d("incr k"), Some(1));
        assert_eq!(d("decr k"), Some(-1));
        assert_eq!(d("incrby k -7"), Some(-7));
        assert_eq!(d("decrby k 5"), Some(-5));
        // Forms the server refuses, other commands, wrong arity.
        for line in [
            "incrby k +5",
            "incrby k 05",
            "incrby k x",
            "decrby k -9223372036854775808",
        ] {
            assert_eq!(d(line), None, "{line}");
        }
        for line in ["set k 1", "incr k 1", "incrby k", "incrbyfloat k 1"] {
            assert_eq!(d(line), None, "{line}");
        }
    }

    #[test]
    fn strings_restore_value_and_deadline() {
        let p = plan_of("SET k v", &[1]);
        let e = p.entries(&[bulk("old"), Read::Int(NOW + 5)], vec![], None);
        assert_eq!(
            e,
            [UndoEntry::Str {
                key: k("k"),
                before: Some((k("old"), Some(NOW + 5)))
            }]
        );
        let e = p.entries(&[Read::Nil, Read::Int(-2)], vec![], None);
        assert_eq!(
            e,
            [UndoEntry::Str {
                key: k("k"),
                before: None
            }]
        );
        // SET over a hash: GET fails, the key goes whole.
        let reads = [wrongtype(), Read::Int(-1)];
        assert_eq!(p.whole_keys(&reads), vec![k("k")]);
        let snap = Snapshot {
            payload: vec![9],
            expire_at_ms: None,
        };
        let e = p.entries(&reads, vec![(k("k"), Some(snap.clone()))], None);
        assert_eq!(
            e,
            [UndoEntry::Whole {
                key: k("k"),
                before: Some(snap)
            }]
        );
        // Replies that contradict each other are not trusted.
        for reads in [
            [bulk("v"), Read::Int(-2)],
            [Read::Nil, Read::Int(-1)],
            [bulk("v"), Read::Int(-7)],
            [Read::Int(3), Read::Int(-1)],
            [bulk("v"), bulk("-1")],
        ] {
            assert_eq!(p.whole_keys(&reads), vec![k("k")], "{reads:?}");
        }
        assert_eq!(p.whole_keys(&[bulk("v")]), vec![k("k")], "missing read");
        // MSET: each key on its own.
        let p = plan_of("MSET a 1 b 2", &[1, 3]);
        let reads = [wrongtype(), Read::Int(-1), Read::Nil, Read::Int(-2)];
        assert_eq!(p.whole_keys(&reads), vec![k("a")]);
        let e = p.entries(&reads, vec![(k("a"), None)], None);
        assert_eq!(
            e,
            [
                UndoEntry::Whole {
                    key: k("a"),
                    before: None
                },
                UndoEntry::Str {
                    key: k("b"),
                    before: None
                }
            ]
        );
    }
}
