//! One `TXU.EXEC` of 1,000 writes: rolled back (the last command fails) vs committed, and
//! MULTI/EXEC committing the same writes: the server's CPU time of the EXEC (`INFO cpu` just
//! before and after it) and its latency.

use super::{push_multi, push_txu_queue};
use crate::client::{check_reply, connect, Commands, Expect};
use crate::measure::{interleave, server_cpu_secs, Ctx};
use crate::report::{Outcome, Row};
use crate::resp::{encode_command, esc, push_command};
use crate::stats::{median, paired_ratio};
use std::time::Instant;

/// One `TXU.EXEC` of 1,000 writes that rolls back (999 SETs on existing keys, then INCR on a
/// non-integer) vs the same writes committed (INCR on an integer): server CPU and latency.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    const SETS: usize = 999;
    let mut con = connect(ctx.server.port())?;
    // INFO cpu on a connection of its own: on `con` it would be queued inside the MULTI.
    let mut ctl = connect(ctx.server.port())?;
    let keys: Vec<Vec<u8>> = (0..SETS)
        .map(|i| format!("w3:k:{i}").into_bytes())
        .collect();
    let committed = [b'c'; 100];
    let undone = [b'r'; 100];
    let mut setup = Vec::new();
    for k in &keys {
        push_command(&mut setup, &[b"SET", k, &committed]);
    }
    push_command(&mut setup, &[b"SET", b"w3:bad", b"not-a-number"]);
    push_command(&mut setup, &[b"SET", b"w3:ctr", b"0"]);
    con.pipeline(&setup, &[Expect::ok()], SETS + 2)?;

    // Everything before the EXEC; the EXEC alone is timed.
    let writes = |value: &[u8], last: &[u8]| -> Vec<Vec<Vec<u8>>> {
        let sets = keys
            .iter()
            .map(|k| vec![b"SET".to_vec(), k.clone(), value.to_vec()]);
        sets.chain([vec![b"INCR".to_vec(), last.to_vec()]])
            .collect()
    };
    let txu_body = |value: &[u8], last: &[u8]| {
        let mut out = Vec::new();
        push_txu_queue(&mut out, &[], &writes(value, last));
        out
    };
    let mut multi_body = Vec::new();
    push_multi(&mut multi_body, &writes(&committed, b"w3:ctr"));
    let txu_exec = encode_command(&[b"TXU.EXEC"]);
    let bodies = [
        (txu_body(&committed, b"w3:ctr"), Expect::Bulk, &txu_exec),
        (txu_body(&undone, b"w3:bad"), Expect::Bulk, &txu_exec),
        (multi_body, Expect::ok(), &encode_command(&[b"EXEC"])),
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
        let (mut ms, mut cpu) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
        for _ in 0..samples {
            con.write(body)?;
            con.expect_replies(&[first.clone(), Expect::queued()], SETS + 2)?;
            let cpu_before = server_cpu_secs(&mut ctl)?;
            let start = Instant::now();
            con.write(exec)?;
            let r = con.next_reply()?;
            ms.push(start.elapsed().as_secs_f64() * 1e3);
            check_reply(&exec_expect[variant], con.reply(r), "EXEC")?;
            cpu.push((server_cpu_secs(&mut ctl)? - cpu_before) * 1e6);
            if variant == 1 {
                // A rollback that did not restore the keys must not look fast.
                let got = con.call(&[b"GET", &keys[SETS / 2]])?;
                let want = [&b"$100\r\n"[..], &committed, b"\r\n"].concat();
                if got != want {
                    return Err(format!("after a rollback GET returned {:?}", esc(&got)));
                }
            }
        }
        Ok(vec![median(&cpu), median(&ms)])
    };
    for v in 0..names.len() {
        probe(v)?; // warm-up
    }
    let per = interleave(ctx, "rollback", &names, &["cpu-us", "ms"], &mut probe)?;
    let pick = |v: usize, m: usize| per[v].iter().map(|r| r[m]).collect::<Vec<f64>>();
    let (cpu, ms): (Vec<_>, Vec<_>) = (0..names.len()).map(|v| (pick(v, 0), pick(v, 1))).unzip();
    let mut out = Outcome::new("rollback", "1,000-write tx, one EXEC".into(), per[0].len());
    for (v, name) in names.iter().enumerate() {
        out.rows.push(Row {
            variant: (*name).into(),
            value: Some(median(&ms[v])),
            unit: "ms",
            cpu_us: Some(median(&cpu[v])),
            ratio: (v < 2).then(|| paired_ratio(&cpu[v], &cpu[0])),
            per_round: ms[v].clone(),
            cpu_per_round: cpu[v].clone(),
            ..Row::default()
        });
    }
    out.rows.push(Row::ratio(
        "latency rollback/commit",
        paired_ratio(&ms[1], &ms[0]),
    ));
    out.rows.push(Row::ratio(
        "cpu txu commit/multi",
        paired_ratio(&cpu[0], &cpu[2]),
    ));
    out.target("rollback", paired_ratio(&cpu[1], &cpu[0]));
    out.notes.push(format!(
        "the EXEC alone (queueing excluded), median of {samples} per variant and round: cpu = \
         the server's CPU time between an INFO cpu just before the EXEC and one just after it; \
         ms = its latency; ratio = cpu / cpu of txu commit (above 1: costlier)"
    ));
    Ok(out)
}
