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

/// `txu.tick-ms`: period of the timer that finishes pending rollbacks and retries deferred
/// transactions.
pub static TICK_MS: AtomicI64 = AtomicI64::new(TICK_MS_DEFAULT);
pub const TICK_MS_DEFAULT: i64 = 100;
pub const TICK_MS_MIN: i64 = 1;
pub const TICK_MS_MAX: i64 = 60_000;

macro_rules! int_config {
    ($(#[$doc:meta])* $name:ident, $default:ident = $d:expr, $min:ident = $lo:expr, $max:ident = $hi:expr, $get:ident) => {
        $(#[$doc])*
        pub static $name: AtomicI64 = AtomicI64::new($d);
        pub const $default: i64 = $d;
        pub const $min: i64 = $lo;
        pub const $max: i64 = $hi;
        pub fn $get() -> i64 {
            $name.load(Ordering::Relaxed).clamp($lo, $hi)
        }
    };
}

int_config!(
    /// `txu.max-attempts`: runs of a deferred transaction (the failing `TXU.EXEC` counts as
    /// the first) before it moves to the dead list, unless `TXU.BEGIN RETRY <n>` says otherwise.
    MAX_ATTEMPTS, MAX_ATTEMPTS_DEFAULT = 10, MAX_ATTEMPTS_MIN = 1, MAX_ATTEMPTS_MAX = 1_000_000, max_attempts
);
int_config!(
    /// `txu.tick-budget`: most deferred tasks one timer tick runs.
    TICK_BUDGET, TICK_BUDGET_DEFAULT = 100, TICK_BUDGET_MIN = 1, TICK_BUDGET_MAX = 100_000, tick_budget
);
int_config!(
    /// `txu.backoff-base-ms`: delay before the second run of a deferred task; it doubles with
    /// each further attempt (with jitter), up to `txu.backoff-max-ms`.
    BACKOFF_BASE_MS, BACKOFF_BASE_MS_DEFAULT = 100, BACKOFF_BASE_MS_MIN = 1, BACKOFF_BASE_MS_MAX = 3_600_000, backoff_base_ms
);
int_config!(
    /// `txu.backoff-max-ms`: longest delay between two runs of a deferred task.
    BACKOFF_MAX_MS, BACKOFF_MAX_MS_DEFAULT = 30_000, BACKOFF_MAX_MS_MIN = 1, BACKOFF_MAX_MS_MAX = 86_400_000, backoff_max_ms
);
int_config!(
    /// `txu.dead-max`: most tasks kept on the dead list; the oldest fall off (counted in INFO).
    DEAD_MAX, DEAD_MAX_DEFAULT = 10_000, DEAD_MAX_MIN = 0, DEAD_MAX_MAX = 10_000_000, dead_max
);

int_config!(
    /// `txu.checkpoint-every`: each time a transaction's undo log grows by this many entries,
    /// it is compacted to one entry per touched element holding the earliest pre-image. 1000
    /// keeps the compaction pass (linear in the log) amortized to a small constant per entry,
    /// while bounding the log of a long transaction to about 1000 entries plus what it touched.
    CHECKPOINT_EVERY, CHECKPOINT_EVERY_DEFAULT = 1000, CHECKPOINT_EVERY_MIN = 1, CHECKPOINT_EVERY_MAX = 100_000_000, checkpoint_every
);

pub fn tick_ms() -> i64 {
    TICK_MS
        .load(Ordering::Relaxed)
        .clamp(TICK_MS_MIN, TICK_MS_MAX)
}

pub fn max_queued() -> i64 {
    MAX_QUEUED.load(Ordering::Relaxed)
}

pub fn rollback_attempts() -> i64 {
    ROLLBACK_ATTEMPTS.load(Ordering::Relaxed).max(1)
}

/// Applies module arguments given at load time (`--loadmodule libtxu.so txu.max-queued 5000`):
/// pairs of a config name (with or without the `txu.` prefix) and a value. Anything else makes
/// loading fail with a message, rather than being silently ignored.
pub fn apply_module_args(args: &[&[u8]]) -> Result<(), String> {
    let mut it = args.chunks(2);
    for pair in &mut it {
        let [name, value] = pair else {
            return Err(format!(
                "module argument '{}' has no value",
                String::from_utf8_lossy(pair.first().copied().unwrap_or_default())
            ));
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let short = name.strip_prefix("txu.").unwrap_or(&name);
        let (target, min, max) = match short {
            "max-queued" => (&MAX_QUEUED, MAX_QUEUED_MIN, MAX_QUEUED_MAX),
            "rollback-attempts" => (
                &ROLLBACK_ATTEMPTS,
                ROLLBACK_ATTEMPTS_MIN,
                ROLLBACK_ATTEMPTS_MAX,
            ),
            "tick-ms" => (&TICK_MS, TICK_MS_MIN, TICK_MS_MAX),
            "tick-budget" => (&TICK_BUDGET, TICK_BUDGET_MIN, TICK_BUDGET_MAX),
            "max-attempts" => (&MAX_ATTEMPTS, MAX_ATTEMPTS_MIN, MAX_ATTEMPTS_MAX),
            "backoff-base-ms" => (&BACKOFF_BASE_MS, BACKOFF_BASE_MS_MIN, BACKOFF_BASE_MS_MAX),
            "backoff-max-ms" => (&BACKOFF_MAX_MS, BACKOFF_MAX_MS_MIN, BACKOFF_MAX_MS_MAX),
            "dead-max" => (&DEAD_MAX, DEAD_MAX_MIN, DEAD_MAX_MAX),
            "checkpoint-every" => (
                &CHECKPOINT_EVERY,
                CHECKPOINT_EVERY_MIN,
                CHECKPOINT_EVERY_MAX,
            ),
            _ => return Err(format!("unknown module argument '{name}'")),
        };
        let v = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("txu.{short} must be an integer between {min} and {max}"))?;
        target.store(v, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_args_accept_both_spellings_and_refuse_junk() {
        assert!(apply_module_args(&[b"txu.rollback-attempts", b"7"]).is_ok());
        assert_eq!(rollback_attempts(), 7);
        assert!(apply_module_args(&[b"ROLLBACK-ATTEMPTS", b"3"]).is_ok());
        assert_eq!(rollback_attempts(), 3);
        assert!(apply_module_args(&[b"rollback-attempts", b"0"]).is_err());
        assert!(apply_module_args(&[b"rollback-attempts"]).is_err());
        assert!(apply_module_args(&[b"nope", b"1"]).is_err());
        for name in [
            &b"txu.tick-ms"[..],
            b"tick-budget",
            b"txu.max-attempts",
            b"backoff-base-ms",
            b"backoff-max-ms",
            b"dead-max",
            b"checkpoint-every",
        ] {
            assert!(apply_module_args(&[name, b"7"]).is_ok(), "{name:?}");
        }
        assert!(apply_module_args(&[]).is_ok());
    }
}
