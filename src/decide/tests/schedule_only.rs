//! A policy with `schedules` and no `metrics` (KEDA's `cron` scaler on its own): the count is
//! the active windows' highest floor, else `minReplicas` (or idle), shaped by HPA's behavior
//! like any recommendation; an override wins.
//!
//! The policy is KEDA's cron example in swarmpilot's words: "10 replicas on weekdays
//! 09:00–18:00 Europe/Paris, 2 otherwise". On Monday 2026-11-30 Paris is at UTC+1: the window
//! is 08:00 to 17:00 UTC.

use super::*;
use crate::decide::{
    conditions, Actuation, ConditionInputs, ConditionReason, ConditionType, Reason,
};
use crate::policy::parse;

fn business_hours(extra: &str) -> ScalingPolicy {
    business_hours_from(2, extra)
}

/// The same with `minReplicas: min`.
fn business_hours_from(min: u32, extra: &str) -> ScalingPolicy {
    parse(&format!(
        "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {{name: web}}
spec:
  minReplicas: {min}
  maxReplicas: 20
  schedules:
    - name: business-hours
      timezone: Europe/Paris
      start: 0 9 * * 1-5
      end: 0 18 * * 1-5
      desiredReplicas: 10
{extra}"
    ))
    .expect("a schedule-only policy is valid")
}

/// Monday 2026-11-30 at `hh:mm:ss` UTC.
fn monday(time: &str) -> DateTime<Utc> {
    format!("2026-11-30T{time}Z")
        .parse()
        .expect("an RFC 3339 instant")
}

/// `current` replicas, nothing read: a schedule-only policy reads no metric.
fn nothing(current: u32) -> Observation {
    let mut observation = Observation::new(current);
    observation.tasks = tasks(current);
    observation
}

fn decide_at(policy: &ScalingPolicy, current: u32, now: DateTime<Utc>) -> Decision {
    decide(policy, &nothing(current), &History::default(), None, now)
}

/// A service driven tick by tick with nothing read; each decision applied and recorded.
fn tick(run: &mut Run, now: DateTime<Utc>) -> Decision {
    let observation = nothing(run.current);
    run.tick_with(now, &observation, None)
}

/// KEDA's cron scaler: "the desired replica count is applied between `start` and `end`";
/// outside the window the policy's minimum. HPA's scale-up rule (the higher of 4 pods and 100%
/// per 15s) paces the way up as for any recommendation.
#[test]
fn an_active_window_sets_its_floor_and_an_inactive_one_the_minimum() {
    let policy = business_hours("");
    // (instant, current, desired, reason, the schedule in the decision)
    let cases = [
        ("07:59:59", 2, 2, Reason::DesiredWithinRange, None),
        ("08:00:00", 10, 10, Reason::Scheduled, Some(10)),
        ("12:00:00", 2, 6, Reason::ScaleUpLimit, Some(10)),
        ("12:00:00", 6, 10, Reason::Scheduled, Some(10)),
        ("16:59:59", 10, 10, Reason::Scheduled, Some(10)),
        ("17:00:00", 2, 2, Reason::DesiredWithinRange, None),
        ("21:00:00", 3, 3, Reason::Stabilized, None),
    ];
    for (at, current, desired, reason, floor) in cases {
        let d = decide_at(&policy, current, monday(at));
        assert_eq!(
            (d.desired, d.reason, d.schedule.as_ref().map(|s| s.replicas)),
            (desired, reason, floor),
            "{at} from {current}: {}",
            d.message
        );
        assert!(
            d.per_metric.is_empty() && d.recommendation.is_some(),
            "{d:?}"
        );
    }
    // Saturday inside the hours: the window is for weekdays only.
    let saturday = "2026-11-28T10:00:00Z".parse().expect("an instant");
    assert_eq!(decide_at(&policy, 2, saturday).desired, 2);
}

#[test]
fn the_decision_and_its_conditions_name_the_schedule() {
    let policy = business_hours("");
    let d = decide_at(&policy, 10, monday("12:00:00"));
    assert_eq!(
        d.message,
        "schedule business-hours (until 2026-11-30 18:00:00 +01:00) sets a floor of 10 \
         replicas; the policy has no metrics"
    );
    let floor = d.schedule.as_ref().expect("the window is active");
    assert_eq!(
        (floor.name.as_str(), floor.replicas),
        ("business-hours", 10)
    );

    let limited = decide_at(&policy, 2, monday("12:00:00"));
    assert!(
        limited
            .message
            .ends_with("6 allowed now (floor of schedule business-hours)"),
        "{}",
        limited.message
    );
    let quiet = decide_at(&policy, 2, monday("07:00:00"));
    assert_eq!(
        quiet.message,
        "no schedule is active and the policy has no metrics: 2 replicas, its minimum"
    );

    let found = |d: &Decision| {
        conditions(
            &ConditionInputs {
                spec: &policy.spec,
                decision: d,
                actuation: &Actuation::Unchanged,
                forecast: None,
                traffic: None,
                rollout: None,
            },
            &[],
            monday("12:00:00"),
        )
    };
    let during = found(&d);
    let reason_of = |found: &[crate::decide::Condition], type_| {
        found
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.reason, c.message.clone()))
    };
    let (active, message) = reason_of(&during, ConditionType::ScalingActive).expect("present");
    assert_eq!(active, ConditionReason::SchedulesOnly);
    assert!(message.contains("schedule business-hours"), "{message}");
    let (limited_by, message) = reason_of(&during, ConditionType::ScalingLimited).expect("present");
    assert_eq!(limited_by, ConditionReason::ScheduleFloor);
    assert!(message.ends_with("above the policy's minimum"), "{message}");
    assert_eq!(
        reason_of(&during, ConditionType::MetricsAvailable),
        None,
        "a policy that reads nothing has no MetricsAvailable condition"
    );
    let (active, message) =
        reason_of(&found(&quiet), ConditionType::ScalingActive).expect("present");
    assert_eq!(active, ConditionReason::SchedulesOnly);
    assert!(message.contains("no schedule is active"), "{message}");
}

/// HPA: "the stabilization window is used to restrict the flapping of replica count ... the
/// default for scale down is 300 seconds": when the window closes, the floor's count stays
/// five minutes, then the count goes to the minimum at the scale-down rate.
#[test]
fn the_end_of_a_window_scales_down_as_the_behavior_says() {
    // (instant, desired, reason) with HPA's default scale-down rules.
    let default = [
        ("16:59:45", 10, Reason::Scheduled),
        ("17:00:00", 10, Reason::Stabilized),
        ("17:02:30", 10, Reason::Stabilized),
        ("17:04:30", 10, Reason::Stabilized),
        ("17:05:00", 2, Reason::DesiredWithinRange),
    ];
    // A gentler scale-down: 2 replicas a minute, after a one-minute window.
    let gentle = "  behavior:
    scaleDown:
      stabilizationWindow: 60s
      policies: [{type: Replicas, value: 2, period: 60s}]
";
    let stepped = [
        ("16:59:45", 10, Reason::Scheduled),
        ("17:00:00", 10, Reason::Stabilized),
        ("17:00:30", 10, Reason::Stabilized),
        ("17:01:30", 8, Reason::ScaleDownLimit),
        ("17:02:30", 6, Reason::ScaleDownLimit),
        ("17:03:30", 4, Reason::ScaleDownLimit),
        ("17:04:30", 2, Reason::DesiredWithinRange),
    ];
    for (extra, table) in [("", &default[..]), (gentle, &stepped[..])] {
        let mut run = Run::new(business_hours(extra), 10);
        let mut at = monday("16:59:45");
        for &(when, desired, reason) in table {
            // Every 15 s, as the loop does, up to the row's instant.
            let mut d = tick(&mut run, at);
            while at < monday(when) {
                at += chrono::Duration::seconds(15);
                d = tick(&mut run, at);
            }
            assert_eq!(
                (d.desired, d.reason),
                (desired, reason),
                "{when}: {}",
                d.message
            );
        }
    }
}

#[test]
fn an_override_wins_over_the_window() {
    let policy = business_hours("");
    let pin = |replicas: Option<u32>, pause: bool| Override {
        replicas,
        pause,
        pause_scale_in: false,
        pause_scale_out: false,
        expires_at: monday("13:00:00"),
        reason: "maintenance".into(),
        by: "cli".into(),
    };
    // (override, current, desired, reason) inside the window, whose floor is 10.
    let cases = [
        (pin(Some(3), false), 10, 3, Reason::Override),
        (pin(None, true), 4, 4, Reason::Paused),
    ];
    for (active, current, desired, reason) in cases {
        let d = decide(
            &policy,
            &nothing(current),
            &History::default(),
            Some(&active),
            monday("12:00:00"),
        );
        assert_eq!((d.desired, d.reason), (desired, reason), "{}", d.message);
        assert_eq!(d.schedule.map(|s| s.replicas), Some(10), "still reported");
    }
    // Once expired, the window decides again.
    let d = decide(
        &policy,
        &nothing(3),
        &History::default(),
        Some(&pin(Some(3), false)),
        monday("13:00:00"),
    );
    assert_eq!(
        (d.desired, d.reason, d.override_expired),
        (7, Reason::ScaleUpLimit, true)
    );
}

/// KEDA's `minReplicaCount: 0` with a cron trigger alone: idle outside the window (after the
/// cooldown from its end), activated when it opens.
#[test]
fn a_schedule_only_policy_can_go_idle_between_windows() {
    let mut run = Run::new(business_hours_from(0, "  cooldownPeriod: 60s\n"), 0);
    // (instant, desired, reason, a word of the message)
    let table = [
        ("07:59:45", 0, Reason::Idle, "no schedule is active"),
        // KEDA activates, then HPA's scale-up rule paces the way to the floor.
        ("08:00:00", 4, Reason::Activated, "schedule business-hours"),
        (
            "08:00:15",
            8,
            Reason::ScaleUpLimit,
            "floor of schedule business-hours",
        ),
        ("08:00:30", 10, Reason::Scheduled, "schedule business-hours"),
        ("16:59:45", 10, Reason::Scheduled, "schedule business-hours"),
        ("17:00:00", 10, Reason::Stabilized, "keeping 10"),
        (
            "17:00:45",
            0,
            Reason::Idle,
            "no schedule is active for cooldownPeriod 1m",
        ),
    ];
    for (at, desired, reason, words) in table {
        let d = tick(&mut run, monday(at));
        assert_eq!(
            (d.desired, d.reason),
            (desired, reason),
            "{at}: {}",
            d.message
        );
        assert!(d.message.contains(words), "{at}: {}", d.message);
    }
}
