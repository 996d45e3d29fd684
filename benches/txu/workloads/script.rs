//! A Lua script doing ten `SET`s of 100 bytes: by `EVALSHA` alone (no rollback) vs the same
//! `EVALSHA` inside `TXU.RUN` (each of its calls routed through `TXU._CALL`, with its
//! pre-image) vs `TXU.RUN` of the ten `SET`s themselves: server CPU per transaction.

use super::ten_set::{load_script, EVAL_SETS};
use super::VALUE;
use crate::client::{array_of_ok, Expect};
use crate::measure::{throughput_outcome, Ctx};
use crate::report::{Outcome, Row};
use crate::resp::push_command;
use crate::stats::paired_ratio;

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let key = |c: usize, t: usize, i: usize| format!("w3:{c}:{t}:{i}").into_bytes();
    let sha = load_script(ctx, EVAL_SETS)?;
    let evalsha = |c: usize, t: usize| -> Vec<Vec<u8>> {
        let mut args = vec![b"EVALSHA".to_vec(), sha.clone(), b"10".to_vec()];
        args.extend((0..10).map(|i| key(c, t, i)));
        args.extend(std::iter::repeat_n(VALUE.to_vec(), 10));
        args
    };
    let ten = Expect::Exact(b":10\r\n".to_vec());
    let mut variants = vec![
        ctx.variant("evalsha", ctx.server, vec![ten], |c, t, out| {
            let args = evalsha(c, t);
            push_command(out, &args.iter().map(Vec::as_slice).collect::<Vec<_>>());
        })?,
        ctx.variant(
            "txu.run evalsha",
            ctx.server,
            vec![Expect::Exact(b"*1\r\n:10\r\n".to_vec())],
            |c, t, out| super::push_txu_run(out, &[], &[evalsha(c, t)]),
        )?,
        ctx.variant(
            "txu.run 10 sets",
            ctx.server,
            vec![array_of_ok(10)],
            |c, t, out| {
                let sets: Vec<Vec<Vec<u8>>> = (0..10)
                    .map(|i| vec![b"SET".to_vec(), key(c, t, i), VALUE.to_vec()])
                    .collect();
                super::push_txu_run(out, &[], &sets)
            },
        )?,
    ];
    let (mut out, m) =
        throughput_outcome(ctx, "script", "10-SET Lua script", "tx/s", &mut variants)?;
    let (eval, in_txu, sets) = (&m.cpu[0], &m.cpu[1], &m.cpu[2]);
    out.target("script/eval", paired_ratio(eval, in_txu));
    out.rows.push(Row::ratio(
        "cpu evalsha / txu.run evalsha",
        paired_ratio(eval, in_txu),
    ));
    out.rows.push(Row::ratio(
        "cpu txu.run sets / txu.run evalsha",
        paired_ratio(sets, in_txu),
    ));
    out.notes.push(
        "the script: for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end (10 keys, \
         100-byte values); inside TXU.RUN each call goes through TXU._CALL"
            .into(),
    );
    Ok(out)
}
