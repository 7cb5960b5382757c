//! HPA's `behavior`: stabilization windows, then rate policies and `[min, max]`, exactly as the
//! controller's `normalizeDesiredReplicasWithBehaviors` does it (horizontal.go).

use chrono::{DateTime, Utc};

use super::decision::Limit;
use crate::policy::{EffectiveRules, HumanDuration, RatePolicyKind, ScaleEvent, SelectPolicy};

/// The inputs the controller's `NormalizationArg` carries.
pub(crate) struct Normalization<'a> {
    pub up: &'a EffectiveRules,
    pub down: &'a EffectiveRules,
    pub min: u32,
    pub max: u32,
    pub current: u32,
    /// The metrics' recommendation (HPA: `prenormalizedDesiredReplicas`).
    pub desired: u32,
    /// A count the stabilized recommendation is raised to before the rate limits, outside the
    /// windows' memory: a `scaleUp` forecast's claim (0: none).
    pub floor: u32,
}

/// The result of normalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Normalized {
    /// The recommendation after the stabilization windows (the floor not included).
    pub stabilized: u32,
    pub desired: u32,
    pub limit: Option<Limit>,
}

/// Stabilizes the recommendation against the recent ones, raises it to the floor, then applies
/// the rate limits and the bounds. `recommendations` must already hold HPA's initial
/// recommendation (see [`super::history`]).
pub(crate) fn normalize(
    arg: &Normalization<'_>,
    recommendations: &[(DateTime<Utc>, u32)],
    events: &[ScaleEvent],
    now: DateTime<Utc>,
) -> Normalized {
    let stabilized = stabilize(arg, recommendations, now);
    let (desired, limit) = rate_limit(arg, stabilized.max(arg.floor), events, now);
    Normalized {
        stabilized,
        desired,
        limit,
    }
}

/// `stabilizeRecommendationWithBehaviors`: scale up no further than the lowest recommendation
/// within the scale-up window, down no further than the highest within the scale-down window.
pub(crate) fn stabilize(
    arg: &Normalization<'_>,
    recommendations: &[(DateTime<Utc>, u32)],
    now: DateTime<Utc>,
) -> u32 {
    let up_cutoff = cutoff(now, arg.up.stabilization_window);
    let down_cutoff = cutoff(now, arg.down.stabilization_window);
    let mut up_recommendation = arg.desired;
    let mut down_recommendation = arg.desired;
    for &(at, replicas) in recommendations {
        if at > up_cutoff {
            up_recommendation = up_recommendation.min(replicas);
        }
        if at > down_cutoff {
            down_recommendation = down_recommendation.max(replicas);
        }
    }
    arg.current.max(up_recommendation).min(down_recommendation)
}

/// `convertDesiredReplicasWithBehaviorRate`.
fn rate_limit(
    arg: &Normalization<'_>,
    desired: u32,
    events: &[ScaleEvent],
    now: DateTime<Utc>,
) -> (u32, Option<Limit>) {
    let current = i64::from(arg.current);
    let wanted = i64::from(desired);
    if wanted > current {
        // Until old scale events leave their periods, a limit below the current count only
        // stops further growth; it never shrinks the service.
        let limit = scale_up_limit(arg.current, events, arg.up, now).max(current);
        let (allowed, reason) = if i64::from(arg.max) > limit {
            (limit, Limit::ScaleUpLimit)
        } else {
            (i64::from(arg.max), Limit::TooManyReplicas)
        };
        if wanted > allowed {
            return (to_count(allowed), Some(reason));
        }
    } else if wanted < current {
        let limit = scale_down_limit(arg.current, events, arg.down, now).min(current);
        let (allowed, reason) = if i64::from(arg.min) < limit {
            (limit, Limit::ScaleDownLimit)
        } else {
            (i64::from(arg.min), Limit::TooFewReplicas)
        };
        if wanted < allowed {
            return (to_count(allowed), Some(reason));
        }
    }
    (desired, None)
}

/// `calculateScaleUpLimitWithScalingRules`: the highest count the scale-up policies allow now.
pub(crate) fn scale_up_limit(
    current: u32,
    events: &[ScaleEvent],
    rules: &EffectiveRules,
    now: DateTime<Utc>,
) -> i64 {
    policy_limit(current, events, rules, now, Direction::Up)
}

/// `calculateScaleDownLimitWithBehaviors`: the lowest count the scale-down policies allow now.
pub(crate) fn scale_down_limit(
    current: u32,
    events: &[ScaleEvent],
    rules: &EffectiveRules,
    now: DateTime<Utc>,
) -> i64 {
    policy_limit(current, events, rules, now, Direction::Down)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// Each policy proposes a count from the start of its period; `selectPolicy` picks the one
/// allowing the largest (`Max`) or smallest (`Min`) change, which is the highest count going up
/// and the lowest going down.
fn policy_limit(
    current: u32,
    events: &[ScaleEvent],
    rules: &EffectiveRules,
    now: DateTime<Utc>,
    direction: Direction,
) -> i64 {
    let largest_change = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        SelectPolicy::Max => true,
        SelectPolicy::Min => false,
    };
    let proposals = rules.policies.iter().map(|policy| {
        let start = period_start(current, events, policy.period, now);
        let value = i64::from(policy.value);
        match (policy.kind, direction) {
            (RatePolicyKind::Replicas, Direction::Up) => start + value,
            (RatePolicyKind::Replicas, Direction::Down) => start - value,
            // Rounded up, or a small service could never grow by a percentage.
            (RatePolicyKind::Percent, Direction::Up) => {
                (start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64
            }
            // Truncated toward zero, as Go's int32(float64) conversion does.
            (RatePolicyKind::Percent, Direction::Down) => {
                (start as f64 * (1.0 - value as f64 / 100.0)) as i64
            }
        }
    });
    // With no policy nothing is allowed: the caller keeps the current count (as HPA's
    // MinInt32/MaxInt32 seeds do).
    let highest = largest_change == (direction == Direction::Up);
    let picked = if highest {
        proposals.max()
    } else {
        proposals.min()
    };
    picked.unwrap_or(i64::from(current))
}

/// The replica count at the start of the period: the current count minus what was added and plus
/// what was removed by the scale events inside it (`getReplicasChangePerPeriod`, both ways).
fn period_start(
    current: u32,
    events: &[ScaleEvent],
    period: HumanDuration,
    now: DateTime<Utc>,
) -> i64 {
    let cutoff = cutoff(now, period);
    let net_change: i64 = events
        .iter()
        .filter(|event| event.at > cutoff)
        .map(|event| i64::from(event.to) - i64::from(event.from))
        .sum();
    i64::from(current) - net_change
}

/// `now - window`; a window reaching before the representable past covers everything.
pub(crate) fn cutoff(now: DateTime<Utc>, window: HumanDuration) -> DateTime<Utc> {
    chrono::Duration::from_std(window.as_std())
        .ok()
        .and_then(|window| now.checked_sub_signed(window))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn to_count(replicas: i64) -> u32 {
    u32::try_from(replicas.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Behavior, RatePolicy};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
    }

    fn ago(secs: i64) -> DateTime<Utc> {
        now() - chrono::Duration::seconds(secs)
    }

    fn event(secs_ago: i64, from: u32, to: u32) -> ScaleEvent {
        ScaleEvent {
            at: ago(secs_ago),
            from,
            to,
        }
    }

    fn rules(select: SelectPolicy, policies: Vec<(RatePolicyKind, u32, u64)>) -> EffectiveRules {
        EffectiveRules {
            stabilization_window: HumanDuration::from_secs(0),
            select_policy: select,
            policies: policies
                .into_iter()
                .map(|(kind, value, period)| RatePolicy {
                    kind,
                    value,
                    period: HumanDuration::from_secs(period),
                })
                .collect(),
            tolerance: 0.1,
        }
    }

    #[test]
    fn default_scale_up_is_the_larger_of_double_and_plus_four() {
        let up = Behavior::default().scale_up();
        assert_eq!(scale_up_limit(1, &[], &up, now()), 5);
        assert_eq!(scale_up_limit(10, &[], &up, now()), 20);
    }

    #[test]
    fn percent_rounding_follows_the_controller() {
        let up = rules(SelectPolicy::Max, vec![(RatePolicyKind::Percent, 10, 60)]);
        // Up rounds up, so 10% of 3 still allows one more replica.
        assert_eq!(scale_up_limit(3, &[], &up, now()), 4);
        assert_eq!(scale_up_limit(10, &[], &up, now()), 11);
        let down = rules(SelectPolicy::Max, vec![(RatePolicyKind::Percent, 10, 60)]);
        // 72 * 0.9 = 64.8, truncated: the documentation's "7.2 rounded up to 8" removed.
        assert_eq!(scale_down_limit(72, &[], &down, now()), 64);
    }

    #[test]
    fn events_inside_the_period_move_its_start() {
        let up = rules(SelectPolicy::Max, vec![(RatePolicyKind::Replicas, 4, 60)]);
        // 2 -> 6 thirty seconds ago: the period started at 2, so 6 is already the limit.
        assert_eq!(scale_up_limit(6, &[event(30, 2, 6)], &up, now()), 6);
        // The same event 61s ago is outside the period.
        assert_eq!(scale_up_limit(6, &[event(61, 2, 6)], &up, now()), 10);
        // Exactly at the cutoff is outside too (HPA keeps events strictly after it).
        assert_eq!(scale_up_limit(6, &[event(60, 2, 6)], &up, now()), 10);
        // A scale-down inside the period raises the start of a scale-up period.
        assert_eq!(scale_up_limit(4, &[event(10, 6, 4)], &up, now()), 10);
    }

    #[test]
    fn select_policy_min_and_disabled() {
        let policies = vec![
            (RatePolicyKind::Replicas, 4, 60),
            (RatePolicyKind::Percent, 10, 60),
        ];
        let max = rules(SelectPolicy::Max, policies.clone());
        let min = rules(SelectPolicy::Min, policies.clone());
        let disabled = rules(SelectPolicy::Disabled, policies);
        assert_eq!(scale_down_limit(80, &[], &max, now()), 72);
        assert_eq!(scale_down_limit(80, &[], &min, now()), 76);
        assert_eq!(scale_down_limit(80, &[], &disabled, now()), 80);
        assert_eq!(scale_up_limit(80, &[], &max, now()), 88);
        assert_eq!(scale_up_limit(80, &[], &min, now()), 84);
        assert_eq!(scale_up_limit(80, &[], &disabled, now()), 80);
    }

    #[test]
    fn stabilization_takes_the_extreme_within_each_window() {
        let up = rules(SelectPolicy::Max, vec![]);
        let mut down = rules(SelectPolicy::Max, vec![]);
        down.stabilization_window = HumanDuration::from_secs(300);
        let arg = Normalization {
            up: &up,
            down: &down,
            min: 1,
            max: 100,
            current: 10,
            desired: 4,
            floor: 0,
        };
        let recent = [(ago(400), 20), (ago(200), 8), (ago(100), 6)];
        assert_eq!(stabilize(&arg, &recent, now()), 8);
        // Scale-up window 0: nothing older than now counts, the latest recommendation wins.
        let arg = Normalization { desired: 15, ..arg };
        assert_eq!(stabilize(&arg, &recent, now()), 15);
    }
}
