//! One service's model signals, computed the same way by the live loop and by `replay`: the
//! recent history of each metric, the forecaster's window and the classifier's feature row built
//! from it, the forecast rule (the peak over the horizon), its scoring against the naive
//! forecast and the ignore rule, and the traffic-state streak.
//!
//! A reconcile (or a replay tick) is three steps: [`SignalMemory::push`] the samples read,
//! [`SignalMemory::forecast_input`] / [`SignalMemory::classifier_input`] for what the models
//! must be asked, then, with the models' [`Answers`], [`SignalMemory::conclude`]. Running the
//! models in between is the caller's: the live loop batches across services, replay batches
//! across ticks; nothing else differs.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use super::features::{classifier_features, RoleHistories};
use super::metadata::ModelMetadata;
use super::window::{forecast_window, Sample};
use crate::decide::signals::{ForecastTracker, ForecastVerdict, StateChange, StateTracker};
use crate::decide::ObservedState;
use crate::policy::{AnomalySpec, ForecastSpec, PolicySpec, TrafficState};

/// How much history is kept per metric: the classifier's one-hour baseline and a margin.
pub const HISTORY: chrono::Duration = chrono::Duration::minutes(65);

/// What the models say about a service this reconcile, and why when they say nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// The forecast (see [`horizon_reading`]), when the forecaster may be trusted.
    pub forecast: Option<f64>,
    /// The forecast whether trusted or not, for the status and charts.
    pub forecast_seen: Option<f64>,
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

/// The forecast rule, one for the live loop and `replay`: of the steps within `horizon` (the
/// horizon rounded up to whole sample periods, at least one), the peak drives decisions, since
/// replicas must be serving for the worst moment before the horizon, not only at it; the value
/// at the last of those steps is what gets scored against the load seen when it comes due.
/// Returns `(peak, at_horizon)`, or `None` for an empty path.
pub fn horizon_reading(path: &ForecastPath, horizon: std::time::Duration) -> Option<(f64, f64)> {
    let steps = ((horizon.as_secs_f64() / path.period_secs).ceil() as usize)
        .clamp(1, path.steps.len().max(1));
    let ahead = path.steps.get(..steps).filter(|a| !a.is_empty())?;
    let peak = ahead.iter().copied().fold(f32::MIN, f32::max);
    Some((f64::from(peak), f64::from(ahead[steps - 1])))
}

/// One service's memory for the models.
#[derive(Debug, Default)]
pub struct SignalMemory {
    series: BTreeMap<String, VecDeque<Sample>>,
    /// The tracker and the (model, horizon, tolerance) it scores, reset when the policy changes them.
    tracker: Option<(String, ForecastTracker)>,
    states: StateTracker,
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
            None => self.tracker = None,
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
        let path = match path {
            Ok(path) => path,
            Err(error) => return signals.notes.push(format!("forecast skipped: {error}")),
        };
        let Some((peak, at_horizon)) = horizon_reading(&path, spec.horizon.as_std()) else {
            return signals
                .notes
                .push("forecast skipped: the model gave no steps".to_owned());
        };
        // The naive forecast and the value a due forecast is scored against: the newest sample.
        let current = self
            .series
            .get(&spec.metric)
            .and_then(|series| series.back())
            .filter(|s| s.at <= now)
            .map(|s| s.value);
        let key = format!("{}@{}~{tolerance}", spec.model, spec.horizon);
        if self
            .tracker
            .as_ref()
            .is_none_or(|(tracked, _)| *tracked != key)
        {
            self.tracker = Some((key, ForecastTracker::new(spec.horizon.as_std(), tolerance)));
        }
        let Some((_, tracker)) = self.tracker.as_mut() else {
            return;
        };
        if let Some(current) = current {
            tracker.observed(now, current);
            tracker.predicted(now, at_horizon, current);
        }
        let verdict = tracker.verdict();
        signals.forecast_seen = Some(peak);
        signals.forecast = verdict.usable().then_some(peak);
        signals.notes.push(verdict.describe());
        signals.verdict = Some(verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn path(steps: &[f32], period_secs: f64) -> ForecastPath {
        ForecastPath {
            steps: steps.to_vec(),
            period_secs,
        }
    }

    #[test]
    fn the_peak_within_the_horizon_drives_and_the_value_at_it_is_scored() {
        let p = path(&[1.0, 5.0, 2.0, 9.0], 5.0);
        // 10 s: two steps, whose peak is also the value at the horizon.
        assert_eq!(
            horizon_reading(&p, Duration::from_secs(10)),
            Some((5.0, 5.0))
        );
        // 12 s rounds up to three steps.
        assert_eq!(
            horizon_reading(&p, Duration::from_secs(12)),
            Some((5.0, 2.0))
        );
        // Past the path: all of it. Shorter than a period: the first step.
        assert_eq!(
            horizon_reading(&p, Duration::from_secs(600)),
            Some((9.0, 9.0))
        );
        assert_eq!(
            horizon_reading(&p, Duration::from_secs(1)),
            Some((1.0, 1.0))
        );
        assert_eq!(
            horizon_reading(&path(&[], 5.0), Duration::from_secs(5)),
            None
        );
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
