//! The conditions of decisions made by `decide` itself, with HPA's reason names.

use super::*;
use crate::decide::tests::{policy, t, total_rps, Run};
use crate::decide::{decide, History, MetricSample, Observation};
use crate::policy::{DockerSource, Resource};

fn of(
    spec: &PolicySpec,
    decision: &Decision,
    actuation: Actuation,
) -> Vec<(ConditionType, ConditionStatus, ConditionReason)> {
    let inputs = ConditionInputs {
        spec,
        decision,
        actuation: &actuation,
        forecast: None,
        traffic: None,
        rollout: None,
    };
    conditions(&inputs, &[], t(0))
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason))
        .collect()
}

fn find(
    found: &[(ConditionType, ConditionStatus, ConditionReason)],
    type_: ConditionType,
) -> (ConditionStatus, ConditionReason) {
    let (_, status, reason) = found
        .iter()
        .find(|(t, _, _)| *t == type_)
        .unwrap_or_else(|| panic!("no {type_:?} in {found:?}"));
    (*status, *reason)
}

#[test]
fn limited_at_the_maximum_and_the_minimum_and_within_range() {
    use ConditionReason::*;
    use ConditionStatus::*;
    use ConditionType::*;
    let at_max = policy(1, 4, "");
    let decision = decide(
        &at_max,
        &total_rps(4, 900.0),
        &History::default(),
        None,
        t(0),
    );
    let found = of(&at_max.spec, &decision, Actuation::Standby);
    assert_eq!(find(&found, AbleToScale), (False, Standby));
    let found = of(&at_max.spec, &decision, Actuation::Unchanged);
    assert_eq!(find(&found, ScalingLimited), (True, TooManyReplicas));
    assert_eq!(find(&found, ScalingActive), (True, ValidMetricFound));
    assert_eq!(find(&found, AbleToScale), (True, ReadyForNewScale));
    assert_eq!(find(&found, MetricsAvailable), (True, AllMetricsRead));

    let at_min = policy(3, 10, "scaleDown: {stabilizationWindow: 0s}");
    let decision = decide(
        &at_min,
        &total_rps(4, 10.0),
        &History::default(),
        None,
        t(0),
    );
    let found = of(&at_min.spec, &decision, Actuation::Scaled);
    assert_eq!(find(&found, ScalingLimited), (True, TooFewReplicas));
    assert_eq!(find(&found, AbleToScale), (True, SucceededRescale));

    let free = policy(1, 10, "");
    let decision = decide(&free, &total_rps(4, 600.0), &History::default(), None, t(0));
    let found = of(&free.spec, &decision, Actuation::Scaled);
    assert_eq!(find(&found, ScalingLimited), (False, DesiredWithinRange));
    // Only the conditions that apply: no forecast, no classifier in this policy (the four of
    // every policy, and whether a rollout is in progress).
    assert_eq!(found.len(), 5);
}

#[test]
fn stabilization_in_either_direction() {
    use ConditionReason::*;
    let mut down = Run::new(policy(1, 100, ""), 10);
    down.tick(t(0), 10);
    let decision = down.tick(t(15), 4);
    let found = of(&down.policy.spec, &decision, Actuation::Unchanged);
    assert_eq!(
        find(&found, ConditionType::AbleToScale),
        (ConditionStatus::True, ScaleDownStabilized)
    );

    let mut up = Run::new(policy(1, 100, "scaleUp: {stabilizationWindow: 30s}"), 2);
    up.tick(t(0), 2);
    let decision = up.tick(t(15), 8);
    let found = of(&up.policy.spec, &decision, Actuation::Unchanged);
    assert_eq!(
        find(&found, ConditionType::AbleToScale),
        (ConditionStatus::True, ScaleUpStabilized)
    );
}

#[test]
fn a_failed_write_and_failed_metrics() {
    use ConditionReason::*;
    use ConditionStatus::*;
    use ConditionType::*;
    let mut docker = policy(1, 10, "");
    docker.spec.metrics[0].prometheus = None;
    docker.spec.metrics[0].docker = Some(DockerSource {
        resource: Resource::Cpu,
    });
    let mut observation = Observation::new(3);
    observation
        .metrics
        .insert("rps".into(), MetricSample::failed("Docker engine error"));
    let decision = decide(&docker, &observation, &History::default(), None, t(0));
    let found = of(
        &docker.spec,
        &decision,
        Actuation::Failed("engine down".into()),
    );
    assert_eq!(
        find(&found, ScalingActive),
        (False, FailedGetResourceMetric)
    );
    assert_eq!(find(&found, MetricsAvailable), (False, NoMetricsRead));
    assert_eq!(find(&found, AbleToScale), (False, FailedUpdateScale));

    let prometheus = policy(1, 10, "");
    let decision = decide(&prometheus, &observation, &History::default(), None, t(0));
    let found = of(&prometheus.spec, &decision, Actuation::Unchanged);
    assert_eq!(
        find(&found, ScalingActive),
        (False, FailedGetExternalMetric)
    );
}

#[test]
fn scaling_disabled_at_zero_replicas() {
    let spec = policy(1, 10, "");
    let decision = decide(&spec, &total_rps(0, 100.0), &History::default(), None, t(0));
    let found = of(&spec.spec, &decision, Actuation::Unchanged);
    assert_eq!(
        find(&found, ConditionType::ScalingActive),
        (ConditionStatus::False, ConditionReason::ScalingDisabled)
    );
}

#[test]
fn the_transition_time_moves_only_with_the_status() {
    let spec = policy(1, 4, "");
    let at_max = decide(&spec, &total_rps(4, 900.0), &History::default(), None, t(0));
    let within = decide(&spec, &total_rps(3, 300.0), &History::default(), None, t(0));
    let inputs = |decision| ConditionInputs {
        spec: &spec.spec,
        decision,
        actuation: &Actuation::Unchanged,
        forecast: None,
        traffic: None,
        rollout: None,
    };
    let first = conditions(&inputs(&at_max), &[], t(0));
    let second = conditions(&inputs(&at_max), &first, t(60));
    let limited = |found: &[Condition]| {
        found
            .iter()
            .find(|c| c.type_ == ConditionType::ScalingLimited)
            .cloned()
            .unwrap()
    };
    assert_eq!(limited(&second).last_transition_time, t(0));
    let third = conditions(&inputs(&within), &second, t(120));
    assert_eq!(limited(&third).status, ConditionStatus::False);
    assert_eq!(limited(&third).last_transition_time, t(120));
}

#[test]
fn forecast_and_traffic_conditions_where_the_policy_has_them() {
    let mut spec = policy(1, 10, "");
    spec.spec.forecast =
        Some(serde_yaml::from_str("{model: traffic-forecast, metric: rps, horizon: 60s}").unwrap());
    spec.spec.anomaly = Some(serde_yaml::from_str("{model: traffic-states}").unwrap());
    let decision = decide(&spec, &total_rps(3, 300.0), &History::default(), None, t(0));
    let ignored = ForecastVerdict::Ignored {
        best: crate::decide::signals::Member::Model,
        member_error: 2.0,
        naive_error: 1.0,
    };
    let inputs = ConditionInputs {
        spec: &spec.spec,
        decision: &decision,
        actuation: &Actuation::Unchanged,
        forecast: Some(&ignored),
        traffic: Some(TrafficState::Flood),
        rollout: None,
    };
    let found: Vec<_> = conditions(&inputs, &[], t(0))
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason))
        .collect();
    assert_eq!(
        find(&found, ConditionType::ForecastTrusted),
        (ConditionStatus::False, ConditionReason::ForecastIgnored)
    );
    assert_eq!(
        find(&found, ConditionType::TrafficState),
        (ConditionStatus::True, ConditionReason::Flood)
    );
}

#[test]
fn a_rollout_makes_the_service_unable_to_scale_and_says_so() {
    use ConditionReason::*;
    use ConditionStatus::*;
    let spec = policy(1, 10, "");
    let mut rolling = total_rps(3, 900.0);
    rolling.rollout = Some(Rollout::Updating);
    let decision = decide(&spec, &rolling, &History::default(), None, t(0));
    let inputs = ConditionInputs {
        spec: &spec.spec,
        decision: &decision,
        actuation: &Actuation::Unchanged,
        forecast: None,
        traffic: None,
        rollout: rolling.rollout,
    };
    let found: Vec<_> = conditions(&inputs, &[], t(0))
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason))
        .collect();
    assert_eq!(
        find(&found, ConditionType::AbleToScale),
        (False, ConditionReason::RolloutInProgress)
    );
    assert_eq!(
        find(&found, ConditionType::RolloutInProgress),
        (True, ConditionReason::RolloutInProgress)
    );

    let done = decide(&spec, &total_rps(3, 900.0), &History::default(), None, t(0));
    let found = of(&spec.spec, &done, Actuation::Scaled);
    assert_eq!(
        find(&found, ConditionType::RolloutInProgress),
        (False, NoRollout)
    );
    assert_eq!(
        find(&found, ConditionType::AbleToScale),
        (True, SucceededRescale)
    );
}
