//! `swarmpilot model eval`: a model's accuracy on a recorded trace (`timestamp,<metric>...`).
//!
//! Forecaster: MASE of each member of the forecast ensemble (the mean of the model and the
//! autoregression, the model, the autoregression, Holt, seasonal naive one day back, naive last
//! value) and of the ensemble itself, all computed by the live loop's
//! [`SignalMemory`] fed the trace one sample period at a time, so the figures are those of the
//! forecasts a policy would use. MASE: the mean absolute error over every step of the model's
//! horizon and every origin on its sample grid (from `--from` on, if given) where the model,
//! naive and Holt can all forecast and the trace has the values, scaled by the mean absolute
//! one-step change of the evaluated series (the pipeline's definition). With a metric window
//! the evaluated series is the column as a policy reading `rate(x[w])` of it sees it: replay's
//! observed series ([`crate::replay::observed`]), its trailing mean over the window at each row.
//! Classifier: the state distribution, and a confusion matrix when the trace has a `label` or
//! `state` column.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use chrono::{DateTime, Utc};

use crate::decide::signals::Member;
use crate::policy::{ForecastSpec, ForecastUse, HumanDuration, TrafficState, DEFAULT_TOLERANCE};
use crate::replay::observed::{self, check_window};
use crate::replay::{Demand, Observed, ReplayError, Trace};

use super::classify::Classifier;
use super::error::ModelError;
use super::features::{classifier_features, RoleHistories};
use super::forecast::Forecaster;
use super::load::Model;
use super::memory::{ForecastPath, SignalMemory, Signals};
use super::metadata::ModelKind;
use super::window::{Sample, MAX_FILL_SECS};
/// The classifier is evaluated every this many samples (30 s at 5 s).
const CLASSIFY_STRIDE: usize = 6;

#[derive(Debug, Error)]
pub enum EvalError {
    /// The trace file cannot be read or parsed, or an option does not fit it (the `replay`
    /// reader's and options' errors).
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
        /// Each member's MASE, in order of preference, over the origins where it forecasts:
        /// seasonal naive once a day of history exists (absent when there is none), the
        /// autoregression and the combined member once the history holds enough changes.
        members: Vec<MemberScore>,
        /// The ensemble's MASE: at each origin, the forecast of the member in use.
        ensemble: f64,
        /// The ensemble's MASE at each step ahead.
        ensemble_per_step: Vec<f64>,
        /// How many origins each member was in use at (naive: the forecast was ignored).
        in_use: BTreeMap<Member, usize>,
        /// The trailing window the column was read through, if any.
        metric_window: Option<chrono::Duration>,
    },
    States {
        rows: usize,
        distribution: BTreeMap<TrafficState, usize>,
        /// (true label, predicted state) -> count, when the trace is labeled.
        confusion: Option<BTreeMap<(String, TrafficState), usize>>,
        skipped: usize,
    },
}

/// One member's MASE over `origins` origins.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberScore {
    pub member: Member,
    pub mase: f64,
    /// The MASE at each step ahead (their mean is `mase`).
    pub per_step: Vec<f64>,
    pub origins: usize,
}

impl EvalReport {
    /// The MASE of `member`, if it was scored.
    pub fn mase_of(&self, member: Member) -> Option<f64> {
        match self {
            EvalReport::Forecast { members, .. } => {
                members.iter().find(|m| m.member == member).map(|m| m.mase)
            }
            EvalReport::States { .. } => None,
        }
    }
}

/// Options for [`evaluate`].
#[derive(Clone, Debug, Default)]
pub struct EvalOptions {
    /// Forecaster: the load column (default `requests`, or the only numeric column).
    pub column: Option<String>,
    /// Classifier: role -> column, overriding the default names (`requests`, `errors`,
    /// `latency`, `receive_bytes`, `transmit_bytes`).
    pub inputs: BTreeMap<String, String>,
    /// Forecaster: score only forecasts made at or after this time; the rows before it are
    /// history (a held-out day after the days before it).
    pub from: Option<DateTime<Utc>>,
    /// Forecaster: read the column through this trailing window, as `replay --metric-window`
    /// does (an arrival trace whose query is `rate(x[w])`); the MASE is then that of the
    /// windowed series, what a policy's forecaster sees live. At least the row spacing.
    pub metric_window: Option<chrono::Duration>,
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
        ModelKind::Classifier if options.metric_window.is_some() => {
            Err(EvalError::Read(ReplayError::Options(
                "--metric-window applies to a forecaster; a classifier reads its role columns as \
                 they are"
                    .to_owned(),
            )))
        }
        ModelKind::Classifier => evaluate_classifier(Classifier::new(model)?, trace, path, options),
    }
}

/// The samples of the forecast column `name` as the policy reads it: the column itself, or
/// through `window` replay's observed series of it (its trailing mean at each row); `None`
/// when the trace has no such column.
fn load_samples(
    trace: &Trace,
    name: &str,
    window: Option<chrono::Duration>,
) -> Result<Option<Vec<Sample>>, EvalError> {
    let Some(window) = window else {
        return Ok(samples(trace, name));
    };
    check_window(window, trace.step())?;
    let Some(column) = trace.column(name) else {
        return Ok(None);
    };
    let demand = Demand::new(&trace.times, &column.values, trace.step());
    let observed = Observed::windowed(&demand, window, &trace.times, &[]);
    Ok(Some(
        observed
            .points
            .iter()
            .map(|point| Sample {
                at: point.at,
                value: point.value,
            })
            .collect(),
    ))
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

/// The column `model eval` forecasts: the one named, else `requests`, else the only one.
fn forecast_column(trace: &Trace, path: &str, options: &EvalOptions) -> Result<String, EvalError> {
    match &options.column {
        Some(column) => Ok(column.clone()),
        None if trace.column("requests").is_some() => Ok("requests".to_owned()),
        None if trace.columns.len() == 1 => Ok(trace.columns[0].name.clone()),
        None => Err(EvalError::Trace {
            path: path.to_owned(),
            problem: format!(
                "say which column to forecast with --column; columns: {}",
                trace.column_names()
            ),
        }),
    }
}

fn evaluate_forecaster(
    model: Forecaster,
    trace: &Trace,
    path: &str,
    options: &EvalOptions,
) -> Result<EvalReport, EvalError> {
    let column = forecast_column(trace, path, options)?;
    let samples =
        load_samples(trace, &column, options.metric_window)?.ok_or_else(|| EvalError::Trace {
            path: path.to_owned(),
            problem: format!("no column {column:?}; columns: {}", trace.column_names()),
        })?;
    let meta = model.model().metadata.clone();
    let (window, horizon, period) = (meta.window, meta.horizon, meta.sample_period_secs);
    let series = grid(&samples, period);
    let start = samples
        .iter()
        .filter(|s| s.value.is_finite())
        .map(|s| s.at)
        .min();
    let tick = |k: usize| {
        start.map(|t| {
            t + chrono::Duration::milliseconds((k as f64 * period * 1000.0).round() as i64)
        })
    };
    let complete = |range: std::ops::Range<usize>| series[range].iter().all(|v| v.is_finite());
    let scored_from = options.from;
    let is_origin = |o: usize| {
        o + 1 >= window
            && o + horizon < series.len()
            && complete(o + 1 - window..o + 1 + horizon)
            && scored_from.is_none_or(|from| tick(o).is_some_and(|t| t >= from))
    };
    // The model's path at every grid point with a full window (the ensemble is scored at
    // every one of them, as a live loop ticking every sample period would be).
    let ready: Vec<usize> = (window.saturating_sub(1)..series.len())
        .filter(|&o| complete(o + 1 - window..o + 1))
        .collect();
    let mut paths = vec![None; series.len()];
    for chunk in ready.chunks(4096) {
        let windows: Vec<Vec<f32>> = chunk
            .iter()
            .map(|&o| {
                series[o + 1 - window..o + 1]
                    .iter()
                    .map(|&v| v as f32)
                    .collect()
            })
            .collect();
        for (&o, steps) in chunk.iter().zip(model.forecast(&windows)?) {
            paths[o] = Some(steps);
        }
    }
    let spec = ForecastSpec {
        model: model.model().name.clone(),
        metric: column.clone(),
        horizon: HumanDuration(std::time::Duration::from_secs_f64(horizon as f64 * period)),
        use_for: ForecastUse::ScaleUp,
    };
    let mut memory = SignalMemory::default();
    let mut fed = 0;
    // Per member: the absolute error summed at each step ahead, and the origins.
    let mut sums = [(); Member::ALL.len()].map(|_| (vec![0.0; horizon], 0usize));
    let mut ensemble_sum = vec![0.0; horizon];
    let mut in_use = BTreeMap::new();
    let mut origins = 0;
    for (o, steps) in paths.into_iter().enumerate() {
        let Some(now) = tick(o) else { break };
        while let Some(sample) = samples.get(fed).filter(|s| s.at <= now) {
            memory.push(&column, *sample);
            fed += 1;
        }
        let Some(steps) = steps else { continue };
        let path = ForecastPath {
            steps,
            period_secs: period,
        };
        let mut signals = Signals::default();
        memory.ensemble_forecast(&spec, DEFAULT_TOLERANCE, &path, now, &mut signals);
        let members = &signals.members;
        let has = |m: Member| members.get(m).is_some_and(|p| p.len() == horizon);
        if !(is_origin(o) && has(Member::Model) && has(Member::Naive) && has(Member::Holt)) {
            continue;
        }
        let actual = &series[o + 1..o + 1 + horizon];
        let add = |sum: &mut [f64], path: &[f64]| {
            for ((s, p), a) in sum.iter_mut().zip(path).zip(actual) {
                *s += (p - a).abs();
            }
        };
        for member in Member::ALL {
            if let Some(path) = members.get(member).filter(|p| p.len() == horizon) {
                let (sum, count) = &mut sums[member.index()];
                add(sum, path);
                *count += 1;
            }
        }
        let used = signals
            .verdict
            .as_ref()
            .and_then(|v| v.member())
            .unwrap_or(Member::Naive);
        match members.get(used) {
            Some(path) => add(&mut ensemble_sum, path),
            None => ensemble_sum.fill(f64::NAN),
        }
        *in_use.entry(used).or_insert(0) += 1;
        origins += 1;
    }
    if origins == 0 {
        return Err(EvalError::Trace {
            path: path.to_owned(),
            problem: format!(
                "{column}: no gap-free stretch of {} samples to evaluate on",
                window + horizon
            ),
        });
    }
    let first = scored_from
        .and_then(|from| (0..series.len()).find(|&k| tick(k).is_some_and(|t| t >= from)))
        .unwrap_or(window - 1)
        .max(1);
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
    let per_step = |sum: &[f64], count: usize| -> Vec<f64> {
        sum.iter().map(|s| s / (count as f64 * scale)).collect()
    };
    let mean = |steps: &[f64]| steps.iter().sum::<f64>() / steps.len() as f64;
    let members = Member::ALL
        .iter()
        .filter(|m| sums[m.index()].1 > 0)
        .map(|&member| {
            let (sum, count) = &sums[member.index()];
            let steps = per_step(sum, *count);
            MemberScore {
                member,
                mase: mean(&steps),
                per_step: steps,
                origins: *count,
            }
        })
        .collect();
    let ensemble_per_step = per_step(&ensemble_sum, origins);
    Ok(EvalReport::Forecast {
        column,
        origins,
        members,
        ensemble: mean(&ensemble_per_step),
        ensemble_per_step,
        in_use,
        metric_window: options.metric_window,
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
                members,
                ensemble,
                ensemble_per_step,
                in_use,
                metric_window,
            } => {
                let window = metric_window.map_or_else(String::new, |w| {
                    format!(" (its mean over the last {})", observed::show(w))
                });
                writeln!(
                    f,
                    "forecast of {column}{window} over {origins} origins, MASE (lower is better):"
                )?;
                for score in members {
                    write!(f, "  {:<16} {:.3}", score.member.as_str(), score.mase)?;
                    if score.origins != *origins {
                        let needs = match score.member {
                            Member::SeasonalNaive => "a day of history",
                            _ => "enough history",
                        };
                        write!(f, "  (over the {} origins with {needs})", score.origins)?;
                    }
                    writeln!(f)?;
                }
                if !members.iter().any(|m| m.member == Member::SeasonalNaive) {
                    writeln!(f, "  seasonal-naive   n/a (no origin has a day of history)")?;
                }
                writeln!(f, "  ensemble         {ensemble:.3}")?;
                let shares: Vec<String> = in_use
                    .iter()
                    .map(|(member, n)| {
                        format!(
                            "{member} {:.1}%",
                            100.0 * *n as f64 / (*origins).max(1) as f64
                        )
                    })
                    .collect();
                writeln!(
                    f,
                    "  member in use: {} (naive: forecast ignored)",
                    shares.join(", ")
                )?;
                writeln!(f, "MASE per step ahead:")?;
                let row = |f: &mut std::fmt::Formatter<'_>, name: &str, steps: &[f64]| {
                    write!(f, "  {name:<16}")?;
                    for value in steps {
                        write!(f, " {value:>6.3}")?;
                    }
                    writeln!(f)
                };
                write!(f, "  {:<16}", "step")?;
                for k in 1..=ensemble_per_step.len() {
                    write!(f, " {k:>6}")?;
                }
                writeln!(f)?;
                for score in members {
                    row(f, score.member.as_str(), &score.per_step)?;
                }
                row(f, "ensemble", ensemble_per_step)
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
