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
    pub preimages: AtomicU64,
    pub preimage_bytes: AtomicU64,
    pub rollback_failures: AtomicU64,
}

pub static STATS: Stats = Stats {
    committed: AtomicU64::new(0),
    rolled_back: AtomicU64::new(0),
    discarded: AtomicU64::new(0),
    aborted: AtomicU64::new(0),
    commands_queued: AtomicU64::new(0),
    commands_refused: AtomicU64::new(0),
    commands_executed: AtomicU64::new(0),
    preimages: AtomicU64::new(0),
    preimage_bytes: AtomicU64::new(0),
    rollback_failures: AtomicU64::new(0),
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
        let fields: [(&CStr, u64); 11] = [
            (c"transactions_open", txn::open_count() as u64),
            (
                c"transactions_committed",
                s.committed.load(Ordering::Relaxed),
            ),
            (
                c"transactions_rolled_back",
                s.rolled_back.load(Ordering::Relaxed),
            ),
            (
                c"transactions_discarded",
                s.discarded.load(Ordering::Relaxed),
            ),
            (c"transactions_aborted", s.aborted.load(Ordering::Relaxed)),
            (
                c"commands_queued",
                s.commands_queued.load(Ordering::Relaxed),
            ),
            (
                c"commands_refused",
                s.commands_refused.load(Ordering::Relaxed),
            ),
            (
                c"commands_executed",
                s.commands_executed.load(Ordering::Relaxed),
            ),
            (c"preimages_captured", s.preimages.load(Ordering::Relaxed)),
            (c"preimage_bytes", s.preimage_bytes.load(Ordering::Relaxed)),
            (
                c"rollback_failures",
                s.rollback_failures.load(Ordering::Relaxed),
            ),
        ];
        for (name, v) in fields {
            field(ctx, name.as_ptr(), v);
        }
    });
}
