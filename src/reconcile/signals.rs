//! The models in the live loop: each service's recent metric history, its forecast (scored
//! against the naive forecast before it may drive a decision) and its traffic state, with
//! inference batched across the services reconciled together.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::batcher::Batcher;
use crate::decide::signals::{ForecastTracker, ForecastVerdict, StateChange, StateTracker};
use crate::decide::ObservedState;
use crate::metrics::MetricReading;
use crate::models::{
    check_anomaly, check_forecast, classifier_features, forecast_window, Classification,
    Classifier, Forecaster, ModelCache, RoleHistories, Sample,
};
use crate::policy::{AnomalySpec, ForecastSpec, PolicySpec};

/// How much history is kept per metric: the classifier's one-hour baseline and a margin.
const HISTORY: chrono::Duration = chrono::Duration::minutes(65);
/// How long a batch waits for other services' requests after the first one.
const LINGER: Duration = Duration::from_millis(20);
const MAX_BATCH: usize = 1024;

type ForecastBatcher = Batcher<Vec<f32>, Result<Vec<f32>, String>>;
type ClassifyBatcher = Batcher<[f32; 5], Result<Classification, String>>;

/// The models of every policy, loaded once, with one batcher per model.
#[derive(Default)]
pub struct ModelRunner {
    cache: ModelCache,
    forecasters: Mutex<HashMap<String, Arc<ForecastBatcher>>>,
    classifiers: Mutex<HashMap<String, Arc<ClassifyBatcher>>>,
}

impl ModelRunner {
    /// A runner loading its models through `cache`.
    pub fn new(cache: ModelCache) -> Self {
        Self {
            cache,
            forecasters: Mutex::default(),
            classifiers: Mutex::default(),
        }
    }

    async fn forecaster(
        &self,
        spec: &ForecastSpec,
    ) -> Result<(Arc<ForecastBatcher>, crate::models::ModelMetadata), String> {
        let model = self
            .cache
            .get(&spec.model)
            .await
            .map_err(|e| e.to_string())?;
        check_forecast(spec, &model).map_err(|e| e.to_string())?;
        let metadata = model.metadata.clone();
        let mut batchers = self.forecasters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(batcher) = batchers.get(&spec.model) {
            return Ok((Arc::clone(batcher), metadata));
        }
        let forecaster = Forecaster::new(model).map_err(|e| e.to_string())?;
        let batcher = Arc::new(Batcher::spawn(
            move |windows: Vec<Vec<f32>>| match forecaster.forecast(&windows) {
                Ok(outputs) => outputs.into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error.to_string()); windows.len()],
            },
            LINGER,
            MAX_BATCH,
        ));
        batchers.insert(spec.model.clone(), Arc::clone(&batcher));
        Ok((batcher, metadata))
    }

    async fn classifier(
        &self,
        spec: &AnomalySpec,
    ) -> Result<(Arc<ClassifyBatcher>, crate::models::ModelMetadata), String> {
        let model = self
            .cache
            .get(&spec.model)
            .await
            .map_err(|e| e.to_string())?;
        check_anomaly(spec, &model).map_err(|e| e.to_string())?;
        let metadata = model.metadata.clone();
        let mut batchers = self.classifiers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(batcher) = batchers.get(&spec.model) {
            return Ok((Arc::clone(batcher), metadata));
        }
        let classifier = Classifier::new(model).map_err(|e| e.to_string())?;
        let batcher = Arc::new(Batcher::spawn(
            move |rows: Vec<[f32; 5]>| match classifier.classify(&rows) {
                Ok(outputs) => outputs.into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error.to_string()); rows.len()],
            },
            LINGER,
            MAX_BATCH,
        ));
        batchers.insert(spec.model.clone(), Arc::clone(&batcher));
        Ok((batcher, metadata))
    }
}

/// What the models say about a service this reconcile, and why when they say nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// The forecast peak within the horizon, when the forecaster may be trusted.
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

/// One service's memory for the models.
#[derive(Debug, Default)]
pub struct SignalMemory {
    series: BTreeMap<String, VecDeque<Sample>>,
    /// The tracker and the (model, horizon, tolerance) it scores, reset when the policy changes them.
    tracker: Option<(String, ForecastTracker)>,
    states: StateTracker,
}

impl SignalMemory {
    /// Adds this reconcile's readings to the history and forgets what no model can use.
    pub fn record(&mut self, readings: &[MetricReading]) {
        for reading in readings {
            let series = self.series.entry(reading.name.clone()).or_default();
            if let Ok(value) = &reading.result {
                if series.back().is_none_or(|last| last.at < value.at) {
                    series.push_back(Sample {
                        at: value.at,
                        value: value.value,
                    });
                }
            }
            if let Some(newest) = series.back().map(|s| s.at) {
                while series.front().is_some_and(|s| newest - s.at > HISTORY) {
                    series.pop_front();
                }
            }
        }
        self.series
            .retain(|name, _| readings.iter().any(|r| &r.name == name));
    }

    /// Asks the policy's models about the service at `now`.
    pub async fn evaluate(
        &mut self,
        spec: &PolicySpec,
        runner: &ModelRunner,
        now: DateTime<Utc>,
    ) -> Signals {
        let mut signals = Signals::default();
        match &spec.forecast {
            Some(forecast) => {
                let tolerance = spec.behavior.scale_up().tolerance;
                self.forecast(forecast, tolerance, runner, now, &mut signals)
                    .await
            }
            None => self.tracker = None,
        }
        match &spec.anomaly {
            Some(anomaly) => self.classify(anomaly, runner, now, &mut signals).await,
            None => self.states.lost(),
        }
        signals
    }

    async fn forecast(
        &mut self,
        spec: &ForecastSpec,
        tolerance: f64,
        runner: &ModelRunner,
        now: DateTime<Utc>,
        signals: &mut Signals,
    ) {
        let (batcher, metadata) = match runner.forecaster(spec).await {
            Ok(found) => found,
            Err(error) => return signals.notes.push(format!("forecast skipped: {error}")),
        };
        let series = self.series.entry(spec.metric.clone()).or_default();
        let current = series.back().filter(|s| s.at <= now).map(|s| s.value);
        let window = match forecast_window(
            &spec.metric,
            series.make_contiguous(),
            now,
            metadata.window,
            metadata.sample_period_secs,
        ) {
            Ok(window) => window,
            Err(error) => return signals.notes.push(format!("forecast skipped: {error}")),
        };
        let steps = match batcher.call(window).await {
            Some(Ok(steps)) if !steps.is_empty() => steps,
            Some(Ok(_)) => {
                return signals
                    .notes
                    .push("forecast skipped: the model gave no steps".to_owned())
            }
            Some(Err(error)) => return signals.notes.push(format!("forecast skipped: {error}")),
            None => {
                return signals
                    .notes
                    .push("forecast skipped: the model failed to run".to_owned())
            }
        };
        let horizon_steps = ((spec.horizon.as_secs_f64() / metadata.sample_period_secs).ceil()
            as usize)
            .clamp(1, steps.len());
        let ahead = &steps[..horizon_steps];
        let peak = ahead.iter().copied().fold(f32::MIN, f32::max) as f64;
        let at_horizon = ahead[horizon_steps - 1] as f64;

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

    async fn classify(
        &mut self,
        spec: &AnomalySpec,
        runner: &ModelRunner,
        now: DateTime<Utc>,
        signals: &mut Signals,
    ) {
        let (batcher, metadata) = match runner.classifier(spec).await {
            Ok(found) => found,
            Err(error) => {
                self.states.lost();
                return signals
                    .notes
                    .push(format!("traffic state skipped: {error}"));
            }
        };
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
        let row = match classifier_features(&roles, now, &metadata) {
            Ok(row) => row,
            Err(error) => {
                self.states.lost();
                return signals
                    .notes
                    .push(format!("traffic state skipped: {error}"));
            }
        };
        match batcher.call(row).await {
            Some(Ok(classification)) => {
                signals.change = self.states.observe(classification.state, now);
                signals.traffic = self.states.current();
            }
            Some(Err(error)) => {
                self.states.lost();
                signals
                    .notes
                    .push(format!("traffic state skipped: {error}"));
            }
            None => {
                self.states.lost();
                signals
                    .notes
                    .push("traffic state skipped: the model failed to run".to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Reading;
    use crate::policy::TrafficState;

    fn spec(extra: &str) -> PolicySpec {
        let text = format!(
            "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {{name: web}}
spec:
  maxReplicas: 10
  metrics:
    - name: rps
      prometheus: {{query: 'sum(rate(http_requests_total[1m]))'}}
      target: {{averageValue: 10}}
{extra}"
        );
        crate::policy::parse(&text).unwrap().spec
    }

    fn reading(value: f64, at: DateTime<Utc>) -> Vec<MetricReading> {
        vec![MetricReading {
            name: "rps".into(),
            result: Ok(Reading {
                value,
                at,
                tasks: vec![],
                skipped: vec![],
            }),
            took: Duration::ZERO,
        }]
    }

    fn start() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    /// Feeds `load(step)` every 5 s for `steps` steps, evaluating at each; returns every answer.
    async fn feed_all(
        memory: &mut SignalMemory,
        spec: &PolicySpec,
        runner: &ModelRunner,
        steps: std::ops::Range<i64>,
        load: impl Fn(i64) -> f64,
    ) -> Vec<Signals> {
        let mut all = Vec::new();
        for step in steps {
            let now = start() + chrono::Duration::seconds(5 * step);
            memory.record(&reading(load(step), now));
            all.push(memory.evaluate(spec, runner, now).await);
        }
        all
    }

    async fn feed(
        memory: &mut SignalMemory,
        spec: &PolicySpec,
        runner: &ModelRunner,
        steps: std::ops::Range<i64>,
        load: impl Fn(i64) -> f64,
    ) -> Signals {
        let all = feed_all(memory, spec, runner, steps, load).await;
        all.into_iter().last().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_forecast_comes_from_the_shipped_model_once_the_window_is_full() {
        // No tolerance: any model error counts against it.
        let strict = spec(
            "  forecast: {model: traffic-forecast, metric: rps, horizon: 60s}
  behavior: {scaleUp: {tolerance: 0}}
",
        );
        let runner = ModelRunner::default();
        let mut memory = SignalMemory::default();
        let early = feed(&mut memory, &strict, &runner, 0..30, |_| 100.0).await;
        assert_eq!(early.forecast, None);
        assert!(
            early.notes[0].starts_with("forecast skipped: rps: history covers"),
            "{:?}",
            early.notes
        );

        let first = feed(&mut memory, &strict, &runner, 30..61, |_| 100.0).await;
        let forecast = first
            .forecast
            .expect("a forecast once 5 minutes of history exist");
        assert!(
            (50.0..200.0).contains(&forecast),
            "a steady 100 req/s forecasts near 100, got {forecast}"
        );
        assert!(
            first.notes[0].starts_with("forecast used"),
            "{:?}",
            first.notes
        );

        // On a flat line the naive forecast is perfect: once enough forecasts came due, any
        // model error loses to it, and the forecast stops driving decisions (but is still shown).
        let later = feed(&mut memory, &strict, &runner, 61..120, |_| 100.0).await;
        assert!(later.forecast_seen.is_some());
        assert_eq!(later.forecast, None, "{:?}", later.notes);
        assert!(
            later.notes[0].starts_with("forecast ignored"),
            "{:?}",
            later.notes
        );

        // With HPA's tolerance of 10 %, the same small error on the same line keeps it in use.
        let tolerant = spec("  forecast: {model: traffic-forecast, metric: rps, horizon: 60s}\n");
        let mut memory = SignalMemory::default();
        let later = feed(&mut memory, &tolerant, &runner, 0..120, |_| 100.0).await;
        assert!(later.forecast.is_some(), "{:?}", later.notes);
        assert!(
            later.notes[0].starts_with("forecast used: recent error"),
            "{:?}",
            later.notes
        );
    }

    #[tokio::test]
    async fn a_classifier_named_as_forecaster_is_refused_naming_both() {
        let spec = spec("  forecast: {model: traffic-states, metric: rps}\n");
        let signals = feed(
            &mut SignalMemory::default(),
            &spec,
            &ModelRunner::default(),
            0..1,
            |_| 1.0,
        )
        .await;
        assert_eq!(signals.forecast, None);
        let note = &signals.notes[0];
        assert!(
            note.contains("traffic-states") && note.contains("forecast"),
            "{note}"
        );
    }

    #[tokio::test]
    async fn the_traffic_state_starts_once_the_baseline_is_long_enough_and_changes_are_reported() {
        let spec = spec("  anomaly: {model: traffic-states, inputs: {requests: rps}}\n");
        let runner = ModelRunner::default();
        let mut memory = SignalMemory::default();
        let early = feed(&mut memory, &spec, &runner, 0..20, |_| 50.0).await;
        assert_eq!(early.traffic, None);
        assert!(
            early.notes[0].starts_with("traffic state skipped"),
            "{:?}",
            early.notes
        );

        let all = feed_all(&mut memory, &spec, &runner, 20..61, |_| 50.0).await;
        let changes: Vec<StateChange> = all.iter().filter_map(|s| s.change).collect();
        assert_eq!(
            changes.len(),
            1,
            "one change, when the first state comes: {changes:?}"
        );
        let state = all
            .last()
            .and_then(|s| s.traffic)
            .expect("a state once the baseline spans 5 minutes");
        assert_eq!((changes[0].from, changes[0].to), (None, state.state));
        assert_eq!(
            state.state,
            TrafficState::Normal,
            "steady traffic is normal"
        );

        let again = feed(&mut memory, &spec, &runner, 61..62, |_| 50.0).await;
        assert_eq!(again.change, None, "no change while the state holds");
        assert_eq!(again.traffic.map(|t| t.since), Some(state.since));
    }
}
