//! One service's model signals, computed the same way by the live loop, `replay` and `model
//! eval`: the recent history of each metric, the forecaster's window and the classifier's feature
//! row built from it, the forecast ensemble (its members' forecasts, their scoring and the member
//! in use, see [`super::ensemble`]), the forecast rule (the peak over the horizon), and the
//! traffic-state streak.
//!
//! A reconcile (or a replay tick) is three steps: [`SignalMemory::push`] the samples read,
//! [`SignalMemory::forecast_input`] / [`SignalMemory::classifier_input`] for what the models
//! must be asked, then, with the models' [`Answers`], [`SignalMemory::conclude`]. Running the
//! models in between is the caller's: the live loop batches across services, replay batches
//! across ticks; nothing else differs.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use super::ensemble::{
    autoregression, holt, recent_stretch, DayHistory, Ensemble, MemberPaths, Standing, AR_WINDOW,
    HOLT_WINDOW,
};
use super::features::{classifier_features, RoleHistories};
use super::metadata::ModelMetadata;
use super::window::{forecast_window, Sample};
use crate::decide::signals::{ForecastVerdict, Member, StateChange, StateTracker};
use crate::decide::ObservedState;
use crate::policy::{AnomalySpec, ForecastSpec, PolicySpec, TrafficState};

/// How much history is kept per metric: the classifier's one-hour baseline and a margin.
pub const HISTORY: chrono::Duration = chrono::Duration::minutes(65);

/// What the models say about a service this reconcile, and why when they say nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// The ensemble's forecast (see [`horizon_peak`]), unless the naive forecast is in use.
    pub forecast: Option<f64>,
    /// The forecast whether used or not (when ignored: the best forecaster's), for the status
    /// and charts.
    pub forecast_seen: Option<f64>,
    /// Each member's forecast over the steps within the horizon.
    pub members: MemberPaths,
    /// Each member's recent error, for the status and `/metrics`.
    pub standing: Option<Standing>,
    pub traffic: Option<ObservedState>,
    /// A change of traffic state this reconcile.
    pub change: Option<StateChange>,
    /// The forecaster's standing, when it ran (the `ForecastTrusted` condition).
    pub verdict: Option<ForecastVerdict>,
    /// Sentences for the decision message: the forecast's verdict, or why a model was skipped.
    pub notes: Vec<String>,
}

/// The forecaster's output path, one value per sample period ahead, and that period in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastPath {
    pub steps: Vec<f32>,
    pub period_secs: f64,
}

/// The models' answers at one reconcile, or why a model gave none; `None`: it was not asked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answers {
    pub forecast: Option<Result<ForecastPath, String>>,
    pub state: Option<Result<TrafficState, String>>,
}

/// How many steps of a path of `len` steps, one per `period_secs`, are within `horizon`: the
/// horizon rounded up to whole sample periods, at least one, at most the path.
pub fn horizon_steps(len: usize, period_secs: f64, horizon: std::time::Duration) -> usize {
    ((horizon.as_secs_f64() / period_secs).ceil() as usize).clamp(1, len.max(1))
}

/// The forecast rule, one for the live loop, `replay` and `model eval`: of the chosen member's
/// steps within the horizon, the peak drives decisions, since replicas must be serving for the
/// worst moment before the horizon, not only at it. `None` for an empty path.
pub fn horizon_peak(steps: &[f64]) -> Option<f64> {
    steps.iter().copied().reduce(f64::max)
}

/// What the ensemble's scoring depends on: a change starts it afresh.
#[derive(Clone, Debug, PartialEq)]
struct Scoring {
    model: String,
    horizon: std::time::Duration,
    tolerance: f64,
}

/// One service's memory for the models.
#[derive(Debug, Default)]
pub struct SignalMemory {
    series: BTreeMap<String, VecDeque<Sample>>,
    /// The ensemble and what it scores, reset when the policy changes that.
    ensemble: Option<(Scoring, Ensemble)>,
    /// A day of the forecast metric, for seasonal naive.
    day: DayHistory,
    states: StateTracker,
}

/// How many samples of a forecast metric's history the ensemble reads: the model's window, and
/// the last hour the autoregression is fitted on (what a start-up backfill should fetch).
pub fn forecast_history_samples(meta: &ModelMetadata) -> usize {
    meta.window.max(AR_WINDOW)
}

impl SignalMemory {
    /// Adds a sample of metric `name`; samples not newer than the newest kept are dropped, and
    /// samples older than [`HISTORY`] before the newest are forgotten.
    pub fn push(&mut self, name: &str, sample: Sample) {
        let series = match self.series.get_mut(name) {
            Some(series) => series,
            None => self.series.entry(name.to_owned()).or_default(),
        };
        if series.back().is_some_and(|last| last.at >= sample.at) {
            return;
        }
        series.push_back(sample);
        self.day.push(name, &sample);
        while series.front().is_some_and(|s| sample.at - s.at > HISTORY) {
            series.pop_front();
        }
    }

    /// Forgets the metrics not in `names` (no longer read by the policy).
    pub fn keep_only<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        let names: Vec<&str> = names.into_iter().collect();
        self.series.retain(|name, _| names.contains(&name.as_str()));
        for name in names {
            self.series.entry(name.to_owned()).or_default();
        }
    }

    /// The samples kept of metric `name`, oldest first.
    pub fn series(&self, name: &str) -> impl Iterator<Item = &Sample> {
        self.series.get(name).into_iter().flatten()
    }

    /// The forecaster's window at `now`, or why there is none.
    pub fn forecast_input(
        &mut self,
        spec: &ForecastSpec,
        meta: &ModelMetadata,
        now: DateTime<Utc>,
    ) -> Result<Vec<f32>, String> {
        let series = self.series.entry(spec.metric.clone()).or_default();
        forecast_window(
            &spec.metric,
            series.make_contiguous(),
            now,
            meta.window,
            meta.sample_period_secs,
        )
        .map_err(|e| e.to_string())
    }

    /// The classifier's feature row at `now`, or why there is none.
    pub fn classifier_input(
        &mut self,
        spec: &AnomalySpec,
        meta: &ModelMetadata,
        now: DateTime<Utc>,
    ) -> Result<[f32; 5], String> {
        for series in self.series.values_mut() {
            series.make_contiguous();
        }
        let history = |role: &Option<String>| {
            role.as_ref()
                .and_then(|name| self.series.get(name))
                .map(|series| series.as_slices().0)
        };
        let roles = RoleHistories {
            requests: history(&spec.inputs.requests),
            errors: history(&spec.inputs.errors),
            latency: history(&spec.inputs.latency),
            receive_bytes: history(&spec.inputs.receive_bytes),
            transmit_bytes: history(&spec.inputs.transmit_bytes),
        };
        classifier_features(&roles, now, meta).map_err(|e| e.to_string())
    }

    /// Takes the models' answers at `now`: applies the forecast rule, scores the forecaster
    /// against the naive forecast and applies the ignore rule, and follows the state streak.
    pub fn conclude(&mut self, spec: &PolicySpec, answers: Answers, now: DateTime<Utc>) -> Signals {
        let mut signals = Signals::default();
        match &spec.forecast {
            Some(forecast) => {
                let tolerance = spec.behavior.scale_up().tolerance;
                let path = answers
                    .forecast
                    .unwrap_or_else(|| Err("the model was not run".to_owned()));
                self.forecast(forecast, tolerance, path, now, &mut signals);
            }
            None => self.ensemble = None,
        }
        match (&spec.anomaly, answers.state) {
            (Some(_), Some(Ok(state))) => {
                signals.change = self.states.observe(state, now);
                signals.traffic = self.states.current();
            }
            (Some(_), found) => {
                self.states.lost();
                let why = match found {
                    Some(Err(why)) => why,
                    _ => "the model was not run".to_owned(),
                };
                signals.notes.push(format!("traffic state skipped: {why}"));
            }
            (None, _) => self.states.lost(),
        }
        signals
    }

    fn forecast(
        &mut self,
        spec: &ForecastSpec,
        tolerance: f64,
        path: Result<ForecastPath, String>,
        now: DateTime<Utc>,
        signals: &mut Signals,
    ) {
        match path {
            Ok(path) => self.ensemble_forecast(spec, tolerance, &path, now, signals),
            Err(error) => signals.notes.push(format!("forecast skipped: {error}")),
        }
    }

    /// The ensemble at `now` given the model's `path`: every member's forecast over the steps
    /// within the horizon, the scoring of those that came due, the member in use and the
    /// forecast rule applied to its path. `model eval` calls this as the live loop does.
    pub fn ensemble_forecast(
        &mut self,
        spec: &ForecastSpec,
        tolerance: f64,
        path: &ForecastPath,
        now: DateTime<Utc>,
        signals: &mut Signals,
    ) {
        let period = path.period_secs;
        let steps = horizon_steps(path.steps.len(), period, spec.horizon.as_std());
        let Some(model) = path.steps.get(..steps).filter(|s| !s.is_empty()) else {
            return signals
                .notes
                .push("forecast skipped: the model gave no steps".to_owned());
        };
        let series = self.series.entry(spec.metric.clone()).or_default();
        let series = &*series.make_contiguous();
        // The naive forecast: the newest sample; without one nothing can be scored.
        let Some(current) = series.iter().rev().find(|s| s.at <= now).map(|s| s.value) else {
            return signals
                .notes
                .push("forecast skipped: no sample of the load yet".to_owned());
        };
        self.day.follow(&spec.metric, period, series.iter());
        let mut members = MemberPaths::default();
        members.set(
            Member::Model,
            Some(model.iter().map(|&v| f64::from(v)).collect()),
        );
        members.set(Member::Naive, Some(vec![current; steps]));
        let window = forecast_window(&spec.metric, series, now, HOLT_WINDOW, period).ok();
        let window: Option<Vec<f64>> = window.map(|w| w.into_iter().map(f64::from).collect());
        members.set(Member::Holt, window.and_then(|w| holt(&w, steps)));
        members.set(Member::SeasonalNaive, self.day.seasonal(now, period, steps));
        let stretch = recent_stretch(series, now, AR_WINDOW, period);
        members.set(Member::Autoregressive, autoregression(&stretch, steps));
        members.combine();

        let scoring = Scoring {
            model: spec.model.clone(),
            horizon: spec.horizon.as_std(),
            tolerance,
        };
        if self.ensemble.as_ref().is_none_or(|(s, _)| *s != scoring) {
            self.ensemble = Some((scoring, Ensemble::new(tolerance)));
        }
        let Some((_, ensemble)) = self.ensemble.as_mut() else {
            return;
        };
        ensemble.observed(now, series);
        let verdict = ensemble.choose(|m| members.get(m).is_some());
        ensemble.predicted(now, period, members.clone());
        let shown = match &verdict {
            ForecastVerdict::Ignored { best, .. } => *best,
            used => used.member().unwrap_or(Member::Model),
        };
        let peak = members.get(shown).and_then(horizon_peak);
        signals.forecast_seen = peak;
        signals.forecast = peak.filter(|_| verdict.usable());
        signals.notes.push(verdict.describe());
        signals.verdict = Some(verdict);
        signals.standing = Some(ensemble.standing());
        signals.members = members;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_steps_within_the_horizon_and_their_peak() {
        // 10 s: two steps; 12 s rounds up to three; past the path: all of it; shorter than a
        // period: the first step.
        assert_eq!(horizon_steps(4, 5.0, Duration::from_secs(10)), 2);
        assert_eq!(horizon_steps(4, 5.0, Duration::from_secs(12)), 3);
        assert_eq!(horizon_steps(4, 5.0, Duration::from_secs(600)), 4);
        assert_eq!(horizon_steps(4, 5.0, Duration::from_secs(1)), 1);
        assert_eq!(horizon_peak(&[1.0, 5.0, 2.0]), Some(5.0));
        assert_eq!(horizon_peak(&[]), None);
    }

    #[test]
    fn pushing_keeps_order_and_history_bounded() {
        let t0: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let mut memory = SignalMemory::default();
        for i in 0..(70 * 12) {
            let at = t0 + chrono::Duration::seconds(5 * i);
            memory.push("rps", Sample { at, value: 1.0 });
        }
        memory.push("rps", Sample { at: t0, value: 2.0 });
        let kept: Vec<&Sample> = memory.series("rps").collect();
        assert_eq!(kept.len(), 65 * 12 + 1);
        assert!(kept.iter().all(|s| s.value == 1.0));
        memory.keep_only(["cpu"]);
        assert_eq!(memory.series("rps").count(), 0);
    }
}
