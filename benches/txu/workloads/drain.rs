//! Deferred tasks drained by the timer: tick time, tasks per second, and a client's `PING` latency
//! on an empty server, with the tasks pending, and while they drain.

use super::push_txu_exec;
use crate::client::{check_reply, connect, info_u64, Commands, Expect};
use crate::measure::Ctx;
use crate::report::{Outcome, Row};
use crate::resp::{encode_command, esc, RawConn};
use crate::server::Server;
use crate::stats::{median, paired_ratio, percentile};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `N` deferred tasks drained by the timer, in rounds, each on a server of
/// its own (the largest tick in `INFO txu` cannot be reset): a client's `PING` latency on an
/// empty server, then with `N` tasks pending behind `NOREPLICAS` ("idle": the timer keeps
/// retrying them and failing), then while the timer drains them once the fault is cleared.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let n = ctx.mode.drain_tasks;
    let rounds = ctx.mode.drain_rounds;
    let mut all: Vec<DrainRound> = Vec::new();
    let mut config = String::new();
    for round in 1..=rounds {
        let r = drain_round(n, ctx.mode.idle_window, &mut config)?;
        eprintln!(
            "  drain round {round}/{rounds}: {:.1} s to <= 1% pending, tick max {} us ({} us of \
             CPU), PING p99 idle {:.0} us, drain {:.0} us; a fixed job's CPU time meanwhile: \
             p50 {:.0} us, max {:.0} us, {} of {} over 1 ms",
            r.t99,
            r.tick_max_drain,
            r.tick_max_cpu_drain.map_or("?".into(), |v| v.to_string()),
            r.idle.p99,
            r.drain.p99,
            r.noise.p50,
            r.noise.max,
            r.noise_over_1ms,
            r.noise.n
        );
        all.push(r);
    }
    let col = |f: &dyn Fn(&DrainRound) -> f64| all.iter().map(f).collect::<Vec<f64>>();
    let mut out = Outcome::new(
        "drain",
        format!("drain {}k deferred tasks", n / 1000),
        rounds,
    );
    let row = |variant: &str, per_round: Vec<f64>, unit: &'static str, ratio: Option<f64>| Row {
        variant: variant.into(),
        value: Some(median(&per_round)),
        unit,
        ratio,
        per_round,
        ..Row::default()
    };
    type Column<'a> = (&'a str, &'a dyn Fn(&DrainRound) -> f64, &'static str);
    let before_ticks: [Column; 6] = [
        ("defer (pipelined)", &|r| n as f64 / r.create_secs, "tx/s"),
        ("memory per pending task", &|r| r.memory_per_task, "B"),
        ("memory per task, drained", &|r| r.memory_after_drain, "B"),
        ("drain to <=1% pending", &|r| r.t99, "s"),
        ("drain to 0 pending", &|r| r.t100, "s"),
        (
            "drain rate (to 99%)",
            &|r| 0.99 * n as f64 / r.t99,
            "tasks/s",
        ),
    ];
    for (variant, f, unit) in before_ticks {
        out.rows.push(row(variant, col(f), unit, None));
    }
    // The target is about the largest tick: the maximum over rounds, not the median.
    let tick_max = col(&|r| r.tick_max_drain as f64);
    let largest = tick_max.iter().copied().fold(0.0, f64::max);
    let mut max_row = row("tick max, drain", tick_max, "us", None);
    max_row.value = Some(largest);
    out.rows.push(max_row);
    // The same tick's work: the server thread's CPU time (the wall clock above also counts
    // time the OS ran other threads while the server was in a tick).
    let cpu_max: Option<Vec<f64>> = all
        .iter()
        .map(|r| r.tick_max_cpu_drain.map(|v| v as f64))
        .collect();
    let largest_cpu = cpu_max
        .as_ref()
        .map(|v| v.iter().copied().fold(0.0, f64::max));
    if let (Some(per_round), Some(cpu)) = (cpu_max, largest_cpu) {
        let mut cpu_row = row("tick max cpu, drain", per_round, "us", None);
        cpu_row.value = Some(cpu);
        out.rows.push(cpu_row);
    }
    // The machine's noise on the same clock, in the same window.
    let noise_max = col(&|r| r.noise.max);
    let mut noise_row = row("fixed job cpu max, drain", noise_max.clone(), "us", None);
    noise_row.value = Some(noise_max.iter().copied().fold(0.0, f64::max));
    out.rows.push(noise_row);
    out.rows.push(row(
        "fixed job cpu p50, drain",
        col(&|r| r.noise.p50),
        "us",
        None,
    ));
    let mut over_row = row(
        "fixed jobs > 1 ms, drain",
        col(&|r| r.noise_over_1ms as f64),
        "",
        None,
    );
    over_row.value = Some(all.iter().map(|r| r.noise_over_1ms as f64).sum());
    out.rows.push(over_row);
    let ticks: [Column; 4] = [
        ("tick max, fault on", &|r| r.tick_max_fault as f64, "us"),
        ("tick p50 drain (smp)", &|r| r.drain_ticks.p50, "us"),
        ("tick p50 fault-on (smp)", &|r| r.idle_ticks.p50, "us"),
        ("ticks > 1 ms (smp)", &|r| r.drain_ticks_over_1ms, "%"),
    ];
    for (variant, f, unit) in ticks {
        out.rows.push(row(variant, col(f), unit, None));
    }
    type Pick = fn(&Latency) -> f64;
    let stats: [(&str, Pick); 3] = [("p50", |l| l.p50), ("p99", |l| l.p99), ("max", |l| l.max)];
    type Phase = fn(&DrainRound) -> &Latency;
    let phases: [(&str, Phase); 3] = [
        ("empty", |r| &r.empty),
        ("fault-on", |r| &r.idle),
        ("drain", |r| &r.drain),
    ];
    for (label, phase) in phases {
        for (stat, pick) in stats {
            let v = col(&|r| pick(phase(r)));
            let base = col(&|r| pick(&r.empty));
            let ratio = paired_ratio(&v, &base);
            out.rows
                .push(row(&format!("PING {label} {stat}"), v, "us", Some(ratio)));
        }
    }
    let p99_idle = paired_ratio(&col(&|r| r.drain.p99), &col(&|r| r.idle.p99));
    let p99_empty = paired_ratio(&col(&|r| r.drain.p99), &col(&|r| r.empty.p99));
    out.rows.push(Row::ratio("p99 drain/fault-on", p99_idle));
    out.target("drain/tick", largest_cpu.unwrap_or(largest) / 1000.0);
    out.target("drain/tick-wall", largest / 1000.0);
    out.target("drain/ping", p99_empty);
    let pings = |f: &dyn Fn(&DrainRound) -> usize| all.iter().map(f).sum::<usize>();
    let samples = |f: &dyn Fn(&DrainRound) -> usize| all.iter().map(f).sum::<usize>();
    out.notes.push(format!(
        "config: {config}; per round a new server, {n} tasks (TXU.BEGIN RETRY, SET task:<i> x) \
         deferred by min-replicas-to-write 1, drained after setting it to 0; memory per pending \
         task = used_memory growth while deferring / {n}; drained = growth from before \
         deferring to after the drain / {n} (includes the {n} keys the tasks wrote)"
    ));
    out.notes.push(format!(
        "PING one at a time on a second connection, {PING_GAP_US} us apart on average (random \
         0..2x gaps, so pings land at random moments): empty = no task ({} pings in {:.1} s per \
         round); fault-on = {n} pending and the fault still on: the target's \"idle\", but the \
         timer keeps retrying them, 100 per tick, and failing ({} pings); drain = from the fault \
         clearing until <= 1% pending ({} pings); ratio = / empty (median over rounds of the \
         per-round ratio); values: median over rounds, except tick max, drain: the largest of \
         all rounds",
        pings(&|r| r.empty.n),
        ctx.mode.idle_window.as_secs_f64(),
        pings(&|r| r.idle.n),
        pings(&|r| r.drain.n)
    ));
    let exact = all.iter().all(|r| r.tick_max_drain > r.tick_max_fault);
    out.notes.push(format!(
        "INFO txu polled every 50 ms on a third connection (drain times +-50 ms); tick = \
         txu_tick_last_us sampled ({} samples during drains, {} with the fault on); tick max, \
         drain = txu_tick_max_us after the drain{}; tick p50 drain / 100 tasks = {:.1} us per \
         task",
        samples(&|r| r.drain_ticks.n),
        samples(&|r| r.idle_ticks.n),
        if exact {
            ""
        } else {
            " (in a round where no drain tick beat the fault-on maximum, an upper bound)"
        },
        median(&col(&|r| r.drain_ticks.p50)) / 100.0
    ));
    let tail = median(&col(&|r| r.t100 - r.t99));
    if tail > 0.2 {
        out.notes.push(format!(
            "the last 1% took {tail:.1} s (median): tasks retried while the fault was on wait \
             out their backoff"
        ));
    }
    out.notes.push(format!(
        "fixed job = the same ~20 us of arithmetic, {NOISE_GAP_US} us apart, on a bench thread \
         during the drain, timed on that thread's CPU clock as the server times its ticks: the \
         machine's own noise on that clock ({} jobs; max and count over 1 ms: all rounds). A \
         virtual CPU taken away by the hypervisor counts as CPU time of the thread it was \
         running, so the longest tick is a tick's work or such a pause, whichever is longer",
        all.iter().map(|r| r.noise.n).sum::<usize>()
    ));
    out.notes.push(
        "targets table: longest tick = tick max, drain; PING p99 during drain vs idle = drain / \
         empty (vs fault-on, where the timer already retries the tasks, see p99 drain/fault-on)"
            .into(),
    );
    Ok(out)
}

/// What one round of [`w_drain`] measured.
struct DrainRound {
    create_secs: f64,
    /// `used_memory` growth per pending task (the task list and the keys' absence).
    memory_per_task: f64,
    /// `used_memory` growth per task once drained (the keys written, and whatever stayed).
    memory_after_drain: f64,
    /// Seconds from the fault clearing to <= 1% / 0 pending.
    t99: f64,
    t100: f64,
    tick_max_fault: u64,
    tick_max_drain: u64,
    tick_max_cpu_drain: Option<u64>,
    idle_ticks: Latency,
    drain_ticks: Latency,
    /// Percent of the sampled drain ticks that took over 1 ms.
    drain_ticks_over_1ms: f64,
    /// The CPU time of [`fixed_job`] runs during the drain.
    noise: Latency,
    /// How many of them took over 1 ms.
    noise_over_1ms: usize,
    empty: Latency,
    idle: Latency,
    drain: Latency,
}

/// One round of [`w_drain`] on a new server; `config` gets the settings used.
fn drain_round(n: usize, window: Duration, config: &mut String) -> Result<DrainRound, String> {
    const TICK_MS: &str = "10";
    let server = Server::start();
    let port = server.port();
    let mut ctl = connect(port)?;
    let mut pinger = connect(port)?;
    let mut poller = connect(port)?;
    ctl.config_set("txu.tick-ms", TICK_MS)?;
    *config = [
        "txu.tick-ms",
        "txu.tick-budget",
        "txu.backoff-base-ms",
        "txu.max-attempts",
    ]
    .iter()
    .map(|name| Ok(format!("{name} {}", ctl.config_get(name)?)))
    .collect::<Result<Vec<String>, String>>()?
    .join(", ");

    // 1. An empty server.
    let empty = observe(&mut pinger, &mut poller, Instant::now(), Some(window), None)?;

    // 2. N deferred tasks, pipelined.
    ctl.config_set("min-replicas-to-write", "1")?;
    let memory_before = info_u64(&ctl.info("memory")?, "used_memory")?;
    let created = Instant::now();
    const BATCH: usize = 1000;
    let deferred = Expect::ErrorPrefix(b"-DEFERRED ".to_vec());
    for first in (0..n).step_by(BATCH) {
        let last = (first + BATCH).min(n);
        let mut req = Vec::new();
        for i in first..last {
            let key = format!("task:{i}").into_bytes();
            push_txu_exec(&mut req, &[b"RETRY"], &[vec![&b"SET"[..], &key, b"x"]]);
        }
        ctl.write(&req)?;
        for i in first..last {
            let what = format!("transaction {i}");
            for e in [&Expect::Bulk, &Expect::queued(), &deferred] {
                let r = ctl.next_reply()?;
                check_reply(e, ctl.reply(r), &what)?;
            }
        }
    }
    let create_secs = created.elapsed().as_secs_f64();
    let memory_per_task =
        (info_u64(&ctl.info("memory")?, "used_memory")? as f64 - memory_before as f64) / n as f64;
    let info = ctl.info("txu")?;
    let pending = info_u64(&info, "txu_tasks_pending")?;
    if pending != n as u64 {
        return Err(format!(
            "{n} transactions deferred, txu_tasks_pending is {pending}"
        ));
    }

    // 3. Idle: N pending, the fault still on.
    let idle = observe(&mut pinger, &mut poller, Instant::now(), Some(window), None)?;
    let before = ctl.info("txu")?;
    let tick_max_fault = info_u64(&before, "txu_tick_max_us")?;

    // 4. The fault clears; the timer drains the list.
    let timeout = Duration::from_secs(120) + Duration::from_millis(n as u64);
    let t0 = Instant::now();
    ctl.config_set("min-replicas-to-write", "0")?;
    let drain = observe(&mut pinger, &mut poller, t0, None, Some(timeout))?;
    let after = ctl.info("txu")?;
    let tick_max_drain = info_u64(&after, "txu_tick_max_us")?;
    // Thread CPU time of the longest tick (builds before it have no such field).
    let tick_max_cpu_drain = info_u64(&after, "txu_tick_max_cpu_us").ok();
    let succeeded =
        info_u64(&after, "txu_retries_succeeded")? - info_u64(&before, "txu_retries_succeeded")?;
    let dead = info_u64(&after, "txu_tasks_dead")?;
    if succeeded != n as u64 || dead != 0 {
        return Err(format!(
            "drain: {succeeded} of {n} tasks succeeded, {dead} dead"
        ));
    }
    for i in [0, n / 2, n - 1] {
        let got = ctl.call(&[b"GET", format!("task:{i}").as_bytes()])?;
        if got != b"$1\r\nx\r\n" {
            return Err(format!(
                "after the drain GET task:{i} returned {:?}",
                esc(&got)
            ));
        }
    }
    let memory_after_drain =
        (info_u64(&ctl.info("memory")?, "used_memory")? as f64 - memory_before as f64) / n as f64;
    drop(server);

    // The drain ended at the first poll that saw 0 pending; 99% at the first one at <= 1%.
    let t100 = drain.polls.last().map(|p| p.at).unwrap_or(f64::NAN);
    let t99 = drain
        .polls
        .iter()
        .find(|p| p.pending * 100 <= n as u64)
        .map(|p| p.at)
        .unwrap_or(t100);
    let ticks = |polls: &[Poll], until: f64| {
        polls
            .iter()
            .filter(|p| p.at <= until && p.tick_last_us > 0)
            .map(|p| p.tick_last_us as f64)
            .collect::<Vec<f64>>()
    };
    let drain_ticks = ticks(&drain.polls, t99);
    let over = drain_ticks.iter().filter(|&&t| t > 1000.0).count();
    Ok(DrainRound {
        create_secs,
        memory_per_task,
        memory_after_drain,
        t99,
        t100,
        tick_max_fault,
        tick_max_drain,
        tick_max_cpu_drain,
        idle_ticks: Latency::of(ticks(&idle.polls, f64::INFINITY).into_iter()),
        drain_ticks_over_1ms: 100.0 * over as f64 / drain_ticks.len().max(1) as f64,
        drain_ticks: Latency::of(drain_ticks.into_iter()),
        empty: Latency::of(empty.pings.iter().map(|p| p.1)),
        idle: Latency::of(idle.pings.iter().map(|p| p.1)),
        drain: Latency::of(drain.pings.iter().filter(|p| p.0 <= t99).map(|p| p.1)),
        noise_over_1ms: drain.noise.iter().filter(|&&us| us > 1000.0).count(),
        noise: Latency::of(drain.noise.iter().copied()),
    })
}

/// Mean pause between one PING's send and the next in [`observe`] (uniformly random in
/// 0..=2x): requests arrive at random moments, as a client's would, so the share of them that
/// lands in a timer tick is the share of time the server spends in ticks. (Back to back, one
/// PING at a time, only the one PING per tick that got stuck sees it: 1 in ~400 at 10 ms ticks,
/// invisible at p99.)
const PING_GAP_US: u64 = 500;

/// SplitMix64, for the PING gaps.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One `INFO txu` poll of [`observe`]: seconds since its start, pending tasks, last tick.
struct Poll {
    at: f64,
    pending: u64,
    tick_last_us: u64,
}

/// What [`observe`] saw: `(seconds since start when sent, latency in us)` of every PING, and the
/// polls.
struct Observed {
    pings: Vec<(f64, f64)>,
    polls: Vec<Poll>,
    /// The CPU time (us) of each run of [`fixed_job`] meanwhile.
    noise: Vec<f64>,
}

/// `pinger` sends `PING` one at a time, [`PING_GAP_US`] apart on average, and times each reply
/// while `poller` reads `INFO txu`
/// every 50 ms; both stop after `window`, or (with `drain_timeout`) at the first poll that sees
/// no pending task. Times are measured from `t0`.
fn observe(
    pinger: &mut RawConn,
    poller: &mut RawConn,
    t0: Instant,
    window: Option<Duration>,
    drain_timeout: Option<Duration>,
) -> Result<Observed, String> {
    let stop = AtomicBool::new(false);
    /// Stops the pinger however the poller ends.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let (pings, polls, noise) = std::thread::scope(|s| {
        let stop = &stop;
        // The machine's own noise, measured alongside: the same work every time, timed on
        // this thread's CPU clock, as the server times its ticks.
        let probing = s.spawn(move || {
            let mut jobs = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(us) = fixed_job() {
                    jobs.push(us);
                }
                std::thread::sleep(Duration::from_micros(NOISE_GAP_US));
            }
            jobs
        });
        let polling = s.spawn(move || -> Result<Vec<Poll>, String> {
            let _stop = StopOnDrop(stop);
            let mut polls = Vec::new();
            loop {
                let info = poller.info("txu")?;
                let poll = Poll {
                    at: t0.elapsed().as_secs_f64(),
                    pending: info_u64(&info, "txu_tasks_pending")?,
                    tick_last_us: info_u64(&info, "txu_tick_last_us")?,
                };
                let drained = poll.pending == 0;
                polls.push(poll);
                if let Some(limit) = drain_timeout {
                    if drained {
                        return Ok(polls);
                    }
                    if t0.elapsed() > limit {
                        return Err(format!(
                            "{} tasks still pending after {limit:?}",
                            polls.last().map(|p| p.pending).unwrap_or(0)
                        ));
                    }
                } else if stop.load(Ordering::Relaxed) {
                    return Ok(polls);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let ping = encode_command(&[b"PING"]);
        let mut pings = Vec::new();
        let mut gap = SplitMix(t0.elapsed().as_nanos() as u64);
        let pinged = (|| -> Result<(), String> {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) && window.is_none_or(|w| t0.elapsed() < w) {
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let t = Instant::now();
                next = t + Duration::from_micros(gap.next() % (2 * PING_GAP_US + 1));
                pinger.write(&ping)?;
                let r = pinger.next_reply()?;
                let us = t.elapsed().as_secs_f64() * 1e6;
                check_reply(
                    &Expect::Exact(b"+PONG\r\n".to_vec()),
                    pinger.reply(r),
                    "PING",
                )?;
                pings.push(((t - t0).as_secs_f64(), us));
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let polls = polling
            .join()
            .unwrap_or_else(|_| Err("INFO poller panicked".into()));
        let noise = probing.join().unwrap_or_default();
        (pinged.map(|()| pings), polls, noise)
    });
    Ok(Observed {
        pings: pings?,
        polls: polls?,
        noise,
    })
}

/// Pause between two runs of [`fixed_job`] (with the sleep's own overshoot, the probe takes
/// about a sixth of one CPU: often enough to meet the machine's rare pauses).
const NOISE_GAP_US: u64 = 100;

/// A fixed amount of arithmetic (~20 us on the machine this was written on), and the CPU time
/// this thread spent on it, in us: any run that takes much longer than the usual was slowed
/// by the machine (the hypervisor taking the virtual CPU away is counted as the thread's CPU
/// time), not by its work. `None` where the thread CPU clock is not available.
fn fixed_job() -> Option<f64> {
    let before = thread_cpu_ns()?;
    let mut x: u64 = 0;
    for i in 0..40_000u64 {
        x = std::hint::black_box(x.wrapping_add(i.wrapping_mul(i)));
    }
    std::hint::black_box(x);
    Some(thread_cpu_ns()?.saturating_sub(before) as f64 / 1000.0)
}

/// `CLOCK_THREAD_CPUTIME_ID` in ns (Linux, 64-bit).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec (two 64-bit fields on 64-bit Linux) to a
    // pointer we own; 3 is CLOCK_THREAD_CPUTIME_ID.
    if unsafe { clock_gettime(3, &mut ts) } != 0 {
        return None;
    }
    u64::try_from(
        ts.tv_sec
            .checked_mul(1_000_000_000)?
            .checked_add(ts.tv_nsec)?,
    )
    .ok()
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// p50 / p99 / max of latency samples.
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
    n: usize,
}

impl Latency {
    fn of(samples: impl Iterator<Item = f64>) -> Latency {
        let mut v: Vec<f64> = samples.collect();
        v.sort_by(f64::total_cmp);
        Latency {
            p50: percentile(&v, 50.0),
            p99: percentile(&v, 99.0),
            max: v.last().copied().unwrap_or(f64::NAN),
            n: v.len(),
        }
    }
}
