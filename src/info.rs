//! The `INFO txu` section: the event counters of `stats` and the gauges the executor reports.

use crate::exec;
use crate::stats::STATS;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The section's fields, in order. Field names get the `txu_` prefix from the server.
pub fn fields() -> Vec<(&'static CStr, u64)> {
    let s = &STATS;
    let g = exec::gauges();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    vec![
        (c"transactions_open", g.open_transactions),
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
        (c"undo_logs_retained", g.retained_logs),
        (c"rollbacks_pending", g.pending_rollbacks),
        (c"rollbacks_pending_finished", load(&s.pending_finished)),
        (c"undo_log_memory", g.undo_log_bytes),
        (c"transactions_deferred", load(&s.deferred)),
        (c"tasks_pending", g.tasks.pending),
        (c"tasks_dead", g.tasks.dead),
        (c"tasks_dropped_by_bound", g.tasks.dropped),
        (
            c"dead_max",
            u64::try_from(crate::config::dead_max()).unwrap_or(0),
        ),
        (c"retries_run", load(&s.retries_run)),
        (c"retries_succeeded", load(&s.retries_succeeded)),
        (c"retries_failed", load(&s.retries_failed)),
        (c"retries_died", load(&s.retries_died)),
        (c"oldest_pending_age_ms", g.tasks.oldest_age_ms),
        (c"tick_last_us", load(&s.tick_last_us)),
        (c"tick_max_us", load(&s.tick_max_us)),
        (c"tick_last_cpu_us", load(&s.tick_last_cpu_us)),
        (c"tick_max_cpu_us", load(&s.tick_max_cpu_us)),
        (c"ticks_cut_short", load(&s.ticks_cut_short)),
        (c"task_list_restored", load(&s.task_list_restored)),
        (c"undo_logs_restored", load(&s.undo_logs_restored)),
    ]
}
