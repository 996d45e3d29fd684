//! How workloads are measured: the modes, interleaved rounds until the ratios settle, and the
//! pipelining throughput driver (connections spread over threads, a batch of transactions in
//! flight on each, every reply checked), with the server's own CPU time (`INFO cpu`) around
//! each batch.

use crate::client::{check_reply, connect, Commands, Expect};
use crate::report::{fmt_num, Outcome, Row};
use crate::resp::{esc, RawConn};
use crate::server::Server;
use crate::stats::rel_mad;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Each connection cycles through `depth * CYCLE_BATCHES` prebuilt transactions (distinct keys).
const CYCLE_BATCHES: usize = 8;

#[derive(Clone, Copy)]
pub struct Mode {
    pub name: &'static str,
    /// Length of one throughput measurement (one variant, one round).
    pub round: Duration,
    /// Discarded run of each variant before the first round.
    pub warmup: Duration,
    pub min_rounds: usize,
    pub max_rounds: usize,
    /// Stop once the per-round ratios' median absolute deviation / median is at most this.
    pub tolerance: f64,
    /// `rollback`: EXEC samples per variant and round.
    pub rollback_samples: usize,
    /// `big-key`: fields of the big hash.
    pub big_fields: usize,
    /// `big-key`: time per variant and round.
    pub latency_budget: Duration,
    /// `drain`: deferred tasks to drain.
    pub drain_tasks: usize,
    /// `drain`: how long the client's latency is measured on an empty server and while idle.
    pub idle_window: Duration,
    /// `recovery`: faults cleared.
    pub recovery_reps: usize,
    /// `compaction`: transactions retained and rolled back.
    pub compaction_reps: usize,
    /// `drain`: rounds (each on a new server).
    pub drain_rounds: usize,
}

pub const QUICK: Mode = Mode {
    name: "quick",
    round: Duration::from_millis(500),
    warmup: Duration::from_millis(200),
    min_rounds: 3,
    max_rounds: 5,
    tolerance: 0.03,
    rollback_samples: 3,
    big_fields: 100_000,
    latency_budget: Duration::from_millis(300),
    drain_tasks: 10_000,
    idle_window: Duration::from_millis(1500),
    recovery_reps: 5,
    compaction_reps: 2,
    drain_rounds: 1,
};

pub const FULL: Mode = Mode {
    name: "full",
    round: Duration::from_secs(1),
    warmup: Duration::from_millis(500),
    min_rounds: 7,
    max_rounds: 21,
    tolerance: 0.02,
    rollback_samples: 9,
    big_fields: 1_000_000,
    latency_budget: Duration::from_millis(1500),
    drain_tasks: 100_000,
    idle_window: Duration::from_secs(3),
    recovery_reps: 10,
    compaction_reps: 5,
    drain_rounds: 3,
};

/// What to run and how: the mode, and the client's shape.
pub struct Opts {
    pub mode: Mode,
    pub clients: usize,
    pub threads: usize,
    pub depth: usize,
    /// Run only workloads whose id contains one of these (all when empty).
    pub filters: Vec<String>,
}

/// What a workload gets.
pub struct Ctx<'a> {
    pub opts: &'a Opts,
    pub mode: Mode,
    /// The server with the module loaded.
    pub server: &'a Server,
    /// The module has `TXU._LOOP` (a `bench-loop` build): the ceiling variants run.
    pub ceiling: bool,
}

impl Ctx<'_> {
    /// A throughput variant: `--clients` connections to `server`, each with its own cycle of
    /// prebuilt transactions from `build(connection, transaction, out)`; `expect` lists the
    /// replies of one transaction.
    pub fn variant(
        &self,
        name: &'static str,
        server: &Server,
        expect: Vec<Expect>,
        build: impl Fn(usize, usize, &mut Vec<u8>),
    ) -> Result<TVariant, String> {
        let cycle = self.opts.depth * CYCLE_BATCHES;
        let mut plans = Vec::with_capacity(self.opts.clients);
        let mut conns = Vec::with_capacity(self.opts.clients);
        for c in 0..self.opts.clients {
            let mut bytes = Vec::new();
            let mut starts = Vec::with_capacity(cycle + 1);
            for t in 0..cycle {
                starts.push(bytes.len());
                build(c, t, &mut bytes);
            }
            starts.push(bytes.len());
            plans.push(Plan {
                bytes,
                starts,
                expect: expect.clone(),
            });
            conns.push(connect(server.port())?);
        }
        Ok(TVariant {
            name,
            plans,
            conns,
            ctl: connect(server.port())?,
        })
    }
}

/// The server's CPU time so far, user + system, all its threads (`INFO cpu`), in seconds.
pub fn server_cpu_secs(c: &mut RawConn) -> Result<f64, String> {
    let info = c.info("cpu")?;
    let field = |k: &str| {
        info.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("INFO cpu has no {k}"))
    };
    Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
}

/// Empties the server (`FLUSHALL`) and hands the freed memory back (`MEMORY PURGE`), so that
/// the next batch starts from the same state whichever variant ran before, and jemalloc's
/// background purging of the last batch's memory is not charged to it.
pub fn empty_server(c: &mut RawConn) -> Result<(), String> {
    check_reply(&Expect::ok(), &c.call(&[b"FLUSHALL"])?, "FLUSHALL")?;
    // Not every allocator has it (an error is fine): only the state matters.
    c.call(&[b"MEMORY", b"PURGE"])?;
    Ok(())
}

/// Runs `run(variant)` for every variant, interleaved, round after round; `run` returns the
/// variant's metrics for one round (the first one decides when to stop; `units` names them
/// in the progress lines). Even rounds run the variants in reverse order (A B, B A, A B, ...),
/// so a steady drift of the machine's speed does not always favour the same variant. Returns
/// `[variant][round][metric]`.
pub fn interleave(
    ctx: &Ctx,
    id: &str,
    names: &[&str],
    units: &[&str],
    mut run: impl FnMut(usize) -> Result<Vec<f64>, String>,
) -> Result<Vec<Vec<Vec<f64>>>, String> {
    let mut out: Vec<Vec<Vec<f64>>> = vec![Vec::new(); names.len()];
    for round in 1..=ctx.mode.max_rounds {
        let mut this: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        for i in 0..names.len() {
            let v = if round % 2 == 0 {
                names.len() - 1 - i
            } else {
                i
            };
            this[v] = run(v)?;
        }
        let mut line = format!("  {id} round {round}:");
        for ((name, metrics), all) in names.iter().zip(this).zip(out.iter_mut()) {
            let _ = write!(line, "  {name}");
            for (m, unit) in metrics.iter().zip(units) {
                let _ = write!(line, " {} {unit}", fmt_num(*m));
            }
            all.push(metrics);
        }
        eprintln!("{line}");
        if round >= ctx.mode.min_rounds && converged(&out, ctx.mode.tolerance) {
            break;
        }
    }
    Ok(out)
}

/// True when every variant's per-round ratio to variant 0 (first metric) is stable.
pub fn converged(out: &[Vec<Vec<f64>>], tolerance: f64) -> bool {
    out.iter().skip(1).all(|v| {
        let ratios: Vec<f64> = v.iter().zip(&out[0]).map(|(a, b)| a[0] / b[0]).collect();
        rel_mad(&ratios) <= tolerance
    })
}

/// The first metric of each variant, per round.
pub fn firsts(per: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    per.iter()
        .map(|v| v.iter().map(|m| m[0]).collect())
        .collect()
}

/// A throughput variant: connections and their prebuilt transactions.
pub struct TVariant {
    name: &'static str,
    plans: Vec<Plan>,
    conns: Vec<RawConn>,
    /// One more connection to the variant's server: `FLUSHALL` and `INFO cpu` around batches.
    ctl: RawConn,
}

/// One connection's cycle of prebuilt transactions.
pub struct Plan {
    bytes: Vec<u8>,
    /// Byte offset where each transaction starts, plus the end.
    starts: Vec<usize>,
    /// The replies of one transaction.
    expect: Vec<Expect>,
}

/// What the throughput rounds measured, `[variant][round]`.
pub struct Measured {
    pub rounds: usize,
    /// Server CPU time per transaction, microseconds.
    pub cpu: Vec<Vec<f64>>,
    /// Transactions per second.
    pub tput: Vec<Vec<f64>>,
}

/// Warms up, then measures every variant's server CPU per transaction and tx/s in interleaved
/// rounds, each batch on an emptied server. The CPU ratios decide when to stop.
pub fn measure_throughput(
    ctx: &Ctx,
    id: &str,
    variants: &mut [TVariant],
) -> Result<Measured, String> {
    let (depth, threads) = (ctx.opts.depth, ctx.opts.threads);
    for v in variants.iter_mut() {
        throughput(v, depth, threads, ctx.mode.warmup)?;
    }
    let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
    let per = interleave(ctx, id, &names, &["cpu-us/tx", "tx/s"], |i| {
        let b = throughput(&mut variants[i], depth, threads, ctx.mode.round)?;
        Ok(vec![b.cpu_us_per_tx, b.tx_per_s])
    })?;
    let pick = |m: usize| -> Vec<Vec<f64>> {
        per.iter()
            .map(|v| v.iter().map(|r| r[m]).collect())
            .collect()
    };
    Ok(Measured {
        rounds: per[0].len(),
        cpu: pick(0),
        tput: pick(1),
    })
}

/// [`measure_throughput`], and the workload's [`Outcome`] with one row per variant (`unit`,
/// server CPU per transaction, ratios to the first variant) titled `<what>, <--clients>
/// clients`. Also returns what was measured, for rows and targets of the workload's own.
pub fn throughput_outcome(
    ctx: &Ctx,
    id: &'static str,
    what: &str,
    unit: &'static str,
    variants: &mut [TVariant],
) -> Result<(Outcome, Measured), String> {
    let m = measure_throughput(ctx, id, variants)?;
    let mut out = Outcome::new(
        id,
        format!("{what}, {} clients", ctx.opts.clients),
        m.rounds,
    );
    for (i, v) in variants.iter().enumerate() {
        out.rows.push(Row::throughput(
            v.name,
            unit,
            (&m.tput[i], &m.cpu[i]),
            (&m.tput[0], &m.cpu[0]),
        ));
    }
    Ok((out, m))
}

/// What one batch of a throughput variant measured.
pub struct Batch {
    pub tx_per_s: f64,
    /// The server's CPU time (user + system, `INFO cpu`) over the batch / transactions.
    pub cpu_us_per_tx: f64,
}

/// One batch of a variant over `duration`, on an emptied server: completed transactions per
/// second, and the server's CPU time per transaction.
pub fn throughput(
    v: &mut TVariant,
    depth: usize,
    threads: usize,
    duration: Duration,
) -> Result<Batch, String> {
    empty_server(&mut v.ctl)?;
    let cpu_before = server_cpu_secs(&mut v.ctl)?;
    let per_thread = v.conns.len().div_ceil(threads.max(1)).max(1);
    let start = Instant::now();
    let deadline = start + duration;
    let results: Vec<Result<Driven, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = v
            .conns
            .chunks_mut(per_thread)
            .zip(v.plans.chunks(per_thread))
            .map(|(conns, plans)| s.spawn(move || drive(conns, plans, depth, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("client thread panicked".into()))
            })
            .collect()
    });
    let cpu_after = server_cpu_secs(&mut v.ctl)?;
    let (mut done, mut errors, mut first_error, mut end) = (0u64, 0u64, None, start);
    for r in results {
        let d = r?;
        done += d.done;
        errors += d.errors;
        first_error = first_error.or(d.first_error);
        end = end.max(d.end);
    }
    if errors > 0 {
        return Err(format!(
            "{}: {errors} unexpected replies in {done} transactions; first: {}",
            v.name,
            first_error.unwrap_or_default()
        ));
    }
    Ok(Batch {
        tx_per_s: done as f64 / (end - start).as_secs_f64(),
        cpu_us_per_tx: (cpu_after - cpu_before) * 1e6 / done.max(1) as f64,
    })
}

pub struct Driven {
    done: u64,
    errors: u64,
    first_error: Option<String>,
    end: Instant,
}

/// One client thread: sends a batch of `depth` transactions on each connection, then walks the
/// connections round-robin, reading and checking a batch's replies and sending the next batch
/// until `deadline`.
pub fn drive(
    conns: &mut [RawConn],
    plans: &[Plan],
    depth: usize,
    deadline: Instant,
) -> Result<Driven, String> {
    struct Lane<'a> {
        conn: &'a mut RawConn,
        plan: &'a Plan,
        next: usize,
        active: bool,
    }
    let send = |lane: &mut Lane| -> Result<(), String> {
        let cycle = lane.plan.starts.len() - 1;
        let first = lane.next % cycle;
        let last = (first + depth).min(cycle);
        let bytes = &lane.plan.bytes[lane.plan.starts[first]..lane.plan.starts[last]];
        lane.next = last % cycle;
        lane.conn.write(bytes)
    };
    let mut lanes: Vec<Lane> = conns
        .iter_mut()
        .zip(plans)
        .map(|(conn, plan)| Lane {
            conn,
            plan,
            next: 0,
            active: true,
        })
        .collect();
    let mut out = Driven {
        done: 0,
        errors: 0,
        first_error: None,
        end: Instant::now(),
    };
    for lane in lanes.iter_mut() {
        send(lane)?;
    }
    let mut active = lanes.len();
    while active > 0 {
        for lane in lanes.iter_mut().filter(|l| l.active) {
            let per_tx = lane.plan.expect.len();
            for j in 0..depth * per_tx {
                let r = lane.conn.next_reply()?;
                let expect = &lane.plan.expect[j % per_tx];
                let reply = lane.conn.reply(r);
                if !expect.matches(reply) {
                    out.errors += 1;
                    if out.first_error.is_none() {
                        out.first_error = Some(format!(
                            "reply {} of a transaction: expected {}, got {:?}",
                            j % per_tx + 1,
                            expect.describe(),
                            esc(reply)
                        ));
                    }
                }
            }
            out.done += depth as u64;
            if Instant::now() < deadline {
                send(lane)?;
            } else {
                lane.active = false;
                active -= 1;
            }
        }
    }
    out.end = Instant::now();
    Ok(out)
}
