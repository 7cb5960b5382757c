//! Properties of `decide` + `History::record` over arbitrary policies and load sequences, each
//! checked against a trajectory kept independently of the engine's own history.

use proptest::prelude::*;

use super::*;
use crate::policy::{
    EffectiveRules, HumanDuration, RatePolicy, RatePolicyKind, ScalingRules, SelectPolicy,
};

fn rules_strategy(max_window_secs: u64) -> impl Strategy<Value = ScalingRules> {
    let policy = (
        prop_oneof![
            Just(RatePolicyKind::Replicas),
            Just(RatePolicyKind::Percent)
        ],
        1u32..=150,
        1u64..=8,
    )
        .prop_map(|(kind, value, periods)| RatePolicy {
            kind,
            value,
            period: HumanDuration::from_secs(periods * 15),
        });
    (
        0..=max_window_secs / 15,
        prop_oneof![
            4 => Just(SelectPolicy::Max),
            3 => Just(SelectPolicy::Min),
            1 => Just(SelectPolicy::Disabled)
        ],
        prop::collection::vec(policy, 1..=3),
        0.0f64..0.3,
    )
        .prop_map(|(window, select, policies, tolerance)| ScalingRules {
            stabilization_window: Some(HumanDuration::from_secs(window * 15)),
            select_policy: Some(select),
            policies: Some(policies),
            tolerance: Some(tolerance),
        })
}

/// A policy, the starting count, and (seconds since the previous tick, replicas' worth of load).
fn scenario() -> impl Strategy<Value = (ScalingPolicy, u32, Vec<(i64, f64)>)> {
    (
        1u32..=5,
        0u32..=30,
        rules_strategy(120),
        rules_strategy(300),
    )
        .prop_flat_map(|(min, span, up, down)| {
            let mut policy = policy(min, min + span, "");
            policy.spec.behavior = Behavior {
                scale_up: Some(up),
                scale_down: Some(down),
            };
            let steps = prop::collection::vec((1i64..=60, 0.0f64..=60.0), 1..40);
            (Just(policy), min..=min + span, steps)
        })
}

/// The replica count as of `at`, from the trajectory of applied scales.
fn count_at(initial: u32, scales: &[(DateTime<Utc>, u32)], at: DateTime<Utc>) -> u32 {
    scales
        .iter()
        .take_while(|(when, _)| *when <= at)
        .last()
        .map_or(initial, |&(_, to)| to)
}

/// The highest (`up`) or lowest count the policies allow, from the trajectory; `None` when the
/// direction is disabled.
fn bound(
    rules: &EffectiveRules,
    up: bool,
    initial: u32,
    scales: &[(DateTime<Utc>, u32)],
    now: DateTime<Utc>,
) -> Option<i64> {
    let sign = if up { 1 } else { -1 };
    let proposals = rules.policies.iter().map(|policy| {
        let start = count_at(initial, scales, now - period(policy)) as f64;
        // The controller's own float expressions: for 10 replicas +10% is ceil(10 * 1.1) = 12.
        match policy.kind {
            RatePolicyKind::Replicas => start as i64 + sign * i64::from(policy.value),
            RatePolicyKind::Percent if up => {
                (start * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64
            }
            RatePolicyKind::Percent => (start * (1.0 - f64::from(policy.value) / 100.0)) as i64,
        }
    });
    match (rules.select_policy, up) {
        (SelectPolicy::Disabled, _) => None,
        (SelectPolicy::Max, true) | (SelectPolicy::Min, false) => proposals.max(),
        (SelectPolicy::Max, false) | (SelectPolicy::Min, true) => proposals.min(),
    }
}

fn period(policy: &RatePolicy) -> chrono::Duration {
    chrono::Duration::from_std(policy.period.as_std()).unwrap()
}

fn window(rules: &EffectiveRules) -> chrono::Duration {
    chrono::Duration::from_std(rules.stabilization_window.as_std()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn sequences_respect_bounds_tolerance_rates_and_windows((policy, initial, steps) in scenario()) {
        let spec = &policy.spec;
        let (up, down) = (spec.behavior.scale_up(), spec.behavior.scale_down());
        let mut run = Run::new(policy.clone(), initial);
        let mut now = t(0);
        let start = now + chrono::Duration::seconds(steps[0].0);
        // Every recommendation made, including HPA's initial one (the count at the first look),
        // and every applied scale.
        let mut recommendations = vec![(start, initial)];
        let mut scales: Vec<(DateTime<Utc>, u32)> = Vec::new();

        for (gap, load) in steps {
            now += chrono::Duration::seconds(gap);
            let current = run.current;
            let observation = total_rps(current, load * 100.0);
            let decision = run.tick_with(now, &observation, None);
            let desired = decision.desired;

            prop_assert!(
                (spec.min_replicas..=spec.max_replicas).contains(&desired),
                "{desired} outside [{}, {}]", spec.min_replicas, spec.max_replicas
            );

            let ratio = load * 100.0 / (100.0 * f64::from(current));
            if 1.0 - down.tolerance <= ratio && ratio <= 1.0 + up.tolerance {
                prop_assert_eq!(desired, current, "ratio {} is within tolerance", ratio);
            }

            if let Some(recommendation) = decision.recommendation {
                recommendations.push((now, recommendation));
            }
            if desired > current {
                let bound = bound(&up, true, initial, &scales, now);
                prop_assert!(bound.is_some(), "scaled up with scale-up disabled");
                let bound = bound.unwrap_or_default().max(i64::from(current));
                prop_assert!(i64::from(desired) <= bound, "up to {desired}, policies allow {bound}");
                let lowest = recommendations
                    .iter()
                    .filter(|(at, _)| *at > now - window(&up))
                    .map(|&(_, r)| r)
                    .min()
                    .unwrap_or(desired);
                prop_assert!(desired <= lowest.max(current), "up to {desired} past the window's {lowest}");
            }
            if desired < current {
                let bound = bound(&down, false, initial, &scales, now);
                prop_assert!(bound.is_some(), "scaled down with scale-down disabled");
                let bound = bound.unwrap_or_default().min(i64::from(current));
                prop_assert!(i64::from(desired) >= bound, "down to {desired}, policies allow {bound}");
                let highest = recommendations
                    .iter()
                    .filter(|(at, _)| *at > now - window(&down))
                    .map(|&(_, r)| r)
                    .max()
                    .unwrap_or(desired);
                prop_assert!(desired >= highest.min(current), "down to {desired} within the window's {highest}");
                if now - start < window(&down) {
                    prop_assert!(desired >= initial, "below the first count {initial} before one window");
                }
            }
            if desired != current {
                scales.push((now, desired));
            }
        }
    }

    #[test]
    fn decide_is_deterministic((policy, initial, steps) in scenario()) {
        let mut first = Run::new(policy.clone(), initial);
        let mut second = Run::new(policy, initial);
        let mut now = t(0);
        for (gap, load) in steps {
            now += chrono::Duration::seconds(gap);
            let a = first.tick(now, load.round() as u32);
            let b = second.tick(now, load.round() as u32);
            prop_assert_eq!(a, b);
        }
        prop_assert_eq!(first.history, second.history);
    }
}
