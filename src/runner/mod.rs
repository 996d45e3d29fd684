//! What the timer does every `txu.tick-ms`: finishes pending rollbacks and, on primaries
//! only, runs the deferred tasks that are due. Re-arms itself first, so a failing tick never
//! stops the timer.

mod retry;

use crate::config;
use crate::exec::{cluster, defer, rollback};
use crate::ffi::{context, events, CtxPtr};
use crate::stats::STATS;
use std::sync::atomic::{AtomicU64, Ordering};

static TICKS: AtomicU64 = AtomicU64::new(0);
/// Every how many ticks every undo log's key is checked (with the default 10 ms tick: 1 s).
const CHECK_EVERY_TICKS: u64 = 100;

/// Arms the timer (load time, then from every tick).
pub fn start(ctx: CtxPtr) -> bool {
    events::create_timer(ctx, config::tick_ms(), tick)
}

fn tick(ctx: CtxPtr) {
    start(ctx);
    // Only a primary writes; replicas get the results through replication. Writing while
    // clients are paused for writes (CLIENT PAUSE WRITE, failover) trips an assertion in
    // Redis, so wait for the pause to end.
    if !context::is_primary(ctx) || context::is_loading(ctx) || context::avoid_replica_traffic() {
        return;
    }
    let started = std::time::Instant::now();
    // SWAPDB and renames move a key without freeing a handle: look at every log's key once
    // in a while, besides when a handle goes away.
    if TICKS
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(CHECK_EVERY_TICKS)
    {
        rollback::request_log_check();
    }
    // Cluster: which slots this node serves now (tasks and logs of other slots moved away).
    let map = cluster::slot_map(ctx);
    defer::keep_list_saved(ctx, map.as_ref());
    rollback::keep_logs_saved(ctx, map.as_ref());
    rollback::end_expired(ctx);
    rollback::retry_pending(ctx);
    let ran = retry::run_due(ctx, map.as_ref());
    if ran > 0 {
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        STATS.tick_last_us.store(us, Ordering::Relaxed);
        STATS.tick_max_us.fetch_max(us, Ordering::Relaxed);
    }
}
