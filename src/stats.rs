//! Counters shown by `INFO txu`.

use crate::exec::txn;
use redis_module::raw;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub committed: AtomicU64,
    pub rolled_back: AtomicU64,
    pub discarded: AtomicU64,
    pub aborted: AtomicU64,
    pub commands_queued: AtomicU64,
    pub commands_refused: AtomicU64,
    pub commands_executed: AtomicU64,
    pub undo_entries: AtomicU64,
    pub compactions: AtomicU64,
    pub compacted_entries: AtomicU64,
    pub preimage_bytes: AtomicU64,
    pub rollback_failures: AtomicU64,
    pub rolled_back_committed: AtomicU64,
    pub pending_finished: AtomicU64,
    pub deferred: AtomicU64,
    pub retries_run: AtomicU64,
    pub retries_succeeded: AtomicU64,
    /// Duration of the last / longest timer tick that ran deferred tasks, in microseconds.
    pub tick_last_us: AtomicU64,
    pub tick_max_us: AtomicU64,
}

pub static STATS: Stats = Stats {
    committed: AtomicU64::new(0),
    rolled_back: AtomicU64::new(0),
    discarded: AtomicU64::new(0),
    aborted: AtomicU64::new(0),
    commands_queued: AtomicU64::new(0),
    commands_refused: AtomicU64::new(0),
    commands_executed: AtomicU64::new(0),
    undo_entries: AtomicU64::new(0),
    compactions: AtomicU64::new(0),
    compacted_entries: AtomicU64::new(0),
    preimage_bytes: AtomicU64::new(0),
    rollback_failures: AtomicU64::new(0),
    rolled_back_committed: AtomicU64::new(0),
    pending_finished: AtomicU64::new(0),
    deferred: AtomicU64::new(0),
    retries_run: AtomicU64::new(0),
    retries_succeeded: AtomicU64::new(0),
    tick_last_us: AtomicU64::new(0),
    tick_max_us: AtomicU64::new(0),
};

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The `INFO txu` section. Field names get the `txu_` prefix from the server.
///
/// # Safety
/// Called by Redis with a valid info context.
pub unsafe extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    let _ = std::panic::catch_unwind(|| {
        let (Some(section), Some(field)) = (
            raw::RedisModule_InfoAddSection,
            raw::RedisModule_InfoAddFieldULongLong,
        ) else {
            return;
        };
        section(ctx, c"".as_ptr());
        let s = &STATS;
        let (retained, pending, log_bytes) = crate::store::undolog::counts();
        let t = crate::store::tasks::counts(crate::server::now_ms());
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let fields: Vec<(&CStr, u64)> = vec![
            (c"transactions_open", txn::open_count() as u64),
            (c"transactions_committed", load(&s.committed)),
            (c"transactions_rolled_back", load(&s.rolled_back)),
            (c"transactions_discarded", load(&s.discarded)),
            (c"transactions_aborted", load(&s.aborted)),
            (c"commands_queued", load(&s.commands_queued)),
            (c"commands_refused", load(&s.commands_refused)),
            (c"commands_executed", load(&s.commands_executed)),
            (c"undo_entries_recorded", load(&s.undo_entries)),
            (c"compactions", load(&s.compactions)),
            (c"compacted_entries", load(&s.compacted_entries)),
            (c"preimage_bytes", load(&s.preimage_bytes)),
            (c"rollback_failures", load(&s.rollback_failures)),
            (c"rollbacks_of_committed", load(&s.rolled_back_committed)),
            (c"undo_logs_retained", retained as u64),
            (c"rollbacks_pending", pending as u64),
            (c"rollbacks_pending_finished", load(&s.pending_finished)),
            (c"undo_log_memory", log_bytes as u64),
            (c"transactions_deferred", load(&s.deferred)),
            (c"tasks_pending", t.pending),
            (c"tasks_dead", t.dead),
            (c"tasks_dropped_by_bound", t.dropped),
            (c"retries_run", load(&s.retries_run)),
            (c"retries_succeeded", load(&s.retries_succeeded)),
            (c"oldest_pending_age_ms", t.oldest_age_ms),
            (c"tick_last_us", load(&s.tick_last_us)),
            (c"tick_max_us", load(&s.tick_max_us)),
        ];
        for (name, v) in fields {
            field(ctx, name.as_ptr(), v);
        }
    });
}
