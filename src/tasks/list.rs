//! The failed-task list: deferred transactions waiting for a retry (pending, oldest first) and
//! the ones that gave up (dead, bounded), plus a bounded memory of finished task ids.
//!
//! # Order
//! Pending tasks keep their insertion order. A task may run only when, for every key it
//! touches, no earlier pending task touches that key (it is a *head*), and it is due
//! (`next_attempt_ms <= now`). So per key, tasks apply strictly in the order they were
//! deferred. A not-yet-due head blocks the later tasks that share one of its keys, and only
//! those: unrelated later tasks run when they are due. A task that goes dead leaves the
//! pending order and no longer blocks anything.
//!
//! # Cost
//! The list keeps indexes so that the timer's [`TaskList::due`] never scans the whole list:
//! per key, the ordered sequence numbers of the pending tasks touching it; the set of heads,
//! both in sequence order and in due-time order. Every mutation costs O(k·log n) for a task
//! with k keys; `due(now, budget)` examines at most `2 × (4 × budget + 64)` heads.
//!
//! # Decisions
//! - `retry` of a *dead* task re-appends it at the tail of the pending order (as if deferred
//!   now): tasks behind it on the same keys may already have run after it died, so putting it
//!   back in its old place would not restore the original order anyway. `retry` of a
//!   *pending* task keeps its place (moving it would let later tasks on its keys overtake it).
//! - The last [`DONE_MAX`] ids of tasks that succeeded are remembered (and persisted) for
//!   `status` → `Done`; older ones become `Unknown`, as do dropped and bounded-out tasks.
//! - The dead list is ordered by time of death; when it exceeds its bound the ones that died
//!   first fall off and are counted in `dropped_by_bound`.
//! - `push` of an id that is already pending or dead is ignored (replaying the same change
//!   twice is harmless); pushing an id remembered as done forgets the done mark.

use super::classify::ErrorClass;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// How many ids of succeeded tasks `status` remembers.
pub const DONE_MAX: usize = 10_000;
/// The dead-list bound of a new list (the module sets its configured bound).
pub const DEFAULT_DEAD_MAX: usize = 10_000;
/// The version byte in front of an encoded list. Version 1 (txu 0.2) is still read: its
/// tasks have no `last_attempt_ms`.
pub const VERSION: u8 = 2;
/// `due` examines at most `SCAN_FACTOR × budget + SCAN_SLACK` heads in each of its two passes.
pub const SCAN_FACTOR: usize = 4;
pub const SCAN_SLACK: usize = 64;

/// A deferred transaction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Task {
    /// The transaction id it came from, e.g. "1795333235927-3".
    pub id: String,
    pub db: i32,
    /// ACL user whose permissions apply on every retry.
    pub user: Vec<u8>,
    /// The queued commands, exactly as the client sent them.
    pub commands: Vec<Vec<Vec<u8>>>,
    /// Every key the commands touch (for ordering).
    pub keys: Vec<Vec<u8>>,
    pub created_ms: i64,
    /// Runs so far (the original failing EXEC counts as 1).
    pub attempts: u32,
    pub max_attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: String,
    /// When it last ran and failed: the failing `TXU.EXEC` of a task deferred after a failure,
    /// then each retry that failed. `None` while it never ran (deferred behind another task),
    /// and for tasks written by version 1 (txu 0.2) until their next run.
    pub last_attempt_ms: Option<i64>,
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Dead,
}

/// Which tasks a listing ([`TaskList::page`]) walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing {
    pub pending: bool,
    pub dead: bool,
}

/// One page of a listing: the tasks, each with its state, and the cursor to go on with.
pub struct Page<'a> {
    pub tasks: Vec<(&'a Task, State)>,
    pub next: u64,
}

/// The bit that marks a cursor in the dead part of a listing: a pending position is its
/// sequence number + 1 (never `0`), a dead one its sequence number with this bit.
pub const DEAD_PHASE: u64 = 1 << 62;

/// A task's state with its attempts and last error, as the unit tests check it (the module
/// itself asks [`TaskList::get`] and [`TaskList::is_done`]).
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Pending {
        attempts: u32,
        next_attempt_ms: i64,
        last_error: String,
    },
    Dead {
        attempts: u32,
        last_error: String,
    },
    Done,
    Unknown,
}

pub use crate::codec::DecodeError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Pending(u64),
    Dead(u64),
}

/// A key as the task list knows it: database and name (the same name in two databases is two
/// keys).
pub fn key_id(db: i32, key: &[u8]) -> Vec<u8> {
    let mut v = db.to_be_bytes().to_vec();
    v.extend_from_slice(key);
    v
}

/// The key name of a task key (`key_id` without its database).
pub fn key_name(id: &[u8]) -> &[u8] {
    id.get(4..).unwrap_or_default()
}

/// A done id as `done_set` orders it: by a fixed 64-bit hash first, so a search compares
/// integers (ids share long prefixes, which makes comparing them as strings slow), then by
/// the id itself, so two ids with the same hash stay apart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DoneKey(u64, String);

impl DoneKey {
    fn of(id: &str) -> DoneKey {
        use std::hash::{Hash, Hasher};
        // Fixed keys: the same id always hashes the same (nothing depends on the order, but
        // it keeps runs reproducible).
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        id.hash(&mut h);
        DoneKey(h.finish(), id.to_string())
    }
}

/// The list. Sequence numbers order tasks; they are internal and rebuilt on decode.
#[derive(Clone, Debug)]
pub struct TaskList {
    next_seq: u64,
    pending: BTreeMap<u64, Task>,
    /// Ordered by time of death.
    dead: BTreeMap<u64, Task>,
    ids: HashMap<String, Loc>,
    /// Per key, the pending tasks touching it.
    by_key: HashMap<Vec<u8>, BTreeSet<u64>>,
    /// Pending tasks first on every one of their keys.
    heads: BTreeSet<u64>,
    /// The same, by (next_attempt_ms, seq).
    heads_by_time: BTreeSet<(i64, u64)>,
    /// Pending tasks by (created_ms, seq).
    by_created: BTreeSet<(i64, u64)>,
    done: VecDeque<String>,
    /// The same ids, for lookups, under a 64-bit hash of each (see [`DoneKey`]). Ordered, not
    /// a hash table: it fills up while the timer drains the list, and a hash table growing
    /// past a threshold rehashes every id at once, inside one tick (over a millisecond at a
    /// few thousand ids).
    done_set: BTreeSet<DoneKey>,
    dead_max: usize,
    dropped_by_bound: u64,
    /// An optional grouping of the tasks (the module groups them by cluster slot), and how
    /// many tasks, pending or dead, each group holds: kept on every change, so which groups
    /// hold tasks is known without a walk over the list. Not persisted.
    group_of: Option<fn(&Task) -> u16>,
    groups: BTreeMap<u16, usize>,
}

impl Default for TaskList {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskList {
    pub fn new() -> Self {
        TaskList {
            next_seq: 0,
            pending: BTreeMap::new(),
            dead: BTreeMap::new(),
            ids: HashMap::new(),
            by_key: HashMap::new(),
            heads: BTreeSet::new(),
            heads_by_time: BTreeSet::new(),
            by_created: BTreeSet::new(),
            done: VecDeque::new(),
            done_set: BTreeSet::new(),
            dead_max: DEFAULT_DEAD_MAX,
            dropped_by_bound: 0,
            group_of: None,
            groups: BTreeMap::new(),
        }
    }

    /// Groups the tasks by `f` from now on (counting the ones held now).
    pub fn set_grouping(&mut self, f: fn(&Task) -> u16) {
        self.group_of = Some(f);
        self.groups.clear();
        let gs: Vec<u16> = self.all().map(f).collect();
        for g in gs {
            *self.groups.entry(g).or_default() += 1;
        }
    }

    /// The groups that hold tasks (pending or dead), in order (none without a grouping).
    pub fn groups(&self) -> impl Iterator<Item = u16> + '_ {
        self.groups.keys().copied()
    }

    /// How many tasks (pending or dead) group `g` holds.
    pub fn group_len(&self, g: u16) -> usize {
        self.groups.get(&g).copied().unwrap_or(0)
    }

    fn count_in(&mut self, t: &Task) {
        if let Some(f) = self.group_of {
            *self.groups.entry(f(t)).or_default() += 1;
        }
    }

    fn count_out(&mut self, t: &Task) {
        if let Some(f) = self.group_of {
            let g = f(t);
            if let Some(n) = self.groups.get_mut(&g) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.groups.remove(&g);
                }
            }
        }
    }

    /// Appends a pending task at the tail. Ignored if the id is already pending or dead.
    pub fn push(&mut self, t: Task) {
        if self.ids.contains_key(&t.id) {
            return;
        }
        if self.done_set.remove(&DoneKey::of(&t.id)) {
            self.done.retain(|d| d != &t.id);
        }
        self.insert_pending(t);
    }

    /// Whether `id` is pending or dead.
    #[cfg(test)]
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    /// The first pending task touching any of `keys`, and the key: a new transaction on these
    /// keys must not overtake it.
    pub fn blocking_key(&self, keys: &[Vec<u8>]) -> Option<(&str, &[u8])> {
        let mut best: Option<(u64, &[u8])> = None;
        for k in keys {
            let Some((stored, seqs)) = self.by_key.get_key_value(k.as_slice()) else {
                continue;
            };
            let Some(&first) = seqs.first() else {
                continue;
            };
            match best {
                Some((s, _)) if s <= first => {}
                _ => best = Some((first, stored.as_slice())),
            }
        }
        let (seq, key) = best?;
        self.pending.get(&seq).map(|t| (t.id.as_str(), key))
    }

    /// Ids of the pending tasks to run now, oldest first, at most `budget`. Each is due and is
    /// the first pending task on every key it touches, so no two share a key and none
    /// overtakes an earlier task (due or not) on any of its keys.
    ///
    /// Bounded work: it looks at the oldest heads in order, and if that window holds fewer than
    /// `budget` due ones, at the heads that have been due the longest (so a long run of
    /// not-yet-due heads never starves later unrelated tasks).
    #[cfg(test)]
    pub fn due(&self, now_ms: i64, budget: usize) -> Vec<String> {
        self.due_examined(now_ms, budget).0
    }

    /// The tasks [`due`](Self::due) names, borrowed (no id copied, no lookup by id).
    pub fn due_tasks(&self, now_ms: i64, budget: usize) -> Vec<&Task> {
        self.due_seqs(now_ms, budget)
            .0
            .iter()
            .filter_map(|s| self.pending.get(s))
            .collect()
    }

    /// [`due`](Self::due), plus how many index entries it examined.
    #[cfg(test)]
    pub fn due_examined(&self, now_ms: i64, budget: usize) -> (Vec<String>, usize) {
        let (picked, examined) = self.due_seqs(now_ms, budget);
        let ids = picked
            .iter()
            .filter_map(|s| self.pending.get(s).map(|t| t.id.clone()))
            .collect();
        (ids, examined)
    }

    /// Sequence numbers of the due tasks (see [`due`](Self::due)), in order, and how many
    /// index entries were examined.
    fn due_seqs(&self, now_ms: i64, budget: usize) -> (Vec<u64>, usize) {
        if budget == 0 {
            return (Vec::new(), 0);
        }
        let limit = budget
            .saturating_mul(SCAN_FACTOR)
            .saturating_add(SCAN_SLACK);
        let mut picked: Vec<u64> = Vec::new();
        let mut examined = 0usize;
        // Pass 1: the oldest heads, in order.
        let mut window_end: Option<u64> = None;
        let mut window_complete = true;
        for &seq in &self.heads {
            if picked.len() == budget || examined == limit {
                window_complete = false;
                break;
            }
            examined += 1;
            window_end = Some(seq);
            if self
                .pending
                .get(&seq)
                .is_some_and(|t| t.next_attempt_ms <= now_ms)
            {
                picked.push(seq);
            }
        }
        // Pass 2: heads beyond the window that have been due the longest.
        if picked.len() < budget && !window_complete {
            let mut second = 0usize;
            for &(at, seq) in &self.heads_by_time {
                if at > now_ms || picked.len() == budget || second == limit {
                    break;
                }
                second += 1;
                if window_end.is_none_or(|end| seq > end) {
                    picked.push(seq);
                }
            }
            examined += second;
            picked.sort_unstable();
        }
        (picked, examined)
    }

    pub fn get(&self, id: &str) -> Option<(&Task, State)> {
        match self.ids.get(id)? {
            Loc::Pending(seq) => self.pending.get(seq).map(|t| (t, State::Pending)),
            Loc::Dead(seq) => self.dead.get(seq).map(|t| (t, State::Dead)),
        }
    }

    /// A pending task ran successfully: removes it and remembers its id as done.
    /// `None` (and no change) unless `id` is pending.
    pub fn succeeded(&mut self, id: &str) -> Option<Task> {
        let Some(&Loc::Pending(seq)) = self.ids.get(id) else {
            return None;
        };
        let task = self.remove_pending(seq)?;
        self.remember_done(task.id.clone());
        Some(task)
    }

    /// A pending task's run failed (this run counts as an attempt). Transient with attempts
    /// left: it stays pending, due at `now_ms + delay_ms`. Permanent, or `max_attempts` runs
    /// used up (a `max_attempts` of 0 counts as 1): it moves to the dead list. Either way
    /// `last_error` is `error`. `None` (and no change) unless `id` is pending.
    pub fn failed(
        &mut self,
        id: &str,
        error: String,
        class: ErrorClass,
        now_ms: i64,
        delay_ms: u64,
    ) -> Option<State> {
        let Some(&Loc::Pending(seq)) = self.ids.get(id) else {
            return None;
        };
        let task = self.pending.get_mut(&seq)?;
        task.attempts = task.attempts.saturating_add(1);
        task.last_error = error;
        task.last_attempt_ms = Some(now_ms);
        let keep = class == ErrorClass::Transient && task.attempts < task.max_attempts.max(1);
        if keep {
            let delay = i64::try_from(delay_ms).unwrap_or(i64::MAX);
            self.set_next_attempt(seq, now_ms.saturating_add(delay));
            Some(State::Pending)
        } else {
            let task = self.remove_pending(seq)?;
            self.insert_dead(task);
            self.trim_dead();
            Some(State::Dead)
        }
    }

    /// Makes a task run at the next tick with its attempts reset to 0. A pending task keeps its
    /// place; a dead task is re-appended at the tail of the pending order. `false` if `id` is
    /// neither pending nor dead.
    pub fn retry(&mut self, id: &str, now_ms: i64) -> bool {
        match self.ids.get(id).copied() {
            Some(Loc::Pending(seq)) => {
                if let Some(t) = self.pending.get_mut(&seq) {
                    t.attempts = 0;
                }
                self.set_next_attempt(seq, now_ms);
                true
            }
            Some(Loc::Dead(seq)) => {
                let Some(mut t) = self.dead.remove(&seq) else {
                    return false;
                };
                self.count_out(&t);
                self.ids.remove(id);
                t.attempts = 0;
                t.next_attempt_ms = now_ms;
                self.insert_pending(t);
                true
            }
            None => false,
        }
    }

    /// Forgets a pending or dead task (its status becomes unknown).
    pub fn drop_task(&mut self, id: &str) -> bool {
        match self.ids.get(id).copied() {
            Some(Loc::Pending(seq)) => self.remove_pending(seq).is_some(),
            Some(Loc::Dead(seq)) => {
                self.ids.remove(id);
                match self.dead.remove(&seq) {
                    Some(t) => {
                        self.count_out(&t);
                        true
                    }
                    None => false,
                }
            }
            None => false,
        }
    }

    /// One page of a listing in a stable order (pending tasks oldest first, then dead ones in
    /// the order they died), starting at `cursor` (`0`: the start): up to `count` tasks that
    /// `keep` accepts, after examining at most `examine` tasks. The page's `next` is the cursor
    /// to continue with, `0` once the listing is complete.
    ///
    /// Like `SCAN`: a task present for the whole listing is returned exactly once; one that
    /// moves meanwhile (a retried dead task goes to the pending tail) may be returned twice or
    /// not at all. A page may hold fewer than `count` tasks, even none, before `next` is `0`.
    /// Any `cursor` is safe: one from another listing only starts at another place.
    pub fn page(
        &self,
        which: Listing,
        cursor: u64,
        count: usize,
        examine: usize,
        mut keep: impl FnMut(&Task) -> bool,
    ) -> Page<'_> {
        let mut page = Page {
            tasks: Vec::new(),
            next: 0,
        };
        let mut examined = 0;
        // Where to start: a cursor names the next sequence number to examine, and its phase.
        let (mut start_pending, start_dead) = if cursor & DEAD_PHASE != 0 {
            (None, cursor & !DEAD_PHASE)
        } else {
            (cursor.checked_sub(1).or(Some(0)), 0)
        };
        if !which.pending {
            start_pending = None;
        }
        let phases = [
            (
                start_pending.map(|s| self.pending.range(s..)),
                State::Pending,
                0,
            ),
            (
                which.dead.then(|| self.dead.range(start_dead..)),
                State::Dead,
                DEAD_PHASE,
            ),
        ];
        for (range, state, phase) in phases {
            for (&seq, t) in range.into_iter().flatten() {
                if examined >= examine.max(1) || page.tasks.len() >= count.max(1) {
                    page.next = if phase == 0 {
                        seq.saturating_add(1)
                    } else {
                        phase | seq
                    };
                    return page;
                }
                examined += 1;
                if keep(t) {
                    page.tasks.push((t, state));
                }
            }
        }
        page
    }

    /// Pending tasks, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Task> {
        self.pending.values()
    }

    /// Dead tasks, in the order they died.
    pub fn dead(&self) -> impl Iterator<Item = &Task> {
        self.dead.values()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn dead_len(&self) -> usize {
        self.dead.len()
    }

    /// Bounds the dead list; the tasks that died first fall off at once if it is over.
    pub fn set_dead_max(&mut self, n: usize) {
        self.dead_max = n;
        self.trim_dead();
    }

    #[cfg(test)]
    pub fn dead_max(&self) -> usize {
        self.dead_max
    }

    /// Dead tasks dropped because the dead list was full, ever.
    pub fn dropped_by_bound(&self) -> u64 {
        self.dropped_by_bound
    }

    /// The smallest `created_ms` among pending tasks.
    pub fn oldest_pending_created_ms(&self) -> Option<i64> {
        self.by_created.first().map(|&(c, _)| c)
    }

    /// Whether `id` is one of the last [`DONE_MAX`] tasks that succeeded.
    pub fn is_done(&self, id: &str) -> bool {
        self.done_set.contains(&DoneKey::of(id))
    }

    #[cfg(test)]
    pub fn status(&self, id: &str) -> Status {
        match self.get(id) {
            Some((t, State::Pending)) => Status::Pending {
                attempts: t.attempts,
                next_attempt_ms: t.next_attempt_ms,
                last_error: t.last_error.clone(),
            },
            Some((t, State::Dead)) => Status::Dead {
                attempts: t.attempts,
                last_error: t.last_error.clone(),
            },
            None if self.is_done(id) => Status::Done,
            None => Status::Unknown,
        }
    }

    /// Drops every task (pending or dead) on keys of database `db`: its data is gone.
    pub fn drop_db(&mut self, db: i32) {
        let ids: Vec<String> = self
            .pending()
            .chain(self.dead())
            .filter(|t| t.db == db)
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            self.drop_task(&id);
        }
    }

    /// Forgets every task and every done id. The dead bound and `dropped_by_bound` stay.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.dead.clear();
        self.ids.clear();
        self.by_key.clear();
        self.heads.clear();
        self.heads_by_time.clear();
        self.by_created.clear();
        self.done.clear();
        self.done_set.clear();
        self.groups.clear();
    }

    /// The encoding (see [`encode`](Self::encode)) of the tasks `keep` selects, pending and
    /// dead, in their order; no done ids. Decoded, it is the list of just those tasks.
    pub fn encode_where(&self, keep: impl Fn(&Task) -> bool) -> Vec<u8> {
        encoding::encode_where(self, keep)
    }

    /// Adds the tasks of `other` this list does not know (by id), pending ones after this
    /// list's pending ones in their order, dead ones after its dead ones; and its done ids.
    pub fn absorb(&mut self, other: TaskList) {
        for (_, t) in other.pending {
            if !self.ids.contains_key(&t.id) {
                self.insert_pending(t);
            }
        }
        for (_, t) in other.dead {
            if !self.ids.contains_key(&t.id) {
                self.insert_dead(t);
            }
        }
        for id in other.done {
            self.remember_done(id);
        }
    }

    /// Every task, pending then dead.
    pub fn all(&self) -> impl Iterator<Item = &Task> {
        self.pending.values().chain(self.dead.values())
    }

    /// Version byte [`VERSION`] followed by the bincode encoding (see `codec`) of the
    /// essential data: pending tasks in order, dead tasks in order, done ids, dead bound and
    /// counter. Indexes are not stored. (Layout and older versions: `encoding`.)
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode(VERSION, self)
    }

    /// The inverse of [`encode`](Self::encode) (see `codec`); duplicate ids are corrupt too.
    pub fn decode(bytes: &[u8]) -> Result<TaskList, DecodeError> {
        encoding::decode_list(bytes)
    }

    // ---- internals ----

    fn alloc_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        s
    }

    /// Whether pending task `seq` is the first pending task on each of its keys.
    fn is_head(&self, seq: u64, task: &Task) -> bool {
        task.keys.iter().all(|k| {
            self.by_key
                .get(k.as_slice())
                .and_then(|s| s.first())
                .is_some_and(|&f| f == seq)
        })
    }

    fn insert_pending(&mut self, task: Task) -> u64 {
        let seq = self.alloc_seq();
        for k in &task.keys {
            self.by_key.entry(k.clone()).or_default().insert(seq);
        }
        if self.is_head(seq, &task) {
            self.heads.insert(seq);
            self.heads_by_time.insert((task.next_attempt_ms, seq));
        }
        self.by_created.insert((task.created_ms, seq));
        self.ids.insert(task.id.clone(), Loc::Pending(seq));
        self.count_in(&task);
        self.pending.insert(seq, task);
        seq
    }

    fn remove_pending(&mut self, seq: u64) -> Option<Task> {
        let task = self.pending.remove(&seq)?;
        self.count_out(&task);
        self.ids.remove(&task.id);
        if self.heads.remove(&seq) {
            self.heads_by_time.remove(&(task.next_attempt_ms, seq));
        }
        self.by_created.remove(&(task.created_ms, seq));
        let mut next_firsts = Vec::new();
        for k in &task.keys {
            let Some(seqs) = self.by_key.get_mut(k.as_slice()) else {
                continue;
            };
            let was_first = seqs.first() == Some(&seq);
            seqs.remove(&seq);
            match seqs.first() {
                None => {
                    self.by_key.remove(k.as_slice());
                }
                Some(&f) if was_first => next_firsts.push(f),
                Some(_) => {}
            }
        }
        for s in next_firsts {
            self.promote_if_head(s);
        }
        Some(task)
    }

    fn promote_if_head(&mut self, seq: u64) {
        if self.heads.contains(&seq) {
            return;
        }
        let Some(task) = self.pending.get(&seq) else {
            return;
        };
        if self.is_head(seq, task) {
            let at = task.next_attempt_ms;
            self.heads.insert(seq);
            self.heads_by_time.insert((at, seq));
        }
    }

    fn set_next_attempt(&mut self, seq: u64, at: i64) {
        let Some(task) = self.pending.get_mut(&seq) else {
            return;
        };
        let old = std::mem::replace(&mut task.next_attempt_ms, at);
        if self.heads.contains(&seq) {
            self.heads_by_time.remove(&(old, seq));
            self.heads_by_time.insert((at, seq));
        }
    }

    fn insert_dead(&mut self, task: Task) {
        self.count_in(&task);
        let seq = self.alloc_seq();
        self.ids.insert(task.id.clone(), Loc::Dead(seq));
        self.dead.insert(seq, task);
    }

    fn trim_dead(&mut self) {
        while self.dead.len() > self.dead_max {
            let Some((_, t)) = self.dead.pop_first() else {
                break;
            };
            self.count_out(&t);
            self.ids.remove(&t.id);
            self.dropped_by_bound = self.dropped_by_bound.saturating_add(1);
        }
    }

    fn remember_done(&mut self, id: String) {
        if !self.done_set.insert(DoneKey::of(&id)) {
            return;
        }
        self.done.push_back(id);
        while self.done.len() > DONE_MAX {
            let Some(old) = self.done.pop_front() else {
                break;
            };
            self.done_set.remove(&DoneKey::of(&old));
        }
    }
}

mod encoding;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_page;
