//! Everything that persists: txu's values under keys of its own data types (the undo logs of
//! `undolog`, the failed-task list of `tasklist`). A value is always written through the
//! internal command `TXU._LOAD`, run by txu itself with replication on, so primaries,
//! replicas and the AOF all build it the same way; `aof_rewrite` emits the same command.

pub mod keyname;
pub mod tasklist;
pub mod undolog;

use crate::error::TxuError;
use crate::ffi::types::{self, ModuleValue, TypeSlot};
use crate::ffi::{call, context, keys, CtxPtr, Str};
use crate::tasks::list::TaskList;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// `TXU._LOAD <kind> <key> <payload> <expire-at-ms|0>`: the only way txu values are written.
pub const LOAD_COMMAND: &CStr = c"txu._load";

/// Registers txu's data types (load time only).
pub fn register_types(ctx: CtxPtr) -> Result<(), String> {
    types::handle_io_errors(ctx);
    types::create_type::<undolog::StoredLog>(ctx, &undolog::TYPE)?;
    types::create_type::<tasklist::StoredTasks>(ctx, &tasklist::TYPE)
}

/// Set while txu itself calls one of its internal commands; clients cannot call them.
static INTERNAL: AtomicBool = AtomicBool::new(false);

/// Whether an internal command (`TXU._LOAD`, `TXU._TASK`, `TXU._CONFLICT`) may run now: called
/// by txu itself, by the primary over the replication link, or while loading the AOF.
pub fn internal_allowed(ctx: CtxPtr) -> bool {
    INTERNAL.load(Ordering::Relaxed) || context::is_replicated(ctx) || context::is_loading(ctx)
}

/// Writes `value` under `key` (replacing whatever is there) with an optional absolute
/// expiry, replicated and written to the AOF as `TXU._LOAD`.
pub fn save<T: ModuleValue>(
    ctx: CtxPtr,
    key: &[u8],
    value: &T,
    expire_at_ms: Option<i64>,
) -> Result<(), TxuError> {
    let payload = value.encode();
    let exp = expire_at_ms.unwrap_or(0).to_string();
    call_internal(
        ctx,
        LOAD_COMMAND,
        &[T::KIND.to_bytes(), key, &payload, exp.as_bytes()],
    )
}

/// Runs one of txu's internal commands with replication on, so replicas and the AOF get it
/// verbatim.
pub fn call_internal(ctx: CtxPtr, cmd: &CStr, args: &[&[u8]]) -> Result<(), TxuError> {
    INTERNAL.store(true, Ordering::Relaxed);
    let r = call::call_ok(ctx, cmd, c"v!E", args);
    INTERNAL.store(false, Ordering::Relaxed);
    r
}

/// Applies a `TXU._LOAD` on this server: decodes `payload` and stores it under `key`.
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
        let value = T::decode(payload).ok_or(TxuError::CorruptPayload)?;
        types::set_value(ctx, slot, key, value, expire_at_ms)
    }
    match kind {
        b"undo" => load::<undolog::StoredLog>(ctx, &undolog::TYPE, key, payload, expire_at_ms),
        b"tasks" => {
            let list = TaskList::decode(payload).map_err(|_| TxuError::CorruptPayload)?;
            let value = tasklist::loaded(list, key.bytes(), keys::selected_db(ctx));
            types::set_value(ctx, &tasklist::TYPE, key, value, expire_at_ms)
        }
        _ => Err(TxuError::UnknownValueKind),
    }
}

/// The server starts emptying database `db` (-1: all of them): the values in it are gone
/// now, even if their memory is freed later on a background thread.
pub fn on_flush(db: i32) {
    tasklist::on_flush(db);
    undolog::on_flush(db);
}
