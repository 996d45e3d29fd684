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
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// How many ids of succeeded tasks `status` remembers.
pub const DONE_MAX: usize = 10_000;
/// The dead-list bound of a new list (the module sets its configured bound).
pub const DEFAULT_DEAD_MAX: usize = 10_000;
/// The version byte in front of an encoded list.
pub const VERSION: u8 = 1;
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
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Dead,
}

/// What `TXU.STATUS` reports for an id.
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
    done_set: HashSet<String>,
    dead_max: usize,
    dropped_by_bound: u64,
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
            done_set: HashSet::new(),
            dead_max: DEFAULT_DEAD_MAX,
            dropped_by_bound: 0,
        }
    }

    /// Appends a pending task at the tail. Ignored if the id is already pending or dead.
    pub fn push(&mut self, t: Task) {
        if self.ids.contains_key(&t.id) {
            return;
        }
        if self.done_set.remove(&t.id) {
            self.done.retain(|d| d != &t.id);
        }
        self.insert_pending(t);
    }

    /// Whether `id` is pending or dead.
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
    pub fn due(&self, now_ms: i64, budget: usize) -> Vec<String> {
        self.due_examined(now_ms, budget).0
    }

    /// [`due`](Self::due), plus how many index entries it examined.
    pub fn due_examined(&self, now_ms: i64, budget: usize) -> (Vec<String>, usize) {
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
        let ids = picked
            .iter()
            .filter_map(|s| self.pending.get(s).map(|t| t.id.clone()))
            .collect();
        (ids, examined)
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
                self.dead.remove(&seq).is_some()
            }
            None => false,
        }
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
            None if self.done_set.contains(id) => Status::Done,
            None => Status::Unknown,
        }
    }

    #[cfg(test)]
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
    }

    /// Version byte [`VERSION`] followed by the bincode encoding (see `codec`) of the
    /// essential data: pending tasks in order, dead tasks in order, done ids, dead bound and
    /// counter. Indexes are not stored.
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode(VERSION, self)
    }

    /// The inverse of [`encode`](Self::encode) (see `codec`); duplicate ids are corrupt too.
    pub fn decode(bytes: &[u8]) -> Result<TaskList, DecodeError> {
        crate::codec::decode(VERSION, bytes)
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
        self.pending.insert(seq, task);
        seq
    }

    fn remove_pending(&mut self, seq: u64) -> Option<Task> {
        let task = self.pending.remove(&seq)?;
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
        let seq = self.alloc_seq();
        self.ids.insert(task.id.clone(), Loc::Dead(seq));
        self.dead.insert(seq, task);
    }

    fn trim_dead(&mut self) {
        while self.dead.len() > self.dead_max {
            let Some((_, t)) = self.dead.pop_first() else {
                break;
            };
            self.ids.remove(&t.id);
            self.dropped_by_bound = self.dropped_by_bound.saturating_add(1);
        }
    }

    fn remember_done(&mut self, id: String) {
        if !self.done_set.insert(id.clone()) {
            return;
        }
        self.done.push_back(id);
        while self.done.len() > DONE_MAX {
            let Some(old) = self.done.pop_front() else {
                break;
            };
            self.done_set.remove(&old);
        }
    }

    fn from_snapshot(s: Snapshot) -> Result<TaskList, String> {
        let mut list = TaskList::new();
        list.dead_max = usize::try_from(s.dead_max).unwrap_or(usize::MAX);
        list.dropped_by_bound = s.dropped_by_bound;
        for t in s.pending {
            if list.ids.contains_key(&t.id) {
                return Err(format!("duplicate task id {:?}", t.id));
            }
            list.insert_pending(t);
        }
        for t in s.dead {
            if list.ids.contains_key(&t.id) {
                return Err(format!("duplicate task id {:?}", t.id));
            }
            list.insert_dead(t);
        }
        for id in s.done {
            list.remember_done(id);
        }
        Ok(list)
    }
}

/// What is stored: the essential data only. Field order is the encoding; change `VERSION`
/// when changing it.
#[derive(Deserialize)]
struct Snapshot {
    pending: Vec<Task>,
    dead: Vec<Task>,
    done: Vec<String>,
    dead_max: u64,
    dropped_by_bound: u64,
}

/// The borrowed twin of `Snapshot` (same encoding).
#[derive(Serialize)]
struct SnapshotRef<'a> {
    pending: Vec<&'a Task>,
    dead: Vec<&'a Task>,
    done: Vec<&'a String>,
    dead_max: u64,
    dropped_by_bound: u64,
}

impl Serialize for TaskList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SnapshotRef {
            pending: self.pending.values().collect(),
            dead: self.dead.values().collect(),
            done: self.done.iter().collect(),
            dead_max: u64::try_from(self.dead_max).unwrap_or(u64::MAX),
            dropped_by_bound: self.dropped_by_bound,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TaskList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Snapshot::deserialize(deserializer)?;
        TaskList::from_snapshot(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::super::backoff::SplitMix64;
    use super::*;

    fn task(id: &str, keys: &[&str]) -> Task {
        Task {
            id: id.to_string(),
            db: 0,
            user: b"default".to_vec(),
            commands: vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]],
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            created_ms: 1000,
            attempts: 1,
            max_attempts: 5,
            next_attempt_ms: 0,
            last_error: "OOM command not allowed".to_string(),
        }
    }

    fn task_at(id: &str, keys: &[&str], at: i64) -> Task {
        Task {
            next_attempt_ms: at,
            ..task(id, keys)
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn keys(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    impl TaskList {
        /// Recomputes every index from the tasks and compares.
        fn check(&self) {
            let mut by_key: HashMap<Vec<u8>, BTreeSet<u64>> = HashMap::new();
            for (&seq, t) in &self.pending {
                assert_eq!(self.ids.get(&t.id), Some(&Loc::Pending(seq)));
                for k in &t.keys {
                    by_key.entry(k.clone()).or_default().insert(seq);
                }
            }
            for (&seq, t) in &self.dead {
                assert_eq!(self.ids.get(&t.id), Some(&Loc::Dead(seq)));
            }
            assert_eq!(self.ids.len(), self.pending.len() + self.dead.len());
            assert_eq!(by_key, self.by_key);
            let heads: BTreeSet<u64> = self
                .pending
                .iter()
                .filter(|(s, t)| self.is_head(**s, t))
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(heads, self.heads);
            let by_time: BTreeSet<(i64, u64)> = heads
                .iter()
                .map(|s| (self.pending[s].next_attempt_ms, *s))
                .collect();
            assert_eq!(by_time, self.heads_by_time);
            let created: BTreeSet<(i64, u64)> = self
                .pending
                .iter()
                .map(|(s, t)| (t.created_ms, *s))
                .collect();
            assert_eq!(created, self.by_created);
            assert_eq!(self.done.len(), self.done_set.len());
            assert!(self.done.len() <= DONE_MAX);
            assert!(self.dead.len() <= self.dead_max);
        }

        /// The obvious O(n) definition of `due` (exact when the list is small).
        fn due_naive(&self, now: i64, budget: usize) -> Vec<String> {
            let mut seen: HashSet<&[u8]> = HashSet::new();
            let mut out = Vec::new();
            for t in self.pending.values() {
                let free = t.keys.iter().all(|k| !seen.contains(k.as_slice()));
                if free && t.next_attempt_ms <= now && out.len() < budget {
                    out.push(t.id.clone());
                }
                seen.extend(t.keys.iter().map(Vec::as_slice));
            }
            out
        }
    }

    #[test]
    fn order_per_key_is_preserved() {
        let mut l = TaskList::new();
        l.push(task("a", &["x"]));
        l.push(task("b", &["x", "y"]));
        l.push(task("c", &["y"]));
        l.check();
        assert_eq!(l.due(0, 10), ids(&["a"]));
        l.succeeded("a");
        assert_eq!(l.due(0, 10), ids(&["b"]));
        l.succeeded("b");
        assert_eq!(l.due(0, 10), ids(&["c"]));
        l.succeeded("c");
        assert!(l.due(0, 10).is_empty());
        l.check();
    }

    #[test]
    fn a_not_yet_due_task_blocks_its_keys_only() {
        let mut l = TaskList::new();
        l.push(task_at("a", &["x"], 500));
        l.push(task_at("b", &["x"], 0));
        l.push(task_at("c", &["z"], 0));
        l.push(task_at("d", &[], 0));
        assert_eq!(l.due(100, 10), ids(&["c", "d"]));
        assert_eq!(l.due(500, 10), ids(&["a", "c", "d"]));
        l.check();
    }

    #[test]
    fn budget_limits_and_oldest_come_first() {
        let mut l = TaskList::new();
        for i in 0..10 {
            l.push(task(&format!("t{i}"), &[&format!("k{i}")]));
        }
        assert_eq!(l.due(0, 3), ids(&["t0", "t1", "t2"]));
        assert!(l.due(0, 0).is_empty());
        assert_eq!(l.due(0, 100).len(), 10);
    }

    #[test]
    fn blocking_key_names_the_first_pending_task() {
        let mut l = TaskList::new();
        l.push(task("a", &["x"]));
        l.push(task("b", &["y", "z"]));
        assert_eq!(l.blocking_key(&keys(&["q"])), None);
        assert_eq!(
            l.blocking_key(&keys(&["z", "x"])),
            Some(("a", b"x".as_slice()))
        );
        assert_eq!(l.blocking_key(&keys(&["z"])), Some(("b", b"z".as_slice())));
        // Dead tasks block nothing.
        l.failed("a", "WRONGTYPE".into(), ErrorClass::Permanent, 0, 0);
        assert_eq!(l.blocking_key(&keys(&["x"])), None);
        assert_eq!(l.blocking_key(&[]), None);
    }

    #[test]
    fn transient_failures_back_off_until_attempts_run_out() {
        let mut l = TaskList::new();
        let mut t = task("a", &["x"]);
        t.max_attempts = 3;
        l.push(t);
        l.push(task("b", &["x"]));
        // Run 2 fails: 2 < 3, stays pending.
        assert_eq!(
            l.failed("a", "OOM 2".into(), ErrorClass::Transient, 1000, 250),
            Some(State::Pending)
        );
        assert_eq!(
            l.status("a"),
            Status::Pending {
                attempts: 2,
                next_attempt_ms: 1250,
                last_error: "OOM 2".into()
            }
        );
        // Not due yet, and b waits behind it.
        assert!(l.due(1249, 10).is_empty());
        assert_eq!(l.due(1250, 10), ids(&["a"]));
        l.check();
        // Run 3 fails: attempts used up.
        assert_eq!(
            l.failed("a", "OOM 3".into(), ErrorClass::Transient, 2000, 250),
            Some(State::Dead)
        );
        assert_eq!(
            l.status("a"),
            Status::Dead {
                attempts: 3,
                last_error: "OOM 3".into()
            }
        );
        assert_eq!(l.due(0, 10), ids(&["b"]));
        assert_eq!(l.pending_len(), 1);
        assert_eq!(l.dead_len(), 1);
        // A dead task cannot fail or succeed again.
        assert_eq!(l.failed("a", "x".into(), ErrorClass::Transient, 0, 0), None);
        assert_eq!(l.succeeded("a"), None);
        l.check();
    }

    #[test]
    fn permanent_failure_goes_dead_at_once() {
        let mut l = TaskList::new();
        l.push(task("a", &["x"]));
        assert_eq!(
            l.failed("a", "WRONGTYPE bad".into(), ErrorClass::Permanent, 5, 5),
            Some(State::Dead)
        );
        assert_eq!(
            l.get("a").map(|(t, s)| (t.attempts, s)),
            Some((2, State::Dead))
        );
        assert_eq!(
            l.failed("zz", "x".into(), ErrorClass::Permanent, 0, 0),
            None
        );
    }

    #[test]
    fn max_attempts_zero_or_one_means_no_more_retries() {
        let mut l = TaskList::new();
        for (id, max) in [("a", 0), ("b", 1)] {
            let mut t = task(id, &[]);
            t.max_attempts = max;
            t.attempts = 0;
            l.push(t);
            assert_eq!(
                l.failed(id, "OOM".into(), ErrorClass::Transient, 0, 10),
                Some(State::Dead)
            );
        }
    }

    #[test]
    fn huge_delay_saturates() {
        let mut l = TaskList::new();
        l.push(task("a", &[]));
        l.failed(
            "a",
            "OOM".into(),
            ErrorClass::Transient,
            i64::MAX - 5,
            u64::MAX,
        );
        assert_eq!(l.get("a").map(|(t, _)| t.next_attempt_ms), Some(i64::MAX));
        l.check();
    }

    #[test]
    fn dead_list_is_bounded_oldest_fall_off() {
        let mut l = TaskList::new();
        l.set_dead_max(3);
        for i in 0..5 {
            let id = format!("t{i}");
            l.push(task(&id, &[]));
            l.failed(&id, format!("ERR {i}"), ErrorClass::Permanent, 0, 0);
        }
        let dead: Vec<&str> = l.dead().map(|t| t.id.as_str()).collect();
        assert_eq!(dead, ["t2", "t3", "t4"]);
        assert_eq!(l.dropped_by_bound(), 2);
        assert_eq!(l.status("t0"), Status::Unknown);
        l.set_dead_max(1);
        assert_eq!(l.dead().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t4"]);
        assert_eq!(l.dropped_by_bound(), 4);
        l.set_dead_max(0);
        assert_eq!(l.dead_len(), 0);
        assert_eq!(l.dropped_by_bound(), 5);
        l.check();
    }

    #[test]
    fn retry_of_dead_appends_at_tail_and_of_pending_keeps_place() {
        let mut l = TaskList::new();
        l.push(task("a", &["x"]));
        l.push(task("b", &["x"]));
        l.failed("a", "WRONGTYPE".into(), ErrorClass::Permanent, 0, 0);
        assert!(l.retry("a", 777));
        assert_eq!(
            l.pending().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(
            l.status("a"),
            Status::Pending {
                attempts: 0,
                next_attempt_ms: 777,
                last_error: "WRONGTYPE".into()
            }
        );
        assert_eq!(l.due(1000, 10), ids(&["b"]));
        // A pending task in backoff: retry makes it due now, same place.
        l.failed("b", "OOM".into(), ErrorClass::Transient, 0, 1_000_000);
        assert!(l.due(1000, 10).is_empty());
        assert!(l.retry("b", 1000));
        assert_eq!(l.get("b").map(|(t, _)| t.attempts), Some(0));
        assert_eq!(l.due(1000, 10), ids(&["b"]));
        assert!(!l.retry("nope", 0));
        l.check();
    }

    #[test]
    fn drop_forgets_pending_and_dead_and_unblocks() {
        let mut l = TaskList::new();
        l.push(task_at("a", &["x"], 1_000_000));
        l.push(task("b", &["x"]));
        l.push(task("c", &[]));
        l.failed("c", "ERR".into(), ErrorClass::Permanent, 0, 0);
        assert!(l.due(0, 10).is_empty());
        assert!(l.drop_task("a"));
        assert_eq!(l.due(0, 10), ids(&["b"]));
        assert!(l.drop_task("c"));
        assert!(!l.drop_task("c"));
        assert_eq!(l.status("a"), Status::Unknown);
        assert_eq!(l.status("c"), Status::Unknown);
        assert_eq!(l.dead_len(), 0);
        l.check();
    }

    #[test]
    fn status_done_is_remembered_and_bounded() {
        let mut l = TaskList::new();
        l.push(task("a", &["x"]));
        assert!(matches!(l.status("a"), Status::Pending { .. }));
        let t = l.succeeded("a");
        assert_eq!(t.map(|t| t.id), Some("a".to_string()));
        assert_eq!(l.status("a"), Status::Done);
        assert_eq!(l.status("never"), Status::Unknown);
        for i in 0..DONE_MAX {
            let id = format!("d{i}");
            l.push(task(&id, &[]));
            l.succeeded(&id);
        }
        assert_eq!(l.status("a"), Status::Unknown);
        assert_eq!(l.status("d0"), Status::Done);
        assert_eq!(l.status(&format!("d{}", DONE_MAX - 1)), Status::Done);
        // Pushing a done id again makes it pending.
        l.push(task("d5", &[]));
        assert!(matches!(l.status("d5"), Status::Pending { .. }));
        l.check();
    }

    #[test]
    fn duplicate_push_is_ignored() {
        let mut l = TaskList::new();
        l.push(task("a", &["x"]));
        let mut again = task("a", &["y"]);
        again.attempts = 9;
        l.push(again);
        assert_eq!(l.pending_len(), 1);
        assert_eq!(l.get("a").map(|(t, _)| t.attempts), Some(1));
        assert!(l.contains("a"));
        l.check();
    }

    #[test]
    fn oldest_pending_created() {
        let mut l = TaskList::new();
        assert_eq!(l.oldest_pending_created_ms(), None);
        for (id, c) in [("a", 50), ("b", 10), ("c", 30)] {
            l.push(Task {
                created_ms: c,
                ..task(id, &[])
            });
        }
        assert_eq!(l.oldest_pending_created_ms(), Some(10));
        l.succeeded("b");
        assert_eq!(l.oldest_pending_created_ms(), Some(30));
        l.clear();
        assert_eq!(l.oldest_pending_created_ms(), None);
        assert_eq!(l.pending_len(), 0);
        l.check();
    }

    #[test]
    fn duplicate_keys_in_one_task() {
        let mut l = TaskList::new();
        l.push(task("a", &["x", "x"]));
        l.push(task("b", &["x"]));
        l.check();
        assert_eq!(l.due(0, 10), ids(&["a"]));
        l.succeeded("a");
        l.check();
        assert_eq!(l.due(0, 10), ids(&["b"]));
    }

    fn big_list(n: usize) -> TaskList {
        let mut l = TaskList::new();
        for i in 0..n {
            let k = format!("key:{}", i % 1000);
            l.push(Task {
                created_ms: i as i64,
                commands: vec![
                    vec![b"INCR".to_vec(), k.clone().into_bytes()],
                    vec![
                        b"SET".to_vec(),
                        format!("other:{i}").into_bytes(),
                        vec![0, 255, 13, 10],
                    ],
                ],
                ..task(
                    &format!("{}-{i}", 1_795_333_235_927u64 + i as u64),
                    &[&k, &format!("other:{i}")],
                )
            });
        }
        l
    }

    #[test]
    fn encode_decode_round_trip_100k() {
        let mut l = big_list(100_000);
        for i in 0..10 {
            let id = format!("{}-{i}", 1_795_333_235_927u64 + i as u64);
            l.failed(&id, "WRONGTYPE x".into(), ErrorClass::Permanent, 0, 0);
        }
        let id = format!("{}-{}", 1_795_333_235_927u64 + 10, 10);
        l.succeeded(&id);
        l.set_dead_max(7);
        let start = std::time::Instant::now();
        let bytes = l.encode();
        let encoded = start.elapsed();
        assert_eq!(bytes[0], VERSION);
        let start = std::time::Instant::now();
        let d = match TaskList::decode(&bytes) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        eprintln!(
            "100k tasks: {} bytes, encode {encoded:?}, decode {:?}",
            bytes.len(),
            start.elapsed()
        );
        assert!(l.pending().eq(d.pending()));
        assert!(l.dead().eq(d.dead()));
        assert_eq!(d.pending_len(), 100_000 - 11);
        assert_eq!(d.dead_len(), 7);
        assert_eq!(d.dropped_by_bound(), 3);
        assert_eq!(d.dead_max(), 7);
        assert_eq!(d.status(&id), Status::Done);
        assert_eq!(d.due(0, 100), l.due(0, 100));
        assert_eq!(d.encode(), bytes);
        d.check();
    }

    #[test]
    fn empty_round_trip() {
        let l = TaskList::new();
        let d = TaskList::decode(&l.encode());
        assert!(d.is_ok_and(|d| d.pending_len() == 0 && d.dead_max() == DEFAULT_DEAD_MAX));
    }

    #[test]
    fn truncation_and_corruption_never_panic() {
        // Small enough that every prefix and every byte position can be tried.
        let mut l = big_list(12);
        l.failed("1795333235927-0", "ERR".into(), ErrorClass::Permanent, 0, 0);
        l.succeeded("1795333235928-1");
        let bytes = l.encode();
        assert!(TaskList::decode(&bytes).is_ok());
        assert_eq!(TaskList::decode(&[]).err(), Some(DecodeError::Empty));
        assert_eq!(
            TaskList::decode(&[2, 0, 0]).err(),
            Some(DecodeError::UnknownVersion(2))
        );
        assert!(TaskList::decode(&[VERSION]).is_err());
        for n in 0..bytes.len() {
            assert!(TaskList::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TaskList::decode(&longer).is_err());
        // Flip bytes everywhere (every position, a few patterns); must not panic. Length
        // prefixes set to huge values must fail without allocating them.
        let mut rng = SplitMix64::new(99);
        for i in 1..bytes.len() {
            for pattern in [0xffu8, 0x80, 0x01, (rng.next_u64() & 0xff) as u8] {
                let mut b = bytes.clone();
                b[i] ^= pattern;
                let _ = TaskList::decode(&b);
            }
        }
        for _ in 0..2000 {
            let n = (rng.next_u64() % 300) as usize;
            let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            let _ = TaskList::decode(&junk);
            let mut v = vec![VERSION];
            v.extend(&junk);
            let _ = TaskList::decode(&v);
        }
        let mut huge = vec![VERSION];
        huge.extend(u64::MAX.to_le_bytes());
        assert!(TaskList::decode(&huge).is_err());
        // A large payload cut at random places.
        let big = big_list(20_000).encode();
        for _ in 0..20 {
            let n = (rng.next_u64() % big.len() as u64) as usize;
            assert!(TaskList::decode(&big[..n]).is_err());
        }
    }

    #[test]
    fn duplicate_ids_in_a_payload_are_corrupt() {
        let a = task("a", &[]);
        let snap = SnapshotRef {
            pending: vec![&a],
            dead: vec![&a],
            done: vec![],
            dead_max: 5,
            dropped_by_bound: 0,
        };
        let mut bytes = vec![VERSION];
        bytes.extend(bincode::serialize(&snap).unwrap_or_default());
        assert!(matches!(
            TaskList::decode(&bytes),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn due_on_100k_examines_a_bounded_number_of_entries() {
        let budget = 100;
        let bound = 2 * (SCAN_FACTOR * budget + SCAN_SLACK);
        // 100,000 tasks over 1,000 keys (+ one private key each): 1,000 heads.
        let l = big_list(100_000);
        let (d, examined) = l.due_examined(0, budget);
        assert_eq!(d.len(), budget);
        assert!(examined <= bound, "{examined}");

        // All on distinct keys, all due: exactly `budget` examined.
        let mut l = TaskList::new();
        for i in 0..100_000 {
            l.push(task(&format!("t{i}"), &[&format!("k{i}")]));
        }
        let (d, examined) = l.due_examined(0, budget);
        assert_eq!(d.len(), budget);
        assert_eq!(d.first().map(String::as_str), Some("t0"));
        assert_eq!(examined, budget);

        // The first half not due for a long time: later unrelated tasks still run, and the
        // scan stays bounded.
        let mut l = TaskList::new();
        for i in 0..100_000 {
            let at = if i < 50_000 { 1_000_000 } else { i as i64 };
            l.push(task_at(&format!("t{i}"), &[&format!("k{i}")], at));
        }
        let start = std::time::Instant::now();
        let (d, examined) = l.due_examined(60_000, budget);
        let took = start.elapsed();
        assert_eq!(d.len(), budget);
        assert_eq!(d.first().map(String::as_str), Some("t50000"));
        assert!(examined <= bound, "{examined}");
        eprintln!("due() on 100k with a blocked head region: {took:?}, {examined} examined");

        // Nothing due at all: still bounded.
        let (d, examined) = l.due_examined(0, budget);
        assert!(d.is_empty());
        assert!(examined <= bound, "{examined}");

        // All on one key: one head.
        let mut l = TaskList::new();
        for i in 0..100_000 {
            l.push(task(&format!("t{i}"), &["hot"]));
        }
        let (d, examined) = l.due_examined(0, budget);
        assert_eq!(d, ids(&["t0"]));
        assert_eq!(examined, 1);
    }

    #[test]
    fn draining_100k_keeps_each_tick_bounded() {
        let budget = 100;
        let bound = 2 * (SCAN_FACTOR * budget + SCAN_SLACK);
        let mut l = big_list(100_000);
        let mut ran = 0usize;
        let mut max_examined = 0;
        let mut slowest_tick = std::time::Duration::ZERO;
        let mut last_per_key: HashMap<Vec<u8>, i64> = HashMap::new();
        while l.pending_len() > 0 {
            let tick = std::time::Instant::now();
            let (d, examined) = l.due_examined(0, budget);
            assert!(!d.is_empty());
            max_examined = max_examined.max(examined);
            let done: Vec<Task> = d.iter().filter_map(|id| l.succeeded(id)).collect();
            slowest_tick = slowest_tick.max(tick.elapsed());
            assert_eq!(done.len(), d.len());
            for t in done {
                for k in &t.keys {
                    let prev = last_per_key.insert(k.clone(), t.created_ms);
                    assert!(prev.is_none_or(|p| p < t.created_ms));
                }
                ran += 1;
            }
        }
        eprintln!("drain 100k: slowest tick (due + {budget} succeeded) {slowest_tick:?}");
        assert_eq!(ran, 100_000);
        assert!(max_examined <= bound, "{max_examined}");
    }

    /// Random operations on small lists, checked against the naive definition of `due` and
    /// a full recomputation of the indexes after every step.
    #[test]
    fn random_operations_match_the_naive_model() {
        let mut rng = SplitMix64::new(2024);
        for round in 0..200 {
            let mut l = TaskList::new();
            l.set_dead_max((rng.next_u64() % 6) as usize);
            let mut next_id = 0;
            for _ in 0..150 {
                let now = (rng.next_u64() % 100) as i64;
                let pick = |l: &TaskList, r: u64| -> Option<String> {
                    let all: Vec<&Task> = l.pending().chain(l.dead()).collect();
                    if all.is_empty() {
                        None
                    } else {
                        all.get(r as usize % all.len()).map(|t| t.id.clone())
                    }
                };
                match rng.next_u64() % 8 {
                    0..=2 => {
                        let nk = rng.next_u64() % 3;
                        let ks: Vec<String> = (0..nk)
                            .map(|_| format!("k{}", rng.next_u64() % 5))
                            .collect();
                        let kr: Vec<&str> = ks.iter().map(String::as_str).collect();
                        let mut t =
                            task_at(&format!("t{next_id}"), &kr, (rng.next_u64() % 100) as i64);
                        t.created_ms = (rng.next_u64() % 50) as i64;
                        t.max_attempts = (rng.next_u64() % 4) as u32;
                        next_id += 1;
                        l.push(t);
                    }
                    3 => {
                        if let Some(id) = l.due(now, 3).first() {
                            l.succeeded(id);
                        }
                    }
                    4 => {
                        if let Some(id) = pick(&l, rng.next_u64()) {
                            let class = if rng.next_u64().is_multiple_of(2) {
                                ErrorClass::Transient
                            } else {
                                ErrorClass::Permanent
                            };
                            l.failed(&id, "E".into(), class, now, rng.next_u64() % 50);
                        }
                    }
                    5 => {
                        if let Some(id) = pick(&l, rng.next_u64()) {
                            l.retry(&id, now);
                        }
                    }
                    6 => {
                        if let Some(id) = pick(&l, rng.next_u64()) {
                            l.drop_task(&id);
                        }
                    }
                    _ => l.set_dead_max((rng.next_u64() % 6) as usize),
                }
                l.check();
                for budget in [1, 2, 5, 100] {
                    assert_eq!(
                        l.due(now, budget),
                        l.due_naive(now, budget),
                        "round {round}"
                    );
                }
                let min_created = l.pending().map(|t| t.created_ms).min();
                assert_eq!(l.oldest_pending_created_ms(), min_created);
                for k in ["k0", "k1", "k4"] {
                    let want = l
                        .pending()
                        .find(|t| t.keys.iter().any(|x| x == k.as_bytes()))
                        .map(|t| t.id.as_str());
                    let got = l.blocking_key(&keys(&[k])).map(|(id, _)| id);
                    assert_eq!(got, want);
                }
            }
            let d = TaskList::decode(&l.encode());
            assert!(d.is_ok_and(|d| {
                d.check();
                d.pending().eq(l.pending()) && d.dead().eq(l.dead()) && d.due(50, 5) == l.due(50, 5)
            }));
        }
    }
}
