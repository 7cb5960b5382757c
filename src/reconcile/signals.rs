//! The models in the live loop: loaded once, with inference batched across the services
//! reconciled together. What is asked and what the answers mean (windows, the forecast rule,
//! scoring, the ignore rule, state streaks) is the shared [`SignalMemory`]'s, as in `replay`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::batcher::Batcher;
use crate::metrics::{policy_sources, MetricReading, PrometheusClient};
use crate::models::{
    check_anomaly, check_forecast, forecast_history_samples, Answers, Classification, Classifier,
    ForecastPath, Forecaster, ModelCache, Sample, SignalMemory, Signals,
};
use crate::policy::{AnomalySpec, ForecastSpec, PolicySpec, Source};
use crate::swarm::ServiceInfo;

/// How long a batch waits for other services' requests after the first one.
const LINGER: Duration = Duration::from_millis(20);
/// The model check runs this many rows, so a batch needs no more memory than the check had.
const MAX_BATCH: usize = crate::models::MAX_BATCH_ROWS;

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

/// Adds a reconcile's readings to the memory and forgets the metrics the policy no longer reads.
pub fn record(memory: &mut SignalMemory, readings: &[MetricReading]) {
    for reading in readings {
        if let Ok(value) = &reading.result {
            let sample = Sample {
                at: value.at,
                value: value.value,
            };
            memory.push(&reading.name, sample);
        }
    }
    memory.keep_only(readings.iter().map(|r| r.name.as_str()));
}

/// The history each metric the policy's models read needs, longest first wins: the forecast
/// ensemble's (the model's window, the autoregression's hour), the classifier's baseline. A
/// model that cannot be loaded asks for none.
async fn wanted(spec: &PolicySpec, runner: &ModelRunner) -> BTreeMap<String, chrono::Duration> {
    fn span(samples: usize, period_secs: f64) -> chrono::Duration {
        chrono::Duration::milliseconds((samples as f64 * period_secs * 1000.0).round() as i64)
    }
    let mut wanted: BTreeMap<String, chrono::Duration> = BTreeMap::new();
    let mut want = |name: &str, needed: chrono::Duration| {
        let entry = wanted.entry(name.to_owned()).or_insert(needed);
        *entry = (*entry).max(needed);
    };
    if let Some(forecast) = &spec.forecast {
        if let Ok((_, meta)) = runner.forecaster(forecast).await {
            let samples = forecast_history_samples(&meta);
            want(&forecast.metric, span(samples, meta.sample_period_secs));
        }
    }
    if let Some(anomaly) = &spec.anomaly {
        if let Ok((_, meta)) = runner.classifier(anomaly).await {
            let inputs = &anomaly.inputs;
            let baseline = span(meta.baseline_window, meta.sample_period_secs);
            for name in [
                &inputs.requests,
                &inputs.errors,
                &inputs.latency,
                &inputs.receive_bytes,
                &inputs.transmit_bytes,
            ]
            .into_iter()
            .flatten()
            {
                want(name, baseline);
            }
        }
    }
    wanted
}

/// What a backfill did for one metric: samples added, or why none.
#[derive(Debug)]
pub struct Backfilled {
    pub metric: String,
    pub result: Result<usize, String>,
}

/// Fills a service's memory, after a restart, with the history its models read, so forecasts
/// and traffic states work at once instead of after their window has filled again. Only metrics
/// whose source is Prometheus have a history to ask for: one range query per metric, over the
/// span its model reads, one sample per `step` (the policy's interval, as the loop would have
/// read it). A failed query leaves that metric to fill as the loop reads it; each outcome is
/// logged and returned.
pub async fn backfill(
    memory: &mut SignalMemory,
    spec: &PolicySpec,
    runner: &ModelRunner,
    prometheus: &PrometheusClient,
    service: &ServiceInfo,
    now: DateTime<Utc>,
) -> Vec<Backfilled> {
    let wanted = wanted(spec, runner).await;
    let step = spec.interval.as_std();
    let mut done = Vec::new();
    for (name, source) in policy_sources(spec) {
        let Some(span) = wanted.get(name) else {
            continue;
        };
        let Some(Source::Prometheus(source)) = source else {
            tracing::debug!(service = %service.name, metric = name, "no backfill: not a Prometheus metric");
            continue;
        };
        let result = prometheus
            .read_range(service, source, now - *span, now, step)
            .await
            .map(|samples| {
                for sample in &samples {
                    let sample = Sample {
                        at: sample.at,
                        value: sample.value,
                    };
                    memory.push(name, sample);
                }
                samples.len()
            })
            .map_err(|error| error.to_string());
        match &result {
            Ok(samples) => {
                tracing::info!(service = %service.name, metric = name, samples, "backfilled the models' history from Prometheus")
            }
            Err(error) => {
                tracing::warn!(service = %service.name, metric = name, %error, "backfill failed: the history fills as the metric is read")
            }
        }
        done.push(Backfilled {
            metric: name.to_owned(),
            result,
        });
    }
    done
}

/// Asks the policy's models about a service at `now` through the memory `replay` shares (see
/// [`SignalMemory`]); inference is batched with the other services reconciled meanwhile.
pub async fn evaluate(
    memory: &mut SignalMemory,
    spec: &PolicySpec,
    runner: &ModelRunner,
    now: DateTime<Utc>,
) -> Signals {
    let mut answers = Answers::default();
    if let Some(forecast) = &spec.forecast {
        answers.forecast = Some(match runner.forecaster(forecast).await {
            Ok((batcher, meta)) => match memory.forecast_input(forecast, &meta, now) {
                Ok(window) => match batcher.call(window).await {
                    Some(Ok(steps)) => Ok(ForecastPath {
                        steps,
                        period_secs: meta.sample_period_secs,
                    }),
                    Some(Err(error)) => Err(error),
                    None => Err("the model failed to run".to_owned()),
                },
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        });
    }
    if let Some(anomaly) = &spec.anomaly {
        answers.state = Some(match runner.classifier(anomaly).await {
            Ok((batcher, meta)) => match memory.classifier_input(anomaly, &meta, now) {
                Ok(row) => match batcher.call(row).await {
                    Some(Ok(classification)) => Ok(classification.state),
                    Some(Err(error)) => Err(error),
                    None => Err("the model failed to run".to_owned()),
                },
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        });
    }
    memory.conclude(spec, answers, now)
}

#[cfg(test)]
mod tests {
    use super::*;
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

        // On a flat line the autoregression and Holt's smoothing are exact: once enough
        // forecasts came due, any model error loses to them, and the first of them in order of
        // preference, the autoregression, drives decisions.
        let later = feed(&mut memory, &strict, &runner, 61..120, |_| 100.0).await;
        assert_eq!(later.forecast, Some(100.0), "{:?}", later.notes);
        assert!(
            later.notes[0].starts_with("forecast used: autoregressive"),
            "{:?}",
            later.notes
        );

        // With HPA's tolerance of 10 %, the same small error on the same line keeps the first
        // member in order of preference in use: the mean of the model and the autoregression.
        let tolerant = spec("  forecast: {model: traffic-forecast, metric: rps, horizon: 60s}\n");
        let mut memory = SignalMemory::default();
        let later = feed(&mut memory, &tolerant, &runner, 0..120, |_| 100.0).await;
        assert!(later.forecast.is_some(), "{:?}", later.notes);
        assert!(
            later.notes[0].starts_with("forecast used: combined, recent error"),
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
