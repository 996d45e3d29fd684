//! How the task list and one task are encoded (see `codec`): the current version, and the
//! older ones still read.
//!
//! - Version 2 (txu 0.3): `Task` with `last_attempt_ms`.
//! - Version 1 (txu 0.2): the same without it; read as `last_attempt_ms: None`.

use super::{DecodeError, Task, TaskList, VERSION};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A task as version 1 (txu 0.2) encoded it: no `last_attempt_ms`.
#[derive(Deserialize)]
struct TaskV1 {
    id: String,
    db: i32,
    user: Vec<u8>,
    commands: Vec<Vec<Vec<u8>>>,
    keys: Vec<Vec<u8>>,
    created_ms: i64,
    attempts: u32,
    max_attempts: u32,
    next_attempt_ms: i64,
    last_error: String,
}

impl From<TaskV1> for Task {
    fn from(t: TaskV1) -> Task {
        Task {
            id: t.id,
            db: t.db,
            user: t.user,
            commands: t.commands,
            keys: t.keys,
            created_ms: t.created_ms,
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            next_attempt_ms: t.next_attempt_ms,
            last_error: t.last_error,
            last_attempt_ms: None,
        }
    }
}

impl Task {
    /// Version byte of one encoded task (`TXU._TASK PUSH`).
    pub const VERSION: u8 = 2;

    pub fn encode(&self) -> Vec<u8> {
        crate::codec::encode(Self::VERSION, self)
    }

    /// The inverse of [`encode`](Self::encode); also reads version 1 (txu 0.2), so a replica
    /// keeps up with a primary that is not upgraded yet.
    pub fn decode(bytes: &[u8]) -> Result<Task, DecodeError> {
        match bytes.first() {
            Some(&1) => crate::codec::decode::<TaskV1>(1, bytes).map(Task::from),
            _ => crate::codec::decode(Self::VERSION, bytes),
        }
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

/// `Snapshot` as version 1 (txu 0.2) encoded it.
#[derive(Deserialize)]
struct SnapshotV1 {
    pending: Vec<TaskV1>,
    dead: Vec<TaskV1>,
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
        from_snapshot(s).map_err(serde::de::Error::custom)
    }
}

/// The inverse of `TaskList::encode`, for the current version and version 1.
pub(super) fn decode_list(bytes: &[u8]) -> Result<TaskList, DecodeError> {
    if bytes.first() == Some(&1) {
        let s: SnapshotV1 = crate::codec::decode(1, bytes)?;
        let s = Snapshot {
            pending: s.pending.into_iter().map(Task::from).collect(),
            dead: s.dead.into_iter().map(Task::from).collect(),
            done: s.done,
            dead_max: s.dead_max,
            dropped_by_bound: s.dropped_by_bound,
        };
        return from_snapshot(s).map_err(DecodeError::Corrupt);
    }
    crate::codec::decode(VERSION, bytes)
}

/// The list holding the tasks of `s` (with fresh indexes); a duplicate id is corrupt.
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

/// `TaskList::encode_where`: the tasks `keep` selects, no done ids.
pub(super) fn encode_where(list: &TaskList, keep: impl Fn(&Task) -> bool) -> Vec<u8> {
    crate::codec::encode(
        VERSION,
        &SnapshotRef {
            pending: list.pending.values().filter(|t| keep(t)).collect(),
            dead: list.dead.values().filter(|t| keep(t)).collect(),
            done: Vec::new(),
            dead_max: u64::try_from(list.dead_max).unwrap_or(u64::MAX),
            dropped_by_bound: 0,
        },
    )
}
