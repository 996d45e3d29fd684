//! Single-command transactions vs MULTI/SET/EXEC vs plain SET: what one transaction costs on top
//! of its command.

use super::{push_multi_exec, push_txu_exec, VALUE};
use crate::client::{array_of_ok, tx_expect, Expect};
use crate::measure::{throughput_outcome, Ctx};
use crate::report::{Outcome, Row};
use crate::resp::push_command;
use crate::stats::{median, paired_ratio};

/// Single-command transactions: what one transaction costs on top of its command.
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
            "txu",
            ctx.server,
            tx_expect(Expect::Bulk, 1, exec_ok),
            |c, t, out| push_txu_exec(out, &[], &set(c, t)),
        )?,
        ctx.variant("plain SET", ctx.server, vec![Expect::ok()], |c, t, out| {
            push_command(out, &[b"SET", &key(c, t), VALUE]);
        })?,
    ];
    let (mut out, per) = throughput_outcome(ctx, "single", "1-command tx", "ops/s", &mut variants)?;
    let [multi, txu, plain] = [median(&per[0]), median(&per[1]), median(&per[2])];
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
