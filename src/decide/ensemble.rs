//! The online forecast ensemble of one service: the forecast model and three simple forecasters
//! (naive, Holt, seasonal naive), each scored on what the load turned out to be, and the one with
//! the lowest recent error chosen. Pure: time and values are parameters.
//!
//! # The forecast rule
//! Every member forecasts one number: the load at `now + horizon`, the policy's horizon. For the
//! model, that is the step of its output at or just after the horizon (`ceil(horizon / period)`,
//! clamped to the steps it has). That same number is scored when its time comes, chosen on, and
//! handed to `decide`. The peak over the horizon is not used: a peak of a noisy path is biased
//! upward (the maximum of twelve noisy estimates), it was never what the scoring measured, and
//! the scale-up it drives overshoots; the load until the horizon is covered by the observed
//! metric, which `use: scaleUp` keeps as a floor.
//!
//! # The choice
//! The member with the lowest mean absolute error over its last [`SCORED_KEPT`] scored
//! forecasts is used, once at least [`SCORED_BEFORE_CHOICE`] of them have come due; until then
//! the naive forecast (the load stays as it is) is used, which changes nothing a decision would
//! do without a forecast. Naive is always a member, so a chosen member is never worse than
//! naive on recent traffic: the model is left out exactly when something simpler has lately
//! done better.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How many scored forecasts per candidate the choice looks at.
pub const SCORED_KEPT: usize = 24;
/// A candidate needs this many scored forecasts before it may be chosen.
pub const SCORED_BEFORE_CHOICE: usize = 6;
/// Seasonal naive looks one day back.
pub const SEASON: Duration = Duration::days(1);
/// The oldest a sample may be and still stand for the time seasonal naive looks up.
const SEASON_FILL: Duration = Duration::seconds(60);

/// A kind of forecaster in the ensemble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Member {
    /// The load stays as it was last seen.
    Naive,
    /// Holt's linear exponential smoothing (level and trend).
    Holt,
    /// The load one day before the forecast time.
    SeasonalNaive,
    /// The policy's forecast model (the shipped LSTM, or the user's).
    Model,
}

impl Member {
    pub const ALL: [Member; 4] = [
        Member::Naive,
        Member::Holt,
        Member::SeasonalNaive,
        Member::Model,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Member::Naive => "naive",
            Member::Holt => "holt",
            Member::SeasonalNaive => "seasonalNaive",
            Member::Model => "model",
        }
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Holt's smoothing constants tried side by side: slow ones see through bursty counts, fast
/// ones follow ramps. Each is a candidate; all report as [`Member::Holt`].
const HOLT_GRID: [(f64, f64); 3] = [(0.1, 0.01), (0.3, 0.05), (0.7, 0.2)];
/// Candidates: naive, the Holt grid, seasonal naive, the model.
const CANDIDATES: usize = 3 + HOLT_GRID.len();
const NAIVE: usize = 0;
const SEASONAL: usize = 1 + HOLT_GRID.len();
const MODEL: usize = 2 + HOLT_GRID.len();

fn member_of(candidate: usize) -> Member {
    match candidate {
        NAIVE => Member::Naive,
        SEASONAL => Member::SeasonalNaive,
        MODEL => Member::Model,
        _ => Member::Holt,
    }
}

/// Holt's linear method on irregularly spaced samples; the trend is per second.
#[derive(Clone, Copy, Debug)]
struct Holt {
    alpha: f64,
    beta: f64,
    state: Option<(f64, f64)>,
}

impl Holt {
    fn update(&mut self, value: f64, elapsed_secs: f64) {
        self.state = Some(match self.state {
            None => (value, 0.0),
            Some((level, trend)) => {
                let dt = elapsed_secs.max(1e-3);
                let next = self.alpha * value + (1.0 - self.alpha) * (level + trend * dt);
                let slope = (next - level) / dt;
                (next, self.beta * slope + (1.0 - self.beta) * trend)
            }
        });
    }

    fn at(&self, ahead_secs: f64) -> Option<f64> {
        // Loads are never negative: a falling trend stops at zero.
        self.state
            .map(|(level, trend)| (level + trend * ahead_secs).max(0.0))
    }
}

#[derive(Clone, Debug)]
struct Pending {
    due: DateTime<Utc>,
    values: [Option<f64>; CANDIDATES],
}

/// What the ensemble uses now, and how the used member and naive have done lately.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    pub member: Member,
    /// Its forecast of the load at the horizon.
    pub value: f64,
    /// Its recent mean absolute error; `None` while too few forecasts have come due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<f64>,
    /// The naive forecast's recent mean absolute error over the same forecasts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub naive_error: Option<f64>,
    /// The model's recent mean absolute error, when it has been scored enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_error: Option<f64>,
    /// The model's own forecast at the horizon, used or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_value: Option<f64>,
}

impl Choice {
    /// A sentence for decisions and `describe`.
    pub fn describe(&self) -> String {
        let mut text = match (self.error, self.naive_error) {
            (Some(error), Some(naive)) => format!(
                "forecast {:.2} by {}: recent error {error:.3} vs {naive:.3} for naive",
                self.value, self.member
            ),
            _ => format!(
                "forecast {:.2} by {} (fewer than {SCORED_BEFORE_CHOICE} forecasts scored yet)",
                self.value, self.member
            ),
        };
        if self.member != Member::Model {
            if let Some(error) = self.model_error {
                text.push_str(&format!("; model's recent error {error:.3}"));
            }
        }
        text
    }
}

/// The ensemble of one service's load metric, forecasting `horizon` ahead.
#[derive(Clone, Debug)]
pub struct Ensemble {
    horizon: Duration,
    last: Option<(DateTime<Utc>, f64)>,
    holt: [Holt; HOLT_GRID.len()],
    /// The samples of the last day and a horizon, for seasonal naive.
    day: VecDeque<(DateTime<Utc>, f64)>,
    pending: VecDeque<Pending>,
    /// Per candidate, its latest absolute errors, oldest first.
    errors: [VecDeque<f64>; CANDIDATES],
    /// The naive error of the same forecasts as each candidate's errors.
    naive_beside: [VecDeque<f64>; CANDIDATES],
}

impl Ensemble {
    pub fn new(horizon: std::time::Duration) -> Self {
        Ensemble {
            horizon: Duration::from_std(horizon).unwrap_or(Duration::MAX),
            last: None,
            holt: HOLT_GRID.map(|(alpha, beta)| Holt {
                alpha,
                beta,
                state: None,
            }),
            day: VecDeque::new(),
            pending: VecDeque::new(),
            errors: Default::default(),
            naive_beside: Default::default(),
        }
    }

    pub fn horizon(&self) -> Duration {
        self.horizon
    }

    /// Takes the load seen at `at`: scores every forecast due by then and updates the members.
    /// A sample not newer than the last one is ignored, so a second reconcile on the same
    /// reading changes nothing.
    pub fn observe(&mut self, at: DateTime<Utc>, value: f64) {
        if !value.is_finite() || self.last.is_some_and(|(last, _)| at <= last) {
            return;
        }
        while self.pending.front().is_some_and(|p| p.due <= at) {
            let Some(due) = self.pending.pop_front() else {
                break;
            };
            let Some(naive) = due.values[NAIVE] else {
                continue;
            };
            let naive_error = (naive - value).abs();
            for (candidate, forecast) in due.values.iter().enumerate() {
                if let Some(forecast) = forecast {
                    push_bounded(&mut self.errors[candidate], (forecast - value).abs());
                    push_bounded(&mut self.naive_beside[candidate], naive_error);
                }
            }
        }
        let elapsed = self
            .last
            .map(|(last, _)| (at - last).num_milliseconds() as f64 / 1000.0)
            .unwrap_or(0.0);
        for holt in &mut self.holt {
            holt.update(value, elapsed);
        }
        self.last = Some((at, value));
        self.day.push_back((at, value));
        let keep = SEASON + self.horizon + SEASON_FILL;
        while self.day.front().is_some_and(|(t, _)| at - *t > keep) {
            self.day.pop_front();
        }
    }

    /// Every candidate's forecast of the load `ahead` after `now`; `model` is the model's output
    /// path (one value per `period`), when it gave one.
    fn candidates(
        &self,
        now: DateTime<Utc>,
        ahead: Duration,
        model: Option<(&[f32], f64)>,
    ) -> [Option<f64>; CANDIDATES] {
        let mut values = [None; CANDIDATES];
        let Some((last_at, last)) = self.last else {
            return values;
        };
        values[NAIVE] = Some(last);
        // Holt's trend runs from its last sample, which may be older than `now`.
        let since = (now - last_at).num_milliseconds().max(0) as f64 / 1000.0;
        let ahead_secs = ahead.num_milliseconds() as f64 / 1000.0;
        for (i, holt) in self.holt.iter().enumerate() {
            values[1 + i] = holt.at(since + ahead_secs);
        }
        values[SEASONAL] = self.seasonal(now + ahead - SEASON);
        values[MODEL] = model.and_then(|(path, period)| model_at(path, period, ahead));
        values
    }

    /// The latest sample at or before `at`, when the day buffer reaches back that far.
    fn seasonal(&self, at: DateTime<Utc>) -> Option<f64> {
        let end = self.day.partition_point(|(t, _)| *t <= at);
        let (t, value) = *self.day.get(end.checked_sub(1)?)?;
        (at - t <= SEASON_FILL).then_some(value)
    }

    /// The candidate with the lowest recent error among those scored enough; naive otherwise.
    /// A tie goes to the later candidate (the model, then seasonal naive, then Holt): equal
    /// on the recent past, the richer forecaster is the one that can see a change coming.
    fn chosen(&self, available: &[Option<f64>; CANDIDATES]) -> usize {
        let mut best = NAIVE;
        let mut best_error = self.recent(NAIVE).unwrap_or(f64::INFINITY);
        for (candidate, value) in available.iter().enumerate() {
            if value.is_none() {
                continue;
            }
            if let Some(error) = self.recent(candidate) {
                if error <= best_error {
                    (best, best_error) = (candidate, error);
                }
            }
        }
        best
    }

    fn recent(&self, candidate: usize) -> Option<f64> {
        mean_if_enough(&self.errors[candidate])
    }

    /// The best Holt candidate by recent error (the first while none is scored enough).
    fn best_holt(&self) -> usize {
        (1..=HOLT_GRID.len())
            .min_by(|a, b| {
                let (a, b) = (self.recent(*a), self.recent(*b));
                a.unwrap_or(f64::INFINITY)
                    .total_cmp(&b.unwrap_or(f64::INFINITY))
            })
            .unwrap_or(1)
    }

    /// Makes this tick's forecasts (remembered for scoring at `now + horizon`) and returns the
    /// chosen one; `None` before the first sample.
    pub fn forecast(&mut self, now: DateTime<Utc>, model: Option<(&[f32], f64)>) -> Option<Choice> {
        let values = self.candidates(now, self.horizon, model);
        let chosen = self.chosen(&values);
        let value = values[chosen]?;
        if let Some(due) = now.checked_add_signed(self.horizon) {
            if self.pending.back().is_none_or(|p| p.due < due) {
                self.pending.push_back(Pending { due, values });
            }
            // Forecasts whose horizon never comes (the service stopped reporting) must not pile up.
            while self.pending.len() > 4 * SCORED_KEPT {
                self.pending.pop_front();
            }
        }
        let naive_beside = mean_if_enough(&self.naive_beside[chosen]);
        Some(Choice {
            member: member_of(chosen),
            value,
            error: self.recent(chosen).filter(|_| naive_beside.is_some()),
            naive_error: naive_beside,
            model_error: self.recent(MODEL),
            model_value: values[MODEL],
        })
    }

    /// The forecast path `steps` × `period` ahead of `now` of the member the last [`forecast`]
    /// chose (`Ensemble::forecast` must have been called at `now`): for offline evaluation.
    pub fn path(
        &self,
        now: DateTime<Utc>,
        steps: usize,
        period: Duration,
        model: Option<(&[f32], f64)>,
        member: Member,
    ) -> Vec<Option<f64>> {
        let candidate = match member {
            Member::Naive => NAIVE,
            Member::Holt => self.best_holt(),
            Member::SeasonalNaive => SEASONAL,
            Member::Model => MODEL,
        };
        (1..=steps)
            .map(|k| self.candidates(now, period * k as i32, model)[candidate])
            .collect()
    }

    /// The forecast `ahead` of `now` of one member, for offline evaluation.
    pub fn member_at(
        &self,
        member: Member,
        now: DateTime<Utc>,
        ahead: Duration,
        model: Option<(&[f32], f64)>,
    ) -> Option<f64> {
        self.path(now, 1, ahead, model, member)[0]
    }
}

/// The model's value at `ahead`: its step at or just after it, clamped to the steps it has.
pub fn model_at(path: &[f32], period_secs: f64, ahead: Duration) -> Option<f64> {
    if path.is_empty() || period_secs.is_nan() || period_secs <= 0.0 {
        return None;
    }
    let ahead_secs = ahead.num_milliseconds() as f64 / 1000.0;
    let step = ((ahead_secs / period_secs) - 1e-9).ceil().max(1.0) as usize;
    let value = f64::from(path[step.min(path.len()) - 1]);
    value.is_finite().then_some(value)
}

fn push_bounded(queue: &mut VecDeque<f64>, value: f64) {
    queue.push_back(value);
    if queue.len() > SCORED_KEPT {
        queue.pop_front();
    }
}

fn mean_if_enough(errors: &VecDeque<f64>) -> Option<f64> {
    (errors.len() >= SCORED_BEFORE_CHOICE).then(|| errors.iter().sum::<f64>() / errors.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(secs)
    }

    /// Feeds `load(t)` every 15 s with a model path from `model(t)`, returns every choice.
    fn run(
        secs: std::ops::Range<i64>,
        load: impl Fn(i64) -> f64,
        model: impl Fn(i64) -> Option<Vec<f32>>,
    ) -> (Ensemble, Vec<Choice>) {
        let mut ensemble = Ensemble::new(std::time::Duration::from_secs(60));
        let mut out = Vec::new();
        for t in secs.step_by(15) {
            ensemble.observe(at(t), load(t));
            let path = model(t);
            if let Some(choice) = ensemble.forecast(at(t), path.as_deref().map(|p| (p, 5.0))) {
                out.push(choice);
            }
        }
        (ensemble, out)
    }

    #[test]
    fn naive_is_used_until_enough_forecasts_came_due() {
        let (_, choices) = run(0..60, |_| 100.0, |_| Some(vec![500.0; 12]));
        assert!(choices
            .iter()
            .all(|c| c.member == Member::Naive && c.value == 100.0));
        assert_eq!(choices[0].error, None);
        assert_eq!(choices[0].model_value, Some(500.0));
    }

    #[test]
    fn a_model_worse_than_naive_is_left_out_and_a_better_one_is_used() {
        // Steady load, a model that keeps saying 5×: something simpler wins.
        let (_, choices) = run(0..1800, |_| 100.0, |_| Some(vec![500.0; 12]));
        let last = choices.last().unwrap();
        assert_ne!(last.member, Member::Model);
        assert!(last.model_error.unwrap() > 300.0, "{last:?}");
        assert!(
            last.describe().contains("model's recent error"),
            "{}",
            last.describe()
        );

        // A square wave of period 4 min that the model knows exactly: nothing else comes close.
        let wave = |t: i64| if (t / 120) % 2 == 0 { 100.0 } else { 300.0 };
        let (_, choices) = run(0..3600, wave, |t| {
            Some((1..=12).map(|k| wave(t + 5 * k) as f32).collect())
        });
        let last = choices.last().unwrap();
        assert_eq!(last.member, Member::Model, "{last:?}");
        assert_eq!(last.error, Some(0.0));
        assert!(last.naive_error.unwrap() > 50.0);
    }

    #[test]
    fn holt_follows_a_ramp_better_than_naive() {
        let (_, choices) = run(0..1800, |t| 10.0 + t as f64, |_| None);
        let last = choices.last().unwrap();
        assert_eq!(last.member, Member::Holt, "{last:?}");
        assert!(
            last.error.unwrap() < last.naive_error.unwrap() / 4.0,
            "{last:?}"
        );
        // Its forecast is near the load a minute on (10 + 1785 + 60).
        assert!((last.value - 1855.0).abs() < 20.0, "{last:?}");
    }

    #[test]
    fn seasonal_naive_needs_a_day_and_then_repeats_it() {
        let daily = |t: i64| if (t % 86_400) < 43_200 { 50.0 } else { 400.0 };
        let mut ensemble = Ensemble::new(std::time::Duration::from_secs(60));
        let mut t = 0;
        // It first looks back to the first sample at 86 340 s (a day less the horizon).
        while t < 86_340 {
            ensemble.observe(at(t), daily(t));
            assert_eq!(
                ensemble.member_at(Member::SeasonalNaive, at(t), Duration::seconds(60), None),
                None
            );
            t += 15;
        }
        ensemble.observe(at(t), daily(t));
        assert_eq!(
            ensemble.member_at(
                Member::SeasonalNaive,
                at(43_140 + 86_400),
                Duration::seconds(90),
                None
            ),
            Some(400.0)
        );
    }

    #[test]
    fn a_repeated_reading_is_not_counted_twice() {
        let mut ensemble = Ensemble::new(std::time::Duration::from_secs(60));
        ensemble.observe(at(0), 10.0);
        ensemble.observe(at(10), 20.0);
        let once = ensemble.holt;
        ensemble.observe(at(10), 20.0);
        assert_eq!(format!("{once:?}"), format!("{:?}", ensemble.holt));
    }

    #[test]
    fn the_model_value_is_the_step_at_or_after_the_horizon() {
        let path: Vec<f32> = (1..=12).map(|k| k as f32).collect();
        assert_eq!(model_at(&path, 5.0, Duration::seconds(60)), Some(12.0));
        assert_eq!(model_at(&path, 5.0, Duration::seconds(31)), Some(7.0));
        assert_eq!(model_at(&path, 5.0, Duration::seconds(1)), Some(1.0));
        assert_eq!(model_at(&path, 5.0, Duration::seconds(600)), Some(12.0));
        assert_eq!(model_at(&[], 5.0, Duration::seconds(60)), None);
    }
}
