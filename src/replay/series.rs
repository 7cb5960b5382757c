//! The per-step series of both runs on one time grid (trace rows and decision ticks), and its
//! CSV form (`--csv`).

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use super::error::ReplayError;
use super::simulate::Tick;
use super::{Comparison, Run};
use crate::policy::TrafficState;

/// One run at one grid time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunPoint {
    pub replicas: u32,
    pub ready: u32,
    pub capacity: f64,
    /// The forecast made at the latest tick (of the load metric at the horizon after it).
    pub forecast: Option<f64>,
    pub state: Option<TrafficState>,
}

/// Both runs at one grid time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    pub at: DateTime<Utc>,
    pub demand: Option<f64>,
    /// The load metric as observed at the latest tick: the column, or its mean over
    /// `--metric-window`.
    pub observed: Option<f64>,
    pub policy: RunPoint,
    pub baseline: RunPoint,
}

/// The grid: every trace row and every tick, in time order.
pub fn rows(comparison: &Comparison) -> Vec<Row> {
    let capacity_per_replica = comparison.service.capacity_per_replica;
    let mut grid: Vec<DateTime<Utc>> = comparison.times.clone();
    grid.extend(comparison.policy.ticks.iter().map(|t| t.at));
    grid.sort();
    grid.dedup();
    grid.into_iter()
        .map(|at| Row {
            at,
            demand: comparison.demand.at(at),
            observed: latest_tick(&comparison.policy, at)
                .and_then(|k| comparison.observed.at_ticks.get(k).copied().flatten()),
            policy: point(&comparison.policy, at, capacity_per_replica),
            baseline: point(&comparison.baseline, at, capacity_per_replica),
        })
        .collect()
}

/// The index of the latest tick of `run` at or before `at`.
fn latest_tick(run: &Run, at: DateTime<Utc>) -> Option<usize> {
    run.ticks.partition_point(|t| t.at <= at).checked_sub(1)
}

fn point(run: &Run, at: DateTime<Utc>, capacity_per_replica: f64) -> RunPoint {
    let Some(tick) = latest_tick(run, at).and_then(|i| run.ticks.get(i)) else {
        return RunPoint {
            replicas: 0,
            ready: 0,
            capacity: 0.0,
            forecast: None,
            state: None,
        };
    };
    let ready = Tick::ready_at(tick, at);
    RunPoint {
        replicas: tick.desired(),
        ready,
        capacity: f64::from(ready) * capacity_per_replica,
        forecast: tick.forecast,
        state: tick.state,
    }
}

/// Writes the series as CSV: `timestamp,demand`, then `capacity,replicas,ready,forecast,state`
/// for the policy (`policy_` prefix) and the baseline (`baseline_`), then `observed`. Empty
/// cells are unknowns.
pub fn write_csv(rows: &[Row], out: impl Write) -> Result<(), ReplayError> {
    let csv_error = |e: csv::Error| ReplayError::Io {
        what: "--csv".to_owned(),
        error: std::io::Error::other(e),
    };
    let mut writer = csv::Writer::from_writer(out);
    let mut header = vec!["timestamp".to_owned(), "demand".to_owned()];
    for run in ["policy", "baseline"] {
        for field in ["capacity", "replicas", "ready", "forecast", "state"] {
            header.push(format!("{run}_{field}"));
        }
    }
    header.push("observed".to_owned());
    writer.write_record(&header).map_err(csv_error)?;
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for row in rows {
        let mut record = vec![
            row.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            number(row.demand),
        ];
        for point in [&row.policy, &row.baseline] {
            record.extend([
                point.capacity.to_string(),
                point.replicas.to_string(),
                point.ready.to_string(),
                number(point.forecast),
                point.state.map(|s| s.to_string()).unwrap_or_default(),
            ]);
        }
        record.push(number(row.observed));
        writer.write_record(&record).map_err(csv_error)?;
    }
    writer.flush().map_err(|error| ReplayError::Io {
        what: "--csv".to_owned(),
        error,
    })
}
