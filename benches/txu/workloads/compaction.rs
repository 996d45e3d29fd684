//! The undo log of `TXU.BEGIN RETAIN` with 10,000 INCRs over 10 keys, and `TXU.ROLLBACK <txid>`.

use super::push_txu_queue;
use super::UNDO_COUNTERS;
use crate::client::{
    check_reply, command_calls_delta, connect, info_delta, info_u64, Commands, Expect,
};
use crate::measure::Ctx;
use crate::report::{Outcome, Row};
use crate::resp::{bulk_body, esc, flat_array, push_command, show, RawConn};
use std::time::Instant;

/// The undo log of `TXU.BEGIN RETAIN` with 10,000 INCRs over 10 keys,
/// then `TXU.ROLLBACK <txid>`. The target: at most 10 entries, one per key.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    const KEYS: usize = 10;
    const INCRS: usize = 10_000;
    const START: i64 = 1000;
    let reps = ctx.mode.compaction_reps;
    let mut con = connect(ctx.server.port())?;
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format!("ck:{i}").into_bytes()).collect();
    let mut setup = Vec::new();
    for k in &keys {
        push_command(&mut setup, &[b"SET", k, START.to_string().as_bytes()]);
    }
    con.pipeline(&setup, &[Expect::ok()], KEYS)?;
    let incrs: Vec<Vec<&[u8]>> = (0..INCRS)
        .map(|i| vec![&b"INCR"[..], &keys[i % KEYS]])
        .collect();
    let mut body = Vec::new();
    push_txu_queue(&mut body, &[b"RETAIN", b"60000"], &incrs);
    let checkpoint = con
        .config_get("txu.checkpoint-every")
        .unwrap_or_else(|_| "not a config of this build".into());
    let mget = |con: &mut RawConn| -> Result<Vec<String>, String> {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(Vec::as_slice));
        let r = con.call(&args)?;
        flat_array(&r).ok_or_else(|| format!("MGET: {:?}", esc(&r)))
    };
    let (mut exec_ms, mut rollback_ms) = (Vec::new(), Vec::new());
    let mut seen: Vec<String> = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let before = con.info("txu")?;
        con.write(&body)?;
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
        // Counters that this build may or may not have (builds differ in which they have).
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
