//! `replay` with the shipped ONNX models on synthetic traces: the classifier's flood state
//! holds the flood-aware policy, the baseline scales into the flood; the forecaster's policy
//! scales ahead of flash crowds and is never worse than the HPA baseline.

use chrono::{DateTime, Duration};
use swarmpilot::policy::parse;
use swarmpilot::replay::synthetic::{generate, Kind, Synthetic};
use swarmpilot::replay::{compare, Comparison, ModelSignals, Options};

/// Replays the example policy `file` and its HPA baseline, with the shipped models, on a
/// 3-hour synthetic trace.
fn replay_example(
    file: &str,
    kind: Kind,
    seed: u64,
    base_rps: f64,
    capacity_per_replica: f64,
) -> Comparison {
    let path = format!("{}/examples/policies/{file}", env!("CARGO_MANIFEST_DIR"));
    let policy = parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let trace = generate(&Synthetic {
        kind,
        seed,
        base_rps,
        hours: 3.0,
        start: DateTime::from_timestamp(1_714_521_600, 0).unwrap(),
        peak: None,
    });
    let options = Options {
        metric: Some("requests".to_owned()),
        scale: 1.0,
        metric_window: None,
        capacity_per_replica,
        startup: Duration::seconds(30),
        initial_replicas: None,
    };
    compare(&policy, &trace, &options, &ModelSignals).unwrap()
}

#[test]
fn a_flood_hold_policy_stops_scaling_once_the_flood_persisted() {
    let result = replay_example("web-flood-aware.yaml", Kind::Flood, 1, 100.0, 60.0);
    let flood_ups = |s: &swarmpilot::replay::Summary| s.scale_ups_by_label.get("flood").copied();
    let (p, b) = (&result.policy.summary, &result.baseline.summary);
    // The policy makes no scale-up during the flood at all; the baseline scales into it.
    assert_eq!(flood_ups(p).unwrap_or(0), 0, "{p:?}");
    assert!(flood_ups(b).unwrap_or(0) > 0, "{b:?}");
    assert!(p.max_replicas < b.max_replicas, "{p:?} vs {b:?}");

    // Once the classifier has said flood for longer than `for:`, no tick scales up while it persists.
    let ticks = &result.policy.ticks;
    let mut since = None;
    for tick in ticks {
        match tick.state {
            Some(swarmpilot::policy::TrafficState::Flood) => {
                let start = *since.get_or_insert(tick.at);
                if tick.at - start >= Duration::seconds(30) {
                    assert!(tick.desired() <= tick.current, "scaled up at {}", tick.at);
                }
            }
            _ => since = None,
        }
    }
    assert!(
        ticks
            .iter()
            .any(|t| t.state == Some(swarmpilot::policy::TrafficState::Flood)),
        "the classifier never saw the flood"
    );
}

/// Scaling ahead costs replica-time: a flash crowd met 30 to 60 s early holds the added
/// replicas that much longer, about 3% of a 3-hour trace with three crowds. Within the issue's
/// budget of 5% more replica-hours; the under-provisioned time must never be worse.
#[test]
fn the_predictive_example_is_never_worse_than_hpa_and_ahead_of_flash_crowds() {
    let cases = [
        (Kind::FlashCrowd, 1, 100.0),
        (Kind::FlashCrowd, 2, 300.0),
        (Kind::Flood, 1, 100.0),
    ];
    let runs: Vec<_> =
        cases
            .iter()
            .map(|&(kind, seed, base_rps)| {
                let result = replay_example("web-predictive.yaml", kind, seed, base_rps, 50.0);
                let (p, b) = (result.policy.summary, result.baseline.summary);
                let case =
                    format!(
                "{kind:?} seed {seed} at {base_rps} rps: under-provisioned {} s vs HPA {} s, \
                 {:.3} vs {:.3} replica-hours",
                p.under_provisioned_secs, b.under_provisioned_secs, p.replica_hours, b.replica_hours
            );
                println!("{case}");
                (kind, p, b, case)
            })
            .collect();
    for (kind, p, b, case) in runs {
        assert!(
            p.under_provisioned_secs <= 1.02 * b.under_provisioned_secs,
            "{case}"
        );
        assert!(p.replica_hours <= 1.05 * b.replica_hours, "{case}");
        // A flash crowd rises over a minute: the forecast sees the rise and scales ahead of it.
        if kind == Kind::FlashCrowd {
            assert!(
                p.under_provisioned_secs < b.under_provisioned_secs,
                "{case}"
            );
        }
    }
}
