//! The result of one `decide` call, and the names of its reasons and limits.
//!
//! Reason and limit names follow the Kubernetes HPA's condition reasons, so people who have read
//! `kubectl describe hpa` recognise them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::schedule::ScheduleFloor;
use crate::policy::{FailedReads, Target, TrafficState};

/// What the service's replica count should be, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// The replica count the service should have.
    pub desired: u32,
    /// The replica count it has (the observation's spec count).
    pub current: u32,
    /// Why `desired` is what it is.
    pub reason: Reason,
    /// The bound that cut the computed count short, if any (HPA's `ScalingLimited` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<Limit>,
    /// The count the metrics asked for before stabilization and rate limits; this is what
    /// [`super::History::record`] remembers. `None` when no recommendation was made (every
    /// metric failed with `fallback: hold`, or the count was outside [min, max]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<u32>,
    /// The recommendation after the stabilization window, before rate limits and bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilized: Option<u32>,
    /// Each metric's own recommendation or failure, in policy order.
    pub per_metric: Vec<MetricOutcome>,
    /// The forecast's recommendation, when a forecast was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<u32>,
    /// The traffic state whose action shaped this decision, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_state: Option<TrafficState>,
    /// `mode: recommend`: `desired` is what enforce mode would do; the caller must not write it.
    pub recommend_only: bool,
    /// The override passed in had expired and was ignored; the caller should remove its label.
    pub override_expired: bool,
    /// For a policy that can go idle: the last time a metric was above its activation, this
    /// call included; [`super::History::record`] keeps it, for the cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active: Option<DateTime<Utc>>,
    /// Each failing metric's consecutive failed reads, this call included (capped at
    /// `fallback.failureThreshold`); [`super::History::record`] keeps them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_reads: BTreeMap<String, FailedReads>,
    /// The active schedule with the highest floor at this decision, whether or not the floor
    /// set the count (the reason is `Scheduled` when it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleFloor>,
    /// One short human sentence naming the cause, at most [`HEADLINE_MAX`] characters: what
    /// `get`, the demo and dashboards show.
    pub message: String,
    /// What the headline leaves out: full errors (URL, query, server message), the override's
    /// reason, the models' notes. For `describe` and the log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
}

/// The longest decision message, in characters.
pub const HEADLINE_MAX: usize = 120;

/// `text` cut to at most `max` characters, with `…` where it was cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Decision {
    /// Whether the caller should change the replica count.
    pub fn should_scale(&self) -> bool {
        !self.recommend_only && self.desired != self.current
    }
}

/// Why the desired count is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The metrics' count, within every bound and limit.
    DesiredWithinRange,
    /// Every metric is within the tolerance of its target: no change.
    WithinTolerance,
    /// The stabilization window kept the count from following the latest recommendation.
    Stabilized,
    /// A scale-up rate policy bounded the count.
    ScaleUpLimit,
    /// A scale-down rate policy bounded the count.
    ScaleDownLimit,
    /// `maxReplicas` bounded the count.
    TooManyReplicas,
    /// `minReplicas` bounded the count.
    TooFewReplicas,
    /// Some metrics failed and the rest asked for fewer replicas: HPA never scales down then.
    MetricsIncomplete,
    /// Every metric failed: the policy's `fallback` decided.
    Fallback,
    /// A pinned-replicas override decided.
    Override,
    /// A pause override held the count (or one direction of it).
    Paused,
    /// The traffic state's `anomaly.onState` action held or capped the count.
    TrafficState,
    /// The service is at 0 replicas and the policy cannot go idle (`minReplicas` is not 0 and
    /// no `idleReplicas`): someone turned it off, and HPA leaves such targets alone.
    ScalingDisabled,
    /// Some tasks cannot be placed on any node: no scale-up until they can.
    TasksPending,
    /// Swarm is rolling the service out or back: no write until the rollout ends.
    RolloutInProgress,
    /// Every metric is at or below its activation (for `cooldownPeriod`): the service is or
    /// goes idle, at `idleReplicas` (KEDA's deactivation).
    Idle,
    /// The service was idle and a metric is above its activation: scaled to at least
    /// `max(1, minReplicas)` at once (KEDA's activation).
    Activated,
    /// An active schedule's `desiredReplicas` set the count: the metrics asked for fewer.
    Scheduled,
    /// A `scaleUp` forecast set the count: it asks for more replicas than the metrics within
    /// its horizon, or did less than one horizon ago (its claim holds the count until then).
    Forecast,
    /// An external update (a plain `docker stack deploy`) replaced the spec: the reconciler
    /// put back the count and the operator's labels (`decide` itself never gives this reason).
    RestoredAfterExternalUpdate,
}

/// A bound that cut the computed count short.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    ScaleUpLimit,
    ScaleDownLimit,
    TooManyReplicas,
    TooFewReplicas,
    /// An override paused scale-in.
    ScaleInPaused,
    /// An override paused scale-out.
    ScaleOutPaused,
    /// A traffic state's `noScaleDown` action.
    NoScaleDown,
    /// A traffic state's `cap: N` action.
    Cap,
    /// Tasks Swarm cannot place held a scale-up.
    TasksPending,
}

impl Limit {
    /// The reason a decision bounded by this limit gives.
    pub fn reason(self) -> Reason {
        match self {
            Limit::ScaleUpLimit => Reason::ScaleUpLimit,
            Limit::ScaleDownLimit => Reason::ScaleDownLimit,
            Limit::TooManyReplicas => Reason::TooManyReplicas,
            Limit::TooFewReplicas => Reason::TooFewReplicas,
            Limit::ScaleInPaused | Limit::ScaleOutPaused => Reason::Paused,
            Limit::NoScaleDown | Limit::Cap => Reason::TrafficState,
            Limit::TasksPending => Reason::TasksPending,
        }
    }
}

/// One metric's part in a decision, for `describe` and the status API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricOutcome {
    pub name: String,
    pub target: Target,
    pub result: MetricResult,
}

/// A metric's recommendation, or why it has none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricResult {
    #[serde(rename_all = "camelCase")]
    Recommended {
        /// The replica count this metric alone asks for.
        replicas: u32,
        /// The value compared with the target: the per-task average for `averageValue` and
        /// `utilization`, the whole value for `value`.
        current: f64,
        /// current / target, before missing and unready tasks were re-counted.
        ratio: f64,
        /// The ratio was within the tolerance (or re-counting flipped the direction): no change.
        within_tolerance: bool,
        /// Tasks whose samples counted, tasks without a sample, and tasks set aside as not ready.
        ready: u32,
        missing: u32,
        unready: u32,
    },
    Failed {
        reason: String,
    },
}

impl MetricOutcome {
    /// The replica count this metric asks for, if it has one.
    pub fn replicas(&self) -> Option<u32> {
        match self.result {
            MetricResult::Recommended { replicas, .. } => Some(replicas),
            MetricResult::Failed { .. } => None,
        }
    }
}
