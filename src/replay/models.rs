//! The shipped (or user's) ONNX models as replay [`Signals`]: windows and feature rows built
//! per tick from the trace up to that tick with the `models` runtime's own builders, then one
//! batched tract run per chunk of ticks.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::demand::Point;
use super::error::ReplayError;
use super::signals::{PerTick, RoleSeries, Signals};
use crate::models::{
    check_anomaly, check_forecast, classifier_features, forecast_window, Classifier, Forecaster,
    Model, RoleHistories, Sample, MAX_FILL_SECS,
};
use crate::policy::{AnomalySpec, ForecastSpec, TrafficState};

/// Rows per tract run: large enough to amortize a run, small enough to bound memory.
const BATCH: usize = 2048;

/// Loads the models a policy names and runs them over the trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct ModelSignals;

fn model_error(error: impl std::fmt::Display) -> ReplayError {
    ReplayError::Model(error.to_string())
}

fn samples(points: &[Point]) -> Vec<Sample> {
    points
        .iter()
        .map(|p| Sample {
            at: p.at,
            value: p.value,
        })
        .collect()
}

/// The samples in `(at - span, at]`: what a window ending at `at` can read.
fn recent(samples: &[Sample], at: DateTime<Utc>, span: Duration) -> &[Sample] {
    let end = samples.partition_point(|s| s.at <= at);
    let start = samples[..end].partition_point(|s| s.at <= at - span);
    &samples[start..end]
}

fn millis(secs: f64) -> Duration {
    Duration::milliseconds((secs * 1000.0).round() as i64)
}

/// Runs `infer` on the rows of the ticks that have one, in batches; the others keep their reason.
fn batched<R, T>(
    rows: Vec<Result<R, String>>,
    mut infer: impl FnMut(&[R]) -> Result<Vec<T>, ReplayError>,
) -> Result<PerTick<T>, ReplayError> {
    let mut out: PerTick<T> = Vec::with_capacity(rows.len());
    let mut slots: Vec<usize> = Vec::new();
    let mut ready: Vec<R> = Vec::new();
    for row in rows {
        match row {
            Ok(row) => {
                slots.push(out.len());
                ready.push(row);
                out.push(Err("no model output".to_owned()));
            }
            Err(reason) => out.push(Err(reason)),
        }
    }
    for (chunk, slots) in ready.chunks(BATCH).zip(slots.chunks(BATCH)) {
        for (&slot, value) in slots.iter().zip(infer(chunk)?) {
            out[slot] = Ok(value);
        }
    }
    Ok(out)
}

impl Signals for ModelSignals {
    fn forecasts(
        &self,
        spec: &ForecastSpec,
        load: &[Point],
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<f64>, ReplayError> {
        let model = Model::load(&spec.model).map_err(model_error)?;
        check_forecast(spec, &model).map_err(model_error)?;
        let meta = model.metadata.clone();
        let forecaster = Forecaster::new(Arc::new(model)).map_err(model_error)?;
        // The value at the policy's horizon: the step that many sample periods ahead.
        let step = ((spec.horizon.as_secs_f64() / meta.sample_period_secs).round() as usize)
            .clamp(1, meta.horizon.max(1));
        let history = samples(load);
        let span = millis(meta.window as f64 * meta.sample_period_secs + MAX_FILL_SECS);
        let windows = ticks
            .iter()
            .map(|&at| {
                forecast_window(
                    &spec.metric,
                    recent(&history, at, span),
                    at,
                    meta.window,
                    meta.sample_period_secs,
                )
                .map_err(|e| e.to_string())
            })
            .collect();
        batched(windows, |rows: &[Vec<f32>]| {
            let out = forecaster.forecast(rows).map_err(model_error)?;
            Ok(out
                .iter()
                .map(|values| f64::from(values.get(step - 1).copied().unwrap_or(f32::NAN)))
                .collect())
        })
    }

    fn states(
        &self,
        spec: &AnomalySpec,
        roles: &RoleSeries,
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<TrafficState>, ReplayError> {
        let model = Model::load(&spec.model).map_err(model_error)?;
        check_anomaly(spec, &model).map_err(model_error)?;
        let meta = model.metadata.clone();
        let classifier = Classifier::new(Arc::new(model)).map_err(model_error)?;
        let convert = |series: &Option<Vec<Point>>| series.as_deref().map(samples);
        let (requests, errors, latency, rx, tx) = (
            convert(&roles.requests),
            convert(&roles.errors),
            convert(&roles.latency),
            convert(&roles.receive_bytes),
            convert(&roles.transmit_bytes),
        );
        let span = millis(meta.baseline_window as f64 * meta.sample_period_secs);
        let rows = ticks
            .iter()
            .map(|&at| {
                fn cut(
                    s: &Option<Vec<Sample>>,
                    at: DateTime<Utc>,
                    span: Duration,
                ) -> Option<&[Sample]> {
                    s.as_deref().map(|s| recent(s, at, span))
                }
                let histories = RoleHistories {
                    requests: cut(&requests, at, span),
                    errors: cut(&errors, at, span),
                    latency: cut(&latency, at, span),
                    receive_bytes: cut(&rx, at, span),
                    transmit_bytes: cut(&tx, at, span),
                };
                classifier_features(&histories, at, &meta).map_err(|e| e.to_string())
            })
            .collect();
        batched(rows, |rows: &[[f32; 5]]| {
            Ok(classifier
                .classify(rows)
                .map_err(model_error)?
                .into_iter()
                .map(|c| c.state)
                .collect())
        })
    }
}
