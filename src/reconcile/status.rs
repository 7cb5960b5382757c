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
use crate::decide::signals::Member;
use crate::decide::{Condition, PendingTasks, Reason, ScheduleFloor};
use crate::metrics::TaskError;
use crate::policy::{Event, Override, ScalingPolicy, Target, TrafficState};

/// How many decisions are kept per service.
pub const DECISIONS_KEPT: usize = 64;
/// How many samples of each series are kept per service for charts (one hour at 5 s).
pub const SAMPLES_KEPT: usize = 720;
/// Beyond those, one sample a minute is kept for six hours, so a chart can look back that far
/// without a service holding thousands of points.
pub const COARSE_STEP_SECS: i64 = 60;
/// How many one-a-minute samples are kept (six hours).
pub const COARSE_KEPT: usize = 360;

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
    /// Why this reconcile ran.
    pub trigger: Trigger,
    /// The active schedule with the highest floor at this decision (its name, floor and when
    /// its window closes), whether or not the floor set the count; the reason is `Scheduled`
    /// when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleFloor>,
    /// What the decision read, so a replay can be checked against it (see
    /// [`crate::replay::parity`]).
    #[serde(default, skip_serializing_if = "DecisionInputs::is_empty")]
    pub inputs: DecisionInputs,
}

/// Why a reconcile ran: what woke it, and for a change of the service, what changed. A change
/// that is only the operator's own write (its scale, its state label) runs no reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// The first reconcile since the operator began watching the service (it started, or the
    /// service got a policy).
    Started,
    /// The delay the last reconcile asked for elapsed: the policy's `interval`, or a short wait
    /// after a write that lost a race or while a rollout runs.
    Interval,
    /// The last reconcile failed (the Docker engine did not answer, a malformed override...) and
    /// its backoff elapsed.
    Retry,
    /// The spec was replaced (a plain `docker stack deploy`): the operator's state label is gone.
    SpecReplaced,
    /// A policy label was added, changed or removed.
    PolicyChanged,
    /// The override label was set, changed or removed (the API's overrides write it).
    OverrideChanged,
    /// The replica count is not the one the operator left (`docker service scale`).
    ReplicasChanged,
    /// Something else changed (`docker service update` of the image, of other labels, another
    /// operator's state label), or what changed cannot be told (the operator had not yet
    /// decided on the service).
    ServiceUpdated,
}

/// What one decision read: the inputs of `decide` that come from outside the policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionInputs {
    /// Each metric's value (a failed read is absent), `observe` signals included.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, f64>,
    /// The forecast the decision used; absent when there was none or it was ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_state: Option<TrafficState>,
    /// The tasks counted as the service's replicas (those not shutting down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
}

impl DecisionInputs {
    fn is_empty(&self) -> bool {
        *self == DecisionInputs::default()
    }
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

/// The forecast ensemble of a service: the member whose forecast is used and each member's
/// recent error (the mean absolute error per step of its latest scored forecasts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecasterStatus {
    /// `naive` when every forecaster has lately been worse than it: the forecast is ignored.
    pub in_use: Member,
    /// How many forecasts the errors are the mean of.
    pub scored: usize,
    pub errors: BTreeMap<Member, f64>,
}

impl ForecasterStatus {
    /// The status of a reconcile's signals, when the forecaster ran.
    pub fn of(signals: &crate::models::Signals) -> Option<Self> {
        let verdict = signals.verdict.as_ref()?;
        let standing = signals.standing.as_ref()?;
        Some(Self {
            in_use: verdict.member().unwrap_or(Member::Naive),
            scored: standing.scored,
            errors: standing.errors.iter().copied().collect(),
        })
    }
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
    /// The demand the current replicas carry at the load metric's target: replicas × target
    /// for `averageValue`, the target itself for `value` and `utilization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
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
    pub forecaster: Option<ForecasterStatus>,
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
    /// The name of the metric charted as `demand` (the forecast's metric, else the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demand_metric: Option<String>,
    /// The last [`SAMPLES_KEPT`] samples; older ones are in the history
    /// (`GET /v1/services/{service}/history`).
    pub samples: VecDeque<Sample>,
    /// One sample a minute for [`COARSE_KEPT`] minutes, served by the history only.
    #[serde(skip)]
    pub(crate) coarse: VecDeque<Sample>,
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
        let minute_on = self
            .coarse
            .back()
            .is_none_or(|last| (sample.at - last.at).num_seconds() >= COARSE_STEP_SECS);
        if minute_on {
            push_bounded(&mut self.coarse, sample.clone(), COARSE_KEPT);
        }
        push_bounded(&mut self.samples, sample, SAMPLES_KEPT);
    }

    /// The samples from `since` on, oldest first: one a minute before the kept samples begin,
    /// every one after.
    pub fn history(&self, since: DateTime<Utc>) -> Vec<Sample> {
        let fine_from = self.samples.front().map(|first| first.at);
        self.coarse
            .iter()
            .filter(|s| fine_from.is_none_or(|from| s.at < from))
            .chain(self.samples.iter())
            .filter(|s| s.at >= since)
            .cloned()
            .collect()
    }
}

/// How far back a chart looks: the dashboard's choices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryRange {
    #[serde(rename = "15m")]
    Minutes15,
    #[default]
    #[serde(rename = "1h")]
    Hour1,
    #[serde(rename = "6h")]
    Hours6,
}

impl HistoryRange {
    pub fn duration(self) -> chrono::Duration {
        match self {
            HistoryRange::Minutes15 => chrono::Duration::minutes(15),
            HistoryRange::Hour1 => chrono::Duration::hours(1),
            HistoryRange::Hours6 => chrono::Duration::hours(6),
        }
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
                    trigger: Trigger::Interval,
                    schedule: None,
                    inputs: DecisionInputs::default(),
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

    #[test]
    fn a_decision_says_what_ran_it() {
        let record = DecisionRecord {
            at: DateTime::<Utc>::UNIX_EPOCH,
            current: 5,
            desired: 3,
            reason: Reason::DesiredWithinRange,
            message: String::new(),
            detail: Vec::new(),
            applied: true,
            trigger: Trigger::ReplicasChanged,
            schedule: None,
            inputs: DecisionInputs::default(),
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["trigger"], "replicasChanged");
        assert_eq!(json["applied"], true);
        assert!(json.get("schedule").is_none(), "{json}");
        let back: DecisionRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);

        let until = "2026-11-30T18:00:00+01:00".parse().unwrap();
        let scheduled = DecisionRecord {
            reason: Reason::Scheduled,
            schedule: Some(ScheduleFloor {
                name: "business-hours".into(),
                replicas: 10,
                until: Some(until),
            }),
            ..record
        };
        let json = serde_json::to_value(&scheduled).unwrap();
        assert_eq!(
            json["schedule"],
            serde_json::json!({"name": "business-hours", "replicas": 10, "until": "2026-11-30T18:00:00+01:00"})
        );
        let back: DecisionRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, scheduled);
    }

    fn sample(at: DateTime<Utc>) -> Sample {
        Sample {
            at,
            demand: Some(1.0),
            replicas: 1,
            desired: 1,
            forecast: None,
            capacity: None,
            state: None,
        }
    }

    #[test]
    fn history_reaches_six_hours_back_at_one_sample_a_minute() {
        let mut status = ServiceStatus::default();
        let start = DateTime::<Utc>::UNIX_EPOCH;
        // Seven hours at 5 s.
        let count = 7 * 720;
        for i in 0..count {
            status.push_sample(sample(start + chrono::Duration::seconds(5 * i)));
        }
        let now = start + chrono::Duration::seconds(5 * (count - 1));
        let all = status.history(now - HistoryRange::Hours6.duration());
        assert!(all.windows(2).all(|w| w[0].at < w[1].at), "not in order");
        assert_eq!(all.last().unwrap().at, now);
        let oldest = now - all.first().unwrap().at;
        assert!(oldest <= chrono::Duration::hours(6), "{oldest}");
        assert!(oldest >= chrono::Duration::minutes(355), "{oldest}");
        let fine = status.history(now - HistoryRange::Minutes15.duration());
        assert_eq!(fine.len(), 181);
        assert_eq!(status.samples.len(), SAMPLES_KEPT);
        let coarse_part = all.len() - SAMPLES_KEPT;
        assert!((290..=300).contains(&coarse_part), "{coarse_part}");
    }
}
