//! `TXU.BEGIN CAPTURE`: a command filter that turns every command of a capturing connection
//! into `TXU.QUEUE <command...>`, so redis-cli users get MULTI's feel.
//!
//! Only servers whose filters can tell the client (`CommandFilterGetClientId`: Redis ≥ 7.2,
//! Valkey) get the filter; rewriting commands without knowing whose they are would break other
//! connections. The filter is registered with `NOSELF`, so txu's own calls pass untouched;
//! other modules' calls, the replication stream and AOF loading come from clients that never
//! capture, so they pass too.

use crate::exec::txn;
use crate::server::{self, FilterCtx};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether capture mode works on this server (the filter was registered at load).
pub fn available() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

pub fn register(ctx: server::CtxPtr) -> Result<(), String> {
    server::register_filter(ctx, filter)?;
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(())
}

/// The filter callback: called for every command the server receives.
///
/// # Safety
/// Called by Redis with a valid filter context.
unsafe extern "C" fn filter(fctx: *mut redis_module::raw::RedisModuleCommandFilterCtx) {
    // Fast path first: nobody capturing costs one atomic load.
    if !txn::anyone_capturing() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Some(f) = FilterCtx::new(fctx) else {
            return;
        };
        let Some(client) = f.client_id() else {
            return;
        };
        if !txn::is_capturing(client) {
            return;
        }
        let Some(name) = f.arg(0) else {
            return;
        };
        if name.len() >= 4 && name[..4].eq_ignore_ascii_case(b"txu.") {
            return;
        }
        f.insert_front(b"TXU.QUEUE");
    }));
}
