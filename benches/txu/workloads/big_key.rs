//! One `HSET` on a big hash inside a transaction, MULTI/EXEC vs TXU: p50/p99 latency of the whole
//! transaction.

use super::{push_multi_exec, push_txu_exec};
use crate::client::{connect, tx_expect, Commands, Expect};
use crate::measure::{firsts, interleave, Ctx};
use crate::report::{Outcome, Row};
use crate::resp::{push_command, show};
use crate::stats::percentile;
use std::time::Instant;

/// One HSET on a big hash inside a transaction: latency of the whole transaction
/// (all its commands pipelined, from sending to the last reply).
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let fields = ctx.mode.big_fields;
    let mut con = connect(ctx.server.port())?;
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
        push_command(&mut req, &args);
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
        let hset = [vec![&b"HSET"[..], b"w4:big", &field, value]];
        let mut multi = Vec::new();
        push_multi_exec(&mut multi, &hset);
        let mut txu = Vec::new();
        push_txu_exec(&mut txu, &[], &hset);
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
            con.write(body)?;
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
    let per = interleave(ctx, "big-key", &names, &["us p50", "us p99"], |v| {
        probe(v, true)
    })?;
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
            ..Row::default()
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
