//! The ready policies in `examples/policies/`: each parses and validates, and says what its
//! comment promises.

use swarmpilot::policy::{
    parse, ForecastUse, RatePolicyKind, ScalingPolicy, StateAction, Target, TrafficState,
};

fn example(name: &str) -> ScalingPolicy {
    let path = format!("{}/examples/policies/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    parse(&text).unwrap_or_else(|d| panic!("{path}: {d}"))
}

#[test]
fn every_example_policy_is_valid() {
    let dir = format!("{}/examples/policies", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        example(&name);
    }
}

#[test]
fn web_service_on_request_rate() {
    let policy = example("web-rps.yaml");
    assert_eq!(policy.spec.metrics.len(), 1);
    assert_eq!(policy.spec.metrics[0].target, Target::AverageValue(50.0));
    assert!(policy.spec.metrics[0].prometheus.is_some());
    assert!(policy.spec.forecast.is_none() && policy.spec.anomaly.is_none());
}

#[test]
fn worker_on_cpu_scales_down_gently() {
    let policy = example("worker-cpu.yaml");
    assert_eq!(policy.spec.metrics[0].target, Target::Utilization(70.0));
    assert!(policy.spec.metrics[0].docker.is_some());
    let down = policy.spec.behavior.scale_down();
    assert_eq!(down.stabilization_window.as_secs_f64(), 600.0);
    assert_eq!(down.policies[0].kind, RatePolicyKind::Replicas);
    assert_eq!(down.policies[0].value, 1);
}

#[test]
fn predictive_web_service_forecasts_its_load_metric_for_scale_up_only() {
    let policy = example("web-predictive.yaml");
    let forecast = policy.spec.forecast.as_ref().unwrap();
    assert_eq!(forecast.metric, policy.spec.metrics[0].name);
    assert_eq!(forecast.use_for, ForecastUse::ScaleUp);
    assert_eq!(forecast.model, "traffic-forecast");
}

#[test]
fn flood_aware_web_service_holds_in_a_flood() {
    let policy = example("web-flood-aware.yaml");
    let anomaly = policy.spec.anomaly.as_ref().unwrap();
    assert_eq!(
        anomaly.on_state.get(&TrafficState::Flood),
        Some(&StateAction::Hold)
    );
    assert_eq!(
        anomaly.on_state.get(&TrafficState::FlashCrowd),
        Some(&StateAction::Scale)
    );
    let inputs = &anomaly.inputs;
    let named = [
        &inputs.requests,
        &inputs.errors,
        &inputs.latency,
        &inputs.receive_bytes,
        &inputs.transmit_bytes,
    ];
    // Every role is fed, and by a metric the policy reads.
    let known: Vec<&str> = policy
        .spec
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .chain(policy.spec.observe.iter().map(|m| m.name.as_str()))
        .collect();
    for role in named {
        let name = role.as_deref().unwrap();
        assert!(known.contains(&name), "{name} in {known:?}");
    }
}

#[test]
fn queue_worker_scales_to_zero() {
    let policy = example("worker-scale-to-zero.yaml");
    assert_eq!(policy.spec.min_replicas, 0);
    assert_eq!(policy.spec.idle_replicas(), Some(0));
    assert_eq!(policy.spec.cooldown().as_secs_f64(), 300.0);
    assert_eq!(policy.spec.metrics[0].activation(), 0.0);
    assert_eq!(policy.spec.fallback.failure_threshold(), 3);
}

#[test]
fn web_service_with_a_business_hours_floor_in_a_named_zone() {
    use swarmpilot::decide::{decide, History, MetricSample, Observation, Reason};
    let policy = example("web-business-hours.yaml");
    let schedule = &policy.spec.schedules[0];
    assert_eq!(schedule.timezone, "Europe/Berlin");
    assert_eq!(schedule.desired_replicas, 6);
    let quiet = |current: u32| {
        let mut observation = Observation::new(current);
        observation
            .metrics
            .insert("rps".into(), MetricSample::value(10.0));
        observation
    };
    let at = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    // Monday 2026-11-30 08:00 CET is 07:00 UTC: the floor lifts 2 replicas to 6.
    let open = decide(
        &policy,
        &quiet(2),
        &History::default(),
        None,
        at("2026-11-30T07:00:00Z"),
    );
    assert_eq!((open.desired, open.reason), (6, Reason::Scheduled));
    // A minute earlier, and on Saturday, the metrics alone decide.
    for closed in ["2026-11-30T06:59:00Z", "2026-11-28T10:00:00Z"] {
        let d = decide(&policy, &quiet(2), &History::default(), None, at(closed));
        assert_eq!((d.desired, d.schedule), (2, None), "{closed}");
    }
}
