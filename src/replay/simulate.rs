//! The simulated service: every policy `interval`, an observation built from the demand, a call
//! to the same `decide` the reconcile loop makes, and the desired count applied, with new
//! replicas serving only after the start-up time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::demand::Demand;
use super::signals::Models;
use crate::decide::ensemble::Choice;
use crate::decide::{
    decide, History, MetricSample, Observation, Reason, TaskObservation, TaskPhase,
};
use crate::models::{Answers, Sample, SignalMemory};
use crate::policy::{MetricSpec, ScalingPolicy, Target, TrafficState};

/// What one replica of the simulated service can do and how long it takes to get there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Service {
    /// The demand (in the load metric's unit) one serving replica absorbs.
    pub capacity_per_replica: f64,
    /// How long after it is created a replica starts serving.
    pub startup: Duration,
    /// The replica count at the start of the trace, all of them serving.
    pub initial_replicas: u32,
}

/// One replica: when it was created and when it serves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Replica {
    pub id: u64,
    pub created: DateTime<Utc>,
    pub ready_at: DateTime<Utc>,
}

/// The state after the decision at one tick; it lasts until the next tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub at: DateTime<Utc>,
    pub demand: Option<f64>,
    /// The replica count before the decision.
    pub current: u32,
    /// The replicas after applying it, oldest first.
    pub replicas: Vec<Replica>,
    /// The forecast ensemble's choice: the load at the horizon, the member that made it, the
    /// recent errors and the model's own value.
    pub forecast: Option<Choice>,
    /// The classifier's state at this tick, if it gave one.
    pub state: Option<TrafficState>,
    pub reason: Reason,
}

impl Tick {
    pub fn desired(&self) -> u32 {
        count(self.replicas.len())
    }

    /// Replicas serving at `at` (within this tick's span).
    pub fn ready_at(&self, at: DateTime<Utc>) -> u32 {
        count(self.replicas.iter().filter(|r| r.ready_at <= at).count())
    }
}

/// The trace series the live loop would have read at each tick, by metric name: the load
/// metric and the classifier's other inputs.
pub type Readings<'a> = [(&'a str, &'a Demand)];

/// How often a model gave nothing during a run, and the first reason: for the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Skipped {
    pub forecast: Option<(usize, String)>,
    pub state: Option<(usize, String)>,
}

fn count_skip(slot: &mut Option<(usize, String)>, why: &str) {
    match slot {
        Some((count, _)) => *count += 1,
        None => *slot = Some((1, why.to_owned())),
    }
}

/// The decision times: the trace start, then every `interval`, before the trace end.
pub fn tick_times(demand: &Demand, interval: Duration) -> Vec<DateTime<Utc>> {
    let mut ticks = Vec::new();
    let mut at = demand.start;
    while at < demand.end {
        ticks.push(at);
        at += interval;
    }
    ticks
}

/// Runs `policy` (whose metric `load` is the one the trace drives) over the demand. At each
/// tick the [`SignalMemory`] reads what the live loop would have read (each series' value at
/// the tick), the models are asked what the live loop would ask, and their answers are taken
/// the same way.
pub fn simulate(
    policy: &ScalingPolicy,
    load: &MetricSpec,
    service: Service,
    demand: &Demand,
    readings: &Readings<'_>,
    ticks: &[DateTime<Utc>],
    models: &dyn Models,
) -> (Vec<Tick>, Skipped) {
    let mut next_id = 0u64;
    let mut new_replica = |created: DateTime<Utc>, ready_at: DateTime<Utc>| {
        next_id += 1;
        Replica {
            id: next_id,
            created,
            ready_at,
        }
    };
    // The initial replicas have run for a while: no start-up, no CPU initialization period.
    let long_ago = demand.start - Duration::hours(1) - service.startup;
    let mut replicas: Vec<Replica> = (0..service.initial_replicas)
        .map(|_| new_replica(long_ago, demand.start))
        .collect();
    let mut history = History::default();
    let mut memory = SignalMemory::default();
    let mut skipped = Skipped::default();
    let mut out = Vec::with_capacity(ticks.len());

    for &now in ticks {
        let value = demand.at(now);
        let serving = replicas.iter().filter(|r| r.ready_at <= now).count();
        let capacity = serving as f64 * service.capacity_per_replica;
        let mut observation = observe(load, &replicas, value, capacity, now);
        let answers = ask_models(&policy.spec, &mut memory, readings, models, now);
        if let Some(Err(why)) = &answers.forecast {
            count_skip(&mut skipped.forecast, why);
        }
        if let Some(Err(why)) = &answers.state {
            count_skip(&mut skipped.state, why);
        }
        let state = answers.state.clone().and_then(Result::ok);
        let signals = memory.conclude(&policy.spec, answers, now);
        observation.forecast = signals
            .forecast_value()
            .and_then(|f| as_metric(load.target, f, capacity));
        observation.traffic = signals.traffic;

        let decision = decide(policy, &observation, &history, None, now);
        history = history.record(&policy.spec, &decision, true, now);
        let desired = decision.desired as usize;
        if desired > replicas.len() {
            let added = desired - replicas.len();
            replicas.extend((0..added).map(|_| new_replica(now, now + service.startup)));
        } else {
            // Swarm removes the highest slots, the newest tasks, first.
            replicas.truncate(desired);
        }
        out.push(Tick {
            at: now,
            demand: value,
            current: decision.current,
            replicas: replicas.clone(),
            forecast: signals.forecast,
            state,
            reason: decision.reason,
        });
    }
    (out, skipped)
}

/// Records the tick's readings and runs the models on what the memory asks.
fn ask_models(
    spec: &crate::policy::PolicySpec,
    memory: &mut SignalMemory,
    readings: &Readings<'_>,
    models: &dyn Models,
    now: DateTime<Utc>,
) -> Answers {
    memory.record(readings.iter().map(|(name, series)| {
        let sample = series.at(now).map(|value| Sample { at: now, value });
        (*name, sample)
    }));
    let mut period = None;
    let inputs = memory.inputs(
        spec,
        |forecast| {
            let meta = models.forecaster(forecast)?;
            period = Some(meta.sample_period_secs);
            Ok(meta)
        },
        |anomaly| models.classifier(anomaly),
        now,
    );
    let forecast = spec
        .forecast
        .as_ref()
        .zip(inputs.forecast)
        .map(|(f, window)| {
            let steps = models.forecast(f, window?, now)?;
            Ok((steps, period.unwrap_or(f64::NAN)))
        });
    let state = spec
        .anomaly
        .as_ref()
        .zip(inputs.classify)
        .map(|(a, row)| models.classify(a, row?));
    Answers { forecast, state }
}

/// The observation of the load metric as the policy reads it: `averageValue` sees the total
/// demand, `value` the demand, `utilization` each serving replica's share of its capacity.
fn observe(
    load: &MetricSpec,
    replicas: &[Replica],
    demand: Option<f64>,
    capacity: f64,
    now: DateTime<Utc>,
) -> Observation {
    let mut observation = Observation::new(count(replicas.len()));
    observation.tasks = replicas
        .iter()
        .map(|r| {
            let ready = r.ready_at <= now;
            TaskObservation {
                id: task_id(r),
                phase: if ready {
                    TaskPhase::Running
                } else {
                    TaskPhase::Starting
                },
                started_at: ready.then_some(r.created),
                unplaced: None,
            }
        })
        .collect();
    let sample = match demand {
        None => MetricSample::failed("the trace has no sample of the load metric at this time"),
        Some(value) => match load.target {
            Target::AverageValue(_) | Target::Value(_) => MetricSample::value(value),
            Target::Utilization(_) => {
                let share = if capacity > 0.0 {
                    value / capacity * 100.0
                } else {
                    f64::INFINITY
                };
                let per_task: BTreeMap<String, f64> = replicas
                    .iter()
                    .filter(|r| r.ready_at <= now)
                    .map(|r| (task_id(r), share))
                    .collect();
                MetricSample::per_task(per_task)
            }
        },
    };
    observation.metrics.insert(load.name.clone(), sample);
    observation
}

/// A forecast of the demand as the policy's metric reads it: utilization relative to the
/// capacity serving now (the forecaster sees demand, which does not depend on the replica count).
fn as_metric(target: Target, forecast: f64, capacity: f64) -> Option<f64> {
    match target {
        Target::AverageValue(_) | Target::Value(_) => Some(forecast),
        Target::Utilization(_) => (capacity > 0.0).then(|| forecast / capacity * 100.0),
    }
}

fn task_id(replica: &Replica) -> String {
    format!("replica-{}", replica.id)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
