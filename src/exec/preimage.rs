//! Pre-images: what a queued write is about to change, read just before it runs ("the read
//! that matches the write"), and the undo entries recorded from it once it has run.
//!
//! In order of preference: nothing, when the log already restores every key the command
//! writes; deleting keys that do not exist yet; a string command's one key read through the
//! key API (or, for a counter, derived from its reply); else the command's recipe
//! (`undo::recipe`), its reads answered from one key lookup per key where they can, through
//! the key API where that cannot change the key, and by unreplicated calls otherwise.

use super::txn::Queued;
use super::{catalog, compact};
use crate::config;
use crate::error::TxuError;
use crate::ffi::{call, keys, CtxPtr, OwnedStr, ReplyKind, ReplyRef};
use crate::stats::{add, STATS};
use crate::undo::entry::{Snapshot, UndoEntry};
use crate::undo::log::UndoLog;
use crate::undo::recipe::{self, Read};
use std::borrow::Cow;
use std::ffi::CString;

/// What was read before a write.
pub(super) enum Prepared<'q> {
    /// A string command's one key (`Queued::string_key`): its value and expiry, read through
    /// the key API; exactly what its recipe (`GET` + `PEXPIRETIME`) would have recorded.
    Str {
        key: Vec<u8>,
        before: Option<(Vec<u8>, Option<i64>)>,
    },
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY` on a short string (the key API cannot read it without
    /// changing its encoding): the value before is the reply minus `delta`, in the decimal
    /// form the command requires of it (it fails on anything else, and then changed nothing).
    Counter {
        key: Vec<u8>,
        expire: Option<i64>,
        delta: i64,
    },
    /// Keys that did not exist (see `key_facts`).
    Absent(Vec<Vec<u8>>),
    /// The command's recipe, the reads' replies and whole-key snapshots.
    Planned {
        plan: recipe::Plan<'q>,
        reads: Vec<Read>,
        /// `plan.whole_keys(&reads)`, and their snapshots.
        whole: Vec<&'q [u8]>,
        wholes: Vec<(Vec<u8>, Option<Snapshot>)>,
    },
}

impl Prepared<'_> {
    /// Records the command's undo entries; `reply`: its reply when it succeeded.
    pub(super) fn record(self, undo: &mut UndoLog, reply: Option<ReplyRef<'_>>) {
        match self {
            Prepared::Str { key, before } => {
                record(undo, std::iter::once(UndoEntry::Str { key, before }));
            }
            Prepared::Counter { key, expire, delta } => {
                let now = reply
                    .filter(|r| r.kind() == ReplyKind::Integer)
                    .map(|r| r.integer());
                // The command succeeded: `now - delta` was its value (it cannot overflow).
                if let Some(before) = now.and_then(|n| n.checked_sub(delta)) {
                    let before = Some((before.to_string().into_bytes(), expire));
                    record(undo, std::iter::once(UndoEntry::Str { key, before }));
                }
            }
            Prepared::Absent(keys) => {
                let entries = keys
                    .into_iter()
                    .map(|key| UndoEntry::Whole { key, before: None });
                record(undo, entries);
            }
            Prepared::Planned {
                plan,
                reads,
                whole,
                wholes,
            } => {
                let reply_read = reply.filter(|_| plan.needs_reply()).map(to_read);
                record(
                    undo,
                    plan.entries_of(&reads, &whole, wholes, reply_read.as_ref()),
                );
            }
        }
    }
}

/// Reads what the command is about to change ("the read that matches the write"). Nothing for
/// a read, or when the undo log already restores every key the command writes. `now`: the
/// server's time (ms) when the transaction started.
pub(super) fn prepare<'q>(
    ctx: CtxPtr,
    q: &'q Queued,
    undo: &UndoLog,
    whole_only: bool,
    now: i64,
    seen: &mut compact::Seen,
) -> Result<Option<Prepared<'q>>, TxuError> {
    if q.write_keys.is_empty() {
        return Ok(None);
    }
    if q.string_key && !whole_only {
        if let Some(arg) = q.argv.get(1) {
            let key = arg.as_bytes();
            if undo.covers(key) {
                return Ok(None);
            }
            let before = match keys::peek_string(ctx, arg.as_str()) {
                keys::StrPeek::Absent => Some(None),
                keys::StrPeek::Value(v, exp) => Some(Some((v, exp))),
                keys::StrPeek::Short(expire) => {
                    let args: Vec<&[u8]> = q.argv.iter().skip(1).map(OwnedStr::as_bytes).collect();
                    if let Some(delta) = recipe::counter_delta(q.cname.to_bytes(), &args) {
                        return Ok(Some(Prepared::Counter {
                            key: key.to_vec(),
                            expire,
                            delta,
                        }));
                    }
                    // The recipe's reads below.
                    None
                }
                keys::StrPeek::Unknown => None,
            };
            if let Some(before) = before {
                return Ok(Some(Prepared::Str {
                    key: key.to_vec(),
                    before,
                }));
            }
        }
    }
    let facts = key_facts(ctx, q, undo);
    // Keys that do not exist: undoing the command deletes them, whatever it does.
    let renames = recipe::is_rename(q.cname.to_bytes());
    if !renames && !facts.is_empty() && facts.iter().all(|(_, f)| f.is_none()) {
        let keys = facts.iter().map(|(k, _)| k.to_vec()).collect();
        return Ok(Some(Prepared::Absent(keys)));
    }
    let argv: Vec<&'q [u8]> = q.argv.iter().map(OwnedStr::as_bytes).collect();
    let plan = if whole_only {
        recipe::plan_whole(&argv, &q.write_keys)
    } else {
        recipe::plan_with(&argv, &q.write_keys, now, features(ctx))
    };
    if plan.is_barrier_free() && plan.keys().iter().all(|&k| undo.covers(k)) {
        return Ok(None);
    }
    let compact = compact::compact_keys(ctx, &plan, undo, &facts, seen)?;
    let plan = plan.with_whole(&compact.whole);
    let mut hash_values = compact.hash_values;
    let mut reads = Vec::with_capacity(plan.reads().len());
    for r in plan.reads() {
        // The values `compact_keys` read already answer the command's `HMGET`.
        reads.push(match hash_values.take_if(|h| h.answers(r)) {
            Some(h) => h.into_read(),
            None => read(ctx, r, &facts)?,
        });
    }
    let whole = plan.whole_keys(&reads);
    let mut wholes = Vec::with_capacity(whole.len());
    for &k in &whole {
        let snap = snapshot(ctx, k, &facts)?;
        wholes.push((k.to_vec(), snap));
    }
    Ok(Some(Prepared::Planned {
        plan,
        reads,
        whole,
        wholes,
    }))
}

/// One key lookup per key the command may write that the log does not already restore in
/// full: whether it exists, and its type, length and expiry (`keys::KeyFacts`), which the
/// compact-encoding check and the `PEXPIRETIME` reads then use instead of looking again.
/// Nothing the command's preparation does changes them (the server's clock stands still
/// within a command).
fn key_facts<'q>(ctx: CtxPtr, q: &'q Queued, undo: &UndoLog) -> Facts<'q> {
    let mut facts: Facts<'q> = Vec::with_capacity(q.write_keys.len());
    for &p in &q.write_keys {
        let Some(arg) = q.argv.get(p) else {
            continue;
        };
        let key = arg.as_bytes();
        if undo.covers(key) || facts.iter().any(|(k, _)| *k == key) {
            continue;
        }
        facts.push((key, keys::key_facts(ctx, arg.as_str())));
    }
    facts
}

/// Keys and what one lookup said of each (`None`: absent).
pub(crate) type Facts<'a> = Vec<(&'a [u8], Option<keys::KeyFacts>)>;

/// What `facts` says of `key`, if it holds the key: `Some(None)` absent.
pub(super) fn fact<'f>(facts: &'f Facts<'_>, key: &[u8]) -> Option<&'f Option<keys::KeyFacts>> {
    facts.iter().find(|(k, _)| *k == key).map(|(_, f)| f)
}

/// Appends a command's entries; every `txu.checkpoint-every` entries, compacts the log.
fn record(undo: &mut UndoLog, entries: impl IntoIterator<Item = UndoEntry>) {
    for e in entries {
        // Bytes of keys and values held (the entry's own size aside).
        let w = e.weight().saturating_sub(std::mem::size_of::<UndoEntry>());
        if undo.push(e) {
            add(&STATS.undo_entries, 1);
            add(&STATS.preimage_bytes, w as u64);
        }
    }
    let every = u64::try_from(config::checkpoint_every()).unwrap_or(u64::MAX);
    if undo.since_compaction() >= every {
        let removed = undo.compact();
        add(&STATS.compactions, 1);
        add(&STATS.compacted_entries, removed as u64);
    }
}

/// Most list elements a pre-image read fetches one by one through the key API.
const SHORT_RANGE: usize = 16;

/// Runs a pre-image read (unreplicated, RESP2) and converts its reply. `facts`: what the
/// command's key lookups found.
fn read(ctx: CtxPtr, cmd: &[Cow<'_, [u8]>], facts: &Facts<'_>) -> Result<Read, TxuError> {
    let Some((name, args)) = cmd.split_first() else {
        return Ok(Read::Nil);
    };
    // The most common reads, answered from the key API without a command call.
    if let [key] = args {
        if name.eq_ignore_ascii_case(b"PEXPIRETIME") {
            if let Some(f) = fact(facts, key) {
                return Ok(Read::Int(match f {
                    None => -2,
                    Some(f) => f.expire_at_ms.unwrap_or(-1),
                }));
            }
            let k = OwnedStr::create(key).ok_or(TxuError::OutOfMemory)?;
            return Ok(Read::Int(match keys::key_expiry(ctx, k.as_str()) {
                None => -2,
                Some(None) => -1,
                Some(Some(ms)) => ms,
            }));
        }
        if name.eq_ignore_ascii_case(b"LLEN") {
            match fact(facts, key) {
                Some(None) => return Ok(Read::Int(0)),
                Some(Some(f)) if f.kind == keys::KeyKind::List => {
                    return Ok(Read::Int(i64::try_from(f.len).unwrap_or(i64::MAX)));
                }
                _ => {}
            }
        }
        if name.eq_ignore_ascii_case(b"GET") {
            let k = OwnedStr::create(key).ok_or(TxuError::OutOfMemory)?;
            match keys::peek_string(ctx, k.as_str()) {
                keys::StrPeek::Absent => return Ok(Read::Nil),
                keys::StrPeek::Value(v, _) => return Ok(Read::Bulk(v)),
                keys::StrPeek::Short(_) | keys::StrPeek::Unknown => {}
            }
        }
    }
    // A short LRANGE of an existing list, through the key API.
    if let ([key, start, stop], true) = (args, name.eq_ignore_ascii_case(b"LRANGE")) {
        let is_list = matches!(fact(facts, key), Some(Some(f)) if f.kind == keys::KeyKind::List);
        let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<i64>().ok();
        if let (true, Some(start), Some(stop)) = (is_list, num(start), num(stop)) {
            let k = OwnedStr::create(key).ok_or(TxuError::OutOfMemory)?;
            if let Some(items) = keys::list_range(ctx, k.as_str(), start, stop, SHORT_RANGE) {
                return Ok(Read::Array(items.into_iter().map(Read::Bulk).collect()));
            }
        }
    }
    // HMGET of an existing hash, through the key API (servers without field TTLs).
    if let (Some((key, fields)), true) = (args.split_first(), name.eq_ignore_ascii_case(b"HMGET")) {
        let is_hash = matches!(fact(facts, key), Some(Some(f)) if f.kind == keys::KeyKind::Hash);
        if is_hash && !features(ctx).hash_field_ttl {
            let k = OwnedStr::create(key).ok_or(TxuError::OutOfMemory)?;
            let fields: Vec<&[u8]> = fields.iter().map(AsRef::as_ref).collect();
            if let Some(values) = keys::hash_get(ctx, k.as_str(), &fields) {
                let value = |v: Option<Vec<u8>>| v.map_or(Read::Nil, Read::Bulk);
                return Ok(Read::Array(values.into_iter().map(value).collect()));
            }
        }
    }
    // ZMSCORE of an existing sorted set, through the key API.
    if let (Some((key, members)), true) =
        (args.split_first(), name.eq_ignore_ascii_case(b"ZMSCORE"))
    {
        if matches!(fact(facts, key), Some(Some(f)) if f.kind == keys::KeyKind::ZSet) {
            let k = OwnedStr::create(key).ok_or(TxuError::OutOfMemory)?;
            let members: Vec<&[u8]> = members.iter().map(AsRef::as_ref).collect();
            if let Some(scores) = keys::zset_scores(ctx, k.as_str(), &members) {
                let score = |s: Option<f64>| s.map_or(Read::Nil, Read::Double);
                return Ok(Read::Array(scores.into_iter().map(score).collect()));
            }
        }
    }
    let cname =
        CString::new(name.clone()).map_err(|_| TxuError::Internal("bad pre-image read".into()))?;
    let args: Vec<&[u8]> = args.iter().map(AsRef::as_ref).collect();
    let r = call::call_plain(ctx, &cname, &args)?;
    Ok(to_read(r.as_ref()))
}

/// A reply as the recipes see it (maps and sets flattened to arrays).
fn to_read(r: ReplyRef<'_>) -> Read {
    use ReplyKind as K;
    match r.kind() {
        K::String => Read::Bulk(r.bytes().to_vec()),
        K::Error => Read::Error(r.bytes().to_vec()),
        K::Integer => Read::Int(r.integer()),
        K::Null => Read::Nil,
        K::Double => Read::Double(r.double()),
        K::Bool => Read::Int(i64::from(r.boolean())),
        K::BigNumber | K::Verbatim => Read::Bulk(r.text().to_vec()),
        K::Array => Read::Array(
            (0..r.len())
                .filter_map(|i| r.elem(i))
                .map(to_read)
                .collect(),
        ),
        K::Set => Read::Array(
            (0..r.len())
                .filter_map(|i| r.set_elem(i))
                .map(to_read)
                .collect(),
        ),
        K::Map => Read::Array(
            (0..r.len())
                .filter_map(|i| r.map_elem(i))
                .flat_map(|(k, v)| [to_read(k), to_read(v)])
                .collect(),
        ),
        K::Other => Read::Nil,
    }
}

/// The whole value of `key` (DUMP) and its absolute expiry; `None` if it does not exist.
/// `facts`: what the command's key lookups found.
fn snapshot(ctx: CtxPtr, key: &[u8], facts: &Facts<'_>) -> Result<Option<Snapshot>, TxuError> {
    let k = OwnedStr::create(key).ok_or(TxuError::OutOfMemory)?;
    let expiry = match fact(facts, key) {
        Some(f) => f.map(|f| f.expire_at_ms),
        None => keys::key_expiry(ctx, k.as_str()),
    };
    Ok(match expiry {
        None => None,
        Some(expire_at_ms) => call::dump(ctx, k.as_str())?.map(|payload| Snapshot {
            payload,
            expire_at_ms,
        }),
    })
}

/// Optional server abilities the recipes use, probed once.
pub(super) fn features(ctx: CtxPtr) -> recipe::Features {
    static HASH_FIELD_TTL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    recipe::Features {
        hash_field_ttl: *HASH_FIELD_TTL
            .get_or_init(|| catalog::lookup(ctx, b"hpexpiretime").is_some()),
    }
}
