//! The events of one reconcile (scale, override, traffic state, metric failure, restore), worked
//! out from what changed since the last one. Pure: the reconciler keeps the memory and the ring.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::decide::{clip, Decision, MetricResult, Reason, HEADLINE_MAX};
use crate::policy::{Event, EventReason, EventType, Override, TrafficState};

/// What the last reconcile saw, for telling what changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seen {
    /// The override that applied, if one did.
    pub override_: Option<Override>,
    /// The metrics that failed, with their short cause.
    pub failing: BTreeMap<String, String>,
}

/// One reconcile's facts.
pub struct Round<'a> {
    pub decision: &'a Decision,
    /// The new count was written.
    pub scaled: bool,
    /// The override that applies now.
    pub override_: Option<&'a Override>,
    /// A traffic state change, (from, to).
    pub state_change: Option<(Option<TrafficState>, TrafficState)>,
    /// The first reconcile of this operator process: the history came from the label.
    pub restored: bool,
    pub now: DateTime<Utc>,
}

/// The events of `round`, given what the previous one saw; and what this one saw.
pub fn events(round: &Round<'_>, before: &Seen) -> (Vec<Event>, Seen) {
    let mut found = Vec::new();
    let mut add = |type_, reason, message: String| {
        found.push(Event {
            at: round.now,
            first_at: None,
            count: 1,
            type_,
            reason,
            message: clip(&message, HEADLINE_MAX),
        })
    };
    let d = round.decision;
    if round.restored {
        add(
            EventType::Normal,
            EventReason::StateRestored,
            format!(
                "an operator took over the service at {} replicas",
                d.current
            ),
        );
    }
    let failing: BTreeMap<String, String> = d
        .per_metric
        .iter()
        .filter_map(|m| match &m.result {
            MetricResult::Failed { reason } => Some((m.name.clone(), reason.clone())),
            MetricResult::Recommended { .. } => None,
        })
        .collect();
    for (name, cause) in &failing {
        if before.failing.get(name) != Some(cause) {
            add(
                EventType::Warning,
                EventReason::FailedGetMetric,
                format!("{name}: {cause}"),
            );
        }
    }
    if failing.is_empty() && !before.failing.is_empty() {
        let names: Vec<&str> = before.failing.keys().map(String::as_str).collect();
        add(
            EventType::Normal,
            EventReason::MetricsRecovered,
            format!("every metric reads again ({})", names.join(", ")),
        );
    }
    if let Some((from, to)) = round.state_change {
        let type_ = if to == TrafficState::Normal {
            EventType::Normal
        } else {
            EventType::Warning
        };
        let from = from.map_or("none", TrafficState::as_str);
        add(
            type_,
            EventReason::TrafficStateChanged,
            format!("traffic state {from} -> {to}"),
        );
    }
    match (&before.override_, round.override_) {
        (previous, Some(now)) if previous.as_ref() != Some(now) => add(
            EventType::Normal,
            EventReason::OverrideSet,
            format!("{}: {}", override_kind(now), clip(&now.reason, 60)),
        ),
        (Some(previous), None) => add(
            EventType::Normal,
            EventReason::OverrideEnded,
            format!(
                "{} ended: {}",
                override_kind(previous),
                clip(&previous.reason, 60)
            ),
        ),
        _ => {}
    }
    if round.scaled {
        let reason = match d.reason {
            Reason::Activated => EventReason::Activated,
            Reason::Idle => EventReason::Idle,
            _ => EventReason::SuccessfulRescale,
        };
        add(
            EventType::Normal,
            reason,
            format!("{} -> {}: {}", d.current, d.desired, d.message),
        );
    }
    let seen = Seen {
        override_: round.override_.cloned(),
        failing,
    };
    (found, seen)
}

fn override_kind(value: &Override) -> String {
    match value.replicas {
        Some(replicas) => format!("pinned at {replicas} by {}", clip(&value.by, 32)),
        None => format!("paused by {}", clip(&value.by, 32)),
    }
}

/// The event's identity in the durable ring: a repeat only bumps the count and time, which is
/// not worth a label write of its own.
pub fn durable(log: &[Event]) -> Vec<(DateTime<Utc>, EventReason, &str)> {
    log.iter()
        .map(|e| (e.first_at.unwrap_or(e.at), e.reason, e.message.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{MetricOutcome, Reason};
    use crate::policy::Target;

    fn decision(current: u32, desired: u32, failed: Option<&str>) -> Decision {
        Decision {
            desired,
            current,
            reason: Reason::DesiredWithinRange,
            limited_by: None,
            recommendation: Some(desired),
            stabilized: None,
            per_metric: vec![MetricOutcome {
                name: "rps".into(),
                target: Target::AverageValue(50.0),
                result: match failed {
                    Some(reason) => MetricResult::Failed {
                        reason: reason.into(),
                    },
                    None => MetricResult::Recommended {
                        replicas: desired,
                        current: 40.0,
                        ratio: 0.8,
                        within_tolerance: false,
                        ready: current,
                        missing: 0,
                        unready: 0,
                    },
                },
            }],
            forecast: None,
            traffic_state: None,
            recommend_only: false,
            override_expired: false,
            last_active: None,
            failed_reads: Default::default(),
            schedule: None,
            message: "the desired count 4 is within the acceptable range (current 2)".into(),
            detail: vec![],
        }
    }

    fn reasons(found: &[Event]) -> Vec<EventReason> {
        found.iter().map(|e| e.reason).collect()
    }

    #[test]
    fn scale_failure_recovery_override_state_and_restore() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let pin = Override {
            replicas: Some(3),
            pause: false,
            pause_scale_in: false,
            pause_scale_out: false,
            expires_at: now + chrono::Duration::minutes(5),
            reason: "launch".into(),
            by: "ops".into(),
        };
        let scaled = decision(2, 4, None);
        let round = Round {
            decision: &scaled,
            scaled: true,
            override_: Some(&pin),
            state_change: Some((Some(TrafficState::Normal), TrafficState::Flood)),
            restored: true,
            now,
        };
        let (found, seen) = events(&round, &Seen::default());
        assert_eq!(
            reasons(&found),
            [
                EventReason::StateRestored,
                EventReason::TrafficStateChanged,
                EventReason::OverrideSet,
                EventReason::SuccessfulRescale
            ]
        );
        assert_eq!(found[1].type_, EventType::Warning);
        assert!(
            found[3].message.starts_with("2 -> 4: "),
            "{}",
            found[3].message
        );
        assert!(found
            .iter()
            .all(|e| e.message.chars().count() <= HEADLINE_MAX));

        let failing = decision(4, 4, Some("Prometheus unreachable (connection refused)"));
        let round = Round {
            decision: &failing,
            scaled: false,
            override_: None,
            state_change: None,
            restored: false,
            now,
        };
        let (found, seen) = events(&round, &seen);
        assert_eq!(
            reasons(&found),
            [EventReason::FailedGetMetric, EventReason::OverrideEnded]
        );
        assert_eq!(
            found[0].message,
            "rps: Prometheus unreachable (connection refused)"
        );
        // The same failure again is no new event.
        let (again, seen) = events(&round, &seen);
        assert!(again.is_empty(), "{again:?}");
        let fine = decision(4, 4, None);
        let round = Round {
            decision: &fine,
            ..round
        };
        let (found, _) = events(&round, &seen);
        assert_eq!(reasons(&found), [EventReason::MetricsRecovered]);
    }
}
