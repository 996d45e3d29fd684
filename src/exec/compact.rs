//! Which keys are held in a compact encoding (listpack, intset) right now: those are copied
//! whole before a write, so a rollback gives them back their exact representation.

use crate::error::TxuError;
use crate::ffi::keys::KeyKind;
use crate::ffi::{call, configs, context, keys, CtxPtr, OwnedStr, ReplyKind};
use crate::undo::log::UndoLog;
use crate::undo::recipe::{Collection, Growth, Plan, Read};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// What the transaction learnt so far of its keys' encodings (see [`compact_keys`]).
#[derive(Debug, Default)]
pub struct Seen {
    /// Keys that `OBJECT ENCODING` found in a large encoding and that nothing changed since
    /// (the write that asked changed nothing, `SADD` of a member already there): any later
    /// change to such a key is logged (so the log covers it or undoes it element by element)
    /// before its encoding could change, so it is not asked again. Cleared at a rename.
    large: Vec<Vec<u8>>,
    /// Keys written element by element without asking, by writes that keep a compact key
    /// compact ([`Growth`]): the key's encoding before the transaction is still unknown, and
    /// a later write that could change it asks then (the writes since kept it).
    unasked: Vec<Vec<u8>>,
}

impl Seen {
    /// A rename: the names now hold other values.
    pub fn renamed(&mut self) {
        self.large.clear();
    }
}

/// The keys of a plan's [`Plan::element_keys`] held in a compact encoding now — a listpack or
/// an intset — whose element-level undo would not put their representation back (a field
/// re-added at the end of a listpack, a converted intset left a hashtable): they are
/// snapshotted whole instead, which is cheap since a compact encoding is small by
/// construction. Keys that do not exist (undoing their elements deletes them) need nothing,
/// nor do keys the log already restores in full or already undoes element by element
/// (their state before the transaction is what counts, and it was decided at their first
/// write: see `UndoLog::has_elements`), nor writes that provably keep a compact key compact
/// and are undone exactly element by element ([`Plan::growth`]: an `HSET` of short fields
/// and values, a `ZADD` of short members, within the encoding's entry limit).
///
/// The key API says whether a key exists, what it holds and how many elements (no command
/// call); a key with more elements than a compact encoding of its type can hold
/// ([`compact_limits`]) is not compact, so a write to a big key costs no more than that.
/// For the others `OBJECT ENCODING` (O(1), no LRU/LFU touch) answers: a small key may still
/// be in a large encoding (one long value makes a hash a hashtable), and copying it whole
/// would cost as much as its values.
pub fn compact_keys<'a>(
    ctx: CtxPtr,
    plan: &Plan<'a>,
    undo: &UndoLog,
    facts: &super::preimage::Facts<'_>,
    seen: &mut Seen,
) -> Result<Compact<'a>, TxuError> {
    let mut out = Compact::default();
    let keys = plan.element_keys();
    if keys.is_empty() {
        return Ok(out);
    }
    let limits = compact_limits(ctx);
    for key in keys {
        if undo.covers(key) || seen.large.iter().any(|k| k.as_slice() == key) {
            continue;
        }
        let unasked = seen.unasked.iter().any(|k| k.as_slice() == key);
        if undo.has_elements(key) && !unasked {
            continue;
        }
        // Looked up already when the command's keys were, else now.
        let info = match super::preimage::fact(facts, key) {
            Some(f) => f.map(|f| (f.kind, f.len)),
            None => {
                let k = OwnedStr::create(key).ok_or(TxuError::OutOfMemory)?;
                keys::key_info(ctx, k.as_str())
            }
        };
        let may_be_compact = match info {
            Some((KeyKind::Hash, n)) => n <= limits.hash,
            Some((KeyKind::Set, n)) => n <= limits.set,
            Some((KeyKind::ZSet, n)) => n <= limits.zset,
            Some((KeyKind::List, n)) => n <= limits.list,
            _ => false,
        };
        if !may_be_compact {
            continue;
        }
        let stays = match (info, plan.growth(key)) {
            (Some((kind, n)), Some(g)) => stays_compact(g, kind, n, &limits),
            _ => false,
        };
        if stays {
            if !unasked {
                seen.unasked.push(key.to_vec());
            }
            continue;
        }
        let read = hash_fields_read(ctx, plan, key, info, &limits);
        let long = read
            .as_ref()
            .is_some_and(|h| h.holds_long(limits.hash_value));
        if read.is_some() {
            out.hash_values = read;
        }
        if long {
            seen.large.push(key.to_vec());
        } else if is_compact(ctx, key)? {
            out.whole.push(key);
        } else {
            seen.large.push(key.to_vec());
        }
    }
    Ok(out)
}

/// What [`compact_keys`] found: the keys to snapshot whole, and the values of the hash fields
/// it read on the way (the command's `HMGET` pre-image then reads nothing again).
#[derive(Debug, Default)]
pub struct Compact<'a> {
    pub whole: Vec<&'a [u8]>,
    pub hash_values: Option<HashValues<'a>>,
}

/// The values of `fields` of the hash `key`, read through the key API.
#[derive(Debug)]
pub struct HashValues<'a> {
    pub key: &'a [u8],
    pub fields: Vec<&'a [u8]>,
    pub values: Vec<Option<Vec<u8>>>,
}

impl HashValues<'_> {
    /// Whether a field present has a name or value longer than `max` (see
    /// [`hash_fields_read`]).
    fn holds_long(&self, max: Option<usize>) -> bool {
        let Some(max) = max else {
            return false;
        };
        self.fields.iter().zip(&self.values).any(|(name, value)| {
            value
                .as_ref()
                .is_some_and(|v| v.len() > max || name.len() > max)
        })
    }

    /// Whether they answer the pre-image read `cmd`: `HMGET` of the same key and fields.
    pub fn answers(&self, cmd: &[Cow<'_, [u8]>]) -> bool {
        matches!(cmd, [name, key, fields @ ..]
            if name.eq_ignore_ascii_case(b"HMGET")
                && **key == *self.key
                && fields.len() == self.fields.len()
                && fields.iter().zip(&self.fields).all(|(a, b)| **a == **b))
    }

    /// The read's reply, as `HMGET` gives it.
    pub fn into_read(self) -> Read {
        Read::Array(
            self.values
                .into_iter()
                .map(|v| v.map_or(Read::Nil, Read::Bulk))
                .collect(),
        )
    }
}

/// The fields of the hash `key` the command touches and their values, read through the key
/// API (which servers with hash-field TTLs do not get, see `keys::hash_get`). A field name or
/// value longer than `hash-max-listpack-value` ([`HashValues::holds_long`]) means the hash is not a
/// listpack the server would keep or load (a listpack gets such a value only by a config
/// lowered after it was written; `RESTORE` would convert it, see the README): it need not be
/// asked about.
fn hash_fields_read<'a>(
    ctx: CtxPtr,
    plan: &Plan<'a>,
    key: &'a [u8],
    info: Option<(KeyKind, usize)>,
    limits: &CompactLimits,
) -> Option<HashValues<'a>> {
    let (Some((KeyKind::Hash, _)), Some(_), Some(fields)) =
        (info, limits.hash_value, plan.hash_fields(key))
    else {
        return None;
    };
    if super::preimage::features(ctx).hash_field_ttl {
        return None;
    }
    let k = OwnedStr::create(key)?;
    let values = keys::hash_get(ctx, k.as_str(), fields)?;
    Some(HashValues {
        key,
        fields: fields.to_vec(),
        values,
    })
}

/// Whether a key of `kind` with `len` elements, if compact, is still compact after a write
/// that grows it by `g` (see [`Growth`]): the server converts a listpack when it would hold
/// more entries than `*-max-listpack-entries` or an element longer than
/// `*-max-listpack-value`, and sizes the first check by the command's arguments.
fn stays_compact(g: Growth, kind: KeyKind, len: usize, l: &CompactLimits) -> bool {
    let (entries, value) = match (g.kind, kind) {
        (Collection::Hash, KeyKind::Hash) => (l.hash, l.hash_value),
        (Collection::ZSet, KeyKind::ZSet) => (l.zset, l.zset_value),
        _ => return false,
    };
    let fits = len.checked_add(g.added).is_some_and(|n| n <= entries);
    fits && value.is_some_and(|v| g.longest <= v)
}

/// Whether `OBJECT ENCODING key` names a compact encoding (`listpackex`: a listpack hash
/// whose fields have TTLs, Redis >= 7.4).
fn is_compact(ctx: CtxPtr, key: &[u8]) -> Result<bool, TxuError> {
    let r = call::call_plain(ctx, c"OBJECT", &[b"ENCODING", key])?;
    let r = r.as_ref();
    Ok(r.kind() == ReplyKind::String
        && matches!(
            r.bytes(),
            b"listpack" | b"listpackex" | b"intset" | b"ziplist"
        ))
}

/// The most elements a key of each collection type can hold in a compact encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CompactLimits {
    hash: usize,
    set: usize,
    zset: usize,
    list: usize,
    /// The longest field or value of a listpack hash, member of a listpack sorted set
    /// (`None`: not known).
    hash_value: Option<usize>,
    zset_value: Option<usize>,
}

impl CompactLimits {
    /// Nothing known: every collection may be compact (`OBJECT ENCODING` decides).
    const UNKNOWN: CompactLimits = CompactLimits {
        hash: usize::MAX,
        set: usize::MAX,
        zset: usize::MAX,
        list: usize::MAX,
        hash_value: None,
        zset_value: None,
    };
}

/// The configs that bound compact encodings (the `ziplist` names are aliases on every server
/// txu supports).
const LIMIT_CONFIGS: [&[u8]; 7] = [
    b"hash-max-listpack-entries",
    b"hash-max-listpack-value",
    b"zset-max-listpack-value",
    b"set-max-intset-entries",
    b"set-max-listpack-entries",
    b"zset-max-listpack-entries",
    b"list-max-listpack-size",
];

/// [`CompactLimits`] from the values of [`LIMIT_CONFIGS`]. A set is an intset up to
/// `set-max-intset-entries` members, or (Redis >= 7.2, Valkey) a listpack up to
/// `set-max-listpack-entries`. A list is a listpack (Redis >= 7.2, Valkey: `listpack_lists`)
/// up to `list-max-listpack-size` elements when that is positive, else up to 4 kB << (-n - 1)
/// bytes, that is at most half as many elements (an element takes 2 bytes or more).
fn limits_from(configs: &HashMap<Vec<u8>, i64>, listpack_lists: bool) -> CompactLimits {
    // A config the server does not report bounds nothing (`OBJECT ENCODING` decides); a
    // negative value allows no compact key.
    let get = |name: &[u8]| configs.get(name).map(|&v| usize::try_from(v).unwrap_or(0));
    let list = match configs.get(&b"list-max-listpack-size"[..]) {
        _ if !listpack_lists => 0,
        Some(&n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(&n) => {
            let shift =
                u32::try_from(n.saturating_neg().saturating_sub(1).clamp(0, 4)).unwrap_or(4);
            (4096usize << shift) / 2
        }
        None => usize::MAX,
    };
    CompactLimits {
        hash: get(b"hash-max-listpack-entries").unwrap_or(usize::MAX),
        // Redis 7.0 has no set listpacks (and no such config).
        set: get(b"set-max-intset-entries")
            .unwrap_or(usize::MAX)
            .max(get(b"set-max-listpack-entries").unwrap_or(0)),
        zset: get(b"zset-max-listpack-entries").unwrap_or(usize::MAX),
        list,
        hash_value: get(b"hash-max-listpack-value"),
        zset_value: get(b"zset-max-listpack-value"),
    }
}

/// The most elements a compact key can have, from the server's configs: read when first
/// needed and again after any `CONFIG SET` (the server's config-change event). A key may
/// still be compact with more elements, if its config was lowered after it grew: such a key
/// keeps its element-level undo, since `RESTORE` would not give it back its encoding either
/// (the server converts what it restores to the configs in force). When changes cannot be
/// watched, or the configs cannot be read, nothing is assumed.
fn compact_limits(ctx: CtxPtr) -> CompactLimits {
    static LIMITS: Mutex<Option<CompactLimits>> = Mutex::new(None);
    // Watch first: a change after the read below is then seen.
    if !configs::watch(ctx) {
        return CompactLimits::UNKNOWN;
    }
    let mut cached = LIMITS.lock().unwrap_or_else(PoisonError::into_inner);
    let changed = configs::take_changed();
    match *cached {
        Some(l) if !changed => l,
        _ => match configs::numbers(ctx, &LIMIT_CONFIGS) {
            Ok(c) => {
                let l = limits_from(&c, listpack_lists(ctx));
                *cached = Some(l);
                l
            }
            // Read again next time.
            Err(_) => {
                *cached = None;
                CompactLimits::UNKNOWN
            }
        },
    }
}

/// Whether lists can be listpacks: Redis >= 7.2 and Valkey (on Redis 7.0 every list is a
/// quicklist, whose element-level undo keeps its representation). Probed once.
fn listpack_lists(ctx: CtxPtr) -> bool {
    static LISTPACK_LISTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LISTPACK_LISTS.get_or_init(|| {
        let facts = context::server_facts(ctx);
        let mut v = facts
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
        facts.name != "redis" || (major, minor) >= (7, 2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, i64)]) -> HashMap<Vec<u8>, i64> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), *v))
            .collect()
    }

    #[test]
    fn compact_limits_follow_the_configs() {
        let c = configs(&[
            ("hash-max-listpack-entries", 128),
            ("set-max-intset-entries", 512),
            ("set-max-listpack-entries", 128),
            ("zset-max-listpack-entries", 64),
            ("list-max-listpack-size", -2),
        ]);
        assert_eq!(
            limits_from(&c, true),
            CompactLimits {
                hash: 128,
                set: 512,
                zset: 64,
                // 8 kB of at least 2 bytes per element.
                list: 4096,
                hash_value: None,
                zset_value: None,
            }
        );
        // Redis 7.0: no listpack lists, no set listpacks.
        let mut old = c.clone();
        old.remove(&b"set-max-listpack-entries"[..]);
        let l = limits_from(&old, false);
        assert_eq!((l.set, l.list), (512, 0));
        // A count, the smallest and largest sizes, and nonsense.
        for (fill, list) in [(100, 100), (-1, 2048), (-5, 32768), (-9, 32768), (0, 2048)] {
            let mut c = c.clone();
            c.insert(b"list-max-listpack-size".to_vec(), fill);
            assert_eq!(limits_from(&c, true).list, list, "{fill}");
        }
        let mut neg = c.clone();
        neg.insert(b"hash-max-listpack-entries".to_vec(), -3);
        assert_eq!(limits_from(&neg, true).hash, 0);
        // Configs the server does not report: no key is assumed too long.
        let none = limits_from(&HashMap::new(), true);
        assert_eq!(none, CompactLimits::UNKNOWN);
        assert_eq!(limits_from(&HashMap::new(), false).list, 0);
    }

    #[test]
    fn growth_within_the_limits_keeps_a_key_compact() {
        let limits = limits_from(
            &configs(&[
                ("hash-max-listpack-entries", 128),
                ("hash-max-listpack-value", 64),
                ("zset-max-listpack-entries", 128),
                ("zset-max-listpack-value", 64),
            ]),
            true,
        );
        let g = |kind, added, longest| Growth {
            kind,
            added,
            longest,
        };
        let (h, z) = (Collection::Hash, Collection::ZSet);
        assert!(stays_compact(g(h, 2, 10), KeyKind::Hash, 126, &limits));
        assert!(!stays_compact(g(h, 3, 10), KeyKind::Hash, 126, &limits));
        assert!(stays_compact(g(h, 1, 64), KeyKind::Hash, 5, &limits));
        assert!(!stays_compact(g(h, 1, 65), KeyKind::Hash, 5, &limits));
        assert!(stays_compact(g(z, 1, 64), KeyKind::ZSet, 127, &limits));
        assert!(!stays_compact(g(z, 1, 1), KeyKind::ZSet, 128, &limits));
        // A growth of another type's key (the write will fail) or of a key whose value limit
        // is unknown proves nothing.
        assert!(!stays_compact(g(h, 1, 1), KeyKind::ZSet, 1, &limits));
        assert!(!stays_compact(g(z, 1, 1), KeyKind::Set, 1, &limits));
        assert!(!stays_compact(
            g(h, 1, 1),
            KeyKind::Hash,
            1,
            &CompactLimits::UNKNOWN
        ));
        assert!(!stays_compact(
            g(h, usize::MAX, 1),
            KeyKind::Hash,
            1,
            &limits
        ));
    }

    #[test]
    fn hash_values_read_once_answer_the_same_hmget_only() {
        let b = |s: &str| s.as_bytes().to_vec();
        let c = |s: &'static str| Cow::Borrowed(s.as_bytes());
        let h = HashValues {
            key: b"h",
            fields: vec![b"f", b"g"],
            values: vec![Some(b("x".repeat(65).as_str())), None],
        };
        assert!(h.holds_long(Some(64)));
        assert!(!h.holds_long(Some(65)));
        assert!(!h.holds_long(None));
        assert!(h.answers(&[c("HMGET"), c("h"), c("f"), c("g")]));
        assert!(h.answers(&[c("hmget"), c("h"), c("f"), c("g")]));
        assert!(!h.answers(&[c("HMGET"), c("h"), c("f")]));
        assert!(!h.answers(&[c("HMGET"), c("other"), c("f"), c("g")]));
        assert!(!h.answers(&[c("ZMSCORE"), c("h"), c("f"), c("g")]));
        assert!(!h.answers(&[]));
        assert_eq!(
            h.into_read(),
            Read::Array(vec![Read::Bulk(b("x".repeat(65).as_str())), Read::Nil])
        );
    }
}
