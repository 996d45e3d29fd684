//! What the benchmark reports: [`Row`]s and [`Outcome`]s, the printed table, and
//! `target/bench/latest.json`.

use crate::stats::{median, paired_ratio};
use serde::{Serialize, Serializer};
use std::fmt::Write as _;

pub struct Row {
    pub variant: String,
    /// Median over rounds (or a derived number); `None` for a ratio-only row.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// This row / the workload's baseline (1.00 on the baseline itself).
    pub ratio: Option<f64>,
    pub per_round: Vec<f64>,
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
        }
    }

    pub fn ratio(variant: &str, ratio: f64) -> Row {
        Row {
            variant: variant.into(),
            value: None,
            unit: "",
            ratio: Some(ratio),
            per_round: Vec::new(),
        }
    }

    pub fn derived(variant: &str, value: f64, unit: &'static str) -> Row {
        Row {
            variant: variant.into(),
            value: Some(value),
            unit,
            ratio: None,
            per_round: Vec::new(),
        }
    }

    /// (max - min) / median over rounds.
    pub fn spread(&self) -> Option<f64> {
        if self.per_round.len() < 2 {
            return None;
        }
        let max = self.per_round.iter().copied().fold(f64::MIN, f64::max);
        let min = self.per_round.iter().copied().fold(f64::MAX, f64::min);
        Some((max - min) / median(&self.per_round))
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
        }
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
    let _ = writeln!(
        t,
        "{:<30} {:<24} {:>10}  {:<6} {:>6} {:>6} {:>7}",
        "workload", "variant", "median", "unit", "ratio", "rounds", "spread"
    );
    for o in outcomes {
        for (i, r) in o.rows.iter().enumerate() {
            let (title, rounds) = if i == 0 {
                (o.title.as_str(), o.rounds.to_string())
            } else {
                ("", String::new())
            };
            let _ = writeln!(
                t,
                "{:<30} {:<24} {:>10}  {:<6} {:>6} {:>6} {:>7}",
                title,
                r.variant,
                r.value.map(fmt_num).unwrap_or_default(),
                r.unit,
                r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default(),
                rounds,
                r.spread()
                    .map(|s| format!("{:.1}%", s * 100.0))
                    .unwrap_or_default()
            );
        }
        for n in &o.notes {
            let _ = writeln!(t, "{:<30} note: {n}", "");
        }
    }
    t
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// A row in the JSON: `median` is [`Row::value`]; `spread` is [`Row::spread`].
        #[derive(Serialize)]
        struct Json<'a> {
            variant: &'a str,
            median: Option<f64>,
            unit: &'a str,
            ratio: Option<f64>,
            spread: Option<f64>,
            per_round: &'a [f64],
        }
        Json {
            variant: &self.variant,
            median: self.value,
            unit: self.unit,
            ratio: self.ratio,
            spread: self.spread(),
            per_round: &self.per_round,
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

/// `target/bench/latest.json`: the header, the load average at the start and at the end, and
/// every workload's outcome. Numbers that are not finite are `null`.
pub fn json(header: &Header, outcomes: &[Outcome], total_secs: f64, loadavg_end: String) -> String {
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
    };
    let mut j = serde_json::to_string_pretty(&report).expect("the report serializes");
    j.push('\n');
    j
}
