//! The undo log of one transaction: undo entries in the order the transaction made them,
//! checkpoint compaction, and a versioned encoding. Pure: no Redis types.
//!
//! Rollback runs `compensations()`: the entries' commands, newest first.
//!
//! ## Expiry: only a key's first entry restores it
//! Every element-level recipe emits the key's `Expiry` before its element entries whenever the
//! key exists (RENAME emits the source's), so the first entry the log holds for a key that
//! existed before the transaction is a full restore (`Whole`, `Str`) or its original expiry.
//! Rollback applies that entry after every other one that touches the key name, so it alone
//! decides the key's final deadline; deadlines in later entries are intermediate and do not
//! matter, except that a deadline that has passed by the time of a late rollback
//! (`TXU.ROLLBACK <txid>` of a retained transaction) would delete the key half-way. `push`
//! therefore stores no `Expiry` for a key that already has an entry, and strips the deadline
//! of a later `Whole` or `Str`.
//!
//! ## Covered keys
//! Once a full restore of a key is logged, with no later rename of the key, rollback puts the
//! key back whatever happens to it afterwards: `covers(key)` says so, the executor may skip the
//! reads (and entries) of a later command that only writes covered keys and renames nothing,
//! and `push` does not store later entries of that key (they would meet the key as that
//! skipped command left it, possibly of another type).
//!
//! ## Compaction ("checkpoint")
//! Keeps, for each thing the transaction touched, only its earliest pre-image: rolling back to
//! it undoes every later change of the same thing. An entry is dropped when, for its key and
//! with no barrier between (a rename from or to the key), an earlier entry
//! - fully restores the key (`Whole`, `Str`): everything later about the key is dropped;
//! - restores the same slot: the key's expiry, or the same hash field / set member / sorted-set
//!   member, within the same *run* of the key (a run ends where the key's entries change
//!   collection kind: the key was deleted and recreated as another type in between, and a
//!   compensation of the old kind would then meet a key of the wrong type).
//!
//! List steps and renames are never merged (their effect depends on positions and names).
//! Renames are never dropped, nor a key's first entry. Surviving entries keep their order.

// Wired into the executor by the lead.

use super::entry::{Kind, UndoEntry};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Encoding version (the first byte of `encode()`).
pub const VERSION: u8 = 1;

/// The undo entries of one transaction, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UndoLog {
    entries: Vec<UndoEntry>,
    /// Entries pushed since the log was created (compaction does not lower it).
    pushed: u64,
    /// Compactions run.
    compactions: u64,
    /// Entries removed by compaction, in total.
    removed: u64,
    /// Entries pushed since the last compaction.
    since_compaction: u64,
    /// Keys fully restored by an entry with no later rename of the key (recomputed).
    #[serde(skip)]
    covered: HashSet<Vec<u8>>,
    /// Keys some entry writes (recomputed).
    #[serde(skip)]
    seen: HashSet<Vec<u8>>,
}

pub use crate::codec::DecodeError;

impl UndoLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry, normalized (see the module documentation): an entry for a key that
    /// `covers` is not stored (the full restore undoes it), nor an `Expiry` of a key that
    /// already has an entry (only a key's first entry restores its deadline), and a later
    /// `Whole` or `Str` is stored without its deadline. Returns whether the entry was stored.
    pub fn push(&mut self, e: UndoEntry) -> bool {
        if !matches!(e, UndoEntry::Rename { .. }) && self.covered.contains(e.key()) {
            return false;
        }
        let e = match e {
            UndoEntry::Expiry { key, .. } if self.seen.contains(&key) => return false,
            UndoEntry::Whole {
                key,
                before: Some(mut s),
            } if self.seen.contains(&key) => {
                s.expire_at_ms = None;
                UndoEntry::Whole {
                    key,
                    before: Some(s),
                }
            }
            UndoEntry::Str {
                key,
                before: Some((v, Some(_))),
            } if self.seen.contains(&key) => UndoEntry::Str {
                key,
                before: Some((v, None)),
            },
            e => e,
        };
        self.pushed = self.pushed.saturating_add(1);
        self.since_compaction = self.since_compaction.saturating_add(1);
        Self::track(&mut self.covered, &mut self.seen, &e);
        self.entries.push(e);
        true
    }

    fn track(covered: &mut HashSet<Vec<u8>>, seen: &mut HashSet<Vec<u8>>, e: &UndoEntry) {
        for k in e.keys() {
            if !seen.contains(k) {
                seen.insert(k.to_vec());
            }
        }
        match e {
            UndoEntry::Rename { from, to } => {
                covered.remove(from);
                covered.remove(to);
            }
            e if e.is_full_restore() && !covered.contains(e.key()) => {
                covered.insert(e.key().to_vec());
            }
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[UndoEntry] {
        &self.entries
    }

    /// Forgets the entries after the first `len` (those of a command that then failed).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.entries.len() {
            return;
        }
        let dropped = (self.entries.len() - len) as u64;
        self.entries.truncate(len);
        self.since_compaction = self.since_compaction.saturating_sub(dropped);
        self.rebuild();
    }

    /// Whether an entry fully restores `key` (`Whole` or `Str`) and no later rename involves
    /// it: rollback then puts the key back whatever happens to it afterwards, so a later
    /// command that only writes covered keys (and renames nothing) needs no undo entries.
    pub fn covers(&self, key: &[u8]) -> bool {
        self.covered.contains(key)
    }

    #[cfg(test)]
    /// Entries stored by `push` since the log was created.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    #[cfg(test)]
    /// Compactions run so far.
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    #[cfg(test)]
    /// Entries removed by compaction so far.
    pub fn removed(&self) -> u64 {
        self.removed
    }

    /// Entries stored since the last compaction (for `txu.checkpoint-every`).
    pub fn since_compaction(&self) -> u64 {
        self.since_compaction
    }

    /// Bytes held by the entries (`UndoEntry::weight` summed).
    #[cfg(test)]
    pub fn weight(&self) -> usize {
        self.entries.iter().map(UndoEntry::weight).sum()
    }

    /// The keys the entries write, each once, in the order first written.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let mut out = Vec::new();
        for e in &self.entries {
            for k in e.keys() {
                if seen.insert(k) {
                    out.push(k.to_vec());
                }
            }
        }
        out
    }

    /// The compensating commands (name first), in the order to run them: newest entry first.
    pub fn compensations(&self) -> Vec<Vec<Vec<u8>>> {
        self.entries
            .iter()
            .rev()
            .map(UndoEntry::compensation)
            .collect()
    }

    /// Checkpoint: drops every entry that an earlier one makes unnecessary (see the module
    /// documentation). Returns how many were removed.
    pub fn compact(&mut self) -> usize {
        let keep = self.survivors();
        let before = self.entries.len();
        let mut flags = keep.into_iter();
        self.entries.retain(|_| flags.next().unwrap_or(true));
        let removed = before - self.entries.len();
        self.compactions = self.compactions.saturating_add(1);
        self.removed = self.removed.saturating_add(removed as u64);
        self.since_compaction = 0;
        self.rebuild();
        removed
    }

    /// For each entry, whether compaction keeps it.
    fn survivors(&self) -> Vec<bool> {
        #[derive(Default)]
        struct KeyState<'a> {
            /// A full restore since the last barrier.
            full: bool,
            /// An expiry since the last barrier.
            ttl: bool,
            /// The collection kind of the current run, and the slots seen in it.
            run: Option<Kind>,
            seen: HashSet<&'a [u8]>,
        }
        let mut states: HashMap<&[u8], KeyState<'_>> = HashMap::new();
        let mut keep = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if let UndoEntry::Rename { from, to } = e {
                states.remove(from.as_slice());
                states.remove(to.as_slice());
                keep.push(true);
                continue;
            }
            let st = states.entry(e.key()).or_default();
            if st.full {
                keep.push(false);
                continue;
            }
            let (kind, slot) = e.slot();
            let k = match kind {
                Kind::Full => {
                    st.full = true;
                    true
                }
                Kind::Ttl => !std::mem::replace(&mut st.ttl, true),
                Kind::Rename => true,
                Kind::Hash | Kind::Set | Kind::ZSet | Kind::List => {
                    if st.run != Some(kind) {
                        st.run = Some(kind);
                        st.seen.clear();
                    }
                    match slot {
                        Some(s) => st.seen.insert(s),
                        None => true,
                    }
                }
            };
            keep.push(k);
        }
        keep
    }

    /// A log holding exactly `entries` (no normalization), for compaction tests.
    #[cfg(test)]
    fn from_entries(entries: Vec<UndoEntry>) -> UndoLog {
        let mut log = UndoLog {
            pushed: entries.len() as u64,
            since_compaction: entries.len() as u64,
            entries,
            ..UndoLog::default()
        };
        log.rebuild();
        log
    }

    /// Recomputes the derived fields (covered and seen keys) from the entries.
    fn rebuild(&mut self) {
        let mut covered = HashSet::new();
        let mut seen = HashSet::new();
        for e in &self.entries {
            Self::track(&mut covered, &mut seen, e);
        }
        self.covered = covered;
        self.seen = seen;
    }

    /// `VERSION`, then the log in bincode (see `codec`).
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode(VERSION, self)
    }

    /// The inverse of `encode`. Also refuses entries whose compensation the server would
    /// refuse.
    pub fn decode(bytes: &[u8]) -> Result<UndoLog, DecodeError> {
        let mut log: UndoLog = crate::codec::decode(VERSION, bytes)?;
        if let Some(bad) = log.entries.iter().position(|e| !e.is_well_formed()) {
            return Err(DecodeError::Corrupt(format!("entry {bad} is malformed")));
        }
        log.rebuild();
        Ok(log)
    }
}

/// A small in-memory keyspace that behaves like Redis for the commands the tests use: forward
/// writes, the recipes' reads, `DUMP`/`RESTORE`, and every compensating command.
#[cfg(test)]
pub(crate) mod model {
    use crate::undo::recipe::Read;
    use serde::{Deserialize, Serialize};
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Val {
        Str(Vec<u8>),
        Hash(BTreeMap<Vec<u8>, Vec<u8>>),
        Set(BTreeSet<Vec<u8>>),
        ZSet(BTreeMap<Vec<u8>, f64>),
        List(VecDeque<Vec<u8>>),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Obj {
        pub val: Val,
        pub exp: Option<i64>,
    }

    #[derive(Debug, Clone)]
    pub struct Db {
        pub keys: BTreeMap<Vec<u8>, Obj>,
        pub now: i64,
        pub resp3: bool,
        pub rng: u64,
    }

    impl PartialEq for Db {
        fn eq(&self, o: &Db) -> bool {
            self.keys == o.keys
        }
    }

    type R = Result<Read, String>;
    type Fields = BTreeMap<Vec<u8>, Vec<u8>>;

    const WT: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

    fn lower(b: &[u8]) -> String {
        String::from_utf8_lossy(b).to_ascii_lowercase()
    }

    fn int(b: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| "ERR value is not an integer or out of range".to_string())
    }

    fn float(b: &[u8]) -> Result<f64, String> {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|f| !f.is_nan())
            .ok_or_else(|| "ERR value is not a valid float".to_string())
    }

    fn bulk(b: &[u8]) -> Read {
        Read::Bulk(b.to_vec())
    }

    fn ok() -> R {
        Ok(Read::Bulk(b"OK".to_vec()))
    }

    /// Redis's index range normalization (LRANGE, ZRANGE by rank...): inclusive bounds.
    fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
        let n = len as i64;
        let (mut s, mut e) = (start, end);
        if s < 0 {
            s += n;
        }
        if e < 0 {
            e += n;
        }
        if s < 0 {
            s = 0;
        }
        if s > e || s >= n {
            return None;
        }
        if e >= n {
            e = n - 1;
        }
        Some((s as usize, e as usize))
    }

    /// A ZRANGEBYSCORE bound: (value, exclusive).
    fn score_bound(b: &[u8]) -> Result<(f64, bool), String> {
        match b.strip_prefix(b"(") {
            Some(rest) => Ok((float(rest)?, true)),
            None => Ok((float(b)?, false)),
        }
    }

    fn in_range(s: f64, min: (f64, bool), max: (f64, bool)) -> bool {
        let lo = if min.1 { s > min.0 } else { s >= min.0 };
        let hi = if max.1 { s < max.0 } else { s <= max.0 };
        lo && hi
    }

    fn sorted(z: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    impl Db {
        pub fn new(now: i64) -> Db {
            Db {
                keys: BTreeMap::new(),
                now,
                resp3: false,
                rng: 0x9E37_79B9_7F4A_7C15,
            }
        }

        fn rand(&mut self, n: usize) -> usize {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng % n as u64) as usize
        }

        /// Drops keys whose deadline has passed (Redis does it lazily; nothing can tell).
        pub fn purge(&mut self) {
            let now = self.now;
            self.keys.retain(|_, o| o.exp.is_none_or(|t| t > now));
        }

        /// Redis deletes collections that become empty.
        fn tidy(&mut self) {
            self.keys.retain(|_, o| match &o.val {
                Val::Str(_) => true,
                Val::Hash(h) => !h.is_empty(),
                Val::Set(s) => !s.is_empty(),
                Val::ZSet(z) => !z.is_empty(),
                Val::List(l) => !l.is_empty(),
            });
        }

        fn score(&self, s: f64) -> Read {
            if self.resp3 {
                Read::Double(s)
            } else {
                Read::Bulk(format!("{s}").into_bytes())
            }
        }

        fn pair(&self, m: &[u8], s: f64) -> Read {
            Read::Array(vec![bulk(m), self.score(s)])
        }

        /// Runs one command; errors come back as `Read::Error`.
        pub fn call(&mut self, argv: &[Vec<u8>]) -> Read {
            self.purge();
            let r = self.run(argv);
            self.tidy();
            self.purge();
            match r {
                Ok(r) => r,
                Err(e) => Read::Error(e.into_bytes()),
            }
        }

        fn get_str(&self, k: &[u8]) -> Result<Option<Vec<u8>>, String> {
            match self.keys.get(k) {
                None => Ok(None),
                Some(Obj {
                    val: Val::Str(v), ..
                }) => Ok(Some(v.clone())),
                Some(_) => Err(WT.into()),
            }
        }

        fn set_str(&mut self, k: &[u8], v: Vec<u8>, exp: Option<i64>) {
            self.keys.insert(
                k.to_vec(),
                Obj {
                    val: Val::Str(v),
                    exp,
                },
            );
        }

        /// The key's collection of the wanted type, created (without TTL) when absent and
        /// `create`.
        fn coll(&mut self, k: &[u8], empty: Val, create: bool) -> Result<Option<&mut Val>, String> {
            let same = |v: &Val| std::mem::discriminant(v) == std::mem::discriminant(&empty);
            match self.keys.get(k) {
                Some(o) if !same(&o.val) => return Err(WT.into()),
                None if !create => return Ok(None),
                None => {
                    self.keys.insert(
                        k.to_vec(),
                        Obj {
                            val: empty,
                            exp: None,
                        },
                    );
                }
                _ => {}
            }
            Ok(self.keys.get_mut(k).map(|o| &mut o.val))
        }

        fn hash(&mut self, k: &[u8], create: bool) -> Result<Option<&mut Fields>, String> {
            Ok(match self.coll(k, Val::Hash(BTreeMap::new()), create)? {
                Some(Val::Hash(h)) => Some(h),
                _ => None,
            })
        }

        fn set(
            &mut self,
            k: &[u8],
            create: bool,
        ) -> Result<Option<&mut BTreeSet<Vec<u8>>>, String> {
            Ok(match self.coll(k, Val::Set(BTreeSet::new()), create)? {
                Some(Val::Set(s)) => Some(s),
                _ => None,
            })
        }

        fn zset(
            &mut self,
            k: &[u8],
            create: bool,
        ) -> Result<Option<&mut BTreeMap<Vec<u8>, f64>>, String> {
            Ok(match self.coll(k, Val::ZSet(BTreeMap::new()), create)? {
                Some(Val::ZSet(z)) => Some(z),
                _ => None,
            })
        }

        fn list(
            &mut self,
            k: &[u8],
            create: bool,
        ) -> Result<Option<&mut VecDeque<Vec<u8>>>, String> {
            Ok(match self.coll(k, Val::List(VecDeque::new()), create)? {
                Some(Val::List(l)) => Some(l),
                _ => None,
            })
        }

        fn check_list(&self, k: &[u8]) -> Result<(), String> {
            match self.keys.get(k) {
                Some(Obj {
                    val: Val::List(_), ..
                })
                | None => Ok(()),
                _ => Err(WT.into()),
            }
        }

        fn zpop(
            &mut self,
            k: &[u8],
            max: bool,
            count: usize,
        ) -> Result<Vec<(Vec<u8>, f64)>, String> {
            let Some(z) = self.zset(k, false)? else {
                return Ok(vec![]);
            };
            let mut all = sorted(z);
            if max {
                all.reverse();
            }
            all.truncate(count);
            for (m, _) in &all {
                z.remove(m);
            }
            Ok(all)
        }

        fn lpop(
            &mut self,
            k: &[u8],
            left: bool,
            count: usize,
        ) -> Result<Option<Vec<Vec<u8>>>, String> {
            let Some(l) = self.list(k, false)? else {
                return Ok(None);
            };
            let mut out = vec![];
            for _ in 0..count {
                let e = if left { l.pop_front() } else { l.pop_back() };
                match e {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
            Ok(Some(out))
        }

        #[allow(clippy::too_many_lines)]
        fn run(&mut self, argv: &[Vec<u8>]) -> R {
            let name = lower(&argv[0]);
            let a = |i: usize| -> Result<&[u8], String> {
                argv.get(i)
                    .map(Vec::as_slice)
                    .ok_or_else(|| format!("ERR wrong number of arguments for '{name}'"))
            };
            let now = self.now;
            match name.as_str() {
                // Reads.
                "get" => Ok(self.get_str(a(1)?)?.map_or(Read::Nil, Read::Bulk)),
                "pexpiretime" => Ok(Read::Int(match self.keys.get(a(1)?) {
                    None => -2,
                    Some(o) => o.exp.unwrap_or(-1),
                })),
                "exists" => Ok(Read::Int(self.keys.contains_key(a(1)?) as i64)),
                "dump" => Ok(match self.keys.get(a(1)?) {
                    None => Read::Nil,
                    Some(o) => Read::Bulk(bincode::serialize(&o.val).unwrap()),
                }),
                "hmget" => {
                    let h = self.hash(a(1)?, false)?.cloned().unwrap_or_default();
                    Ok(Read::Array(
                        argv[2..]
                            .iter()
                            .map(|f| h.get(f).map_or(Read::Nil, |v| bulk(v)))
                            .collect(),
                    ))
                }
                "smismember" | "sismember" => {
                    let s = self.set(a(1)?, false)?.cloned().unwrap_or_default();
                    let flags: Vec<Read> = argv[2..]
                        .iter()
                        .map(|m| Read::Int(s.contains(m) as i64))
                        .collect();
                    if name == "sismember" {
                        Ok(flags.into_iter().next().unwrap())
                    } else {
                        Ok(Read::Array(flags))
                    }
                }
                "zmscore" => {
                    let z = self.zset(a(1)?, false)?.cloned().unwrap_or_default();
                    Ok(Read::Array(
                        argv[2..]
                            .iter()
                            .map(|m| z.get(m).map_or(Read::Nil, |s| self.score(*s)))
                            .collect(),
                    ))
                }
                "llen" => Ok(Read::Int(
                    self.list(a(1)?, false)?.map_or(0, |l| l.len()) as i64
                )),
                "lindex" => {
                    let i = int(a(2)?)?;
                    let l = self.list(a(1)?, false)?.cloned().unwrap_or_default();
                    let i = if i < 0 { i + l.len() as i64 } else { i };
                    Ok(usize::try_from(i)
                        .ok()
                        .and_then(|i| l.get(i))
                        .map_or(Read::Nil, |v| bulk(v)))
                }
                "lrange" => {
                    let (s, e) = (int(a(2)?)?, int(a(3)?)?);
                    let l = self.list(a(1)?, false)?.cloned().unwrap_or_default();
                    Ok(Read::Array(match range(s, e, l.len()) {
                        None => vec![],
                        Some((s, e)) => l.range(s..=e).map(|v| bulk(v)).collect(),
                    }))
                }
                "zrange" => {
                    assert!(argv.iter().any(|x| lower(x) == "withscores"));
                    let z = self.zset(a(1)?, false)?.cloned().unwrap_or_default();
                    let all = sorted(&z);
                    let picked: Vec<(Vec<u8>, f64)> = if argv.iter().any(|x| lower(x) == "byscore")
                    {
                        let (min, max) = (score_bound(a(2)?)?, score_bound(a(3)?)?);
                        all.into_iter()
                            .filter(|(_, s)| in_range(*s, min, max))
                            .collect()
                    } else {
                        match range(int(a(2)?)?, int(a(3)?)?, all.len()) {
                            None => vec![],
                            Some((s, e)) => all[s..=e].to_vec(),
                        }
                    };
                    Ok(Read::Array(if self.resp3 {
                        picked.iter().map(|(m, s)| self.pair(m, *s)).collect()
                    } else {
                        picked
                            .iter()
                            .flat_map(|(m, s)| [bulk(m), self.score(*s)])
                            .collect()
                    }))
                }

                // Strings.
                "set" => {
                    let (k, v) = (a(1)?, a(2)?);
                    let (mut nx, mut xx, mut get, mut keep) = (false, false, false, false);
                    let mut exp = None;
                    let mut i = 3;
                    while i < argv.len() {
                        match lower(&argv[i]).as_str() {
                            "nx" => nx = true,
                            "xx" => xx = true,
                            "get" => get = true,
                            "keepttl" => keep = true,
                            "px" | "pxat" => {
                                let t = int(a(i + 1)?)?;
                                if t <= 0 {
                                    return Err("ERR invalid expire time in 'set' command".into());
                                }
                                exp = Some(if lower(&argv[i]) == "px" { now + t } else { t });
                                i += 1;
                            }
                            _ => return Err("ERR syntax error".into()),
                        }
                        i += 1;
                    }
                    let old = if get { self.get_str(k)? } else { None };
                    let exists = self.keys.get(k);
                    let reply = if get {
                        old.clone().map_or(Read::Nil, Read::Bulk)
                    } else {
                        Read::Bulk(b"OK".to_vec())
                    };
                    if (nx && exists.is_some()) || (xx && exists.is_none()) {
                        return Ok(if get { reply } else { Read::Nil });
                    }
                    let exp = if keep {
                        exists.and_then(|o| o.exp)
                    } else {
                        exp
                    };
                    self.set_str(k, v.to_vec(), exp);
                    Ok(reply)
                }
                "setnx" => {
                    if self.keys.contains_key(a(1)?) {
                        Ok(Read::Int(0))
                    } else {
                        self.set_str(a(1)?, a(2)?.to_vec(), None);
                        Ok(Read::Int(1))
                    }
                }
                "getset" => {
                    let old = self.get_str(a(1)?)?;
                    self.set_str(a(1)?, a(2)?.to_vec(), None);
                    Ok(old.map_or(Read::Nil, Read::Bulk))
                }
                "getdel" => {
                    let old = self.get_str(a(1)?)?;
                    self.keys.remove(a(1)?);
                    Ok(old.map_or(Read::Nil, Read::Bulk))
                }
                "getex" => {
                    let Some(old) = self.get_str(a(1)?)? else {
                        return Ok(Read::Nil);
                    };
                    let o = self.keys.get_mut(a(1)?).unwrap();
                    match argv.get(2).map(|x| lower(x)).as_deref() {
                        Some("persist") => o.exp = None,
                        Some("px") => o.exp = Some(now + int(a(3)?)?),
                        _ => {}
                    }
                    Ok(Read::Bulk(old))
                }
                "append" => {
                    let mut v = self.get_str(a(1)?)?.unwrap_or_default();
                    v.extend_from_slice(a(2)?);
                    let exp = self.keys.get(a(1)?).and_then(|o| o.exp);
                    let n = v.len();
                    self.set_str(a(1)?, v, exp);
                    Ok(Read::Int(n as i64))
                }
                "incr" | "decr" | "incrby" | "decrby" => {
                    let by = match name.as_str() {
                        "incr" => 1,
                        "decr" => -1,
                        "incrby" => int(a(2)?)?,
                        _ => -int(a(2)?)?,
                    };
                    let cur = match self.get_str(a(1)?)? {
                        None => 0,
                        Some(v) => int(&v)?,
                    };
                    let n = cur
                        .checked_add(by)
                        .ok_or("ERR increment or decrement would overflow")?;
                    let exp = self.keys.get(a(1)?).and_then(|o| o.exp);
                    self.set_str(a(1)?, n.to_string().into_bytes(), exp);
                    Ok(Read::Int(n))
                }
                "mset" | "msetnx" => {
                    let pairs: Vec<(Vec<u8>, Vec<u8>)> = argv[1..]
                        .chunks(2)
                        .map(|c| (c[0].clone(), c[1].clone()))
                        .collect();
                    if name == "msetnx" && pairs.iter().any(|(k, _)| self.keys.contains_key(k)) {
                        return Ok(Read::Int(0));
                    }
                    for (k, v) in pairs {
                        self.set_str(&k, v, None);
                    }
                    if name == "msetnx" {
                        Ok(Read::Int(1))
                    } else {
                        ok()
                    }
                }

                // Hashes.
                "hset" => {
                    let h = self.hash(a(1)?, true)?.unwrap();
                    let mut added = 0;
                    for c in argv[2..].chunks(2) {
                        if h.insert(c[0].clone(), c[1].clone()).is_none() {
                            added += 1;
                        }
                    }
                    Ok(Read::Int(added))
                }
                "hsetnx" => {
                    let h = self.hash(a(1)?, true)?.unwrap();
                    if h.contains_key(a(2)?) {
                        return Ok(Read::Int(0));
                    }
                    h.insert(a(2)?.to_vec(), a(3)?.to_vec());
                    Ok(Read::Int(1))
                }
                "hdel" => {
                    let Some(h) = self.hash(a(1)?, false)? else {
                        return Ok(Read::Int(0));
                    };
                    Ok(Read::Int(
                        argv[2..].iter().filter(|f| h.remove(*f).is_some()).count() as i64,
                    ))
                }
                "hincrby" => {
                    let by = int(a(3)?)?;
                    if let Some(h) = self.hash(a(1)?, false)? {
                        if let Some(v) = h.get(a(2)?) {
                            int(v)?;
                        }
                    }
                    let h = self.hash(a(1)?, true)?.unwrap();
                    let cur = h.get(a(2)?).map_or(Ok(0), |v| int(v))?;
                    let n = cur.checked_add(by).ok_or("ERR overflow")?;
                    h.insert(a(2)?.to_vec(), n.to_string().into_bytes());
                    Ok(Read::Int(n))
                }

                // Sets.
                "sadd" => {
                    let s = self.set(a(1)?, true)?.unwrap();
                    Ok(Read::Int(
                        argv[2..].iter().filter(|m| s.insert(m.to_vec())).count() as i64,
                    ))
                }
                "srem" => {
                    let Some(s) = self.set(a(1)?, false)? else {
                        return Ok(Read::Int(0));
                    };
                    Ok(Read::Int(
                        argv[2..].iter().filter(|m| s.remove(*m)).count() as i64
                    ))
                }
                "smove" => {
                    let (src, dst, m) = (a(1)?, a(2)?, a(3)?);
                    let has = self.set(src, false)?.is_some_and(|s| s.contains(m));
                    self.set(dst, false)?;
                    if src == dst || !has {
                        return Ok(Read::Int(has as i64));
                    }
                    self.set(src, false)?.unwrap().remove(m);
                    self.set(dst, true)?.unwrap().insert(m.to_vec());
                    Ok(Read::Int(1))
                }
                "spop" => {
                    let count = argv.get(2).map(|c| int(c)).transpose()?;
                    let mut out = vec![];
                    let n = count.unwrap_or(1);
                    for _ in 0..n {
                        let len = match self.set(a(1)?, false)? {
                            Some(s) if !s.is_empty() => s.len(),
                            _ => break,
                        };
                        let i = self.rand(len);
                        let s = self.set(a(1)?, false)?.unwrap();
                        let m = s.iter().nth(i).unwrap().clone();
                        s.remove(&m);
                        out.push(bulk(&m));
                    }
                    Ok(match count {
                        Some(_) => Read::Array(out),
                        None => out.into_iter().next().unwrap_or(Read::Nil),
                    })
                }

                // Sorted sets.
                "zadd" => {
                    let (mut nx, mut xx, mut gt, mut lt, mut incr) =
                        (false, false, false, false, false);
                    let mut i = 2;
                    while i < argv.len() {
                        match lower(&argv[i]).as_str() {
                            "nx" => nx = true,
                            "xx" => xx = true,
                            "gt" => gt = true,
                            "lt" => lt = true,
                            "ch" => {}
                            "incr" => incr = true,
                            _ => break,
                        }
                        i += 1;
                    }
                    let rest = &argv[i..];
                    if rest.is_empty()
                        || !rest.len().is_multiple_of(2)
                        || (nx && xx)
                        || (nx && (gt || lt))
                        || (gt && lt)
                        || (incr && rest.len() != 2)
                    {
                        return Err("ERR syntax error".into());
                    }
                    let pairs: Vec<(f64, Vec<u8>)> = rest
                        .chunks(2)
                        .map(|c| Ok((float(&c[0])?, c[1].clone())))
                        .collect::<Result<_, String>>()?;
                    let z = self.zset(a(1)?, true)?.unwrap();
                    let mut last = None;
                    let mut added = 0;
                    for (s, m) in pairs {
                        let old = z.get(&m).copied();
                        if (nx && old.is_some()) || (xx && old.is_none()) {
                            continue;
                        }
                        let new = match (incr, old) {
                            (true, Some(o)) => o + s,
                            _ => s,
                        };
                        if new.is_nan() {
                            return Err("ERR resulting score is not a number (NaN)".into());
                        }
                        if let Some(o) = old {
                            if (gt && new <= o) || (lt && new >= o) {
                                continue;
                            }
                        } else {
                            added += 1;
                        }
                        z.insert(m, new);
                        last = Some(new);
                    }
                    if incr {
                        Ok(last.map_or(Read::Nil, |s| self.score(s)))
                    } else {
                        Ok(Read::Int(added))
                    }
                }
                "zincrby" => {
                    let by = float(a(2)?)?;
                    let z = self.zset(a(1)?, true)?.unwrap();
                    let new = z.get(a(3)?).copied().unwrap_or(0.0) + by;
                    if new.is_nan() {
                        return Err("ERR resulting score is not a number (NaN)".into());
                    }
                    z.insert(a(3)?.to_vec(), new);
                    Ok(self.score(new))
                }
                "zrem" => {
                    let Some(z) = self.zset(a(1)?, false)? else {
                        return Ok(Read::Int(0));
                    };
                    Ok(Read::Int(
                        argv[2..].iter().filter(|m| z.remove(*m).is_some()).count() as i64,
                    ))
                }
                "zpopmin" | "zpopmax" => {
                    let count = argv.get(2).map(|c| int(c)).transpose()?;
                    let popped =
                        self.zpop(a(1)?, name == "zpopmax", count.unwrap_or(1) as usize)?;
                    Ok(Read::Array(if self.resp3 && count.is_some() {
                        popped.iter().map(|(m, s)| self.pair(m, *s)).collect()
                    } else {
                        popped
                            .iter()
                            .flat_map(|(m, s)| [bulk(m), self.score(*s)])
                            .collect()
                    }))
                }
                "zmpop" => {
                    let n = int(a(1)?)? as usize;
                    let max = lower(a(2 + n)?) == "max";
                    let count = if argv.len() > 3 + n {
                        int(a(4 + n)?)? as usize
                    } else {
                        1
                    };
                    for k in &argv[2..2 + n] {
                        self.zset(k, false)?;
                    }
                    for k in &argv[2..2 + n] {
                        if self.keys.contains_key(k) {
                            let popped = self.zpop(k, max, count)?;
                            return Ok(Read::Array(vec![
                                bulk(k),
                                Read::Array(popped.iter().map(|(m, s)| self.pair(m, *s)).collect()),
                            ]));
                        }
                    }
                    Ok(Read::Nil)
                }
                "zremrangebyrank" | "zremrangebyscore" => {
                    let Some(z) = self.zset(a(1)?, false)? else {
                        return Ok(Read::Int(0));
                    };
                    let all = sorted(z);
                    let gone: Vec<Vec<u8>> = if name == "zremrangebyrank" {
                        match range(int(a(2)?)?, int(a(3)?)?, all.len()) {
                            None => vec![],
                            Some((s, e)) => all[s..=e].iter().map(|p| p.0.clone()).collect(),
                        }
                    } else {
                        let (min, max) = (score_bound(a(2)?)?, score_bound(a(3)?)?);
                        all.into_iter()
                            .filter(|(_, s)| in_range(*s, min, max))
                            .map(|p| p.0)
                            .collect()
                    };
                    for m in &gone {
                        z.remove(m);
                    }
                    Ok(Read::Int(gone.len() as i64))
                }

                // Lists.
                "lpush" | "rpush" | "lpushx" | "rpushx" => {
                    let x = name.ends_with('x');
                    let Some(l) = self.list(a(1)?, !x)? else {
                        return Ok(Read::Int(0));
                    };
                    for e in &argv[2..] {
                        if name.starts_with('l') {
                            l.push_front(e.clone());
                        } else {
                            l.push_back(e.clone());
                        }
                    }
                    Ok(Read::Int(l.len() as i64))
                }
                "lpop" | "rpop" => {
                    let count = argv.get(2).map(|c| int(c)).transpose()?;
                    let popped = self.lpop(a(1)?, name == "lpop", count.unwrap_or(1) as usize)?;
                    Ok(match (popped, count) {
                        (None, _) => Read::Nil,
                        (Some(p), Some(_)) => Read::Array(p.iter().map(|e| bulk(e)).collect()),
                        (Some(p), None) => p.first().map_or(Read::Nil, |e| bulk(e)),
                    })
                }
                "lmove" | "rpoplpush" => {
                    let (src, dst) = (a(1)?, a(2)?);
                    let (from_left, to_left) = if name == "lmove" {
                        (lower(a(3)?) == "left", lower(a(4)?) == "left")
                    } else {
                        (false, true)
                    };
                    self.check_list(src)?;
                    if !self.keys.contains_key(src) {
                        return Ok(Read::Nil);
                    }
                    self.check_list(dst)?;
                    let l = self.list(src, false)?.unwrap();
                    let e = if from_left {
                        l.pop_front()
                    } else {
                        l.pop_back()
                    }
                    .unwrap();
                    let d = self.list(dst, true)?.unwrap();
                    if to_left {
                        d.push_front(e.clone());
                    } else {
                        d.push_back(e.clone());
                    }
                    Ok(bulk(&e))
                }
                "lmpop" => {
                    let n = int(a(1)?)? as usize;
                    let left = lower(a(2 + n)?) == "left";
                    let count = if argv.len() > 3 + n {
                        int(a(4 + n)?)? as usize
                    } else {
                        1
                    };
                    for k in &argv[2..2 + n] {
                        self.check_list(k)?;
                    }
                    for k in &argv[2..2 + n] {
                        if let Some(p) = self.lpop(k, left, count)? {
                            return Ok(Read::Array(vec![
                                bulk(k),
                                Read::Array(p.iter().map(|e| bulk(e)).collect()),
                            ]));
                        }
                    }
                    Ok(Read::Nil)
                }
                "lset" => {
                    let i = int(a(2)?)?;
                    let Some(l) = self.list(a(1)?, false)? else {
                        return Err("ERR no such key".into());
                    };
                    let i = if i < 0 { i + l.len() as i64 } else { i };
                    match usize::try_from(i).ok().and_then(|i| l.get_mut(i)) {
                        Some(slot) => *slot = a(3)?.to_vec(),
                        None => return Err("ERR index out of range".into()),
                    }
                    ok()
                }
                "ltrim" => {
                    let (s, e) = (int(a(2)?)?, int(a(3)?)?);
                    let Some(l) = self.list(a(1)?, false)? else {
                        return ok();
                    };
                    match range(s, e, l.len()) {
                        None => l.clear(),
                        Some((s, e)) => {
                            l.truncate(e + 1);
                            l.drain(..s);
                        }
                    }
                    ok()
                }
                "linsert" => {
                    let before = lower(a(2)?) == "before";
                    let Some(l) = self.list(a(1)?, false)? else {
                        return Ok(Read::Int(0));
                    };
                    match l.iter().position(|e| e.as_slice() == argv[3].as_slice()) {
                        None => Ok(Read::Int(-1)),
                        Some(p) => {
                            l.insert(if before { p } else { p + 1 }, a(4)?.to_vec());
                            Ok(Read::Int(l.len() as i64))
                        }
                    }
                }
                "lrem" => {
                    let count = int(a(2)?)?;
                    let v = a(3)?.to_vec();
                    let Some(l) = self.list(a(1)?, false)? else {
                        return Ok(Read::Int(0));
                    };
                    let mut removed = 0i64;
                    let limit = if count == 0 { i64::MAX } else { count.abs() };
                    if count >= 0 {
                        let mut i = 0;
                        while i < l.len() && removed < limit {
                            if l[i] == v {
                                l.remove(i);
                                removed += 1;
                            } else {
                                i += 1;
                            }
                        }
                    } else {
                        let mut i = l.len();
                        while i > 0 && removed < limit {
                            i -= 1;
                            if l[i] == v {
                                l.remove(i);
                                removed += 1;
                            }
                        }
                    }
                    Ok(Read::Int(removed))
                }

                // Keys.
                "expire" | "pexpire" | "expireat" | "pexpireat" => {
                    let t = int(a(2)?)?;
                    let when = match name.as_str() {
                        "expire" => now + t * 1000,
                        "pexpire" => now + t,
                        "expireat" => t * 1000,
                        _ => t,
                    };
                    let flag = argv.get(3).map(|f| lower(f));
                    let Some(o) = self.keys.get_mut(a(1)?) else {
                        return Ok(Read::Int(0));
                    };
                    let cur = o.exp;
                    let go = match flag.as_deref() {
                        Some("nx") => cur.is_none(),
                        Some("xx") => cur.is_some(),
                        Some("gt") => cur.is_some_and(|c| when > c),
                        Some("lt") => cur.is_none_or(|c| when < c),
                        _ => true,
                    };
                    if !go {
                        return Ok(Read::Int(0));
                    }
                    if when <= now {
                        self.keys.remove(a(1)?);
                    } else {
                        o.exp = Some(when);
                    }
                    Ok(Read::Int(1))
                }
                "persist" => match self.keys.get_mut(a(1)?) {
                    Some(o) if o.exp.is_some() => {
                        o.exp = None;
                        Ok(Read::Int(1))
                    }
                    _ => Ok(Read::Int(0)),
                },
                "del" | "unlink" => Ok(Read::Int(
                    argv[1..]
                        .iter()
                        .filter(|k| self.keys.remove(*k).is_some())
                        .count() as i64,
                )),
                "rename" | "renamenx" => {
                    let (src, dst) = (a(1)?, a(2)?);
                    if !self.keys.contains_key(src) {
                        return Err("ERR no such key".into());
                    }
                    let nx = name == "renamenx";
                    if src == dst {
                        return if nx { Ok(Read::Int(0)) } else { ok() };
                    }
                    if nx && self.keys.contains_key(dst) {
                        return Ok(Read::Int(0));
                    }
                    let o = self.keys.remove(src).unwrap();
                    self.keys.insert(dst.to_vec(), o);
                    if nx {
                        Ok(Read::Int(1))
                    } else {
                        ok()
                    }
                }
                "copy" => {
                    let (src, dst) = (a(1)?, a(2)?);
                    if src == dst {
                        return Err("ERR source and destination objects are the same".into());
                    }
                    let replace = argv.get(3).is_some_and(|r| lower(r) == "replace");
                    let Some(o) = self.keys.get(src).cloned() else {
                        return Ok(Read::Int(0));
                    };
                    if self.keys.contains_key(dst) && !replace {
                        return Ok(Read::Int(0));
                    }
                    self.keys.insert(dst.to_vec(), o);
                    Ok(Read::Int(1))
                }
                "restore" => {
                    let (k, ttl, payload) = (a(1)?, int(a(2)?)?, a(3)?);
                    let opts: Vec<String> = argv[4..].iter().map(|o| lower(o)).collect();
                    let replace = opts.iter().any(|o| o == "replace");
                    let abs = opts.iter().any(|o| o == "absttl");
                    if ttl < 0 {
                        return Err("ERR Invalid TTL value, must be >= 0".into());
                    }
                    if self.keys.contains_key(k) && !replace {
                        return Err("BUSYKEY Target key name already exists.".into());
                    }
                    let val: Val = bincode::deserialize(payload).map_err(|_| {
                        "ERR DUMP payload version or checksum are wrong".to_string()
                    })?;
                    let exp = match (ttl, abs) {
                        (0, _) => None,
                        (t, true) => Some(t),
                        (t, false) => Some(now + t),
                    };
                    if exp.is_some_and(|t| t <= now) {
                        self.keys.remove(k);
                        return ok();
                    }
                    self.keys.insert(k.to_vec(), Obj { val, exp });
                    ok()
                }
                _ => Err(format!("ERR unknown command '{name}'")),
            }
        }
    }

    /// Positions of the keys a forward command writes (what the executor passes to `plan`).
    pub fn write_keys(argv: &[Vec<u8>]) -> Vec<usize> {
        let name = lower(&argv[0]);
        match name.as_str() {
            "mset" | "msetnx" => (1..argv.len()).step_by(2).collect(),
            "smove" | "lmove" | "rpoplpush" | "rename" | "renamenx" => vec![1, 2],
            "copy" => vec![2],
            "zmpop" | "lmpop" => {
                let n: usize = String::from_utf8_lossy(&argv[1]).parse().unwrap();
                (2..2 + n).collect()
            }
            "del" | "unlink" => (1..argv.len()).collect(),
            _ => vec![1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model::{self, Db, Obj, Val};
    use super::*;
    use crate::undo::entry::Snapshot;
    use crate::undo::recipe::{self, Read};
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    /// xorshift64*: deterministic, no crates.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len())]
        }
        fn chance(&mut self, percent: usize) -> bool {
            self.below(100) < percent
        }
    }

    const NOW: i64 = 1_700_000_000_000;
    const KEYS: [&str; 4] = ["a", "b", "c", "d"];
    const ELEMS: [&str; 4] = ["x", "y", "z", "w"];
    const VALUES: [&str; 6] = ["1", "2", "10", "-3", "v", "hello"];
    const SCORES: [&str; 9] = ["1", "2.5", "-1", "0", "inf", "-inf", "0.1", "3", "1e3"];

    fn v(parts: &[&str]) -> Vec<Vec<u8>> {
        parts.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    fn show(c: &[Vec<u8>]) -> String {
        c.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn snapshot(db: &mut Db, k: &[u8]) -> Option<Snapshot> {
        match db.call(&[b"DUMP".to_vec(), k.to_vec()]) {
            Read::Bulk(payload) => {
                let expire_at_ms = match db.call(&[b"PEXPIRETIME".to_vec(), k.to_vec()]) {
                    Read::Int(t) if t >= 0 => Some(t),
                    _ => None,
                };
                Some(Snapshot {
                    payload,
                    expire_at_ms,
                })
            }
            _ => None,
        }
    }

    /// Runs one forward command the way the executor does, pushing its entries to `logs`.
    fn record(
        db: &mut Db,
        logs: &mut [&mut UndoLog],
        argv: &[Vec<u8>],
        skip_covered: bool,
    ) -> Read {
        let refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let plan = recipe::plan(&refs, &model::write_keys(argv), db.now);
        if skip_covered
            && plan.is_barrier_free()
            && !plan.keys().is_empty()
            && plan.keys().iter().all(|k| logs[0].covers(k))
        {
            return db.call(argv);
        }
        let reads: Vec<Read> = plan.reads().iter().map(|c| db.call(c)).collect();
        let wholes: Vec<(Vec<u8>, Option<Snapshot>)> = plan
            .whole_keys(&reads)
            .into_iter()
            .map(|k| {
                let s = snapshot(db, &k);
                (k, s)
            })
            .collect();
        let reply = db.call(argv);
        if matches!(reply, Read::Error(_)) {
            return reply;
        }
        let entries = plan.entries(&reads, wholes, plan.needs_reply().then_some(&reply));
        for l in logs.iter_mut() {
            for e in &entries {
                l.push(e.clone());
            }
        }
        reply
    }

    fn rollback(db: &mut Db, log: &UndoLog) -> Result<(), String> {
        for c in log.compensations() {
            if let Read::Error(e) = db.call(&c) {
                return Err(format!("{} -> {}", show(&c), String::from_utf8_lossy(&e)));
            }
        }
        Ok(())
    }

    fn random_db(rng: &mut Rng) -> Db {
        let mut db = Db::new(NOW);
        db.resp3 = rng.chance(50);
        db.rng = rng.next() | 1;
        for k in KEYS {
            let n = 1 + rng.below(4);
            let mut elems: Vec<Vec<u8>> = (0..n)
                .map(|_| rng.pick(&ELEMS).as_bytes().to_vec())
                .collect();
            let val = match rng.below(7) {
                0 | 1 => continue,
                2 => Val::Str(rng.pick(&VALUES).as_bytes().to_vec()),
                3 => Val::Hash(
                    elems
                        .drain(..)
                        .map(|f| (f, rng.pick(&VALUES).as_bytes().to_vec()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                4 => Val::Set(elems.drain(..).collect::<BTreeSet<_>>()),
                5 => Val::ZSet(
                    elems
                        .drain(..)
                        .map(|m| (m, rng.pick(&SCORES).parse::<f64>().unwrap()))
                        .collect(),
                ),
                _ => Val::List(elems.drain(..).collect::<VecDeque<_>>()),
            };
            let exp = rng
                .chance(50)
                .then(|| NOW + 3_000 + rng.below(200_000) as i64);
            db.keys.insert(k.as_bytes().to_vec(), Obj { val, exp });
        }
        db
    }

    #[allow(clippy::too_many_lines)]
    fn random_command(rng: &mut Rng, db: &Db) -> Vec<Vec<u8>> {
        let k = *rng.pick(&KEYS);
        // Mostly a command for the type the key holds, so that most of them succeed.
        let which = if rng.chance(75) {
            let (lo, hi) = match db.keys.get(k.as_bytes()).map(|o| &o.val) {
                None => (0, 59),
                Some(Val::Str(_)) => (0, 11),
                Some(Val::Hash(_)) => (12, 17),
                Some(Val::Set(_)) => (18, 23),
                Some(Val::ZSet(_)) => (24, 33),
                Some(Val::List(_)) => (34, 45),
            };
            lo + rng.below(hi - lo + 1)
        } else {
            rng.below(60)
        };
        let k2 = *rng.pick(&KEYS);
        let e = *rng.pick(&ELEMS);
        let e2 = *rng.pick(&ELEMS);
        let val = *rng.pick(&VALUES);
        let s = *rng.pick(&SCORES);
        let side = *rng.pick(&["LEFT", "RIGHT"]);
        let side2 = *rng.pick(&["LEFT", "RIGHT"]);
        let n = ["0", "1", "2", "3", "5"][rng.below(5)];
        let idx = ["0", "1", "-1", "2", "-2", "5", "-5"][rng.below(7)];
        let idx2 = ["0", "1", "-1", "2", "-2", "5", "-5", "-3"][rng.below(8)];
        let c: Vec<&str> = match which {
            0 => vec!["SET", k, val],
            1 => {
                let mut c = vec!["SET", k, val];
                c.push(*rng.pick(&["NX", "XX", "GET", "KEEPTTL"]));
                if rng.chance(50) {
                    c.extend([
                        *rng.pick(&["PX", "PXAT"]),
                        *rng.pick(&["5000", "1700000009000"]),
                    ]);
                }
                c
            }
            2 => vec!["SETNX", k, val],
            3 => vec!["GETSET", k, val],
            4 => vec!["GETDEL", k],
            5 => match rng.below(3) {
                0 => vec!["GETEX", k, "PERSIST"],
                1 => vec!["GETEX", k, "PX", "7000"],
                _ => vec!["GETEX", k],
            },
            6 => vec!["APPEND", k, val],
            7 => vec!["INCR", k],
            8 => vec!["INCRBY", k, val],
            9 => vec!["DECR", k],
            10 => vec!["MSET", k, val, k2, "2"],
            11 => vec!["MSETNX", k, val, k2, "3"],
            12 => vec!["HSET", k, e, val],
            13 => vec!["HSET", k, e, val, e2, "7", e, "8"],
            14 => vec!["HSETNX", k, e, val],
            15 => vec!["HDEL", k, e],
            16 => vec!["HDEL", k, e, e2, "x", "y"],
            17 => vec!["HINCRBY", k, e, "3"],
            18 => vec!["SADD", k, e],
            19 => vec!["SADD", k, e, e2, e],
            20 => vec!["SREM", k, e],
            21 => vec!["SREM", k, e, e2, "x", "y", "z", "w"],
            22 => vec!["SMOVE", k, k2, e],
            23 => {
                if rng.chance(50) {
                    vec!["SPOP", k]
                } else {
                    vec!["SPOP", k, n]
                }
            }
            24 => vec!["ZADD", k, s, e],
            25 => {
                let mut c = vec!["ZADD", k];
                let opts = ["NX", "XX", "GT", "LT", "CH"];
                for _ in 0..rng.below(3) {
                    c.push(*rng.pick(&opts));
                }
                c.extend([s, e, *rng.pick(&SCORES), e2]);
                c
            }
            26 => vec!["ZADD", k, *rng.pick(&["INCR", "XX", "NX"]), "INCR", s, e],
            27 => vec!["ZINCRBY", k, s, e],
            28 => vec!["ZREM", k, e],
            29 => vec!["ZREM", k, e, e2, "x", "y"],
            30 => {
                let name = *rng.pick(&["ZPOPMIN", "ZPOPMAX"]);
                if rng.chance(50) {
                    vec![name, k]
                } else {
                    vec![name, k, n]
                }
            }
            31 => {
                let mut c = vec!["ZMPOP", "2", k, k2, *rng.pick(&["MIN", "MAX"])];
                if rng.chance(50) {
                    c.extend(["COUNT", ["1", "2", "3"][rng.below(3)]]);
                }
                c
            }
            32 => vec!["ZREMRANGEBYRANK", k, idx, idx2],
            33 => vec![
                "ZREMRANGEBYSCORE",
                k,
                *rng.pick(&["-inf", "0", "(0", "1", "(2.5"]),
                *rng.pick(&["+inf", "inf", "1", "(3", "2.5"]),
            ],
            34 => vec![*rng.pick(&["LPUSH", "RPUSH"]), k, e],
            35 => vec![*rng.pick(&["LPUSH", "RPUSH"]), k, e, e2, val],
            36 => vec![*rng.pick(&["LPUSHX", "RPUSHX"]), k, e, e2],
            37 => {
                let name = *rng.pick(&["LPOP", "RPOP"]);
                if rng.chance(50) {
                    vec![name, k]
                } else {
                    vec![name, k, n]
                }
            }
            38 => vec!["LMOVE", k, k2, side, side2],
            39 => vec!["LMOVE", k, k, side, side2],
            40 => vec!["RPOPLPUSH", k, k2],
            41 => {
                let mut c = vec!["LMPOP", "2", k, k2, side];
                if rng.chance(50) {
                    c.extend(["COUNT", ["1", "2", "3"][rng.below(3)]]);
                }
                c
            }
            42 => vec!["LSET", k, idx, val],
            43 => vec!["LTRIM", k, idx, idx2],
            44 => vec!["LINSERT", k, *rng.pick(&["BEFORE", "AFTER"]), e, val],
            45 => vec!["LREM", k, *rng.pick(&["0", "1", "-1", "2"]), e],
            46 => vec!["EXPIRE", k, *rng.pick(&["-5", "0", "1", "3", "100"])],
            47 => vec![
                "PEXPIRE",
                k,
                *rng.pick(&["-1", "0", "500", "1500", "2500", "100000"]),
            ],
            48 => vec![
                "EXPIREAT",
                k,
                *rng.pick(&[
                    "1699999999",
                    "1700000000",
                    "1700000001",
                    "1700000003",
                    "1700001000",
                ]),
            ],
            49 => {
                let mut c = vec![
                    "PEXPIREAT",
                    k,
                    *rng.pick(&[
                        "1699999999990",
                        "1700000000000",
                        "1700000000001",
                        "1700000001999",
                        "1700000002000",
                        "1700000002001",
                        "1700000050000",
                    ]),
                ];
                if rng.chance(30) {
                    c.push(*rng.pick(&["NX", "XX", "GT", "LT"]));
                }
                c
            }
            50 => vec!["EXPIRE", k, "50", *rng.pick(&["NX", "XX", "GT", "LT"])],
            51 => vec!["PERSIST", k],
            52 => vec!["DEL", k],
            53 => vec!["DEL", k, k2],
            54 => vec!["UNLINK", k],
            55 => vec!["RENAME", k, k2],
            56 => vec!["RENAMENX", k, k2],
            57 => {
                if rng.chance(50) {
                    vec!["COPY", k, k2]
                } else {
                    vec!["COPY", k, k2, "REPLACE"]
                }
            }
            58 => vec!["INCRBY", k, "5"],
            _ => vec!["HSET", k, e, "1"],
        };
        v(&c)
    }

    /// At `now`, the keyspace `db` had, with the keys expired by then gone.
    fn at(db: &Db, now: i64) -> Db {
        let mut d = db.clone();
        d.now = now;
        d.purge();
        d
    }

    #[test]
    fn random_transactions_roll_back_exactly() {
        let mut stats = (0usize, 0usize, 0usize);
        let (mut late, mut ok, mut failed) = (0, 0, 0);
        for seed in 0..4000u64 {
            let mut rng = Rng::new(seed + 1);
            let db0 = random_db(&mut rng);
            let mut db = db0.clone();
            let mut raw = UndoLog::new();
            let mut ckpt = UndoLog::new();
            let every = *rng.pick(&[0u64, 1, 2, 5, 16]);
            let skip_covered = rng.chance(50);
            let len = 1 + rng.below(30);
            let mut cmds = Vec::new();
            for _ in 0..len {
                let c = random_command(&mut rng, &db);
                let reply = record(&mut db, &mut [&mut raw, &mut ckpt], &c, skip_covered);
                let reply = match reply {
                    Read::Error(e) => {
                        failed += 1;
                        format!("(error) {}", String::from_utf8_lossy(&e))
                    }
                    other => {
                        ok += 1;
                        format!("{other:?}")
                    }
                };
                cmds.push(format!("{} => {reply}", show(&c)));
                if every > 0 && ckpt.since_compaction() >= every {
                    ckpt.compact();
                }
                for k in KEYS {
                    assert_eq!(
                        raw.covers(k.as_bytes()),
                        ckpt.covers(k.as_bytes()),
                        "seed {seed}"
                    );
                }
            }
            let ctx = || {
                format!(
                    "seed {seed} (skip covered: {skip_covered}, checkpoint every {every})\n{}\nraw compensations:\n{}",
                    cmds.join("\n"),
                    raw.compensations()
                        .iter()
                        .map(|c| show(c))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            };

            let mut a = db.clone();
            rollback(&mut a, &raw).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
            assert_eq!(a, db0, "raw rollback\n{}", ctx());

            let mut b = db.clone();
            rollback(&mut b, &ckpt).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
            assert_eq!(b, db0, "checkpointed rollback\n{}", ctx());

            let mut full = raw.clone();
            let removed = full.compact();
            assert_eq!(full.len() + removed, raw.len());
            assert_eq!(full.compact(), 0, "compaction is idempotent");
            assert!(full.weight() <= raw.weight());
            let mut c = db.clone();
            rollback(&mut c, &full).unwrap_or_else(|e| panic!("{e}\n{}", ctx()));
            assert_eq!(
                c,
                db0,
                "compacted rollback\n{}\ncompacted: {:#?}",
                ctx(),
                full.entries()
            );

            // Much later (a retained transaction), if none of the transaction's results expired
            // meanwhile (that is a conflict): keys whose original deadline passed are gone.
            let later = NOW + *rng.pick(&[1_000i64, 5_000, 50_000, 150_000, 10_000_000]);
            let mut d = at(&db, later);
            if d == db {
                late += 1;
                rollback(&mut d, &full).unwrap_or_else(|e| panic!("late: {e}\n{}", ctx()));
                assert_eq!(
                    d,
                    at(&db0, later),
                    "late compacted rollback at {later}\n{}\ncompacted: {:#?}",
                    ctx(),
                    full.entries()
                );
            }

            for l in [&raw, &ckpt, &full] {
                assert_eq!(UndoLog::decode(&l.encode()).as_ref(), Ok(l));
            }
            stats.0 += raw.len();
            stats.1 += full.len();
            stats.2 += raw
                .entries()
                .iter()
                .filter(|e| matches!(e, UndoEntry::Whole { .. }))
                .count();
        }
        eprintln!(
            "commands ok {ok}, failed {failed}; entries {}, after compaction {}, whole {}; \
             late rollbacks checked {late}",
            stats.0, stats.1, stats.2
        );
        assert!(ok > failed * 2, "{ok} {failed}");
        assert!(late > 1000, "{late}");
        // Most entries are element-level, even with DEL, COPY, LINSERT... in the mix.
        assert!(stats.2 * 2 < stats.0, "{stats:?}");
        assert!(stats.1 < stats.0, "{stats:?}");
    }

    #[test]
    fn ten_thousand_incrs_over_ten_keys_leave_ten_entries() {
        for skip_covered in [false, true] {
            let mut db = Db::new(NOW);
            for i in 0..5 {
                db.keys.insert(
                    format!("k{i}").into_bytes(),
                    Obj {
                        val: Val::Str(b"100".to_vec()),
                        exp: (i % 2 == 0).then_some(NOW + 60_000),
                    },
                );
            }
            let db0 = db.clone();
            let mut log = UndoLog::new();
            let mut peak = 0;
            for i in 0..10_000 {
                let c = v(&["INCR", &format!("k{}", i % 10)]);
                assert!(matches!(
                    record(&mut db, &mut [&mut log], &c, skip_covered),
                    Read::Int(_)
                ));
                if log.since_compaction() >= 1000 {
                    log.compact();
                }
                peak = peak.max(log.len());
            }
            log.compact();
            assert!(log.len() <= 10, "{}", log.len());
            // The first INCR of each key logs its full value; the rest are covered.
            assert_eq!(peak, 10);
            assert_eq!(log.pushed(), 10);
            let mut back = db.clone();
            rollback(&mut back, &log).unwrap();
            assert_eq!(back, db0);
        }
    }

    #[test]
    fn lmove_within_one_list_rolls_back() {
        for (from, to) in [
            ("LEFT", "LEFT"),
            ("LEFT", "RIGHT"),
            ("RIGHT", "LEFT"),
            ("RIGHT", "RIGHT"),
        ] {
            for init in [vec!["a"], vec!["a", "b", "c"]] {
                let mut db = Db::new(NOW);
                db.keys.insert(
                    b"l".to_vec(),
                    Obj {
                        val: Val::List(init.iter().map(|e| e.as_bytes().to_vec()).collect()),
                        exp: Some(NOW + 10_000),
                    },
                );
                let db0 = db.clone();
                let mut log = UndoLog::new();
                for _ in 0..3 {
                    record(
                        &mut db,
                        &mut [&mut log],
                        &v(&["LMOVE", "l", "l", from, to]),
                        false,
                    );
                }
                record(
                    &mut db,
                    &mut [&mut log],
                    &v(&["RPOPLPUSH", "l", "l"]),
                    false,
                );
                let mut back = db.clone();
                rollback(&mut back, &log).unwrap();
                assert_eq!(back, db0, "{from} {to} {init:?}");
                log.compact();
                let mut back = db.clone();
                rollback(&mut back, &log).unwrap();
                assert_eq!(back, db0, "{from} {to} {init:?} compacted");
            }
        }
    }

    fn e_hash(key: &str, field: &str, before: Option<&str>) -> UndoEntry {
        UndoEntry::HashField {
            key: key.into(),
            field: field.into(),
            before: before.map(Into::into),
        }
    }

    fn e_ttl(key: &str, t: Option<i64>) -> UndoEntry {
        UndoEntry::Expiry {
            key: key.into(),
            expire_at_ms: t,
        }
    }

    #[test]
    fn compaction_keeps_the_earliest_pre_image_per_slot() {
        let mut log = UndoLog::from_entries(vec![
            e_ttl("h", Some(5)),
            e_hash("h", "f", Some("1")),
            e_ttl("h", Some(6)),
            e_hash("h", "f", Some("2")),
            e_hash("h", "g", None),
            UndoEntry::Str {
                key: "s".into(),
                before: None,
            },
            UndoEntry::Str {
                key: "s".into(),
                before: Some(("x".into(), None)),
            },
            UndoEntry::ListPop {
                key: "s".into(),
                left: true,
                count: 1,
            },
        ]);
        assert_eq!(log.compact(), 4);
        assert_eq!(
            log.entries(),
            &[
                e_ttl("h", Some(5)),
                e_hash("h", "f", Some("1")),
                e_hash("h", "g", None),
                UndoEntry::Str {
                    key: "s".into(),
                    before: None
                },
            ]
        );
        assert_eq!(log.compactions(), 1);
        assert_eq!(log.removed(), 4);
        assert_eq!(log.pushed(), 8);
        assert_eq!(log.since_compaction(), 0);
    }

    #[test]
    fn push_normalizes_expiry_and_covered_keys() {
        let mut log = UndoLog::new();
        assert!(log.push(e_hash("h", "f", None)));
        // Not the key's first entry: its deadline is intermediate.
        assert!(!log.push(e_ttl("h", Some(5))));
        assert!(log.push(UndoEntry::Whole {
            key: "h".into(),
            before: Some(Snapshot {
                payload: vec![1],
                expire_at_ms: Some(9),
            }),
        }));
        assert_eq!(
            log.entries()[1],
            UndoEntry::Whole {
                key: "h".into(),
                before: Some(Snapshot {
                    payload: vec![1],
                    expire_at_ms: None,
                }),
            }
        );
        // Covered: the full restore undoes anything later.
        assert!(!log.push(e_hash("h", "g", None)));
        assert!(log.push(e_ttl("s", Some(7))));
        assert!(log.push(UndoEntry::Str {
            key: "s".into(),
            before: Some(("v".into(), Some(8))),
        }));
        assert_eq!(
            log.entries()[3],
            UndoEntry::Str {
                key: "s".into(),
                before: Some(("v".into(), None)),
            }
        );
        assert!(log.push(UndoEntry::Rename {
            from: "h".into(),
            to: "t".into(),
        }));
        assert!(!log.covers(b"h"));
        assert!(log.push(e_hash("h", "g", None)));
        assert_eq!(log.len(), 6);
        assert_eq!(log.pushed(), 6);
    }

    #[test]
    fn renames_are_barriers() {
        let mut log = UndoLog::new();
        log.push(UndoEntry::Whole {
            key: "b".into(),
            before: None,
        });
        assert!(log.covers(b"b"));
        log.push(UndoEntry::Rename {
            from: "a".into(),
            to: "b".into(),
        });
        assert!(!log.covers(b"b"));
        assert!(!log.covers(b"a"));
        log.push(e_hash("b", "f", None));
        log.push(e_hash("b", "f", Some("1")));
        log.push(UndoEntry::Rename {
            from: "b".into(),
            to: "a".into(),
        });
        log.push(e_hash("a", "f", None));
        log.push(e_hash("a", "f", Some("2")));
        assert_eq!(log.compact(), 2);
        assert_eq!(log.len(), 5);
        assert!(matches!(log.entries()[4], UndoEntry::HashField { .. }));
    }

    #[test]
    fn a_kind_change_starts_a_new_run() {
        // SADD k x (new), SREM k x (deleted), HSET k f (new hash), HDEL, SADD k x, SADD k y.
        let set = |m: &str, present| UndoEntry::SetMember {
            key: "k".into(),
            member: m.into(),
            present,
        };
        let mut log = UndoLog::from_entries(vec![
            set("x", false),
            e_ttl("k", None),
            set("x", true),
            e_hash("k", "f", None),
            e_ttl("k", None),
            e_hash("k", "f", Some("1")),
            set("x", false),
            e_ttl("k", None),
            set("y", false),
        ]);
        log.compact();
        assert_eq!(
            log.entries(),
            &[
                set("x", false),
                e_ttl("k", None),
                e_hash("k", "f", None),
                set("x", false),
                set("y", false)
            ]
        );
    }

    #[test]
    fn covers_follows_full_restores_and_renames() {
        let mut log = UndoLog::new();
        assert!(!log.covers(b"k"));
        log.push(e_hash("k", "f", None));
        assert!(!log.covers(b"k"));
        log.push(UndoEntry::Str {
            key: "k".into(),
            before: None,
        });
        assert!(log.covers(b"k"));
        log.push(UndoEntry::Rename {
            from: "k".into(),
            to: "z".into(),
        });
        assert!(!log.covers(b"k"));
        log.push(UndoEntry::Whole {
            key: "k".into(),
            before: None,
        });
        assert!(log.covers(b"k"));
        log.truncate(3);
        assert!(!log.covers(b"k"));
        assert_eq!(log.len(), 3);
        assert_eq!(
            log.weight(),
            log.entries().iter().map(UndoEntry::weight).sum::<usize>()
        );
        assert_eq!(log.keys(), vec![b"k".to_vec(), b"z".to_vec()]);
        assert_eq!(log.compensations()[0], v(&["RENAME", "z", "k"]));
    }

    fn sample_log() -> UndoLog {
        let mut log = UndoLog::new();
        log.push(UndoEntry::Whole {
            key: b"w\0k".to_vec(),
            before: Some(Snapshot {
                payload: (0..=255).collect(),
                expire_at_ms: Some(NOW),
            }),
        });
        log.push(UndoEntry::Str {
            key: "s".into(),
            before: Some(("v".into(), None)),
        });
        log.push(e_hash("h", "f", Some("1")));
        log.push(UndoEntry::SetMember {
            key: "s".into(),
            member: "m".into(),
            present: true,
        });
        log.push(UndoEntry::ZMember {
            key: "z".into(),
            member: "m".into(),
            score: Some(f64::NEG_INFINITY),
        });
        log.push(e_ttl("h", Some(NOW)));
        log.push(UndoEntry::ListPush {
            key: "l".into(),
            left: false,
            elems: vec!["a".into(), "b".into()],
        });
        log.push(UndoEntry::ListPop {
            key: "l".into(),
            left: true,
            count: 300,
        });
        log.push(UndoEntry::ListSet {
            key: "l".into(),
            index: -1,
            value: "x".into(),
        });
        log.push(UndoEntry::Rename {
            from: "a".into(),
            to: "b".into(),
        });
        log.compact();
        log
    }

    #[test]
    fn encoding_round_trips() {
        let log = sample_log();
        let bytes = log.encode();
        assert_eq!(bytes[0], VERSION);
        let back = UndoLog::decode(&bytes).unwrap();
        assert_eq!(back, log);
        assert_eq!(back.weight(), log.weight());
        assert!(back.covers(b"w\0k"));
        assert_eq!(back.compactions(), 1);
        let empty = UndoLog::new();
        assert_eq!(UndoLog::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn unknown_versions_are_refused() {
        let mut bytes = sample_log().encode();
        for v in [0u8, 2, 255] {
            bytes[0] = v;
            assert_eq!(UndoLog::decode(&bytes), Err(DecodeError::UnknownVersion(v)));
        }
        assert_eq!(UndoLog::decode(&[]), Err(DecodeError::Empty));
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample_log().encode();
        for n in 0..bytes.len() {
            assert!(UndoLog::decode(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(UndoLog::decode(&longer).is_err(), "trailing byte");
    }

    #[test]
    fn malformed_entries_are_refused() {
        let mut log = UndoLog::new();
        log.push(UndoEntry::ListPush {
            key: "l".into(),
            left: true,
            elems: vec![],
        });
        assert!(matches!(
            UndoLog::decode(&log.encode()),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = Rng::new(7);
        let good = sample_log().encode();
        let mut accepted = 0;
        for i in 0..20_000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let n = rng.below(64);
                (0..n).map(|_| rng.next() as u8).collect()
            } else {
                let mut b = good.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                b
            };
            if let Ok(log) = UndoLog::decode(&bytes) {
                accepted += 1;
                assert!(log.entries().iter().all(UndoEntry::is_well_formed));
                let _ = log.compensations();
            }
        }
        // Length prefixes claiming far more than the input holds are refused, not allocated.
        let mut huge = vec![VERSION, 0xFD];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(UndoLog::decode(&huge).is_err());
        assert!(accepted < 20_000);
    }
}
