//! `TXU.BEGIN CAPTURE`: a command filter that turns every command of a capturing connection
//! into `TXU.QUEUE <command...>`, so redis-cli users get MULTI's feel — and MULTI's habits:
//! `EXEC` runs `TXU.EXEC`, `DISCARD` runs `TXU.ROLLBACK`.
//!
//! Only servers whose filters can tell the client (`CommandFilterGetClientId`: Redis ≥ 7.2,
//! Valkey) get the filter; rewriting commands without knowing whose they are would break other
//! connections. The filter is registered with `NOSELF`, so txu's own calls pass untouched;
//! other modules' calls, the replication stream and AOF loading come from clients that never
//! capture, so they pass too.

use crate::exec::{self, txn};
use crate::ffi::{filter, CtxPtr};
use std::sync::atomic::{AtomicBool, Ordering};

static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Cluster mode: the filter also notes which command each client runs (see
/// `exec::cluster::note_command`).
static OBSERVE: AtomicBool = AtomicBool::new(false);

/// Whether capture mode works on this server (the filter was registered at load).
pub fn available() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Registers the command filter: for capture mode where the server can tell clients apart,
/// and in cluster mode to see slots move. Neither: no filter at all.
pub fn register(ctx: CtxPtr, capture: bool, cluster: bool) -> Result<(), String> {
    if !capture && !cluster {
        return Ok(());
    }
    filter::register(ctx, on_command)?;
    ACTIVE.store(capture, Ordering::Relaxed);
    OBSERVE.store(cluster, Ordering::Relaxed);
    Ok(())
}

fn on_command(f: &filter::FilterCtx) {
    if OBSERVE.load(Ordering::Relaxed) {
        if let Some(name) = f.arg(0) {
            exec::cluster::note_command(name);
        }
    }
    if ACTIVE.load(Ordering::Relaxed) {
        queue_captured(f);
    }
}

/// A capturing client's command becomes `TXU.QUEUE <command...>`.
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
    // MULTI's words end the transaction as MULTI's would (with arguments, they are queued and
    // refused like any EXEC: a typo never runs the transaction).
    if f.arg(1).is_none() {
        if name.eq_ignore_ascii_case(b"exec") {
            f.replace(0, b"TXU.EXEC");
            return;
        }
        if name.eq_ignore_ascii_case(b"discard") {
            f.replace(0, b"TXU.ROLLBACK");
            return;
        }
    }
    f.insert_front(b"TXU.QUEUE");
}
