//! Module configs (`CONFIG SET txu.<name>`, `--loadmodule libtxu.so txu.<name> <value>`): each
//! declared once here, with its default, bounds and the reason for them; `lib.rs` registers
//! every entry of `ALL`.

use std::sync::atomic::{AtomicI64, Ordering};

/// An integer module config.
pub struct IntConfig {
    /// The name without the module prefix (`CONFIG GET txu.<name>`).
    pub name: &'static str,
    pub value: AtomicI64,
    pub default: i64,
    pub min: i64,
    pub max: i64,
}

impl IntConfig {
    const fn new(name: &'static str, default: i64, min: i64, max: i64) -> Self {
        IntConfig {
            name,
            value: AtomicI64::new(default),
            default,
            min,
            max,
        }
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed).clamp(self.min, self.max)
    }
}

/// `txu.max-queued`: most commands one transaction may queue. MULTI has no limit, but an
/// unbounded queue lets one connection hold unbounded memory; 10,000 is far above any
/// transaction that should run atomically on a single-threaded server.
pub static MAX_QUEUED: IntConfig = IntConfig::new("max-queued", 10_000, 1, 10_000_000);
/// `txu.rollback-attempts`: how often one compensating write is tried before the rollback is
/// reported incomplete (and left pending).
pub static ROLLBACK_ATTEMPTS: IntConfig = IntConfig::new("rollback-attempts", 3, 1, 100);
/// `txu.tick-ms`: period of the timer that finishes pending rollbacks and retries deferred
/// transactions.
pub static TICK_MS: IntConfig = IntConfig::new("tick-ms", 100, 1, 60_000);
/// `txu.tick-budget`: most deferred tasks one timer tick runs.
pub static TICK_BUDGET: IntConfig = IntConfig::new("tick-budget", 100, 1, 100_000);
/// `txu.tick-time-us`: most time one timer tick (or one of its continuation slices) spends
/// running deferred tasks, measured on a monotonic clock; what is left of the tick's
/// `txu.tick-budget` runs in slices at the next turns of the event loop, after the clients
/// waiting meanwhile are served. A client's command waits for at most one slice (plus one
/// task), so this bounds the latency the timer adds; `txu.tick-budget` per `txu.tick-ms`
/// bounds the share of the server's time it takes. 20 µs: one to three short tasks per slice;
/// measured on 10,000 failing tasks (`redis-benchmark -c 1` PING), p99 0.15 ms against 0.19 ms
/// at 50 µs for the same server CPU per task; at 10 µs the loop turns cost more CPU than they save.
pub static TICK_TIME_US: IntConfig = IntConfig::new("tick-time-us", 20, 1, 1_000_000);
/// `txu.max-attempts`: retries the timer makes of a deferred transaction before it moves to
/// the dead list, unless `TXU.BEGIN RETRY <n>` says otherwise.
pub static MAX_ATTEMPTS: IntConfig = IntConfig::new("max-attempts", 10, 1, 1_000_000);
/// `txu.backoff-base-ms`: delay before the first retry of a deferred task; it doubles with
/// each further attempt (with jitter), up to `txu.backoff-max-ms`.
pub static BACKOFF_BASE_MS: IntConfig = IntConfig::new("backoff-base-ms", 100, 1, 3_600_000);
/// `txu.backoff-max-ms`: longest delay between two runs of a deferred task.
pub static BACKOFF_MAX_MS: IntConfig = IntConfig::new("backoff-max-ms", 30_000, 1, 86_400_000);
/// `txu.dead-max`: most tasks kept on the dead list; the oldest fall off (counted in INFO).
pub static DEAD_MAX: IntConfig = IntConfig::new("dead-max", 10_000, 0, 10_000_000);
/// `txu.checkpoint-every`: each time a transaction's undo log grows by this many entries, it
/// is compacted to one entry per touched element holding the earliest pre-image. 1000 keeps
/// the compaction pass (linear in the log) amortized to a small constant per entry, while
/// bounding the log of a long transaction to about 1000 entries plus what it touched.
pub static CHECKPOINT_EVERY: IntConfig = IntConfig::new("checkpoint-every", 1000, 1, 100_000_000);

/// Every config, for registration and module arguments.
pub static ALL: [&IntConfig; 10] = [
    &MAX_QUEUED,
    &ROLLBACK_ATTEMPTS,
    &TICK_MS,
    &TICK_BUDGET,
    &TICK_TIME_US,
    &MAX_ATTEMPTS,
    &BACKOFF_BASE_MS,
    &BACKOFF_MAX_MS,
    &DEAD_MAX,
    &CHECKPOINT_EVERY,
];

pub fn max_queued() -> i64 {
    MAX_QUEUED.get()
}
pub fn rollback_attempts() -> i64 {
    ROLLBACK_ATTEMPTS.get()
}
pub fn tick_ms() -> i64 {
    TICK_MS.get()
}
pub fn tick_budget() -> i64 {
    TICK_BUDGET.get()
}
/// `txu.tick-time-us` as a duration.
pub fn tick_time() -> std::time::Duration {
    std::time::Duration::from_micros(u64::try_from(TICK_TIME_US.get()).unwrap_or(1))
}
pub fn max_attempts() -> i64 {
    MAX_ATTEMPTS.get()
}
pub fn backoff_base_ms() -> i64 {
    BACKOFF_BASE_MS.get()
}
pub fn backoff_max_ms() -> i64 {
    BACKOFF_MAX_MS.get()
}
pub fn dead_max() -> i64 {
    DEAD_MAX.get()
}
pub fn checkpoint_every() -> i64 {
    CHECKPOINT_EVERY.get()
}

/// Applies module arguments given at load time (`--loadmodule libtxu.so txu.max-queued 5000`):
/// pairs of a config name (with or without the `txu.` prefix) and a value. Anything else makes
/// loading fail with a message, rather than being silently ignored.
pub fn apply_module_args(args: &[&[u8]]) -> Result<(), String> {
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(format!(
                "module argument '{}' has no value",
                String::from_utf8_lossy(pair.first().copied().unwrap_or_default())
            ));
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let short = name.strip_prefix("txu.").unwrap_or(&name);
        let c = ALL
            .iter()
            .find(|c| c.name == short)
            .ok_or_else(|| format!("unknown module argument '{name}'"))?;
        let v = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| (c.min..=c.max).contains(v))
            .ok_or_else(|| {
                format!(
                    "txu.{short} must be an integer between {} and {}",
                    c.min, c.max
                )
            })?;
        c.value.store(v, Ordering::Relaxed);
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
            b"txu.tick-time-us",
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
