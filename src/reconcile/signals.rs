//! The models in the live loop: loaded once, with inference batched across the services
//! reconciled together; what is asked and what the answers mean is the shared
//! [`SignalMemory`]'s, the same as in `replay`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::batcher::Batcher;
use crate::metrics::MetricReading;
use crate::models::{
    check_anomaly, check_forecast, Answers, Classification, Classifier, Forecaster, ModelCache,
    ModelMetadata, Sample, SignalMemory, Signals,
};
use crate::policy::{AnomalySpec, ForecastSpec, PolicySpec};
/// How long a batch waits for other services' requests after the first one.
const LINGER: Duration = Duration::from_millis(20);
const MAX_BATCH: usize = 1024;

type ForecastBatcher = Batcher<Vec<f32>, Result<Vec<f32>, String>>;
type ClassifyBatcher = Batcher<[f32; 5], Result<Classification, String>>;

/// Adds a reconcile's readings to the memory.
pub fn record(memory: &mut SignalMemory, readings: &[MetricReading]) {
    memory.record(readings.iter().map(|reading| {
        let sample = reading.result.as_ref().ok().map(|value| Sample {
            at: value.at,
            value: value.value,
        });
        (reading.name.as_str(), sample)
    }));
}

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
    ) -> Result<(Arc<ForecastBatcher>, ModelMetadata), String> {
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
    ) -> Result<(Arc<ClassifyBatcher>, ModelMetadata), String> {
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

/// Asks the policy's models about a service at `now`, through the memory every caller shares
/// (see [`SignalMemory`]); inference is batched with the other services reconciled meanwhile.
pub async fn evaluate(
    memory: &mut SignalMemory,
    spec: &PolicySpec,
    runner: &ModelRunner,
    now: DateTime<Utc>,
) -> Signals {
    // Loading a model may take a while the first time: done before the memory is asked.
    let forecaster = match &spec.forecast {
        Some(forecast) => Some(runner.forecaster(forecast).await),
        None => None,
    };
    let classifier = match &spec.anomaly {
        Some(anomaly) => Some(runner.classifier(anomaly).await),
        None => None,
    };
    fn loaded<B>(
        found: &Option<Result<(B, ModelMetadata), String>>,
    ) -> Result<ModelMetadata, String> {
        match found {
            Some(Ok((_, meta))) => Ok(meta.clone()),
            Some(Err(error)) => Err(error.clone()),
            None => Err("the model was not loaded".to_owned()),
        }
    }
    let inputs = memory.inputs(spec, |_| loaded(&forecaster), |_| loaded(&classifier), now);
    let forecaster = forecaster
        .and_then(Result::ok)
        .map(|(batcher, meta)| (batcher, meta.sample_period_secs));
    let classifier = classifier.and_then(Result::ok).map(|(batcher, _)| batcher);
    let forecast = match (inputs.forecast, forecaster) {
        (Some(Ok(window)), Some((batcher, period))) => Some(match batcher.call(window).await {
            Some(Ok(steps)) if !steps.is_empty() => Ok((steps, period)),
            Some(Ok(_)) => Err("the model gave no steps".to_owned()),
            Some(Err(error)) => Err(error),
            None => Err("the model failed to run".to_owned()),
        }),
        (found, _) => found.map(|found| found.and(Err("the model was not loaded".to_owned()))),
    };
    let state = match (inputs.classify, classifier) {
        (Some(Ok(row)), Some(batcher)) => Some(match batcher.call(row).await {
            Some(Ok(classification)) => Ok(classification.state),
            Some(Err(error)) => Err(error),
            None => Err("the model failed to run".to_owned()),
        }),
        (found, _) => found.map(|found| found.and(Err("the model was not loaded".to_owned()))),
    };
    memory.conclude(spec, Answers { forecast, state }, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::ensemble::Member;
    use crate::decide::signals::StateChange;
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
            record(memory, &reading(load(step), now));
            all.push(evaluate(memory, spec, runner, now).await);
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
    async fn the_shipped_model_joins_the_ensemble_once_its_window_is_full() {
        let spec = spec("  forecast: {model: traffic-forecast, metric: rps, horizon: 60s}\n");
        let runner = ModelRunner::default();
        let mut memory = SignalMemory::default();
        let early = feed(&mut memory, &spec, &runner, 0..30, |_| 100.0).await;
        let choice = early
            .forecast
            .clone()
            .expect("the simple members forecast at once");
        assert_ne!(choice.member, Member::Model);
        assert_eq!(choice.value, 100.0, "a steady load is forecast as it is");
        assert_eq!(choice.model_value, None);
        assert!(
            early.notes[0].starts_with("forecast model skipped: rps: history covers"),
            "{:?}",
            early.notes
        );

        let first = feed(&mut memory, &spec, &runner, 30..61, |_| 100.0).await;
        let model = first
            .forecast
            .and_then(|c| c.model_value)
            .expect("a model forecast once 5 minutes of history exist");
        assert!(
            (50.0..200.0).contains(&model),
            "a steady 100 req/s forecasts near 100, got {model}"
        );

        // A ramp: something that follows the trend is chosen over naive.
        let ramp = feed(&mut memory, &spec, &runner, 61..200, |s| {
            100.0 + 2.0 * s as f64
        })
        .await;
        let choice = ramp.forecast.expect("a forecast");
        assert_ne!(choice.member, Member::Naive, "{choice:?}");
        assert!(
            choice.error.unwrap() < choice.naive_error.unwrap(),
            "{choice:?}"
        );
        assert!(
            ramp.notes.iter().any(|n| n.contains("vs")),
            "{:?}",
            ramp.notes
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
        assert_ne!(signals.forecast.map(|c| c.member), Some(Member::Model));
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
