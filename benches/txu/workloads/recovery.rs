//! How long after a transient fault clears a deferred task is applied, against the configured
//! backoff.

use super::push_txu_exec;
use crate::client::{check_reply, connect, Commands, Expect};
use crate::measure::Ctx;
use crate::report::{Outcome, Row};
use crate::resp::{esc, fields, show};
use crate::server::Server;
use crate::stats::median;
use std::time::{Duration, Instant};

/// How long after a transient fault clears a deferred task is applied,
/// against the configured backoff. Each repetition defers one `SET` with `NOREPLICAS`, waits
/// until the timer's first retry has failed too, clears the fault, and polls `GET` until the
/// value is there.
pub fn run(ctx: &Ctx) -> Result<Outcome, String> {
    const BASE_MS: &str = "200";
    let reps = ctx.mode.recovery_reps;
    let server = Server::start();
    let mut con = connect(server.port())?;
    con.config_set("txu.backoff-base-ms", BASE_MS)?;
    let config = ["txu.backoff-base-ms", "txu.backoff-max-ms", "txu.tick-ms"]
        .iter()
        .map(|name| Ok(format!("{name} {}", con.config_get(name)?)))
        .collect::<Result<Vec<String>, String>>()?
        .join(", ");
    let deadline = Duration::from_secs(30);
    let (mut delays, mut waits, mut late) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let key = format!("rec:{rep}").into_bytes();
        let value = format!("v{rep}").into_bytes();
        con.config_set("min-replicas-to-write", "1")?;
        let mut tx = Vec::new();
        push_txu_exec(&mut tx, &[b"RETRY"], &[vec![&b"SET"[..], &key, &value]]);
        con.write(&tx)?;
        con.expect_replies(&[Expect::Bulk, Expect::queued()], 2)?;
        let r = con.next_reply()?;
        let exec = con.reply(r).to_vec();
        check_reply(
            &Expect::ErrorPrefix(b"-DEFERRED ".to_vec()),
            &exec,
            "TXU.EXEC",
        )?;
        let id = show(&exec)
            .split_whitespace()
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| format!("no task id in {:?}", esc(&exec)))?;
        // Until the timer's first retry has failed.
        let waited = Instant::now();
        let next_attempt_ms = loop {
            let status = con.call(&[b"TXU.STATUS", id.as_bytes()])?;
            let fields =
                fields(&status).ok_or_else(|| format!("TXU.STATUS {id}: {:?}", esc(&status)))?;
            let field = |name: &str| fields.get(name).map(String::as_str);
            let number = |name: &str| field(name).and_then(|v| v.parse::<i64>().ok());
            if field("state") != Some("pending") {
                return Err(format!("TXU.STATUS {id} while the fault is on: {fields:?}"));
            }
            if number("attempts").unwrap_or(0) >= 1 {
                break number("next-attempt-at")
                    .ok_or_else(|| format!("TXU.STATUS {id}: no next-attempt-at"))?;
            }
            if waited.elapsed() > deadline {
                return Err(format!("task {id} not retried within {deadline:?}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let now_ms = con.server_time_ms()?;
        let cleared = Instant::now();
        con.config_set("min-replicas-to-write", "0")?;
        let want = [
            format!("${}\r\n", value.len()).into_bytes(),
            value.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        loop {
            if con.call(&[b"GET", &key])? == want {
                break;
            }
            if cleared.elapsed() > deadline {
                return Err(format!(
                    "task {id} not applied within {deadline:?} of the fault clearing"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let delay = cleared.elapsed().as_secs_f64() * 1e3;
        let wait = (next_attempt_ms - now_ms) as f64;
        eprintln!(
            "  recovery {}/{reps}: applied {delay:.0} ms after the fault cleared (retry was due \
             in {wait:.0} ms)",
            rep + 1
        );
        delays.push(delay);
        waits.push(wait);
        late.push(delay - wait.max(0.0));
    }
    drop(server);
    let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    let mut out = Outcome::new("recovery", "fault cleared -> applied".into(), reps);
    let base: f64 = BASE_MS.parse().unwrap_or(f64::NAN);
    let row = |variant: &str, v: f64, per_round: &[f64]| Row {
        variant: variant.into(),
        value: Some(v),
        unit: "ms",
        ratio: Some(v / base),
        per_round: per_round.to_vec(),
        ..Row::default()
    };
    out.rows.push(row("txu.backoff-base-ms", base, &[]));
    out.rows.push(row("delay median", median(&delays), &delays));
    out.rows.push(row("delay max", max(&delays), &[]));
    out.rows
        .push(row("retry due in (median)", median(&waits), &waits));
    out.rows.push(row("retry due in (max)", max(&waits), &[]));
    out.rows
        .push(row("after due (median)", median(&late), &late));
    out.rows.push(row("after due (max)", max(&late), &[]));
    out.notes.push(format!(
        "config: {config}; each repetition: defer SET with min-replicas-to-write 1, wait until \
         TXU.STATUS attempts >= 1 (the first retry failed too), clear the fault, poll GET every \
         1 ms"
    ));
    out.notes.push(format!(
        "retry due in = next-attempt-at from TXU.STATUS - server TIME when the fault cleared \
         (the wait before the 2nd retry; README: the delay doubles per retry, so base x 2 with \
         equal jitter = {:.0}..{:.0} ms); after due = delay - that: the timer's granularity \
         (the fault clears right after the tick that ran the 1st retry, so the task applies at \
         the first tick at or after it is due); ratio = / txu.backoff-base-ms",
        base,
        2.0 * base
    ));
    Ok(out)
}
