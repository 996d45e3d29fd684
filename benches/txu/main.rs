//! `make bench` (`cargo bench --bench txu -- [--quick] [options] [workload ...]`; `--help` lists
//! the options).
//!
//! Starts its own server with the module loaded (persistence off, free port: the test
//! harness's `tests/common/server.rs`), runs the workloads in [`workloads::WORKLOADS`] (one
//! module each under `workloads/`) with a pipelining client (`measure.rs`, over the tests' RESP
//! code in `tests/common/resp.rs`), prints a table and the targets table, writes the same
//! numbers to `target/bench/latest.json` (`report.rs`) and a chart of them to
//! `target/bench/latest.svg` (`chart.rs`), and stops the server. `TXU_SERVER=/path/to/server`
//! measures another server binary, `TXU_MODULE` another module build. `make bench` loads the
//! `bench-loop` build (`target/bench-loop`): the release module plus `TXU._LOOP`, the bare
//! call-API loop that is the ceiling variant of the throughput workloads (skipped, with a note,
//! on a module without it).
//!
//! Method: every workload runs its variants interleaved (A B, then B A, ...) for several rounds
//! against the same server in this one process. After the minimum number of rounds it stops as
//! soon as the per-round ratios variant/baseline agree (median absolute deviation within a
//! tolerance), or at the maximum number of rounds. It reports the median over rounds of each
//! variant, the ratio (median over rounds of the ratio in the same round: other work on the
//! machine comes and goes, and this pairs numbers measured seconds apart), and the number of
//! rounds. Throughput rounds ("batches") run for a fixed time and count completed transactions;
//! every reply is checked (a transaction that did not do its writes must not make a run look
//! fast), and any unexpected reply fails the run. Each batch starts from an emptied server
//! (`FLUSHALL`, `MEMORY PURGE`) and reads `INFO cpu` before and after: the server's CPU time
//! (user + system, all its threads) per transaction is what the throughput ratios are made of,
//! because the client shares the machine and throughput alone mixes in its cost.
//!
//! The workloads of deferred tasks and undo logs (`drain`, `recovery`, `compaction`,
//! `preimage-bytes`) have no baseline variant to interleave with: they report what they observe
//! (times, `INFO txu` fields and their deltas), repeated over rounds where that is noisy, and
//! say in their notes what each number is. `drain` and `recovery` start servers of their own.
//!
//! The client: `--clients` connections (50) spread over `--threads` OS threads (2); each thread
//! walks its connections round-robin, and each connection keeps a batch of `--depth`
//! transactions (4) in flight, all of a transaction's commands pipelined. Requests are encoded
//! once before measuring, so the client spends its time in read/write and reply checks.

#[path = "../../tests/common/resp.rs"]
mod resp;
#[path = "../../tests/common/server.rs"]
mod server;

mod chart;
mod client;
mod measure;
mod report;
mod stats;
mod workloads;

use clap::Parser;
use client::{check_reply, connect, Expect};
use measure::{Ctx, Opts, FULL, QUICK};
use report::{
    json, table, target_results, targets_table, ClientSettings, Header, Machine, ServerInfo,
};
use server::Server;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use workloads::{Workload, WORKLOADS};

/// The command line: `cargo bench --bench txu -- [OPTIONS] [WORKLOAD ...]`.
#[derive(Parser)]
#[command(
    name = "txu-bench",
    bin_name = "cargo bench --bench txu --",
    about = "Measures txu against MULTI/EXEC and EVAL on a server it starts itself",
    after_help = "environment: TXU_SERVER (server binary, default redis-server on PATH), \
                  TXU_MODULE (module)"
)]
struct Args {
    /// Short rounds, fewer rounds, smaller big key (under a minute)
    #[arg(long, overrides_with = "full")]
    quick: bool,
    /// The full run (the default)
    #[arg(long, overrides_with = "quick")]
    full: bool,
    /// Connections of the throughput workloads
    #[arg(long, value_name = "N", default_value = "50")]
    clients: NonZeroUsize,
    /// Client threads driving them
    #[arg(long, value_name = "N", default_value = "2")]
    threads: NonZeroUsize,
    /// Transactions in flight per connection
    #[arg(long, value_name = "N", default_value = "4")]
    depth: NonZeroUsize,
    /// Exactly N rounds per workload (no early stop)
    #[arg(long, value_name = "N")]
    rounds: Option<NonZeroUsize>,
    /// List the workloads and exit
    #[arg(long)]
    list: bool,
    /// Passed by `cargo bench` to every bench binary; ignored
    #[arg(long, hide = true)]
    bench: bool,
    /// Run only workloads whose id contains one of these words
    #[arg(value_name = "WORKLOAD")]
    workloads: Vec<String>,
}

impl Args {
    fn opts(self) -> Opts {
        let mut mode = if self.quick { QUICK } else { FULL };
        if let Some(n) = self.rounds {
            mode.min_rounds = n.get();
            mode.max_rounds = n.get();
        }
        Opts {
            mode,
            clients: self.clients.get(),
            threads: self.threads.get(),
            depth: self.depth.get(),
            filters: self.workloads,
        }
    }
}

/// `name` as found on `PATH` (or as given when it has a slash).
fn resolve_binary(name: &str) -> String {
    if name.contains('/') {
        return std::fs::canonicalize(name)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| name.to_string());
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| name.to_string())
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every number.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Newest modification time of the files under `dir`.
fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else {
            e.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// Warn when the module is older than the sources (`cargo bench` alone does not rebuild it).
fn warn_if_stale(module: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let built = std::fs::metadata(module).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(src)) = (built, newest_mtime(&src)) {
        if src > built {
            eprintln!(
                "warning: {} is older than src/: run `cargo build --release` (or `make bench`)",
                module.display()
            );
        }
    }
}

fn smoke(server: &Server) -> Result<(), String> {
    let mut c = connect(server.port())?;
    let id = c.call(&[b"TXU.BEGIN"])?;
    check_reply(
        &Expect::Bulk,
        &id,
        "TXU.BEGIN (is the module loaded and built?)",
    )?;
    let r = c.call(&[b"TXU.ROLLBACK"])?;
    check_reply(&Expect::ok(), &r, "TXU.ROLLBACK")
}

/// True when the module has `TXU._LOOP` (a `bench-loop` build): the ceiling variants run.
fn has_loop(server: &Server) -> Result<bool, String> {
    let mut c = connect(server.port())?;
    Ok(c.call(&[b"TXU._LOOP", b"1", b"PING"])? == b"*1\r\n+PONG\r\n")
}

fn run(opts: &Opts) -> Result<(), String> {
    let started = Instant::now();
    let selected: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| opts.filters.is_empty() || opts.filters.iter().any(|f| w.id.contains(f)))
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "no workload matches {:?} (see --list)",
            opts.filters
        ));
    }
    let module = server::module_path();
    warn_if_stale(&module);
    let server = Server::start();
    smoke(&server)?;
    let ceiling = has_loop(&server)?;
    let info: HashMap<String, String> = server.info("server");
    let version = match (info.get("valkey_version"), info.get("redis_version")) {
        (Some(v), _) => format!("valkey {v}"),
        (None, Some(v)) => format!("redis {v}"),
        _ => "unknown".into(),
    };
    // Not INFO's `executable`: for a bare name Redis joins it to its working directory.
    let binary = resolve_binary(&server::server_binary());
    let header = Header {
        mode: opts.mode.name,
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        loadavg_start: loadavg(),
        server: ServerInfo { binary, version },
        machine: Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu: cpu_model(),
        },
        client: ClientSettings {
            clients: opts.clients,
            threads: opts.threads,
            depth: opts.depth,
            round_seconds: opts.mode.round.as_secs_f64(),
            min_rounds: opts.mode.min_rounds,
            max_rounds: opts.mode.max_rounds,
            tolerance: opts.mode.tolerance,
        },
    };
    let head = format!(
        "txu bench ({} mode): server {} ({}), module {}{}\nmachine: {} CPUs, {}, load average \
         {} at start; client: {} connections, {} threads, {} tx in flight per connection, {} s \
         per round, {}..{} rounds (stop when per-round ratios agree within {:.0}%)\ncpu us/tx = \
         the server's CPU time (INFO cpu user + sys) over a batch / transactions, each batch on \
         an emptied server; ratio = median over rounds of the same-round ratio to the baseline \
         (first row of the workload): where there is a cpu us/tx, baseline cpu / variant cpu \
         (above 1 = costs the server less), tput = variant tx/s / baseline tx/s; elsewhere \
         variant / baseline of the value (above 1 is faster for /s units, slower for times); \
         spread = (max - min) / median over rounds of what the ratio is made of",
        header.mode,
        header.server.binary,
        header.server.version,
        module.display(),
        if ceiling {
            " (with TXU._LOOP: ceiling variants run)"
        } else {
            " (no TXU._LOOP: no ceiling variants)"
        },
        header.machine.nproc,
        header.machine.cpu,
        header.loadavg_start,
        header.client.clients,
        header.client.threads,
        header.client.depth,
        header.client.round_seconds,
        header.client.min_rounds,
        header.client.max_rounds,
        header.client.tolerance * 100.0
    );
    eprintln!("{head}");
    let ctx = Ctx {
        opts,
        mode: opts.mode,
        server: &server,
        ceiling,
    };
    let mut outcomes = Vec::new();
    for (i, w) in selected.iter().enumerate() {
        eprintln!("[{}/{}] {}: {}", i + 1, selected.len(), w.id, w.about);
        let t = Instant::now();
        let mut flush = connect(server.port())?;
        check_reply(&Expect::ok(), &flush.call(&[b"FLUSHALL"])?, "FLUSHALL")?;
        let mut o = match (w.run)(&ctx) {
            Ok(o) => o,
            Err(e) => {
                if !outcomes.is_empty() {
                    println!("\n{head}\n\nfinished before the failure (no JSON written):");
                    print!("{}", table(&outcomes));
                }
                return Err(format!("workload {}: {e}", w.id));
            }
        };
        o.seconds = t.elapsed().as_secs_f64();
        eprintln!("  {} done in {:.1} s", w.id, o.seconds);
        outcomes.push(o);
    }
    drop(server);
    let total = started.elapsed().as_secs_f64();
    println!("\n{head}\n");
    print!("{}", table(&outcomes));
    let targets = target_results(&outcomes);
    println!("\ntargets (reported, never asserted; x = ratio of server CPU per transaction):");
    print!("{}", targets_table(&targets));
    let load_end = loadavg();
    println!("total time {total:.1} s; load average {load_end} at the end");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join("latest.json");
    std::fs::write(
        &path,
        json(&header, &outcomes, &targets, total, load_end.clone()),
    )
    .map_err(|e| format!("write {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    let svg = dir.join("latest.svg");
    let caption = format!(
        "txu bench, {} mode, {}: {} CPUs, load average {} -> {load_end}",
        header.mode, header.server.version, header.machine.nproc, header.loadavg_start
    );
    chart::draw(&svg, &caption, &outcomes, &targets)?;
    println!("wrote {}", svg.display());
    Ok(())
}

fn main() {
    let args = Args::parse();
    if args.list {
        for w in WORKLOADS {
            println!("{:<14} {}", w.id, w.about);
        }
        return;
    }
    if let Err(e) = run(&args.opts()) {
        eprintln!("bench FAILED: {e}");
        std::process::exit(1);
    }
}
