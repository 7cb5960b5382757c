//! Forecasts and traffic states as `decide` inputs (the decision side of issue 6).

use std::collections::BTreeMap;

use super::*;
use crate::decide::{Limit, ObservedState, Reason};
use crate::policy::{
    AnomalyInputs, AnomalySpec, ClaimedCount, ForecastAsk, ForecastSpec, ForecastUse, StateAction,
    TrafficState,
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

/// A `scaleUp` forecast with HPA's default behavior (a 300 s scale-down stabilization window).
fn with_forecast_and_default_behavior() -> ScalingPolicy {
    let mut policy = policy(1, 20, "");
    policy.spec.forecast = with_forecast(ForecastUse::ScaleUp).spec.forecast;
    policy
}

/// Ticks `run` through `(second, total rps, forecast rps, desired, reason)` rows.
fn forecast_table(run: &mut Run, rows: &[(i64, f64, f64, u32, Reason)]) {
    for &(at, load, forecast, desired, reason) in rows {
        let decision = run.tick_with(t(at), &forecasting(run.current, load, forecast), None);
        assert_eq!(
            (decision.desired, decision.reason),
            (desired, reason),
            "at {at}s: {}",
            decision.message
        );
    }
}

/// The forecast raises the count ahead of the load; its count is a claim about the next
/// horizon (60 s), so it holds until one horizon after the last ask, not for the 300 s
/// scale-down window: that window remembers only what the metrics asked for (4 throughout).
#[test]
fn a_forecast_raises_ahead_and_releases_one_horizon_after_its_last_ask() {
    use Reason::{DesiredWithinRange, Forecast};
    let mut run = Run::new(with_forecast_and_default_behavior(), 4);
    forecast_table(
        &mut run,
        &[
            // (s, load, forecast, desired, reason); 100 rps a replica.
            (0, 400.0, 700.0, 7, Forecast),
            (15, 400.0, 700.0, 7, Forecast),
            // The forecast stops asking at 15 s: its claim holds until 75 s.
            (30, 400.0, 400.0, 7, Forecast),
            (60, 400.0, 400.0, 7, Forecast),
            (75, 400.0, 400.0, 4, DesiredWithinRange),
            (90, 400.0, 400.0, 4, Reason::WithinTolerance),
        ],
    );
    assert!(run.history.forecasts.is_empty(), "{:?}", run.history);
    let held = decide(
        &run.policy,
        &forecasting(7, 400.0, 400.0),
        &History {
            forecasts: vec![ForecastAsk {
                at: t(0),
                replicas: 7,
                floor: 7,
            }],
            recommendations: vec![(t(0), 4)],
            ..History::default()
        },
        None,
        t(20),
    );
    assert_eq!(
        held.message,
        "the forecast asked 20s ago for 7 replicas within 1m: 7 held; the metrics ask for 4"
    );
}

/// A scale-up stabilization window confirms a forecast's rise as it confirms the metrics': the
/// ask claims its count only once it was asked for (by the forecast or the metrics) at every
/// decision within the window, so a one-tick ask raises nothing (the demo's 30 s window holds
/// a flood until the classifier has called it), and a confirmed claim holds one horizon.
#[test]
fn a_forecast_passes_the_scale_up_window_before_it_claims() {
    use Reason::{DesiredWithinRange, Forecast, WithinTolerance};
    let mut policy = policy(1, 20, "scaleUp: {stabilizationWindow: 30s}");
    policy.spec.forecast = with_forecast(ForecastUse::ScaleUp).spec.forecast;
    let mut run = Run::new(policy, 4);
    forecast_table(
        &mut run,
        &[
            (0, 400.0, 400.0, 4, WithinTolerance),
            // One ask, not confirmed within the window: nothing is claimed.
            (15, 400.0, 700.0, 4, WithinTolerance),
            (30, 400.0, 400.0, 4, WithinTolerance),
            (45, 400.0, 700.0, 4, WithinTolerance),
            // Asked at every decision of the last 30 s (45 s and 60 s): 7 is claimed.
            (60, 400.0, 700.0, 7, Forecast),
            (75, 400.0, 400.0, 7, Forecast),
            // One horizon after the last ask, the metrics' 4 again.
            (120, 400.0, 400.0, 4, DesiredWithinRange),
        ],
    );
}

/// A count the metrics asked for is still held by the scale-down window as HPA holds it: the
/// claim only adds a floor, it never shortens the window.
#[test]
fn the_metrics_count_keeps_its_stabilization_window_beside_a_forecast() {
    use Reason::{DesiredWithinRange, Forecast, Stabilized};
    let mut run = Run::new(with_forecast_and_default_behavior(), 4);
    forecast_table(
        &mut run,
        &[
            (0, 400.0, 800.0, 8, Forecast),
            (15, 700.0, 700.0, 8, Forecast),
            (30, 400.0, 400.0, 8, Forecast),
            (75, 400.0, 400.0, 7, Stabilized),
            (300, 400.0, 400.0, 7, Stabilized),
            (315, 400.0, 400.0, 4, DesiredWithinRange),
        ],
    );
}

/// A forecast hovering at a count boundary (5 replicas, then 4, every other tick) does not make
/// the count go up and down: each ask holds for the horizon, longer than the gap between asks.
#[test]
fn a_forecast_at_a_count_boundary_does_not_flap() {
    let mut run = Run::new(with_forecast_and_default_behavior(), 4);
    let mut counts = Vec::new();
    for tick in 0..=24 {
        let at = tick * 15;
        // 460 rps asks for 5 replicas, 390 for 4; the last ask for 5 is at 270 s.
        let forecast = if tick % 2 == 0 && at <= 270 {
            460.0
        } else {
            390.0
        };
        let decision = run.tick_with(t(at), &forecasting(run.current, 400.0, forecast), None);
        counts.push((at, decision.desired));
    }
    let changes = counts.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert_eq!(changes, 1, "{counts:?}");
    assert!(
        counts
            .iter()
            .all(|&(at, n)| n == if at < 330 { 5 } else { 4 }),
        "{counts:?}"
    );
    assert!(run.history.events.len() <= 2, "{:?}", run.history.events);
}

/// Without a forecast, scale-down is HPA's: the 300 s window holds the highest recommendation.
#[test]
fn scale_down_without_a_forecast_is_unchanged() {
    use Reason::{DesiredWithinRange, Stabilized};
    let mut run = Run::new(policy(1, 20, ""), 4);
    let rows = [
        (0, 7, 7, DesiredWithinRange),
        (15, 4, 7, Stabilized),
        (285, 4, 7, Stabilized),
        (300, 4, 4, DesiredWithinRange),
    ];
    for (at, wanted, desired, reason) in rows {
        let decision = run.tick(t(at), wanted);
        assert_eq!(
            (decision.desired, decision.reason),
            (desired, reason),
            "{at}"
        );
    }
    assert!(run.history.forecasts.is_empty());
}

/// HPA's tolerance is centred on the count in place, so a count a forecast raised would hold
/// itself: at 7 replicas (100 rps each), 640 rps is within 10% of 7 and the scale-down window
/// would remember 7 for 300 s. Under the claim the metrics are read against the count they
/// held (6, within 10% of 640), so the forecast's replica goes when its claim ends.
#[test]
fn the_tolerance_does_not_keep_a_forecasts_replicas_after_its_claim() {
    use Reason::{DesiredWithinRange, Forecast, WithinTolerance};
    let mut run = Run::new(with_forecast_and_default_behavior(), 6);
    forecast_table(
        &mut run,
        &[
            (0, 600.0, 700.0, 7, Forecast),
            (15, 640.0, 640.0, 7, Forecast),
            (45, 640.0, 640.0, 7, Forecast),
            // One horizon after the ask at 0 s: the metrics held 6 throughout.
            (60, 640.0, 640.0, 6, DesiredWithinRange),
            (75, 640.0, 640.0, 6, WithinTolerance),
        ],
    );
    assert_eq!(run.history.claimed, None, "{:?}", run.history);
}

/// Under a claim, a load out of tolerance of the metrics' own count still asks for more: the
/// metrics take the count over (7 for 680 rps), and it is theirs to hold from then on.
#[test]
fn the_metrics_take_over_a_claimed_count_they_ask_for() {
    use Reason::{DesiredWithinRange, Forecast, WithinTolerance};
    let mut run = Run::new(with_forecast_and_default_behavior(), 6);
    forecast_table(
        &mut run,
        &[
            (0, 600.0, 700.0, 7, Forecast),
            (15, 680.0, 680.0, 7, DesiredWithinRange),
        ],
    );
    assert_eq!(run.history.claimed, None, "{:?}", run.history);
    forecast_table(
        &mut run,
        &[
            (60, 680.0, 680.0, 7, WithinTolerance),
            (375, 640.0, 640.0, 7, WithinTolerance),
        ],
    );
}

/// The claimed count is the metrics' base only while it is in place: a count someone raised
/// past it, or one already back at the metrics' count, is read as HPA reads it.
#[test]
fn a_claimed_count_is_the_base_only_while_it_is_in_place() {
    use crate::decide::forecast::under_claim;
    let claimed = Some(ClaimedCount {
        claimed: 7,
        metrics: 5,
    });
    assert_eq!(under_claim(claimed, 7), Some(5));
    assert_eq!(under_claim(claimed, 6), Some(5));
    assert_eq!(under_claim(claimed, 5), None);
    assert_eq!(under_claim(claimed, 9), None);
    assert_eq!(under_claim(None, 7), None);
}
