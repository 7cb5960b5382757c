//! A service's status conditions, as the Kubernetes HPA reports them (`AbleToScale`,
//! `ScalingActive`, `ScalingLimited`) plus swarmpilot's own (`MetricsAvailable`,
//! `ForecastTrusted`, `TrafficState`), computed from a decision and what became of it. Pure.
//!
//! A condition keeps its last transition time while its status stays the same, so alerts can say
//! "for 10 minutes". Conditions that only some services have (a forecast, a classifier) are left
//! out where they do not apply; later ones (a standby) slot in as new [`ConditionType`]s with
//! their own inputs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::decision::{clip, Decision, Limit, MetricResult, Reason, HEADLINE_MAX};
use super::observation::Rollout;
use super::signals::ForecastVerdict;
use crate::policy::{PolicySpec, Source, TrafficState};

/// What a condition is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConditionType {
    /// Whether the operator can change the replica count now (HPA).
    AbleToScale,
    /// Whether the policy is computing the count from its metrics (HPA).
    ScalingActive,
    /// Whether a bound cut the computed count short (HPA).
    ScalingLimited,
    /// Whether every metric of the policy could be read.
    MetricsAvailable,
    /// Whether the forecast feeds decisions (policies with a forecast only).
    ForecastTrusted,
    /// Whether the traffic is in a state other than normal (policies with a classifier only).
    TrafficState,
    /// Whether Swarm is rolling the service out or back, so the operator does not write to it.
    RolloutInProgress,
}

impl ConditionType {
    pub const ALL: [ConditionType; 7] = [
        ConditionType::AbleToScale,
        ConditionType::ScalingActive,
        ConditionType::ScalingLimited,
        ConditionType::MetricsAvailable,
        ConditionType::ForecastTrusted,
        ConditionType::TrafficState,
        ConditionType::RolloutInProgress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::AbleToScale => "AbleToScale",
            ConditionType::ScalingActive => "ScalingActive",
            ConditionType::ScalingLimited => "ScalingLimited",
            ConditionType::MetricsAvailable => "MetricsAvailable",
            ConditionType::ForecastTrusted => "ForecastTrusted",
            ConditionType::TrafficState => "TrafficState",
            ConditionType::RolloutInProgress => "RolloutInProgress",
        }
    }
}

/// A condition's status, as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const ALL: [ConditionStatus; 3] = [
        ConditionStatus::True,
        ConditionStatus::False,
        ConditionStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// Declares [`ConditionReason`] with its name as text.
macro_rules! condition_reasons {
    ($($(#[$meta:meta])* $name:ident,)*) => {
        /// Why a condition has its status: HPA's reason names where HPA has one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ConditionReason {
            $($(#[$meta])* $name,)*
        }

        impl ConditionReason {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ConditionReason::$name => stringify!($name),)*
                }
            }
        }
    };
}

condition_reasons! {
    // AbleToScale
    ReadyForNewScale,
    SucceededRescale,
    FailedUpdateScale,
    ScaleDownStabilized,
    ScaleUpStabilized,
    /// `mode: recommend` or `--dry-run`: decisions are made, never written.
    RecommendOnly,
    /// A pause override holds the count.
    Paused,
    /// Swarm is rolling the service out or back (also `RolloutInProgress`'s True reason).
    RolloutInProgress,
    /// Another operator holds the lease and acts; this one only decides and reports.
    Standby,
    // ScalingActive
    ValidMetricFound,
    /// Every metric failed; named after the kind of the first one, as HPA does.
    FailedGetResourceMetric,
    FailedGetPodsMetric,
    FailedGetExternalMetric,
    ScalingDisabled,
    /// A pinned-replicas override decides, not the metrics.
    Overridden,
    /// Every metric is at or below its activation: the service is idle (KEDA's
    /// `ScalerNotActive`).
    Idle,
    /// A metric above its activation woke the idle service (KEDA's `ScalerActive`).
    Activated,
    /// The policy has no metrics: its schedules set the count (KEDA's `cron` scaler on its
    /// own), their active floor or else the policy's minimum.
    SchedulesOnly,
    // ScalingLimited
    DesiredWithinRange,
    TooManyReplicas,
    TooFewReplicas,
    ScaleUpLimit,
    ScaleDownLimit,
    ScaleInPaused,
    ScaleOutPaused,
    /// A traffic state's `noScaleDown` or `cap` action.
    TrafficStateLimit,
    /// Tasks Swarm cannot place on any node hold scale-ups.
    TasksPending,
    /// An active schedule's `desiredReplicas` lifted the count above the metrics' (a floor,
    /// as `TooFewReplicas` is for `minReplicas`).
    ScheduleFloor,
    // MetricsAvailable
    AllMetricsRead,
    SomeMetricsFailed,
    NoMetricsRead,
    // ForecastTrusted
    ForecastUsed,
    ForecastLearning,
    ForecastIgnored,
    ForecastUnavailable,
    // TrafficState
    NormalTraffic,
    FlashCrowd,
    Flood,
    Degraded,
    UnknownTraffic,
    ClassifierUnavailable,
    // RolloutInProgress
    /// No rolling update or rollback is running.
    NoRollout,
}

/// One condition of a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    pub reason: ConditionReason,
    /// One short sentence (at most [`HEADLINE_MAX`] characters).
    pub message: String,
    /// When `status` last changed.
    pub last_transition_time: DateTime<Utc>,
}

/// What became of a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Actuation {
    /// The new count was written.
    Scaled,
    /// No change was needed.
    Unchanged,
    /// A change was decided but not written (`mode: recommend`, `--dry-run`).
    NotWritten,
    /// Another operator holds the lease: this one decides and reports, never writes.
    Standby,
    /// Writing the new count failed; the short cause.
    Failed(String),
}

/// Everything the conditions are computed from.
#[derive(Clone, Copy, Debug)]
pub struct ConditionInputs<'a> {
    pub spec: &'a PolicySpec,
    pub decision: &'a Decision,
    pub actuation: &'a Actuation,
    /// The forecaster's verdict; `None` when it could not run this time.
    pub forecast: Option<&'a ForecastVerdict>,
    /// The classifier's state; `None` when it could not run this time.
    pub traffic: Option<TrafficState>,
    /// The rollout Swarm has in progress on the service, if any.
    pub rollout: Option<Rollout>,
}

/// The service's conditions now, keeping each one's transition time from `previous` while its
/// status is unchanged.
pub fn conditions(
    inputs: &ConditionInputs<'_>,
    previous: &[Condition],
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let mut found = vec![
        able_to_scale(inputs),
        scaling_active(inputs),
        scaling_limited(inputs),
        rollout_in_progress(inputs.rollout),
    ];
    // A policy on schedules alone reads nothing: there is no metric to be available.
    if !inputs.spec.metrics.is_empty() {
        found.insert(3, metrics_available(inputs));
    }
    if inputs.spec.forecast.is_some() {
        found.push(forecast_trusted(inputs.forecast));
    }
    if inputs.spec.anomaly.is_some() {
        found.push(traffic_state(inputs.traffic));
    }
    found
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == type_ && p.status == status)
                .map_or(now, |p| p.last_transition_time);
            Condition {
                type_,
                status,
                reason,
                message: clip(&message, HEADLINE_MAX),
                last_transition_time,
            }
        })
        .collect()
}

type Found = (ConditionType, ConditionStatus, ConditionReason, String);

fn able_to_scale(inputs: &ConditionInputs<'_>) -> Found {
    use ConditionReason::*;
    let d = inputs.decision;
    let (status, reason, message) = match inputs.actuation {
        Actuation::Failed(cause) => (
            ConditionStatus::False,
            FailedUpdateScale,
            format!("the replica count could not be set: {cause}"),
        ),
        Actuation::Standby => (
            ConditionStatus::False,
            Standby,
            format!(
                "standby: another operator holds the lease and acts ({} replicas recommended here)",
                d.desired
            ),
        ),
        _ if d.reason == Reason::RolloutInProgress => (
            ConditionStatus::False,
            RolloutInProgress,
            "a rollout is in progress: no write until it ends".to_owned(),
        ),
        _ if d.reason == Reason::Paused && d.limited_by.is_none() => (
            ConditionStatus::False,
            Paused,
            "an override pauses scaling".to_owned(),
        ),
        Actuation::Scaled => (
            ConditionStatus::True,
            SucceededRescale,
            format!("the replica count was set to {}", d.desired),
        ),
        Actuation::NotWritten => (
            ConditionStatus::True,
            RecommendOnly,
            format!("{} replicas recommended, not written", d.desired),
        ),
        Actuation::Unchanged => match (d.reason, d.recommendation, d.stabilized) {
            (Reason::Stabilized, Some(recommended), Some(kept)) if kept > recommended => (
                ConditionStatus::True,
                ScaleDownStabilized,
                "recent recommendations were higher than the current one, applying the highest"
                    .to_owned(),
            ),
            (Reason::Stabilized, _, _) => (
                ConditionStatus::True,
                ScaleUpStabilized,
                "recent recommendations were lower than the current one, applying the lowest"
                    .to_owned(),
            ),
            _ => (
                ConditionStatus::True,
                ReadyForNewScale,
                "recommended size matches current size".to_owned(),
            ),
        },
    };
    (ConditionType::AbleToScale, status, reason, message)
}

fn scaling_active(inputs: &ConditionInputs<'_>) -> Found {
    use ConditionReason::*;
    let d = inputs.decision;
    let schedules_only = inputs.spec.metrics.is_empty();
    let every_metric_failed =
        !d.per_metric.is_empty() && d.per_metric.iter().all(|m| m.replicas().is_none());
    let (status, reason, message) = if d.reason == Reason::ScalingDisabled {
        (
            ConditionStatus::False,
            ScalingDisabled,
            "scaling is disabled since the replica count of the service is zero".to_owned(),
        )
    } else if d.reason == Reason::Idle {
        let why = if schedules_only {
            "no schedule is active"
        } else {
            "every metric is at or below its activation threshold"
        };
        (
            ConditionStatus::False,
            Idle,
            format!("{why}: the service is idle"),
        )
    } else if d.reason == Reason::Activated {
        let why = match &d.schedule {
            Some(schedule) => format!("schedule {} is active", schedule.name),
            None => "a metric is above its activation threshold".to_owned(),
        };
        (
            ConditionStatus::True,
            Activated,
            format!("{why}: the service was activated"),
        )
    } else if d.reason == Reason::Override {
        (
            ConditionStatus::False,
            Overridden,
            "an override pins the replica count".to_owned(),
        )
    } else if schedules_only {
        let message = match &d.schedule {
            Some(schedule) => format!(
                "the policy has no metrics: {} sets a floor of {} replicas",
                schedule.describe(),
                schedule.replicas
            ),
            None => "the policy has no metrics and no schedule is active: it keeps its minimum"
                .to_owned(),
        };
        (ConditionStatus::True, SchedulesOnly, message)
    } else if every_metric_failed {
        let first = &d.per_metric[0];
        let cause = match &first.result {
            MetricResult::Failed { reason } => reason.as_str(),
            MetricResult::Recommended { .. } => "",
        };
        (
            ConditionStatus::False,
            failed_get_reason(inputs.spec, &first.name),
            format!(
                "the policy was unable to compute the replica count: {}: {cause}",
                first.name
            ),
        )
    } else {
        (
            ConditionStatus::True,
            ValidMetricFound,
            "the policy was able to compute the replica count from its metrics".to_owned(),
        )
    };
    (ConditionType::ScalingActive, status, reason, message)
}

/// HPA names the failure after the kind of metric: Docker stats are resource metrics, task
/// endpoints are pods metrics, Prometheus queries are external metrics.
fn failed_get_reason(spec: &PolicySpec, metric: &str) -> ConditionReason {
    match spec
        .metrics
        .iter()
        .find(|m| m.name == metric)
        .and_then(|m| m.source())
    {
        Some(Source::Docker(_)) => ConditionReason::FailedGetResourceMetric,
        Some(Source::Scrape(_)) => ConditionReason::FailedGetPodsMetric,
        Some(Source::Prometheus(_) | Source::Redis(_) | Source::Rabbitmq(_)) | None => {
            ConditionReason::FailedGetExternalMetric
        }
    }
}

fn scaling_limited(inputs: &ConditionInputs<'_>) -> Found {
    use ConditionReason::*;
    let d = inputs.decision;
    let recommended = d.recommendation.unwrap_or(d.desired);
    let (reason, message) = match (d.limited_by, &d.schedule) {
        (None, Some(schedule)) if d.reason == Reason::Scheduled => (
            ScheduleFloor,
            format!(
                "{} sets a floor of {} replicas, above {}",
                schedule.describe(),
                schedule.replicas,
                if d.per_metric.is_empty() {
                    "the policy's minimum"
                } else {
                    "what the metrics ask for"
                }
            ),
        ),
        (None, _) if d.reason == Reason::Forecast => (
            ForecastUsed,
            format!(
                "the forecast's claim over its horizon sets a floor of {} replicas, above what \
                 the metrics ask for",
                d.desired
            ),
        ),
        (None, _) => {
            return (
                ConditionType::ScalingLimited,
                ConditionStatus::False,
                DesiredWithinRange,
                "the desired count is within the acceptable range".to_owned(),
            )
        }
        (Some(Limit::TooManyReplicas), _) => (
            TooManyReplicas,
            format!(
                "the desired replica count {recommended} is more than the maximum replica count"
            ),
        ),
        (Some(Limit::TooFewReplicas), _) => (
            TooFewReplicas,
            format!(
                "the desired replica count {recommended} is less than the minimum replica count"
            ),
        ),
        (Some(Limit::ScaleUpLimit), _) => (
            ScaleUpLimit,
            "the desired replica count is increasing faster than the maximum scale rate".to_owned(),
        ),
        (Some(Limit::ScaleDownLimit), _) => (
            ScaleDownLimit,
            "the desired replica count is decreasing faster than the maximum scale rate".to_owned(),
        ),
        (Some(Limit::ScaleInPaused), _) => {
            (ScaleInPaused, "an override pauses scale-in".to_owned())
        }
        (Some(Limit::ScaleOutPaused), _) => {
            (ScaleOutPaused, "an override pauses scale-out".to_owned())
        }
        // The decision's sentence already says how many tasks wait, and Swarm's reason.
        (Some(Limit::TasksPending), _) => (TasksPending, d.message.clone()),
        (Some(Limit::NoScaleDown | Limit::Cap), _) => (
            TrafficStateLimit,
            format!(
                "the traffic state {} bounds the count",
                d.traffic_state.map_or("?", TrafficState::as_str)
            ),
        ),
    };
    (
        ConditionType::ScalingLimited,
        ConditionStatus::True,
        reason,
        message,
    )
}

fn metrics_available(inputs: &ConditionInputs<'_>) -> Found {
    use ConditionReason::*;
    let metrics = &inputs.decision.per_metric;
    let failed: Vec<&str> = metrics
        .iter()
        .filter(|m| m.replicas().is_none())
        .map(|m| m.name.as_str())
        .collect();
    let (status, reason, message) = if failed.is_empty() {
        (
            ConditionStatus::True,
            AllMetricsRead,
            format!("all {} metrics were read", metrics.len()),
        )
    } else if failed.len() == metrics.len() {
        (
            ConditionStatus::False,
            NoMetricsRead,
            format!("no metric could be read: {}", failed.join(", ")),
        )
    } else {
        (
            ConditionStatus::False,
            SomeMetricsFailed,
            format!(
                "{} of {} metrics failed: {}",
                failed.len(),
                metrics.len(),
                failed.join(", ")
            ),
        )
    };
    (ConditionType::MetricsAvailable, status, reason, message)
}

fn forecast_trusted(verdict: Option<&ForecastVerdict>) -> Found {
    use ConditionReason::*;
    let (status, reason, message) = match verdict {
        None => (
            ConditionStatus::Unknown,
            ForecastUnavailable,
            "the forecaster could not run; see the decision's detail".to_owned(),
        ),
        Some(verdict @ ForecastVerdict::Learning { .. }) => {
            (ConditionStatus::True, ForecastLearning, verdict.describe())
        }
        Some(verdict @ ForecastVerdict::Trusted { .. }) => {
            (ConditionStatus::True, ForecastUsed, verdict.describe())
        }
        Some(verdict @ ForecastVerdict::Ignored { .. }) => {
            (ConditionStatus::False, ForecastIgnored, verdict.describe())
        }
    };
    (ConditionType::ForecastTrusted, status, reason, message)
}

fn traffic_state(state: Option<TrafficState>) -> Found {
    use ConditionReason::*;
    let (status, reason) = match state {
        None => (ConditionStatus::Unknown, ClassifierUnavailable),
        Some(TrafficState::Normal) => (ConditionStatus::False, NormalTraffic),
        Some(TrafficState::FlashCrowd) => (ConditionStatus::True, FlashCrowd),
        Some(TrafficState::Flood) => (ConditionStatus::True, Flood),
        Some(TrafficState::Degraded) => (ConditionStatus::True, Degraded),
        Some(TrafficState::Unknown) => (ConditionStatus::True, UnknownTraffic),
    };
    let message = match state {
        None => "the classifier could not run; see the decision's detail".to_owned(),
        Some(state) => format!("the classifier reports {state} traffic"),
    };
    (ConditionType::TrafficState, status, reason, message)
}

fn rollout_in_progress(rollout: Option<Rollout>) -> Found {
    let (status, reason, message) = match rollout {
        Some(rollout) => (
            ConditionStatus::True,
            ConditionReason::RolloutInProgress,
            format!("Swarm reports the update state {rollout}: the operator does not write until it ends"),
        ),
        None => (
            ConditionStatus::False,
            ConditionReason::NoRollout,
            "no rolling update or rollback is in progress".to_owned(),
        ),
    };
    (ConditionType::RolloutInProgress, status, reason, message)
}

#[cfg(test)]
mod tests;
