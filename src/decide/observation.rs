//! What `decide` is told about a service at one instant: replica count, tasks, metric samples.
//!
//! Plain data filled in by the reconcile loop (or by `replay` from a trace); nothing here does I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{HumanDuration, TrafficState};

/// How long after a task starts its CPU samples are set aside, like HPA's
/// `--horizontal-pod-autoscaler-cpu-initialization-period`. Docker has no readiness signal, so
/// a task counts as "not yet ready" for CPU until it has run this long: start-up bursts (JIT,
/// cache warming) would otherwise look like load and trigger a needless scale-up.
pub const DEFAULT_CPU_INITIALIZATION_PERIOD: HumanDuration = HumanDuration::from_secs(30);

/// One reconcile's view of a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// The replica count in the service spec (HPA's `scale.spec.replicas`).
    pub current_replicas: u32,
    /// The service's tasks; tasks that already stopped should be left out.
    pub tasks: Vec<TaskObservation>,
    /// One sample per policy metric, by metric name. A metric with no entry counts as failed.
    pub metrics: BTreeMap<String, MetricSample>,
    /// See [`DEFAULT_CPU_INITIALIZATION_PERIOD`].
    pub cpu_initialization_period: HumanDuration,
    /// The forecast of `spec.forecast.metric`: the peak over the horizon of the forecast
    /// ensemble's member in use (see [`crate::models::horizon_peak`], the one rule of the live
    /// loop and `replay`), when the policy has a forecast and the naive forecast is not the
    /// member in use; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// The traffic state the classifier reports and since when it has been reported without
    /// interruption; `decide` applies `anomaly.onState` once it has persisted for `anomaly.for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<ObservedState>,
    /// The rolling update or rollback Swarm is running on the service, if one is in progress:
    /// `decide` then holds the count, since any write would replace the rollback target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

impl Observation {
    /// An observation with no tasks, samples, forecast or traffic state yet.
    pub fn new(current_replicas: u32) -> Self {
        Observation {
            current_replicas,
            tasks: Vec::new(),
            metrics: BTreeMap::new(),
            cpu_initialization_period: DEFAULT_CPU_INITIALIZATION_PERIOD,
            forecast: None,
            traffic: None,
            rollout: None,
        }
    }

    /// The tasks that count as the service's replicas (HPA's `status.replicas`): those not
    /// shutting down.
    pub fn live_tasks(&self) -> usize {
        self.tasks
            .iter()
            .filter(|task| task.phase != TaskPhase::ShuttingDown)
            .count()
    }
}

/// A rollout Swarm has in progress on a service: its `UpdateStatus.State` while the update or
/// rollback is not finished. Every service update, a replica change included, makes Swarm replace
/// the service's `PreviousSpec` (the rollback target) and reset its `UpdateStatus`, so a scale
/// written now would make a rollback return to the half-updated spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rollout {
    /// `updating`: a rolling update is replacing tasks.
    Updating,
    /// `paused`: the update stopped on failures (`failure_action: pause`) or was paused.
    Paused,
    /// `rollback_started`: Swarm is rolling the service back to its previous spec.
    RollbackStarted,
    /// `rollback_paused`: the rollback stopped on failures.
    RollbackPaused,
}

impl Rollout {
    /// The rollout in progress for an engine `UpdateStatus.State`; `None` for a finished one
    /// (`completed`, `rollback_completed`) or an unknown word.
    pub fn from_engine_state(state: &str) -> Option<Self> {
        match state {
            "updating" => Some(Rollout::Updating),
            "paused" => Some(Rollout::Paused),
            "rollback_started" => Some(Rollout::RollbackStarted),
            "rollback_paused" => Some(Rollout::RollbackPaused),
            _ => None,
        }
    }

    /// The engine's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Rollout::Updating => "updating",
            Rollout::Paused => "paused",
            Rollout::RollbackStarted => "rollback_started",
            Rollout::RollbackPaused => "rollback_paused",
        }
    }
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task of the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskObservation {
    pub id: String,
    pub phase: TaskPhase,
    /// When the task's container started running; `None` if unknown or not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Why Swarm cannot place the task on any node, in its words; `None` for a placed task or
    /// one merely waiting its turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unplaced: Option<String>,
}

/// A task's lifecycle, reduced to what HPA's pod grouping needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskPhase {
    /// Created but not running yet (HPA: a pending pod, counted as unready).
    Starting,
    Running,
    /// Being shut down (HPA: a pod with a deletion timestamp, ignored entirely).
    ShuttingDown,
}

/// A metric's sample for this reconcile: a reading, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricSample {
    Reading(MetricReading),
    Failed { reason: String },
}

/// A metric reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricReading {
    /// The service-level value: a total for `averageValue`, the value for `value`, the average
    /// percentage for `utilization`.
    pub value: f64,
    /// Per-task values by task id, where the source has them (scrape, docker). A task without an
    /// entry is "missing" in HPA's sense.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_task: Option<BTreeMap<String, f64>>,
}

impl MetricSample {
    /// A service-level reading without per-task values.
    pub fn value(value: f64) -> Self {
        MetricSample::Reading(MetricReading {
            value,
            per_task: None,
        })
    }

    /// A reading with per-task values; the service-level value is their mean.
    pub fn per_task<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let per_task: BTreeMap<String, f64> =
            values.into_iter().map(|(id, v)| (id.into(), v)).collect();
        let value = if per_task.is_empty() {
            0.0
        } else {
            per_task.values().sum::<f64>() / per_task.len() as f64
        };
        MetricSample::Reading(MetricReading {
            value,
            per_task: Some(per_task),
        })
    }

    pub fn failed(reason: impl Into<String>) -> Self {
        MetricSample::Failed {
            reason: reason.into(),
        }
    }
}

/// The classifier's current traffic state and when it started being reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedState {
    pub state: TrafficState,
    pub since: DateTime<Utc>,
}
