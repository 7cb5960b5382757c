//! The online forecast ensemble of one service: the members other than the model (the mean of
//! the model and the autoregression, an autoregression of the load's changes, naive last value,
//! Holt's damped-trend smoothing, seasonal naive one day back), the one error every member is
//! scored by once its horizon has passed, and the rule that chooses the member in use.
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

/// The autoregression's order: two minutes of 5 s changes, twice the span of a `rate(...[1m])`,
/// whose changes are what enters the range less what leaves it a minute later.
pub const AR_ORDER: usize = 24;
/// At most this many samples (an hour at 5 s, within the history kept) fit the autoregression.
pub const AR_WINDOW: usize = 720;
/// The autoregression needs this many changes (four per coefficient) before it forecasts.
const AR_MIN_CHANGES: usize = 4 * AR_ORDER;

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

/// An autoregression of order [`AR_ORDER`] on the first differences of `window` (oldest first),
/// fitted by Yule-Walker (Levinson-Durbin, so the fitted recursion is stable), iterated `steps`
/// values ahead from the last value; `None` for fewer than [`AR_MIN_CHANGES`] changes or a
/// non-finite value. The changes are taken to have no drift: a level series that never moves
/// keeps its value. A load that was never negative is not forecast below zero.
pub fn autoregression(window: &[f64], steps: usize) -> Option<Vec<f64>> {
    let (&last, _) = window.split_last()?;
    if window.len() <= AR_MIN_CHANGES || window.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let changes: Vec<f64> = window.windows(2).map(|w| w[1] - w[0]).collect();
    let n = changes.len() as f64;
    let covariance: Vec<f64> = (0..=AR_ORDER)
        .map(|lag| {
            changes[lag..]
                .iter()
                .zip(&changes)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / n
        })
        .collect();
    let coefficients = levinson_durbin(&covariance);
    let floor = if window.iter().all(|&v| v >= 0.0) {
        0.0
    } else {
        f64::NEG_INFINITY
    };
    // The latest changes, newest first, extended by the forecast ones.
    let mut recent: VecDeque<f64> = changes.iter().rev().take(AR_ORDER).copied().collect();
    let mut level = last;
    Some(
        (0..steps)
            .map(|_| {
                let change: f64 = coefficients.iter().zip(&recent).map(|(c, d)| c * d).sum();
                recent.push_front(change);
                recent.truncate(AR_ORDER);
                level += change;
                level.max(floor)
            })
            .collect(),
    )
}

/// The autoregressive coefficients (lag 1 first) solving the Yule-Walker equations of the
/// autocovariances `covariance` (lag 0 first); zeros for a series that never changes.
fn levinson_durbin(covariance: &[f64]) -> Vec<f64> {
    let order = covariance.len() - 1;
    let mut coefficients = vec![0.0; order];
    let mut error = covariance[0];
    for k in 0..order {
        if error <= f64::EPSILON * covariance[0].abs().max(f64::MIN_POSITIVE) {
            break;
        }
        let partial = (covariance[k + 1]
            - (0..k)
                .map(|j| coefficients[j] * covariance[k - j])
                .sum::<f64>())
            / error;
        let previous = coefficients.clone();
        coefficients[k] = partial;
        for j in 0..k {
            coefficients[j] = previous[j] - partial * previous[k - 1 - j];
        }
        error *= 1.0 - partial * partial;
    }
    coefficients
}

/// The latest gap-free stretch of `series` (oldest first) on the grid of `period_secs` ending at
/// `now`, at most `max` values, each by the window's forward-fill rule ([`value_at`]); empty
/// when `now` itself cannot be filled.
pub fn recent_stretch(
    series: &[Sample],
    now: DateTime<Utc>,
    max: usize,
    period_secs: f64,
) -> Vec<f64> {
    let mut values: Vec<f64> = (0..max)
        .map_while(|k| value_at(series, now - step(period_secs, k)))
        .collect();
    values.reverse();
    values
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
    paths: [Option<Vec<f64>>; Member::ALL.len()],
}

impl MemberPaths {
    pub fn set(&mut self, member: Member, path: Option<Vec<f64>>) {
        self.paths[member.index()] = path;
    }

    /// Sets the combined member from the model's and the autoregression's paths: their mean
    /// step by step, equal weights (weights estimated from a few minutes of scored errors
    /// did worse), or none unless both forecast.
    pub fn combine(&mut self) {
        let combined = match (self.get(Member::Model), self.get(Member::Autoregressive)) {
            (Some(model), Some(ar)) => {
                Some(model.iter().zip(ar).map(|(m, a)| (m + a) / 2.0).collect())
            }
            _ => None,
        };
        self.set(Member::Combined, combined);
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
    errors: [Option<f64>; Member::ALL.len()],
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
            let mut errors = [None; Member::ALL.len()];
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

    #[test]
    fn the_autoregression_continues_the_pattern_of_the_changes() {
        // A load that goes up and down by 10 every sample: the changes alternate, which the
        // autoregression reads and naive (or Holt) cannot.
        let sawtooth: Vec<f64> = (0..200).map(|i| 100.0 + 10.0 * (i % 2) as f64).collect();
        let path = autoregression(&sawtooth, 4).unwrap();
        assert_eq!(sawtooth[199], 110.0);
        for (k, value) in path.iter().enumerate() {
            let expected = if k % 2 == 0 { 100.0 } else { 110.0 };
            assert!((value - expected).abs() < 1.0, "{path:?}");
        }
        // A level that never moves keeps its value; a falling load is not forecast below 0.
        assert_eq!(autoregression(&[5.0; 200], 3), Some(vec![5.0; 3]));
        let falling: Vec<f64> = (0..200).map(|i| (200 - i) as f64 * 0.01).collect();
        assert!(autoregression(&falling, 60)
            .unwrap()
            .iter()
            .all(|v| *v >= 0.0));
        // Too few changes for its coefficients, or a gap: none.
        assert_eq!(autoregression(&[1.0; AR_MIN_CHANGES], 3), None);
        let mut gap = vec![1.0; 200];
        gap[100] = f64::NAN;
        assert_eq!(autoregression(&gap, 3), None);
    }

    #[test]
    fn levinson_durbin_solves_the_yule_walker_equations() {
        // An AR(1) with coefficient 0.5 and unit innovations: autocovariances 4/3 * 0.5^k.
        let covariance: Vec<f64> = (0..4).map(|k| 4.0 / 3.0 * 0.5f64.powi(k)).collect();
        let coefficients = levinson_durbin(&covariance);
        assert!((coefficients[0] - 0.5).abs() < 1e-12, "{coefficients:?}");
        assert!(
            coefficients[1..].iter().all(|c| c.abs() < 1e-12),
            "{coefficients:?}"
        );
        assert_eq!(levinson_durbin(&[0.0, 0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn the_recent_stretch_ends_at_a_gap_or_the_history_start() {
        // 5 s samples from 0 to 500 s, none between 100 and 200 s.
        let load: Vec<Sample> = series(|t| t as f64, 500)
            .into_iter()
            .filter(|s| !(105..200).contains(&(s.at - at(0)).num_seconds()))
            .collect();
        let stretch = recent_stretch(&load, at(500), 1000, 5.0);
        // The sample at 100 s fills forward only up to 160 s: the stretch starts at 200 s.
        assert_eq!(stretch.first(), Some(&200.0));
        assert_eq!(stretch.len(), (500 - 200) / 5 + 1);
        assert_eq!(stretch.last(), Some(&500.0));
        let short = recent_stretch(&load[..5], at(22), 1000, 5.0);
        assert_eq!(short, vec![0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(recent_stretch(&load, at(500), 3, 5.0).len(), 3);
        assert!(recent_stretch(&[], at(500), 3, 5.0).is_empty());
    }

    #[test]
    fn the_combined_member_is_the_mean_of_the_model_and_the_autoregression() {
        let mut members = paths(100.0, 50.0, 80.0);
        members.combine();
        assert_eq!(members.get(Member::Combined), None, "no autoregression yet");
        members.set(Member::Autoregressive, Some(vec![120.0; 12]));
        members.combine();
        assert_eq!(members.get(Member::Combined), Some(&[110.0; 12][..]));
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
    fn the_combined_member_comes_first_in_order_of_preference() {
        let load = series(|_| 100.0, 200);
        let mut ensemble = Ensemble::new(0.1);
        for k in 0..10 {
            let mut members = paths(104.0, 100.0, 100.0);
            members.set(Member::Autoregressive, Some(vec![100.0; 12]));
            members.combine();
            ensemble.observed(at(5 * k), &load);
            ensemble.predicted(at(5 * k), 5.0, members);
        }
        ensemble.observed(at(200), &load);
        // Combined off by 2, the autoregression exact: within the tolerance, so combined.
        let verdict = ensemble.choose(|_| true);
        assert_eq!(
            verdict,
            ForecastVerdict::Trusted {
                member: Member::Combined,
                member_error: 2.0,
                naive_error: 0.0
            }
        );
        assert!(verdict.describe().contains("combined"));
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
