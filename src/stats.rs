//! Event counters shown by `INFO txu` (see `info.rs`); every layer adds to them, they import
//! nothing.

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
    /// Runs that failed and left the task pending for another one.
    pub retries_failed: AtomicU64,
    /// Runs that failed and moved the task to the dead list.
    pub retries_died: AtomicU64,
    /// Duration of the last / longest timer tick that ran deferred tasks, in microseconds.
    pub tick_last_us: AtomicU64,
    pub tick_max_us: AtomicU64,
    pub tick_last_cpu_us: AtomicU64,
    pub tick_max_cpu_us: AtomicU64,
    /// Ticks (and slices) that stopped at `txu.tick-time-us` with due tasks left.
    pub ticks_cut_short: AtomicU64,
    /// Times the task list was written back under its key (the key had lost it).
    pub task_list_restored: AtomicU64,
    /// Times a retained or pending undo log was written back under its key.
    pub undo_logs_restored: AtomicU64,
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
    retries_failed: AtomicU64::new(0),
    retries_died: AtomicU64::new(0),
    tick_last_us: AtomicU64::new(0),
    tick_max_us: AtomicU64::new(0),
    tick_last_cpu_us: AtomicU64::new(0),
    tick_max_cpu_us: AtomicU64::new(0),
    ticks_cut_short: AtomicU64::new(0),
    task_list_restored: AtomicU64::new(0),
    undo_logs_restored: AtomicU64::new(0),
};

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
