//! The periodic tick (`txu.tick-ms`): finishes pending rollbacks (and, on primaries only,
//! runs deferred work). Re-arms itself first, so a failing tick never stops the timer.

use crate::config;
use crate::exec::{defer, rollback};
use crate::server::{self, CtxPtr};
use crate::stats::STATS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

pub fn start(ctx: CtxPtr) -> bool {
    server::create_timer(ctx, config::tick_ms(), tick)
}

/// # Safety
/// Called by Redis with a timer context.
unsafe extern "C" fn tick(ctx: CtxPtr, _data: *mut std::ffi::c_void) {
    start(ctx);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // Only a primary writes; replicas get the results through replication. Writing while
        // clients are paused for writes (CLIENT PAUSE WRITE, failover) trips an assertion in
        // Redis, so wait for the pause to end.
        if !server::is_primary(ctx) || server::is_loading(ctx) || server::avoid_replica_traffic() {
            return;
        }
        let started = std::time::Instant::now();
        rollback::retry_pending(ctx);
        let ran = defer::run_due(ctx);
        if ran > 0 {
            let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            STATS.tick_last_us.store(us, Ordering::Relaxed);
            STATS.tick_max_us.fetch_max(us, Ordering::Relaxed);
        }
    }));
}

/// `TXU._FAULT UNDO <n>` (test builds only): the next `n` compensating writes fail.
#[cfg(feature = "test-faults")]
pub unsafe extern "C" fn fault(
    ctx: CtxPtr,
    argv: *mut server::StrPtr,
    argc: std::ffi::c_int,
) -> std::ffi::c_int {
    super::guard(ctx, argv, argc, |ctx, argv| {
        let n = match argv {
            [_, what, n] if server::str_bytes(*what).eq_ignore_ascii_case(b"undo") => {
                std::str::from_utf8(server::str_bytes(*n))
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
            }
            _ => None,
        };
        match n {
            Some(n) => {
                rollback::FAIL_NEXT_UNDO.store(n, std::sync::atomic::Ordering::Relaxed);
                server::reply_simple(ctx, c"OK")
            }
            None => server::reply_error(ctx, "ERR syntax: TXU._FAULT UNDO <n>"),
        }
    })
}
