//! Single-command transactions: MULTI/SET/EXEC vs TXU.BEGIN/QUEUE/EXEC vs `TXU.RUN 3 SET k v`
//! vs plain SET vs the ceiling `TXU._LOOP 3 SET k v`: what one transaction costs the server on
//! top of its command.

use super::{push_loop, push_multi_exec, push_txu_exec, push_txu_run, NO_CEILING, VALUE};
use crate::client::{array_of_ok, tx_expect, Expect};
use crate::measure::{throughput_outcome, Ctx};
use crate::report::{Outcome, Row};
use crate::resp::push_command;
use crate::stats::{median, paired_ratio};

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let key = |c: usize, t: usize| format!("w5:{c}:{t}").into_bytes();
    let set = |c: usize, t: usize| vec![vec![b"SET".to_vec(), key(c, t), VALUE.to_vec()]];
    let exec_ok = array_of_ok(1);
    let mut variants = vec![
        ctx.variant(
            "multi/exec",
            ctx.server,
            tx_expect(Expect::ok(), 1, exec_ok.clone()),
            |c, t, out| push_multi_exec(out, &set(c, t)),
        )?,
        ctx.variant(
            "txu begin/queue/exec",
            ctx.server,
            tx_expect(Expect::Bulk, 1, exec_ok.clone()),
            |c, t, out| push_txu_exec(out, &[], &set(c, t)),
        )?,
        ctx.variant("txu.run", ctx.server, vec![exec_ok.clone()], |c, t, out| {
            push_txu_run(out, &[], &set(c, t))
        })?,
        ctx.variant("plain SET", ctx.server, vec![Expect::ok()], |c, t, out| {
            push_command(out, &[b"SET", &key(c, t), VALUE]);
        })?,
    ];
    if ctx.ceiling {
        variants.push(ctx.variant(
            "ceiling (txu._loop)",
            ctx.server,
            vec![exec_ok],
            |c, t, out| push_loop(out, &set(c, t)),
        )?);
    }
    let (mut out, m) = throughput_outcome(ctx, "single", "1-command tx", "ops/s", &mut variants)?;
    let cpu = &m.cpu;
    out.target("single/run", paired_ratio(&cpu[0], &cpu[2]));
    out.rows.push(Row::ratio(
        "cpu plain SET / txu.run",
        paired_ratio(&cpu[3], &cpu[2]),
    ));
    if let Some(ceiling) = cpu.get(4) {
        out.target("single/ceiling", paired_ratio(ceiling, &cpu[2]));
        out.rows.push(Row::ratio(
            "cpu ceiling / txu.run",
            paired_ratio(ceiling, &cpu[2]),
        ));
    } else {
        out.notes.push(NO_CEILING.into());
    }
    let extra = |v: usize, base: usize| {
        let d: Vec<f64> = cpu[v].iter().zip(&cpu[base]).map(|(a, b)| a - b).collect();
        median(&d)
    };
    out.rows.push(Row::derived(
        "txu.run extra vs multi/exec",
        extra(2, 0),
        "us/tx",
    ));
    out.rows.push(Row::derived(
        "txu.run extra vs plain SET",
        extra(2, 3),
        "us/tx",
    ));
    out.rows.push(Row::derived(
        "3-command extra vs multi",
        extra(1, 0),
        "us/tx",
    ));
    out.notes.push(
        "extra us/tx = server CPU per transaction of the variant - of the other, median over \
         rounds of the same-round difference"
            .into(),
    );
    Ok(out)
}
