//! Ten `SET`s of 100 bytes per transaction: `MULTI … EXEC` vs `TXU.BEGIN; TXU.QUEUE …; TXU.EXEC`
//! vs one `TXU.RUN` vs one `EVALSHA` (plain, and with the undo a Lua script has to do by hand)
//! vs the ceiling `TXU._LOOP`: server CPU per transaction and transactions per second of
//! `--clients` connections, pipelined.

use super::{push_loop, push_multi_exec, push_txu_exec, push_txu_run, NO_CEILING, VALUE};
use crate::client::{array_of_ok, connect, tx_expect, Expect};
use crate::measure::{throughput_outcome, Ctx, TVariant};
use crate::report::{Outcome, Row};
use crate::resp::{bulk_body, esc, push_command};
use crate::stats::paired_ratio;

/// The plain script: the writes and nothing else.
pub(super) const EVAL_SETS: &str =
    "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end return #KEYS";

/// What a script must do to roll back by hand: `DUMP` and `PEXPIRETIME` every key first, and on
/// an error `RESTORE` (or delete) every key written so far, newest first.
const EVAL_UNDO: &str = "\
local saved = {}
for i = 1, #KEYS do
  saved[i] = {redis.call('DUMP', KEYS[i]), redis.call('PEXPIRETIME', KEYS[i])}
end
for i = 1, #KEYS do
  local r = redis.pcall('SET', KEYS[i], ARGV[i])
  if type(r) == 'table' and r.err then
    for j = i, 1, -1 do
      local d, t = saved[j][1], saved[j][2]
      if d then
        redis.call('RESTORE', KEYS[j], t > 0 and t or 0, d, 'REPLACE', 'ABSTTL')
      else
        redis.call('DEL', KEYS[j])
      end
    end
    return r
  end
end
return #KEYS";

/// `SCRIPT LOAD` of `body`: its SHA1.
pub(super) fn load_script(ctx: &Ctx, body: &str) -> Result<Vec<u8>, String> {
    let mut c = connect(ctx.server.port())?;
    let r = c.call(&[b"SCRIPT", b"LOAD", body.as_bytes()])?;
    bulk_body(&r)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("SCRIPT LOAD: {:?}", esc(&r)))
}

pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    let key = |c: usize, t: usize, i: usize| format!("w1:{c}:{t}:{i}").into_bytes();
    let sets = |c: usize, t: usize| -> Vec<Vec<Vec<u8>>> {
        (0..10)
            .map(|i| vec![b"SET".to_vec(), key(c, t, i), VALUE.to_vec()])
            .collect()
    };
    let evalsha = |sha: &[u8], c: usize, t: usize, out: &mut Vec<u8>| {
        let keys: Vec<Vec<u8>> = (0..10).map(|i| key(c, t, i)).collect();
        let mut args: Vec<&[u8]> = vec![b"EVALSHA", sha, b"10"];
        args.extend(keys.iter().map(Vec::as_slice));
        args.extend(std::iter::repeat_n(VALUE, 10));
        push_command(out, &args);
    };
    let plain_sha = load_script(ctx, EVAL_SETS)?;
    let undo_sha = load_script(ctx, EVAL_UNDO)?;
    let exec_ok = array_of_ok(10);
    let ten = Expect::Exact(b":10\r\n".to_vec());
    let mut variants: Vec<TVariant> = vec![
        ctx.variant(
            "multi/exec",
            ctx.server,
            tx_expect(Expect::ok(), 10, exec_ok.clone()),
            |c, t, out| push_multi_exec(out, &sets(c, t)),
        )?,
        ctx.variant(
            "txu begin/queue/exec",
            ctx.server,
            tx_expect(Expect::Bulk, 10, exec_ok.clone()),
            |c, t, out| push_txu_exec(out, &[], &sets(c, t)),
        )?,
        ctx.variant("txu.run", ctx.server, vec![exec_ok.clone()], |c, t, out| {
            push_txu_run(out, &[], &sets(c, t))
        })?,
        ctx.variant("evalsha", ctx.server, vec![ten.clone()], |c, t, out| {
            evalsha(&plain_sha, c, t, out)
        })?,
        ctx.variant("evalsha + lua undo", ctx.server, vec![ten], |c, t, out| {
            evalsha(&undo_sha, c, t, out)
        })?,
    ];
    if ctx.ceiling {
        variants.push(ctx.variant(
            "ceiling (txu._loop)",
            ctx.server,
            vec![exec_ok],
            |c, t, out| push_loop(out, &sets(c, t)),
        )?);
    }
    let (mut out, m) = throughput_outcome(ctx, "ten-set", "10-SET tx", "tx/s", &mut variants)?;
    let cpu = &m.cpu;
    let (multi, txu, run, eval, undo) = (&cpu[0], &cpu[1], &cpu[2], &cpu[3], &cpu[4]);
    out.target("ten-set/txu", paired_ratio(multi, txu));
    out.target("ten-set/run", paired_ratio(multi, run));
    out.target("ten-set/eval", paired_ratio(eval, run));
    out.target("ten-set/lua-undo", paired_ratio(undo, run));
    out.rows
        .push(Row::ratio("cpu evalsha / txu.run", paired_ratio(eval, run)));
    out.rows.push(Row::ratio(
        "cpu lua undo / txu.run",
        paired_ratio(undo, run),
    ));
    if let Some(ceiling) = cpu.get(5) {
        out.target("ten-set/ceiling", paired_ratio(ceiling, run));
        out.target("ten-set/loop", paired_ratio(multi, ceiling));
        out.rows.push(Row::ratio(
            "cpu ceiling / txu.run",
            paired_ratio(ceiling, run),
        ));
    } else {
        out.notes.push(NO_CEILING.into());
    }
    out.notes.push(
        "evalsha: the scripts are loaded once (SCRIPT LOAD) and called by SHA1, as clients do; \
         lua undo: DUMP + PEXPIRETIME of each key first, RESTORE ... REPLACE ABSTTL (or DEL) on \
         an error"
            .into(),
    );
    Ok(out)
}
