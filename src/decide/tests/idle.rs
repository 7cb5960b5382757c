//! Scale to zero with KEDA's names: `minReplicaCount: 0`, `idleReplicaCount`, `cooldownPeriod`
//! and the per-trigger `activationTargetValue`, through `decide`.
//!
//! KEDA's documented behavior ("Scaling Deployments": `cooldownPeriod`, activation phase):
//!
//! | KEDA says                                                                    | test |
//! |------------------------------------------------------------------------------|------|
//! | "the period to wait after the last trigger reported active before scaling the resource back to 0" | `cooldown_runs_from_the_last_active_reading` |
//! | activation: "defines when the scaler is active or not and scales from/to 0 based on it" | `activation_wakes_at_once_from_zero` |
//! | "if a trigger is active, the target is scaled to at least minReplicaCount" (`max(1, min)`) | `activation_scales_to_at_least_min` |
//! | "when you first create your Deployment, KEDA will immediately scale it to minReplicaCount" | `never_active_goes_idle_at_once` |
//! | `idleReplicaCount`: "the replica count when there is no activity, below minReplicaCount" | `idle_replicas_below_min` |
//! | HPA: a failed metric never allows a scale-down (here: never lets the service go idle) | `a_failed_metric_never_lets_it_go_idle` |

use super::*;
use crate::decide::Reason;
use crate::policy::{Fallback, FallbackSpec};

/// A queue-like policy: `rps` per replica 100, activation 5, cooldown 60s, min 0.
fn zero_policy(min: u32, idle: Option<u32>) -> ScalingPolicy {
    let mut policy = policy(min, 10, "");
    policy.spec.idle_replicas = idle;
    policy.spec.cooldown_period = Some(HumanDuration::from_secs(60));
    policy.spec.metrics[0].activation = Some(5.0);
    policy
}

#[test]
fn activation_wakes_at_once_from_zero() {
    let policy = zero_policy(0, None);
    // At or below activation: stays idle, whatever HPA's arithmetic would say.
    let quiet = decide(&policy, &total_rps(0, 5.0), &History::default(), None, t(0));
    assert_eq!((quiet.desired, quiet.reason), (0, Reason::Idle));
    // Above: HPA's scale-from-zero count (350 / 100 -> 4), at least 1.
    let woken = decide(
        &policy,
        &total_rps(0, 350.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((woken.desired, woken.reason), (4, Reason::Activated));
    assert_eq!(woken.last_active, Some(t(0)));
    let small = decide(&policy, &total_rps(0, 6.0), &History::default(), None, t(0));
    assert_eq!((small.desired, small.reason), (1, Reason::Activated));
}

#[test]
fn activation_scales_to_at_least_min() {
    let policy = zero_policy(3, Some(0));
    let woken = decide(&policy, &total_rps(0, 6.0), &History::default(), None, t(0));
    assert_eq!((woken.desired, woken.reason), (3, Reason::Activated));
}

#[test]
fn cooldown_runs_from_the_last_active_reading() {
    let mut run = Run::new(zero_policy(0, None), 0);
    assert_eq!(run.tick_with(t(0), &total_rps(0, 200.0), None).desired, 2);
    assert_eq!(run.current, 2);
    // Active until t(30); quiet from t(45). Cooldown 60s: idle at t(90), not before.
    run.tick_with(t(15), &total_rps(2, 200.0), None);
    run.tick_with(t(30), &total_rps(2, 150.0), None);
    let table = [
        (45, 2, false),
        (60, 2, false),
        (75, 2, false),
        (90, 0, true),
    ];
    for (at, replicas, idle) in table {
        let decision = run.tick_with(t(at), &total_rps(run.current, 0.0), None);
        assert_eq!(run.current, replicas, "t={at}: {}", decision.message);
        assert_eq!(decision.reason == Reason::Idle, idle, "t={at}");
    }
    assert_eq!(run.history.last_active, Some(t(30)));
}

#[test]
fn the_cooldown_survives_a_restart() {
    let mut run = Run::new(zero_policy(0, None), 0);
    run.tick_with(t(0), &total_rps(0, 200.0), None);
    run.tick_with(t(15), &total_rps(2, 0.0), None);
    // A new operator reads the history back from the label.
    let label = crate::policy::labels::encode_state(&run.history);
    let restored: History = serde_json::from_str(&label).unwrap();
    assert_eq!(restored.last_active, Some(t(0)));
    let early = decide(&run.policy, &total_rps(2, 0.0), &restored, None, t(45));
    assert_ne!(early.reason, Reason::Idle);
    let late = decide(&run.policy, &total_rps(2, 0.0), &restored, None, t(60));
    assert_eq!((late.desired, late.reason), (0, Reason::Idle));
}

#[test]
fn never_active_goes_idle_at_once() {
    let policy = zero_policy(0, None);
    let decision = decide(&policy, &total_rps(3, 0.0), &History::default(), None, t(0));
    assert_eq!((decision.desired, decision.reason), (0, Reason::Idle));
}

#[test]
fn idle_replicas_below_min() {
    let policy = zero_policy(2, Some(1));
    let mut run = Run::new(policy, 3);
    // Active: HPA's rules with minReplicas 2 as the floor.
    let low = run.tick_with(t(0), &total_rps(3, 10.0), None);
    assert_eq!(low.last_active, Some(t(0)));
    let quiet = run.tick_with(t(60), &total_rps(run.current, 0.0), None);
    assert_eq!((quiet.desired, quiet.reason), (1, Reason::Idle));
}

#[test]
fn a_failed_metric_never_lets_it_go_idle() {
    let policy = zero_policy(0, None);
    let history = History {
        last_active: Some(t(-3600)),
        ..History::default()
    };
    let decision = decide(&policy, &failed_rps(2), &history, None, t(0));
    assert_eq!(
        (decision.desired, decision.reason),
        (2, Reason::MetricsIncomplete)
    );
}

/// Fallback and an idle service: `hold` (the default) never wakes it, since a blind operator
/// has no reason to; a fallback with a count is what the policy asked for when blind, and wins.
#[test]
fn fallback_wakes_an_idle_service_only_with_a_count() {
    let mut policy = zero_policy(0, None);
    let held = decide(&policy, &failed_rps(0), &History::default(), None, t(0));
    assert_eq!((held.desired, held.reason), (0, Reason::Idle));
    policy.spec.fallback = FallbackSpec {
        action: Fallback::Replicas(2),
        failure_threshold: Some(1),
    };
    let woken = decide(&policy, &failed_rps(0), &History::default(), None, t(0));
    assert_eq!((woken.desired, woken.reason), (2, Reason::Fallback));
}

/// Overrides have the last word, as everywhere: a pin wins over idling and activation (and may
/// name the idle count), a pause holds an idle service idle, `pauseScaleIn` keeps it from going
/// idle and `pauseScaleOut` from being activated.
#[test]
fn overrides_win_over_idle_and_activation() {
    let policy = zero_policy(0, None);
    let until = |o: Override| Override {
        expires_at: t(3600),
        ..o
    };
    let base = Override {
        replicas: None,
        pause: false,
        pause_scale_in: false,
        pause_scale_out: false,
        expires_at: t(0),
        reason: String::new(),
        by: "cli".into(),
    };
    let cases = [
        // (override, current, total rps, desired, reason)
        (
            Override {
                replicas: Some(3),
                ..base.clone()
            },
            0,
            0.0,
            3,
            Reason::Override,
        ),
        (
            Override {
                replicas: Some(0),
                ..base.clone()
            },
            2,
            500.0,
            0,
            Reason::Override,
        ),
        (
            Override {
                pause: true,
                ..base.clone()
            },
            0,
            500.0,
            0,
            Reason::Paused,
        ),
        (
            Override {
                pause_scale_in: true,
                ..base.clone()
            },
            2,
            0.0,
            2,
            Reason::Paused,
        ),
        (
            Override {
                pause_scale_out: true,
                ..base.clone()
            },
            0,
            500.0,
            0,
            Reason::Paused,
        ),
    ];
    for (o, current, rps, desired, reason) in cases {
        let o = until(o);
        let decision = decide(
            &policy,
            &total_rps(current, rps),
            &History::default(),
            Some(&o),
            t(0),
        );
        assert_eq!(
            (decision.desired, decision.reason),
            (desired, reason),
            "{o:?}"
        );
    }
}

/// Between activation and idle, HPA's rules apply with `max(1, minReplicas)` as the floor: a
/// quiet metric within the cooldown scales in no further than 1.
#[test]
fn hpa_rules_between_with_one_as_the_floor() {
    let mut policy = zero_policy(0, None);
    policy.spec.behavior = serde_yaml::from_str("scaleDown: {stabilizationWindow: 0s}").unwrap();
    let history = History {
        last_active: Some(t(-10)),
        ..History::default()
    };
    let decision = decide(&policy, &total_rps(4, 0.0), &history, None, t(0));
    assert_eq!(
        (decision.desired, decision.reason),
        (1, Reason::TooFewReplicas)
    );
}
