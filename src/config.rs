//! Module configs (`CONFIG SET txu.<name>`, or `MODULE LOAD ... txu.<name> <value>`): their
//! defaults and bounds are declared once here and registered in `lib.rs`.

use std::sync::atomic::{AtomicI64, Ordering};

/// `txu.max-queued`: most commands one transaction may queue. MULTI has no limit, but an
/// unbounded queue lets one connection hold unbounded memory; 10,000 is far above any
/// transaction that should run atomically on a single-threaded server.
pub static MAX_QUEUED: AtomicI64 = AtomicI64::new(MAX_QUEUED_DEFAULT);
pub const MAX_QUEUED_DEFAULT: i64 = 10_000;
pub const MAX_QUEUED_MIN: i64 = 1;
pub const MAX_QUEUED_MAX: i64 = 10_000_000;

/// `txu.rollback-attempts`: how often one compensating write is tried before the rollback is
/// reported incomplete.
pub static ROLLBACK_ATTEMPTS: AtomicI64 = AtomicI64::new(ROLLBACK_ATTEMPTS_DEFAULT);
pub const ROLLBACK_ATTEMPTS_DEFAULT: i64 = 3;
pub const ROLLBACK_ATTEMPTS_MIN: i64 = 1;
pub const ROLLBACK_ATTEMPTS_MAX: i64 = 100;

pub fn max_queued() -> i64 {
    MAX_QUEUED.load(Ordering::Relaxed)
}

pub fn rollback_attempts() -> i64 {
    ROLLBACK_ATTEMPTS.load(Ordering::Relaxed).max(1)
}
