//! `replay` with the shipped ONNX models on synthetic traces: the classifier's flood state
//! holds the flood-aware policy, the baseline scales into the flood.

use chrono::{DateTime, Duration};
use swarmpilot::policy::parse;
use swarmpilot::replay::synthetic::{generate, Kind, Synthetic};
use swarmpilot::replay::{compare, ModelSignals, Options};

#[test]
fn a_flood_hold_policy_stops_scaling_once_the_flood_persisted() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/web-flood-aware.yaml"
    ))
    .unwrap();
    let policy = parse(&text).unwrap();
    let trace = generate(&Synthetic {
        kind: Kind::Flood,
        seed: 1,
        base_rps: 100.0,
        hours: 3.0,
        start: DateTime::from_timestamp(1_714_521_600, 0).unwrap(),
    });
    let options = Options {
        metric: Some("requests".to_owned()),
        scale: 1.0,
        capacity_per_replica: 60.0,
        startup: Duration::seconds(30),
        initial_replicas: None,
    };
    let result = compare(&policy, &trace, &options, &ModelSignals).unwrap();
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
