//! `fallback.failureThreshold`, KEDA's name and default (3): "the number of consecutive times
//! each scaler has failed to get metrics from its source before the fallback is applied".
//!
//! | reads of every metric (x failed)  | fallback `{replicas: 6}` applies |
//! |-----------------------------------|----------------------------------|
//! | x x                               | no: the count is kept            |
//! | x x . x x                         | no: a good read resets the count |
//! | x x x                             | yes                              |
//! | one metric x x x, another reads   | no: HPA's rules with the other   |

use super::*;
use crate::decide::Reason;

fn with_fallback(threshold: Option<u32>) -> ScalingPolicy {
    let mut policy = policy(1, 10, "");
    policy.spec.fallback = FallbackSpec {
        action: Fallback::Replicas(6),
        failure_threshold: threshold,
    };
    policy
}

#[test]
fn three_failed_reads_in_a_row_by_default() {
    let mut run = Run::new(with_fallback(None), 2);
    // (t, failed?, replicas after, reason)
    let table = [
        (0, true, 2, Reason::MetricsIncomplete),
        (15, true, 2, Reason::MetricsIncomplete),
        (30, false, 2, Reason::WithinTolerance),
        (45, true, 2, Reason::MetricsIncomplete),
        (60, true, 2, Reason::MetricsIncomplete),
        (75, true, 6, Reason::Fallback),
        (90, true, 6, Reason::Fallback),
    ];
    for (at, fails, replicas, reason) in table {
        let observation = if fails {
            failed_rps(run.current)
        } else {
            total_rps(run.current, f64::from(run.current) * 100.0)
        };
        let decision = run.tick_with(t(at), &observation, None);
        assert_eq!(
            (run.current, decision.reason),
            (replicas, reason),
            "t={at}: {}",
            decision.message
        );
    }
    // The streak is capped at the threshold, so a long outage does not grow the label.
    assert_eq!(
        run.history.failed_reads.get("rps").map(|f| f.count),
        Some(3)
    );
}

/// The operator's own label write wakes the loop at once: that extra read is not counted.
#[test]
fn a_read_sooner_than_half_an_interval_is_the_same_read() {
    let mut run = Run::new(with_fallback(None), 2);
    for at in [0, 1, 2, 15, 16, 30] {
        run.tick_with(t(at), &failed_rps(2), None);
    }
    assert_eq!(run.current, 6, "counted at 0, 15 and 30 only");
    let mut run = Run::new(with_fallback(None), 2);
    for at in [0, 1, 2, 15, 16] {
        run.tick_with(t(at), &failed_rps(2), None);
    }
    assert_eq!(run.current, 2, "two counted reads");
}

#[test]
fn the_count_survives_a_restart() {
    let mut run = Run::new(with_fallback(Some(2)), 2);
    run.tick_with(t(0), &failed_rps(2), None);
    let label = crate::policy::labels::encode_state(&run.history);
    let restored: History = serde_json::from_str(&label).unwrap();
    let decision = decide(&run.policy, &failed_rps(2), &restored, None, t(15));
    assert_eq!((decision.desired, decision.reason), (6, Reason::Fallback));
}

/// HPA's rule stays: a failed metric, counted or not, never allows a scale-down.
#[test]
fn below_the_threshold_a_failed_metric_still_blocks_scale_down() {
    let mut policy = with_fallback(None);
    policy.spec.metrics.push(MetricSpec {
        name: "cpu".into(),
        ..policy.spec.metrics[0].clone()
    });
    let mut observation = total_rps(4, 100.0);
    observation
        .metrics
        .insert("cpu".into(), MetricSample::failed("timeout"));
    let decision = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(
        (decision.desired, decision.reason),
        (4, Reason::MetricsIncomplete)
    );
}
