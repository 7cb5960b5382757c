//! `spec.schedules` through `decide`: a floor while a window is active, combined with the
//! metrics as HPA combines metrics, and its interplay with idling, fallback and overrides.
//!
//! `t(0)` is 2024-06-01 12:00 UTC, 14:00 in Europe/Berlin (CEST): the window below is
//! `t(0)..t(3600)`.

use super::*;
use crate::decide::{
    conditions, Actuation, ConditionInputs, ConditionReason, ConditionType, Reason,
};
use crate::policy::{Fallback, FallbackSpec, ScheduleSpec};

/// Europe/Berlin 14:00 to 15:00, at least `replicas`.
fn lunch(replicas: u32) -> ScheduleSpec {
    ScheduleSpec {
        name: "lunch".into(),
        timezone: "Europe/Berlin".into(),
        start: "0 14 * * *".into(),
        end: "0 15 * * *".into(),
        desired_replicas: replicas,
    }
}

fn scheduled_policy(min: u32, behavior: &str) -> ScalingPolicy {
    let mut policy = policy(min, 10, behavior);
    policy.spec.schedules = vec![lunch(4)];
    policy
}

#[test]
fn an_active_window_lifts_the_count_and_names_the_schedule() {
    let policy = scheduled_policy(1, "");
    let before = decide(
        &policy,
        &total_rps(1, 100.0),
        &History::default(),
        None,
        t(-1),
    );
    assert_eq!((before.desired, before.schedule.as_ref()), (1, None));

    let d = decide(
        &policy,
        &total_rps(1, 100.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((d.desired, d.reason), (4, Reason::Scheduled));
    let floor = d.schedule.as_ref().expect("the window is active");
    assert_eq!((floor.name.as_str(), floor.replicas), ("lunch", 4));
    assert_eq!(
        floor.until.map(|u| u.to_rfc3339()),
        Some("2024-06-01T15:00:00+02:00".to_owned())
    );
    assert!(d.message.starts_with("schedule lunch"), "{}", d.message);
    assert!(d.message.contains("the metrics ask for 1"), "{}", d.message);

    let found = conditions(
        &ConditionInputs {
            spec: &policy.spec,
            decision: &d,
            actuation: &Actuation::Scaled,
            forecast: None,
            traffic: None,
            rollout: None,
        },
        &[],
        t(0),
    );
    let limited = found
        .iter()
        .find(|c| c.type_ == ConditionType::ScalingLimited)
        .expect("ScalingLimited");
    assert_eq!(limited.reason, ConditionReason::ScheduleFloor);
    assert!(
        limited.message.contains("schedule lunch"),
        "{}",
        limited.message
    );
}

#[test]
fn metrics_above_the_floor_win() {
    let policy = scheduled_policy(1, "");
    let d = decide(
        &policy,
        &total_rps(4, 600.0),
        &History::default(),
        None,
        t(60),
    );
    assert_eq!((d.desired, d.reason), (6, Reason::DesiredWithinRange));
    assert_eq!(d.schedule.map(|s| s.replicas), Some(4), "still reported");
}

#[test]
fn after_end_the_floor_goes_with_the_scale_down_rules() {
    // HPA's default scale-down stabilization (300s) keeps the floor's count for 5 minutes.
    let mut run = Run::new(scheduled_policy(1, ""), 1);
    assert_eq!(run.tick(t(0), 1).desired, 4);
    assert_eq!(run.tick(t(3585), 1).reason, Reason::Scheduled);
    let after = run.tick(t(3600), 1);
    assert_eq!((after.desired, after.reason), (4, Reason::Stabilized));
    assert_eq!(after.schedule, None);
    assert_eq!(run.tick(t(3600 + 300), 1).desired, 1);

    // Without a stabilization window it goes at the end.
    let quick = "scaleDown:\n  stabilizationWindow: 0s\n";
    let mut run = Run::new(scheduled_policy(1, quick), 1);
    assert_eq!(run.tick(t(0), 1).desired, 4);
    assert_eq!(run.tick(t(3600), 1).desired, 1);
}

#[test]
fn the_highest_active_floor_is_the_one() {
    let mut policy = scheduled_policy(1, "");
    policy.spec.schedules.push(ScheduleSpec {
        name: "saturday".into(),
        timezone: "Asia/Kolkata".into(),
        start: "0 0 * * 6".into(),
        end: "0 0 * * 0".into(),
        desired_replicas: 6,
    });
    let d = decide(
        &policy,
        &total_rps(1, 100.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(d.schedule.map(|s| s.name), Some("saturday".to_owned()));
    assert_eq!(
        d.desired, 5,
        "HPA's default scale-up rate from 1: max(100%, 4 pods)"
    );
}

#[test]
fn an_active_window_activates_an_idle_service_and_keeps_it_active() {
    let mut policy = scheduled_policy(0, "scaleDown:\n  stabilizationWindow: 0s\n");
    policy.spec.cooldown_period = Some(HumanDuration::from_secs(60));
    policy.spec.metrics[0].activation = Some(5.0);
    let mut run = Run::new(policy, 0);
    let idle = run.tick_with(t(-60), &total_rps(0, 0.0), None);
    assert_eq!((idle.desired, idle.reason), (0, Reason::Idle));

    let woken = run.tick_with(t(0), &total_rps(0, 0.0), None);
    assert_eq!((woken.desired, woken.reason), (4, Reason::Activated));
    assert!(
        woken.message.contains("schedule lunch"),
        "{}",
        woken.message
    );
    // Quiet metrics all through the window: never idle while it is active.
    let within = run.tick_with(t(1800), &total_rps(4, 0.0), None);
    assert_eq!((within.desired, within.reason), (4, Reason::Scheduled));
    assert_eq!(run.tick_with(t(3585), &total_rps(4, 0.0), None).desired, 4);
    // After the end, the cooldown runs from the window's last active call (t(3585)).
    let cooling = run.tick_with(t(3600), &total_rps(4, 0.0), None);
    assert_eq!(cooling.desired, 1, "HPA's rules with max(1, minReplicas)");
    assert_eq!(run.tick_with(t(3630), &total_rps(1, 0.0), None).desired, 1);
    let gone = run.tick_with(t(3585 + 60), &total_rps(1, 0.0), None);
    assert_eq!((gone.desired, gone.reason), (0, Reason::Idle));
}

#[test]
fn with_every_metric_failed_the_floor_still_applies() {
    let policy = scheduled_policy(1, "");
    let blind = decide(&policy, &failed_rps(1), &History::default(), None, t(0));
    assert_eq!((blind.desired, blind.reason), (4, Reason::Scheduled));
    assert!(
        blind.message.contains("every metric failed"),
        "{}",
        blind.message
    );
    // At or above the floor, HPA's rule stands: no scale-down on a failed metric.
    let above = decide(&policy, &failed_rps(6), &History::default(), None, t(0));
    assert_eq!(
        (above.desired, above.reason),
        (6, Reason::MetricsIncomplete)
    );

    // A fallback count below the floor is lifted to it; one above it wins.
    let mut low = scheduled_policy(1, "");
    low.spec.fallback = FallbackSpec {
        failure_threshold: Some(1),
        ..Fallback::Replicas(2).into()
    };
    let d = decide(&low, &failed_rps(1), &History::default(), None, t(0));
    assert_eq!((d.desired, d.reason), (4, Reason::Scheduled));
    let mut high = low.clone();
    high.spec.fallback.action = Fallback::Replicas(8);
    let d = decide(&high, &failed_rps(1), &History::default(), None, t(0));
    assert_eq!((d.desired, d.reason), (5, Reason::ScaleUpLimit));
}

#[test]
fn an_override_wins_over_a_schedule() {
    let policy = scheduled_policy(1, "");
    let pin = Override {
        replicas: Some(2),
        pause: false,
        pause_scale_in: false,
        pause_scale_out: false,
        expires_at: t(600),
        reason: "maintenance".into(),
        by: "cli".into(),
    };
    let d = decide(
        &policy,
        &total_rps(1, 100.0),
        &History::default(),
        Some(&pin),
        t(0),
    );
    assert_eq!((d.desired, d.reason), (2, Reason::Override));
    assert_eq!(d.schedule.map(|s| s.name), Some("lunch".to_owned()));
}
