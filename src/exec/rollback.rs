//! Applying undo logs: after a failed `TXU.EXEC`, for `TXU.ROLLBACK <txid>` of a retained
//! transaction, and for rollbacks left pending (retried by the timer until they finish).

use crate::config;
use crate::error::{quote, TxuError};
use crate::ffi::{acl, call, context, keys, CtxPtr, OwnedStr};
use crate::stats::{add, STATS};
use crate::store::{self, undolog, undolog::StoredLog};
use crate::undo::entry::Batchable;
use crate::undo::log::UndoLog;

/// Where a sequence of compensating writes stopped.
#[derive(Debug)]
pub struct Stuck {
    /// Index of the first command that could not be applied.
    pub at: usize,
    pub error: String,
}

/// Test builds only: make the next `n` compensating writes fail (see `TXU._FAULT`).
#[cfg(feature = "test-faults")]
static FAIL_NEXT_UNDO: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Test builds only: the next `n` compensating writes fail.
#[cfg(feature = "test-faults")]
pub fn fail_next_undo(n: i64) {
    FAIL_NEXT_UNDO.store(n, std::sync::atomic::Ordering::Relaxed);
}

fn injected_fault() -> Option<TxuError> {
    #[cfg(feature = "test-faults")]
    {
        use std::sync::atomic::Ordering;
        if FAIL_NEXT_UNDO
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n > 0).then(|| n - 1)
            })
            .is_ok()
        {
            return Some(TxuError::InjectedFault);
        }
    }
    None
}

/// Runs one compensating write, replicated, without OOM or ACL checks (a rollback must not be
/// refused for those).
fn apply_one(ctx: CtxPtr, cmd: &[Vec<u8>]) -> Result<(), TxuError> {
    if let Some(e) = injected_fault() {
        return Err(e);
    }
    let Some((name, args)) = cmd.split_first() else {
        return Ok(());
    };
    let cname = std::ffi::CString::new(name.clone())
        .map_err(|_| TxuError::Internal("bad undo command".into()))?;
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    call::call_ok(ctx, &cname, UNDO_FLAGS, &args)
}

/// Call flags of every compensating write: replicated (`!`), errors as replies (`E`); no OOM
/// or ACL check (a rollback must not be refused for those).
const UNDO_FLAGS: &std::ffi::CStr = c"v!E";

/// Most keys one batched command writes (a longer run becomes several commands), and most
/// value bytes one `MSET` carries, so that no single replicated command grows unbounded.
const BATCH_KEYS: usize = 1024;
const BATCH_BYTES: usize = 8 << 20;

/// A run of consecutive compensations of one batchable kind, not yet applied: each with its
/// index in the sequence and the attempts it has left (injected faults may have used some).
#[derive(Default)]
struct Batch<'a> {
    /// `true`: `SET`s (one `MSET`); `false`: `DEL`s.
    sets: bool,
    items: Vec<(usize, Batchable<'a>, i64)>,
    bytes: usize,
}

impl<'a> Batch<'a> {
    fn fits(&self, b: &Batchable<'a>) -> bool {
        let (sets, len) = match b {
            Batchable::Set { value, .. } => (true, value.len()),
            Batchable::Del { .. } => (false, 0),
        };
        self.items.is_empty()
            || (self.sets == sets
                && self.items.len() < BATCH_KEYS
                && self.bytes.saturating_add(len) <= BATCH_BYTES)
    }

    fn push(&mut self, at: usize, b: Batchable<'a>, tries: i64) {
        if let Batchable::Set { value, .. } = b {
            self.bytes = self.bytes.saturating_add(value.len());
        }
        self.sets = matches!(b, Batchable::Set { .. });
        self.items.push((at, b, tries));
    }

    /// Applies the run: one `MSET k1 v1 ...` or `DEL k1 ...` (a run of one is the plain
    /// `SET`/`DEL` the entry names). Those commands do per key exactly what the single
    /// commands do, in the same order, and fail only as a whole, before writing anything
    /// (the server's own checks: arity, cluster routing); then each compensation is tried
    /// on its own, as if unbatched, to find the first one that really fails.
    fn flush(&mut self, ctx: CtxPtr) -> Result<(), Stuck> {
        let items = std::mem::take(&mut self.items);
        self.bytes = 0;
        if items.is_empty() {
            return Ok(());
        }
        let name = match (self.sets, items.len()) {
            (true, 1) => c"SET",
            (true, _) => c"MSET",
            (false, _) => c"DEL",
        };
        let mut args: Vec<&[u8]> = Vec::with_capacity(items.len() * if self.sets { 2 } else { 1 });
        for (_, b, _) in &items {
            match *b {
                Batchable::Set { key, value } => {
                    args.push(key);
                    args.push(value);
                }
                Batchable::Del { key } => args.push(key),
            }
        }
        if call::call_ok(ctx, name, UNDO_FLAGS, &args).is_ok() {
            return Ok(());
        }
        for (at, b, tries) in items {
            let mut last = Ok(());
            for _ in 0..tries {
                last = match b {
                    Batchable::Set { key, value } => {
                        call::call_ok(ctx, c"SET", UNDO_FLAGS, &[key, value])
                    }
                    Batchable::Del { key } => call::call_ok(ctx, c"DEL", UNDO_FLAGS, &[key]),
                };
                if last.is_ok() {
                    break;
                }
            }
            if let Err(e) = last {
                return Err(Stuck {
                    at,
                    error: e.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Applies the compensations of `log` in order (newest entry first), each tried
/// `txu.rollback-attempts` times. Stops at the first one that still fails: later writes may
/// depend on it (list positions, renames).
///
/// Runs of plain `SET key value` and of `DEL key` compensations are each applied as one
/// `MSET` / `DEL` with several keys (outside cluster mode, where a multi-key command would
/// meet cross-slot checks the single ones do not): same writes, same order, same keyspace
/// events and modified-key signals, same change count; replicas and the AOF get the
/// multi-key command. Injected faults (test builds) still count per compensation and per
/// attempt, before its batch runs.
pub fn apply_log(ctx: CtxPtr, log: &UndoLog) -> Result<(), Stuck> {
    let attempts = config::rollback_attempts();
    let batching = !store::cluster_mode();
    let mut batch = Batch::default();
    for (at, entry) in log.newest_first().enumerate() {
        match entry.batchable().filter(|_| batching) {
            Some(b) => {
                let mut tries = attempts;
                let mut fault = None;
                while tries > 0 {
                    match injected_fault() {
                        Some(e) => {
                            fault = Some(e);
                            tries -= 1;
                        }
                        None => break,
                    }
                }
                if tries == 0 {
                    batch.flush(ctx)?;
                    return Err(Stuck {
                        at,
                        error: fault.map(|e| e.to_string()).unwrap_or_default(),
                    });
                }
                if !batch.fits(&b) {
                    batch.flush(ctx)?;
                }
                batch.push(at, b, tries);
            }
            None => {
                batch.flush(ctx)?;
                apply_attempts(ctx, at, &entry.compensation(), attempts)?;
            }
        }
    }
    batch.flush(ctx)
}

/// Runs one compensating command, tried `attempts` times.
fn apply_attempts(ctx: CtxPtr, at: usize, cmd: &[Vec<u8>], attempts: i64) -> Result<(), Stuck> {
    let mut last = Ok(());
    for _ in 0..attempts {
        last = apply_one(ctx, cmd);
        if last.is_ok() {
            break;
        }
    }
    last.map_err(|e| Stuck {
        at,
        error: e.to_string(),
    })
}

/// What a finished `TXU.EXEC` needs to know to store an undo log.
pub struct TxMeta<'a> {
    pub txid: &'a str,
    pub db: i32,
}

/// `log` without its newest `applied` entries, whose compensations have run already.
fn remaining(mut log: UndoLog, applied: usize) -> UndoLog {
    let keep = log.len().saturating_sub(applied);
    log.truncate(keep);
    log
}

/// The stored form of a transaction whose undo log is `undo` (all of it, or what is left).
fn stored_log(
    meta: &TxMeta<'_>,
    undo: &UndoLog,
    retain_until_ms: Option<i64>,
    pending: Option<undolog::Pending>,
) -> StoredLog {
    let keys = undo.keys();
    StoredLog {
        txid: meta.txid.to_string(),
        key: StoredLog::key_for(meta.txid, keys.first().map(Vec::as_slice)),
        db: meta.db,
        created_ms: context::now_ms(),
        retain_until_ms,
        pending,
        keys,
        conflict: None,
        log: undo.encode(),
    }
}

/// Undoes a failed `TXU.EXEC`. If some compensating writes cannot be applied, the rest of the
/// undo log is stored under its hidden key, marked pending, for the timer to finish.
pub fn after_failure(
    ctx: CtxPtr,
    meta: TxMeta<'_>,
    undo: &UndoLog,
    index: usize,
    cmd: &str,
    cause: String,
) -> TxuError {
    let stuck = match apply_log(ctx, undo) {
        Ok(()) => {
            add(&STATS.rolled_back, 1);
            return TxuError::RolledBack {
                index,
                cmd: cmd.to_string(),
                cause,
            };
        }
        Err(s) => s,
    };
    add(&STATS.rollback_failures, 1);
    // Argument 1 of every compensation is the entry's key.
    let first_key = undo
        .newest_first()
        .nth(stuck.at)
        .map(|e| e.key().to_vec())
        .unwrap_or_default();
    let pending = undolog::Pending {
        attempts: 1,
        last_error: stuck.error.clone(),
        skipped: Vec::new(),
    };
    let rest = remaining(undo.clone(), stuck.at);
    let stored = stored_log(&meta, &rest, None, Some(pending));
    let saved = store::save_log(ctx, &stored);
    context::log_warning(
        ctx,
        &format!(
            "txu: rollback of {} incomplete ({}); {}",
            meta.txid,
            stuck.error,
            if saved.is_ok() {
                "pending, retried by the timer"
            } else {
                "could not be stored"
            }
        ),
    );
    TxuError::RollbackIncomplete {
        index,
        cmd: cmd.to_string(),
        cause,
        txid: meta.txid.to_string(),
        first: format!("{}: {}", quote(&first_key), stuck.error),
    }
}

/// Stores the undo log of a committed `TXU.BEGIN RETAIN <ms>` transaction.
pub fn retain(
    ctx: CtxPtr,
    meta: TxMeta<'_>,
    undo: &UndoLog,
    retain_ms: i64,
) -> Result<(), TxuError> {
    let until = context::now_ms().saturating_add(retain_ms);
    let stored = stored_log(&meta, undo, Some(until), None);
    store::save_log(ctx, &stored)
}

/// A copy of the log of `txid`, with the log's database selected (the caller restores the
/// client's database with the returned previous one).
fn open_log(ctx: CtxPtr, txid: &str) -> Option<(StoredLog, i32)> {
    let log = undolog::get(txid)?;
    let prev = keys::select_db(ctx, log.db)?;
    Some((log, prev))
}

/// Applies a stored undo log, leaving alone the keys other clients wrote since a rollback of
/// it failed (`Pending::skipped`). Finished: the log ends (`TXU._UNLOG`). Stuck: if
/// `always_store` or some writes were applied, what is left is stored back, pending (a
/// replicated write); a stuck attempt that changed nothing leaves the log alone, since
/// changing it without replicating would make replicas differ.
fn apply_stored(ctx: CtxPtr, v: &StoredLog, always_store: bool) -> Result<(), TxuError> {
    let mut log = UndoLog::decode(&v.log).map_err(|e| TxuError::CorruptUndoLog(e.to_string()))?;
    let skipped = v
        .pending
        .as_ref()
        .map(|p| p.skipped.clone())
        .unwrap_or_default();
    log.drop_keys(&skipped);
    let Err(stuck) = apply_log(ctx, &log) else {
        if !skipped.is_empty() {
            let names: Vec<String> = skipped.iter().map(|k| quote(k)).collect();
            context::log_warning(
                ctx,
                &format!(
                    "txu: rollback of {} finished; left alone keys other clients wrote after it failed: {}",
                    v.txid,
                    names.join(", ")
                ),
            );
        }
        return store::unlog(ctx, &v.txid);
    };
    if always_store || stuck.at > 0 {
        let mut rest = v.clone();
        rest.log = remaining(log, stuck.at).encode();
        rest.retain_until_ms = None;
        rest.pending = Some(undolog::Pending {
            attempts: v
                .pending
                .as_ref()
                .map_or(1, |p| p.attempts.saturating_add(1)),
            last_error: stuck.error.clone(),
            skipped,
        });
        let _ = store::save_log(ctx, &rest);
    }
    Err(TxuError::Reply(stuck.error))
}

/// `TXU.ROLLBACK <txid> [FORCE]`: undoes a retained, committed transaction.
pub fn rollback_committed(ctx: CtxPtr, txid: &str, force: bool) -> Result<(), TxuError> {
    let Some((log, prev)) = open_log(ctx, txid) else {
        // Cluster: a log that moved away with its slot is the new owner's.
        if let (Some(slot), Some(map)) = (undolog::moved_slot(txid), super::cluster::slot_map(ctx))
        {
            if let Some(e) = super::cluster::slot_refusal(&map, slot) {
                return Err(e);
            }
        }
        return Err(TxuError::UnknownTransaction(quote(txid.as_bytes())));
    };
    let result = (|| {
        // Cluster: the log lives with its slot; on the move or moved away, the client retries
        // (the slot's new owner holds it).
        if let Some(map) = super::cluster::slot_map(ctx) {
            let slot = crate::store::keyname::slot_of(&log.key);
            if let Some(e) = super::cluster::slot_refusal(&map, slot) {
                return Err(e);
            }
        }
        // Retention over: the timer is about to end the log.
        if log.is_over(context::now_ms()) {
            return Err(TxuError::UnknownTransaction(quote(txid.as_bytes())));
        }
        // Undoing is writing: the caller must be allowed every compensating write.
        let undo =
            UndoLog::decode(&log.log).map_err(|e| TxuError::CorruptUndoLog(e.to_string()))?;
        for cmd in undo.compensations() {
            let Some(owned) = OwnedStr::create_all(&cmd) else {
                return Err(TxuError::OutOfMemory);
            };
            let argv = crate::ffi::strings::borrow_all(&owned);
            if acl::allows(ctx, &argv) != Some(true) {
                let why = acl::dryrun_reason(ctx, &argv).unwrap_or_else(|| {
                    "this user has no permissions to run one of the compensating writes".into()
                });
                return Err(TxuError::NoPerm(why));
            }
        }
        if log.pending.is_some() {
            return Err(TxuError::RollbackPending(quote(txid.as_bytes())));
        }
        if let (Some(k), false) = (log.conflict.clone(), force) {
            return Err(TxuError::Conflict {
                txid: quote(txid.as_bytes()),
                key: quote(&k),
            });
        }
        // Our own writes must not mark this log (or be seen as conflicts of it).
        undolog::unwatch(txid);
        match apply_stored(ctx, &log, true) {
            Ok(()) => {
                add(&STATS.rolled_back_committed, 1);
                Ok(())
            }
            Err(error) => Err(TxuError::RollbackPendingNow {
                txid: quote(txid.as_bytes()),
                error: error.to_string(),
            }),
        }
    })();
    keys::select_db(ctx, prev);
    result
}

/// Timer: retries every pending rollback once. Returns how many finished.
pub fn retry_pending(ctx: CtxPtr) -> usize {
    let mut finished = 0;
    for txid in undolog::pending_ids() {
        let Some((log, prev)) = open_log(ctx, &txid) else {
            continue;
        };
        // The compensating writes are txu's own: they mark nothing.
        let marks = super::conflict::buffer();
        let done = apply_stored(ctx, &log, false).is_ok();
        marks.finish(ctx, false);
        if done {
            finished += 1;
            add(&STATS.pending_finished, 1);
            context::log_notice(ctx, &format!("txu: pending rollback of {txid} finished"));
        }
        keys::select_db(ctx, prev);
    }
    finished
}

/// Timer: ends the retained logs whose retention is over.
pub fn end_expired(ctx: CtxPtr) {
    for txid in undolog::expired(context::now_ms()) {
        if let Err(e) = store::unlog(ctx, &txid) {
            context::log_warning(ctx, &format!("txu: could not end the log of {txid}: {e}"));
        }
    }
}

/// Timer: writes back the undo logs whose keys lost them, and says so in the log.
pub fn keep_logs_saved(ctx: CtxPtr, map: Option<&crate::cluster::SlotMap>) {
    match store::ensure_logs_saved(ctx, map) {
        Ok(0) => {}
        Ok(n) => {
            add(&STATS.undo_logs_restored, n as u64);
            context::log_warning(
                ctx,
                &format!("txu: {n} undo log key(s) no longer held their log (deleted, evicted, renamed, moved or overwritten); wrote them back from the module"),
            );
        }
        Err(e) => context::log_warning(ctx, &format!("txu: could not write undo logs back: {e}")),
    }
}

/// Asks for a check of every undo log's key at the next tick.
pub fn request_log_check() {
    undolog::request_check();
}
