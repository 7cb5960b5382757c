//! What the operator knows of each service right now, in memory, for `describe`, the status API,
//! the dashboard and the operator's own metrics.
//!
//! The status is a read model: the reconcile loop writes it after every reconcile, readers take
//! snapshots. Losing it on restart loses nothing that matters: the durable state is in labels.

use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lease::Leadership;
use crate::decide::{Condition, PendingTasks, Reason};
use crate::metrics::TaskError;
use crate::policy::{Event, Override, ScalingPolicy, Target, TrafficState};

/// How many decisions are kept per service.
pub const DECISIONS_KEPT: usize = 64;
/// How many samples of each series are kept per service for charts (one hour at 5 s).
pub const SAMPLES_KEPT: usize = 720;

/// One reconcile's outcome, as shown to people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub at: DateTime<Utc>,
    pub current: u32,
    pub desired: u32,
    /// The condition reason, e.g. `ScaleUpLimit`, `Stabilized`, `Fallback`.
    pub reason: Reason,
    /// One short sentence naming the cause.
    pub message: String,
    /// What the sentence leaves out: full errors, the override's reason, the models' notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
    /// Whether the decision was written to the Swarm (false in recommend mode or dry run).
    pub applied: bool,
}

/// What one metric read at the last reconcile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The value compared with the target: the per-task average for `averageValue` and
    /// `utilization`, the whole value for `value` (what `kubectl get hpa` shows in TARGETS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared: Option<f64>,
    /// The policy's target for the metric; `None` for `observe` signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The replica count this metric alone recommends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<u32>,
    /// Running tasks the value leaves out, and why (no agent on their node, warming up...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<TaskError>,
}

/// One point of a service's time series, for charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// The load metric (the forecast's metric, else the first metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demand: Option<f64>,
    pub replicas: u32,
    pub desired: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TrafficState>,
}

/// Everything known about one service.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceStatus {
    pub service: String,
    pub service_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<ScalingPolicy>,
    /// Why the policy label could not be used, one line per problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
    pub current: Option<u32>,
    pub desired: Option<u32>,
    pub metrics: Vec<MetricStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_state: Option<TrafficState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_: Option<Override>,
    /// HPA-style conditions of the last reconcile (`AbleToScale`, `ScalingLimited`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Tasks Swarm cannot place on any node, and its reason ("2 of 6 tasks pending: no
    /// suitable node (...)"); no scale-up while there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_tasks: Option<PendingTasks>,
    /// The last events (scales, overrides, state changes, failures, restores), oldest first;
    /// the same ring as in the state label, so they outlive an operator restart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    pub decisions: VecDeque<DecisionRecord>,
    pub samples: VecDeque<Sample>,
    pub last_reconcile: Option<DateTime<Utc>>,
    /// The last reconcile error (Docker unreachable, ...), cleared by the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl ServiceStatus {
    pub fn push_decision(&mut self, record: DecisionRecord) {
        push_bounded(&mut self.decisions, record, DECISIONS_KEPT);
    }

    pub fn push_sample(&mut self, sample: Sample) {
        push_bounded(&mut self.samples, sample, SAMPLES_KEPT);
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, bound: usize) {
    if queue.len() == bound {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// The statuses of all watched services, keyed by service name.
#[derive(Debug, Default)]
pub struct StatusStore {
    services: RwLock<BTreeMap<String, ServiceStatus>>,
    /// Whether this operator acts or stands by (see [`super::lease`]).
    leadership: Leadership,
}

impl StatusStore {
    /// A store for an operator whose writes `leadership` allows.
    pub fn with_leadership(leadership: Leadership) -> Self {
        Self {
            services: RwLock::default(),
            leadership,
        }
    }

    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Changes one service's status in place, creating it when first seen.
    pub fn update(&self, service: &str, change: impl FnOnce(&mut ServiceStatus)) {
        let mut services = self
            .services
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let status = services
            .entry(service.to_owned())
            .or_insert_with(|| ServiceStatus {
                service: service.to_owned(),
                ..Default::default()
            });
        change(status);
    }

    pub fn remove(&self, service: &str) {
        self.services
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(service);
    }

    pub fn get(&self, service: &str) -> Option<ServiceStatus> {
        self.services
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(service)
            .cloned()
    }

    /// Every service's status, sorted by name.
    pub fn all(&self) -> Vec<ServiceStatus> {
        self.services
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let store = StatusStore::default();
        for i in 0..(DECISIONS_KEPT as u32 + 10) {
            store.update("web", |status| {
                status.push_decision(DecisionRecord {
                    at: DateTime::<Utc>::UNIX_EPOCH,
                    current: i,
                    desired: i,
                    reason: Reason::DesiredWithinRange,
                    message: String::new(),
                    detail: Vec::new(),
                    applied: true,
                })
            });
        }
        let status = store.get("web").unwrap();
        assert_eq!(status.decisions.len(), DECISIONS_KEPT);
        assert_eq!(
            status.decisions.back().unwrap().current,
            DECISIONS_KEPT as u32 + 9
        );
        assert_eq!(status.decisions.front().unwrap().current, 10);
        store.remove("web");
        assert!(store.all().is_empty());
    }
}
