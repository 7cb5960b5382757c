//! The online forecast ensemble of one service: the members other than the model (naive last
//! value, Holt's damped-trend smoothing, seasonal naive one day back), the one error every member
//! is scored by once its horizon has passed, and the rule that chooses the member in use.
//!
//! Every member forecasts the same steps (one per sample period, up to the policy's horizon);
//! a forecast's error is the mean absolute difference, over those steps, between its path and
//! the load seen at each step (the latest sample at or before it, as the window's forward fill).
//! `model eval` scores members over the same steps, so its figures are those the choice sees.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use super::window::{Sample, MAX_FILL_SECS};
use crate::decide::signals::{ForecastVerdict, Member};

/// How many scored forecasts the choice looks at.
pub const SCORED_KEPT: usize = 24;
/// Below this many scored forecasts the model is used: it was validated offline, and waiting
/// for proof would delay every new service's first surge.
pub const SCORED_BEFORE_CHOICE: usize = 6;
/// Seasonal naive looks one day back.
pub const SEASON: Duration = Duration::days(1);
/// How many past samples (on the model's grid) Holt's smoothing is fitted on.
pub const HOLT_WINDOW: usize = 60;

/// Holt's damping of the trend per step: a trend fitted on a few minutes is not extrapolated
/// as a straight line for the whole horizon.
const HOLT_DAMPING: f64 = 0.9;
const HOLT_ALPHAS: [f64; 7] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0];
const HOLT_BETAS: [f64; 3] = [0.0, 0.1, 0.2];

/// Holt's linear exponential smoothing with a damped trend over `window` (oldest first), its
/// smoothing constants chosen from a small grid by the smallest one-step absolute error within
/// the window; `steps` values ahead, or `None` for fewer than three finite values. A load that
/// was never negative is not forecast below zero.
pub fn holt(window: &[f64], steps: usize) -> Option<Vec<f64>> {
    if window.len() < 3 || window.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let run = |alpha: f64, beta: f64| {
        // No trend is assumed until the window shows one: a first difference of noisy
        // traffic taken as a trend would be carried through the whole window.
        let (mut level, mut trend, mut error) = (window[0], 0.0, 0.0);
        for &value in &window[1..] {
            let predicted = level + HOLT_DAMPING * trend;
            error += (value - predicted).abs();
            let previous = level;
            level = alpha * value + (1.0 - alpha) * predicted;
            trend = beta * (level - previous) + (1.0 - beta) * HOLT_DAMPING * trend;
        }
        (error, level, trend)
    };
    let (_, level, trend) = HOLT_ALPHAS
        .iter()
        .flat_map(|&a| HOLT_BETAS.iter().map(move |&b| run(a, b)))
        .min_by(|x, y| x.0.total_cmp(&y.0))?;
    let floor = if window.iter().all(|&v| v >= 0.0) {
        0.0
    } else {
        f64::NEG_INFINITY
    };
    let mut damping = 0.0;
    let mut factor = 1.0;
    Some(
        (0..steps)
            .map(|_| {
                factor *= HOLT_DAMPING;
                damping += factor;
                (level + damping * trend).max(floor)
            })
            .collect(),
    )
}

/// The latest finite sample at or before `at` in `series` (oldest first), if at most
/// [`MAX_FILL_SECS`] old: the window's forward-fill rule.
pub fn value_at(series: &[Sample], at: DateTime<Utc>) -> Option<f64> {
    let after = series.partition_point(|s| s.at <= at);
    series[..after]
        .iter()
        .rev()
        .find(|s| s.value.is_finite())
        .filter(|s| (at - s.at).num_milliseconds() as f64 <= MAX_FILL_SECS * 1000.0)
        .map(|s| s.value)
}

/// A day of one metric, thinned to one value per sample period, for seasonal naive.
///
/// One `f32` a period slot (a day at 5 s is about 69 KB a service): a timestamp kept beside
/// each value would quadruple what every forecasting service holds once it has a day.
#[derive(Debug, Default)]
pub struct DayHistory {
    /// The metric and sample period (milliseconds) it keeps.
    key: Option<(String, i64)>,
    /// The period slot (milliseconds since the epoch / period) of `values[0]`.
    first_slot: i64,
    /// The first value seen in each slot, oldest first; NaN for a slot with no sample.
    values: VecDeque<f32>,
}

impl DayHistory {
    /// Keeps `metric` at `period_secs` from now on; another metric or period starts afresh
    /// from `recent` (the samples the memory already holds).
    pub fn follow<'a>(
        &mut self,
        metric: &str,
        period_secs: f64,
        recent: impl IntoIterator<Item = &'a Sample>,
    ) {
        let period_ms = ((period_secs * 1000.0).round() as i64).max(1);
        if self
            .key
            .as_ref()
            .is_some_and(|(m, p)| m == metric && *p == period_ms)
        {
            return;
        }
        self.key = Some((metric.to_owned(), period_ms));
        self.values.clear();
        for sample in recent {
            self.push(metric, sample);
        }
    }

    /// Adds a sample of `metric` if it is the one kept and the first in its period slot.
    pub fn push(&mut self, metric: &str, sample: &Sample) {
        let Some((kept, period_ms)) = &self.key else {
            return;
        };
        if kept != metric || !sample.value.is_finite() {
            return;
        }
        let period_ms = *period_ms;
        let slot = sample.at.timestamp_millis().div_euclid(period_ms);
        let keep = (SEASON + Duration::minutes(5)).num_milliseconds() / period_ms;
        let next = self.first_slot + self.values.len() as i64;
        if self.values.is_empty() || slot - next >= keep {
            // The first sample, or one after a gap longer than the day kept.
            self.values.clear();
            self.first_slot = slot;
        } else if slot < next {
            return;
        } else {
            let gap = (slot - next) as usize;
            self.values.extend(std::iter::repeat_n(f32::NAN, gap));
        }
        self.values.push_back(sample.value as f32);
        let excess = (self.values.len() as i64 - keep).max(0);
        self.values.drain(..excess as usize);
        self.first_slot += excess;
    }

    /// The value one day before `at`, by the forward-fill rule (a slot's value counts from the
    /// slot's start).
    fn day_before(&self, at: DateTime<Utc>) -> Option<f64> {
        let (_, period_ms) = self.key.as_ref()?;
        let at = (at - SEASON).timestamp_millis();
        let last = at
            .div_euclid(*period_ms)
            .min(self.first_slot + self.values.len() as i64 - 1);
        (self.first_slot..=last)
            .rev()
            .take_while(|slot| ((at - slot * period_ms) as f64) <= MAX_FILL_SECS * 1000.0)
            .find_map(|slot| {
                let value = self.values[(slot - self.first_slot) as usize];
                (!value.is_nan()).then_some(f64::from(value))
            })
    }

    /// Seasonal naive's path: the value one day before each step; `None` until a day is kept.
    pub fn seasonal(&self, now: DateTime<Utc>, period_secs: f64, steps: usize) -> Option<Vec<f64>> {
        (1..=steps)
            .map(|k| self.day_before(now + step(period_secs, k)))
            .collect()
    }
}

fn step(period_secs: f64, k: usize) -> Duration {
    Duration::milliseconds((period_secs * 1000.0 * k as f64).round() as i64)
}

/// Each member's forecast at one moment: one value per step ahead, `None` when the member has
/// none (seasonal naive before a day of history, Holt on a window with a gap).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberPaths {
    paths: [Option<Vec<f64>>; 4],
}

impl MemberPaths {
    pub fn set(&mut self, member: Member, path: Option<Vec<f64>>) {
        self.paths[member.index()] = path;
    }

    pub fn get(&self, member: Member) -> Option<&[f64]> {
        self.paths[member.index()].as_deref()
    }
}

#[derive(Clone, Debug)]
struct Pending {
    made: DateTime<Utc>,
    period_secs: f64,
    paths: MemberPaths,
}

/// One forecast that came due: each member's error and the mean load over its steps.
#[derive(Clone, Copy, Debug)]
struct Scored {
    errors: [Option<f64>; 4],
    load: f64,
}

/// The ensemble's recent standing: each member's mean error over the recently scored forecasts.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    pub scored: usize,
    /// (member, recent mean error), for the members scored lately, in order of preference.
    pub errors: Vec<(Member, f64)>,
}

/// Scores each member's forecasts once their steps have passed, and chooses the member in use.
#[derive(Clone, Debug)]
pub struct Ensemble {
    tolerance: f64,
    pending: VecDeque<Pending>,
    /// The latest scored forecasts, oldest first.
    scored: VecDeque<Scored>,
}

impl Ensemble {
    /// An ensemble for a policy whose scale-up tolerance is `tolerance` (a share of the load):
    /// an error difference within it cannot change a replica count, so it does not change the
    /// member in use either.
    pub fn new(tolerance: f64) -> Self {
        Self {
            tolerance,
            pending: VecDeque::new(),
            scored: VecDeque::new(),
        }
    }

    /// Remembers the members' forecasts made at `made`, one step per `period_secs`.
    pub fn predicted(&mut self, made: DateTime<Utc>, period_secs: f64, paths: MemberPaths) {
        self.pending.push_back(Pending {
            made,
            period_secs,
            paths,
        });
        // Forecasts whose steps never come (the service stopped reporting) must not pile up.
        while self.pending.len() > 4 * SCORED_KEPT {
            self.pending.pop_front();
        }
    }

    /// Scores every forecast whose last step is at or before `now` against `series` (the
    /// metric's samples, oldest first); one with a step the series cannot fill is dropped.
    pub fn observed(&mut self, now: DateTime<Utc>, series: &[Sample]) {
        while let Some(front) = self.pending.front() {
            let steps = Member::ALL
                .iter()
                .filter_map(|&m| front.paths.get(m).map(<[f64]>::len))
                .max()
                .unwrap_or(0);
            if front.made + step(front.period_secs, steps) > now {
                break;
            }
            let Some(due) = self.pending.pop_front() else {
                break;
            };
            let actual: Option<Vec<f64>> = (1..=steps)
                .map(|k| value_at(series, due.made + step(due.period_secs, k)))
                .collect();
            let Some(actual) = actual.filter(|a| !a.is_empty()) else {
                continue;
            };
            let mut errors = [None; 4];
            for member in Member::ALL {
                errors[member.index()] = due.paths.get(member).map(|p| path_error(p, &actual));
            }
            self.scored.push_back(Scored {
                errors,
                load: actual.iter().map(|v| v.abs()).sum::<f64>() / actual.len() as f64,
            });
            if self.scored.len() > SCORED_KEPT {
                self.scored.pop_front();
            }
        }
    }

    pub fn standing(&self) -> Standing {
        let errors = Member::ALL
            .iter()
            .filter_map(|&member| {
                let seen: Vec<f64> = self
                    .scored
                    .iter()
                    .filter_map(|s| s.errors[member.index()])
                    .collect();
                (!seen.is_empty()).then(|| (member, seen.iter().sum::<f64>() / seen.len() as f64))
            })
            .collect();
        Standing {
            scored: self.scored.len(),
            errors,
        }
    }

    /// The member in use among those that have a forecast now (`available`), and the verdict.
    ///
    /// Learning: the model. Then the first member, in order of preference, whose recent error
    /// is within the tolerance of the load of the lowest; naive in use means the forecast is
    /// ignored (it adds nothing to the load seen now).
    pub fn choose(&self, available: impl Fn(Member) -> bool) -> ForecastVerdict {
        let standing = self.standing();
        if standing.scored < SCORED_BEFORE_CHOICE && available(Member::Model) {
            return ForecastVerdict::Learning {
                scored: standing.scored,
            };
        }
        let load =
            self.scored.iter().map(|s| s.load).sum::<f64>() / self.scored.len().max(1) as f64;
        let error_of = |member: Member| {
            standing
                .errors
                .iter()
                .find(|(m, _)| *m == member)
                .map(|(_, e)| *e)
        };
        let naive_error = error_of(Member::Naive).unwrap_or(f64::INFINITY);
        let candidates: Vec<(Member, f64)> = standing
            .errors
            .iter()
            .copied()
            .filter(|&(m, _)| available(m))
            .collect();
        let lowest = candidates
            .iter()
            .map(|(_, e)| *e)
            .fold(naive_error, f64::min);
        let chosen = candidates
            .iter()
            .find(|(_, e)| *e <= lowest + self.tolerance * load);
        match chosen {
            Some(&(member, member_error)) if member != Member::Naive => ForecastVerdict::Trusted {
                member,
                member_error,
                naive_error,
            },
            _ => {
                let (best, member_error) = candidates
                    .iter()
                    .copied()
                    .filter(|(m, _)| *m != Member::Naive)
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap_or((Member::Model, f64::NAN));
                ForecastVerdict::Ignored {
                    best,
                    member_error,
                    naive_error,
                }
            }
        }
    }
}

/// The one error of a forecast path against what came: the mean absolute difference per step.
pub fn path_error(path: &[f64], actual: &[f64]) -> f64 {
    let n = path.len().min(actual.len()).max(1);
    path.iter()
        .zip(actual)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(secs)
    }

    #[test]
    fn holt_follows_a_trend_and_smooths_noise() {
        let ramp: Vec<f64> = (0..60).map(|i| 10.0 + i as f64).collect();
        let path = holt(&ramp, 12).unwrap();
        assert!(path[0] > 69.0 && path[11] > path[0], "{path:?}");
        // Damped: less than the straight line.
        assert!(path[11] < 69.0 + 12.0, "{path:?}");
        let noisy: Vec<f64> = (0..60)
            .map(|i| if i % 2 == 0 { 90.0 } else { 110.0 })
            .collect();
        let path = holt(&noisy, 12).unwrap();
        assert!(path.iter().all(|v| (v - 100.0).abs() < 6.0), "{path:?}");
        assert_eq!(holt(&[1.0, f64::NAN, 2.0], 3), None);
        let falling: Vec<f64> = (0..60).map(|i| (60 - i) as f64 * 0.1).collect();
        assert!(holt(&falling, 60).unwrap().iter().all(|v| *v >= 0.0));
    }

    fn series(values: impl Fn(i64) -> f64, secs: i64) -> Vec<Sample> {
        (0..=secs / 5)
            .map(|k| Sample {
                at: at(5 * k),
                value: values(5 * k),
            })
            .collect()
    }

    fn paths(model: f64, holt: f64, naive: f64) -> MemberPaths {
        let mut paths = MemberPaths::default();
        paths.set(Member::Model, Some(vec![model; 12]));
        paths.set(Member::Holt, Some(vec![holt; 12]));
        paths.set(Member::Naive, Some(vec![naive; 12]));
        paths
    }

    /// Forecasts every 5 s of a load steady at 100, scored against it.
    fn ensemble_after(model: f64, holt: f64, count: i64) -> Ensemble {
        let load = series(|_| 100.0, 5 * count + 120);
        let mut ensemble = Ensemble::new(0.1);
        for k in 0..count {
            ensemble.observed(at(5 * k), &load);
            ensemble.predicted(at(5 * k), 5.0, paths(model, holt, 100.0));
        }
        ensemble.observed(at(5 * count + 60), &load);
        ensemble
    }

    #[test]
    fn the_model_is_used_until_enough_forecasts_came_due() {
        let ensemble = ensemble_after(500.0, 100.0, SCORED_BEFORE_CHOICE as i64 - 1);
        assert_eq!(
            ensemble.choose(|_| true),
            ForecastVerdict::Learning {
                scored: SCORED_BEFORE_CHOICE - 1
            }
        );
    }

    #[test]
    fn the_first_member_within_the_tolerance_of_the_best_is_used() {
        // Model off by 8 (within 10 % of the load), Holt exact: the model stays.
        let close = ensemble_after(108.0, 100.0, 10);
        assert!(matches!(
            close.choose(|_| true),
            ForecastVerdict::Trusted {
                member: Member::Model,
                ..
            }
        ));
        // Model off by 30: Holt is used; without Holt this tick, the naive one: ignored.
        let far = ensemble_after(130.0, 101.0, 10);
        let verdict = far.choose(|_| true);
        assert_eq!(
            verdict,
            ForecastVerdict::Trusted {
                member: Member::Holt,
                member_error: 1.0,
                naive_error: 0.0
            }
        );
        assert!(verdict.describe().contains("holt"));
        let ignored = far.choose(|m| m != Member::Holt);
        assert!(!ignored.usable(), "{ignored:?}");
        assert!(ignored.describe().contains("ignored"));
    }

    #[test]
    fn only_forecasts_whose_steps_passed_are_scored_and_gaps_drop_them() {
        let load = series(|_| 100.0, 200);
        let mut ensemble = Ensemble::new(0.1);
        ensemble.predicted(at(0), 5.0, paths(1.0, 1.0, 1.0));
        ensemble.observed(at(59), &load);
        assert_eq!(ensemble.standing().scored, 0);
        ensemble.observed(at(60), &load);
        assert_eq!(ensemble.standing().scored, 1);
        assert_eq!(ensemble.standing().errors[0], (Member::Model, 99.0));
        // No sample for the steps of a forecast made at 300 s: dropped, not scored.
        ensemble.predicted(at(300), 5.0, paths(1.0, 1.0, 1.0));
        ensemble.observed(at(400), &load);
        assert_eq!(ensemble.standing().scored, 1);
    }

    #[test]
    fn seasonal_naive_needs_a_day_of_history() {
        let mut day = DayHistory::default();
        let first = Sample {
            at: at(0),
            value: 7.0,
        };
        day.follow("rps", 5.0, [&first]);
        assert_eq!(day.seasonal(at(60), 5.0, 2), None);
        for k in 1..=(86_400 / 5 + 30) {
            let sample = Sample {
                at: at(5 * k),
                value: k as f64,
            };
            day.push("rps", &sample);
            // Thinned to the period: a sample 1 s later is not kept.
            day.push(
                "rps",
                &Sample {
                    at: at(5 * k + 1),
                    value: -1.0,
                },
            );
        }
        let now = at(86_400);
        assert_eq!(day.seasonal(now, 5.0, 2), Some(vec![1.0, 2.0]));
        day.push(
            "other",
            &Sample {
                at: at(90_000),
                value: 1.0,
            },
        );
        assert_eq!(day.seasonal(now, 5.0, 1), Some(vec![1.0]));
    }

    #[test]
    fn seasonal_naive_fills_forward_at_most_a_minute_across_a_gap() {
        let mut day = DayHistory::default();
        day.follow("rps", 5.0, std::iter::empty());
        for (t, value) in [(0, 1.0), (5, 2.0), (200, 3.0)] {
            day.push("rps", &Sample { at: at(t), value });
        }
        let a_day = 86_400;
        assert_eq!(day.day_before(at(a_day + 7)), Some(2.0));
        assert_eq!(day.day_before(at(a_day + 65)), Some(2.0));
        assert_eq!(day.day_before(at(a_day + 66)), None);
        assert_eq!(day.day_before(at(a_day + 200)), Some(3.0));
        assert_eq!(day.day_before(at(a_day - 1)), None);
    }

    #[test]
    fn value_at_fills_forward_within_the_limit() {
        let s = series(|t| t as f64, 20);
        assert_eq!(value_at(&s, at(12)), Some(10.0));
        assert_eq!(value_at(&s, at(20 + 60)), Some(20.0));
        assert_eq!(value_at(&s, at(20 + 61)), None);
    }
}
