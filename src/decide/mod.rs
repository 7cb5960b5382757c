//! The pure decision engine: from a policy, an observation, the history and any override, the
//! replica count a service should have, with Kubernetes HPA v2's algorithm and behavior.
//!
//! [`decide`] does no I/O, reads no clock and keeps no state: the time comes in as `now` and the
//! memory as [`History`], which [`History::record`] advances. The same code serves the live
//! reconcile loop and offline `replay`.
//!
//! One call follows the HPA controller's `reconcileAutoscaler`:
//! 1. a service at 0 replicas (with `minReplicas > 0`) is left alone; one outside `[min, max]`
//!    is brought to the nearest bound; a policy that can go idle goes idle or is activated
//!    first ([`idle`]; an active schedule counts as activity);
//! 2. each metric gives a count ([`hpa`]); the largest wins; if some failed and the rest say
//!    scale down, nothing changes; if all failed, `fallback` decides ([`fallback`]); an active
//!    schedule's `desiredReplicas` is a floor on the result, like one more metric ([`schedule`]);
//!    a policy with no metrics asks for its lower bound, lifted to that floor;
//! 3. stabilization windows shape it, a `scaleUp` forecast's claim is a floor on the result for
//!    its horizon, and rate policies shape that ([`behavior`], [`forecast`]);
//! 4. a persisting traffic state may hold or cap it ([`anomaly`]);
//! 5. an active override decides ([`overrides`]);
//! 6. a rollout Swarm has in progress holds the count whatever came before ([`rollout`]).

mod anomaly;
mod behavior;
pub mod conditions;
mod decision;
mod fallback;
mod forecast;
mod history;
mod hpa;
mod idle;
mod observation;
mod overrides;
mod pending;
mod rollout;
mod schedule;
pub mod signals;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

pub use conditions::{
    conditions, Actuation, Condition, ConditionInputs, ConditionReason, ConditionStatus,
    ConditionType,
};
pub use decision::{clip, Decision, Limit, MetricOutcome, MetricResult, Reason, HEADLINE_MAX};
pub use history::History;
pub use observation::{
    MetricReading, MetricSample, Observation, ObservedState, Rollout, TaskObservation, TaskPhase,
    DEFAULT_CPU_INITIALIZATION_PERIOD,
};
pub use pending::PendingTasks;
pub use schedule::ScheduleFloor;

use crate::policy::{Mode, Override, PolicySpec, ScalingPolicy, TrafficState};
use behavior::{Normalization, Normalized};
use hpa::Tolerance;

/// Decides the replica count of one service at `now`. Pure and deterministic.
pub fn decide(
    policy: &ScalingPolicy,
    observation: &Observation,
    history: &History,
    override_: Option<&Override>,
    now: DateTime<Utc>,
) -> Decision {
    let spec = &policy.spec;
    let current = observation.current_replicas;
    let up = spec.behavior.scale_up();
    let down = spec.behavior.scale_down();
    let tolerance = Tolerance {
        down: down.tolerance,
        up: up.tolerance,
    };

    let under_claim = forecast::under_claim(history.claimed, current);
    let per_metric: Vec<MetricOutcome> = spec
        .metrics
        .iter()
        .map(|metric| {
            hpa::evaluate(
                metric,
                observation.metrics.get(&metric.name),
                observation,
                under_claim,
                tolerance,
                now,
            )
        })
        .collect();
    let forecast = forecast::recommendation(spec, observation, under_claim, tolerance, now);

    let schedule = schedule::floor(spec, now);
    let idling = idle::Idling::of(
        spec,
        observation,
        schedule.as_ref(),
        history.last_active,
        now,
    );
    let threshold = spec.fallback.failure_threshold();
    let failed_reads = fallback::failed_reads(
        &per_metric,
        &history.failed_reads,
        threshold,
        spec.interval,
        now,
    );
    let rules = Rules {
        spec,
        up: &up,
        down: &down,
        min: idling.as_ref().map_or(spec.min_replicas, |i| i.floor),
        from_idle: false,
        fallback_due: fallback::due(&per_metric, &failed_reads, threshold),
        failed_so_far: fallback::fewest_failed(&per_metric, &failed_reads),
        schedule: schedule.as_ref(),
        claim: forecast::Claim::of(spec, forecast, history, current, now),
    };
    let core = match &idling {
        None => policy_outcome(&rules, current, &per_metric, forecast, history, now),
        Some(idling) => idle_outcome(idling, &rules, current, &per_metric, forecast, history, now),
    };
    let mut outcome = pending::hold_scale_up(core, current, PendingTasks::of(observation).as_ref());
    if let Some((state, action)) = anomaly::active_action(spec, observation, now) {
        // Only a count the behavior produced is shaped; holds stay holds, and bringing a
        // service back within [min, max] is not negotiable.
        if outcome.stabilized.is_some() {
            // A cap never goes below an active schedule's floor, as it never goes below min.
            let floor = rules.min.max(schedule.as_ref().map_or(0, |s| s.replicas));
            outcome = anomaly::apply(state, action, outcome, current, floor);
        }
    }
    let active_override = override_.filter(|o| o.is_active(now));
    if let Some(active) = active_override {
        // A pin may name the idle count: an operator can put an idle-capable service to sleep.
        let lowest = spec.lowest_replicas();
        outcome = overrides::apply(active, outcome, current, lowest, spec.max_replicas);
    }
    if let Some(rollout) = observation.rollout {
        outcome = rollout::hold(rollout, outcome, current);
    }

    let mut detail = Vec::new();
    if let Some(active) = active_override.filter(|o| !o.reason.is_empty()) {
        detail.push(format!("override reason: {}", active.reason));
    }
    // The headline is bounded whatever the inputs (metric names, override authors); the whole
    // sentence is kept in the detail when it had to be cut.
    let message = clip(&outcome.message, HEADLINE_MAX);
    if message != outcome.message {
        detail.push(outcome.message);
    }
    Decision {
        desired: outcome.desired,
        current,
        reason: outcome.reason,
        limited_by: outcome.limited_by,
        recommendation: outcome.recommendation,
        stabilized: outcome.stabilized,
        per_metric,
        forecast,
        traffic_state: outcome.traffic_state,
        recommend_only: spec.mode == Mode::Recommend,
        override_expired: override_.is_some() && active_override.is_none(),
        last_active: idling.and_then(|i| i.last_active),
        failed_reads,
        schedule,
        message,
        detail,
    }
}

/// A decision in the making, passed through the stages after the HPA core.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outcome {
    pub desired: u32,
    pub reason: Reason,
    pub limited_by: Option<Limit>,
    pub recommendation: Option<u32>,
    pub stabilized: Option<u32>,
    pub traffic_state: Option<TrafficState>,
    pub message: String,
}

impl Outcome {
    /// No change, and nothing to remember.
    fn hold(current: u32, reason: Reason, message: String) -> Self {
        Outcome {
            desired: current,
            reason,
            limited_by: None,
            recommendation: None,
            stabilized: None,
            traffic_state: None,
            message,
        }
    }
}

#[derive(Clone, Copy)]
struct Rules<'a> {
    spec: &'a PolicySpec,
    up: &'a crate::policy::EffectiveRules,
    down: &'a crate::policy::EffectiveRules,
    /// The lower bound: `minReplicas`, or `max(1, minReplicas)` for a policy that can go idle.
    min: u32,
    /// The service is idle and being activated (or woken by a fallback): the count starts
    /// from the idle count, with HPA's scale-from-zero arithmetic, not from a bound.
    from_idle: bool,
    /// Every metric failed `fallback.failureThreshold` times in a row: the fallback applies.
    fallback_due: bool,
    /// The fewest failed reads in a row among the metrics, for the message.
    failed_so_far: u32,
    /// The active schedule with the highest floor, if any.
    schedule: Option<&'a ScheduleFloor>,
    /// A `scaleUp` forecast's floor on the stabilized count, if it asked within its horizon.
    claim: Option<forecast::Claim>,
}

/// The core for a policy that can go idle: idle, activate, or HPA's rules ([`idle`]).
fn idle_outcome(
    idling: &idle::Idling,
    rules: &Rules<'_>,
    current: u32,
    per_metric: &[MetricOutcome],
    forecast: Option<u32>,
    history: &History,
    now: DateTime<Utc>,
) -> Outcome {
    let counts = fallback::recommendation(rules.spec.fallback.action, current).is_some();
    let from_idle = Rules {
        from_idle: true,
        ..*rules
    };
    match idling.step(current, rules.fallback_due, counts, now) {
        idle::Step::Hpa => policy_outcome(rules, current, per_metric, forecast, history, now),
        idle::Step::Idle { message } => Outcome::hold(idling.idle, Reason::Idle, message),
        idle::Step::Fallback => {
            policy_outcome(&from_idle, current, per_metric, forecast, history, now)
        }
        idle::Step::Activate => {
            let core = policy_outcome(&from_idle, current, per_metric, forecast, history, now);
            // KEDA activates to at least one replica (minReplicas when higher); HPA's rules
            // take over from the next call.
            let desired = core.desired.max(idling.floor).min(rules.spec.max_replicas);
            Outcome {
                desired,
                reason: Reason::Activated,
                limited_by: None,
                message: idling.activated(desired),
                ..core
            }
        }
    }
}

/// The HPA core: bounds, metrics, failures, fallback, forecast, behavior.
fn policy_outcome(
    rules: &Rules<'_>,
    current: u32,
    per_metric: &[MetricOutcome],
    forecast: Option<u32>,
    history: &History,
    now: DateTime<Utc>,
) -> Outcome {
    let spec = rules.spec;
    let (min, max) = (rules.min, spec.max_replicas);
    if current == 0 && min != 0 && !rules.from_idle {
        return Outcome::hold(
            0,
            Reason::ScalingDisabled,
            "scaling is disabled since the replica count of the service is zero".to_owned(),
        );
    }
    if current > max {
        return bound(max, Limit::TooManyReplicas, "above maxReplicas");
    }
    if current < min && !rules.from_idle {
        return bound(min, Limit::TooFewReplicas, "below minReplicas");
    }

    let failed = per_metric.iter().filter(|m| m.replicas().is_none()).count();
    let observed = per_metric.iter().filter_map(MetricOutcome::replicas).max();
    let floor = rules.schedule.map_or(0, |s| s.replicas);
    // With every metric failed, an active schedule above the count still raises it: the
    // window is known without reading anything.
    let blind_floor = rules.schedule.filter(|s| s.replicas > current);
    let (recommendation, from_fallback) = match observed {
        // A policy with no metrics scales on its schedules alone (KEDA's `cron` scaler on its
        // own): the lower bound, lifted to an active window's floor below.
        None if per_metric.is_empty() => (min, false),
        // Nothing but the floor asks for a count: it is the recommendation (below).
        None if blind_floor.is_some() && fallback_hold_or_not_due(rules) => (0, false),
        None if !rules.fallback_due => {
            return Outcome::hold(
                current,
                Reason::MetricsIncomplete,
                format!(
                    "{}; every metric failed, {} of {} reads before fallback: keeping {current}",
                    first_failure(per_metric),
                    rules.failed_so_far,
                    spec.fallback.failure_threshold(),
                ),
            )
        }
        None => match fallback::recommendation(spec.fallback.action, current) {
            None => {
                return Outcome::hold(
                    current,
                    Reason::Fallback,
                    format!(
                        "{}; every metric failed, fallback hold keeps {current}",
                        first_failure(per_metric)
                    ),
                )
            }
            Some(replicas) => (replicas, true),
        },
        Some(replicas) if failed > 0 && replicas.max(floor) < current => {
            return Outcome::hold(
                current,
                Reason::MetricsIncomplete,
                format!(
                    "{}; no scale-down to {replicas} with {failed} of {} metrics failed",
                    first_failure(per_metric),
                    per_metric.len(),
                ),
            )
        }
        Some(replicas) => (
            forecast.map_or(replicas, |f| {
                forecast::combine(spec, per_metric, replicas, f)
            }),
            false,
        ),
    };
    // The schedule's floor combines with the rest as HPA combines metrics: the highest wins.
    let scheduled = rules.schedule.filter(|s| s.replicas > recommendation);
    let recommendation = recommendation.max(floor);

    let arg = Normalization {
        up: rules.up,
        down: rules.down,
        min,
        max,
        current,
        desired: recommendation,
        floor: rules.claim.map_or(0, |c| c.replicas),
    };
    let recommendations = history::recommendations_or_initial(history, current, now);
    let normalized = behavior::normalize(&arg, &recommendations, &history.events, now);
    let within_tolerance = recommendation == current
        && !from_fallback
        && !per_metric.is_empty()
        && per_metric.iter().all(|m| match m.result {
            MetricResult::Recommended {
                within_tolerance, ..
            } => within_tolerance,
            MetricResult::Failed { .. } => true,
        });
    let claimed = rules.claim.filter(|c| c.replicas > normalized.stabilized);
    let reason = explain(
        &normalized,
        recommendation,
        from_fallback,
        within_tolerance,
        scheduled.is_some(),
        claimed.is_some(),
    );
    let message = match (scheduled, claimed) {
        (_, Some(claim)) if reason == Reason::Forecast => {
            claim.describe(normalized.desired, recommendation, now)
        }
        (Some(schedule), _) if reason == Reason::Scheduled => scheduled_message(
            schedule,
            normalized.desired,
            per_metric,
            observed,
            from_fallback,
        ),
        (None, _) if per_metric.is_empty() && reason == Reason::DesiredWithinRange => {
            unscheduled_message(rules.schedule, normalized.desired)
        }
        // A rate policy or a window bounded a count the floor asked for: say whose it was.
        (Some(schedule), _) => format!(
            "{} (floor of schedule {})",
            message(reason, current, recommendation, &normalized, spec),
            schedule.name
        ),
        _ => message(reason, current, recommendation, &normalized, spec),
    };
    Outcome {
        desired: normalized.desired,
        reason,
        limited_by: normalized.limit,
        recommendation: Some(recommendation),
        stabilized: Some(normalized.stabilized),
        traffic_state: None,
        message,
    }
}

/// Every metric failed and the fallback would not name a count (`hold`, or not due yet).
fn fallback_hold_or_not_due(rules: &Rules<'_>) -> bool {
    !rules.fallback_due || fallback::recommendation(rules.spec.fallback.action, 0).is_none()
}

/// The message of a count an active schedule's floor set.
fn scheduled_message(
    schedule: &ScheduleFloor,
    desired: u32,
    per_metric: &[MetricOutcome],
    observed: Option<u32>,
    from_fallback: bool,
) -> String {
    let others = match (observed, from_fallback) {
        _ if per_metric.is_empty() => "the policy has no metrics".to_owned(),
        (_, true) => "the fallback asks for less".to_owned(),
        (Some(metrics), false) => format!("the metrics ask for {metrics}"),
        (None, false) => "every metric failed".to_owned(),
    };
    format!(
        "{} sets a floor of {desired} replicas; {others}",
        schedule.describe()
    )
}

/// The message of a policy with no metrics whose schedules set nothing above its lower bound.
fn unscheduled_message(schedule: Option<&ScheduleFloor>, desired: u32) -> String {
    match schedule {
        None => format!(
            "no schedule is active and the policy has no metrics: {desired} replicas, its minimum"
        ),
        Some(schedule) => format!(
            "{} asks for {}, no more than the policy's minimum: {desired} replicas",
            schedule.describe(),
            schedule.replicas
        ),
    }
}

/// A count outside `[min, max]` goes straight to the bound, with no behavior (as in HPA).
fn bound(replicas: u32, limit: Limit, why: &str) -> Outcome {
    Outcome {
        desired: replicas,
        reason: limit.reason(),
        limited_by: Some(limit),
        recommendation: None,
        stabilized: None,
        traffic_state: None,
        message: format!("current replica count is {why}: scaling to {replicas}"),
    }
}

fn explain(
    normalized: &Normalized,
    recommendation: u32,
    from_fallback: bool,
    within_tolerance: bool,
    scheduled: bool,
    claimed: bool,
) -> Reason {
    if let Some(limit) = normalized.limit {
        limit.reason()
    } else if claimed {
        Reason::Forecast
    } else if normalized.stabilized != recommendation {
        Reason::Stabilized
    } else if scheduled {
        Reason::Scheduled
    } else if from_fallback {
        Reason::Fallback
    } else if within_tolerance {
        Reason::WithinTolerance
    } else {
        Reason::DesiredWithinRange
    }
}

fn message(
    reason: Reason,
    current: u32,
    recommendation: u32,
    normalized: &Normalized,
    spec: &PolicySpec,
) -> String {
    let desired = normalized.desired;
    match reason {
        Reason::ScaleUpLimit => format!(
            "scaling up faster than the rate policies allow: {recommendation} recommended, \
             {desired} allowed now"
        ),
        Reason::ScaleDownLimit => format!(
            "scaling down faster than the rate policies allow: {recommendation} recommended, \
             {desired} allowed now"
        ),
        Reason::TooManyReplicas => format!(
            "the desired replica count {recommendation} is more than maxReplicas {}",
            spec.max_replicas
        ),
        Reason::TooFewReplicas => format!(
            "the desired replica count {recommendation} is less than minReplicas {}",
            spec.active_min()
        ),
        Reason::Stabilized if normalized.stabilized > recommendation => format!(
            "recent recommendations were higher: keeping {desired} instead of {recommendation} \
             (scale-down stabilization window)"
        ),
        Reason::Stabilized => format!(
            "recent recommendations were lower: keeping {desired} instead of {recommendation} \
             (scale-up stabilization window)"
        ),
        Reason::Fallback => format!(
            "every metric failed; fallback {} gives {desired} replicas",
            fallback::describe(spec.fallback.action)
        ),
        Reason::WithinTolerance => {
            format!("every metric is within tolerance of its target: keeping {current} replicas")
        }
        _ => format!(
            "the desired count {desired} is within the acceptable range (current {current})"
        ),
    }
}

fn first_failure(per_metric: &[MetricOutcome]) -> String {
    per_metric
        .iter()
        .find_map(|m| match &m.result {
            MetricResult::Failed { reason } => Some(format!("{}: {reason}", m.name)),
            MetricResult::Recommended { .. } => None,
        })
        .unwrap_or_else(|| "the policy has no metrics".to_owned())
}
