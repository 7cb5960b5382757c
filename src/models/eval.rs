//! `swarmpilot model eval`: a model's accuracy on a recorded trace (`timestamp,<metric>...`).
//!
//! Forecaster: MASE of the model, naive last-value and seasonal-naive (one day back) forecasts,
//! over every origin on the model's sample grid where all three can be computed, scaled by the
//! mean absolute one-step change of the evaluated series (the pipeline's definition).
//! Classifier: the state distribution, and a confusion matrix when the trace has a `label` or
//! `state` column.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::policy::TrafficState;
use crate::replay::{ReplayError, Trace};

use super::classify::Classifier;
use super::error::ModelError;
use super::features::{classifier_features, RoleHistories};
use super::forecast::Forecaster;
use super::load::Model;
use super::metadata::ModelKind;
use super::window::{Sample, MAX_FILL_SECS};

/// Seasonal naive looks one day back.
pub const SEASON_SECS: f64 = 86_400.0;
/// The classifier is evaluated every this many samples (30 s at 5 s).
const CLASSIFY_STRIDE: usize = 6;

#[derive(Debug, Error)]
pub enum EvalError {
    /// The trace file cannot be read or parsed (the `replay` reader's errors).
    #[error(transparent)]
    Read(#[from] ReplayError),
    #[error("trace {path}: {problem}")]
    Trace { path: String, problem: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The samples of trace column `name`, an empty cell as NaN (the runtime skips non-finite
/// samples), or `None` when the trace has no such column.
fn samples(trace: &Trace, name: &str) -> Option<Vec<Sample>> {
    let column = trace.column(name)?;
    Some(
        trace
            .times
            .iter()
            .zip(&column.values)
            .map(|(&at, value)| Sample {
                at,
                value: value.unwrap_or(f64::NAN),
            })
            .collect(),
    )
}

/// A report and what its reader should know about the trace (rows that repeated a time).
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub report: EvalReport,
    pub notes: Vec<String>,
}

/// What `model eval` found.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalReport {
    Forecast {
        column: String,
        origins: usize,
        model: f64,
        naive: f64,
        /// `None` when the trace is shorter than a day plus the window and horizon.
        seasonal_naive: Option<f64>,
    },
    States {
        rows: usize,
        distribution: BTreeMap<TrafficState, usize>,
        /// (true label, predicted state) -> count, when the trace is labeled.
        confusion: Option<BTreeMap<(String, TrafficState), usize>>,
        skipped: usize,
    },
}

/// Options for [`evaluate`].
#[derive(Clone, Debug, Default)]
pub struct EvalOptions {
    /// Forecaster: the load column (default `requests`, or the only numeric column).
    pub column: Option<String>,
    /// Classifier: role -> column, overriding the default names (`requests`, `errors`,
    /// `latency`, `receive_bytes`, `transmit_bytes`).
    pub inputs: BTreeMap<String, String>,
}

/// Runs `model` over `trace`.
pub fn evaluate(
    model: Arc<Model>,
    trace: &Trace,
    path: &str,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    match model.metadata.kind {
        ModelKind::Forecaster => evaluate_forecaster(Forecaster::new(model)?, trace, path, options),
        ModelKind::Classifier => evaluate_classifier(Classifier::new(model)?, trace, path, options),
    }
}

/// The trace on the model's grid by forward fill (the runtime's rule); NaN where it cannot fill.
fn grid(samples: &[Sample], period_secs: f64) -> Vec<f64> {
    let mut finite: Vec<&Sample> = samples.iter().filter(|s| s.value.is_finite()).collect();
    finite.sort_by_key(|s| s.at);
    let (Some(first), Some(last)) = (finite.first(), finite.last()) else {
        return Vec::new();
    };
    let period_ms = (period_secs * 1000.0).round() as i64;
    let points = ((last.at - first.at).num_milliseconds() / period_ms.max(1)) as usize + 1;
    let mut out = Vec::with_capacity(points);
    let mut next = 0;
    for k in 0..points {
        let at = first.at + chrono::Duration::milliseconds(k as i64 * period_ms);
        while next < finite.len() && finite[next].at <= at {
            next += 1;
        }
        let sample = finite[next - 1];
        let age = (at - sample.at).num_milliseconds() as f64 / 1000.0;
        out.push(if age <= MAX_FILL_SECS {
            sample.value
        } else {
            f64::NAN
        });
    }
    out
}

fn evaluate_forecaster(
    model: Forecaster,
    trace: &Trace,
    path: &str,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let column = match &options.column {
        Some(column) => column.clone(),
        None if trace.column("requests").is_some() => "requests".to_owned(),
        None if trace.columns.len() == 1 => trace.columns[0].name.clone(),
        None => {
            return Err(EvalError::Trace {
                path: path.to_owned(),
                problem: format!(
                    "say which column to forecast with --column; columns: {}",
                    trace.column_names()
                ),
            })
        }
    };
    let samples = samples(trace, &column).ok_or_else(|| EvalError::Trace {
        path: path.to_owned(),
        problem: format!("no column {column:?}; columns: {}", trace.column_names()),
    })?;
    let meta = &model.model().metadata;
    let (window, horizon) = (meta.window, meta.horizon);
    let series = grid(&samples, meta.sample_period_secs);
    let season = (SEASON_SECS / meta.sample_period_secs).round() as usize;
    let seasonal = series.len() >= season + horizon + window;
    let first = if seasonal { season } else { window - 1 };
    let complete = |range: std::ops::Range<usize>| series[range].iter().all(|v| v.is_finite());
    let origins: Vec<usize> = (first..series.len().saturating_sub(horizon))
        .filter(|&o| {
            complete(o + 1 - window..o + 1 + horizon)
                && (!seasonal || complete(o + 1 - season..o + 1 + horizon - season))
        })
        .collect();
    if origins.is_empty() {
        return Err(EvalError::Trace {
            path: path.to_owned(),
            problem: format!(
                "{column}: no gap-free stretch of {} samples to evaluate on",
                window + horizon
            ),
        });
    }
    let mut forecasts = Vec::with_capacity(origins.len());
    for chunk in origins.chunks(4096) {
        let windows: Vec<Vec<f32>> = chunk
            .iter()
            .map(|&o| {
                series[o + 1 - window..o + 1]
                    .iter()
                    .map(|&v| v as f32)
                    .collect()
            })
            .collect();
        forecasts.extend(model.forecast(&windows)?);
    }
    let (mut err_model, mut err_naive, mut err_seasonal) = (0.0, 0.0, 0.0);
    for (&o, forecast) in origins.iter().zip(&forecasts) {
        for h in 0..horizon {
            let actual = series[o + 1 + h];
            err_model += (f64::from(forecast[h]) - actual).abs();
            err_naive += (series[o] - actual).abs();
            if seasonal {
                err_seasonal += (series[o + 1 + h - season] - actual).abs();
            }
        }
    }
    let diffs: Vec<f64> = series[first - 1..]
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).abs())
        .filter(|d| d.is_finite())
        .collect();
    let scale = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64;
    if scale <= 0.0 {
        return Err(EvalError::Trace {
            path: path.to_owned(),
            problem: format!("{column} never changes: MASE is undefined for a constant series"),
        });
    }
    let count = (origins.len() * horizon) as f64 * scale;
    Ok(EvalReport::Forecast {
        column,
        origins: origins.len(),
        model: err_model / count,
        naive: err_naive / count,
        seasonal_naive: seasonal.then_some(err_seasonal / count),
    })
}

fn evaluate_classifier(
    model: Classifier,
    trace: &Trace,
    path: &str,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let roles = [
        "requests",
        "errors",
        "latency",
        "receive_bytes",
        "transmit_bytes",
    ];
    for role in options.inputs.keys() {
        if !roles.contains(&role.as_str()) {
            return Err(EvalError::Trace {
                path: path.to_owned(),
                problem: format!("unknown role {role:?}; roles: {}", roles.join(", ")),
            });
        }
    }
    let mut histories: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    for role in roles {
        let column = options.inputs.get(role).map(String::as_str).unwrap_or(role);
        match samples(trace, column) {
            Some(samples) => {
                histories.insert(role, samples);
            }
            None if options.inputs.contains_key(role) => {
                return Err(EvalError::Trace {
                    path: path.to_owned(),
                    problem: format!("no column {column:?} for role {role}"),
                })
            }
            None => {}
        }
    }
    if histories.is_empty() {
        return Err(EvalError::Trace {
            path: path.to_owned(),
            problem: format!(
                "no role column ({}); map columns with --input ROLE=COLUMN",
                roles.join(", ")
            ),
        });
    }
    let meta = &model.model().metadata;
    let baseline_ms = (meta.baseline_window as f64 * meta.sample_period_secs * 1000.0) as i64;
    let mut rows = Vec::new();
    let mut row_index = Vec::new();
    let mut skipped = 0;
    let mut start = 0;
    for i in (0..trace.times.len()).step_by(CLASSIFY_STRIDE) {
        let now = trace.times[i];
        while trace.times[start] < now - chrono::Duration::milliseconds(baseline_ms) {
            start += 1;
        }
        let slice = |role: &str| histories.get(role).map(|h| &h[start..=i]);
        let role_histories = RoleHistories {
            requests: slice("requests"),
            errors: slice("errors"),
            latency: slice("latency"),
            receive_bytes: slice("receive_bytes"),
            transmit_bytes: slice("transmit_bytes"),
        };
        match classifier_features(&role_histories, now, meta) {
            Ok(row) => {
                rows.push(row);
                row_index.push(i);
            }
            Err(_) => skipped += 1,
        }
    }
    let results = model.classify(&rows)?;
    let mut distribution = BTreeMap::new();
    let mut confusion = trace.labels.as_ref().map(|_| BTreeMap::new());
    for (&i, result) in row_index.iter().zip(&results) {
        *distribution.entry(result.state).or_insert(0) += 1;
        if let (Some(confusion), Some(labels)) = (confusion.as_mut(), trace.labels.as_ref()) {
            *confusion
                .entry((labels[i].clone(), result.state))
                .or_insert(0) += 1;
        }
    }
    Ok(EvalReport::States {
        rows: results.len(),
        distribution,
        confusion,
        skipped,
    })
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalReport::Forecast {
                column,
                origins,
                model,
                naive,
                seasonal_naive,
            } => {
                writeln!(
                    f,
                    "forecast of {column} over {origins} origins, MASE (lower is better):"
                )?;
                writeln!(f, "  model            {model:.3}")?;
                writeln!(f, "  naive last-value {naive:.3}")?;
                match seasonal_naive {
                    Some(value) => writeln!(f, "  seasonal naive   {value:.3}"),
                    None => writeln!(
                        f,
                        "  seasonal naive   n/a (trace shorter than a day plus one window)"
                    ),
                }
            }
            EvalReport::States {
                rows,
                distribution,
                confusion,
                skipped,
            } => {
                writeln!(
                    f,
                    "traffic states over {rows} samples ({skipped} skipped: not enough history):"
                )?;
                for (state, count) in distribution {
                    writeln!(
                        f,
                        "  {:<12} {count:>7} {:>6.1}%",
                        state.as_str(),
                        100.0 * *count as f64 / (*rows).max(1) as f64
                    )?;
                }
                if let Some(confusion) = confusion {
                    let mut text = String::from("confusion (true label -> predicted state):\n");
                    let labels: Vec<&String> = confusion
                        .keys()
                        .map(|(label, _)| label)
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    let _ = write!(text, "  {:<12}", "");
                    for state in TrafficState::ALL {
                        let _ = write!(text, " {:>11}", state.as_str());
                    }
                    text.push('\n');
                    for label in labels {
                        let _ = write!(text, "  {label:<12}");
                        for state in TrafficState::ALL {
                            let _ = write!(
                                text,
                                " {:>11}",
                                confusion.get(&(label.clone(), state)).copied().unwrap_or(0)
                            );
                        }
                        text.push('\n');
                    }
                    f.write_str(&text)?;
                }
                Ok(())
            }
        }
    }
}

/// Loads `model` (a shipped name or a path) and the trace at `path` (read as `replay` reads
/// it), and evaluates.
pub fn eval_trace(
    model: &str,
    path: &Path,
    options: &EvalOptions,
) -> Result<Evaluation, EvalError> {
    let model = Arc::new(Model::load(model)?);
    let trace = Trace::read_path(path)?;
    let report = evaluate(model, &trace, &path.display().to_string(), options)?;
    Ok(Evaluation {
        report,
        notes: trace.repeat_note().into_iter().collect(),
    })
}
