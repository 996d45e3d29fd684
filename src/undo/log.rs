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
//! ## Keys undone element by element
//! `has_elements(key)` says whether the log holds an element-level entry of a collection for
//! the key since its last rename. The executor wrote that entry because the key was absent or
//! in a large encoding when the transaction first wrote it element by element (a compact key
//! is copied whole instead): what rollback must give back for it is then its contents, not a
//! representation, and later writes need not ask for its encoding again. A rename is a
//! barrier: the key then holds another value. Compaction keeps the first element-level entry
//! of each run, so it does not change the answer.
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

use super::entry::{Kind, UndoEntry};
use super::keymap::KeyMap;
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
    /// Every key some entry writes, and what the entries say of it (recomputed).
    #[serde(skip)]
    keys: KeyMap<Tracked>,
    /// Entries stored since the last compaction for a key that already had one: only those
    /// can make compaction drop anything (a key's first entry is always kept), so with none
    /// the checkpoint has nothing to do. Not encoded: a decoded log counts all of its entries
    /// since the last compaction.
    #[serde(skip)]
    repeats: u64,
}

/// What the log knows of a key some entry writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tracked {
    /// Fully restored by an entry with no later rename of the key.
    covered: bool,
    /// An element-level entry since the key's last rename.
    elements: bool,
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
        let known = self.keys.get(e.key()).copied();
        if !matches!(e, UndoEntry::Rename { .. }) && known.is_some_and(|t| t.covered) {
            return false;
        }
        let seen = known.is_some();
        let e = match e {
            UndoEntry::Expiry { .. } if seen => return false,
            UndoEntry::Whole {
                key,
                before: Some(mut s),
            } if seen => {
                s.expire_at_ms = None;
                UndoEntry::Whole {
                    key,
                    before: Some(s),
                }
            }
            UndoEntry::Str {
                key,
                before: Some((v, Some(_))),
            } if seen => UndoEntry::Str {
                key,
                before: Some((v, None)),
            },
            e => e,
        };
        self.pushed = self.pushed.saturating_add(1);
        self.since_compaction = self.since_compaction.saturating_add(1);
        self.repeats = self.repeats.saturating_add(u64::from(seen));
        Self::track(&mut self.keys, &e);
        self.entries.push(e);
        true
    }

    fn track(keys: &mut KeyMap<Tracked>, e: &UndoEntry) {
        match e {
            UndoEntry::Rename { from, to } => {
                // A barrier: the names now hold other values.
                for k in [from, to] {
                    keys.upsert(k, Tracked::default, |t| *t = Tracked::default());
                }
            }
            e => {
                let full = e.is_full_restore();
                let elements =
                    matches!(e.slot().0, Kind::Hash | Kind::Set | Kind::ZSet | Kind::List);
                keys.upsert(e.key(), Tracked::default, |t| {
                    if full {
                        t.covered = true;
                    } else if elements {
                        t.elements = true;
                    }
                });
            }
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

    /// Forgets every entry that touches one of `keys` (a rollback leaves those keys alone).
    pub fn drop_keys(&mut self, keys: &[Vec<u8>]) {
        if keys.is_empty() {
            return;
        }
        self.entries.retain(|e| {
            !e.keys()
                .iter()
                .any(|k| keys.iter().any(|s| s.as_slice() == *k))
        });
        self.rebuild();
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
        self.keys.get(key).is_some_and(|t| t.covered)
    }

    /// Whether an element-level entry of a collection (a hash field, a set or sorted-set
    /// member, a list step) is logged for `key` since its last rename (see the module
    /// documentation).
    pub fn has_elements(&self, key: &[u8]) -> bool {
        self.keys.get(key).is_some_and(|t| t.elements)
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
        self.newest_first().map(UndoEntry::compensation).collect()
    }

    /// The entries in the order rollback runs their compensations (newest first), without
    /// building the commands: rollback builds only those it cannot batch
    /// (`UndoEntry::batchable`).
    pub fn newest_first(&self) -> impl ExactSizeIterator<Item = &UndoEntry> + '_ {
        self.entries.iter().rev()
    }

    /// Checkpoint: drops every entry that an earlier one makes unnecessary (see the module
    /// documentation). Returns how many were removed.
    pub fn compact(&mut self) -> usize {
        self.compactions = self.compactions.saturating_add(1);
        self.since_compaction = 0;
        if self.repeats == 0 {
            // Every entry since the last checkpoint is its key's first: all are kept.
            return 0;
        }
        self.repeats = 0;
        let keep = self.survivors();
        let before = self.entries.len();
        let mut flags = keep.into_iter();
        self.entries.retain(|_| flags.next().unwrap_or(true));
        let removed = before - self.entries.len();
        self.removed = self.removed.saturating_add(removed as u64);
        if removed > 0 {
            self.rebuild();
        }
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

    /// Recomputes the derived fields (covered, seen and element-level keys) from the entries.
    /// Entries stored since the last compaction are the newest `since_compaction` ones: those
    /// whose key an earlier entry holds are the repeats, as `push` counted them.
    fn rebuild(&mut self) {
        let mut keys = KeyMap::default();
        let recent = usize::try_from(self.since_compaction).unwrap_or(usize::MAX);
        let first_recent = self.entries.len().saturating_sub(recent);
        let mut repeats = 0u64;
        for (i, e) in self.entries.iter().enumerate() {
            if i >= first_recent && keys.get(e.key()).is_some() {
                repeats += 1;
            }
            Self::track(&mut keys, e);
        }
        self.keys = keys;
        self.repeats = repeats;
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

#[cfg(test)]
mod tests;
