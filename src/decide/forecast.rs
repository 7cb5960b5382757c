//! Forecasts in decisions: the forecast value of the policy's load metric is turned into a
//! replica count with the same HPA calculation, and joins the metrics' recommendation (issue 6).
//! Whether the forecaster is trustworthy is judged by the caller, which passes `None` when not.

use chrono::{DateTime, Utc};

use super::decision::MetricOutcome;
use super::hpa::{self, Tolerance};
use super::observation::Observation;
use crate::policy::{ForecastUse, PolicySpec};

/// The forecast's own replica count, if the policy has a forecast and a value was given.
pub(crate) fn recommendation(
    spec: &PolicySpec,
    observation: &Observation,
    tolerance: Tolerance,
    now: DateTime<Utc>,
) -> Option<u32> {
    let forecast = spec.forecast.as_ref()?;
    let value = observation.forecast?;
    let metric = spec.metrics.iter().find(|m| m.name == forecast.metric)?;
    hpa::evaluate_value(metric, value, observation, tolerance, now).ok()
}

/// Joins the forecast's count with the metrics': `scaleUp` takes the larger of the two, so a
/// forecast can never scale in; `both` lets the forecast replace its metric's observed count.
pub(crate) fn combine(
    spec: &PolicySpec,
    per_metric: &[MetricOutcome],
    observed: u32,
    forecast: u32,
) -> u32 {
    match spec
        .forecast
        .as_ref()
        .map(|f| (f.use_for, f.metric.as_str()))
    {
        Some((ForecastUse::Both, metric)) => per_metric
            .iter()
            .filter(|outcome| outcome.name != metric)
            .filter_map(MetricOutcome::replicas)
            .fold(forecast, u32::max),
        _ => observed.max(forecast),
    }
}
