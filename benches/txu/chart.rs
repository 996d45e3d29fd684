//! `target/bench/latest.svg`: the run's ratios as a chart (plotters, SVG backend). Top: each
//! target's value today, its bar coloured by whether it reaches the goal (green), the must
//! (amber) or neither (red), with the must (black) and goal (dark green) marked; blue bars have no bound (the
//! distance to the ceiling). Bottom: the server's CPU time per transaction of every variant of
//! the throughput workloads.

use crate::report::{fmt_num, Outcome, TargetResult};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1200;
const ROW_PX: u32 = 24;
/// Title, axis and margins of one panel.
const PANEL_EXTRA_PX: u32 = 110;
const LABEL_PX: u32 = 430;
/// The targets' axis ends here at most (every bound is below it); longer bars are cut, their
/// value written on them.
const TARGET_AXIS_MAX: f64 = 2.5;

const GOAL: RGBColor = RGBColor(46, 160, 67);
const MUST: RGBColor = RGBColor(222, 150, 20);
const MISSED: RGBColor = RGBColor(210, 60, 50);
const INFO: RGBColor = RGBColor(80, 120, 190);
const GOAL_MARK: RGBColor = RGBColor(0, 100, 0);
const BASELINE: RGBColor = RGBColor(140, 140, 140);
const TXU: RGBColor = RGBColor(222, 120, 40);

/// One horizontal bar: its label, length, colour, the text after it, and marks across it.
struct Bar {
    label: String,
    value: f64,
    color: RGBColor,
    text: String,
    marks: Vec<(f64, RGBColor)>,
}

/// Draws the chart into `path`; `caption` heads it (server, mode, load).
pub fn draw(
    path: &Path,
    caption: &str,
    outcomes: &[Outcome],
    targets: &[TargetResult],
) -> Result<(), String> {
    let target_bars = target_bars(targets);
    let cpu_bars = cpu_bars(outcomes);
    let top_px = PANEL_EXTRA_PX + ROW_PX * target_bars.len().max(1) as u32;
    let bottom_px = PANEL_EXTRA_PX + ROW_PX * cpu_bars.len().max(1) as u32;
    let root = SVGBackend::new(path, (WIDTH, top_px + bottom_px + 30)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(caption, ("sans-serif", 15))
        .map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(top_px);
    panel(
        &top,
        "targets: today's value (ratio; drain tick in ms); black tick = must, green tick = goal; \
         bar green = goal met, amber = must met, red = neither, blue = no bound",
        "ratio",
        &target_bars,
        Some(TARGET_AXIS_MAX),
    )
    .map_err(|e| err(&e))?;
    panel(
        &bottom,
        "server CPU per transaction (INFO cpu), median over rounds, (ratio to the workload's \
         baseline); orange = txu, blue = the ceiling",
        "us per transaction",
        &cpu_bars,
        None,
    )
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

fn target_bars(targets: &[TargetResult]) -> Vec<Bar> {
    targets
        .iter()
        .filter_map(|t| {
            let v = t.value?;
            let cmp = if t.lower_is_better { "<=" } else { ">=" };
            let unit = if t.unit == "x" { "" } else { t.unit };
            let bounds = match (t.must, t.goal) {
                (Some(m), Some(g)) => format!(" [must {cmp}{m:.2}, goal {cmp}{g:.2}]"),
                _ => String::new(),
            };
            let color = match t.status {
                "goal met" => GOAL,
                "must met" => MUST,
                "NOT met" => MISSED,
                _ => INFO,
            };
            let mut marks = Vec::new();
            if let Some(m) = t.must {
                marks.push((m, BLACK));
            }
            if let Some(g) = t.goal {
                marks.push((g, GOAL_MARK));
            }
            Some(Bar {
                label: format!(
                    "{}{}{bounds}",
                    t.what,
                    if unit.is_empty() { "" } else { " (ms)" }
                ),
                value: v,
                color,
                text: format!("{}{unit}", fmt_num(v)),
                marks,
            })
        })
        .collect()
}

fn cpu_bars(outcomes: &[Outcome]) -> Vec<Bar> {
    outcomes
        .iter()
        .flat_map(|o| {
            o.rows
                .iter()
                .filter(|r| r.tput_ratio.is_some())
                .filter_map(move |r| {
                    let v = r.cpu_us?;
                    let color = if r.variant.contains("ceiling") {
                        INFO
                    } else if r.variant.contains("txu") {
                        TXU
                    } else {
                        BASELINE
                    };
                    Some(Bar {
                        label: format!("{}: {}", o.id, r.variant),
                        value: v,
                        color,
                        text: format!(
                            "{} us ({})",
                            fmt_num(v),
                            r.ratio.map(|x| format!("{x:.2}")).unwrap_or_default()
                        ),
                        marks: Vec::new(),
                    })
                })
        })
        .collect()
}

/// A panel of horizontal bars, the first at the top; the axis ends at `cap` at most.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    bars: &[Bar],
    cap: Option<f64>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let n = bars.len().max(1) as i32;
    let x_max = bars
        .iter()
        .flat_map(|b| std::iter::once(b.value).chain(b.marks.iter().map(|m| m.0)))
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        * 1.18;
    let x_max = cap.map_or(x_max, |c| x_max.min(c));
    // Row r of the chart (0 at the bottom) shows bar n - 1 - r.
    let label_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(r) | SegmentValue::Exact(r) => bars
            .get((n - 1 - r) as usize)
            .map(|b| b.label.clone())
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 14))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(LABEL_PX)
        .build_cartesian_2d(0.0..x_max, (0..n - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(bars.len().max(1))
        .y_label_formatter(&label_of)
        .x_desc(x_desc)
        .label_style(("sans-serif", 13))
        .draw()?;
    let row = |i: usize| n - 1 - i as i32;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let r = row(i);
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(r)),
                (b.value.min(x_max), SegmentValue::Exact(r + 1)),
            ],
            b.color.filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    for (i, b) in bars.iter().enumerate() {
        let r = row(i);
        for &(x, color) in &b.marks {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, SegmentValue::Exact(r)), (x, SegmentValue::Exact(r + 1))],
                color.stroke_width(3),
            )))?;
        }
        // A bar cut at the axis's end gets its value written on it.
        let (text, at) = if b.value > x_max {
            (format!("{} (cut) >", b.text), x_max * 0.8)
        } else {
            (format!("  {}", b.text), b.value)
        };
        chart.draw_series(std::iter::once(Text::new(
            text,
            (at, SegmentValue::CenterOf(r)),
            ("sans-serif", 13).into_font().color(&BLACK),
        )))?;
    }
    Ok(())
}
