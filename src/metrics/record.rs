//! Recording a policy's Prometheus metrics over a time range as a trace CSV (see
//! `docs/trace-format.md`): the input of `replay` and of model training.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::observer::policy_sources;
use super::prometheus::fill_placeholders;
use super::{MetricError, PrometheusClient};
use crate::policy::{ScalingPolicy, Source};

/// Why a trace could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the policy has no Prometheus metric to record (only Prometheus keeps history)")]
    NothingToRecord,
    #[error("the range is empty: --since/--until give start {start} after end {end}")]
    EmptyRange {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    #[error("metric {name}: {error}")]
    Metric { name: String, error: MetricError },
    #[error("writing the trace: {0}")]
    Write(#[from] csv::Error),
}

/// What was recorded.
#[derive(Debug, PartialEq)]
pub struct RecordSummary {
    pub rows: usize,
    /// The metric columns, in order.
    pub columns: Vec<String>,
    /// Metrics left out because their source keeps no history, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Cells left empty because Prometheus had no sample at that step (and the metric has no
    /// `treatEmptyAs`).
    pub missing: usize,
}

/// The time grid of a trace: `start`, `start + step`, ... up to `end` inclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeGrid {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub step: Duration,
}

/// Range-query every Prometheus metric of the policy (`metrics`, then `observe`) over `grid`
/// and write one CSV row per step. `stack` fills `{{stack}}`.
pub async fn record<W: Write>(
    client: &PrometheusClient,
    policy: &ScalingPolicy,
    stack: Option<&str>,
    grid: TimeGrid,
    out: W,
) -> Result<RecordSummary, RecordError> {
    let TimeGrid { start, end, step } = grid;
    if start > end {
        return Err(RecordError::EmptyRange { start, end });
    }
    let mut columns = Vec::new();
    let mut skipped = Vec::new();
    let mut values: Vec<BTreeMap<i64, f64>> = Vec::new();
    // A step without a sample is where an instant query would have come back empty: the
    // metric's `treatEmptyAs` fills it, as the live loop reads it.
    let mut fills: Vec<Option<f64>> = Vec::new();
    for (name, source) in policy_sources(&policy.spec) {
        let Some(Source::Prometheus(source)) = source else {
            skipped.push((name.to_owned(), "not a Prometheus metric".to_owned()));
            continue;
        };
        let failed = |error| RecordError::Metric {
            name: name.to_owned(),
            error,
        };
        let query = fill_placeholders(&source.query, policy.service(), stack).map_err(failed)?;
        let samples = client
            .range(source.server.as_deref(), &query, start, end, step)
            .await
            .map_err(failed)?;
        columns.push(name.to_owned());
        fills.push(source.treat_empty_as);
        values.push(
            samples
                .into_iter()
                .map(|sample| (sample.at.timestamp_millis(), sample.value))
                .collect(),
        );
    }
    if columns.is_empty() {
        return Err(RecordError::NothingToRecord);
    }

    let mut writer = csv::Writer::from_writer(out);
    let mut header = vec!["timestamp".to_owned()];
    header.extend(columns.iter().cloned());
    writer.write_record(&header)?;
    let step_ms = step.as_millis().max(1) as i64;
    let (mut rows, mut missing) = (0, 0);
    let mut at = start.timestamp_millis();
    while at <= end.timestamp_millis() {
        let Some(time) = DateTime::from_timestamp_millis(at) else {
            break;
        };
        let mut record = vec![time.to_rfc3339_opts(SecondsFormat::Millis, true)];
        for (column, fill) in values.iter().zip(&fills) {
            match column.get(&at).or(fill.as_ref()) {
                Some(value) => record.push(value.to_string()),
                None => {
                    missing += 1;
                    record.push(String::new());
                }
            }
        }
        writer.write_record(&record)?;
        rows += 1;
        at += step_ms;
    }
    writer.flush().map_err(csv::Error::from)?;
    Ok(RecordSummary {
        rows,
        columns,
        skipped,
        missing,
    })
}
