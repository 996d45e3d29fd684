//! The undo log: pre-images of what a transaction is about to change, and the plan that puts
//! them back. Pure: no Redis types, unit-tested without a server.
//!
//! A pre-image is taken the first time a transaction writes a key; later writes to the same key
//! add nothing, because rolling back to the first pre-image undoes all of them.

pub mod entry;
pub mod log;
pub mod recipe;

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A key's whole value as `DUMP` serializes it, and its absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub payload: Vec<u8>,
    /// Absolute Unix time in ms at which the key expires; `None` for no expiry.
    pub expire_at_ms: Option<i64>,
}

/// The state of one key before the transaction first wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreImage {
    pub key: Vec<u8>,
    /// `None`: the key did not exist.
    pub before: Option<Snapshot>,
}

/// One compensating write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoOp<'a> {
    /// The key did not exist before: delete it.
    Delete { key: &'a [u8] },
    /// Put the whole value back, with its absolute expiry.
    Restore {
        key: &'a [u8],
        snapshot: &'a Snapshot,
    },
}

impl UndoOp<'_> {
    /// The command that performs this write: `DEL key`, or
    /// `RESTORE key <abs-ms|0> <payload> REPLACE [ABSTTL]` (the absolute deadline is kept).
    pub fn command(&self) -> Vec<Vec<u8>> {
        match self {
            UndoOp::Delete { key } => vec![b"DEL".to_vec(), key.to_vec()],
            UndoOp::Restore { key, snapshot } => {
                let mut c = vec![
                    b"RESTORE".to_vec(),
                    key.to_vec(),
                    snapshot.expire_at_ms.unwrap_or(0).to_string().into_bytes(),
                    snapshot.payload.clone(),
                    b"REPLACE".to_vec(),
                ];
                if snapshot.expire_at_ms.is_some() {
                    c.push(b"ABSTTL".to_vec());
                }
                c
            }
        }
    }
}

/// Pre-images recorded by one transaction, in the order they were taken.
#[derive(Debug, Default)]
pub struct UndoLog {
    entries: Vec<PreImage>,
    seen: HashSet<Vec<u8>>,
    bytes: usize,
}

impl UndoLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `key` still needs a pre-image (this transaction has not written it yet).
    pub fn needs(&self, key: &[u8]) -> bool {
        !self.seen.contains(key)
    }

    /// Records a pre-image. A second pre-image of the same key is ignored: the first one is
    /// the state before the transaction. Returns whether it was recorded.
    pub fn record(&mut self, pre: PreImage) -> bool {
        if self.seen.contains(&pre.key) {
            return false;
        }
        self.bytes += pre.key.len() + pre.before.as_ref().map_or(0, |s| s.payload.len());
        self.seen.insert(pre.key.clone());
        self.entries.push(pre);
        true
    }

    /// Forgets the pre-images recorded after the first `mark` ones (those of a command that
    /// then failed: a failed command changed nothing, so undoing it would only write).
    pub fn rewind(&mut self, mark: usize) {
        while self.entries.len() > mark {
            if let Some(p) = self.entries.pop() {
                self.bytes -= p.key.len() + p.before.as_ref().map_or(0, |s| s.payload.len());
                self.seen.remove(&p.key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of keys and serialized values held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[PreImage] {
        &self.entries
    }

    /// Keys this log has pre-images of, in the order they were first written.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        self.entries.iter().map(|p| p.key.clone()).collect()
    }

    /// The compensating writes as commands (name first), in the order to run them.
    pub fn compensations(&self) -> Vec<Vec<Vec<u8>>> {
        self.plan().iter().map(UndoOp::command).collect()
    }

    /// The compensating writes, newest pre-image first.
    pub fn plan(&self) -> Vec<UndoOp<'_>> {
        self.entries
            .iter()
            .rev()
            .map(|p| match &p.before {
                None => UndoOp::Delete { key: &p.key },
                Some(snapshot) => UndoOp::Restore {
                    key: &p.key,
                    snapshot,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(v: &[u8], exp: Option<i64>) -> Option<Snapshot> {
        Some(Snapshot {
            payload: v.to_vec(),
            expire_at_ms: exp,
        })
    }

    #[test]
    fn first_pre_image_wins() {
        let mut log = UndoLog::new();
        assert!(log.needs(b"a"));
        assert!(log.record(PreImage {
            key: b"a".to_vec(),
            before: snap(b"v1", Some(42)),
        }));
        assert!(!log.needs(b"a"));
        assert!(!log.record(PreImage {
            key: b"a".to_vec(),
            before: snap(b"v2", None),
        }));
        assert_eq!(log.len(), 1);
        assert_eq!(log.entries()[0].before, snap(b"v1", Some(42)));
    }

    #[test]
    fn plan_restores_or_deletes_newest_first() {
        let mut log = UndoLog::new();
        log.record(PreImage {
            key: b"old".to_vec(),
            before: snap(b"x", None),
        });
        log.record(PreImage {
            key: b"new".to_vec(),
            before: None,
        });
        let plan = log.plan();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0], UndoOp::Delete { key: b"new" });
        match &plan[1] {
            UndoOp::Restore { key, snapshot } => {
                assert_eq!(*key, b"old");
                assert_eq!(snapshot.payload, b"x");
            }
            other => panic!("expected a restore, got {other:?}"),
        }
    }

    #[test]
    fn rewind_forgets_the_failed_command() {
        let mut log = UndoLog::new();
        log.record(PreImage {
            key: b"a".to_vec(),
            before: None,
        });
        let mark = log.len();
        log.record(PreImage {
            key: b"b".to_vec(),
            before: snap(b"xyz", None),
        });
        log.rewind(mark);
        assert_eq!(log.len(), 1);
        assert!(log.needs(b"b"));
        assert!(!log.needs(b"a"));
        assert_eq!(log.bytes(), 1);
    }

    #[test]
    fn compensations_are_commands_newest_first() {
        let mut log = UndoLog::new();
        log.record(PreImage {
            key: b"k".to_vec(),
            before: snap(b"P", Some(99)),
        });
        log.record(PreImage {
            key: b"n".to_vec(),
            before: None,
        });
        let c = log.compensations();
        assert_eq!(c[0], vec![b"DEL".to_vec(), b"n".to_vec()]);
        assert_eq!(
            c[1],
            vec![
                b"RESTORE".to_vec(),
                b"k".to_vec(),
                b"99".to_vec(),
                b"P".to_vec(),
                b"REPLACE".to_vec(),
                b"ABSTTL".to_vec()
            ]
        );
        assert_eq!(log.keys(), vec![b"k".to_vec(), b"n".to_vec()]);
    }

    #[test]
    fn bytes_count_keys_and_payloads() {
        let mut log = UndoLog::new();
        log.record(PreImage {
            key: b"k1".to_vec(),
            before: snap(b"12345", None),
        });
        log.record(PreImage {
            key: b"k2".to_vec(),
            before: None,
        });
        assert_eq!(log.bytes(), 2 + 5 + 2);
    }

    #[test]
    fn binary_keys_are_distinct() {
        let mut log = UndoLog::new();
        log.record(PreImage {
            key: b"a\0b".to_vec(),
            before: None,
        });
        assert!(log.needs(b"a\0c"));
        assert!(!log.needs(b"a\0b"));
    }
}
