//! Server configs as the engine reads them: a few numbers with `CONFIG GET`, and whether any
//! config changed (`CONFIG SET`) since the engine last looked, from the server's config-change
//! event.

use super::{call, CtxPtr, ReplyKind};
use crate::error::TxuError;
use redis_module::raw;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Raised by every config change, cleared by [`take_changed`].
static CHANGED: AtomicBool = AtomicBool::new(false);
/// Whether the subscription to config changes succeeded (decided once).
static WATCHING: OnceLock<bool> = OnceLock::new();

/// `CONFIG GET <names...>`: each config the server knows, with its value when it is a number
/// (configs it does not know, and values that are not numbers, are left out).
pub fn numbers(ctx: CtxPtr, names: &[&[u8]]) -> Result<HashMap<Vec<u8>, i64>, TxuError> {
    let mut args: Vec<&[u8]> = Vec::with_capacity(names.len() + 1);
    args.push(b"GET");
    args.extend_from_slice(names);
    let r = call::call_plain(ctx, c"CONFIG", &args)?;
    let r = r.as_ref();
    let mut out = HashMap::new();
    match r.kind() {
        // RESP2: name, value, name, value...
        ReplyKind::Array => {
            let mut i = 0;
            while let (Some(k), Some(v)) = (r.elem(i), r.elem(i + 1)) {
                if let Some(n) = number(v.bytes()) {
                    out.insert(k.bytes().to_ascii_lowercase(), n);
                }
                i += 2;
            }
        }
        ReplyKind::Map => {
            for i in 0..r.len() {
                if let Some((k, v)) = r.map_elem(i) {
                    if let Some(n) = number(v.bytes()) {
                        out.insert(k.bytes().to_ascii_lowercase(), n);
                    }
                }
            }
        }
        _ => return Err(r_error(r)),
    }
    Ok(out)
}

fn r_error(r: super::ReplyRef<'_>) -> TxuError {
    TxuError::Internal(format!(
        "unexpected CONFIG GET reply: {}",
        String::from_utf8_lossy(r.bytes())
    ))
}

fn number(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

/// Starts watching config changes, once (later calls return the first answer): whether
/// changes are seen from now on. Called from a command or timer context.
pub fn watch(ctx: CtxPtr) -> bool {
    *WATCHING.get_or_init(|| {
        let Some(sub) = super::api!(RedisModule_SubscribeToServerEvent) else {
            return false;
        };
        let ev = raw::RedisModuleEvent {
            id: raw::REDISMODULE_EVENT_CONFIG,
            dataver: 1,
        };
        // SAFETY: the context belongs to this module (a command or timer context); the
        // callback is a plain function that lives as long as the module.
        let rc = unsafe { sub(ctx, ev, Some(config_changed)) };
        rc == raw::REDISMODULE_OK as c_int
    })
}

/// Whether a config changed since the last call; clears the mark.
pub fn take_changed() -> bool {
    CHANGED.swap(false, Ordering::Relaxed)
}

unsafe extern "C" fn config_changed(
    _ctx: CtxPtr,
    _eid: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut c_void,
) {
    let _ = catch_unwind(|| CHANGED.store(true, Ordering::Relaxed));
}
