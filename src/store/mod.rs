//! Everything that persists: txu's values under keys of its own data types (the undo logs of
//! `undolog`, the failed-task list of `tasklist`). A value is always written through the
//! internal command `TXU._LOAD`, run by txu itself with replication on, so primaries,
//! replicas and the AOF all build it the same way; `aof_rewrite` emits the same command.

pub mod keyname;
pub mod migration;

/// First byte of the payload of an inert copy (see `tasklist::StoredTasks`,
/// `undolog::LogValue`): it stays inert wherever it is loaded, so a copy a client restored
/// under txu's key name never becomes state, not even after a restart. Never a version byte.
const INERT: u8 = 0xfe;

/// The payload of an inert copy holding `bytes`.
fn inert_payload(bytes: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(INERT);
    out.extend(bytes);
    out
}

/// Splits a payload into (is it an inert copy, the value's own bytes).
fn split_inert(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes.split_first() {
        Some((&INERT, rest)) => (true, rest),
        _ => (false, bytes),
    }
}
pub mod tasklist;
pub mod transition;
pub mod undolog;

use crate::cluster::{SlotMap, SlotState};
use crate::error::{quote, TxuError};
use crate::ffi::types::{self, ModuleValue, TypeSlot};
use crate::ffi::{call, context, keys, CtxPtr, Str};
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// `TXU._LOAD <kind> <key> <payload> <expire-at-ms|0>`: the only way txu values are written.
pub const LOAD_COMMAND: &CStr = c"txu._load";

/// Cluster mode (read once at load): tasks are kept per slot (see `tasklist`).
pub fn set_cluster(on: bool) {
    tasklist::set_cluster(on);
}

/// Whether the server runs in cluster mode (as `set_cluster` was told at load).
pub fn cluster_mode() -> bool {
    tasklist::cluster()
}

/// Registers txu's data types (load time only).
pub fn register_types(ctx: CtxPtr) -> Result<(), String> {
    types::handle_io_errors(ctx);
    types::create_type::<undolog::LogValue>(ctx, &undolog::TYPE)?;
    types::create_type::<tasklist::StoredTasks>(ctx, &tasklist::TYPE)
}

/// Set while txu itself calls one of its internal commands; clients cannot call them.
static INTERNAL: AtomicBool = AtomicBool::new(false);

/// Whether an internal command (`TXU._LOAD`, `TXU._TASK`, `TXU._CONFLICT`) may run now: called
/// by txu itself, by the primary over the replication link, or while loading the AOF.
pub fn internal_allowed(ctx: CtxPtr) -> bool {
    INTERNAL.load(Ordering::Relaxed) || context::is_replicated(ctx) || context::is_loading(ctx)
}

/// `TXU._UNLOG <txid>`: the only way an undo log ends (besides a flush of its database).
pub const UNLOG_COMMAND: &CStr = c"txu._unlog";

/// Stores `log` under its key in its database (replacing whatever is there), replicated and
/// written to the AOF as `TXU._LOAD`; the module holds it from then on.
pub fn save_log(ctx: CtxPtr, log: &undolog::StoredLog) -> Result<(), TxuError> {
    let payload = log.encode();
    // A retained log's key expires with its retention (the timer ends the log then too).
    let expire_at = match (&log.pending, log.retain_until_ms) {
        (None, Some(t)) => t,
        _ => 0,
    }
    .to_string();
    let prev = keys::select_db(ctx, log.db).ok_or(TxuError::NoDatabase(log.db))?;
    let r = call_internal(
        ctx,
        LOAD_COMMAND,
        &[
            undolog::LogValue::KIND.to_bytes(),
            &log.key,
            &payload,
            expire_at.as_bytes(),
        ],
    );
    keys::select_db(ctx, prev);
    r
}

/// Ends the undo log of `txid` everywhere (`TXU._UNLOG`, replicated).
pub fn unlog(ctx: CtxPtr, txid: &str) -> Result<(), TxuError> {
    call_internal(ctx, UNLOG_COMMAND, &[txid.as_bytes()])
}

/// Applies a `TXU._UNLOG` on this server: forgets the log and deletes its key if the key
/// still holds a value of txu's type (this command is what replicates).
pub fn apply_unlog(ctx: CtxPtr, txid: &str) {
    let Some(log) = undolog::get(txid) else {
        return;
    };
    undolog::forget(txid);
    let Some(prev) = keys::select_db(ctx, log.db) else {
        return;
    };
    if let Some(k) = crate::ffi::OwnedStr::create(&log.key) {
        if types::with_value(
            ctx,
            &undolog::TYPE,
            k.as_str(),
            |_: &mut undolog::LogValue| (),
        )
        .is_some()
        {
            let _ = call::call_ok(ctx, c"DEL", c"vE", &[&log.key]);
        }
    }
    keys::select_db(ctx, prev);
}

/// Primary, from the timer: writes back every undo log whose key no longer holds its live
/// handle (when a check is due). In a cluster, the logs of a slot another node now serves
/// have moved with it: they end here (`TXU._UNLOG`); slots on the move are left alone.
/// Returns how many it wrote.
pub fn ensure_logs_saved(ctx: CtxPtr, map: Option<&SlotMap>) -> Result<usize, TxuError> {
    if !undolog::check_due() {
        return Ok(0);
    }
    let mut written = 0;
    for (txid, db, key) in undolog::locations() {
        if let Some(m) = map {
            match m.state(keyname::slot_of(&key)) {
                SlotState::Mine => {}
                SlotState::Elsewhere(_) => {
                    undolog::moved_away(&txid, keyname::slot_of(&key));
                    unlog(ctx, &txid)?;
                    continue;
                }
                SlotState::Migrating | SlotState::Importing | SlotState::Unassigned => {
                    // Look again at the next tick.
                    undolog::request_check();
                    continue;
                }
            }
        }
        let Some(prev) = keys::select_db(ctx, db) else {
            continue;
        };
        let live = crate::ffi::OwnedStr::create(&key).and_then(|k| {
            types::with_value(
                ctx,
                &undolog::TYPE,
                k.as_str(),
                |v: &mut undolog::LogValue| undolog::is_live_handle(&txid, v),
            )
        });
        keys::select_db(ctx, prev);
        if live != Some(true) {
            if let Some(log) = undolog::get(&txid) {
                save_log(ctx, &log)?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// Runs one of txu's internal commands with replication on, so replicas and the AOF get it
/// verbatim.
pub fn call_internal(ctx: CtxPtr, cmd: &CStr, args: &[&[u8]]) -> Result<(), TxuError> {
    INTERNAL.store(true, Ordering::Relaxed);
    let r = call::call_ok(ctx, cmd, c"v!E", args);
    INTERNAL.store(false, Ordering::Relaxed);
    r
}

/// Applies a `TXU._LOAD` on this server: decodes `payload` and stores it under `key`, in the
/// selected database, if that is where the value belongs. Nothing changes on an error.
pub fn apply_load(
    ctx: CtxPtr,
    kind: &[u8],
    key: Str<'_>,
    payload: &[u8],
    expire_at_ms: i64,
) -> Result<(), TxuError> {
    fn load<T: ModuleValue>(
        ctx: CtxPtr,
        slot: &TypeSlot,
        key: Str<'_>,
        payload: &[u8],
        expire_at_ms: i64,
    ) -> Result<(), TxuError> {
        let value = T::decode(payload).map_err(|_| TxuError::CorruptPayload)?;
        let db = keys::selected_db(ctx);
        if !value.belongs_at(key.bytes(), db) {
            return Err(TxuError::MisplacedValue {
                key: quote(key.bytes()),
                db,
            });
        }
        types::set_value(ctx, slot, key, value.settle(true), expire_at_ms)
    }
    match kind {
        b"undo" => load::<undolog::LogValue>(ctx, &undolog::TYPE, key, payload, expire_at_ms),
        b"tasks" => load::<tasklist::StoredTasks>(ctx, &tasklist::TYPE, key, payload, expire_at_ms),
        _ => Err(TxuError::UnknownValueKind),
    }
}

/// The server starts emptying database `db` (-1: all of them): the values in it are gone
/// now, even if their memory is freed later on a background thread.
pub fn on_flush(db: i32) {
    tasklist::on_flush(db);
    undolog::on_flush(db);
}
