//! `--plot out.svg|out.png`: demand, serving capacity, replicas and forecast over time, the
//! policy above the HPA baseline, with the policy's traffic states shaded.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (the `dejavu` crate) through plotters'
//! `ab_glyph` backend, so PNGs render the same on a machine (or scratch image) with no fonts.

use std::path::Path;
use std::sync::Once;

use chrono::{DateTime, Duration, Utc};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::ReplayError;
use super::series::{Row, RunPoint};
use super::Comparison;
use crate::policy::TrafficState;

const WIDTH: u32 = 1600;
const HEIGHT: u32 = 1000;
const FONT: &str = "sans-serif";

/// Draws the plot to `path`; the extension (`.svg` or `.png`) picks the format.
pub fn draw(comparison: &Comparison, rows: &[Row], path: &Path) -> Result<(), ReplayError> {
    let error = |problem: String| ReplayError::Plot {
        path: path.display().to_string(),
        problem,
    };
    register_font().map_err(error)?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("svg") => {
            let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
            panels(&root, comparison, rows).map_err(|e| error(e.to_string()))?;
            root.present().map_err(|e| error(e.to_string()))
        }
        Some("png") => {
            let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
            panels(&root, comparison, rows).map_err(|e| error(e.to_string()))?;
            root.present().map_err(|e| error(e.to_string()))
        }
        _ => Err(error("the file name must end in .svg or .png".to_owned())),
    }
}

fn register_font() -> Result<(), String> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded font is invalid".to_owned());
    });
    result
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    comparison: &Comparison,
    rows: &[Row],
) -> Drawn<DB> {
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);
    let y_max = rows
        .iter()
        .flat_map(|r| {
            [
                r.demand,
                Some(r.policy.capacity),
                Some(r.baseline.capacity),
                r.policy.forecast,
            ]
        })
        .flatten()
        .fold(1.0_f64, f64::max)
        * 1.1;
    let replicas_max = rows
        .iter()
        .map(|r| r.policy.replicas.max(r.baseline.replicas))
        .max()
        .unwrap_or(1)
        + 1;
    let states: Vec<(DateTime<Utc>, Option<TrafficState>)> =
        rows.iter().map(|r| (r.at, r.policy.state)).collect();
    let scale = Scale {
        start: comparison.demand.start,
        end: comparison.demand.end,
        y_max,
        replicas_max,
    };
    let policy = Panel {
        title: format!(
            "policy {}: {} under-provisioned s, {:.2} replica-hours",
            comparison.policy.name,
            comparison.policy.summary.under_provisioned_secs.round(),
            comparison.policy.summary.replica_hours
        ),
        pick: |r: &Row| r.policy,
        horizon: comparison.horizon,
    };
    let baseline = Panel {
        title: format!(
            "HPA baseline: {} under-provisioned s, {:.2} replica-hours",
            comparison.baseline.summary.under_provisioned_secs.round(),
            comparison.baseline.summary.replica_hours
        ),
        pick: |r: &Row| r.baseline,
        horizon: None,
    };
    panel(&top, &scale, &policy, rows, &states, &comparison.metric)?;
    panel(
        &bottom,
        &scale,
        &baseline,
        rows,
        &states,
        &comparison.metric,
    )
}

struct Scale {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    y_max: f64,
    replicas_max: u32,
}

struct Panel<F: Fn(&Row) -> RunPoint> {
    title: String,
    pick: F,
    horizon: Option<Duration>,
}

fn panel<DB: DrawingBackend, F: Fn(&Row) -> RunPoint>(
    area: &DrawingArea<DB, Shift>,
    scale: &Scale,
    panel: &Panel<F>,
    rows: &[Row],
    states: &[(DateTime<Utc>, Option<TrafficState>)],
    metric: &str,
) -> Drawn<DB> {
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .right_y_label_area_size(60)
        .build_cartesian_2d(scale.start..scale.end, 0.0..scale.y_max)?
        .set_secondary_coord(scale.start..scale.end, 0u32..scale.replicas_max);
    let span = scale.end - scale.start;
    chart
        .configure_mesh()
        .x_labels(10)
        .x_label_formatter(&|at| {
            if span > Duration::hours(6) {
                at.format("%H:%M").to_string()
            } else {
                at.format("%H:%M:%S").to_string()
            }
        })
        .y_desc(format!("{metric} (demand, capacity, forecast)"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("replicas")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()?;

    for (from, to, state) in state_spans(states, scale.end) {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, 0.0), (to, scale.y_max)],
            state_color(state).mix(0.18).filled(),
        )))?;
    }

    let demand = rows.iter().map(|r| (r.at, r.demand));
    for (i, part) in pieces(demand).into_iter().enumerate() {
        let series = chart.draw_series(LineSeries::new(part, BLACK.stroke_width(1)))?;
        if i == 0 {
            series
                .label("demand")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
        }
    }
    let capacity = steps(rows.iter().map(|r| (r.at, (panel.pick)(r).capacity)));
    chart
        .draw_series(LineSeries::new(capacity, BLUE.stroke_width(2)))?
        .label("serving capacity")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE.stroke_width(2)));
    if let Some(horizon) = panel.horizon {
        // Drawn at the time it forecasts, so it reads against the demand it anticipated.
        let forecast = rows
            .iter()
            .map(|r| (r.at + horizon, (panel.pick)(r).forecast))
            .filter(|(at, _)| *at < scale.end);
        let orange = RGBColor(230, 120, 0);
        for (i, part) in pieces(forecast).into_iter().enumerate() {
            let series = chart.draw_series(LineSeries::new(part, orange.stroke_width(1)))?;
            if i == 0 {
                series
                    .label("forecast (at its horizon)")
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], orange));
            }
        }
    }
    let green = RGBColor(0, 140, 60);
    let replicas = steps(rows.iter().map(|r| (r.at, (panel.pick)(r).replicas)));
    chart
        .draw_secondary_series(LineSeries::new(replicas, green.stroke_width(2)))?
        .label("replicas (right axis)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], green.stroke_width(2)));
    for state in [
        TrafficState::FlashCrowd,
        TrafficState::Flood,
        TrafficState::Degraded,
        TrafficState::Unknown,
    ] {
        if states.iter().any(|(_, s)| *s == Some(state)) {
            chart
                .draw_series(std::iter::empty::<Rectangle<(DateTime<Utc>, f64)>>())?
                .label(format!("state {state}"))
                .legend(move |(x, y)| {
                    Rectangle::new(
                        [(x, y - 6), (x + 18, y + 6)],
                        state_color(state).mix(0.35).filled(),
                    )
                });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .draw()
}

/// Contiguous runs of non-normal states, as `[from, to)` spans.
fn state_spans(
    states: &[(DateTime<Utc>, Option<TrafficState>)],
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>, TrafficState)> {
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>, TrafficState)> = Vec::new();
    for (i, &(at, state)) in states.iter().enumerate() {
        let Some(state) = state.filter(|s| *s != TrafficState::Normal) else {
            continue;
        };
        let to = states.get(i + 1).map_or(end, |next| next.0);
        match spans.last_mut() {
            Some(last) if last.2 == state && last.1 == at => last.1 = to,
            _ => spans.push((at, to, state)),
        }
    }
    spans
}

fn state_color(state: TrafficState) -> RGBColor {
    match state {
        TrafficState::Normal => WHITE,
        TrafficState::FlashCrowd => RGBColor(255, 150, 0),
        TrafficState::Flood => RGBColor(220, 0, 0),
        TrafficState::Degraded => RGBColor(140, 0, 200),
        TrafficState::Unknown => RGBColor(120, 120, 120),
    }
}

/// A step function's corner points: each value holds until the next time.
fn steps<T: Copy>(points: impl Iterator<Item = (DateTime<Utc>, T)>) -> Vec<(DateTime<Utc>, T)> {
    let mut out: Vec<(DateTime<Utc>, T)> = Vec::new();
    for (at, value) in points {
        if let Some(&(_, previous)) = out.last() {
            out.push((at, previous));
        }
        out.push((at, value));
    }
    out
}

/// Splits a series with gaps into the runs of known values.
fn pieces(
    points: impl Iterator<Item = (DateTime<Utc>, Option<f64>)>,
) -> Vec<Vec<(DateTime<Utc>, f64)>> {
    let mut out: Vec<Vec<(DateTime<Utc>, f64)>> = vec![Vec::new()];
    for (at, value) in points {
        match value {
            Some(v) => out.last_mut().into_iter().for_each(|p| p.push((at, v))),
            None if out.last().is_some_and(|p| !p.is_empty()) => out.push(Vec::new()),
            None => {}
        }
    }
    out.retain(|p| !p.is_empty());
    out
}
