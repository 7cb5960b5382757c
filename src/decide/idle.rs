//! Scale to zero, KEDA's way: a policy with `minReplicas: 0` (or an `idleReplicas`) goes idle
//! when every metric has been at or below its `activation` for `cooldownPeriod`, and is
//! activated at once when one is above it. Between the two, HPA's rules decide with
//! `max(1, minReplicas)` as the lower bound.
//!
//! | situation                                   | decision                                         |
//! |---------------------------------------------|--------------------------------------------------|
//! | idle, a metric above its activation         | `Activated`: HPA's count from zero, at least `max(1, minReplicas)` |
//! | idle, a schedule's window active            | `Activated`: at least the schedule's `desiredReplicas` |
//! | idle, every metric at or below activation   | `Idle`: stays at `idleReplicas`                  |
//! | idle, metrics failed, `fallback: hold`      | `Idle`: a blind operator does not wake a service |
//! | idle, metrics failed, fallback with a count | `Fallback`: the count the policy asked for       |
//! | active, quiet for `cooldownPeriod`          | `Idle`: straight to `idleReplicas` (no behavior) |
//! | active, quiet for less, or some metric failed | HPA's rules; a failed metric never lets it go idle |
//! | active, a schedule's window active          | HPA's rules with the schedule's floor; never idle |
//!
//! A policy with schedules and no metrics is quiet whenever no window is active: it goes idle
//! `cooldownPeriod` after its last window closed, and the next window activates it.
//!
//! The cooldown runs from the last time a metric was above its activation (or a schedule was
//! active: the cooldown starts when its window closes), which `History`
//! keeps (`lastActive`), so it survives a restart. A service whose history never saw it active
//! goes idle at once, as KEDA scales a new target to its minimum without waiting.

use chrono::{DateTime, Utc};

use super::observation::{MetricSample, Observation};
use super::schedule::ScheduleFloor;
use crate::policy::{HumanDuration, PolicySpec};

/// What the metrics say about activity at one instant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Activity {
    /// This metric is above its activation threshold (the first such metric).
    Active {
        metric: String,
        value: f64,
        activation: f64,
    },
    /// No metric is above its threshold, and a schedule's window is active.
    Scheduled { schedule: String },
    /// Every metric read and is at or below its activation threshold.
    Quiet,
    /// No metric is above its threshold, but some could not be read.
    Unknown,
}

/// The idle rules of a policy that can go idle.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Idling {
    /// The replica count of an idle service.
    pub idle: u32,
    /// The fewest replicas of an active service.
    pub floor: u32,
    pub cooldown: HumanDuration,
    pub activity: Activity,
    /// The last time a metric was above its activation, this call included.
    pub last_active: Option<DateTime<Utc>>,
    /// What a quiet service is, in messages: its metrics at or below their activation, or (a
    /// policy with no metrics) no schedule active.
    pub quiet: &'static str,
}

/// What the idle rules make of this call: go idle, stay idle, activate, or let HPA decide.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// Go or stay at `idle` replicas.
    Idle { message: String },
    /// The service is idle and a metric is above its activation: HPA from zero, with `floor`.
    Activate,
    /// The service is idle and cannot tell: the fallback decides (only one with a count).
    Fallback,
    /// HPA's rules with `floor` as the lower bound.
    Hpa,
}

impl Idling {
    /// The idle rules of `spec` at `now`, or `None` for a policy that cannot go idle.
    pub fn of(
        spec: &PolicySpec,
        observation: &Observation,
        schedule: Option<&ScheduleFloor>,
        last_active: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<Idling> {
        let idle = spec.idle_replicas()?;
        let activity = match (activity(spec, observation), schedule) {
            (Activity::Quiet | Activity::Unknown, Some(schedule)) => Activity::Scheduled {
                schedule: schedule.name.clone(),
            },
            (activity, _) => activity,
        };
        let last_active = match activity {
            Activity::Active { .. } | Activity::Scheduled { .. } => Some(now),
            Activity::Quiet | Activity::Unknown => last_active,
        };
        Some(Idling {
            idle,
            floor: spec.active_min(),
            cooldown: spec.cooldown(),
            activity,
            last_active,
            quiet: if spec.metrics.is_empty() {
                "no schedule is active"
            } else {
                "every metric is at or below its activation"
            },
        })
    }

    /// The step for a service at `current` replicas. `blind` says every metric failed for the
    /// fallback, and `fallback_counts` that the fallback names a count (not `hold`).
    pub fn step(
        &self,
        current: u32,
        blind: bool,
        fallback_counts: bool,
        now: DateTime<Utc>,
    ) -> Step {
        let idle_now = current <= self.idle;
        match (&self.activity, idle_now) {
            (Activity::Active { .. } | Activity::Scheduled { .. }, true) => Step::Activate,
            (Activity::Active { .. } | Activity::Scheduled { .. }, false) => Step::Hpa,
            (Activity::Unknown, true) if blind && fallback_counts => Step::Fallback,
            (Activity::Unknown, true) => Step::Idle {
                message: format!(
                    "idle at {}: no metric is above its activation, some could not be read",
                    self.idle
                ),
            },
            (Activity::Quiet, true) => Step::Idle {
                message: format!("idle at {}: {}", self.idle, self.quiet),
            },
            (Activity::Unknown, false) => Step::Hpa,
            (Activity::Quiet, false) => match self.cooling(now) {
                Some(_) => Step::Hpa,
                None => Step::Idle {
                    message: format!(
                        "{} for cooldownPeriod {}: going idle at {}",
                        self.quiet, self.cooldown, self.idle
                    ),
                },
            },
        }
    }

    /// How much of the cooldown is left at `now`, or `None` once it has passed (or the service
    /// was never seen active).
    pub fn cooling(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let since = now - self.last_active?;
        let cooldown = chrono::Duration::from_std(self.cooldown.as_std()).ok()?;
        (since < cooldown).then(|| cooldown - since)
    }

    /// The activation message, naming the metric that woke the service.
    pub fn activated(&self, desired: u32) -> String {
        match &self.activity {
            Activity::Active {
                metric,
                value,
                activation,
            } => format!(
                "activated: {metric} is {value} (above its activation {activation}): scaling to {desired}"
            ),
            Activity::Scheduled { schedule } => {
                format!("activated: schedule {schedule} is active: scaling to {desired}")
            }
            Activity::Quiet | Activity::Unknown => format!("activated: scaling to {desired}"),
        }
    }
}

/// Whether any metric is above its activation threshold (KEDA's `IsActive` over all triggers).
fn activity(spec: &PolicySpec, observation: &Observation) -> Activity {
    let mut unknown = false;
    for metric in &spec.metrics {
        match observation.metrics.get(&metric.name) {
            Some(MetricSample::Reading(reading)) if reading.value > metric.activation() => {
                return Activity::Active {
                    metric: metric.name.clone(),
                    value: reading.value,
                    activation: metric.activation(),
                }
            }
            Some(MetricSample::Reading(_)) => {}
            Some(MetricSample::Failed { .. }) | None => unknown = true,
        }
    }
    if unknown {
        Activity::Unknown
    } else {
        Activity::Quiet
    }
}
