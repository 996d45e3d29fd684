//! What the timer does every `txu.tick-ms`: finishes pending rollbacks and, on primaries
//! only, runs the deferred tasks that are due. Re-arms itself first, so a failing tick never
//! stops the timer.
//!
//! Other clients wait while a tick runs, so a tick does bounded work: its housekeeping
//! costs what is due (each step checks a flag or an index first), and it runs tasks for at
//! most `txu.tick-time-us` (a monotonic clock, checked before each task). When time runs out
//! with due tasks left and some of the tick's `txu.tick-budget` unspent, a *slice* carries on
//! with what is left of the budget at the next turn of the event loop — after the server has
//! served every client whose request arrived meanwhile — and so on until the budget is spent,
//! nothing is due, or the next tick starts (with a fresh budget). So a client waits for at
//! most one slice, and `txu.tick-budget` per `txu.tick-ms` still bounds the work (and so the
//! share of the server's time) the timer takes.

mod retry;

use crate::config;
use crate::exec::{cluster, conflict, defer, rollback};
use crate::ffi::{clock, context, events, CtxPtr};
use crate::stats::{add, STATS};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// Every how many ticks every undo log's key is checked (with the default 10 ms tick: 1 s).
const CHECK_EVERY_TICKS: u64 = 100;
/// Tasks the current tick may still run (its `txu.tick-budget`, less what its slices ran).
static LEFT: AtomicUsize = AtomicUsize::new(0);
/// A continuation slice is armed.
static SLICE_ARMED: AtomicBool = AtomicBool::new(false);
/// Pause between two slices of one tick where the server cannot run one at the next turn of
/// its event loop (see `events::run_soon`).
const SLICE_FALLBACK_MS: i64 = 1;

/// Arms the timer (load time, then from every tick).
pub fn start(ctx: CtxPtr) -> bool {
    events::create_timer(ctx, config::tick_ms(), tick)
}

/// Whether this server may write from a timer now. Only a primary writes; replicas get the
/// results through replication. Writing while clients are paused for writes (CLIENT PAUSE
/// WRITE, failover) trips an assertion in Redis, so wait for the pause to end.
fn may_write(ctx: CtxPtr) -> bool {
    context::is_primary(ctx) && !context::is_loading(ctx) && !context::avoid_replica_traffic()
}

/// Whether txu holds anything the timer may have to look after (tasks, undo logs).
fn holds_anything() -> bool {
    defer::holds_tasks() || conflict::holds_logs()
}

fn tick(ctx: CtxPtr) {
    start(ctx);
    let budget = usize::try_from(config::tick_budget()).unwrap_or(1);
    LEFT.store(budget, Ordering::Relaxed);
    // A slice that never came (its timer could not be created) must not block the next ones;
    // a second one armed meanwhile only shares this tick's budget.
    SLICE_ARMED.store(false, Ordering::Relaxed);
    // Nothing held: nothing to save, expire, finish or run (and no context flags to read).
    if !holds_anything() {
        conflict::tick_idle();
        return;
    }
    if !may_write(ctx) {
        return;
    }
    let started = Started::now();
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
    run_slice(ctx, started, map.as_ref());
}

/// A continuation of the current tick: runs more of the due tasks.
fn slice(ctx: CtxPtr) {
    SLICE_ARMED.store(false, Ordering::Relaxed);
    if !defer::has_pending() || LEFT.load(Ordering::Relaxed) == 0 || !may_write(ctx) {
        return;
    }
    let started = Started::now();
    let map = cluster::slot_map(ctx);
    run_slice(ctx, started, map.as_ref());
}

/// When a tick or slice started: wall clock (its time budget) and the thread's CPU time (the
/// work it did, apart from time the OS gave to other threads meanwhile).
#[derive(Clone, Copy)]
struct Started {
    at: Instant,
    cpu_us: Option<u64>,
}

impl Started {
    fn now() -> Started {
        Started {
            at: Instant::now(),
            cpu_us: clock::thread_cpu_us(),
        }
    }
}

/// Runs due tasks until the tick's budget is spent or `txu.tick-time-us` from `started` has
/// passed; in the second case arms a slice for the rest.
fn run_slice(ctx: CtxPtr, started: Started, map: Option<&crate::cluster::SlotMap>) {
    let left = LEFT.load(Ordering::Relaxed);
    if left == 0 || !defer::has_pending() {
        return;
    }
    let deadline = started.at + config::tick_time();
    let out = defer::batched_log(ctx, || retry::run_due(ctx, map, left, deadline));
    let left = left.saturating_sub(out.ran);
    LEFT.store(left, Ordering::Relaxed);
    if out.ran > 0 {
        let us = u64::try_from(started.at.elapsed().as_micros()).unwrap_or(u64::MAX);
        STATS.tick_last_us.store(us, Ordering::Relaxed);
        STATS.tick_max_us.fetch_max(us, Ordering::Relaxed);
        if let (Some(a), Some(b)) = (started.cpu_us, clock::thread_cpu_us()) {
            let cpu = b.saturating_sub(a);
            STATS.tick_last_cpu_us.store(cpu, Ordering::Relaxed);
            STATS.tick_max_cpu_us.fetch_max(cpu, Ordering::Relaxed);
        }
    }
    if out.out_of_time {
        add(&STATS.ticks_cut_short, 1);
        if left > 0 && !SLICE_ARMED.swap(true, Ordering::Relaxed) && !events::run_soon(slice) {
            events::create_timer(ctx, SLICE_FALLBACK_MS, slice);
        }
    }
}
