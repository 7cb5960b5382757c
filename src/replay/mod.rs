//! Offline replay: what a policy would have done on a recorded or synthetic trace, side by side
//! with the HPA baseline, through the same `decide` the reconcile loop calls.
//!
//! A trace column gives the demand ([`trace`], [`demand`]); [`simulate`] runs the policy's
//! decisions over it with replicas that take `startup` to serve; [`signals`] brings the models'
//! forecasts and traffic states in; [`summary`] integrates the figures; [`series`], [`plot`]
//! write them out; [`synthetic`] makes test traces; [`parity`] checks a replay against the
//! decisions the live loop recorded.

pub mod demand;
mod error;
pub mod models;
pub mod observed;
pub mod parity;
pub mod plot;
pub mod series;
pub mod signals;
pub mod simulate;
pub mod summary;
pub mod synthetic;
pub mod trace;

use chrono::{DateTime, Duration, Utc};

pub use demand::{Demand, Point};
pub use error::ReplayError;
pub use models::ModelSignals;
pub use observed::Observed;
pub use signals::{NoModels, PerTick, RoleSeries, Signals};
pub use simulate::{Service, Tick};
pub use summary::Summary;
pub use trace::Trace;

use crate::policy::{AnomalySpec, Behavior, Mode, ScalingPolicy};
use simulate::TickSignals;
use summary::Labels;

/// How to read the trace and what the simulated service is like.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The trace column that is the load metric; see [`load_column`] for the default.
    pub metric: Option<String>,
    /// Multiplies the service's traffic: the load column (e.g. 1/60 for a per-minute column
    /// read as per second) and every classifier input that is a count or rate of the traffic
    /// (requests, errors, bytes received and sent); latency, a per-request figure, is not
    /// multiplied. The classifier's features are ratios of these, so its states do not change
    /// with the scale.
    pub scale: f64,
    /// The policy reads the column through this trailing window (an arrival trace whose query
    /// is `rate(x[w])`): see [`observed`]. The classifier reads its traffic roles (requests,
    /// errors, bytes received and sent) through the same window; latency, a per-request figure,
    /// as it is. `None`: every column is read as it is (a trace `record` wrote). The demand is
    /// the column as it is either way.
    pub metric_window: Option<Duration>,
    pub capacity_per_replica: f64,
    pub startup: Duration,
    /// Default: the policy's `minReplicas`.
    pub initial_replicas: Option<u32>,
    /// Decisions and figures start at the first row at or after this time; the rows before are
    /// history only, as the operator's start-up backfill gives it: the models' windows and the
    /// metric's window read them. `None`: from the trace's first row, with no history.
    pub from: Option<DateTime<Utc>>,
    /// The decision times, increasing; default (`None`): every policy `interval` from the
    /// trace's start. Replaying at the times a live loop decided puts the same decisions in
    /// each stabilization window (see [`parity`]).
    pub ticks: Option<Vec<DateTime<Utc>>>,
}

/// One simulated run.
#[derive(Clone, Debug)]
pub struct Run {
    pub name: String,
    pub ticks: Vec<Tick>,
    pub summary: Summary,
}

/// The policy and the HPA baseline on the same trace.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// The policy metric the trace drives, and the trace column it was read from.
    pub metric: String,
    pub column: String,
    pub demand: Demand,
    /// Row times of the replayed range (the series grid).
    pub times: Vec<DateTime<Utc>>,
    /// The trailing window the policy reads the column through, if any.
    pub metric_window: Option<Duration>,
    /// The load metric as both runs observed it at each tick.
    pub observed: Observed,
    pub horizon: Option<Duration>,
    pub service: Service,
    pub policy: Run,
    pub baseline: Run,
    /// Things the reader of the figures should know (metrics left out, models skipped...).
    pub notes: Vec<String>,
}

/// Replays `policy` and its HPA baseline over `trace`.
pub fn compare(
    policy: &ScalingPolicy,
    trace: &Trace,
    options: &Options,
    signals: &dyn Signals,
) -> Result<Comparison, ReplayError> {
    check_options(options, policy, trace)?;
    let mut notes: Vec<String> = trace.repeat_note().into_iter().collect();
    let load = load_metric(policy)?.clone();
    let column = load_column(trace, &load.name, options.metric.as_deref())?;
    let values = scaled(column, options.scale);
    if values.iter().all(Option::is_none) {
        return Err(ReplayError::NoValues {
            column: column.name.clone(),
        });
    }
    // Decisions and figures cover the rows from `options.from` on; the whole trace is history.
    let first = options
        .from
        .map_or(0, |from| trace.times.partition_point(|&at| at < from));
    if trace.times.len().saturating_sub(first) < 2 {
        return Err(ReplayError::EmptyRange {
            first: trace.times[0],
            last: trace.times[trace.times.len() - 1],
        });
    }
    let times = &trace.times[first..];
    let demand = Demand::new(times, &values[first..], trace.step());
    let earlier = (first > 0).then(|| Demand::new(&trace.times, &values, trace.step()));
    let history = earlier.as_ref().unwrap_or(&demand);

    let mut simulated = policy.clone();
    simulated.spec.mode = Mode::Enforce;
    let left_out: Vec<&str> = policy
        .spec
        .metrics
        .iter()
        .filter(|m| m.name != load.name)
        .map(|m| m.name.as_str())
        .collect();
    if !left_out.is_empty() {
        notes.push(format!(
            "replay drives metric {} only; left out: {}",
            load.name,
            left_out.join(", ")
        ));
    }
    simulated.spec.metrics.retain(|m| m.name == load.name);
    if policy.spec.mode == Mode::Recommend {
        notes.push("the policy's mode is recommend; replay applies its decisions".to_owned());
    }
    let baseline = hpa_baseline(&simulated);

    let interval = Duration::from_std(policy.spec.interval.as_std())
        .map_err(|e| ReplayError::Options(format!("interval: {e}")))?;
    let ticks = match &options.ticks {
        Some(ticks) => ticks.clone(),
        None => simulate::tick_times(&demand, interval),
    };
    let observed = Observed::read(history, options.metric_window, &trace.times, &ticks);
    let forecasts = match &simulated.spec.forecast {
        Some(spec) if spec.metric == load.name => {
            let per_tick = signals.forecasts(spec, &observed.points, &ticks)?;
            notes.extend(skipped("forecast", &per_tick));
            Some(per_tick)
        }
        Some(spec) => {
            notes.push(format!(
                "forecast.metric {} is not the replayed metric {}: no forecast",
                spec.metric, load.name
            ));
            None
        }
        None => None,
    };
    let states = match &simulated.spec.anomaly {
        Some(spec) => {
            let roles = role_series(spec, trace, &load.name, &observed, options)?;
            let per_tick = signals.states(spec, &roles, &ticks)?;
            notes.extend(skipped("traffic state", &per_tick));
            Some(per_tick)
        }
        None => None,
    };

    let service = Service {
        capacity_per_replica: options.capacity_per_replica,
        startup: options.startup,
        initial_replicas: options
            .initial_replicas
            .unwrap_or(policy.spec.min_replicas)
            .clamp(policy.spec.min_replicas, policy.spec.max_replicas),
    };
    let labels = trace.labels.as_ref().map(|labels| Labels {
        times,
        labels: &labels[first..],
    });
    let run = |name: String, policy: &ScalingPolicy, signals: &TickSignals<'_>| {
        let ticks = simulate::simulate(policy, &load, service, &demand, &observed, &ticks, signals);
        let summary = summary::summarize(&demand, &ticks, service.capacity_per_replica, labels);
        Run {
            name,
            ticks,
            summary,
        }
    };
    let with_models = TickSignals {
        forecasts: forecasts.as_ref(),
        states: states.as_ref(),
    };
    let policy_run = run(policy.metadata.name.clone(), &simulated, &with_models);
    let ignored = policy_run
        .ticks
        .iter()
        .filter(|t| t.forecast_ignored)
        .count();
    if ignored > 0 {
        notes.push(format!(
            "forecast ignored at {ignored} of {} ticks: lately worse than the naive forecast",
            policy_run.ticks.len()
        ));
    }
    Ok(Comparison {
        metric: load.name.clone(),
        column: column.name.clone(),
        times: times.to_vec(),
        metric_window: options.metric_window,
        horizon: simulated
            .spec
            .forecast
            .as_ref()
            .and_then(|f| Duration::from_std(f.horizon.as_std()).ok()),
        policy: policy_run,
        baseline: run(
            "HPA baseline".to_owned(),
            &baseline,
            &TickSignals::default(),
        ),
        demand,
        // After both runs, which borrow it.
        observed,
        service,
        notes,
    })
}

/// The same policy as Kubernetes' HPA would run it: HPA's default behavior, no forecast, no
/// traffic states.
pub fn hpa_baseline(policy: &ScalingPolicy) -> ScalingPolicy {
    let mut baseline = policy.clone();
    baseline.spec.behavior = Behavior::default();
    baseline.spec.forecast = None;
    baseline.spec.anomaly = None;
    baseline
}

/// The metric the trace drives: the forecast's metric, else the first one.
pub fn load_metric(policy: &ScalingPolicy) -> Result<&crate::policy::MetricSpec, ReplayError> {
    let metrics = &policy.spec.metrics;
    policy
        .spec
        .forecast
        .as_ref()
        .and_then(|f| metrics.iter().find(|m| m.name == f.metric))
        .or_else(|| metrics.first())
        .ok_or_else(|| ReplayError::Options("the policy has no metrics to replay".to_owned()))
}

/// The trace column of the load metric: `--metric`, else the column named as the metric, else
/// the trace's only value column.
pub fn load_column<'t>(
    trace: &'t Trace,
    metric: &str,
    chosen: Option<&str>,
) -> Result<&'t trace::Column, ReplayError> {
    if let Some(name) = chosen {
        return trace
            .column(name)
            .ok_or_else(|| ReplayError::MissingColumn {
                name: name.to_owned(),
                why: "named by --metric".to_owned(),
                columns: trace.column_names(),
            });
    }
    if let Some(column) = trace.column(metric) {
        return Ok(column);
    }
    match trace.columns.as_slice() {
        [only] => Ok(only),
        _ => Err(ReplayError::AmbiguousColumn {
            columns: trace.column_names(),
        }),
    }
}

fn check_options(
    options: &Options,
    policy: &ScalingPolicy,
    trace: &Trace,
) -> Result<(), ReplayError> {
    if !(options.capacity_per_replica.is_finite() && options.capacity_per_replica > 0.0) {
        return Err(ReplayError::Options(format!(
            "--capacity-per-replica must be a positive number, got {}",
            options.capacity_per_replica
        )));
    }
    if !(options.scale.is_finite() && options.scale > 0.0) {
        return Err(ReplayError::Options(format!(
            "--scale must be a positive number, got {}",
            options.scale
        )));
    }
    if let Some(window) = options.metric_window {
        observed::check_window(window, trace.step())?;
    }
    if options.startup < Duration::zero() {
        return Err(ReplayError::Options(
            "--startup must not be negative".to_owned(),
        ));
    }
    if let Some(ticks) = &options.ticks {
        if ticks.is_empty() || ticks.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ReplayError::Options(
                "the decision times must be given, each after the one before".to_owned(),
            ));
        }
    }
    if let Some(initial) = options.initial_replicas {
        let spec = &policy.spec;
        if initial < spec.min_replicas || initial > spec.max_replicas {
            return Err(ReplayError::Options(format!(
                "--initial-replicas {initial} is outside minReplicas..maxReplicas ({}..{})",
                spec.min_replicas, spec.max_replicas
            )));
        }
    }
    Ok(())
}

/// The classifier's role series: the load metric's role reads the load metric as the policy
/// observes it, every other named metric the trace column of the same name. A role that is a
/// count or rate of the traffic is read as the load metric is: multiplied by `scale`
/// ([`Options::scale`]) and through `--metric-window` ([`Observed::read`]), so that a feature
/// such as errors over requests compares two means over the same window, as the live queries
/// (`rate(x[w])` each) do.
fn role_series(
    spec: &AnomalySpec,
    trace: &Trace,
    load: &str,
    observed: &Observed,
    options: &Options,
) -> Result<RoleSeries, ReplayError> {
    let series = |role: &str,
                  metric: &Option<String>,
                  unit: RoleUnit|
     -> Result<Option<Vec<Point>>, ReplayError> {
        let Some(metric) = metric else {
            return Ok(None);
        };
        if metric == load {
            return Ok(Some(observed.points.clone()));
        }
        let column = trace
            .column(metric)
            .ok_or_else(|| ReplayError::MissingColumn {
                name: metric.clone(),
                why: format!("anomaly.inputs.{role} names it"),
                columns: trace.column_names(),
            })?;
        // Latency is read as the column gives it, window or not: it is a figure per request
        // (a quantile or a mean of the row's requests), not a count. Its time-weighted mean
        // would weigh an idle second like a busy one, which is neither what a quantile of
        // `rate(bucket[w])` nor a mean of `rate(sum[w]) / rate(count[w])` reads; both need
        // the requests behind each row, which a trace column of latency does not hold.
        let (factor, window) = match unit {
            RoleUnit::Traffic => (options.scale, options.metric_window),
            RoleUnit::PerRequest => (1.0, None),
        };
        let demand = Demand::new(&trace.times, &scaled(column, factor), trace.step());
        Ok(Some(
            Observed::read(&demand, window, &trace.times, &[]).points,
        ))
    };
    let inputs = &spec.inputs;
    Ok(RoleSeries {
        requests: series("requests", &inputs.requests, RoleUnit::Traffic)?,
        errors: series("errors", &inputs.errors, RoleUnit::Traffic)?,
        latency: series("latency", &inputs.latency, RoleUnit::PerRequest)?,
        receive_bytes: series("receiveBytes", &inputs.receive_bytes, RoleUnit::Traffic)?,
        transmit_bytes: series("transmitBytes", &inputs.transmit_bytes, RoleUnit::Traffic)?,
    })
}

/// The column's values multiplied by `factor`; empty cells stay empty.
fn scaled(column: &trace::Column, factor: f64) -> Vec<Option<f64>> {
    column
        .values
        .iter()
        .map(|v| v.map(|value| value * factor))
        .collect()
}

/// What a classifier role measures, which decides whether `--scale` multiplies it and
/// `--metric-window` averages it.
#[derive(Clone, Copy)]
enum RoleUnit {
    /// A count or rate of the service's traffic: scales with it.
    Traffic,
    /// A figure per request (latency): the same at any traffic.
    PerRequest,
}

/// A note on how many ticks a model gave nothing, with the first reason.
fn skipped<T>(what: &str, per_tick: &PerTick<T>) -> Option<String> {
    let missing = per_tick.iter().filter(|r| r.is_err()).count();
    let first = per_tick.iter().find_map(|r| r.as_ref().err())?;
    Some(format!(
        "{what}: none at {missing} of {} ticks (first: {first})",
        per_tick.len()
    ))
}
