//! `TXU.BEGIN CAPTURE`: a command filter that turns every command of a capturing connection
//! into `TXU.QUEUE <command...>`, so redis-cli users get MULTI's feel.
//!
//! Only servers whose filters can tell the client (`CommandFilterGetClientId`: Redis ≥ 7.2,
//! Valkey) get the filter; rewriting commands without knowing whose they are would break other
//! connections. The filter is registered with `NOSELF`, so txu's own calls pass untouched;
//! other modules' calls, the replication stream and AOF loading come from clients that never
//! capture, so they pass too.

use crate::exec::txn;
use crate::ffi::{filter, CtxPtr};
use std::sync::atomic::{AtomicBool, Ordering};

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether capture mode works on this server (the filter was registered at load).
pub fn available() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

pub fn register(ctx: CtxPtr) -> Result<(), String> {
    filter::register(ctx, queue_captured)?;
    ACTIVE.store(true, Ordering::Relaxed);
    Ok(())
}

/// Called for every command the server receives: a capturing client's command becomes
/// `TXU.QUEUE <command...>`.
fn queue_captured(f: &filter::FilterCtx) {
    // Fast path first: nobody capturing costs one atomic load.
    if !txn::anyone_capturing() {
        return;
    }
    let Some(client) = f.client_id() else {
        return;
    };
    if !txn::is_capturing(client) {
        return;
    }
    let Some(name) = f.arg(0) else {
        return;
    };
    if name
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"txu."))
    {
        return;
    }
    f.insert_front(b"TXU.QUEUE");
}
