//! Recipes: for a write command, which reads capture exactly what it is about to change, and
//! how to turn those reads (and, for some commands, the command's own reply) into undo entries.
//! Pure: no Redis types; the executor runs the reads and the command.
//!
//! The executor, for each queued write:
//! 1. `plan()` the command; of its `element_keys()`, the keys of collections it would undo
//!    element by element, pass those held in a compact encoding now (listpack, intset) to
//!    `with_whole()`: putting elements back restores contents, not a listpack's order or an
//!    intset that a write converted, while a compact key is small enough to copy whole;
//!    then run `reads()` (unreplicated) and convert each reply to a [`Read`];
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
//! One file per command family (`strings`, `hashes`, `sets`, `zsets`, `lists`, `keys`) owns
//! its commands' plan (`build`), the rule that sends a key whole when its reads do not check
//! out (`bad_keys`) and the undo entries (`entries`), side by side, with their tests. This
//! file holds the shared types and helpers and `build`, the one table from command name to
//! family; a command it does not list has no recipe.
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

mod hashes;
mod keys;
mod lists;
mod sets;
mod strings;

pub use keys::is_rename;
pub use strings::{counter_delta, writes_first_key};
mod zsets;

use super::entry::{Snapshot, UndoEntry};
use super::keymap::SMALL;
use std::borrow::Cow;
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

/// What a write does to a hash or sorted set when it only adds or updates elements, never
/// removes any: at most `added` new ones (the command's element arguments, duplicates
/// counted: the server sizes its conversion checks by them), none longer than `longest`
/// bytes. A key in a compact encoding that stays within the encoding's limits after such a
/// write is still compact, and its element-level undo gives back its exact representation: a
/// listpack hash updates a field in place and appends a new one (removing it again leaves the
/// listpack as it was); a listpack sorted set keeps its members in (score, member) order.
/// The executor then need not ask for the key's encoding (see `exec::compact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Growth {
    pub kind: Collection,
    pub added: usize,
    pub longest: usize,
}

/// The collections a [`Growth`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Hash,
    ZSet,
}

/// An absolute deadline this close to `now_ms` (or earlier) may delete the key when the command
/// runs (the server's clock moves on after planning), so such `EXPIREAT`/`PEXPIREAT` commands
/// take a whole-key snapshot instead of recording the old expiry.
pub const EXPIRY_MARGIN_MS: i64 = 2_000;

/// A read to make before a command: its name and arguments, borrowed from the command's own
/// arguments where they are (the names are constants; counts and indexes are computed).
pub type ReadCmd<'a> = Vec<Cow<'a, [u8]>>;

/// The reads to make before a command, and how to turn them into undo entries. It borrows
/// the command's arguments (`'a`): planning copies no key, field or member.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    reads: Vec<ReadCmd<'a>>,
    /// Every key the command may write (recipe keys and the rest of `key_positions`).
    keys: Vec<&'a [u8]>,
    /// Keys snapshotted whole whatever the reads say.
    always_whole: Vec<&'a [u8]>,
    recipe: Recipe<'a>,
}

#[cfg(test)]
/// `plan_with` for a server without the features of [`Features`] (Redis 7.0 - 7.2, Valkey 8).
pub fn plan<'a>(argv: &[&'a [u8]], key_positions: &[usize], now_ms: i64) -> Plan<'a> {
    plan_with(argv, key_positions, now_ms, Features::default())
}

/// Plans the undo of `argv` (`argv[0]` is the command name, any case). `key_positions` index
/// `argv` and name the keys the command may write, as the server reports them. `now_ms` is the
/// server's time just before planning (it decides whether an absolute expiry deletes the key).
pub fn plan_with<'a>(
    argv: &[&'a [u8]],
    key_positions: &[usize],
    now_ms: i64,
    features: Features,
) -> Plan<'a> {
    let written = written(argv, key_positions);
    // Command names are short: lowercased on the stack.
    let mut buf = [0u8; 32];
    let first = argv.first().copied().unwrap_or_default();
    let spill;
    let name: &[u8] = match buf.get_mut(..first.len()) {
        Some(dst) => {
            dst.copy_from_slice(first);
            dst.make_ascii_lowercase();
            dst
        }
        None => {
            spill = first.to_ascii_lowercase();
            &spill
        }
    };
    let mut b = Builder::default();
    let recipe = build(name, argv, now_ms, features, &mut b);
    match recipe {
        Some(recipe) if b.keys.list.iter().all(|k| written.contains(k)) => {
            let mut always_whole = b.whole;
            let mut keys = b.keys;
            // Keys the server says the command writes and the recipe does not know about.
            for &k in &written.list {
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
            for &k in &b.keys.list {
                keys.add(k);
            }
            Plan::whole(keys)
        }
    }
}

/// A plan without a recipe: every key in `key_positions` is copied whole. For a transaction
/// that may be undone long after, over later changes, which only whole keys put back exactly.
pub fn plan_whole<'a>(argv: &[&'a [u8]], key_positions: &[usize]) -> Plan<'a> {
    Plan::whole(written(argv, key_positions))
}

/// The keys at `key_positions` in `argv` (positions out of range are ignored).
fn written<'a>(argv: &[&'a [u8]], key_positions: &[usize]) -> KeyList<'a> {
    let mut keys = KeyList::default();
    for &p in key_positions {
        if let Some(&k) = argv.get(p) {
            keys.add(k);
        }
    }
    keys
}

impl<'a> Plan<'a> {
    /// No reads: every key in `keys` is snapshotted whole.
    fn whole(keys: KeyList<'a>) -> Plan<'a> {
        Plan {
            reads: Vec::new(),
            always_whole: keys.list.clone(),
            keys: keys.list,
            recipe: Recipe::Nothing,
        }
    }

    /// The commands to run before the write, in order (each name first).
    pub fn reads(&self) -> &[ReadCmd<'a>] {
        &self.reads
    }

    /// Keys that need a whole-key snapshot (`DUMP` + absolute expiry; `None` when absent),
    /// decided from the replies to `reads()` (one per read, in order).
    pub fn whole_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        let bad = self.recipe.bad_keys(reads);
        if bad.is_empty() {
            return self.always_whole.clone();
        }
        let mut out = KeyList::default();
        for k in self.always_whole.iter().copied().chain(bad) {
            out.add(k);
        }
        out.list
    }

    /// Whether `entries` needs the command's reply.
    pub fn needs_reply(&self) -> bool {
        self.recipe.needs_reply()
    }

    /// Keys of a hash, set, sorted set or list that the plan undoes element by element. Such an
    /// undo restores the elements, not the representation of a compact encoding (a listpack,
    /// an intset): a field put back goes to the end of a listpack, a member that converted an
    /// intset leaves a listpack or hashtable behind. The executor finds out which of these keys
    /// are compact now and passes them to [`Plan::with_whole`].
    pub fn element_keys(&self) -> Vec<&'a [u8]> {
        let mut out = KeyList::default();
        for k in self.recipe.element_keys() {
            if !self.always_whole.contains(&k) {
                out.add(k);
            }
        }
        out.list
    }

    /// How the command grows `key`, when it only adds or updates elements of it and undoes
    /// them element by element (see [`Growth`]).
    pub fn growth(&self, key: &[u8]) -> Option<Growth> {
        if self.always_whole.contains(&key) {
            return None;
        }
        self.recipe.growth(key)
    }

    /// The fields of the hash `key` the command reads before it writes them (`HMGET`).
    pub fn hash_fields(&self, key: &[u8]) -> Option<&[&'a [u8]]> {
        match &self.recipe {
            Recipe::Hash(r) => r.fields_of(key),
            _ => None,
        }
    }

    /// The plan with `keys` snapshotted whole as well (`DUMP`, put back byte for byte): the
    /// executor passes the keys of [`Plan::element_keys`] held in a compact encoding, so small
    /// keys come back exactly as they were while big ones keep their element-level undo. When
    /// every key of the command is then whole, the plan reads nothing.
    pub fn with_whole(mut self, keys: &[&'a [u8]]) -> Plan<'a> {
        if keys.is_empty() {
            return self;
        }
        let mut whole = KeyList::default();
        for &k in self.always_whole.iter().chain(keys) {
            whole.add(k);
        }
        if self.keys.iter().all(|k| whole.contains(k)) && !self.recipe.renames() {
            let mut all = KeyList::default();
            for &k in &self.keys {
                all.add(k);
            }
            return Plan::whole(all);
        }
        self.always_whole = whole.list;
        self
    }

    /// Every key the command may write.
    pub fn keys(&self) -> &[&'a [u8]] {
        &self.keys
    }

    /// Whether the entries never include a rename. When they do not, and the undo log already
    /// fully restores every key in `keys()` (`UndoLog::covers`), the command needs no reads
    /// and no entries at all.
    pub fn is_barrier_free(&self) -> bool {
        !self.recipe.renames()
    }

    /// The undo entries of the command, which succeeded: in the order of its own effects, so
    /// that applying them newest first undoes it. `wholes` are the snapshots of
    /// `whole_keys(reads)`; `reply` is the command's reply (needed when `needs_reply()`).
    #[cfg(test)]
    pub fn entries(
        &self,
        reads: &[Read],
        wholes: Vec<(Vec<u8>, Option<Snapshot>)>,
        reply: Option<&Read>,
    ) -> Vec<UndoEntry> {
        self.entries_of(reads, &self.whole_keys(reads), wholes, reply)
    }

    /// [`Plan::entries`] for an executor that has `whole`, the `whole_keys(reads)` it took
    /// the snapshots of, at hand (deciding them again would parse every read again).
    pub fn entries_of(
        &self,
        reads: &[Read],
        whole: &[&'a [u8]],
        wholes: Vec<(Vec<u8>, Option<Snapshot>)>,
        reply: Option<&Read>,
    ) -> Vec<UndoEntry> {
        let mut out = Vec::new();
        if !wholes.is_empty() {
            let mut snaps: HashMap<Vec<u8>, Option<Snapshot>> = wholes.into_iter().collect();
            for &k in whole {
                if let Some((key, before)) = snaps.remove_entry(k) {
                    out.push(UndoEntry::Whole { key, before });
                }
            }
        }
        let seen = Observed {
            reads,
            reply,
            whole: SliceSet::new(whole),
        };
        self.recipe.entries(&seen, &mut out);
        out
    }
}

/// Distinct byte strings in first-seen order: searched in order while there are few of them
/// (most commands name one or two keys), through a set once there are more than
/// `keymap::SMALL`.
#[derive(Debug, Default, Clone)]
struct KeyList<'a> {
    list: Vec<&'a [u8]>,
    set: Option<HashSet<&'a [u8]>>,
}

impl<'a> KeyList<'a> {
    /// Adds `k` unless present; whether it was added.
    fn add(&mut self, k: &'a [u8]) -> bool {
        if self.contains(k) {
            return false;
        }
        match &mut self.set {
            Some(set) => {
                set.insert(k);
            }
            None if self.list.len() >= SMALL => {
                let mut set: HashSet<&[u8]> = self.list.iter().copied().collect();
                set.insert(k);
                self.set = Some(set);
            }
            None => {}
        }
        self.list.push(k);
        true
    }

    fn contains(&self, k: &[u8]) -> bool {
        match &self.set {
            Some(set) => set.contains(k),
            None => self.list.contains(&k),
        }
    }
}

#[derive(Default)]
struct Builder<'a> {
    reads: Vec<ReadCmd<'a>>,
    keys: KeyList<'a>,
    whole: KeyList<'a>,
}

impl<'a> Builder<'a> {
    fn read(&mut self, parts: &[&'a [u8]]) -> usize {
        self.reads
            .push(parts.iter().map(|&p| Cow::Borrowed(p)).collect());
        self.reads.len() - 1
    }

    /// A read some of whose arguments are computed.
    fn read_cmd(&mut self, cmd: ReadCmd<'a>) -> usize {
        self.reads.push(cmd);
        self.reads.len() - 1
    }

    /// `name key args...`
    fn read_with(&mut self, name: &'static [u8], key: &'a [u8], args: &[&'a [u8]]) -> usize {
        let mut c = Vec::with_capacity(args.len() + 2);
        c.push(Cow::Borrowed(name));
        c.push(Cow::Borrowed(key));
        c.extend(args.iter().map(|&a| Cow::Borrowed(a)));
        self.reads.push(c);
        self.reads.len() - 1
    }

    fn ttl(&mut self, key: &'a [u8]) -> usize {
        self.read(&[b"PEXPIRETIME", key])
    }

    fn key(&mut self, k: &'a [u8]) -> &'a [u8] {
        self.keys.add(k);
        k
    }
}

/// What a command's recipe remembers between planning and `entries`: per family, the keys and
/// where each read's reply is (an index into `reads`).
#[derive(Debug, Clone)]
enum Recipe<'a> {
    /// Nothing beyond the whole keys (or nothing at all: the command changes nothing).
    Nothing,
    Str(strings::StrRecipe<'a>),
    Hash(hashes::HashRecipe<'a>),
    Set(sets::SetRecipe<'a>),
    ZSet(zsets::ZSetRecipe<'a>),
    List(lists::ListRecipe<'a>),
    Key(keys::KeyRecipe<'a>),
}

/// Builds the recipe of a command (`name` in lowercase): hands it to its family, which plans
/// the reads. `None` when there is none (or the arguments look wrong): whole keys.
fn build<'a>(
    name: &[u8],
    argv: &[&'a [u8]],
    now_ms: i64,
    features: Features,
    b: &mut Builder<'a>,
) -> Option<Recipe<'a>> {
    match name {
        b"set" | b"setnx" | b"setex" | b"psetex" | b"getset" | b"getdel" | b"getex" | b"append"
        | b"setrange" | b"incr" | b"decr" | b"incrby" | b"decrby" | b"incrbyfloat" | b"setbit"
        | b"bitfield" | b"mset" | b"msetnx" | b"bitop" => strings::build(name, argv, b),
        b"hset" | b"hmset" | b"hsetnx" | b"hdel" | b"hincrby" | b"hincrbyfloat" => {
            hashes::build(name, argv, features, b)
        }
        b"sadd" | b"srem" | b"smove" | b"spop" => sets::build(name, argv, b),
        b"zadd" | b"geoadd" | b"zincrby" | b"zrem" | b"zpopmin" | b"zpopmax"
        | b"zremrangebyrank" | b"zremrangebyscore" | b"zmpop" => zsets::build(name, argv, b),
        b"lpush" | b"rpush" | b"lpushx" | b"rpushx" | b"lpop" | b"rpop" | b"lmove"
        | b"rpoplpush" | b"lmpop" | b"lset" | b"ltrim" => lists::build(name, argv, b),
        b"expire" | b"pexpire" | b"expireat" | b"pexpireat" | b"persist" | b"rename"
        | b"renamenx" | b"copy" => keys::build(name, argv, now_ms, b),
        // Everything else (DEL, UNLINK, streams, HyperLogLog, *STORE, LINSERT, LREM, other
        // modules' commands...): whole keys.
        _ => None,
    }
}

impl<'a> Recipe<'a> {
    fn needs_reply(&self) -> bool {
        match self {
            Recipe::Nothing | Recipe::Str(_) | Recipe::Hash(_) => false,
            Recipe::Set(r) => r.needs_reply(),
            Recipe::ZSet(r) => r.needs_reply(),
            Recipe::List(r) => r.needs_reply(),
            Recipe::Key(r) => r.needs_reply(),
        }
    }

    /// Whether the entries may include a rename (see `Plan::is_barrier_free`).
    fn renames(&self) -> bool {
        matches!(self, Recipe::Key(r) if r.renames())
    }

    /// Keys that `entries` undoes element by element in a collection (see
    /// [`Plan::element_keys`]); none for strings (their undo puts the whole value back) and
    /// key-space commands (an expiry or a rename does not touch the value).
    fn element_keys(&self) -> Vec<&'a [u8]> {
        match self {
            Recipe::Nothing | Recipe::Str(_) | Recipe::Key(_) => vec![],
            Recipe::Hash(r) => r.element_keys(),
            Recipe::Set(r) => r.element_keys(),
            Recipe::ZSet(r) => r.element_keys(),
            Recipe::List(r) => r.element_keys(),
        }
    }

    /// See [`Plan::growth`].
    fn growth(&self, key: &[u8]) -> Option<Growth> {
        match self {
            Recipe::Hash(r) => r.growth(key),
            Recipe::ZSet(r) => r.growth(key),
            _ => None,
        }
    }

    /// Keys whose reads do not allow an element-level undo.
    fn bad_keys(&self, reads: &[Read]) -> Vec<&'a [u8]> {
        match self {
            Recipe::Nothing => vec![],
            Recipe::Str(r) => r.bad_keys(reads),
            Recipe::Hash(r) => r.bad_keys(reads),
            Recipe::Set(r) => r.bad_keys(reads),
            Recipe::ZSet(r) => r.bad_keys(reads),
            Recipe::List(r) => r.bad_keys(reads),
            Recipe::Key(r) => r.bad_keys(reads),
        }
    }

    /// Appends the entries of the keys that did not go whole.
    fn entries(&self, seen: &Observed, out: &mut Vec<UndoEntry>) {
        match self {
            Recipe::Nothing => {}
            Recipe::Str(r) => r.entries(seen, out),
            Recipe::Hash(r) => r.entries(seen, out),
            Recipe::Set(r) => r.entries(seen, out),
            Recipe::ZSet(r) => r.entries(seen, out),
            Recipe::List(r) => r.entries(seen, out),
            Recipe::Key(r) => r.entries(seen, out),
        }
    }
}

/// What a recipe's entries are made from, once the command succeeded.
struct Observed<'a> {
    /// The replies to the plan's reads, in order.
    reads: &'a [Read],
    /// The command's own reply (when the plan `needs_reply`).
    reply: Option<&'a Read>,
    /// Keys snapshotted whole: their `Whole` entry undoes everything, so the recipe adds none.
    whole: SliceSet<'a>,
}

/// Membership in a few byte strings: searched in order, through a set when there are many.
struct SliceSet<'a> {
    items: &'a [&'a [u8]],
    set: Option<HashSet<&'a [u8]>>,
}

impl<'a> SliceSet<'a> {
    fn new(items: &'a [&'a [u8]]) -> Self {
        let set = (items.len() > SMALL).then(|| items.iter().copied().collect());
        SliceSet { items, set }
    }

    fn contains(&self, k: &[u8]) -> bool {
        match &self.set {
            Some(set) => set.contains(k),
            None => self.items.contains(&k),
        }
    }
}

impl Observed<'_> {
    fn is_whole(&self, key: &[u8]) -> bool {
        self.whole.contains(key)
    }
}

/// `keys` when their reads do not check out (`ok` false), else none: for a recipe whose keys
/// stand or fall together.
fn bad_unless<'a>(ok: bool, keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    if ok {
        vec![]
    } else {
        keys.into_iter().collect()
    }
}

/// Redis's integer syntax, strictly (no sign, spaces or leading zeros other than Redis's own
/// output); anything else falls back to a whole-key snapshot.
fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

fn distinct<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    let mut seen = KeyList::default();
    for i in items {
        seen.add(i);
    }
    seen.list
}

/// `argv[from..]` (empty when out of range).
fn tail<'a>(argv: &[&'a [u8]], from: usize) -> Vec<&'a [u8]> {
    argv.get(from..).unwrap_or_default().to_vec()
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

/// One `PEXPIRETIME` read per distinct key.
fn ttl_per_key<'a>(keys: &[&'a [u8]], b: &mut Builder<'a>) -> Vec<(&'a [u8], usize)> {
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

/// Whether every key of a per-key `PEXPIRETIME` list has a well-formed reply.
fn ttls_ok(reads: &[Read], keys: &[(&[u8], usize)]) -> bool {
    keys.iter().all(|(_, t)| ttl_at(reads, *t).is_some())
}

/// `<pop> key [count]` (SPOP, ZPOPMIN/MAX, LPOP/RPOP): the key, and its `PEXPIRETIME` read.
fn pop_key<'a>(argv: &[&'a [u8]], b: &mut Builder<'a>) -> Option<(&'a [u8], usize)> {
    let k = argv.get(1).copied()?;
    if !(2..=3).contains(&argv.len()) {
        return None;
    }
    let key = b.key(k);
    Some((key, b.ttl(k)))
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

/// The reply of a per-element read (`HMGET`, `SMISMEMBER`, `ZMSCORE`) at `reads[i]`: one
/// value per element (`n` of them), each parsed by `parse`, and the key's expiry from the
/// `PEXPIRETIME` read at `ttl`. `None` when anything is off, including an element that is
/// `there` in a key that does not exist.
fn per_element<T>(
    reads: &[Read],
    i: usize,
    n: usize,
    ttl: usize,
    parse: impl Fn(&Read) -> Option<T>,
    there: impl Fn(&T) -> bool,
) -> Option<(Ttl, Vec<T>)> {
    let t = ttl_at(reads, ttl)?;
    let Read::Array(items) = reads.get(i)? else {
        return None;
    };
    if items.len() != n {
        return None;
    }
    let v: Vec<T> = items.iter().map(parse).collect::<Option<_>>()?;
    if !t.exists() && v.iter().any(there) {
        return None;
    }
    Some((t, v))
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

/// The element-level replies of a multi-key pop (ZMPOP, LMPOP): `[key, popped]`, and the
/// `PEXPIRETIME` read of that key; `None` when the reply is anything else or names a key the
/// command was not given.
fn mpop_reply<'r, 'k>(
    reply: Option<&'r Read>,
    keys: &[(&'k [u8], usize)],
) -> Option<(&'k [u8], usize, &'r Read)> {
    let Some(Read::Array(r)) = reply else {
        return None;
    };
    let [k, elems] = r.as_slice() else {
        return None;
    };
    let k = bytes_of(k)?;
    let &(key, ttl) = keys.iter().find(|(x, _)| *x == k)?;
    Some((key, ttl, elems))
}

/// The key's expiry entry, unless the key did not exist (undoing the elements deletes it).
fn expiry(key: &[u8], t: Ttl, out: &mut Vec<UndoEntry>) {
    if let Ttl::At(expire_at_ms) = t {
        out.push(UndoEntry::Expiry {
            key: key.to_vec(),
            expire_at_ms,
        });
    }
}

/// The key's expiry then `changed`, or nothing at all when nothing changed.
fn with_expiry(key: &[u8], t: Ttl, changed: Vec<UndoEntry>, out: &mut Vec<UndoEntry>) {
    if !changed.is_empty() {
        expiry(key, t, out);
        out.extend(changed);
    }
}

#[cfg(test)]
mod tests;
