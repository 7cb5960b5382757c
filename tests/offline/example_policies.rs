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

#[test]
fn service_on_business_hours_alone_reads_no_metric() {
    use swarmpilot::decide::{decide, History, Observation, Reason};
    let policy = example("business-hours.yaml");
    assert!(policy.spec.metrics.is_empty() && policy.spec.observe.is_empty());
    let schedule = &policy.spec.schedules[0];
    assert_eq!(
        (schedule.timezone.as_str(), schedule.desired_replicas),
        ("Europe/Paris", 10)
    );
    let at = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let at_ten = |now: &str| {
        decide(
            &policy,
            &Observation::new(10),
            &History::default(),
            None,
            at(now),
        )
    };
    // Monday 2026-11-30 09:00 CET is 08:00 UTC; in June Paris is at UTC+2 (summer time).
    for open in [
        "2026-11-30T08:00:00Z",
        "2026-11-30T16:59:59Z",
        "2026-06-01T07:00:00Z",
    ] {
        let d = at_ten(open);
        assert_eq!((d.desired, d.reason), (10, Reason::Scheduled), "{open}");
        assert!(
            d.message.contains("schedule business-hours"),
            "{}",
            d.message
        );
    }
    // Outside the window the count is minReplicas, reached as the behavior allows: the
    // stabilization window first holds the count, then two replicas a minute.
    let mut history = History::default();
    let mut current = 10;
    let mut seen = vec![current];
    let closes = at("2026-11-30T16:59:30Z");
    for step in 0..40 {
        let now = closes + chrono::Duration::seconds(30 * step);
        let d = decide(&policy, &Observation::new(current), &history, None, now);
        history = history.record(&policy.spec, &d, d.should_scale(), now);
        if d.should_scale() {
            current = d.desired;
            seen.push(current);
        }
    }
    assert_eq!(seen, [10, 8, 6, 4, 2]);
    // Saturday noon: the weekday window is closed.
    assert_eq!(at_ten("2026-11-28T11:00:00Z").schedule, None);
}
