//! `MULTI; SET x10; EXEC` vs `TXU.BEGIN; TXU.QUEUE SET x10; TXU.EXEC` vs one `EVAL`: transactions
//! per second of `--clients` connections, pipelined.

use super::{push_multi_exec, push_txu_exec, VALUE};
use crate::client::{array_of_ok, tx_expect, Expect};
use crate::measure::{throughput_outcome, Ctx};
use crate::report::{Outcome, Row};
use crate::resp::push_command;
use crate::stats::paired_ratio;

/// The target for txu against MULTI/EXEC here (reported, never asserted).
const TEN_SET_TARGET: f64 = 0.8;

const EVAL_SETS: &[u8] =
    b"for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end return #KEYS";

/// `MULTI; SET x10; EXEC` vs `TXU.BEGIN; TXU.QUEUE SET x10; TXU.EXEC` vs `EVAL`.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let key = |c: usize, t: usize, i: usize| format!("w1:{c}:{t}:{i}").into_bytes();
    let sets = |c: usize, t: usize| -> Vec<Vec<Vec<u8>>> {
        (0..10)
            .map(|i| vec![b"SET".to_vec(), key(c, t, i), VALUE.to_vec()])
            .collect()
    };
    let exec_ok = array_of_ok(10);
    let mut variants = vec![
        ctx.variant(
            "multi/exec",
            ctx.server,
            tx_expect(Expect::ok(), 10, exec_ok.clone()),
            |c, t, out| push_multi_exec(out, &sets(c, t)),
        )?,
        ctx.variant(
            "txu",
            ctx.server,
            tx_expect(Expect::Bulk, 10, exec_ok),
            |c, t, out| push_txu_exec(out, &[], &sets(c, t)),
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
                push_command(out, &args);
            },
        )?,
    ];
    let (mut out, per) = throughput_outcome(ctx, "ten-set", "10-SET tx", "tx/s", &mut variants)?;
    let [multi, txu, eval] = [&per[0], &per[1], &per[2]];
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
