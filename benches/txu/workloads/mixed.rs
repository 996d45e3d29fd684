//! Ten writes over five types per transaction: MULTI/EXEC vs TXU.BEGIN/QUEUE/EXEC vs TXU.RUN vs
//! the ceiling `TXU._LOOP`, server CPU per transaction and transactions per second.

use super::{push_loop, push_multi_exec, push_txu_exec, push_txu_run, NO_CEILING, VALUE};
use crate::client::{tx_expect, Expect};
use crate::measure::{throughput_outcome, Ctx};
use crate::report::{Outcome, Row};
use crate::stats::paired_ratio;

/// Ten writes over five types. Lists are trimmed, set and zset members come from a
/// small pool, so memory stays bounded however long it runs.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
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
    let replies = Expect::ArrayNoErrors(10);
    let mut variants = vec![
        ctx.variant(
            "multi/exec",
            ctx.server,
            tx_expect(Expect::ok(), 10, replies.clone()),
            |c, t, out| push_multi_exec(out, &commands(c, t)),
        )?,
        ctx.variant(
            "txu begin/queue/exec",
            ctx.server,
            tx_expect(Expect::Bulk, 10, replies.clone()),
            |c, t, out| push_txu_exec(out, &[], &commands(c, t)),
        )?,
        ctx.variant("txu.run", ctx.server, vec![replies.clone()], |c, t, out| {
            push_txu_run(out, &[], &commands(c, t))
        })?,
    ];
    if ctx.ceiling {
        variants.push(ctx.variant(
            "ceiling (txu._loop)",
            ctx.server,
            vec![replies],
            |c, t, out| push_loop(out, &commands(c, t)),
        )?);
    }
    let (mut out, m) = throughput_outcome(ctx, "mixed", "mixed-type tx", "tx/s", &mut variants)?;
    out.target("mixed/run", paired_ratio(&m.cpu[0], &m.cpu[2]));
    if let Some(ceiling) = m.cpu.get(3) {
        out.target("mixed/ceiling", paired_ratio(ceiling, &m.cpu[2]));
        out.rows.push(Row::ratio(
            "cpu ceiling / txu.run",
            paired_ratio(ceiling, &m.cpu[2]),
        ));
    } else {
        out.notes.push(NO_CEILING.into());
    }
    out.notes.push(
        "INCR HSET HINCRBY LPUSH LTRIM SADD SREM ZADD ZINCRBY SET on 6 keys of 5 types".into(),
    );
    Ok(out)
}
