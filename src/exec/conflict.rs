//! Conflict marks of retained undo logs ("a key this committed transaction wrote has changed
//! since"). Only a primary decides them, from keyspace notifications outside loading, and
//! replicates each mark as `TXU._CONFLICT <txid> <key>`; replicas and AOF replay apply those
//! commands instead of guessing from notifications (replaying a rewritten AOF re-creates keys
//! after their log and would look like changes). Writes of a transaction that then rolls back
//! completely changed nothing, so their marks are buffered and dropped.

use crate::ffi::{call, context, keys, CtxPtr};
use crate::store::undolog;
use parking_lot::Mutex;

pub const CONFLICT_COMMAND: &std::ffi::CStr = c"txu._conflict";

/// (retained transaction id, key that changed).
type Mark = (String, Vec<u8>);

/// `Some` while a transaction runs: marks wait for its outcome.
static BUFFER: Mutex<Option<Vec<Mark>>> = Mutex::new(None);

/// Buffers marks until `finish` (or drop, which discards them).
pub struct Buffered {
    done: bool,
}

pub fn buffer() -> Buffered {
    *BUFFER.lock() = Some(Vec::new());
    Buffered { done: false }
}

impl Buffered {
    /// Ends buffering; `keep`: the transaction's writes stand, so its marks are applied.
    pub fn finish(mut self, ctx: CtxPtr, keep: bool) {
        self.done = true;
        let marks = BUFFER.lock().take().unwrap_or_default();
        if keep {
            for (txid, key) in marks {
                apply(ctx, &txid, &key);
            }
        }
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        if !self.done {
            *BUFFER.lock() = None;
        }
    }
}

fn apply(ctx: CtxPtr, txid: &str, key: &[u8]) {
    if undolog::mark_conflict(txid, key) {
        call::replicate(ctx, CONFLICT_COMMAND, &[txid.as_bytes(), key]);
    }
}

/// A key changed (keyspace notification `event`).
pub fn key_changed(ctx: CtxPtr, event: &[u8], key: &[u8]) {
    if context::is_loading(ctx) || !context::is_primary(ctx) {
        return;
    }
    // Moving a slot deletes its keys here (MIGRATE) or creates them there (RESTORE-ASKING):
    // nobody changed them.
    if super::cluster::moving_keys(event) {
        return;
    }
    // Something happened to a key of txu's own (renamed, moved, deleted...): check that every
    // undo log is still under its key.
    if key.starts_with(b"txu:undo:") {
        undolog::request_check();
    }
    let ids = undolog::unconflicted_watchers(keys::selected_db(ctx), key);
    if ids.is_empty() {
        return;
    }
    let mut buf = BUFFER.lock();
    if let Some(b) = buf.as_mut() {
        b.extend(ids.into_iter().map(|id| (id, key.to_vec())));
        return;
    }
    drop(buf);
    for id in ids {
        apply(ctx, &id, key);
    }
}
