//! Conflict marks of retained undo logs ("a key this committed transaction wrote has changed
//! since"). Only a primary decides them, from keyspace notifications outside loading, and
//! replicates each mark as `TXU._CONFLICT <txid> <key>`; replicas and AOF replay apply those
//! commands instead of guessing from notifications (replaying a rewritten AOF re-creates keys
//! after their log and would look like changes). Writes of a transaction that then rolls back
//! completely changed nothing, so their marks are buffered and dropped.

use crate::ffi::{call, context, events, keys, CtxPtr};
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
    /// Whether a buffer was set up: with no undo log held when the transaction starts, none
    /// of its writes can take a mark (logs are only stored after the writes), so nothing is.
    active: bool,
}

/// Starts buffering the marks of a transaction's writes. With no undo log held this is an
/// atomic load or two: no lock, no allocation.
pub fn buffer() -> Buffered {
    // A log this transaction stores (retained, or a rollback left pending) subscribes to
    // keyspace notifications when it is stored (`store::undolog`): conflicts are seen from
    // its end on.
    if !undolog::any() {
        return Buffered {
            done: false,
            active: false,
        };
    }
    *BUFFER.lock() = Some(Vec::new());
    Buffered {
        done: false,
        active: true,
    }
}

/// Whether any undo log (retained, or a pending rollback) is held: an atomic load.
pub fn holds_logs() -> bool {
    undolog::any()
}

/// The timer found nothing held: keyspace notifications are not needed until a
/// transaction runs or a log arrives (unsubscribed where the server allows it).
pub fn tick_idle() {
    if !undolog::any() {
        events::release_keyspace();
    }
}

/// Logs may have arrived (the dataset loaded, this server became a primary): make sure
/// changes to their keys are seen.
pub fn logs_may_have_arrived() {
    if undolog::any() {
        events::ensure_keyspace();
    }
}

impl Buffered {
    /// Ends buffering; `keep`: the transaction's writes stand, so its marks are applied.
    pub fn finish(mut self, ctx: CtxPtr, keep: bool) {
        self.done = true;
        if !self.active {
            return;
        }
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
        if self.active && !self.done {
            *BUFFER.lock() = None;
        }
    }
}

fn apply(ctx: CtxPtr, txid: &str, key: &[u8]) {
    if undolog::mark_conflict(txid, key) {
        call::replicate(ctx, CONFLICT_COMMAND, &[txid.as_bytes(), key]);
    }
}

/// A key changed (keyspace notification `event`). Runs on every write while subscribed:
/// with no undo log held it returns after one atomic load (no context flags, no lock).
pub fn key_changed(ctx: CtxPtr, event: &[u8], key: &[u8]) {
    // No log: no mark to take, and no log's key to watch over.
    if !undolog::any() {
        return;
    }
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
