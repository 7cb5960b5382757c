//! The label codec: policy, shorthand, override and state labels, and their diagnostics.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use swarmpilot::policy::labels::*;
use swarmpilot::policy::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn problems(result: Result<impl std::fmt::Debug, Diagnostics>) -> Vec<String> {
    result
        .expect_err("expected diagnostics")
        .iter()
        .map(|d| d.to_string())
        .collect()
}

const SPEC_ONLY: &str = "maxReplicas: 5\nmetrics:\n- name: cpu\n  docker: {resource: cpu}\n  target: {utilization: 60}\n";

#[test]
fn a_service_without_swarmpilot_labels_has_no_policy() {
    assert_eq!(decode("web", &labels(&[])), Ok(None));
    assert_eq!(
        decode("web", &labels(&[("com.docker.stack.namespace", "shop")])),
        Ok(None)
    );
}

#[test]
fn policy_label_may_hold_only_the_spec() {
    let policy = decode("shop_web", &labels(&[(POLICY, SPEC_ONLY)]))
        .unwrap()
        .unwrap();
    assert_eq!(policy.metadata.name, "shop_web");
    assert_eq!(policy.service(), "shop_web");
    assert_eq!(policy.spec.max_replicas, 5);
    assert_eq!(policy.spec.min_replicas, 1);
}

#[test]
fn policy_label_holding_a_whole_document_round_trips() {
    let policy = decode("shop_web", &labels(&[(POLICY, SPEC_ONLY)]))
        .unwrap()
        .unwrap();
    let encoded = encode(&policy);
    assert!(encoded.contains("utilization: 60"), "{encoded}");
    assert!(!encoded.contains('!'), "no YAML tags in labels: {encoded}");
    assert_eq!(
        decode("shop_web", &labels(&[(POLICY, &encoded)])),
        Ok(Some(policy))
    );
}

#[test]
fn cpu_shorthand_is_a_docker_utilization_policy() {
    let policy = decode("web", &labels(&[(CPU, "70"), (MAX, "10"), (MIN, "2")]))
        .unwrap()
        .unwrap();
    let expected = parse(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
         spec:\n  minReplicas: 2\n  maxReplicas: 10\n  metrics:\n  - name: cpu\n    docker: {resource: cpu}\n    target: {utilization: 70}\n",
    )
    .unwrap();
    assert_eq!(policy, expected);
}

#[test]
fn rps_and_memory_shorthand_build_two_metrics_with_min_default_1() {
    let policy = decode("api", &labels(&[(MEMORY, "80%"), (RPS, "50"), (MAX, "6")]))
        .unwrap()
        .unwrap();
    assert_eq!(policy.spec.min_replicas, 1);
    assert_eq!(policy.spec.max_replicas, 6);
    let memory = &policy.spec.metrics[0];
    assert_eq!(memory.name, "memory");
    assert_eq!(memory.target, Target::Utilization(80.0));
    let rps = &policy.spec.metrics[1];
    assert_eq!(rps.name, "rps");
    assert_eq!(rps.prometheus.as_ref().unwrap().query, RPS_QUERY);
    assert_eq!(rps.target, Target::AverageValue(50.0));
}

#[test]
fn malformed_shorthand_names_the_label() {
    assert_eq!(
        problems(decode("web", &labels(&[(CPU, "70"), (MAX, "ten")]))),
        vec![r#"label io.swarmpilot.max: must be a whole number, got "ten""#]
    );
    assert_eq!(
        problems(decode("web", &labels(&[(CPU, "seventy"), (MAX, "3")]))),
        vec![
            r#"label io.swarmpilot.cpu: must be a number greater than 0 (a percentage, e.g. 70), got "seventy""#
        ]
    );
    assert_eq!(
        problems(decode("web", &labels(&[(RPS, "0"), (MAX, "3")]))),
        vec![r#"label io.swarmpilot.rps: must be a number greater than 0, got "0""#]
    );
}

#[test]
fn shorthand_requires_max_and_a_metric() {
    assert_eq!(
        problems(decode("web", &labels(&[(CPU, "70")]))),
        vec!["label io.swarmpilot.max: is required with shorthand labels (the upper bound of the replica count)"]
    );
    let found = problems(decode("web", &labels(&[(MAX, "4")])));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("need at least one metric label"),
        "{found:?}"
    );
}

#[test]
fn shorthand_bounds_are_validated_against_each_other() {
    assert_eq!(
        problems(decode(
            "web",
            &labels(&[(CPU, "70"), (MIN, "8"), (MAX, "4")])
        )),
        vec!["label io.swarmpilot.min: must not exceed maxReplicas (4), got 8"]
    );
}

#[test]
fn policy_and_shorthand_together_is_a_diagnostic() {
    let found = problems(decode("web", &labels(&[(POLICY, SPEC_ONLY), (CPU, "50")])));
    assert_eq!(
        found,
        vec!["label io.swarmpilot.cpu: conflicts with label io.swarmpilot.policy; put the whole policy in io.swarmpilot.policy or use only shorthand labels"]
    );
}

#[test]
fn a_typo_in_a_swarmpilot_label_is_reported() {
    let found = problems(decode(
        "web",
        &labels(&[(CPU, "50"), (MAX, "3"), ("io.swarmpilot.mxa", "3")]),
    ));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("label io.swarmpilot.mxa: unknown swarmpilot label"),
        "{found:?}"
    );
}

#[test]
fn malformed_policy_label_names_the_label_and_the_field() {
    assert_eq!(
        problems(decode(
            "web",
            &labels(&[(POLICY, "maxReplicas: 0\nmetrics: []\n")])
        )),
        vec![
            "label io.swarmpilot.policy at spec.maxReplicas: must be at least 1, got 0",
            "label io.swarmpilot.policy at spec.metrics: must list at least one metric, or spec.schedules at least one schedule",
        ]
    );
    let deep = "[".repeat(5000);
    assert_eq!(
        problems(decode("web", &labels(&[(POLICY, &deep)]))),
        vec!["label io.swarmpilot.policy: nests '[' or '{' deeper than 32 levels (at line 1)"]
    );
    let found = problems(decode("web", &labels(&[(POLICY, "maxReplicas: [")])));
    assert!(
        found[0].starts_with("label io.swarmpilot.policy: invalid YAML"),
        "{found:?}"
    );
}

#[test]
fn policy_label_cannot_target_another_service() {
    let text = format!("service: other\n{SPEC_ONLY}");
    assert_eq!(
        problems(decode("web", &labels(&[(POLICY, &text)]))),
        vec![
            r#"label io.swarmpilot.policy at spec.service: targets service "other" but is on service "web"; a policy label governs the service it is on"#
        ]
    );
}

#[test]
fn override_and_state_round_trip_and_malformed_ones_name_the_label() {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let pinned = Override {
        replicas: Some(8),
        pause: false,
        pause_scale_in: false,
        pause_scale_out: false,
        expires_at: at,
        reason: "launch".into(),
        by: "cli".into(),
    };
    let found = decode_override(&labels(&[(OVERRIDE, &encode_override(&pinned))]));
    assert_eq!(found, Ok(Some(pinned)));
    assert_eq!(decode_override(&labels(&[])), Ok(None));

    let state = ScaleState {
        events: vec![ScaleEvent { at, from: 2, to: 4 }],
        recommendations: vec![(at, 4)],
        ..ScaleState::default()
    };
    assert_eq!(
        decode_state(&labels(&[(STATE, &encode_state(&state))])),
        Ok(Some(state))
    );

    let found = problems(decode_override(&labels(&[(
        OVERRIDE,
        r#"{"replicas": "eight", "expiresAt": "2026-01-01T00:00:00Z"}"#,
    )])));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("label io.swarmpilot.override at replicas: is not valid: invalid type: string \"eight\""),
        "{found:?}"
    );
    let found = problems(decode_state(&labels(&[(STATE, "{not json")])));
    assert!(
        found[0].starts_with("label io.swarmpilot.state: is not valid"),
        "{found:?}"
    );
}
