//! The shipped (or user's) ONNX models as replay [`Signals`]: windows and feature rows built
//! per tick by the live loop's [`SignalMemory`] fed the trace up to that tick, then one batched
//! tract run per chunk of ticks.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::demand::Point;
use super::error::ReplayError;
use super::signals::{PerTick, RoleSeries, Signals};
use crate::models::{
    check_anomaly, check_forecast, Classifier, ForecastPath, Forecaster, Model, Sample,
    SignalMemory,
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

/// Feeds `memory` the samples of `series` (metric `name`, oldest first) up to each tick in turn
/// and asks `input` at each tick: the windows are those the live loop's memory builds.
fn per_tick<R>(
    memory: &mut SignalMemory,
    series: &[(&str, &[Point])],
    ticks: &[DateTime<Utc>],
    mut input: impl FnMut(&mut SignalMemory, DateTime<Utc>) -> Result<R, String>,
) -> Vec<Result<R, String>> {
    let mut next = vec![0usize; series.len()];
    ticks
        .iter()
        .map(|&at| {
            for ((name, points), next) in series.iter().zip(next.iter_mut()) {
                while let Some(point) = points.get(*next).filter(|p| p.at <= at) {
                    let sample = Sample {
                        at: point.at,
                        value: point.value,
                    };
                    memory.push(name, sample);
                    *next += 1;
                }
            }
            input(memory, at)
        })
        .collect()
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
    ) -> Result<PerTick<ForecastPath>, ReplayError> {
        let model = Model::load(&spec.model).map_err(model_error)?;
        check_forecast(spec, &model).map_err(model_error)?;
        let meta = model.metadata.clone();
        let forecaster = Forecaster::new(Arc::new(model)).map_err(model_error)?;
        let windows = per_tick(
            &mut SignalMemory::default(),
            &[(spec.metric.as_str(), load)],
            ticks,
            |memory, at| memory.forecast_input(spec, &meta, at),
        );
        batched(windows, |rows: &[Vec<f32>]| {
            let out = forecaster.forecast(rows).map_err(model_error)?;
            Ok(out
                .into_iter()
                .map(|steps| ForecastPath {
                    steps,
                    period_secs: meta.sample_period_secs,
                })
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
        let inputs = &spec.inputs;
        let named = [
            (&inputs.requests, &roles.requests),
            (&inputs.errors, &roles.errors),
            (&inputs.latency, &roles.latency),
            (&inputs.receive_bytes, &roles.receive_bytes),
            (&inputs.transmit_bytes, &roles.transmit_bytes),
        ];
        let series: Vec<(&str, &[Point])> = named
            .iter()
            .filter_map(|(name, points)| Some((name.as_deref()?, points.as_deref()?)))
            .collect();
        let rows = per_tick(
            &mut SignalMemory::default(),
            &series,
            ticks,
            |memory, at| memory.classifier_input(spec, &meta, at),
        );
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
