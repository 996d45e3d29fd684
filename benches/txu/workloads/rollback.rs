//! Latency of one `TXU.EXEC` of 1,000 writes: rolled back (the last command fails) vs committed,
//! and MULTI/EXEC committing the same writes.

use super::{push_multi, push_txu_queue};
use crate::client::{check_reply, connect, Commands, Expect};
use crate::measure::{firsts, interleave, Ctx};
use crate::report::{Outcome, Row};
use crate::resp::{encode_command, esc, push_command};
use crate::stats::{median, paired_ratio};
use std::time::Instant;

/// Latency of one `TXU.EXEC` of 1,000 writes that rolls back (999 SETs on existing
/// keys, then INCR on a non-integer) vs the same writes committed (INCR on an integer).
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    const SETS: usize = 999;
    let mut con = connect(ctx.server.port())?;
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
        let mut ms = Vec::with_capacity(samples);
        for _ in 0..samples {
            con.write(body)?;
            con.expect_replies(&[first.clone(), Expect::queued()], SETS + 2)?;
            let start = Instant::now();
            con.write(exec)?;
            let r = con.next_reply()?;
            ms.push(start.elapsed().as_secs_f64() * 1e3);
            check_reply(&exec_expect[variant], con.reply(r), "EXEC")?;
            if variant == 1 {
                // A rollback that did not restore the keys must not look fast.
                let got = con.call(&[b"GET", &keys[SETS / 2]])?;
                let want = [&b"$100\r\n"[..], &committed, b"\r\n"].concat();
                if got != want {
                    return Err(format!("after a rollback GET returned {:?}", esc(&got)));
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
