//! Applying undo logs: after a failed `TXU.EXEC`, for `TXU.ROLLBACK <txid>` of a retained
//! transaction, and for rollbacks left pending (retried by the timer until they finish).

use crate::config;
use crate::error::{quote, TxuError};
use crate::ffi::{acl, call, context, keys, CtxPtr, OwnedStr};
use crate::stats::{add, STATS};
use crate::store::{self, undolog, undolog::StoredLog};
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
    call::call_ok(ctx, &cname, c"v!E", &args)
}

/// Applies `cmds` in order, each tried `txu.rollback-attempts` times. Stops at the first one
/// that still fails: later writes may depend on it (list positions, renames).
pub fn apply_commands(ctx: CtxPtr, cmds: &[Vec<Vec<u8>>]) -> Result<(), Stuck> {
    let attempts = config::rollback_attempts();
    for (at, cmd) in cmds.iter().enumerate() {
        let mut last = Ok(());
        for _ in 0..attempts {
            last = apply_one(ctx, cmd);
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
    let cmds = undo.compensations();
    let stuck = match apply_commands(ctx, &cmds) {
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
    let first_key = cmds
        .get(stuck.at)
        .and_then(|c| c.get(1))
        .cloned()
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
    let Err(stuck) = apply_commands(ctx, &log.compensations()) else {
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
