//! Forecasts and traffic states as `decide` inputs (the decision side of issue 6).

use std::collections::BTreeMap;

use super::*;
use crate::decide::{Limit, ObservedState, Reason};
use crate::policy::{
    AnomalyInputs, AnomalySpec, ForecastSpec, ForecastUse, StateAction, TrafficState,
};

fn with_forecast(use_for: ForecastUse) -> ScalingPolicy {
    let mut policy = policy(1, 20, "scaleDown: {stabilizationWindow: 0s}");
    policy.spec.forecast = Some(ForecastSpec {
        model: "traffic-forecast".into(),
        metric: "rps".into(),
        horizon: HumanDuration::from_secs(60),
        use_for,
    });
    policy
}

fn forecasting(current: u32, total: f64, forecast: f64) -> Observation {
    let mut observation = total_rps(current, total);
    observation.forecast = Some(forecast);
    observation
}

#[test]
fn a_forecast_raises_the_count_ahead_of_the_load() {
    let policy = with_forecast(ForecastUse::ScaleUp);
    let decision = decide(
        &policy,
        &forecasting(4, 400.0, 700.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((decision.forecast, decision.desired), (Some(7), 7));
}

#[test]
fn a_scale_up_forecast_never_scales_in() {
    let policy = with_forecast(ForecastUse::ScaleUp);
    let decision = decide(
        &policy,
        &forecasting(6, 600.0, 100.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(decision.forecast, Some(1));
    assert_eq!(
        (decision.desired, decision.reason),
        (6, Reason::WithinTolerance)
    );
}

#[test]
fn a_forecast_used_both_ways_may_scale_in() {
    let policy = with_forecast(ForecastUse::Both);
    let decision = decide(
        &policy,
        &forecasting(6, 600.0, 200.0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(decision.desired, 2);
}

fn with_states(for_secs: u64, actions: &[(TrafficState, StateAction)]) -> ScalingPolicy {
    let mut policy = policy(2, 20, "scaleDown: {stabilizationWindow: 0s}");
    policy.spec.anomaly = Some(AnomalySpec {
        model: "traffic-states".into(),
        inputs: AnomalyInputs::default(),
        for_duration: HumanDuration::from_secs(for_secs),
        on_state: actions.iter().copied().collect::<BTreeMap<_, _>>(),
        notify: vec![],
    });
    policy
}

fn in_state(current: u32, total: f64, state: TrafficState, since: i64) -> Observation {
    let mut observation = total_rps(current, total);
    observation.traffic = Some(ObservedState {
        state,
        since: t(since),
    });
    observation
}

#[test]
fn a_state_acts_only_after_persisting_for_its_duration() {
    let policy = with_states(30, &[(TrafficState::Flood, StateAction::Hold)]);
    let flood = |since| in_state(4, 1200.0, TrafficState::Flood, since);
    let early = decide(&policy, &flood(-29), &History::default(), None, t(0));
    assert_eq!((early.desired, early.traffic_state), (8, None));
    let held = decide(&policy, &flood(-30), &History::default(), None, t(0));
    assert_eq!((held.desired, held.reason), (4, Reason::TrafficState));
    assert_eq!(held.traffic_state, Some(TrafficState::Flood));
    assert_eq!(
        held.recommendation,
        Some(12),
        "the metrics' view is still remembered"
    );
}

#[test]
fn no_scale_down_and_cap_actions() {
    let policy = with_states(
        0,
        &[
            (TrafficState::Degraded, StateAction::NoScaleDown),
            (TrafficState::FlashCrowd, StateAction::Cap(6)),
        ],
    );
    let degraded = decide(
        &policy,
        &in_state(8, 200.0, TrafficState::Degraded, 0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(
        (degraded.desired, degraded.limited_by),
        (8, Some(Limit::NoScaleDown))
    );
    let degraded_up = decide(
        &policy,
        &in_state(4, 800.0, TrafficState::Degraded, 0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(degraded_up.desired, 8);
    let crowd = decide(
        &policy,
        &in_state(4, 1200.0, TrafficState::FlashCrowd, 0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((crowd.desired, crowd.limited_by), (6, Some(Limit::Cap)));
    // A state the policy does not list scales as usual.
    let normal = decide(
        &policy,
        &in_state(4, 800.0, TrafficState::Normal, 0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((normal.desired, normal.traffic_state), (8, None));
}

#[test]
fn states_never_keep_a_service_outside_its_bounds() {
    let policy = with_states(0, &[(TrafficState::Flood, StateAction::Hold)]);
    let decision = decide(
        &policy,
        &in_state(30, 100.0, TrafficState::Flood, 0),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(
        (decision.desired, decision.reason),
        (20, Reason::TooManyReplicas)
    );
}
