//! Recipes: for a write command, which reads capture exactly what it is about to change, and
//! how to turn those reads (and, for some commands, the command's own reply) into undo entries.
//! Pure: no Redis types; the executor runs the reads and the command.
//!
//! The executor, for each queued write:
//! 1. `plan()` the command, run `reads()` (unreplicated) and convert each reply to a [`Read`];
//! 2. take a `DUMP` snapshot of every key in `whole_keys(&reads)`;
//! 3. run the command; if it succeeded, convert its reply to a [`Read`] when `needs_reply()`;
//! 4. push `entries(&reads, snapshots, reply)` onto the undo log.
//!
//! Anything a recipe cannot handle exactly (unknown commands, malformed arguments, reads that
//! fail or do not look as expected) falls back to a whole-key snapshot, decided before the
//! command runs. Collections that a command may delete lose their TTL, so every element-level
//! recipe on a key that exists emits an `Expiry` entry first: rollback applies it last, once
//! the elements are back.
//!
//! | command | reads | entries |
//! |---|---|---|
//! | SET family, APPEND, SETRANGE, INCR*, DECR*, GETDEL, GETEX, GETSET, MSET(NX), SETBIT, BITFIELD, BITOP (dst) | `GET k`, `PEXPIRETIME k` per key | `Str` (or `Whole` when GET fails) |
//! | HSET, HMSET, HSETNX, HDEL, HINCRBY, HINCRBYFLOAT | `HMGET k fields`, `PEXPIRETIME k` (+ `HPEXPIRETIME` with `Features::hash_field_ttl`) | `HashField` per changed field |
//! | SADD, SREM / SMOVE | `SMISMEMBER` / `SISMEMBER` of each key, `PEXPIRETIME` | `SetMember` per changed member |
//! | SPOP, ZPOPMIN/MAX, ZMPOP, LPOP/RPOP, LMPOP, LMOVE, RPOPLPUSH | `PEXPIRETIME` of each key | from the reply |
//! | ZADD, ZINCRBY, ZREM, GEOADD | `ZMSCORE k members`, `PEXPIRETIME k` | `ZMember` per member |
//! | ZREMRANGEBYRANK / BYSCORE | the matching `ZRANGE ... WITHSCORES`, `PEXPIRETIME` | `ZMember` per removed member |
//! | LPUSH, RPUSH, LPUSHX, RPUSHX | `PEXPIRETIME k` (-2: the X forms push nothing) | `ListPop` of the argument count |
//! | LSET | `LINDEX k index`, `PEXPIRETIME k` | `ListSet` |
//! | LTRIM | `LLEN`, `PEXPIRETIME`, `LRANGE` of the head and tail it may remove | `ListPush` per end |
//! | EXPIRE family, PERSIST | `PEXPIRETIME k` | `Expiry` (whole key when the deadline deletes it) |
//! | RENAME, RENAMENX | `PEXPIRETIME src` (RENAME: dst whole) | `Expiry` of src, `Rename` |
//! | COPY, DEL, UNLINK, LINSERT, LREM, ZREMRANGEBYLEX, *STORE, streams, HyperLogLog, other modules... | none | `Whole` per written key |

// Wired into the executor by the lead.

use super::entry::{Snapshot, UndoEntry};
use std::collections::{HashMap, HashSet};

/// A reply, RESP2 or RESP3 (maps flattened to arrays, sets to arrays, by the executor).
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Double(f64),
    Error(Vec<u8>),
    Array(Vec<Read>),
}

/// What the server can do beyond Redis 7.0, as far as recipes care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Hash fields can have their own TTL (`HPEXPIRETIME` exists: Redis >= 7.4, Valkey >= 9).
    /// Hash recipes then also read the touched fields' TTLs, and take a whole-key snapshot when
    /// one has a TTL (putting a field back with `HSET` would lose it).
    pub hash_field_ttl: bool,
}

/// An absolute deadline this close to `now_ms` (or earlier) may delete the key when the command
/// runs (the server's clock moves on after planning), so such `EXPIREAT`/`PEXPIREAT` commands
/// take a whole-key snapshot instead of recording the old expiry.
pub const EXPIRY_MARGIN_MS: i64 = 2_000;

/// The reads to make before a command, and how to turn them into undo entries.
#[derive(Debug, Clone)]
pub struct Plan {
    reads: Vec<Vec<Vec<u8>>>,
    /// Every key the command may write (recipe keys and the rest of `key_positions`).
    keys: Vec<Vec<u8>>,
    /// Keys snapshotted whole whatever the reads say.
    always_whole: Vec<Vec<u8>>,
    recipe: Recipe,
}

#[cfg(test)]
/// `plan_with` for a server without the features of [`Features`] (Redis 7.0 - 7.2, Valkey 8).
pub fn plan(argv: &[&[u8]], key_positions: &[usize], now_ms: i64) -> Plan {
    plan_with(argv, key_positions, now_ms, Features::default())
}

/// Plans the undo of `argv` (`argv[0]` is the command name, any case). `key_positions` index
/// `argv` and name the keys the command may write, as the server reports them. `now_ms` is the
/// server's time just before planning (it decides whether an absolute expiry deletes the key).
pub fn plan_with(argv: &[&[u8]], key_positions: &[usize], now_ms: i64, features: Features) -> Plan {
    let mut written = KeyList::default();
    for &p in key_positions {
        if let Some(k) = argv.get(p) {
            written.add(k);
        }
    }
    let name = argv
        .first()
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_default();
    let mut b = Builder::default();
    let recipe = build(&name, argv, now_ms, features, &mut b);
    match recipe {
        Some(recipe) if b.keys.list.iter().all(|k| written.contains(k)) => {
            let mut always_whole = b.whole;
            let mut keys = b.keys;
            // Keys the server says the command writes and the recipe does not know about.
            for k in &written.list {
                if !keys.contains(k) {
                    always_whole.add(k);
                    keys.add(k);
                }
            }
            Plan {
                reads: b.reads,
                keys: keys.list,
                always_whole: always_whole.list,
                recipe,
            }
        }
        // No recipe, or one that disagrees with the server about the keys: whole keys.
        _ => {
            let mut keys = written;
            for k in &b.keys.list {
                keys.add(k);
            }
            Plan {
                reads: Vec::new(),
                always_whole: keys.list.clone(),
                keys: keys.list,
                recipe: Recipe::Nothing,
            }
        }
    }
}

/// A plan without a recipe: every key in `key_positions` is copied whole. For a transaction
/// that may be undone long after, over later changes, which only whole keys put back exactly.
pub fn plan_whole(argv: &[&[u8]], key_positions: &[usize]) -> Plan {
    let mut keys = KeyList::default();
    for &p in key_positions {
        if let Some(k) = argv.get(p) {
            keys.add(k);
        }
    }
    Plan {
        reads: Vec::new(),
        always_whole: keys.list.clone(),
        keys: keys.list,
        recipe: Recipe::Nothing,
    }
}

impl Plan {
    /// The commands to run before the write, in order (each name first).
    pub fn reads(&self) -> &[Vec<Vec<u8>>] {
        &self.reads
    }

    /// Keys that need a whole-key snapshot (`DUMP` + absolute expiry; `None` when absent),
    /// decided from the replies to `reads()` (one per read, in order).
    pub fn whole_keys(&self, reads: &[Read]) -> Vec<Vec<u8>> {
        let bad = self.recipe.bad_keys(reads);
        if bad.is_empty() {
            return self.always_whole.clone();
        }
        let mut out = KeyList::default();
        for k in self.always_whole.iter().map(Vec::as_slice).chain(bad) {
            out.add(k);
        }
        out.list
    }

    /// Whether `entries` needs the command's reply.
    pub fn needs_reply(&self) -> bool {
        self.recipe.needs_reply()
    }

    /// Every key the command may write.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// Whether the entries never include a rename. When they do not, and the undo log already
    /// fully restores every key in `keys()` (`UndoLog::covers`), the command needs no reads
    /// and no entries at all.
    pub fn is_barrier_free(&self) -> bool {
        !matches!(self.recipe, Recipe::Rename { .. })
    }

    /// The undo entries of the command, which succeeded: in the order of its own effects, so
    /// that applying them newest first undoes it. `wholes` are the snapshots of
    /// `whole_keys(reads)`; `reply` is the command's reply (needed when `needs_reply()`).
    pub fn entries(
        &self,
        reads: &[Read],
        wholes: Vec<(Vec<u8>, Option<Snapshot>)>,
        reply: Option<&Read>,
    ) -> Vec<UndoEntry> {
        let whole = self.whole_keys(reads);
        let mut snaps: HashMap<Vec<u8>, Option<Snapshot>> = wholes.into_iter().collect();
        let mut out = Vec::new();
        for k in &whole {
            if let Some((key, before)) = snaps.remove_entry(k) {
                out.push(UndoEntry::Whole { key, before });
            }
        }
        let whole: HashSet<Vec<u8>> = whole.into_iter().collect();
        self.recipe.entries(reads, reply, &whole, &mut out);
        out
    }
}

/// Distinct byte strings in first-seen order.
#[derive(Debug, Default, Clone)]
struct KeyList {
    list: Vec<Vec<u8>>,
    set: HashSet<Vec<u8>>,
}

impl KeyList {
    /// Adds `k` unless present; whether it was added.
    fn add(&mut self, k: &[u8]) -> bool {
        if self.set.contains(k) {
            return false;
        }
        self.set.insert(k.to_vec());
        self.list.push(k.to_vec());
        true
    }

    fn contains(&self, k: &[u8]) -> bool {
        self.set.contains(k)
    }
}

#[derive(Default)]
struct Builder {
    reads: Vec<Vec<Vec<u8>>>,
    keys: KeyList,
    whole: KeyList,
}

impl Builder {
    fn read(&mut self, parts: &[&[u8]]) -> usize {
        self.reads.push(parts.iter().map(|p| p.to_vec()).collect());
        self.reads.len() - 1
    }

    /// `name key args...`
    fn read_with(&mut self, name: &[u8], key: &[u8], args: &[Vec<u8>]) -> usize {
        let mut c = Vec::with_capacity(args.len() + 2);
        c.push(name.to_vec());
        c.push(key.to_vec());
        c.extend(args.iter().cloned());
        self.reads.push(c);
        self.reads.len() - 1
    }

    fn ttl(&mut self, key: &[u8]) -> usize {
        self.read(&[b"PEXPIRETIME", key])
    }

    fn key(&mut self, k: &[u8]) -> Vec<u8> {
        self.keys.add(k);
        k.to_vec()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashOp {
    /// HSET, HMSET, HINCRBY, HINCRBYFLOAT: every field may change.
    Set,
    /// HSETNX: only an absent field changes.
    SetNx,
    /// HDEL: only a present field changes.
    Del,
}

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
struct StrKey {
    key: Vec<u8>,
    get: usize,
    ttl: usize,
}

#[derive(Debug, Clone)]
enum Recipe {
    /// Nothing beyond the whole keys (or nothing at all: the command changes nothing).
    Nothing,
    Str(Vec<StrKey>),
    Hash {
        key: Vec<u8>,
        op: HashOp,
        fields: Vec<Vec<u8>>,
        values: usize,
        ttl: usize,
        field_ttls: Option<usize>,
    },
    Set {
        key: Vec<u8>,
        add: bool,
        members: Vec<Vec<u8>>,
        flags: usize,
        ttl: usize,
    },
    SMove {
        src: Vec<u8>,
        dst: Vec<u8>,
        member: Vec<u8>,
        src_has: usize,
        src_ttl: usize,
        dst_has: usize,
        dst_ttl: usize,
    },
    SPop {
        key: Vec<u8>,
        ttl: usize,
    },
    ZSet {
        key: Vec<u8>,
        op: ZOp,
        members: Vec<Vec<u8>>,
        scores: usize,
        ttl: usize,
    },
    ZPop {
        key: Vec<u8>,
        ttl: usize,
    },
    /// ZREMRANGEBYRANK / ZREMRANGEBYSCORE: the matching ZRANGE ... WITHSCORES was read.
    ZRemRange {
        key: Vec<u8>,
        range: usize,
        ttl: usize,
    },
    ZMPop {
        keys: Vec<(Vec<u8>, usize)>,
    },
    Push {
        key: Vec<u8>,
        left: bool,
        count: u64,
        only_existing: bool,
        ttl: usize,
    },
    Pop {
        key: Vec<u8>,
        left: bool,
        ttl: usize,
    },
    Move {
        src: Vec<u8>,
        dst: Vec<u8>,
        from_left: bool,
        to_left: bool,
        src_ttl: usize,
        dst_ttl: usize,
    },
    MPop {
        keys: Vec<(Vec<u8>, usize)>,
        left: bool,
    },
    LSet {
        key: Vec<u8>,
        index: i64,
        old: usize,
        ttl: usize,
    },
    LTrim {
        key: Vec<u8>,
        start: i64,
        stop: i64,
        len: usize,
        ttl: usize,
        head: Option<usize>,
        tail: Option<usize>,
    },
    Expire {
        key: Vec<u8>,
        ttl: usize,
    },
    /// RENAME / RENAMENX (`nx`): src's expiry, then the rename (dst is snapshotted whole for
    /// RENAME; RENAMENX succeeds only when dst does not exist).
    Rename {
        src: Vec<u8>,
        dst: Vec<u8>,
        ttl: usize,
        nx: bool,
    },
}

/// Redis's integer syntax, strictly (no sign, spaces or leading zeros other than Redis's own
/// output); anything else falls back to a whole-key snapshot.
fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

fn side(b: &[u8]) -> Option<bool> {
    if b.eq_ignore_ascii_case(b"left") {
        Some(true)
    } else if b.eq_ignore_ascii_case(b"right") {
        Some(false)
    } else {
        None
    }
}

fn distinct(items: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut seen = KeyList::default();
    for i in items {
        seen.add(&i);
    }
    seen.list
}

/// `argv[from..]` as owned byte strings (empty when out of range).
fn tail(argv: &[&[u8]], from: usize) -> Vec<Vec<u8>> {
    argv.get(from..)
        .unwrap_or_default()
        .iter()
        .map(|a| a.to_vec())
        .collect()
}

/// `numkeys key...` starting at `argv[1]`: the keys and the index after them.
fn numkeys<'a>(argv: &[&'a [u8]]) -> Option<(Vec<&'a [u8]>, usize)> {
    let n = usize::try_from(parse_i64(argv.get(1)?)?).ok()?;
    if n == 0 {
        return None;
    }
    let end = n.checked_add(2)?;
    let keys = argv.get(2..end)?.to_vec();
    Some((keys, end))
}

/// Builds the recipe of a command; `None` when there is none (or the arguments look wrong).
fn build(
    name: &[u8],
    argv: &[&[u8]],
    now_ms: i64,
    features: Features,
    b: &mut Builder,
) -> Option<Recipe> {
    let argc = argv.len();
    let key1 = argv.get(1).copied();
    match name {
        // Strings: the value and expiry, put back whole (SET overwrites any type: a key that
        // is not a string makes GET fail, and is then snapshotted whole).
        b"set" | b"setnx" | b"setex" | b"psetex" | b"getset" | b"getdel" | b"getex" | b"append"
        | b"setrange" | b"incr" | b"decr" | b"incrby" | b"decrby" | b"incrbyfloat" | b"setbit"
        | b"bitfield" => {
            let k = key1?;
            Some(str_recipe(&[k], b))
        }
        b"mset" | b"msetnx" => {
            if argc < 3 || argc.is_multiple_of(2) {
                return None;
            }
            let keys: Vec<&[u8]> = argv.iter().skip(1).step_by(2).copied().collect();
            Some(str_recipe(&keys, b))
        }
        b"bitop" => {
            let dst = argv.get(2).copied()?;
            Some(str_recipe(&[dst], b))
        }

        // Hashes: the touched fields' values (and existence).
        b"hset" | b"hmset" | b"hsetnx" | b"hdel" | b"hincrby" | b"hincrbyfloat" => {
            let k = key1?;
            let (op, fields) = match name {
                b"hset" | b"hmset" if argc >= 4 && argc.is_multiple_of(2) => (
                    HashOp::Set,
                    argv.iter().skip(2).step_by(2).copied().collect(),
                ),
                b"hsetnx" if argc == 4 => (HashOp::SetNx, vec![argv.get(2).copied()?]),
                b"hincrby" | b"hincrbyfloat" if argc == 4 => {
                    (HashOp::Set, vec![argv.get(2).copied()?])
                }
                b"hdel" if argc >= 3 => (HashOp::Del, argv.get(2..)?.to_vec()),
                _ => return None,
            };
            let fields = distinct(fields.into_iter().map(<[u8]>::to_vec));
            let key = b.key(k);
            let values = b.read_with(b"HMGET", k, &fields);
            let ttl = b.ttl(k);
            let field_ttls = features.hash_field_ttl.then(|| {
                let mut args = vec![b"FIELDS".to_vec(), fields.len().to_string().into_bytes()];
                args.extend(fields.iter().cloned());
                b.read_with(b"HPEXPIRETIME", k, &args)
            });
            Some(Recipe::Hash {
                key,
                op,
                fields,
                values,
                ttl,
                field_ttls,
            })
        }

        // Sets: membership of the touched members.
        b"sadd" | b"srem" => {
            let k = key1?;
            if argc < 3 {
                return None;
            }
            let members = distinct(tail(argv, 2));
            let key = b.key(k);
            let flags = b.read_with(b"SMISMEMBER", k, &members);
            let ttl = b.ttl(k);
            Some(Recipe::Set {
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
            Some(Recipe::SMove {
                src: srck,
                dst: dstk,
                member: m.to_vec(),
                src_has,
                src_ttl,
                dst_has,
                dst_ttl,
            })
        }
        b"spop" => {
            let k = key1?;
            if !(2..=3).contains(&argc) {
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            Some(Recipe::SPop { key, ttl })
        }

        // Sorted sets: the touched members' scores.
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
            let members = distinct(
                rest.chunks(group)
                    .filter_map(|c| c.last().map(|m| m.to_vec())),
            );
            Some(zset_recipe(k, ZOp::Add { nx, xx }, members, b))
        }
        b"zincrby" => {
            let (&k, &m) = match argv {
                [_, k, _, m] => (k, m),
                _ => return None,
            };
            Some(zset_recipe(
                k,
                ZOp::Add {
                    nx: false,
                    xx: false,
                },
                vec![m.to_vec()],
                b,
            ))
        }
        b"zrem" => {
            let k = key1?;
            if argc < 3 {
                return None;
            }
            Some(zset_recipe(k, ZOp::Rem, distinct(tail(argv, 2)), b))
        }
        b"zpopmin" | b"zpopmax" => {
            let k = key1?;
            if !(2..=3).contains(&argc) {
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            Some(Recipe::ZPop { key, ttl })
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
            Some(Recipe::ZRemRange { key, range, ttl })
        }
        b"zmpop" => {
            let (keys, after) = numkeys(argv)?;
            argv.get(after)?;
            Some(Recipe::ZMPop {
                keys: ttl_per_key(&keys, b),
            })
        }

        // Lists: enough to restore order exactly.
        b"lpush" | b"rpush" | b"lpushx" | b"rpushx" => {
            let k = key1?;
            if argc < 3 {
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            Some(Recipe::Push {
                key,
                left: name.starts_with(b"l"),
                count: u64::try_from(argc - 2).ok()?,
                only_existing: name.ends_with(b"x"),
                ttl,
            })
        }
        b"lpop" | b"rpop" => {
            let k = key1?;
            if !(2..=3).contains(&argc) {
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            Some(Recipe::Pop {
                key,
                left: name == b"lpop",
                ttl,
            })
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
            Some(Recipe::Move {
                src: srck,
                dst: dstk,
                from_left,
                to_left,
                src_ttl,
                dst_ttl,
            })
        }
        b"lmpop" => {
            let (keys, after) = numkeys(argv)?;
            let left = side(argv.get(after)?)?;
            Some(Recipe::MPop {
                keys: ttl_per_key(&keys, b),
                left,
            })
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
            Some(Recipe::LSet {
                key,
                index,
                old,
                ttl,
            })
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
                let end = start.checked_sub(1)?.to_string();
                Some(b.read(&[b"LRANGE", k, b"0", end.as_bytes()]))
            };
            // The elements after `stop` (none when it is -1).
            let tail = if stop == -1 {
                None
            } else {
                let from = stop.checked_add(1)?.to_string();
                Some(b.read(&[b"LRANGE", k, from.as_bytes(), b"-1"]))
            };
            Some(Recipe::LTrim {
                key,
                start,
                stop,
                len,
                ttl,
                head,
                tail,
            })
        }

        // Expiry: the old absolute deadline, unless the new one deletes the key.
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
            Some(Recipe::Expire { key, ttl })
        }
        b"persist" => {
            let k = key1?;
            if argc != 2 {
                return None;
            }
            let key = b.key(k);
            let ttl = b.ttl(k);
            Some(Recipe::Expire { key, ttl })
        }

        // Keys.
        b"rename" | b"renamenx" => {
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
            Some(Recipe::Rename {
                src: srck,
                dst: dstk,
                ttl,
                nx,
            })
        }
        b"copy" => {
            // COPY src dst [REPLACE]: only dst changes (the DB option is refused at queue time).
            let dst = argv.get(2).copied()?;
            b.key(dst);
            b.whole.add(dst);
            Some(Recipe::Nothing)
        }

        // Everything else (DEL, UNLINK, streams, HyperLogLog, *STORE, LINSERT, LREM, other
        // modules' commands...): whole keys.
        _ => None,
    }
}

/// One `PEXPIRETIME` read per distinct key.
fn ttl_per_key(keys: &[&[u8]], b: &mut Builder) -> Vec<(Vec<u8>, usize)> {
    let mut seen = KeyList::default();
    let mut out = Vec::new();
    for &k in keys {
        if seen.add(k) {
            let key = b.key(k);
            out.push((key, b.ttl(k)));
        }
    }
    out
}

fn str_recipe(keys: &[&[u8]], b: &mut Builder) -> Recipe {
    let mut seen = KeyList::default();
    let mut out: Vec<StrKey> = Vec::new();
    for &k in keys {
        if !seen.add(k) {
            continue;
        }
        let key = b.key(k);
        let get = b.read(&[b"GET", k]);
        let ttl = b.ttl(k);
        out.push(StrKey { key, get, ttl });
    }
    Recipe::Str(out)
}

fn zset_recipe(k: &[u8], op: ZOp, members: Vec<Vec<u8>>, b: &mut Builder) -> Recipe {
    let key = b.key(k);
    let scores = b.read_with(b"ZMSCORE", k, &members);
    let ttl = b.ttl(k);
    Recipe::ZSet {
        key,
        op,
        members,
        scores,
        ttl,
    }
}

/// A key's expiry as `PEXPIRETIME` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ttl {
    Absent,
    At(Option<i64>),
}

impl Ttl {
    fn exists(self) -> bool {
        self != Ttl::Absent
    }
}

fn ttl_at(reads: &[Read], i: usize) -> Option<Ttl> {
    match reads.get(i)? {
        Read::Int(-2) => Some(Ttl::Absent),
        Read::Int(-1) => Some(Ttl::At(None)),
        Read::Int(t) if *t >= 0 => Some(Ttl::At(Some(*t))),
        _ => None,
    }
}

fn bytes_of(r: &Read) -> Option<&[u8]> {
    match r {
        Read::Bulk(b) => Some(b),
        _ => None,
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

/// `(member, score)` pairs: RESP2 flat `[m, s, m, s]`, RESP3 nested `[[m, s], ...]`, or
/// `Nil`/empty for none.
fn score_pairs(r: &Read) -> Option<Vec<(Vec<u8>, f64)>> {
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

/// Popped elements: a bulk string, an array of them, or `Nil`.
fn popped(r: Option<&Read>) -> Vec<Vec<u8>> {
    match r {
        Some(Read::Bulk(b)) => vec![b.clone()],
        Some(Read::Array(items)) => items
            .iter()
            .filter_map(|i| bytes_of(i).map(<[u8]>::to_vec))
            .collect(),
        _ => Vec::new(),
    }
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

/// Per-field values from `HMGET`, validated (and field TTLs, when read).
fn hash_before(
    reads: &[Read],
    fields: &[Vec<u8>],
    values: usize,
    ttl: usize,
    field_ttls: Option<usize>,
) -> Option<(Ttl, Vec<Option<Vec<u8>>>)> {
    let t = ttl_at(reads, ttl)?;
    let Read::Array(items) = reads.get(values)? else {
        return None;
    };
    if items.len() != fields.len() {
        return None;
    }
    let vals: Vec<Option<Vec<u8>>> = items
        .iter()
        .map(|i| match i {
            Read::Nil => Some(None),
            Read::Bulk(v) => Some(Some(v.clone())),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if !t.exists() && vals.iter().any(Option::is_some) {
        return None;
    }
    if let (Some(i), true) = (field_ttls, t.exists()) {
        // -2 no such field, -1 no TTL; a field with a TTL (>= 0) cannot be put back by HSET.
        match reads.get(i)? {
            Read::Array(ts) if ts.len() == fields.len() => {
                if !ts.iter().all(|x| matches!(x, Read::Int(-2 | -1))) {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some((t, vals))
}

fn flags_before(reads: &[Read], n: usize, flags: usize, ttl: usize) -> Option<(Ttl, Vec<bool>)> {
    let t = ttl_at(reads, ttl)?;
    let Read::Array(items) = reads.get(flags)? else {
        return None;
    };
    if items.len() != n {
        return None;
    }
    let v: Vec<bool> = items
        .iter()
        .map(|i| match i {
            Read::Int(0) => Some(false),
            Read::Int(1) => Some(true),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if !t.exists() && v.iter().any(|&x| x) {
        return None;
    }
    Some((t, v))
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

fn scores_before(
    reads: &[Read],
    n: usize,
    scores: usize,
    ttl: usize,
) -> Option<(Ttl, Vec<Option<f64>>)> {
    let t = ttl_at(reads, ttl)?;
    let Read::Array(items) = reads.get(scores)? else {
        return None;
    };
    if items.len() != n {
        return None;
    }
    let v: Vec<Option<f64>> = items
        .iter()
        .map(|i| match i {
            Read::Nil => Some(None),
            other => score_of(other).map(Some),
        })
        .collect::<Option<_>>()?;
    if !t.exists() && v.iter().any(Option::is_some) {
        return None;
    }
    Some((t, v))
}

/// Members and scores.
type Scored = Vec<(Vec<u8>, f64)>;

fn removed_range(reads: &[Read], range: usize, ttl: usize) -> Option<(Ttl, Scored)> {
    let t = ttl_at(reads, ttl)?;
    let pairs = score_pairs(reads.get(range)?)?;
    if !t.exists() && !pairs.is_empty() {
        return None;
    }
    Some((t, pairs))
}

fn bulk_list(r: &Read) -> Option<Vec<Vec<u8>>> {
    match r {
        Read::Array(items) => items
            .iter()
            .map(|i| match i {
                Read::Bulk(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// What LTRIM removes, from LLEN and the LRANGEs of both ends: `(ttl, head, tail)`, the head
/// elements in list order (index 0 first) and the tail elements in list order.
type Trimmed = (Ttl, Vec<Vec<u8>>, Vec<Vec<u8>>);

fn trimmed(
    reads: &[Read],
    start: i64,
    stop: i64,
    len: usize,
    ttl: usize,
    head: Option<usize>,
    tail: Option<usize>,
) -> Option<Trimmed> {
    let t = ttl_at(reads, ttl)?;
    let n = match reads.get(len)? {
        Read::Int(n) if *n >= 0 => *n,
        _ => return None,
    };
    if (n == 0) == t.exists() {
        return None;
    }
    let head = match head {
        Some(i) => bulk_list(reads.get(i)?)?,
        None => Vec::new(),
    };
    let tail = match tail {
        Some(i) => bulk_list(reads.get(i)?)?,
        None => Vec::new(),
    };
    let n_us = usize::try_from(n).ok()?;
    if head.len() > n_us || tail.len() > n_us {
        return None;
    }
    // Redis's ltrimCommand.
    let (mut s, mut e) = (start, stop);
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
    let at = |i: usize| -> Option<Vec<u8>> {
        if i < head.len() {
            head.get(i).cloned()
        } else if i >= tail_from {
            tail.get(i - tail_from).cloned()
        } else {
            None
        }
    };
    // Collecting stops at the first uncovered index, so this walks at most what was read.
    let removed_head: Vec<Vec<u8>> = (0..ltrim).map(at).collect::<Option<_>>()?;
    let removed_tail: Vec<Vec<u8>> = (n_us - rtrim..n_us).map(at).collect::<Option<_>>()?;
    Some((t, removed_head, removed_tail))
}

fn expiry(key: &[u8], t: Ttl, out: &mut Vec<UndoEntry>) {
    if let Ttl::At(expire_at_ms) = t {
        out.push(UndoEntry::Expiry {
            key: key.to_vec(),
            expire_at_ms,
        });
    }
}

impl Recipe {
    fn needs_reply(&self) -> bool {
        matches!(
            self,
            Recipe::SPop { .. }
                | Recipe::ZPop { .. }
                | Recipe::ZMPop { .. }
                | Recipe::Pop { .. }
                | Recipe::Move { .. }
                | Recipe::MPop { .. }
                | Recipe::Rename { nx: true, .. }
        )
    }

    /// Keys whose reads do not allow an element-level undo.
    fn bad_keys<'a>(&'a self, reads: &[Read]) -> Vec<&'a [u8]> {
        let one = |key: &'a [u8], ok: bool| if ok { vec![] } else { vec![key] };
        match self {
            Recipe::Nothing => vec![],
            Recipe::Rename { src, ttl, .. } => one(src, ttl_at(reads, *ttl).is_some()),
            Recipe::Str(keys) => keys
                .iter()
                .filter(|s| str_before(reads, s).is_none())
                .map(|s| s.key.as_slice())
                .collect(),
            Recipe::Hash {
                key,
                fields,
                values,
                ttl,
                field_ttls,
                ..
            } => one(
                key,
                hash_before(reads, fields, *values, *ttl, *field_ttls).is_some(),
            ),
            Recipe::Set {
                key,
                members,
                flags,
                ttl,
                ..
            } => one(
                key,
                flags_before(reads, members.len(), *flags, *ttl).is_some(),
            ),
            Recipe::SMove {
                src,
                dst,
                src_has,
                src_ttl,
                dst_has,
                dst_ttl,
                ..
            } => {
                if member_flag(reads, *src_has, *src_ttl).is_some()
                    && member_flag(reads, *dst_has, *dst_ttl).is_some()
                {
                    vec![]
                } else {
                    vec![src.as_slice(), dst.as_slice()]
                }
            }
            Recipe::SPop { key, ttl }
            | Recipe::ZPop { key, ttl }
            | Recipe::Push { key, ttl, .. }
            | Recipe::Pop { key, ttl, .. }
            | Recipe::Expire { key, ttl } => one(key, ttl_at(reads, *ttl).is_some()),
            Recipe::ZSet {
                key,
                members,
                scores,
                ttl,
                ..
            } => one(
                key,
                scores_before(reads, members.len(), *scores, *ttl).is_some(),
            ),
            Recipe::ZRemRange { key, range, ttl } => {
                one(key, removed_range(reads, *range, *ttl).is_some())
            }
            Recipe::ZMPop { keys } | Recipe::MPop { keys, .. } => {
                if keys.iter().all(|(_, t)| ttl_at(reads, *t).is_some()) {
                    vec![]
                } else {
                    keys.iter().map(|(k, _)| k.as_slice()).collect()
                }
            }
            Recipe::Move {
                src,
                dst,
                src_ttl,
                dst_ttl,
                ..
            } => {
                if ttl_at(reads, *src_ttl).is_some() && ttl_at(reads, *dst_ttl).is_some() {
                    vec![]
                } else {
                    vec![src.as_slice(), dst.as_slice()]
                }
            }
            Recipe::LSet { key, old, ttl, .. } => {
                let ok = match (reads.get(*old), ttl_at(reads, *ttl)) {
                    (Some(Read::Nil), Some(_)) => true,
                    (Some(Read::Bulk(_)), Some(t)) => t.exists(),
                    _ => false,
                };
                one(key, ok)
            }
            Recipe::LTrim {
                key,
                start,
                stop,
                len,
                ttl,
                head,
                tail,
            } => one(
                key,
                trimmed(reads, *start, *stop, *len, *ttl, *head, *tail).is_some(),
            ),
        }
    }

    /// Appends the entries of keys not in `whole`.
    fn entries(
        &self,
        reads: &[Read],
        reply: Option<&Read>,
        whole: &HashSet<Vec<u8>>,
        out: &mut Vec<UndoEntry>,
    ) {
        let is_whole = |k: &[u8]| whole.contains(k);
        match self {
            Recipe::Nothing => {}
            Recipe::Str(keys) => {
                for s in keys {
                    if is_whole(&s.key) {
                        continue;
                    }
                    if let Some(before) = str_before(reads, s) {
                        out.push(UndoEntry::Str {
                            key: s.key.clone(),
                            before,
                        });
                    }
                }
            }
            Recipe::Hash {
                key,
                op,
                fields,
                values,
                ttl,
                field_ttls,
            } => {
                if is_whole(key) {
                    return;
                }
                let Some((t, vals)) = hash_before(reads, fields, *values, *ttl, *field_ttls) else {
                    return;
                };
                let changed: Vec<UndoEntry> = fields
                    .iter()
                    .zip(vals)
                    .filter(|(_, v)| match op {
                        HashOp::Set => true,
                        HashOp::SetNx => v.is_none(),
                        HashOp::Del => v.is_some(),
                    })
                    .map(|(f, before)| UndoEntry::HashField {
                        key: key.clone(),
                        field: f.clone(),
                        before,
                    })
                    .collect();
                if !changed.is_empty() {
                    expiry(key, t, out);
                    out.extend(changed);
                }
            }
            Recipe::Set {
                key,
                add,
                members,
                flags,
                ttl,
            } => {
                if is_whole(key) {
                    return;
                }
                let Some((t, present)) = flags_before(reads, members.len(), *flags, *ttl) else {
                    return;
                };
                let changed: Vec<UndoEntry> = members
                    .iter()
                    .zip(present)
                    .filter(|(_, p)| *p != *add)
                    .map(|(m, present)| UndoEntry::SetMember {
                        key: key.clone(),
                        member: m.clone(),
                        present,
                    })
                    .collect();
                if !changed.is_empty() {
                    expiry(key, t, out);
                    out.extend(changed);
                }
            }
            Recipe::SMove {
                src,
                dst,
                member,
                src_has,
                src_ttl,
                dst_has,
                dst_ttl,
            } => {
                if is_whole(src) || is_whole(dst) {
                    return;
                }
                let (Some((st, true)), Some((dt, dhas))) = (
                    member_flag(reads, *src_has, *src_ttl),
                    member_flag(reads, *dst_has, *dst_ttl),
                ) else {
                    return;
                };
                expiry(src, st, out);
                expiry(dst, dt, out);
                out.push(UndoEntry::SetMember {
                    key: src.clone(),
                    member: member.clone(),
                    present: true,
                });
                if !dhas {
                    out.push(UndoEntry::SetMember {
                        key: dst.clone(),
                        member: member.clone(),
                        present: false,
                    });
                }
            }
            Recipe::SPop { key, ttl } => {
                if is_whole(key) {
                    return;
                }
                let Some(t) = ttl_at(reads, *ttl) else {
                    return;
                };
                let members = distinct(popped(reply));
                if members.is_empty() {
                    return;
                }
                expiry(key, t, out);
                out.extend(members.into_iter().map(|m| UndoEntry::SetMember {
                    key: key.clone(),
                    member: m,
                    present: true,
                }));
            }
            Recipe::ZSet {
                key,
                op,
                members,
                scores,
                ttl,
            } => {
                if is_whole(key) {
                    return;
                }
                let Some((t, before)) = scores_before(reads, members.len(), *scores, *ttl) else {
                    return;
                };
                let changed: Vec<UndoEntry> = members
                    .iter()
                    .zip(before)
                    .filter(|(_, s)| match op {
                        ZOp::Add { nx, xx } => !((*nx && s.is_some()) || (*xx && s.is_none())),
                        ZOp::Rem => s.is_some(),
                    })
                    .map(|(m, score)| UndoEntry::ZMember {
                        key: key.clone(),
                        member: m.clone(),
                        score,
                    })
                    .collect();
                if !changed.is_empty() {
                    expiry(key, t, out);
                    out.extend(changed);
                }
            }
            Recipe::ZPop { key, ttl } => {
                if is_whole(key) {
                    return;
                }
                let (Some(t), Some(pairs)) = (ttl_at(reads, *ttl), reply.and_then(score_pairs))
                else {
                    return;
                };
                zmembers(key, t, pairs, out);
            }
            Recipe::ZRemRange { key, range, ttl } => {
                if is_whole(key) {
                    return;
                }
                if let Some((t, pairs)) = removed_range(reads, *range, *ttl) {
                    zmembers(key, t, pairs, out);
                }
            }
            Recipe::ZMPop { keys } => {
                let Some(Read::Array(r)) = reply else {
                    return;
                };
                let [k, pairs] = r.as_slice() else {
                    return;
                };
                let (Some(k), Some(pairs)) = (bytes_of(k), score_pairs(pairs)) else {
                    return;
                };
                let Some((key, ttl)) = keys.iter().find(|(x, _)| x == k) else {
                    return;
                };
                if is_whole(key) {
                    return;
                }
                if let Some(t) = ttl_at(reads, *ttl) {
                    zmembers(key, t, pairs, out);
                }
            }
            Recipe::Push {
                key,
                left,
                count,
                only_existing,
                ttl,
            } => {
                if is_whole(key) {
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
                    key: key.clone(),
                    left: *left,
                    count: *count,
                });
            }
            Recipe::Pop { key, left, ttl } => {
                if is_whole(key) {
                    return;
                }
                let Some(t) = ttl_at(reads, *ttl) else {
                    return;
                };
                list_pushback(key, *left, t, popped(reply), out);
            }
            Recipe::Move {
                src,
                dst,
                from_left,
                to_left,
                src_ttl,
                dst_ttl,
            } => {
                if is_whole(src) || is_whole(dst) {
                    return;
                }
                let (Some(st), Some(dt), Some(Read::Bulk(e))) =
                    (ttl_at(reads, *src_ttl), ttl_at(reads, *dst_ttl), reply)
                else {
                    return;
                };
                expiry(src, st, out);
                if src != dst {
                    expiry(dst, dt, out);
                }
                out.push(UndoEntry::ListPush {
                    key: src.clone(),
                    left: *from_left,
                    elems: vec![e.clone()],
                });
                out.push(UndoEntry::ListPop {
                    key: dst.clone(),
                    left: *to_left,
                    count: 1,
                });
            }
            Recipe::MPop { keys, left } => {
                let Some(Read::Array(r)) = reply else {
                    return;
                };
                let [k, elems] = r.as_slice() else {
                    return;
                };
                let Some(k) = bytes_of(k) else {
                    return;
                };
                let Some((key, ttl)) = keys.iter().find(|(x, _)| x == k) else {
                    return;
                };
                if is_whole(key) {
                    return;
                }
                if let Some(t) = ttl_at(reads, *ttl) {
                    list_pushback(key, *left, t, popped(Some(elems)), out);
                }
            }
            Recipe::LSet {
                key,
                index,
                old,
                ttl,
            } => {
                if is_whole(key) {
                    return;
                }
                if let (Some(Read::Bulk(v)), Some(t)) = (reads.get(*old), ttl_at(reads, *ttl)) {
                    expiry(key, t, out);
                    out.push(UndoEntry::ListSet {
                        key: key.clone(),
                        index: *index,
                        value: v.clone(),
                    });
                }
            }
            Recipe::LTrim {
                key,
                start,
                stop,
                len,
                ttl,
                head,
                tail,
            } => {
                if is_whole(key) {
                    return;
                }
                let Some((t, mut h, tl)) = trimmed(reads, *start, *stop, *len, *ttl, *head, *tail)
                else {
                    return;
                };
                if h.is_empty() && tl.is_empty() {
                    return;
                }
                expiry(key, t, out);
                if !h.is_empty() {
                    h.reverse();
                    out.push(UndoEntry::ListPush {
                        key: key.clone(),
                        left: true,
                        elems: h,
                    });
                }
                if !tl.is_empty() {
                    out.push(UndoEntry::ListPush {
                        key: key.clone(),
                        left: false,
                        elems: tl,
                    });
                }
            }
            Recipe::Expire { key, ttl } => {
                if is_whole(key) {
                    return;
                }
                if let Some(t) = ttl_at(reads, *ttl) {
                    expiry(key, t, out);
                }
            }
            Recipe::Rename { src, dst, ttl, nx } => {
                if *nx && reply != Some(&Read::Int(1)) {
                    return;
                }
                if !is_whole(src) {
                    if let Some(t) = ttl_at(reads, *ttl) {
                        expiry(src, t, out);
                    }
                }
                out.push(UndoEntry::Rename {
                    from: src.clone(),
                    to: dst.clone(),
                });
            }
        }
    }
}

fn zmembers(key: &[u8], t: Ttl, pairs: Scored, out: &mut Vec<UndoEntry>) {
    if pairs.is_empty() {
        return;
    }
    expiry(key, t, out);
    let mut seen = KeyList::default();
    for (m, s) in pairs {
        if !seen.add(&m) {
            continue;
        }
        out.push(UndoEntry::ZMember {
            key: key.to_vec(),
            member: m,
            score: Some(s),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_whole_copies_every_written_key_and_reads_nothing() {
        let argv: [&[u8]; 5] = [b"HSET", b"h", b"f", b"v", b"h"];
        let p = plan_whole(&argv, &[1, 4, 9]);
        assert!(p.reads().is_empty());
        assert_eq!(p.whole_keys(&[]), vec![b"h".to_vec()]);
        assert!(!p.needs_reply());
    }

    fn args(s: &str) -> Vec<Vec<u8>> {
        s.split(' ').map(|a| a.as_bytes().to_vec()).collect()
    }

    fn show(c: &[Vec<u8>]) -> String {
        c.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    const NOW: i64 = 1_700_000_000_000;

    /// Plans `cmd` with `keys` (positions) as the written keys.
    fn plan_of(cmd: &str, keys: &[usize]) -> Plan {
        let a = args(cmd);
        let refs: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
        plan(&refs, keys, NOW)
    }

    fn reads_of(p: &Plan) -> Vec<String> {
        p.reads().iter().map(|c| show(c)).collect()
    }

    fn bulk(s: &str) -> Read {
        Read::Bulk(s.as_bytes().to_vec())
    }

    fn arr(items: Vec<Read>) -> Read {
        Read::Array(items)
    }

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn wrongtype() -> Read {
        Read::Error(b"WRONGTYPE Operation against a key holding the wrong kind of value".to_vec())
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
            let always: Vec<String> = p
                .always_whole
                .iter()
                .map(|w| show(std::slice::from_ref(w)))
                .collect();
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

    fn hf(key: &str, f: &str, before: Option<&str>) -> UndoEntry {
        UndoEntry::HashField {
            key: k(key),
            field: k(f),
            before: before.map(k),
        }
    }

    fn ttl(key: &str, t: Option<i64>) -> UndoEntry {
        UndoEntry::Expiry {
            key: k(key),
            expire_at_ms: t,
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
            let wholes: Vec<(Vec<u8>, Option<Snapshot>)> =
                p.whole_keys(reads).into_iter().map(|w| (w, None)).collect();
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
}
