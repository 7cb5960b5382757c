//! Forecasts in decisions: the forecast value of the policy's load metric is turned into a
//! replica count with the same HPA calculation (issue 6). Whether the forecaster is trustworthy
//! is judged by the caller, which passes `None` when not.
//!
//! With `use: scaleUp` a forecast is a claim about the next `horizon`: its count is a floor on
//! the stabilized count ([`Claim`]) while it asks for more than the metrics, and for at most one
//! horizon after its last ask. It never enters the recommendations the stabilization windows
//! remember, so HPA's scale-down window holds only what the metrics asked for, and replicas the
//! forecast asked for are released (at the scale-down rate policies' pace) once the load it
//! foresaw has had its horizon to arrive. With `use: both` the forecast replaces its metric's
//! count in the recommendation, windows included.

use chrono::{DateTime, Utc};

use super::behavior::cutoff;
use super::decision::{Decision, MetricOutcome};
use super::history::History;
use super::hpa::{self, Tolerance};
use super::observation::Observation;
use crate::policy::{ForecastUse, HumanDuration, PolicySpec};

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

/// Joins the forecast's count with the metrics' for `use: both`: the forecast replaces its
/// metric's observed count, so it may scale in. `scaleUp` leaves the recommendation to the
/// metrics; its forecast is a [`Claim`] instead.
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
        _ => observed,
    }
}

/// A `scaleUp` forecast's floor on the stabilized count: the highest count it asked for within
/// the last horizon, this call's ask included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub replicas: u32,
    /// When that count was last asked for (`now` when this call's forecast asks for it).
    pub asked_at: DateTime<Utc>,
    pub horizon: HumanDuration,
}

impl Claim {
    /// The floor at `now`, from this call's forecast count and the asks [`History::record`]
    /// kept. `None` for a policy without a `scaleUp` forecast, or when no ask is within the
    /// horizon.
    pub fn of(
        spec: &PolicySpec,
        forecast: Option<u32>,
        history: &History,
        now: DateTime<Utc>,
    ) -> Option<Claim> {
        let policy = spec.forecast.as_ref()?;
        if policy.use_for != ForecastUse::ScaleUp {
            return None;
        }
        let since = cutoff(now, policy.horizon);
        let kept = history
            .forecasts
            .iter()
            .copied()
            .filter(|&(at, _)| at > since && at <= now);
        // The highest count wins; between equal counts, the latest ask (it lasts longest).
        kept.chain(forecast.map(|replicas| (now, replicas)))
            .max_by_key(|&(at, replicas)| (replicas, at))
            .map(|(asked_at, replicas)| Claim {
                replicas,
                asked_at,
                horizon: policy.horizon,
            })
    }

    /// The sentence of a count this claim set.
    pub fn describe(&self, desired: u32, metrics: u32, now: DateTime<Utc>) -> String {
        let ago = (now - self.asked_at).num_seconds();
        let when = if ago <= 0 {
            "asks for".to_owned()
        } else {
            format!("asked {ago}s ago for")
        };
        format!(
            "the forecast {when} {} replicas within {}: {desired} held; the metrics ask for \
             {metrics}",
            self.replicas, self.horizon
        )
    }
}

/// The forecast count `decision` asks for beyond the metrics, which [`History::record`] keeps
/// for the claim's hold: a `scaleUp` forecast above the metrics' recommendation.
pub(crate) fn ask(spec: &PolicySpec, decision: &Decision) -> Option<u32> {
    let policy = spec.forecast.as_ref()?;
    let forecast = decision.forecast?;
    let metrics = decision.recommendation.unwrap_or(decision.current);
    (policy.use_for == ForecastUse::ScaleUp && forecast > metrics).then_some(forecast)
}
