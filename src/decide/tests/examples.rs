//! The worked examples of the Kubernetes HPA documentation ("Algorithm details" and
//! "Configurable scaling behavior"), reproduced through `decide`.

use super::*;
use crate::decide::{Limit, MetricResult, Reason};

const NO_DOWN_WINDOW: &str = "scaleDown: {stabilizationWindow: 0s}";

fn per_task_rps(current: u32, each: f64) -> Observation {
    let mut observation = Observation::new(current);
    observation.tasks = tasks(current);
    let samples: Vec<(String, f64)> = (0..current).map(|i| (format!("task{i}"), each)).collect();
    observation
        .metrics
        .insert("rps".into(), MetricSample::per_task(samples));
    observation
}

/// "if the current metric value is 200m, and the desired value is 100m, the number of replicas
/// will be doubled, since 200.0 / 100.0 == 2.0. If the current value is instead 50m, you'll
/// halve the number of replicas, since 50.0 / 100.0 == 0.5."
#[test]
fn ratio_two_doubles_and_ratio_half_halves() {
    // Milli-units as plain numbers: 200m is 200, the 100m target is 100.
    let policy = policy(1, 100, NO_DOWN_WINDOW);
    let cases = [
        (4, 200.0, 8, Reason::DesiredWithinRange),
        (4, 50.0, 2, Reason::DesiredWithinRange),
        (3, 200.0, 6, Reason::DesiredWithinRange),
        (6, 50.0, 3, Reason::DesiredWithinRange),
    ];
    for (current, each, desired, reason) in cases {
        let decision = decide(
            &policy,
            &per_task_rps(current, each),
            &History::default(),
            None,
            t(0),
        );
        assert_eq!(
            (decision.desired, decision.reason),
            (desired, reason),
            "{current} x {each}"
        );
    }
}

/// "desiredReplicas = ceil[currentReplicas * (currentMetricValue / desiredMetricValue)]", and
/// "the control plane skips any scaling action if the ratio is sufficiently close to 1.0
/// (within a globally-configurable tolerance, 0.1 by default)".
#[test]
fn tolerance_of_ten_percent_by_default() {
    let policy = policy(1, 100, NO_DOWN_WINDOW);
    // (current, total rps, desired): target 100 per replica.
    let cases = [
        (10, 1050.0, 10, Reason::WithinTolerance),
        (10, 1100.0, 10, Reason::WithinTolerance),
        (10, 1110.0, 12, Reason::DesiredWithinRange),
        (10, 950.0, 10, Reason::WithinTolerance),
        (10, 900.0, 10, Reason::WithinTolerance),
        (10, 890.0, 9, Reason::DesiredWithinRange),
    ];
    for (current, total, desired, reason) in cases {
        let decision = decide(
            &policy,
            &total_rps(current, total),
            &History::default(),
            None,
            t(0),
        );
        assert_eq!(
            (decision.desired, decision.reason),
            (desired, reason),
            "{total}"
        );
    }
}

#[test]
fn tolerance_can_differ_per_direction() {
    let policy = policy(
        1,
        100,
        "scaleUp: {tolerance: 0.0}\nscaleDown: {stabilizationWindow: 0s, tolerance: 0.5}",
    );
    let up = decide(
        &policy,
        &total_rps(10, 1010.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(up.desired, 11);
    let down = decide(
        &policy,
        &total_rps(10, 600.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((down.desired, down.reason), (10, Reason::WithinTolerance));
}

/// "If there were any missing metrics, the control plane recomputes the average more
/// conservatively, assuming those Pods were consuming 100% of the desired value in case of a
/// scale down, and 0% in case of a scale up." and "If the new ratio reverses the scale
/// direction, or is within the tolerance, the controller doesn't take any scaling action."
#[test]
fn missing_samples_dampen_and_never_reverse() {
    let policy = policy(1, 100, NO_DOWN_WINDOW);
    let mut observation = Observation::new(4);
    observation.tasks = tasks(4);
    // Two tasks report 300 each (target 100), two have no sample: counted as 0 on the way up.
    observation.metrics.insert(
        "rps".into(),
        MetricSample::per_task([("task0", 300.0), ("task1", 300.0)]),
    );
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    // (300 + 300 + 0 + 0) / 4 / 100 = 1.5 -> ceil(1.5 * 4) = 6, not 4 x 3 = 12.
    assert_eq!(decision.desired, 6);
    // Two report 50 each: missing ones count as the target on the way down:
    // (50 + 50 + 100 + 100) / 4 / 100 = 0.75 -> ceil(3) = 3.
    observation.metrics.insert(
        "rps".into(),
        MetricSample::per_task([("task0", 50.0), ("task1", 50.0)]),
    );
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(decision.desired, 3);
    // Two report 84 each: (84 + 84 + 100 + 100) / 4 / 100 = 0.92: within tolerance, no action.
    observation.metrics.insert(
        "rps".into(),
        MetricSample::per_task([("task0", 84.0), ("task1", 84.0)]),
    );
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(
        (decision.desired, decision.reason),
        (4, Reason::WithinTolerance)
    );
}

/// "if any not-yet-ready pods were present, and the workload would have scaled up without
/// factoring in missing metrics or not-yet-ready pods, the controller conservatively assumes
/// that the not-yet-ready pods are consuming 0% of the desired metric".
#[test]
fn starting_tasks_count_as_idle_on_scale_up() {
    let policy = policy(1, 100, "");
    let mut observation = per_task_rps(4, 300.0);
    observation.tasks[3].phase = TaskPhase::Starting;
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    // The ready count is the base: 3 x 300 / 100 = 9, not 4 x 3 = 12; the default scale-up
    // rate (+100% or +4 per 15s) then allows 8 now.
    assert_eq!(decision.recommendation, Some(9));
    assert_eq!(
        (decision.desired, decision.reason),
        (8, Reason::ScaleUpLimit)
    );
    // Two ready at 210 (ratio 2.1 -> 5 on its own); the two starting ones count as idle:
    // 420 / 4 / 100 = 1.05 is within tolerance, so nothing changes.
    let mut observation = per_task_rps(4, 210.0);
    observation.tasks[2].phase = TaskPhase::Starting;
    observation.tasks[3].phase = TaskPhase::Starting;
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(
        (decision.desired, decision.reason),
        (4, Reason::WithinTolerance)
    );
}

/// "If any of these metrics cannot be converted into a desired replica count ... and a scale
/// down is suggested by the metrics which can be fetched, scaling is skipped. This means that
/// the HPA is still capable of scaling up if one or more metrics give a desiredReplicas
/// greater than the current value."
#[test]
fn failed_metric_blocks_scale_down_but_not_scale_up() {
    let mut policy = policy(1, 100, NO_DOWN_WINDOW);
    let mut second = policy.spec.metrics[0].clone();
    second.name = "queue".into();
    second.target = Target::Value(10.0);
    policy.spec.metrics.push(second);

    let mut observation = total_rps(6, 200.0);
    observation.metrics.insert(
        "queue".into(),
        MetricSample::failed("prometheus: connection refused"),
    );
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(
        (decision.desired, decision.reason),
        (6, Reason::MetricsIncomplete)
    );
    assert_eq!(decision.recommendation, None);
    assert!(decision.message.contains("connection refused"));

    let mut observation = total_rps(6, 900.0);
    observation
        .metrics
        .insert("queue".into(), MetricSample::failed("timeout"));
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(decision.desired, 9);
    assert!(matches!(
        decision.per_metric[1].result,
        MetricResult::Failed { .. }
    ));
}

/// "the HPA ... will calculate proposed replica counts for each metric, and then choose the
/// one with the highest replica count".
#[test]
fn largest_metric_recommendation_wins() {
    let mut policy = policy(1, 100, NO_DOWN_WINDOW);
    let mut second = policy.spec.metrics[0].clone();
    second.name = "queue".into();
    second.target = Target::Value(10.0);
    policy.spec.metrics.push(second);
    let mut observation = total_rps(4, 200.0); // rps alone: 2
    observation
        .metrics
        .insert("queue".into(), MetricSample::value(20.0)); // queue: ratio 2 x 4 ready = 8
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(decision.desired, 8);
    let counts: Vec<_> = decision.per_metric.iter().map(|m| m.replicas()).collect();
    assert_eq!(counts, vec![Some(2), Some(8)]);
}

#[test]
fn every_metric_failed_uses_the_fallback() {
    let failed = || {
        let mut observation = Observation::new(5);
        observation.tasks = tasks(5);
        observation
            .metrics
            .insert("rps".into(), MetricSample::failed("no data"));
        observation
    };
    let mut policy = policy(2, 10, NO_DOWN_WINDOW);
    let cases = [
        (Fallback::Hold, 5, Reason::Fallback, None),
        (Fallback::Replicas(3), 3, Reason::Fallback, Some(3)),
        (
            Fallback::Replicas(50),
            10,
            Reason::TooManyReplicas,
            Some(50),
        ),
        (Fallback::CurrentIfHigher(3), 5, Reason::Fallback, Some(5)),
        (Fallback::CurrentIfHigher(8), 8, Reason::Fallback, Some(8)),
    ];
    for (fallback, desired, reason, recommendation) in cases {
        // The first failed read triggers it with failureThreshold 1.
        policy.spec.fallback = FallbackSpec {
            action: fallback,
            failure_threshold: Some(1),
        };
        let decision = decide(&policy, &failed(), &History::default(), None, t(0));
        assert_eq!(
            (decision.desired, decision.reason, decision.recommendation),
            (desired, reason, recommendation),
            "{fallback:?}"
        );
    }
}

/// Behavior section, "Scaling policies": policies Pods 4 / 60s and Percent 10 / 60s. "when the
/// number of replicas is more than 40 the second policy (10%) will be used ... if there are 80
/// replicas and the target has to be scaled down to 10 replicas then during the first step 8
/// replicas will be reduced. In the next iteration when the number of replicas is 72, 10% of the
/// pods is 7.2 but the number is rounded up to 8. ... When the number of replicas falls below 40
/// the first policy (Pods) is applied and 4 replicas will be reduced at a time."
#[test]
fn scale_down_limited_to_four_pods_or_ten_percent_per_minute() {
    let behavior = "scaleDown:
  stabilizationWindow: 0s
  policies:
    - {type: Replicas, value: 4, period: 60s}
    - {type: Percent, value: 10, period: 60s}";
    let mut run = Run::new(policy(1, 100, behavior), 80);
    let mut per_minute = vec![run.current];
    for tick in 0..60 {
        let now = t(tick * 15);
        let decision = run.tick(now, 10);
        if tick % 4 == 0 {
            per_minute.push(decision.desired);
        } else {
            // Within the same minute the period's start is still the count before the step.
            assert_eq!(decision.desired, decision.current, "tick {tick}");
        }
    }
    per_minute.dedup();
    assert_eq!(
        per_minute,
        vec![80, 72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10]
    );
}

/// "selectPolicy: Min" picks the policy allowing the smallest change.
#[test]
fn select_policy_min_takes_the_smaller_step() {
    let behavior = "scaleDown:
  stabilizationWindow: 0s
  selectPolicy: Min
  policies:
    - {type: Replicas, value: 4, period: 60s}
    - {type: Percent, value: 10, period: 60s}";
    let mut run = Run::new(policy(1, 100, behavior), 80);
    let steps: Vec<u32> = (0..5)
        .map(|minute| run.tick(t(minute * 60), 10).desired)
        .collect();
    assert_eq!(steps, vec![76, 72, 68, 64, 60]);
    let decision = run.tick(t(5 * 60), 10);
    assert_eq!(decision.limited_by, Some(Limit::ScaleDownLimit));
}

/// "Stabilization window": "the highest recommendation within the window is used", so a dip in
/// the metric does not shed replicas until it has lasted the whole window (300s by default).
#[test]
fn default_scale_down_window_keeps_the_highest_recent_recommendation() {
    let mut run = Run::new(policy(1, 100, ""), 10);
    let first = run.tick(t(0), 10);
    assert_eq!(first.desired, 10);
    for tick in 1..20 {
        let decision = run.tick(t(tick * 15), 4);
        assert_eq!(
            (decision.desired, decision.reason),
            (10, Reason::Stabilized),
            "tick {tick}"
        );
        assert_eq!(decision.recommendation, Some(4));
    }
    // At 300s the recommendation for 10 made at 0s leaves the window.
    let decision = run.tick(t(300), 4);
    assert_eq!(
        (decision.desired, decision.reason),
        (4, Reason::DesiredWithinRange)
    );
}

/// A fresh operator (no history) does not scale in before a full window: HPA records the count
/// it first sees as a recommendation.
#[test]
fn no_scale_down_before_the_window_after_a_restart() {
    let mut run = Run::new(policy(1, 100, "scaleDown: {stabilizationWindow: 60s}"), 8);
    let decisions: Vec<u32> = (0..6)
        .map(|tick| run.tick(t(tick * 15), 2).desired)
        .collect();
    assert_eq!(decisions, vec![8, 8, 8, 8, 2, 2]);
}

/// A scale-up stabilization window: scale up only to the lowest recommendation within it, so a
/// one-tick spike does nothing.
#[test]
fn scale_up_window_takes_the_lowest_recent_recommendation() {
    let mut run = Run::new(policy(1, 100, "scaleUp: {stabilizationWindow: 30s}"), 2);
    assert_eq!(run.tick(t(0), 2).desired, 2);
    let spike = run.tick(t(15), 8);
    assert_eq!((spike.desired, spike.reason), (2, Reason::Stabilized));
    // At 30s the recommendations of 0s are out of the window (it keeps times after now - 30s);
    // 8 is stabilized, then the default rate (max of +100% and +4 per 15s) allows 6.
    let next = run.tick(t(30), 8);
    assert_eq!((next.desired, next.reason), (6, Reason::ScaleUpLimit));
    assert_eq!(run.tick(t(45), 8).desired, 8);
}

/// "Example: disable scale down": "selectPolicy: Disabled" never removes replicas.
#[test]
fn select_policy_disabled_never_scales_down() {
    let mut run = Run::new(
        policy(
            1,
            100,
            "scaleDown: {stabilizationWindow: 0s, selectPolicy: Disabled}",
        ),
        10,
    );
    for tick in 0..40 {
        let decision = run.tick(t(tick * 15), 1);
        assert_eq!(decision.desired, 10);
        assert_eq!(decision.limited_by, Some(Limit::ScaleDownLimit));
    }
    assert_eq!(run.tick(t(40 * 15), 20).desired, 20);
}

/// "Default Behavior": scale up by the larger of 100% and 4 pods per 15s, no scale-up window;
/// scale down by up to 100% per 15s after a 300s window.
#[test]
fn default_behavior() {
    let mut run = Run::new(policy(1, 100, ""), 1);
    let first = run.tick(t(0), 40);
    assert_eq!((first.desired, first.reason), (5, Reason::ScaleUpLimit));
    // Within the same 15s period nothing more is allowed.
    assert_eq!(run.tick(t(10), 40).desired, 5);
    assert_eq!(run.tick(t(15), 40).desired, 10); // 100% of 5 beats +4
    assert_eq!(run.tick(t(30), 40).desired, 20);
    assert_eq!(run.tick(t(45), 40).desired, 40);
    // Load drops to nothing: the last recommendation of 40 (made at 45s) holds for 300s...
    for tick in 4..23 {
        assert_eq!(run.tick(t(tick * 15), 1).desired, 40, "tick {tick}");
    }
    // ... then 100% per 15s allows going straight to the recommendation.
    let down = run.tick(t(23 * 15), 1);
    assert_eq!(down.desired, 1);
}

#[test]
fn max_replicas_bounds_a_scale_up() {
    let decision = decide(
        &policy(1, 6, ""),
        &total_rps(4, 2000.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(
        (decision.desired, decision.reason, decision.limited_by),
        (6, Reason::TooManyReplicas, Some(Limit::TooManyReplicas))
    );
}

#[test]
fn counts_outside_the_bounds_go_straight_to_them() {
    let policy = policy(3, 6, "");
    let above = decide(
        &policy,
        &total_rps(20, 100.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((above.desired, above.reason), (6, Reason::TooManyReplicas));
    let below = decide(
        &policy,
        &total_rps(1, 100.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((below.desired, below.reason), (3, Reason::TooFewReplicas));
    let off = decide(
        &policy,
        &total_rps(0, 1000.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((off.desired, off.reason), (0, Reason::ScalingDisabled));
}

#[test]
fn recommend_mode_flags_the_decision() {
    let mut policy = policy(1, 100, "");
    policy.spec.mode = Mode::Recommend;
    let decision = decide(
        &policy,
        &total_rps(2, 800.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(decision.desired, 6);
    assert!(decision.recommend_only);
    assert!(!decision.should_scale());
}

fn override_until(expires: i64) -> Override {
    Override {
        replicas: None,
        pause: false,
        pause_scale_in: false,
        pause_scale_out: false,
        expires_at: t(expires),
        reason: "load test".into(),
        by: "cli".into(),
    }
}

#[test]
fn overrides_pin_pause_and_expire() {
    let policy = policy(2, 10, NO_DOWN_WINDOW);
    let history = History::default();
    let up = total_rps(4, 800.0); // asks for 8
    let down = total_rps(4, 200.0); // asks for 2

    let pinned = Override {
        replicas: Some(7),
        ..override_until(60)
    };
    let d = decide(&policy, &down, &history, Some(&pinned), t(0));
    assert_eq!(
        (d.desired, d.reason, d.limited_by),
        (7, Reason::Override, None)
    );
    let too_many = Override {
        replicas: Some(50),
        ..override_until(60)
    };
    let d = decide(&policy, &down, &history, Some(&too_many), t(0));
    assert_eq!(
        (d.desired, d.limited_by),
        (10, Some(Limit::TooManyReplicas))
    );

    let paused = Override {
        pause: true,
        ..override_until(60)
    };
    let d = decide(&policy, &up, &history, Some(&paused), t(0));
    assert_eq!((d.desired, d.reason), (4, Reason::Paused));
    assert_eq!(
        d.recommendation,
        Some(8),
        "recommendations are still remembered"
    );

    let no_in = Override {
        pause_scale_in: true,
        ..override_until(60)
    };
    let d = decide(&policy, &down, &history, Some(&no_in), t(0));
    assert_eq!((d.desired, d.limited_by), (4, Some(Limit::ScaleInPaused)));
    let d = decide(&policy, &up, &history, Some(&no_in), t(0));
    assert_eq!(d.desired, 8);

    let no_out = Override {
        pause_scale_out: true,
        ..override_until(60)
    };
    let d = decide(&policy, &up, &history, Some(&no_out), t(0));
    assert_eq!((d.desired, d.limited_by), (4, Some(Limit::ScaleOutPaused)));

    // Expired: ignored, and flagged for removal.
    let d = decide(&policy, &up, &history, Some(&paused), t(60));
    assert_eq!(d.desired, 8);
    assert!(d.override_expired);
    let d = decide(&policy, &up, &history, Some(&paused), t(59));
    assert!(!d.override_expired);
}

#[test]
fn decisions_serialize_for_describe() {
    let decision = decide(
        &policy(1, 10, ""),
        &total_rps(2, 800.0),
        &History::default(),
        None,
        t(0),
    );
    let json = serde_json::to_value(&decision).unwrap();
    assert_eq!(json["desired"], 6);
    assert_eq!(json["reason"], "ScaleUpLimit");
    assert_eq!(json["limitedBy"], "ScaleUpLimit");
    assert_eq!(json["perMetric"][0]["result"]["recommended"]["replicas"], 8);
}
