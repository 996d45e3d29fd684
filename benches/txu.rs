//! `make bench` (`cargo bench --bench txu -- [--quick] [options] [workload ...]`).
//!
//! Starts its own server with the release module loaded (persistence off, free port, see
//! `tests/common`), runs the workloads in [`WORKLOADS`] with a pipelining RESP client written
//! here, prints a table, writes the same numbers to `target/bench/latest.json`, and stops the
//! server. `TXU_SERVER=/path/to/server` measures another server binary, `TXU_MODULE` another
//! module build.
//!
//! Method: every workload runs its variants interleaved (A B, then B A, ...) for several rounds
//! against the same server in this one process. After the minimum number of rounds it stops as
//! soon as the per-round ratios variant/baseline agree (median absolute deviation within a
//! tolerance), or at the maximum number of rounds. It reports the median over rounds of each
//! variant, the ratio (median over rounds of variant/baseline in the same round: other work on
//! the machine comes and goes, and this pairs numbers measured seconds apart), and the number of
//! rounds. Throughput rounds run for a fixed time and count completed transactions; every reply
//! is checked (a transaction that did not do its writes must not make a run look fast), and any
//! unexpected reply fails the run.
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

#[path = "../tests/common/mod.rs"]
mod common;

use common::Server;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ----- workloads -----------------------------------------------------------------------------

/// One benchmark workload: `id` selects it on the command line.
struct Workload {
    id: &'static str,
    about: &'static str,
    run: fn(&Ctx) -> Result<Outcome, String>,
}

/// Every workload, in the order they run.
///
/// ADD NEW WORKLOADS HERE. Planned, not yet written:
/// - undo-log compaction cost (write cost with and without `txu.checkpoint-every`, once that
///   config exists; `compaction` below reports the memory side),
/// - command-filter overhead: `module-loaded` below measures plain SET with the module loaded
///   against `Server::start_without_module()`; once txu registers a command filter, that is the
///   number to watch (and add variants, e.g. inside an open transaction).
///
/// A workload gets a [`Ctx`] (options, mode, the server with the module loaded; the server is
/// flushed before each workload) and returns an [`Outcome`]: rows for the table and the JSON.
/// Use [`measure_throughput`] for "N clients, pipelined, tx/s" workloads and [`interleave`]
/// for anything else measured in rounds.
const WORKLOADS: &[Workload] = &[
    Workload {
        id: "ten-set",
        about: "MULTI/EXEC vs TXU vs EVAL, 10 SETs of 100 bytes per transaction, tx/s",
        run: w_ten_set,
    },
    Workload {
        id: "mixed",
        about: "10 writes over string/hash/list/set/zset per transaction, MULTI/EXEC vs TXU, tx/s",
        run: w_mixed,
    },
    Workload {
        id: "rollback",
        about: "TXU.EXEC latency of 1,000 writes: rolled back (last command fails) vs committed",
        run: w_rollback,
    },
    Workload {
        id: "big-key",
        about: "one HSET on a 1,000,000-field hash (100,000 in --quick) in a transaction, p50/p99",
        run: w_big_key,
    },
    Workload {
        id: "single",
        about: "single-command transactions vs MULTI/SET/EXEC vs plain SET, ops/s and extra us",
        run: w_single,
    },
    Workload {
        id: "module-loaded",
        about: "plain SET throughput, server with the module vs server without it",
        run: w_module_loaded,
    },
    Workload {
        id: "drain",
        about: "100,000 deferred tasks (10,000 in --quick) drained by the timer: tick time, \
                tasks/s, a client's PING latency idle vs during the drain",
        run: w_drain,
    },
    Workload {
        id: "recovery",
        about: "fault cleared -> deferred task applied, vs txu.backoff-base-ms 200",
        run: w_recovery,
    },
    Workload {
        id: "compaction",
        about: "TXU.BEGIN RETAIN: 10,000 INCRs over 10 keys, undo-log memory, TXU.ROLLBACK <txid>",
        run: w_compaction,
    },
    Workload {
        id: "preimage-bytes",
        about:
            "pre-image bytes per write for each type (100 writes on distinct 1,000-element keys)",
        run: w_preimage_bytes,
    },
];

/// A 100-byte value.
const VALUE: &[u8] = &[b'v'; 100];
/// Each connection cycles through `depth * CYCLE_BATCHES` prebuilt transactions (distinct keys).
const CYCLE_BATCHES: usize = 8;
/// No reply within this time fails the run.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The target of issue 5 for workload 1 (reported, never asserted).
const TEN_SET_TARGET: f64 = 0.8;

const EVAL_SETS: &[u8] =
    b"for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end return #KEYS";

/// Workload 1: `MULTI; SET x10; EXEC` vs `TXU.BEGIN; TXU.QUEUE SET x10; TXU.EXEC` vs `EVAL`.
fn w_ten_set(ctx: &Ctx) -> Result<Outcome, String> {
    let key = |c: usize, t: usize, i: usize| format!("w1:{c}:{t}:{i}").into_bytes();
    let exec_ok = array_of_ok(10);
    let mut variants = vec![
        ctx.variant(
            "multi/exec",
            ctx.server,
            tx_expect(Expect::ok(), 10, exec_ok.clone()),
            |c, t, out| {
                push_cmd(out, &[b"MULTI"]);
                for i in 0..10 {
                    push_cmd(out, &[b"SET", &key(c, t, i), VALUE]);
                }
                push_cmd(out, &[b"EXEC"]);
            },
        )?,
        ctx.variant(
            "txu",
            ctx.server,
            tx_expect(Expect::Bulk, 10, exec_ok),
            |c, t, out| {
                push_cmd(out, &[b"TXU.BEGIN"]);
                for i in 0..10 {
                    push_cmd(out, &[b"TXU.QUEUE", b"SET", &key(c, t, i), VALUE]);
                }
                push_cmd(out, &[b"TXU.EXEC"]);
            },
        )?,
        ctx.variant(
            "eval",
            ctx.server,
            vec![Expect::Exact(b":10\r\n".to_vec())],
            |c, t, out| {
                let keys: Vec<Vec<u8>> = (0..10).map(|i| key(c, t, i)).collect();
                let mut args: Vec<&[u8]> = vec![b"EVAL", EVAL_SETS, b"10"];
                args.extend(keys.iter().map(Vec::as_slice));
                args.extend(std::iter::repeat_n(VALUE, 10));
                push_cmd(out, &args);
            },
        )?,
    ];
    let (rounds, per) = measure_throughput(ctx, "ten-set", &mut variants)?;
    let [multi, txu, eval] = [&per[0], &per[1], &per[2]];
    let mut out = Outcome::new(
        "ten-set",
        format!("10-SET tx, {} clients", ctx.opts.clients),
        rounds,
    );
    out.rows
        .push(Row::measured("multi/exec", "tx/s", multi, multi));
    out.rows.push(Row::measured("txu", "tx/s", txu, multi));
    out.rows.push(Row::measured("eval", "tx/s", eval, multi));
    let vs_multi = paired_ratio(txu, multi);
    out.rows
        .push(Row::ratio("txu/eval", paired_ratio(txu, eval)));
    out.notes.push(format!(
        "target txu >= {TEN_SET_TARGET:.1}x multi/exec: {} (txu/multi = {vs_multi:.2})",
        if vs_multi >= TEN_SET_TARGET {
            "met"
        } else {
            "NOT met"
        }
    ));
    Ok(out)
}

/// Workload 2: ten writes over five types. Lists are trimmed, set and zset members come from a
/// small pool, so memory stays bounded however long it runs.
fn w_mixed(ctx: &Ctx) -> Result<Outcome, String> {
    fn commands(c: usize, t: usize) -> Vec<Vec<Vec<u8>>> {
        let k = |kind: &str| format!("w2:{c}:{t}:{kind}").into_bytes();
        let b = |s: String| s.into_bytes();
        vec![
            vec![b"INCR".to_vec(), k("str")],
            vec![
                b"HSET".to_vec(),
                k("hash"),
                b(format!("f{}", t % 16)),
                VALUE.to_vec(),
            ],
            vec![b"HINCRBY".to_vec(), k("hash"), b"n".to_vec(), b"1".to_vec()],
            vec![b"LPUSH".to_vec(), k("list"), VALUE.to_vec()],
            vec![b"LTRIM".to_vec(), k("list"), b"0".to_vec(), b"15".to_vec()],
            vec![b"SADD".to_vec(), k("set"), b(format!("m{}", t % 32))],
            vec![b"SREM".to_vec(), k("set"), b(format!("m{}", (t + 7) % 32))],
            vec![
                b"ZADD".to_vec(),
                k("zset"),
                b(t.to_string()),
                b(format!("m{}", t % 32)),
            ],
            vec![
                b"ZINCRBY".to_vec(),
                k("zset"),
                b"1".to_vec(),
                b(format!("m{}", t % 32)),
            ],
            vec![b"SET".to_vec(), k("str2"), VALUE.to_vec()],
        ]
    }
    fn as_args(cmd: &[Vec<u8>]) -> Vec<&[u8]> {
        cmd.iter().map(Vec::as_slice).collect()
    }
    let mut variants = vec![
        ctx.variant(
            "multi/exec",
            ctx.server,
            tx_expect(Expect::ok(), 10, Expect::ArrayNoErrors(10)),
            |c, t, out| {
                push_cmd(out, &[b"MULTI"]);
                for cmd in commands(c, t) {
                    push_cmd(out, &as_args(&cmd));
                }
                push_cmd(out, &[b"EXEC"]);
            },
        )?,
        ctx.variant(
            "txu",
            ctx.server,
            tx_expect(Expect::Bulk, 10, Expect::ArrayNoErrors(10)),
            |c, t, out| {
                push_cmd(out, &[b"TXU.BEGIN"]);
                for cmd in commands(c, t) {
                    let mut args: Vec<&[u8]> = vec![b"TXU.QUEUE"];
                    args.extend(as_args(&cmd));
                    push_cmd(out, &args);
                }
                push_cmd(out, &[b"TXU.EXEC"]);
            },
        )?,
    ];
    let (rounds, per) = measure_throughput(ctx, "mixed", &mut variants)?;
    let mut out = Outcome::new(
        "mixed",
        format!("mixed-type tx, {} clients", ctx.opts.clients),
        rounds,
    );
    out.rows
        .push(Row::measured("multi/exec", "tx/s", &per[0], &per[0]));
    out.rows
        .push(Row::measured("txu", "tx/s", &per[1], &per[0]));
    out.notes.push(
        "INCR HSET HINCRBY LPUSH LTRIM SADD SREM ZADD ZINCRBY SET on 6 keys of 5 types".into(),
    );
    Ok(out)
}

/// Workload 3: latency of one `TXU.EXEC` of 1,000 writes that rolls back (999 SETs on existing
/// keys, then INCR on a non-integer) vs the same writes committed (INCR on an integer).
fn w_rollback(ctx: &Ctx) -> Result<Outcome, String> {
    const SETS: usize = 999;
    let mut con = Conn::connect(ctx.server.port())?;
    let keys: Vec<Vec<u8>> = (0..SETS)
        .map(|i| format!("w3:k:{i}").into_bytes())
        .collect();
    let committed = [b'c'; 100];
    let undone = [b'r'; 100];
    let mut setup = Vec::new();
    for k in &keys {
        push_cmd(&mut setup, &[b"SET", k, &committed]);
    }
    push_cmd(&mut setup, &[b"SET", b"w3:bad", b"not-a-number"]);
    push_cmd(&mut setup, &[b"SET", b"w3:ctr", b"0"]);
    con.pipeline(&setup, &[Expect::ok()], SETS + 2)?;

    // Everything before the EXEC; the EXEC alone is timed.
    let txu_body = |value: &[u8], last: &[u8]| {
        let mut out = Vec::new();
        push_cmd(&mut out, &[b"TXU.BEGIN"]);
        for k in &keys {
            push_cmd(&mut out, &[b"TXU.QUEUE", b"SET", k, value]);
        }
        push_cmd(&mut out, &[b"TXU.QUEUE", b"INCR", last]);
        out
    };
    let mut multi_body = Vec::new();
    push_cmd(&mut multi_body, &[b"MULTI"]);
    for k in &keys {
        push_cmd(&mut multi_body, &[b"SET", k, &committed]);
    }
    push_cmd(&mut multi_body, &[b"INCR", b"w3:ctr"]);
    let txu_exec = encode(&[b"TXU.EXEC"]);
    let bodies = [
        (txu_body(&committed, b"w3:ctr"), Expect::Bulk, &txu_exec),
        (txu_body(&undone, b"w3:bad"), Expect::Bulk, &txu_exec),
        (multi_body, Expect::ok(), &encode(&[b"EXEC"])),
    ];
    let exec_expect = [
        Expect::ArrayNoErrors(SETS + 1),
        Expect::ErrorPrefix(format!("-ROLLBACK command {} (INCR) failed:", SETS + 1).into_bytes()),
        Expect::ArrayNoErrors(SETS + 1),
    ];
    let samples = ctx.mode.rollback_samples;
    let names = ["txu commit", "txu rollback", "multi/exec commit"];
    let mut probe = |variant: usize| -> Result<Vec<f64>, String> {
        let (body, first, exec) = &bodies[variant];
        let mut ms = Vec::with_capacity(samples);
        for _ in 0..samples {
            con.send(body)?;
            con.expect_replies(&[first.clone(), Expect::queued()], SETS + 2)?;
            let start = Instant::now();
            con.send(exec)?;
            let r = con.next_reply()?;
            ms.push(start.elapsed().as_secs_f64() * 1e3);
            check_reply(&exec_expect[variant], con.reply(r), "EXEC")?;
            if variant == 1 {
                // A rollback that did not restore the keys must not look fast.
                let got = con.call(&[b"GET", &keys[SETS / 2]])?;
                let want = [&b"$100\r\n"[..], &committed, b"\r\n"].concat();
                if got != want {
                    return Err(format!("after a rollback GET returned {:?}", clip(&got)));
                }
            }
        }
        Ok(vec![median(&ms)])
    };
    for v in 0..names.len() {
        probe(v)?; // warm-up
    }
    let per = interleave(ctx, "rollback", &names, "ms", &mut probe)?;
    let m = firsts(&per);
    let mut out = Outcome::new(
        "rollback",
        "1,000-write tx, EXEC latency".into(),
        m[0].len(),
    );
    out.rows
        .push(Row::measured("txu commit", "ms", &m[0], &m[0]));
    out.rows
        .push(Row::measured("txu rollback", "ms", &m[1], &m[0]));
    let mut multi = Row::measured("multi/exec commit", "ms", &m[2], &m[0]);
    multi.ratio = None;
    out.rows.push(multi);
    out.rows
        .push(Row::ratio("txu commit/multi", paired_ratio(&m[0], &m[2])));
    out.notes.push(format!(
        "time of the EXEC alone (queueing excluded), median of {samples} per variant and round; \
         txu rollback ratio = rollback/commit"
    ));
    Ok(out)
}

/// Workload 4: one HSET on a big hash inside a transaction: latency of the whole transaction
/// (all its commands pipelined, from sending to the last reply).
fn w_big_key(ctx: &Ctx) -> Result<Outcome, String> {
    let fields = ctx.mode.big_fields;
    let mut con = Conn::connect(ctx.server.port())?;
    let built = Instant::now();
    let mut req = Vec::new();
    let mut commands = 0;
    for chunk in (0..fields).collect::<Vec<_>>().chunks(1000) {
        let pairs: Vec<Vec<u8>> = chunk
            .iter()
            .flat_map(|i| [format!("f{i}").into_bytes(), format!("v{i}").into_bytes()])
            .collect();
        let mut args: Vec<&[u8]> = vec![b"HSET", b"w4:big"];
        args.extend(pairs.iter().map(Vec::as_slice));
        push_cmd(&mut req, &args);
        commands += 1;
        if commands % 50 == 0 {
            con.pipeline(&req, &[Expect::Int], 50)?;
            req.clear();
        }
    }
    con.pipeline(&req, &[Expect::Int], commands % 50)?;
    let hlen = con.call(&[b"HLEN", b"w4:big"])?;
    if hlen != format!(":{fields}\r\n").into_bytes() {
        return Err(format!("big hash has {} fields", show(&hlen)));
    }
    let build_secs = built.elapsed().as_secs_f64();

    let field = format!("f{}", fields / 2).into_bytes();
    let mut bodies = Vec::new();
    for value in [&b"x"[..], b"y"] {
        let mut multi = Vec::new();
        push_cmd(&mut multi, &[b"MULTI"]);
        push_cmd(&mut multi, &[b"HSET", b"w4:big", &field, value]);
        push_cmd(&mut multi, &[b"EXEC"]);
        let mut txu = Vec::new();
        push_cmd(&mut txu, &[b"TXU.BEGIN"]);
        push_cmd(&mut txu, &[b"TXU.QUEUE", b"HSET", b"w4:big", &field, value]);
        push_cmd(&mut txu, &[b"TXU.EXEC"]);
        bodies.push([multi, txu]);
    }
    let expect = [
        tx_expect(Expect::ok(), 1, Expect::Exact(b"*1\r\n:0\r\n".to_vec())),
        tx_expect(Expect::Bulk, 1, Expect::Exact(b"*1\r\n:0\r\n".to_vec())),
    ];
    let budget = ctx.mode.latency_budget;
    let mut all: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut n = 0usize;
    let mut probe = |variant: usize, keep: bool| -> Result<Vec<f64>, String> {
        let start = Instant::now();
        let mut us = Vec::new();
        while us.len() < 3 || (start.elapsed() < budget && us.len() < 5000) {
            n += 1;
            let body = &bodies[n % 2][variant];
            let t = Instant::now();
            con.send(body)?;
            con.expect_replies(&expect[variant], 3)?;
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let mut sorted = us.clone();
        sorted.sort_by(f64::total_cmp);
        if keep {
            all[variant].extend(us);
        }
        Ok(vec![percentile(&sorted, 50.0), percentile(&sorted, 99.0)])
    };
    probe(0, false)?;
    probe(1, false)?;
    let names = ["multi/exec", "txu"];
    let per = interleave(ctx, "big-key", &names, "us (p50)", |v| probe(v, true))?;
    let rounds = per[0].len();
    let pct = |v: usize, p: f64| {
        let mut s = all[v].clone();
        s.sort_by(f64::total_cmp);
        percentile(&s, p)
    };
    let p99s = |v: usize| per[v].iter().map(|m| m[1]).collect::<Vec<f64>>();
    let p50s = firsts(&per);
    let title = if fields >= 1_000_000 {
        format!("big key HSET, {}M fields", fields / 1_000_000)
    } else {
        format!("big key HSET, {}k fields", fields / 1000)
    };
    let mut out = Outcome::new("big-key", title, rounds);
    let row = |label: &str, v: usize, p: f64, per_round: Vec<f64>, base: Option<f64>| {
        let value = pct(v, p);
        Row {
            variant: label.into(),
            value: Some(value),
            unit: "us",
            ratio: base.map(|b| value / b),
            per_round,
        }
    };
    out.rows.push(row(
        "multi/exec p50",
        0,
        50.0,
        p50s[0].clone(),
        Some(pct(0, 50.0)),
    ));
    out.rows
        .push(row("txu p50", 1, 50.0, p50s[1].clone(), Some(pct(0, 50.0))));
    out.rows
        .push(row("multi/exec p99", 0, 99.0, p99s(0), Some(pct(0, 99.0))));
    out.rows
        .push(row("txu p99", 1, 99.0, p99s(1), Some(pct(0, 99.0))));
    if fields < 1_000_000 {
        out.notes
            .push(format!("--quick: {fields} fields instead of 1,000,000"));
    }
    out.notes.push(format!(
        "p50/p99 over all samples of all rounds ({} multi/exec, {} txu); whole transaction \
         pipelined, send to last reply; hash built in {build_secs:.1} s",
        all[0].len(),
        all[1].len()
    ));
    Ok(out)
}

/// Workload 5: single-command transactions: what one transaction costs on top of its command.
fn w_single(ctx: &Ctx) -> Result<Outcome, String> {
    let key = |c: usize, t: usize| format!("w5:{c}:{t}").into_bytes();
    let exec_ok = array_of_ok(1);
    let mut variants = vec![
        ctx.variant(
            "multi/exec",
            ctx.server,
            tx_expect(Expect::ok(), 1, exec_ok.clone()),
            |c, t, out| {
                push_cmd(out, &[b"MULTI"]);
                push_cmd(out, &[b"SET", &key(c, t), VALUE]);
                push_cmd(out, &[b"EXEC"]);
            },
        )?,
        ctx.variant(
            "txu",
            ctx.server,
            tx_expect(Expect::Bulk, 1, exec_ok),
            |c, t, out| {
                push_cmd(out, &[b"TXU.BEGIN"]);
                push_cmd(out, &[b"TXU.QUEUE", b"SET", &key(c, t), VALUE]);
                push_cmd(out, &[b"TXU.EXEC"]);
            },
        )?,
        ctx.variant("plain SET", ctx.server, vec![Expect::ok()], |c, t, out| {
            push_cmd(out, &[b"SET", &key(c, t), VALUE]);
        })?,
    ];
    let (rounds, per) = measure_throughput(ctx, "single", &mut variants)?;
    let [multi, txu, plain] = [median(&per[0]), median(&per[1]), median(&per[2])];
    let mut out = Outcome::new(
        "single",
        format!("1-command tx, {} clients", ctx.opts.clients),
        rounds,
    );
    out.rows
        .push(Row::measured("multi/exec", "ops/s", &per[0], &per[0]));
    out.rows
        .push(Row::measured("txu", "ops/s", &per[1], &per[0]));
    out.rows
        .push(Row::measured("plain SET", "ops/s", &per[2], &per[0]));
    out.rows
        .push(Row::ratio("txu/plain SET", paired_ratio(&per[1], &per[2])));
    out.rows.push(Row::derived(
        "txu extra vs multi/exec",
        1e6 / txu - 1e6 / multi,
        "us/tx",
    ));
    out.rows.push(Row::derived(
        "txu extra vs plain SET",
        1e6 / txu - 1e6 / plain,
        "us/tx",
    ));
    out.notes.push(
        "extra us/tx = 1e6/txu - 1e6/other: server time per transaction, as the server is the \
         bottleneck"
            .into(),
    );
    Ok(out)
}

/// Workload 6: plain SET on a server with the module loaded vs one without it (both servers
/// run side by side).
fn w_module_loaded(ctx: &Ctx) -> Result<Outcome, String> {
    let bare = Server::start_without_module();
    let key = |c: usize, t: usize| format!("w6:{c}:{t}").into_bytes();
    let build = |c: usize, t: usize, out: &mut Vec<u8>| push_cmd(out, &[b"SET", &key(c, t), VALUE]);
    let mut variants = vec![
        ctx.variant("without module", &bare, vec![Expect::ok()], build)?,
        ctx.variant("module loaded", ctx.server, vec![Expect::ok()], build)?,
    ];
    let (rounds, per) = measure_throughput(ctx, "module-loaded", &mut variants)?;
    let mut out = Outcome::new(
        "module-loaded",
        format!("plain SET, {} clients", ctx.opts.clients),
        rounds,
    );
    out.rows
        .push(Row::measured("without module", "ops/s", &per[0], &per[0]));
    out.rows
        .push(Row::measured("module loaded", "ops/s", &per[1], &per[0]));
    out.notes
        .push("two servers of the same binary, measured alternately".into());
    Ok(out)
}

// ----- deferred tasks and undo logs (issues 3 and 4) -----------------------------------------

/// Workload 7 (issue 4): `N` deferred tasks drained by the timer, in rounds, each on a server of
/// its own (the largest tick in `INFO txu` cannot be reset): a client's `PING` latency on an
/// empty server, then with `N` tasks pending behind `NOREPLICAS` ("idle": the timer keeps
/// retrying them and failing), then while the timer drains them once the fault is cleared.
fn w_drain(ctx: &Ctx) -> Result<Outcome, String> {
    let n = ctx.mode.drain_tasks;
    let rounds = ctx.mode.drain_rounds;
    let mut all: Vec<DrainRound> = Vec::new();
    let mut config = String::new();
    for round in 1..=rounds {
        let r = drain_round(n, ctx.mode.idle_window, &mut config)?;
        eprintln!(
            "  drain round {round}/{rounds}: {:.1} s to <= 1% pending, tick max {} us, PING p99 \
             idle {:.0} us, drain {:.0} us",
            r.t99, r.tick_max_drain, r.idle.p99, r.drain.p99
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
    };
    out.rows.push(row(
        "defer (pipelined)",
        col(&|r| n as f64 / r.create_secs),
        "tx/s",
        None,
    ));
    out.rows.push(row(
        "memory per pending task",
        col(&|r| r.memory_per_task),
        "B",
        None,
    ));
    out.rows.push(row(
        "memory per task, drained",
        col(&|r| r.memory_after_drain),
        "B",
        None,
    ));
    out.rows
        .push(row("drain to <=1% pending", col(&|r| r.t99), "s", None));
    out.rows
        .push(row("drain to 0 pending", col(&|r| r.t100), "s", None));
    out.rows.push(row(
        "drain rate (to 99%)",
        col(&|r| 0.99 * n as f64 / r.t99),
        "tasks/s",
        None,
    ));
    // The target is about the largest tick: the maximum over rounds, not the median.
    let tick_max = col(&|r| r.tick_max_drain as f64);
    let largest = tick_max.iter().copied().fold(0.0, f64::max);
    let mut max_row = row("tick max, drain", tick_max, "us", None);
    max_row.value = Some(largest);
    out.rows.push(max_row);
    out.rows.push(row(
        "tick max, fault on",
        col(&|r| r.tick_max_fault as f64),
        "us",
        None,
    ));
    out.rows.push(row(
        "tick p50 drain (smp)",
        col(&|r| r.drain_ticks.p50),
        "us",
        None,
    ));
    out.rows.push(row(
        "tick p50 fault-on (smp)",
        col(&|r| r.idle_ticks.p50),
        "us",
        None,
    ));
    out.rows.push(row(
        "ticks > 1 ms (smp)",
        col(&|r| r.drain_ticks_over_1ms),
        "%",
        None,
    ));
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
         round); fault-on = {n} pending and the fault still on: the brief's \"idle\", but the \
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
        "target: no tick over 1 ms: {} (largest {largest:.0} us); PING p99 during drain <= 1.2x \
         idle: {} ({p99_empty:.2}x empty; {p99_idle:.2}x fault-on)",
        if largest <= 1000.0 { "met" } else { "NOT met" },
        if p99_empty <= 1.2 { "met" } else { "NOT met" },
    ));
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
    idle_ticks: Latency,
    drain_ticks: Latency,
    /// Percent of the sampled drain ticks that took over 1 ms.
    drain_ticks_over_1ms: f64,
    empty: Latency,
    idle: Latency,
    drain: Latency,
}

/// One round of [`w_drain`] on a new server; `config` gets the settings used.
fn drain_round(n: usize, window: Duration, config: &mut String) -> Result<DrainRound, String> {
    const TICK_MS: &str = "10";
    let server = Server::start();
    let port = server.port();
    let mut ctl = Conn::connect(port)?;
    let mut pinger = Conn::connect(port)?;
    let mut poller = Conn::connect(port)?;
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
            push_cmd(&mut req, &[b"TXU.BEGIN", b"RETRY"]);
            let key = format!("task:{i}").into_bytes();
            push_cmd(&mut req, &[b"TXU.QUEUE", b"SET", &key, b"x"]);
            push_cmd(&mut req, &[b"TXU.EXEC"]);
        }
        ctl.send(&req)?;
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
                clip(&got)
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
        idle_ticks: Latency::of(ticks(&idle.polls, f64::INFINITY).into_iter()),
        drain_ticks_over_1ms: 100.0 * over as f64 / drain_ticks.len().max(1) as f64,
        drain_ticks: Latency::of(drain_ticks.into_iter()),
        empty: Latency::of(empty.pings.iter().map(|p| p.1)),
        idle: Latency::of(idle.pings.iter().map(|p| p.1)),
        drain: Latency::of(drain.pings.iter().filter(|p| p.0 <= t99).map(|p| p.1)),
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
}

/// `pinger` sends `PING` one at a time, [`PING_GAP_US`] apart on average, and times each reply
/// while `poller` reads `INFO txu`
/// every 50 ms; both stop after `window`, or (with `drain_timeout`) at the first poll that sees
/// no pending task. Times are measured from `t0`.
fn observe(
    pinger: &mut Conn,
    poller: &mut Conn,
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
    let (pings, polls) = std::thread::scope(|s| {
        let stop = &stop;
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
        let ping = encode(&[b"PING"]);
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
                pinger.send(&ping)?;
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
        (pinged.map(|()| pings), polls)
    });
    Ok(Observed {
        pings: pings?,
        polls: polls?,
    })
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

/// Workload 8 (issue 4): how long after a transient fault clears a deferred task is applied,
/// against the configured backoff. Each repetition defers one `SET` with `NOREPLICAS`, waits
/// until the timer's first retry has failed too, clears the fault, and polls `GET` until the
/// value is there.
fn w_recovery(ctx: &Ctx) -> Result<Outcome, String> {
    const BASE_MS: &str = "200";
    let reps = ctx.mode.recovery_reps;
    let server = Server::start();
    let mut con = Conn::connect(server.port())?;
    con.config_set("txu.backoff-base-ms", BASE_MS)?;
    let config = ["txu.backoff-base-ms", "txu.backoff-max-ms", "txu.tick-ms"]
        .iter()
        .map(|name| Ok(format!("{name} {}", con.config_get(name)?)))
        .collect::<Result<Vec<String>, String>>()?
        .join(", ");
    let deadline = Duration::from_secs(30);
    let (mut delays, mut waits, mut late) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let key = format!("rec:{rep}").into_bytes();
        let value = format!("v{rep}").into_bytes();
        con.config_set("min-replicas-to-write", "1")?;
        con.send(&encode(&[b"TXU.BEGIN", b"RETRY"]))?;
        con.send(&encode(&[b"TXU.QUEUE", b"SET", &key, &value]))?;
        con.send(&encode(&[b"TXU.EXEC"]))?;
        con.expect_replies(&[Expect::Bulk, Expect::queued()], 2)?;
        let r = con.next_reply()?;
        let exec = con.reply(r).to_vec();
        check_reply(
            &Expect::ErrorPrefix(b"-DEFERRED ".to_vec()),
            &exec,
            "TXU.EXEC",
        )?;
        let id = show(&exec)
            .split_whitespace()
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| format!("no task id in {:?}", clip(&exec)))?;
        // Until the timer's first retry has failed.
        let waited = Instant::now();
        let next_attempt_ms = loop {
            let status = con.call(&[b"TXU.STATUS", id.as_bytes()])?;
            let fields = flat_array(&status)
                .ok_or_else(|| format!("TXU.STATUS {id}: {:?}", clip(&status)))?;
            let field = |name: &str| -> Option<&str> {
                let i = fields.iter().step_by(2).position(|f| f == name)?;
                fields.get(2 * i + 1).map(String::as_str)
            };
            let number = |name: &str| field(name).and_then(|v| v.parse::<i64>().ok());
            if field("state") != Some("pending") {
                return Err(format!("TXU.STATUS {id} while the fault is on: {fields:?}"));
            }
            if number("attempts").unwrap_or(0) >= 1 {
                break number("next_attempt_ms")
                    .ok_or_else(|| format!("TXU.STATUS {id}: no next_attempt_ms"))?;
            }
            if waited.elapsed() > deadline {
                return Err(format!("task {id} not retried within {deadline:?}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let now_ms = con.server_time_ms()?;
        let cleared = Instant::now();
        con.config_set("min-replicas-to-write", "0")?;
        let want = [
            format!("${}\r\n", value.len()).into_bytes(),
            value.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        loop {
            if con.call(&[b"GET", &key])? == want {
                break;
            }
            if cleared.elapsed() > deadline {
                return Err(format!(
                    "task {id} not applied within {deadline:?} of the fault clearing"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let delay = cleared.elapsed().as_secs_f64() * 1e3;
        let wait = (next_attempt_ms - now_ms) as f64;
        eprintln!(
            "  recovery {}/{reps}: applied {delay:.0} ms after the fault cleared (retry was due \
             in {wait:.0} ms)",
            rep + 1
        );
        delays.push(delay);
        waits.push(wait);
        late.push(delay - wait.max(0.0));
    }
    drop(server);
    let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let mut out = Outcome::new("recovery", "fault cleared -> applied".into(), reps);
    let base: f64 = BASE_MS.parse().unwrap_or(f64::NAN);
    let row = |variant: &str, v: f64, per_round: &[f64]| Row {
        variant: variant.into(),
        value: Some(v),
        unit: "ms",
        ratio: Some(v / base),
        per_round: per_round.to_vec(),
    };
    out.rows.push(row("txu.backoff-base-ms", base, &[]));
    out.rows.push(row("delay median", median(&delays), &delays));
    out.rows.push(row("delay max", max(&delays), &[]));
    out.rows
        .push(row("retry due in (median)", median(&waits), &waits));
    out.rows.push(row("retry due in (max)", max(&waits), &[]));
    out.rows
        .push(row("after due (median)", median(&late), &late));
    out.rows.push(row("after due (max)", max(&late), &[]));
    out.notes.push(format!(
        "config: {config}; each repetition: defer SET with min-replicas-to-write 1, wait until \
         TXU.STATUS attempts >= 1 (the first retry failed too), clear the fault, poll GET every \
         1 ms"
    ));
    out.notes.push(format!(
        "retry due in = next_attempt_ms from TXU.STATUS - server TIME when the fault cleared \
         (the wait before the 2nd retry; README: the delay doubles per retry, so base x 2 with \
         equal jitter = {:.0}..{:.0} ms); after due = delay - that: the timer's granularity \
         (the fault clears right after the tick that ran the 1st retry, so the task applies at \
         the first tick at or after it is due); ratio = / txu.backoff-base-ms",
        base,
        2.0 * base
    ));
    Ok(out)
}

/// Workload 9 (issue 3): the undo log of `TXU.BEGIN RETAIN` with 10,000 INCRs over 10 keys,
/// then `TXU.ROLLBACK <txid>`. Issue 3's target: at most 10 entries.
fn w_compaction(ctx: &Ctx) -> Result<Outcome, String> {
    const KEYS: usize = 10;
    const INCRS: usize = 10_000;
    const START: i64 = 1000;
    let reps = ctx.mode.compaction_reps;
    let mut con = Conn::connect(ctx.server.port())?;
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format!("ck:{i}").into_bytes()).collect();
    let mut setup = Vec::new();
    for k in &keys {
        push_cmd(&mut setup, &[b"SET", k, START.to_string().as_bytes()]);
    }
    con.pipeline(&setup, &[Expect::ok()], KEYS)?;
    let mut body = Vec::new();
    push_cmd(&mut body, &[b"TXU.BEGIN", b"RETAIN", b"60000"]);
    for i in 0..INCRS {
        push_cmd(&mut body, &[b"TXU.QUEUE", b"INCR", &keys[i % KEYS]]);
    }
    let checkpoint = con
        .config_get("txu.checkpoint-every")
        .unwrap_or_else(|_| "not a config of this build".into());
    let mget = |con: &mut Conn| -> Result<Vec<String>, String> {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(Vec::as_slice));
        let r = con.call(&args)?;
        flat_array(&r).ok_or_else(|| format!("MGET: {:?}", clip(&r)))
    };
    let (mut exec_ms, mut rollback_ms) = (Vec::new(), Vec::new());
    let mut seen: Vec<String> = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let before = con.info("txu")?;
        con.send(&body)?;
        let r = con.next_reply()?;
        let txid = bulk_body(con.reply(r))
            .map(show)
            .ok_or("TXU.BEGIN RETAIN: no transaction id")?;
        con.expect_replies(&[Expect::queued()], INCRS)?;
        let t = Instant::now();
        let r = con.call(&[b"TXU.EXEC"])?;
        exec_ms.push(t.elapsed().as_secs_f64() * 1e3);
        check_reply(&Expect::ArrayNoErrors(INCRS), &r, "TXU.EXEC")?;
        let want = (START + (INCRS / KEYS) as i64).to_string();
        if mget(&mut con)?.iter().any(|v| *v != want) {
            return Err(format!("after the transaction the keys are not all {want}"));
        }
        let held = con.info("txu")?;
        let memory = info_u64(&held, "txu_undo_log_memory")?;
        let retained = info_delta(&before, &held, "txu_undo_logs_retained")
            .ok_or("INFO txu has no txu_undo_logs_retained")?;
        // Counters that this build may or may not have (issue 3 renames and adds some).
        let deltas: Vec<(&str, i64)> = UNDO_COUNTERS
            .iter()
            .filter_map(|f| Some((*f, info_delta(&before, &held, f)?)))
            .collect();
        let shown = deltas
            .iter()
            .map(|(f, d)| format!("{f} +{d}"))
            .collect::<Vec<_>>()
            .join(", ");
        let hidden = con.scan_match(b"txu:undo:*")?;
        let usage = match hidden.as_slice() {
            [k] => {
                let r = con.call(&[b"MEMORY", b"USAGE", k])?;
                show(&r[1..r.len() - 2]).parse::<f64>().unwrap_or(f64::NAN)
            }
            _ => return Err(format!("{} hidden undo-log keys, expected 1", hidden.len())),
        };
        // The compensating writes the rollback runs, from INFO commandstats.
        let stats_before = con.info("commandstats")?;
        let t = Instant::now();
        let r = con.call(&[b"TXU.ROLLBACK", txid.as_bytes()])?;
        rollback_ms.push(t.elapsed().as_secs_f64() * 1e3);
        check_reply(&Expect::ok(), &r, &format!("TXU.ROLLBACK {txid}"))?;
        let stats_after = con.info("commandstats")?;
        if mget(&mut con)?.iter().any(|v| *v != START.to_string()) {
            return Err(format!(
                "after TXU.ROLLBACK {txid} the keys are not back at {START}"
            ));
        }
        let gone = con.info("txu")?;
        let undo_writes = command_calls_delta(&stats_before, &stats_after);
        let entries: i64 = undo_writes
            .iter()
            .filter(|(name, _)| name != "del")
            .map(|(_, n)| n)
            .sum();
        let breakdown = undo_writes
            .iter()
            .map(|(name, n)| format!("{} x{n}", name.to_uppercase()))
            .collect::<Vec<_>>()
            .join(", ");
        let summary = format!(
            "{memory} B undo-log memory, {usage} B MEMORY USAGE of the hidden key, {retained} \
             log retained, {shown}; TXU.ROLLBACK ran {breakdown}; undo-log memory after it {}",
            info_u64(&gone, "txu_undo_log_memory")?
        );
        if !seen.contains(&summary) {
            seen.push(summary);
        }
        last = Some((memory, usage, deltas, entries));
    }
    let (memory, usage, deltas, entries) = last.ok_or("no repetition ran")?;
    let mut out = Outcome::new("compaction", "RETAIN, 10k INCR over 10 keys".into(), reps);
    let d = |v: &str, x: f64, unit: &'static str| Row::derived(v, x, unit);
    out.rows.push(d("txu_undo_log_memory", memory as f64, "B"));
    out.rows.push(d("MEMORY USAGE hidden key", usage, "B"));
    out.rows.push(d(
        "undo-log memory per key",
        memory as f64 / KEYS as f64,
        "B",
    ));
    out.rows
        .push(d("undo entries (rollback)", entries as f64, "writes"));
    for (field, delta) in &deltas {
        let name = field.strip_prefix("txu_").unwrap_or(field);
        out.rows.push(d(name, *delta as f64, "delta"));
    }
    out.rows
        .push(Row::measured("EXEC", "ms", &exec_ms, &exec_ms));
    out.rows.push(Row::measured(
        "TXU.ROLLBACK <txid>",
        "ms",
        &rollback_ms,
        &exec_ms,
    ));
    out.notes.push(format!(
        "txu.checkpoint-every: {checkpoint}; undo entries = compensating writes TXU.ROLLBACK \
         ran (INFO commandstats, the DEL of the hidden key not counted); target: at most \
         {KEYS} entries: {}; INFO txu counters below the entry row: delta over the EXEC, those \
         this build has of {}",
        if entries <= KEYS as i64 {
            "met"
        } else {
            "NOT met"
        },
        UNDO_COUNTERS.join(" ")
    ));
    for s in &seen {
        out.notes.push(s.clone());
    }
    if seen.len() > 1 {
        out.notes
            .push("the memory numbers differed between repetitions (all shown)".into());
    }
    out.notes.push(
        "EXEC / ROLLBACK: time of that command alone, median over repetitions; ratio = / EXEC"
            .into(),
    );
    Ok(out)
}

/// Workload 10 (issue 3): bytes of pre-images per write, by type. For each type, 100 keys of
/// 1,000 elements (a 100-byte value for strings), one transaction writing each key once.
/// `ratio` = pre-image bytes per write / (`DUMP` size + name length of the key): 1.00 is a
/// whole-key copy.
fn w_preimage_bytes(ctx: &Ctx) -> Result<Outcome, String> {
    const KEYS: usize = 100;
    const ELEMENTS: usize = 1000;
    struct Kind {
        name: &'static str,
        what: &'static str,
        /// Commands creating key `k`.
        build: fn(&[u8], &mut Vec<u8>) -> usize,
        /// The write of the measured transaction.
        write: fn(&[u8]) -> Vec<Vec<u8>>,
    }
    fn elements(prefix: &str) -> Vec<Vec<u8>> {
        (0..ELEMENTS)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect()
    }
    /// `len` printable bytes that do not compress (DUMP compresses repetitive strings).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'!' + (x % 94) as u8
            })
            .collect()
    }
    fn with_key(cmd: &[u8], key: &[u8], rest: &[Vec<u8>], out: &mut Vec<u8>) -> usize {
        let mut args: Vec<&[u8]> = vec![cmd, key];
        args.extend(rest.iter().map(Vec::as_slice));
        push_cmd(out, &args);
        1
    }
    let kinds = [
        Kind {
            name: "string",
            what: "SET, 100-byte value",
            build: |k, out| with_key(b"SET", k, &[noise(100, 1)], out),
            write: |k| vec![b"SET".to_vec(), k.to_vec(), noise(100, 2)],
        },
        Kind {
            name: "hash",
            what: "HSET f500 of 1,000 fields",
            build: |k, out| {
                let pairs: Vec<Vec<u8>> = elements("f")
                    .into_iter()
                    .zip(elements("value-"))
                    .flat_map(|(f, v)| [f, v])
                    .collect();
                with_key(b"HSET", k, &pairs, out)
            },
            write: |k| {
                vec![
                    b"HSET".to_vec(),
                    k.to_vec(),
                    b"f500".to_vec(),
                    b"new".to_vec(),
                ]
            },
        },
        Kind {
            name: "set",
            what: "SADD to 1,000 members",
            build: |k, out| with_key(b"SADD", k, &elements("member-"), out),
            write: |k| vec![b"SADD".to_vec(), k.to_vec(), b"new-member".to_vec()],
        },
        Kind {
            name: "zset",
            what: "ZADD to 1,000 members",
            build: |k, out| {
                let pairs: Vec<Vec<u8>> = elements("member-")
                    .into_iter()
                    .enumerate()
                    .flat_map(|(i, m)| [i.to_string().into_bytes(), m])
                    .collect();
                with_key(b"ZADD", k, &pairs, out)
            },
            write: |k| {
                vec![
                    b"ZADD".to_vec(),
                    k.to_vec(),
                    b"5000".to_vec(),
                    b"new-member".to_vec(),
                ]
            },
        },
        Kind {
            name: "list",
            what: "LPUSH to 1,000 elements",
            build: |k, out| with_key(b"RPUSH", k, &elements("element-"), out),
            write: |k| vec![b"LPUSH".to_vec(), k.to_vec(), b"new".to_vec()],
        },
        Kind {
            name: "stream",
            what: "XADD to 1,000 entries",
            build: |k, out| {
                for i in 0..ELEMENTS {
                    push_cmd(
                        out,
                        &[b"XADD", k, b"*", b"field", format!("value-{i}").as_bytes()],
                    );
                }
                ELEMENTS
            },
            write: |k| {
                vec![
                    b"XADD".to_vec(),
                    k.to_vec(),
                    b"*".to_vec(),
                    b"field".to_vec(),
                    b"new".to_vec(),
                ]
            },
        },
    ];
    let mut con = Conn::connect(ctx.server.port())?;
    let mut out = Outcome::new("preimage-bytes", "pre-image bytes per write".into(), 1);
    let mut details = Vec::new();
    for kind in &kinds {
        let key = |i: usize| format!("pb:{}:{i}", kind.name).into_bytes();
        for i in 0..KEYS {
            let mut req = Vec::new();
            let n = (kind.build)(&key(i), &mut req);
            con.send(&req)?;
            for _ in 0..n {
                let r = con.next_reply()?;
                let reply = con.reply(r);
                if reply.starts_with(b"-") {
                    return Err(format!("building {}: {:?}", kind.name, clip(reply)));
                }
            }
        }
        let dump = con.call(&[b"DUMP", &key(0)])?;
        let dump_len = bulk_body(&dump).map(<[u8]>::len).unwrap_or(0) as f64;
        // A whole-key pre-image: the key's name and its serialization.
        let names = (0..KEYS).map(|i| key(i).len()).sum::<usize>() as f64 / KEYS as f64;
        let whole = dump_len + names;
        let mut body = Vec::new();
        push_cmd(&mut body, &[b"TXU.BEGIN"]);
        for i in 0..KEYS {
            let write = (kind.write)(&key(i));
            let mut args: Vec<&[u8]> = vec![b"TXU.QUEUE"];
            args.extend(write.iter().map(Vec::as_slice));
            push_cmd(&mut body, &args);
        }
        let before = con.info("txu")?;
        con.pipeline(&body, &[Expect::Bulk, Expect::queued()], KEYS + 1)?;
        let t = Instant::now();
        let r = con.call(&[b"TXU.EXEC"])?;
        let exec_ms = t.elapsed().as_secs_f64() * 1e3;
        check_reply(
            &Expect::ArrayNoErrors(KEYS),
            &r,
            &format!("TXU.EXEC ({})", kind.name),
        )?;
        let after = con.info("txu")?;
        let delta = |f: &str| -> Result<f64, String> {
            Ok(info_u64(&after, f)? as f64 - info_u64(&before, f)? as f64)
        };
        let per_write = delta("txu_preimage_bytes")? / KEYS as f64;
        let counted = UNDO_COUNTERS[..4]
            .iter()
            .filter_map(|f| {
                let d = info_delta(&before, &after, f)?;
                Some(format!("{} +{d}", f.strip_prefix("txu_").unwrap_or(f)))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut row = Row::derived(kind.name, per_write, "B/write");
        row.ratio = Some(per_write / whole);
        out.rows.push(row);
        details.push(format!(
            "{} ({}): DUMP {dump_len} B, {counted}, EXEC {exec_ms:.2} ms",
            kind.name, kind.what
        ));
    }
    out.notes.push(
        "pre-image bytes per write = txu_preimage_bytes delta / 100 (one transaction, 100 \
         writes on distinct keys); ratio = that / (DUMP size + name length) of the key before \
         the write: 1.00 = a whole-key copy"
            .into(),
    );
    out.notes.extend(details);
    Ok(out)
}

/// `name -> calls` of the commands that ran between two `INFO commandstats` (the `INFO`, `SCAN`
/// and `TXU.*` commands left out), sorted by name.
fn command_calls_delta(
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
) -> Vec<(String, i64)> {
    let calls = |m: &HashMap<String, String>, k: &str| -> i64 {
        m.get(k)
            .and_then(|v| v.split(',').find_map(|p| p.strip_prefix("calls=")))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    let mut out: Vec<(String, i64)> = after
        .keys()
        .filter_map(|k| {
            let name = k.strip_prefix("cmdstat_")?;
            let n = calls(after, k) - calls(before, k);
            (n > 0 && !matches!(name, "info" | "scan") && !name.starts_with("txu."))
                .then(|| (name.to_string(), n))
        })
        .collect();
    out.sort();
    out
}

/// `INFO txu` counters of pre-images and undo entries, reported as deltas when the build has
/// them (`txu_preimages_captured` became `txu_undo_entries_recorded` with issue 3).
const UNDO_COUNTERS: &[&str] = &[
    "txu_preimages_captured",
    "txu_undo_entries_recorded",
    "txu_compactions",
    "txu_compacted_entries",
    "txu_preimage_bytes",
];

/// `after - before` of a numeric `INFO` field, `None` when either lacks it.
fn info_delta(
    before: &HashMap<String, String>,
    after: &HashMap<String, String>,
    field: &str,
) -> Option<i64> {
    let get = |m: &HashMap<String, String>| m.get(field)?.parse::<i64>().ok();
    Some(get(after)? - get(before)?)
}

/// A numeric `INFO` field.
fn info_u64(info: &HashMap<String, String>, field: &str) -> Result<u64, String> {
    info.get(field)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("INFO has no numeric field {field}"))
}

/// The body of a bulk string reply.
fn bulk_body(r: &[u8]) -> Option<&[u8]> {
    if r.first() != Some(&b'$') {
        return None;
    }
    let cr = line_end(r, 1)?;
    let n = usize::try_from(parse_len(&r[1..cr]).ok()?).ok()?;
    r.get(cr + 2..cr + 2 + n)
}

/// The elements of a flat array of bulk strings, simple strings and integers, as text (a null
/// bulk string as "").
fn flat_array(r: &[u8]) -> Option<Vec<String>> {
    if r.first() != Some(&b'*') {
        return None;
    }
    let cr = line_end(r, 1)?;
    let n = parse_len(&r[1..cr]).ok()?;
    let mut cur = cr + 2;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let end = reply_end(r, cur).ok()??;
        let e = &r[cur..end];
        out.push(match e.first()? {
            b'$' => bulk_body(e).map(show).unwrap_or_default(),
            b'+' | b':' => show(&e[1..e.len() - 2]),
            _ => return None,
        });
        cur = end;
    }
    Some(out)
}

// ----- modes and options ---------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    /// Length of one throughput measurement (one variant, one round).
    round: Duration,
    /// Discarded run of each variant before the first round.
    warmup: Duration,
    min_rounds: usize,
    max_rounds: usize,
    /// Stop once the per-round ratios' median absolute deviation / median is at most this.
    tolerance: f64,
    /// Workload 3: EXEC samples per variant and round.
    rollback_samples: usize,
    /// Workload 4: fields of the big hash.
    big_fields: usize,
    /// Workload 4: time per variant and round.
    latency_budget: Duration,
    /// `drain`: deferred tasks to drain.
    drain_tasks: usize,
    /// `drain`: how long the client's latency is measured on an empty server and while idle.
    idle_window: Duration,
    /// `recovery`: faults cleared.
    recovery_reps: usize,
    /// `compaction`: transactions retained and rolled back.
    compaction_reps: usize,
    /// `drain`: rounds (each on a new server).
    drain_rounds: usize,
}

const QUICK: Mode = Mode {
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

const FULL: Mode = Mode {
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

struct Opts {
    mode: Mode,
    clients: usize,
    threads: usize,
    depth: usize,
    filters: Vec<String>,
}

const USAGE: &str = "usage: cargo bench --bench txu -- [--quick] [--clients N] [--threads N] \
[--depth N] [--rounds N] [--list] [WORKLOAD ...]
  --quick      short rounds, fewer rounds, smaller big key (under a minute)
  --clients N  connections of the throughput workloads (50)
  --threads N  client threads driving them (2)
  --depth N    transactions in flight per connection (4)
  --rounds N   exactly N rounds per workload (no early stop)
  --list       list the workloads and exit
  WORKLOAD     run only workloads whose id contains one of these words
environment: TXU_SERVER (server binary, default redis-server on PATH), TXU_MODULE (module)";

/// `Ok(None)`: nothing to run (help or list printed).
fn parse_args() -> Result<Option<Opts>, String> {
    let mut opts = Opts {
        mode: FULL,
        clients: 50,
        threads: 2,
        depth: 4,
        filters: Vec::new(),
    };
    let mut rounds = None;
    let mut args = std::env::args().skip(1);
    let number = |name: &str, v: Option<String>| -> Result<usize, String> {
        v.as_deref()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{name} needs a positive number\n{USAGE}"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.mode = QUICK,
            "--full" => opts.mode = FULL,
            // `cargo bench` passes --bench to every bench binary.
            "--bench" => {}
            "--clients" => opts.clients = number("--clients", args.next())?,
            "--threads" => opts.threads = number("--threads", args.next())?,
            "--depth" => opts.depth = number("--depth", args.next())?,
            "--rounds" => rounds = Some(number("--rounds", args.next())?),
            "--list" => {
                for w in WORKLOADS {
                    println!("{:<14} {}", w.id, w.about);
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s => opts.filters.push(s.to_string()),
        }
    }
    if let Some(n) = rounds {
        opts.mode.min_rounds = n;
        opts.mode.max_rounds = n;
    }
    Ok(Some(opts))
}

// ----- running -------------------------------------------------------------------------------

/// What a workload gets.
struct Ctx<'a> {
    opts: &'a Opts,
    mode: Mode,
    /// The server with the module loaded.
    server: &'a Server,
}

impl Ctx<'_> {
    /// A throughput variant: `--clients` connections to `server`, each with its own cycle of
    /// prebuilt transactions from `build(connection, transaction, out)`; `expect` lists the
    /// replies of one transaction.
    fn variant(
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
            conns.push(Conn::connect(server.port())?);
        }
        Ok(TVariant { name, plans, conns })
    }
}

/// Runs `run(variant)` for every variant, interleaved, round after round; `run` returns the
/// variant's metrics for one round (the first one decides when to stop). Even rounds run the
/// variants in reverse order (A B, B A, A B, ...), so a steady drift of the machine's speed
/// does not always favour the same variant. Returns `[variant][round][metric]`.
fn interleave(
    ctx: &Ctx,
    id: &str,
    names: &[&str],
    unit: &str,
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
            let _ = write!(line, "  {name} {} {unit}", fmt_num(metrics[0]));
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
fn converged(out: &[Vec<Vec<f64>>], tolerance: f64) -> bool {
    out.iter().skip(1).all(|v| {
        let ratios: Vec<f64> = v.iter().zip(&out[0]).map(|(a, b)| a[0] / b[0]).collect();
        rel_mad(&ratios) <= tolerance
    })
}

/// The first metric of each variant, per round.
fn firsts(per: &[Vec<Vec<f64>>]) -> Vec<Vec<f64>> {
    per.iter()
        .map(|v| v.iter().map(|m| m[0]).collect())
        .collect()
}

/// A throughput variant: connections and their prebuilt transactions.
struct TVariant {
    name: &'static str,
    plans: Vec<Plan>,
    conns: Vec<Conn>,
}

/// One connection's cycle of prebuilt transactions.
struct Plan {
    bytes: Vec<u8>,
    /// Byte offset where each transaction starts, plus the end.
    starts: Vec<usize>,
    /// The replies of one transaction.
    expect: Vec<Expect>,
}

/// Warms up, then measures every variant's tx/s in interleaved rounds.
/// Returns the number of rounds and `[variant][round]` tx/s.
fn measure_throughput(
    ctx: &Ctx,
    id: &str,
    variants: &mut [TVariant],
) -> Result<(usize, Vec<Vec<f64>>), String> {
    let (depth, threads) = (ctx.opts.depth, ctx.opts.threads);
    for v in variants.iter_mut() {
        throughput(v, depth, threads, ctx.mode.warmup)?;
    }
    let names: Vec<&str> = variants.iter().map(|v| v.name).collect();
    let per = interleave(ctx, id, &names, "tx/s", |i| {
        Ok(vec![throughput(
            &mut variants[i],
            depth,
            threads,
            ctx.mode.round,
        )?])
    })?;
    Ok((per[0].len(), firsts(&per)))
}

/// Completed transactions per second of one variant over `duration`.
fn throughput(
    v: &mut TVariant,
    depth: usize,
    threads: usize,
    duration: Duration,
) -> Result<f64, String> {
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
    Ok(done as f64 / (end - start).as_secs_f64())
}

struct Driven {
    done: u64,
    errors: u64,
    first_error: Option<String>,
    end: Instant,
}

/// One client thread: sends a batch of `depth` transactions on each connection, then walks the
/// connections round-robin, reading and checking a batch's replies and sending the next batch
/// until `deadline`.
fn drive(
    conns: &mut [Conn],
    plans: &[Plan],
    depth: usize,
    deadline: Instant,
) -> Result<Driven, String> {
    struct Lane<'a> {
        conn: &'a mut Conn,
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
        lane.conn.send(bytes)
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
                            clip(reply)
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

// ----- RESP client ---------------------------------------------------------------------------

fn push_cmd(out: &mut Vec<u8>, args: &[&[u8]]) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    push_cmd(&mut out, args);
    out
}

/// Index of the CR of the first CRLF at or after `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    tail.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

fn parse_len(text: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad RESP length {:?}", show(text)))
}

/// End (exclusive) of the RESP2 reply starting at `pos`; `None` when incomplete.
fn reply_end(buf: &[u8], pos: usize) -> Result<Option<usize>, String> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(cr) = line_end(buf, pos + 1) else {
        return Ok(None);
    };
    let after = cr + 2;
    match kind {
        b'+' | b'-' | b':' => Ok(Some(after)),
        b'$' => {
            let n = parse_len(&buf[pos + 1..cr])?;
            if n < 0 {
                return Ok(Some(after));
            }
            let end = after + n as usize + 2;
            Ok((buf.len() >= end).then_some(end))
        }
        b'*' => {
            let n = parse_len(&buf[pos + 1..cr])?;
            let mut cur = after;
            for _ in 0..n.max(0) {
                match reply_end(buf, cur)? {
                    Some(e) => cur = e,
                    None => return Ok(None),
                }
            }
            Ok(Some(cur))
        }
        other => Err(format!("unexpected RESP type byte {:?}", other as char)),
    }
}

/// What one reply must look like.
#[derive(Clone, Debug)]
enum Expect {
    Exact(Vec<u8>),
    /// A non-null bulk string (the id from TXU.BEGIN).
    Bulk,
    Int,
    ErrorPrefix(Vec<u8>),
    /// An array of this many elements, none of them an error.
    ArrayNoErrors(usize),
}

impl Expect {
    fn ok() -> Expect {
        Expect::Exact(b"+OK\r\n".to_vec())
    }

    fn queued() -> Expect {
        Expect::Exact(b"+QUEUED\r\n".to_vec())
    }

    fn matches(&self, r: &[u8]) -> bool {
        match self {
            Expect::Exact(e) => r == e.as_slice(),
            Expect::Bulk => r.starts_with(b"$") && !r.starts_with(b"$-"),
            Expect::Int => r.starts_with(b":"),
            Expect::ErrorPrefix(p) => r.starts_with(p),
            Expect::ArrayNoErrors(n) => array_without_errors(r, *n),
        }
    }

    fn describe(&self) -> String {
        match self {
            Expect::Exact(e) => format!("{:?}", clip(e)),
            Expect::Bulk => "a bulk string".into(),
            Expect::Int => "an integer".into(),
            Expect::ErrorPrefix(p) => format!("an error starting {:?}", show(p)),
            Expect::ArrayNoErrors(n) => format!("an array of {n} replies without errors"),
        }
    }
}

fn array_without_errors(r: &[u8], n: usize) -> bool {
    let Some(cr) = line_end(r, 1) else {
        return false;
    };
    if r[0] != b'*' || parse_len(&r[1..cr]) != Ok(n as i64) {
        return false;
    }
    let mut cur = cr + 2;
    for _ in 0..n {
        if r.get(cur) == Some(&b'-') {
            return false;
        }
        match reply_end(r, cur) {
            Ok(Some(e)) => cur = e,
            _ => return false,
        }
    }
    cur == r.len()
}

/// The replies of a transaction: `first` (MULTI's OK or TXU.BEGIN's id), `n` times QUEUED,
/// then `exec`.
fn tx_expect(first: Expect, n: usize, exec: Expect) -> Vec<Expect> {
    let mut v = vec![first];
    v.extend(std::iter::repeat_n(Expect::queued(), n));
    v.push(exec);
    v
}

/// `*n` followed by `n` times `+OK`.
fn array_of_ok(n: usize) -> Expect {
    let mut e = format!("*{n}\r\n").into_bytes();
    for _ in 0..n {
        e.extend_from_slice(b"+OK\r\n");
    }
    Expect::Exact(e)
}

fn check_reply(expect: &Expect, reply: &[u8], what: &str) -> Result<(), String> {
    if expect.matches(reply) {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {}, got {:?}",
            expect.describe(),
            clip(reply)
        ))
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A reply shortened for messages.
fn clip(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let s = show(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{s}...")
    } else {
        s
    }
}

/// A blocking RESP2 connection that hands out replies as ranges of its buffer.
struct Conn {
    stream: TcpStream,
    /// Received bytes are `buf[start..end]`; the rest is room for the next read.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Conn {
    fn connect(port: u16) -> Result<Conn, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            stream,
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("write to server: {e}"))
    }

    /// The next reply, as a range for [`Conn::reply`] (valid until the next call).
    fn next_reply(&mut self) -> Result<Range<usize>, String> {
        loop {
            if let Some(end) = reply_end(&self.buf[..self.end], self.start)? {
                let r = self.start..end;
                self.start = end;
                return Ok(r);
            }
            // Move the partial reply to the front; grow when it fills the buffer.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!("no reply within {READ_TIMEOUT:?}"))
                }
                Err(e) => return Err(format!("read from server: {e}")),
            }
        }
    }

    fn reply(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// One command, its reply.
    fn call(&mut self, args: &[&[u8]]) -> Result<Vec<u8>, String> {
        self.send(&encode(args))?;
        let r = self.next_reply()?;
        Ok(self.reply(r).to_vec())
    }

    /// Reads `n` replies; reply `i` must match `expect[min(i, expect.len() - 1)]`.
    fn expect_replies(&mut self, expect: &[Expect], n: usize) -> Result<(), String> {
        for i in 0..n {
            let r = self.next_reply()?;
            let e = &expect[i.min(expect.len() - 1)];
            check_reply(e, self.reply(r), &format!("reply {}", i + 1))?;
        }
        Ok(())
    }

    /// Sends `request` (`n` commands) and checks their replies as [`Conn::expect_replies`].
    fn pipeline(&mut self, request: &[u8], expect: &[Expect], n: usize) -> Result<(), String> {
        self.send(request)?;
        self.expect_replies(expect, n)
    }

    /// `INFO <section>` parsed into `field -> value`.
    fn info(&mut self, section: &str) -> Result<HashMap<String, String>, String> {
        let r = self.call(&[b"INFO", section.as_bytes()])?;
        let body = bulk_body(&r).ok_or_else(|| format!("INFO {section}: {:?}", clip(&r)))?;
        Ok(common::parse_info(&show(body)))
    }

    fn config_set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let r = self.call(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()])?;
        check_reply(&Expect::ok(), &r, &format!("CONFIG SET {name} {value}"))
    }

    fn config_get(&mut self, name: &str) -> Result<String, String> {
        let r = self.call(&[b"CONFIG", b"GET", name.as_bytes()])?;
        match flat_array(&r).as_deref() {
            Some([_, value]) => Ok(value.clone()),
            _ => Err(format!("CONFIG GET {name}: {:?}", clip(&r))),
        }
    }

    /// The server's clock (`TIME`), in Unix milliseconds.
    fn server_time_ms(&mut self) -> Result<i64, String> {
        let r = self.call(&[b"TIME"])?;
        match flat_array(&r).as_deref() {
            Some([s, us]) => match (s.parse::<i64>(), us.parse::<i64>()) {
                (Ok(s), Ok(us)) => Ok(s * 1000 + us / 1000),
                _ => Err(format!("TIME: {:?}", clip(&r))),
            },
            _ => Err(format!("TIME: {:?}", clip(&r))),
        }
    }

    /// Every key matching `pattern` (`SCAN`).
    fn scan_match(&mut self, pattern: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        loop {
            let r = self.call(&[b"SCAN", &cursor, b"MATCH", pattern, b"COUNT", b"1000"])?;
            // *2 [cursor, [keys...]]
            let bad = || format!("SCAN: {:?}", clip(&r));
            let cr = line_end(&r, 1).ok_or_else(bad)?;
            let first_end = reply_end(&r, cr + 2)?.ok_or_else(bad)?;
            cursor = bulk_body(&r[cr + 2..first_end]).ok_or_else(bad)?.to_vec();
            let names = flat_array(&r[first_end..]).ok_or_else(bad)?;
            keys.extend(names.into_iter().map(String::into_bytes));
            if cursor == b"0" {
                return Ok(keys);
            }
        }
    }
}

// ----- statistics ----------------------------------------------------------------------------

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Median absolute deviation relative to the median.
fn rel_mad(v: &[f64]) -> f64 {
    let m = median(v);
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    median(&dev) / m.abs()
}

/// The median over rounds of `a / b` measured in the same round: the two sides of a ratio
/// ran seconds apart, so drift in the machine's speed over the run cancels out.
fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    median(&r)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ----- results -------------------------------------------------------------------------------

struct Row {
    variant: String,
    /// Median over rounds (or a derived number); `None` for a ratio-only row.
    value: Option<f64>,
    unit: &'static str,
    /// This row / the workload's baseline (1.00 on the baseline itself).
    ratio: Option<f64>,
    per_round: Vec<f64>,
}

impl Row {
    /// A measured variant; its ratio is [`paired_ratio`] to `baseline`.
    fn measured(variant: &str, unit: &'static str, per_round: &[f64], baseline: &[f64]) -> Row {
        Row {
            variant: variant.into(),
            value: Some(median(per_round)),
            unit,
            ratio: Some(paired_ratio(per_round, baseline)),
            per_round: per_round.to_vec(),
        }
    }

    fn ratio(variant: &str, ratio: f64) -> Row {
        Row {
            variant: variant.into(),
            value: None,
            unit: "",
            ratio: Some(ratio),
            per_round: Vec::new(),
        }
    }

    fn derived(variant: &str, value: f64, unit: &'static str) -> Row {
        Row {
            variant: variant.into(),
            value: Some(value),
            unit,
            ratio: None,
            per_round: Vec::new(),
        }
    }

    /// (max - min) / median over rounds.
    fn spread(&self) -> Option<f64> {
        if self.per_round.len() < 2 {
            return None;
        }
        let max = self.per_round.iter().copied().fold(f64::MIN, f64::max);
        let min = self.per_round.iter().copied().fold(f64::MAX, f64::min);
        Some((max - min) / median(&self.per_round))
    }
}

struct Outcome {
    id: &'static str,
    title: String,
    rounds: usize,
    rows: Vec<Row>,
    notes: Vec<String>,
    seconds: f64,
}

impl Outcome {
    fn new(id: &'static str, title: String, rounds: usize) -> Outcome {
        Outcome {
            id,
            title,
            rounds,
            rows: Vec::new(),
            notes: Vec::new(),
            seconds: 0.0,
        }
    }
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<30} {:<24} {:>10}  {:<6} {:>6} {:>6} {:>7}",
        "workload", "variant", "median", "unit", "ratio", "rounds", "spread"
    );
    for o in outcomes {
        for (i, r) in o.rows.iter().enumerate() {
            let (title, rounds) = if i == 0 {
                (o.title.as_str(), o.rounds.to_string())
            } else {
                ("", String::new())
            };
            let _ = writeln!(
                t,
                "{:<30} {:<24} {:>10}  {:<6} {:>6} {:>6} {:>7}",
                title,
                r.variant,
                r.value.map(fmt_num).unwrap_or_default(),
                r.unit,
                r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
                rounds,
                r.spread()
                    .map(|s| format!("{:.1}%", s * 100.0))
                    .unwrap_or_default()
            );
        }
        for n in &o.notes {
            let _ = writeln!(t, "{:<30} note: {n}", "");
        }
    }
    t
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

fn json(header: &Header, outcomes: &[Outcome], total_secs: f64) -> String {
    let mut j = String::new();
    let _ = writeln!(j, "{{");
    let _ = writeln!(j, "  \"mode\": {},", json_str(header.mode));
    let _ = writeln!(j, "  \"unix_time\": {},", header.unix_time);
    let _ = writeln!(j, "  \"total_seconds\": {},", json_num(Some(total_secs)));
    let _ = writeln!(
        j,
        "  \"loadavg\": {{\"start\": {}, \"end\": {}}},",
        json_str(&header.loadavg_start),
        json_str(&loadavg())
    );
    let _ = writeln!(
        j,
        "  \"server\": {{\"binary\": {}, \"version\": {}}},",
        json_str(&header.binary),
        json_str(&header.version)
    );
    let _ = writeln!(
        j,
        "  \"machine\": {{\"nproc\": {}, \"cpu\": {}}},",
        header.nproc,
        json_str(&header.cpu)
    );
    let _ = writeln!(
        j,
        "  \"client\": {{\"clients\": {}, \"threads\": {}, \"depth\": {}, \
         \"round_seconds\": {}, \"min_rounds\": {}, \"max_rounds\": {}, \"tolerance\": {}}},",
        header.clients,
        header.threads,
        header.depth,
        json_num(Some(header.round_secs)),
        header.min_rounds,
        header.max_rounds,
        json_num(Some(header.tolerance))
    );
    let _ = writeln!(j, "  \"workloads\": [");
    for (wi, o) in outcomes.iter().enumerate() {
        let _ = writeln!(j, "    {{");
        let _ = writeln!(j, "      \"id\": {},", json_str(o.id));
        let _ = writeln!(j, "      \"title\": {},", json_str(&o.title));
        let _ = writeln!(j, "      \"rounds\": {},", o.rounds);
        let _ = writeln!(j, "      \"seconds\": {},", json_num(Some(o.seconds)));
        let notes: Vec<String> = o.notes.iter().map(|n| json_str(n)).collect();
        let _ = writeln!(j, "      \"notes\": [{}],", notes.join(", "));
        let _ = writeln!(j, "      \"rows\": [");
        for (ri, r) in o.rows.iter().enumerate() {
            let per: Vec<String> = r.per_round.iter().map(|x| json_num(Some(*x))).collect();
            let _ = writeln!(
                j,
                "        {{\"variant\": {}, \"median\": {}, \"unit\": {}, \"ratio\": {}, \
                 \"spread\": {}, \"per_round\": [{}]}}{}",
                json_str(&r.variant),
                json_num(r.value),
                json_str(r.unit),
                json_num(r.ratio),
                json_num(r.spread()),
                per.join(", "),
                if ri + 1 < o.rows.len() { "," } else { "" }
            );
        }
        let _ = writeln!(j, "      ]");
        let _ = writeln!(
            j,
            "    }}{}",
            if wi + 1 < outcomes.len() { "," } else { "" }
        );
    }
    let _ = writeln!(j, "  ]");
    let _ = writeln!(j, "}}");
    j
}

// ----- main ----------------------------------------------------------------------------------

struct Header {
    mode: &'static str,
    unix_time: u64,
    binary: String,
    version: String,
    nproc: usize,
    cpu: String,
    clients: usize,
    threads: usize,
    depth: usize,
    round_secs: f64,
    min_rounds: usize,
    max_rounds: usize,
    tolerance: f64,
    loadavg_start: String,
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
    let mut c = Conn::connect(server.port())?;
    let id = c.call(&[b"TXU.BEGIN"])?;
    check_reply(
        &Expect::Bulk,
        &id,
        "TXU.BEGIN (is the module loaded and built?)",
    )?;
    let r = c.call(&[b"TXU.ROLLBACK"])?;
    check_reply(&Expect::ok(), &r, "TXU.ROLLBACK")
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
    let module = common::server::module_path();
    warn_if_stale(&module);
    let server = Server::start();
    smoke(&server)?;
    let info: HashMap<String, String> = server.info("server");
    let version = match (info.get("valkey_version"), info.get("redis_version")) {
        (Some(v), _) => format!("valkey {v}"),
        (None, Some(v)) => format!("redis {v}"),
        _ => "unknown".into(),
    };
    // Not INFO's `executable`: for a bare name Redis joins it to its working directory.
    let binary = resolve_binary(&common::server::server_binary());
    let header = Header {
        mode: opts.mode.name,
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        binary,
        version,
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu: cpu_model(),
        clients: opts.clients,
        threads: opts.threads,
        depth: opts.depth,
        round_secs: opts.mode.round.as_secs_f64(),
        min_rounds: opts.mode.min_rounds,
        max_rounds: opts.mode.max_rounds,
        tolerance: opts.mode.tolerance,
        loadavg_start: loadavg(),
    };
    let head = format!(
        "txu bench ({} mode): server {} ({}), module {}\nmachine: {} CPUs, {}, load average \
         {} at start; client: {} connections, {} threads, {} tx in flight per connection, {} s \
         per round, {}..{} rounds (stop when per-round ratios agree within {:.0}%)\nratio = \
         median over rounds of variant / baseline (first row of the workload, same round, same \
         metric): above 1 is faster for /s units, slower for times; spread = (max - min) / \
         median over rounds",
        header.mode,
        header.binary,
        header.version,
        module.display(),
        header.nproc,
        header.cpu,
        header.loadavg_start,
        header.clients,
        header.threads,
        header.depth,
        header.round_secs,
        header.min_rounds,
        header.max_rounds,
        header.tolerance * 100.0
    );
    eprintln!("{head}");
    let ctx = Ctx {
        opts,
        mode: opts.mode,
        server: &server,
    };
    let mut outcomes = Vec::new();
    for (i, w) in selected.iter().enumerate() {
        eprintln!("[{}/{}] {}: {}", i + 1, selected.len(), w.id, w.about);
        let t = Instant::now();
        let mut flush = Conn::connect(server.port())?;
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
    println!(
        "total time {total:.1} s; load average {} at the end",
        loadavg()
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join("latest.json");
    std::fs::write(&path, json(&header, &outcomes, total))
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn main() {
    let code = match parse_args() {
        Ok(None) => 0,
        Ok(Some(opts)) => match run(&opts) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("bench FAILED: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e}");
            2
        }
    };
    std::process::exit(code);
}
