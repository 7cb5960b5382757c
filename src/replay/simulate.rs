//! The simulated service: every policy `interval`, an observation built from the demand, a call
//! to the same `decide` the reconcile loop makes, and the desired count applied, with new
//! replicas serving only after the start-up time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::demand::Demand;
use super::observed::Observed;
use super::signals::PerTick;
use crate::decide::{
    decide, History, MetricSample, Observation, Reason, TaskObservation, TaskPhase,
};
use crate::models::{Answers, ForecastPath, Sample, SignalMemory};
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
    /// The forecast of the load metric (the peak over the horizon), if the forecaster gave one.
    pub forecast: Option<f64>,
    /// The forecast was left out of the decision: lately worse than the naive forecast.
    pub forecast_ignored: bool,
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

/// The model outputs per tick, when the policy uses them.
#[derive(Clone, Debug, Default)]
pub struct TickSignals<'a> {
    pub forecasts: Option<&'a PerTick<ForecastPath>>,
    pub states: Option<&'a PerTick<TrafficState>>,
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

/// Runs `policy` (whose metric `load` is the one the trace drives) over the demand, observing
/// the load metric as `observed` (one value a tick) says.
pub fn simulate(
    policy: &ScalingPolicy,
    load: &MetricSpec,
    service: Service,
    demand: &Demand,
    observed: &Observed,
    ticks: &[DateTime<Utc>],
    signals: &TickSignals<'_>,
) -> Vec<Tick> {
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
    // The same per-service memory of model signals the live loop keeps, fed the trace.
    let mut memory = SignalMemory::default();
    let mut fed = 0;
    let mut out = Vec::with_capacity(ticks.len());

    for (k, &now) in ticks.iter().enumerate() {
        let serving = replicas.iter().filter(|r| r.ready_at <= now).count();
        let capacity = serving as f64 * service.capacity_per_replica;
        let seen = observed.at_ticks.get(k).copied().flatten();
        let mut observation = observe(load, &replicas, seen, capacity, now);
        while let Some(point) = observed.points.get(fed).filter(|p| p.at <= now) {
            let sample = Sample {
                at: point.at,
                value: point.value,
            };
            memory.push(&load.name, sample);
            fed += 1;
        }
        let answers = Answers {
            forecast: signals.forecasts.and_then(|f| f.get(k).cloned()),
            state: signals.states.and_then(|s| s.get(k).cloned()),
        };
        let said = memory.conclude(&policy.spec, answers, now);
        observation.forecast = said
            .forecast
            .and_then(|f| as_metric(load.target, f, capacity));
        observation.traffic = said.traffic;

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
            demand: demand.at(now),
            current: decision.current,
            replicas: replicas.clone(),
            forecast: said.forecast_seen,
            forecast_ignored: said.forecast_seen.is_some() && said.forecast.is_none(),
            state: said.traffic.map(|t| t.state),
            reason: decision.reason,
        });
    }
    out
}

/// The observation of the load metric as the policy reads it: `averageValue` sees the total
/// `seen` (the demand, or its mean over `--metric-window`), `value` the same, `utilization`
/// each serving replica's share of its capacity.
fn observe(
    load: &MetricSpec,
    replicas: &[Replica],
    seen: Option<f64>,
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
    let sample = match seen {
        None => MetricSample::failed(
            "the trace has no sample of the load metric at this time (or in its --metric-window)",
        ),
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
