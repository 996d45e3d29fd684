//! What the benchmark reports: [`Row`]s and [`Outcome`]s, the printed table, and
//! `target/bench/latest.json`.

use crate::stats::{median, paired_ratio};
use serde::{Serialize, Serializer};
use std::fmt::Write as _;

#[derive(Default)]
pub struct Row {
    pub variant: String,
    /// Median over rounds (or a derived number); `None` for a ratio-only row.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// The server's CPU time per transaction (or per command measured), microseconds: median
    /// over rounds.
    pub cpu_us: Option<f64>,
    /// This row against the workload's baseline (1.00 on the baseline itself): for rows with
    /// [`Row::cpu_us`] from a throughput workload, baseline CPU / this row's CPU (above 1 =
    /// cheaper); otherwise this row / the baseline.
    pub ratio: Option<f64>,
    /// Throughput workloads: this row's tx/s / the baseline's (paired by round).
    pub tput_ratio: Option<f64>,
    pub per_round: Vec<f64>,
    /// [`Row::cpu_us`] per round.
    pub cpu_per_round: Vec<f64>,
}

impl Row {
    /// A measured variant; its ratio is [`paired_ratio`] to `baseline`.
    pub fn measured(variant: &str, unit: &'static str, per_round: &[f64], baseline: &[f64]) -> Row {
        Row {
            variant: variant.into(),
            value: Some(median(per_round)),
            unit,
            ratio: Some(paired_ratio(per_round, baseline)),
            per_round: per_round.to_vec(),
            ..Row::default()
        }
    }

    /// A throughput variant: `(tx/s, CPU us/tx)` per round of it and of the baseline. Its
    /// ratio is the baseline's CPU / its CPU, paired by round (above 1: it costs the server
    /// less per transaction); its throughput ratio is its tx/s / the baseline's.
    pub fn throughput(
        variant: &str,
        unit: &'static str,
        (tput, cpu): (&[f64], &[f64]),
        (base_tput, base_cpu): (&[f64], &[f64]),
    ) -> Row {
        Row {
            variant: variant.into(),
            value: Some(median(tput)),
            unit,
            cpu_us: Some(median(cpu)),
            ratio: Some(paired_ratio(base_cpu, cpu)),
            tput_ratio: Some(paired_ratio(tput, base_tput)),
            per_round: tput.to_vec(),
            cpu_per_round: cpu.to_vec(),
        }
    }

    pub fn ratio(variant: &str, ratio: f64) -> Row {
        Row {
            variant: variant.into(),
            ratio: Some(ratio),
            ..Row::default()
        }
    }

    pub fn derived(variant: &str, value: f64, unit: &'static str) -> Row {
        Row {
            variant: variant.into(),
            value: Some(value),
            unit,
            ..Row::default()
        }
    }

    /// (max - min) / median over rounds of what the ratio is computed from: the CPU time when
    /// the row has one, else the value.
    pub fn spread(&self) -> Option<f64> {
        let v = if self.cpu_per_round.is_empty() {
            &self.per_round
        } else {
            &self.cpu_per_round
        };
        if v.len() < 2 {
            return None;
        }
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        let min = v.iter().copied().fold(f64::MAX, f64::min);
        Some((max - min) / median(v))
    }
}

/// What a workload reports: rows for the table and the JSON, and notes saying what they are.
#[derive(Serialize)]
pub struct Outcome {
    pub id: &'static str,
    pub title: String,
    pub rounds: usize,
    /// Time the workload took, set by the driver.
    pub seconds: f64,
    pub notes: Vec<String>,
    pub rows: Vec<Row>,
    /// Today's value of each [`TARGETS`] entry this workload measures, by target id.
    #[serde(skip)]
    pub targets: Vec<(&'static str, f64)>,
}

impl Outcome {
    pub fn new(id: &'static str, title: String, rounds: usize) -> Outcome {
        Outcome {
            id,
            title,
            rounds,
            rows: Vec::new(),
            notes: Vec::new(),
            seconds: 0.0,
            targets: Vec::new(),
        }
    }

    /// Records today's value of target `id` (one of [`TARGETS`]).
    pub fn target(&mut self, id: &'static str, value: f64) {
        debug_assert!(TARGETS.iter().any(|t| t.id == id), "unknown target {id}");
        self.targets.push((id, value));
    }
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

pub fn table(outcomes: &[Outcome]) -> String {
    let mut t = String::new();
    let line = |t: &mut String, cells: [&str; 9]| {
        let [w, v, m, u, c, r, x, n, s] = cells;
        let _ = writeln!(
            t,
            "{w:<30} {v:<24} {m:>10}  {u:<7} {c:>9} {r:>6} {x:>6} {n:>6} {s:>7}"
        );
    };
    line(
        &mut t,
        [
            "workload",
            "variant",
            "median",
            "unit",
            "cpu us/tx",
            "ratio",
            "tput",
            "rounds",
            "spread",
        ],
    );
    let ratio = |x: Option<f64>| x.map(|x| format!("{x:.2}")).unwrap_or_default();
    for o in outcomes {
        for (i, r) in o.rows.iter().enumerate() {
            let (title, rounds) = if i == 0 {
                (o.title.as_str(), o.rounds.to_string())
            } else {
                ("", String::new())
            };
            line(
                &mut t,
                [
                    title,
                    &r.variant,
                    &r.value.map(fmt_num).unwrap_or_default(),
                    r.unit,
                    &r.cpu_us.map(fmt_num).unwrap_or_default(),
                    &ratio(r.ratio),
                    &ratio(r.tput_ratio),
                    &rounds,
                    &r.spread()
                        .map(|s| format!("{:.1}%", s * 100.0))
                        .unwrap_or_default(),
                ],
            );
        }
        for n in &o.notes {
            let _ = writeln!(t, "{:<30} note: {n}", "");
        }
    }
    t
}

/// A number the targets are compared with: today's value is printed next to the
/// "must reach" and "goal" values (reported, never asserted).
pub struct Target {
    pub id: &'static str,
    pub what: &'static str,
    /// What the value is.
    pub how: &'static str,
    pub unit: &'static str,
    pub must: Option<f64>,
    pub goal: Option<f64>,
    /// The value must stay at or below the bounds (else at or above).
    pub lower_is_better: bool,
}

const fn target(
    id: &'static str,
    what: &'static str,
    how: &'static str,
    unit: &'static str,
    bounds: Option<(f64, f64)>,
    lower_is_better: bool,
) -> Target {
    let (must, goal) = match bounds {
        Some((m, g)) => (Some(m), Some(g)),
        None => (None, None),
    };
    Target {
        id,
        what,
        how,
        unit,
        must,
        goal,
        lower_is_better,
    }
}

/// The targets, in the order printed. Ratios of server CPU time per transaction are written
/// so that above 1 means txu's variant costs the server less than the other one.
pub const TARGETS: &[Target] = &[
    target(
        "ten-set/txu",
        "10-SET TXU.BEGIN/QUEUE/EXEC vs MULTI/EXEC",
        "cpu multi / cpu txu",
        "x",
        Some((0.35, 0.6)),
        false,
    ),
    target(
        "ten-set/run",
        "10-SET TXU.RUN vs MULTI/EXEC",
        "cpu multi / cpu txu.run",
        "x",
        Some((0.45, 0.58)),
        false,
    ),
    target(
        "ten-set/lua-undo",
        "10-SET Lua-with-manual-undo vs TXU.RUN",
        "cpu lua-undo evalsha / txu.run",
        "x",
        Some((1.3, 1.45)),
        false,
    ),
    target(
        "ten-set/eval",
        "10-SET plain EVAL vs TXU.RUN",
        "cpu evalsha / cpu txu.run",
        "x",
        Some((0.7, 0.85)),
        false,
    ),
    target(
        "mixed/run",
        "mixed 10 writes TXU.RUN vs MULTI/EXEC",
        "cpu multi / cpu txu.run",
        "x",
        Some((0.35, 0.55)),
        false,
    ),
    target(
        "single/run",
        "single TXU.RUN 3 SET k v vs MULTI/SET/EXEC",
        "cpu multi / cpu txu.run",
        "x",
        Some((0.6, 0.7)),
        false,
    ),
    target(
        "rollback",
        "rollback of 1,000 writes vs commit",
        "cpu of EXEC rollback / commit",
        "x",
        Some((1.0, 0.7)),
        true,
    ),
    target(
        "drain/tick",
        "drain: longest tick (its CPU time)",
        "txu_tick_max_cpu_us, largest round",
        "ms",
        Some((1.0, 0.5)),
        true,
    ),
    target(
        "drain/tick-wall",
        "drain: longest tick, wall clock",
        "txu_tick_max_us, largest round",
        "ms",
        None,
        true,
    ),
    target(
        "drain/ping",
        "drain: PING p99 during drain vs idle",
        "p99 drain / p99 empty server",
        "x",
        Some((2.0, 1.2)),
        true,
    ),
    target(
        "module/set",
        "plain SET with the module loaded vs not",
        "cpu without / cpu with",
        "x",
        Some((0.98, 1.0)),
        false,
    ),
    target(
        "ten-set/ceiling",
        "10-SET TXU.RUN vs the bare call-API loop",
        "cpu loop / cpu txu.run",
        "x",
        None,
        false,
    ),
    target(
        "ten-set/loop",
        "10-SET bare call-API loop vs MULTI/EXEC",
        "cpu multi / cpu loop",
        "x",
        None,
        false,
    ),
    target(
        "script/eval",
        "10-SET Lua script: EVALSHA alone vs inside TXU.RUN",
        "cpu evalsha / cpu txu.run evalsha",
        "x",
        None,
        false,
    ),
    target(
        "mixed/ceiling",
        "mixed TXU.RUN vs the bare call-API loop",
        "cpu loop / cpu txu.run",
        "x",
        None,
        false,
    ),
    target(
        "single/ceiling",
        "single TXU.RUN vs the bare call-API loop",
        "cpu loop / cpu txu.run",
        "x",
        None,
        false,
    ),
];

/// Today's value of a target, and whether it reaches its bounds.
#[derive(Serialize)]
pub struct TargetResult {
    pub id: &'static str,
    pub what: &'static str,
    pub how: &'static str,
    pub unit: &'static str,
    pub must: Option<f64>,
    pub goal: Option<f64>,
    pub lower_is_better: bool,
    /// `None` when the workload did not run (or cannot measure it with this build).
    pub value: Option<f64>,
    /// "goal met", "must met", "NOT met", "not run", or "" for a number without bounds.
    pub status: &'static str,
}

/// Every target with today's value from `outcomes`.
pub fn target_results(outcomes: &[Outcome]) -> Vec<TargetResult> {
    TARGETS
        .iter()
        .map(|t| {
            let value = outcomes
                .iter()
                .flat_map(|o| &o.targets)
                .find(|(id, _)| *id == t.id)
                .map(|(_, v)| *v)
                .filter(|v| v.is_finite());
            let reaches = |bound: Option<f64>, v: f64| {
                bound.is_some_and(|b| if t.lower_is_better { v <= b } else { v >= b })
            };
            let status = match value {
                None => "not run",
                Some(_) if t.must.is_none() => "",
                Some(v) if reaches(t.goal, v) => "goal met",
                Some(v) if reaches(t.must, v) => "must met",
                Some(_) => "NOT met",
            };
            TargetResult {
                id: t.id,
                what: t.what,
                how: t.how,
                unit: t.unit,
                must: t.must,
                goal: t.goal,
                lower_is_better: t.lower_is_better,
                value,
                status,
            }
        })
        .collect()
}

/// The targets table: today's value next to the "must reach" and "goal" values.
pub fn targets_table(results: &[TargetResult]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<44} {:<31} {:>7} {:>8} {:>8}  status",
        "target", "measured as", "today", "must", "goal"
    );
    for r in results {
        let cmp = if r.lower_is_better { "<=" } else { ">=" };
        let bound = |b: Option<f64>| {
            b.map(|b| format!("{cmp}{b:.2}{}", unit_suffix(r.unit)))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            t,
            "{:<44} {:<31} {:>7} {:>8} {:>8}  {}",
            r.what,
            r.how,
            r.value
                .map(|v| format!("{v:.2}{}", unit_suffix(r.unit)))
                .unwrap_or_else(|| "-".into()),
            bound(r.must),
            bound(r.goal),
            r.status
        );
    }
    t
}

fn unit_suffix(unit: &str) -> &str {
    if unit == "x" {
        ""
    } else {
        unit
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// A row in the JSON: `median` is [`Row::value`]; `spread` is [`Row::spread`].
        #[derive(Serialize)]
        struct Json<'a> {
            variant: &'a str,
            median: Option<f64>,
            unit: &'a str,
            cpu_us_per_tx: Option<f64>,
            ratio: Option<f64>,
            throughput_ratio: Option<f64>,
            spread: Option<f64>,
            per_round: &'a [f64],
            cpu_per_round: &'a [f64],
        }
        Json {
            variant: &self.variant,
            median: self.value,
            unit: self.unit,
            cpu_us_per_tx: self.cpu_us,
            ratio: self.ratio,
            throughput_ratio: self.tput_ratio,
            spread: self.spread(),
            per_round: &self.per_round,
            cpu_per_round: &self.cpu_per_round,
        }
        .serialize(s)
    }
}

/// The server measured.
#[derive(Serialize)]
pub struct ServerInfo {
    pub binary: String,
    pub version: String,
}

/// The machine the run was on.
#[derive(Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
}

/// How the client drove the server.
#[derive(Serialize)]
pub struct ClientSettings {
    pub clients: usize,
    pub threads: usize,
    pub depth: usize,
    pub round_seconds: f64,
    pub min_rounds: usize,
    pub max_rounds: usize,
    pub tolerance: f64,
}

/// What is known before the first workload runs.
pub struct Header {
    pub mode: &'static str,
    pub unix_time: u64,
    pub loadavg_start: String,
    pub server: ServerInfo,
    pub machine: Machine,
    pub client: ClientSettings,
}

/// `target/bench/latest.json`: the header, the load average at the start and at the end,
/// every workload's outcome, and the targets. Numbers that are not finite are `null`.
pub fn json(
    header: &Header,
    outcomes: &[Outcome],
    targets: &[TargetResult],
    total_secs: f64,
    loadavg_end: String,
) -> String {
    #[derive(Serialize)]
    struct LoadAvg<'a> {
        start: &'a str,
        end: String,
    }
    #[derive(Serialize)]
    struct Report<'a> {
        mode: &'a str,
        unix_time: u64,
        total_seconds: f64,
        loadavg: LoadAvg<'a>,
        server: &'a ServerInfo,
        machine: &'a Machine,
        client: &'a ClientSettings,
        workloads: &'a [Outcome],
        targets: &'a [TargetResult],
    }
    let report = Report {
        mode: header.mode,
        unix_time: header.unix_time,
        total_seconds: total_secs,
        loadavg: LoadAvg {
            start: &header.loadavg_start,
            end: loadavg_end,
        },
        server: &header.server,
        machine: &header.machine,
        client: &header.client,
        workloads: outcomes,
        targets,
    };
    let mut j = serde_json::to_string_pretty(&report).expect("the report serializes");
    j.push('\n');
    j
}
