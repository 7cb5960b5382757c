//! One service's model signals, computed the same way by the live loop and by `replay`: the
//! recent history of each metric, the forecaster's window and the classifier's feature row built
//! from it, the online forecast ensemble (scoring, choice of member) and the traffic-state streak.
//!
//! A reconcile (or a replay tick) is three steps: [`SignalMemory::record`] the readings,
//! [`SignalMemory::inputs`] for what the models must be asked, then, with the models' answers,
//! [`SignalMemory::conclude`]. Running the models in between is the caller's: the live loop
//! batches across services, replay runs them in place; nothing else differs.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};

use super::features::{classifier_features, RoleHistories};
use super::metadata::ModelMetadata;
use super::window::{forecast_window, Sample};
use crate::decide::ensemble::{Choice, Ensemble};
use crate::decide::signals::{StateChange, StateTracker};
use crate::decide::ObservedState;
use crate::policy::{AnomalySpec, ForecastSpec, PolicySpec, TrafficState};

/// How much history is kept per metric: the classifier's one-hour baseline and a margin.
pub const HISTORY: chrono::Duration = chrono::Duration::minutes(65);

/// What the models say about a service this reconcile, and why when they say nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// The ensemble's forecast at the policy's horizon, the member that made it and the recent
    /// errors (see [`crate::decide::ensemble`]).
    pub forecast: Option<Choice>,
    pub traffic: Option<ObservedState>,
    /// A change of traffic state this reconcile.
    pub change: Option<StateChange>,
    /// Sentences for the decision message: the forecast's member and errors, or why a model was
    /// skipped.
    pub notes: Vec<String>,
}

impl Signals {
    /// The forecast value for `decide`.
    pub fn forecast_value(&self) -> Option<f64> {
        self.forecast.as_ref().map(|choice| choice.value)
    }
}

/// What the models must be asked this reconcile: the forecaster's window and the classifier's
/// feature row, or why not (model missing, history too short...). `None`: the policy has none.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    pub forecast: Option<Result<Vec<f32>, String>>,
    pub classify: Option<Result<[f32; 5], String>>,
}

/// The models' answers to [`Inputs`]: the forecast path with the model's sample period in
/// seconds, and the traffic state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answers {
    pub forecast: Option<Result<(Vec<f32>, f64), String>>,
    pub state: Option<Result<TrafficState, String>>,
}

/// One service's memory for the models.
#[derive(Debug, Default)]
pub struct SignalMemory {
    series: BTreeMap<String, VecDeque<Sample>>,
    /// The ensemble and the (model, horizon) it forecasts, reset when the policy changes them.
    ensemble: Option<(String, Ensemble)>,
    states: StateTracker,
}

impl SignalMemory {
    /// Adds this reconcile's readings (`None`: the metric failed) and forgets metrics no longer
    /// read and samples no model can use.
    pub fn record<'a>(&mut self, readings: impl IntoIterator<Item = (&'a str, Option<Sample>)>) {
        let mut seen = Vec::new();
        for (name, sample) in readings {
            seen.push(name);
            let series = self.series.entry(name.to_owned()).or_default();
            if let Some(sample) = sample {
                if series.back().is_none_or(|last| last.at < sample.at) {
                    series.push_back(sample);
                }
            }
            if let Some(newest) = series.back().map(|s| s.at) {
                while series.front().is_some_and(|s| newest - s.at > HISTORY) {
                    series.pop_front();
                }
            }
        }
        self.series.retain(|name, _| seen.contains(&name.as_str()));
    }

    /// Adds samples read at once over a past range (a backfill after a restart), oldest first;
    /// samples not newer than the newest kept are dropped.
    pub fn backfill(&mut self, name: &str, samples: &[Sample]) {
        let series = self.series.entry(name.to_owned()).or_default();
        for sample in samples {
            if series.back().is_none_or(|last| last.at < sample.at) {
                series.push_back(*sample);
            }
        }
        if let Some(newest) = series.back().map(|s| s.at) {
            while series.front().is_some_and(|s| newest - s.at > HISTORY) {
                series.pop_front();
            }
        }
    }

    /// What the policy's models must be asked at `now`. `forecaster` and `classifier` are the
    /// loaded models' metadata (or why they could not be loaded), asked only for what the
    /// policy names.
    pub fn inputs(
        &mut self,
        spec: &PolicySpec,
        forecaster: impl FnOnce(&ForecastSpec) -> Result<ModelMetadata, String>,
        classifier: impl FnOnce(&AnomalySpec) -> Result<ModelMetadata, String>,
        now: DateTime<Utc>,
    ) -> Inputs {
        let forecast = spec.forecast.as_ref().map(|forecast| {
            let meta = forecaster(forecast)?;
            let series = self.series.entry(forecast.metric.clone()).or_default();
            forecast_window(
                &forecast.metric,
                series.make_contiguous(),
                now,
                meta.window,
                meta.sample_period_secs,
            )
            .map_err(|e| e.to_string())
        });
        let classify = spec.anomaly.as_ref().map(|anomaly| {
            let meta = classifier(anomaly)?;
            self.classifier_row(anomaly, &meta, now)
        });
        Inputs { forecast, classify }
    }

    fn classifier_row(
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

    /// Takes the models' answers at `now`: scores and chooses the forecast, follows the state.
    pub fn conclude(&mut self, spec: &PolicySpec, answers: Answers, now: DateTime<Utc>) -> Signals {
        let mut signals = Signals::default();
        match &spec.forecast {
            Some(forecast) => {
                let model = answers
                    .forecast
                    .unwrap_or_else(|| Err("the model was not run".to_owned()));
                self.forecast(forecast, model, now, &mut signals);
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
        model: Result<(Vec<f32>, f64), String>,
        now: DateTime<Utc>,
        signals: &mut Signals,
    ) {
        let key = format!("{}@{}", spec.model, spec.horizon);
        if self
            .ensemble
            .as_ref()
            .is_none_or(|(tracked, _)| *tracked != key)
        {
            self.ensemble = Some((key, Ensemble::new(spec.horizon.as_std())));
        }
        let Some((_, ensemble)) = self.ensemble.as_mut() else {
            return;
        };
        let latest = self
            .series
            .get(&spec.metric)
            .and_then(|series| series.iter().rev().find(|s| s.at <= now).copied());
        if let Some(sample) = latest {
            ensemble.observe(sample.at, sample.value);
        }
        if let Err(why) = &model {
            signals.notes.push(format!("forecast model skipped: {why}"));
        }
        let path = model
            .as_ref()
            .ok()
            .map(|(path, period)| (path.as_slice(), *period));
        signals.forecast = ensemble.forecast(now, path);
        match &signals.forecast {
            Some(choice) => signals.notes.push(choice.describe()),
            None => signals
                .notes
                .push(format!("no forecast: no sample of {} yet", spec.metric)),
        }
    }
}
