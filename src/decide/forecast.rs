//! Forecasts in decisions: the forecast value of the policy's load metric is turned into a
//! replica count with the same HPA calculation (issue 6). Whether the forecaster is trustworthy
//! is judged by the caller, which passes `None` when not.
//!
//! With `use: scaleUp` a forecast is a claim about the next `horizon`: its count, once it has
//! passed the scale-up stabilization window ([`through_scale_up_window`]), is a floor on the
//! stabilized count ([`Claim`]) while it asks for more than the metrics, and for at most one
//! horizon after its last ask. It never enters the recommendations the stabilization windows
//! remember, so HPA's scale-down window holds only what the metrics asked for; while its count
//! is in place, the metrics are read against the count they held ([`under_claim`]), so HPA's
//! tolerance does not keep it either. Replicas the forecast asked for are released (at the
//! scale-down rate policies' pace) once the load it foresaw has had its horizon to arrive. With
//! `use: both` the forecast replaces its metric's count in the recommendation, windows included.

use chrono::{DateTime, Utc};

use super::behavior::cutoff;
use super::decision::{Decision, MetricOutcome, Reason};
use super::history::{recommendations_or_initial, History};
use super::hpa::{self, Tolerance};
use super::observation::Observation;
use crate::policy::{ClaimedCount, ForecastUse, HumanDuration, PolicySpec};

/// The forecast's own replica count, if the policy has a forecast and a value was given; under
/// a claim its tolerance is centred on the metrics' count, as theirs is ([`under_claim`]).
pub(crate) fn recommendation(
    spec: &PolicySpec,
    observation: &Observation,
    under_claim: Option<u32>,
    tolerance: Tolerance,
    now: DateTime<Utc>,
) -> Option<u32> {
    let forecast = spec.forecast.as_ref()?;
    let value = observation.forecast?;
    let metric = spec.metrics.iter().find(|m| m.name == forecast.metric)?;
    hpa::evaluate_value(metric, value, observation, under_claim, tolerance, now).ok()
}

/// The metrics' own count when the replicas in place are a claim's: a claim set them above what
/// the metrics held, and they are still above it and at most the claim's count. HPA's
/// tolerance is then centred on the metrics' count, not on the replicas in place
/// ([`hpa::evaluate`]).
///
/// Why: the tolerance band is centred on the count in place, so a count the forecast raised
/// would otherwise hold itself. At 7 replicas of 50 rps a load of 320 rps is within 10% of 7
/// (and 6.4 rounds up to 7), while at 6 it is within 10% of 6: the metrics would keep the
/// forecast's 7, and HPA's scale-down window would remember it for five minutes after the
/// claim ended. Centred on the metrics' own count, the metrics ask for what they would have
/// asked without the forecast, and its replicas go when its claim does.
pub(crate) fn under_claim(claimed: Option<ClaimedCount>, current: u32) -> Option<u32> {
    claimed
        .filter(|c| c.metrics < current && current <= c.claimed)
        .map(|c| c.metrics)
}

/// What [`History::record`] keeps of a claim: set by a decision the claim raised, kept while the
/// count stays above what the metrics hold and no one has raised it past the claim, else gone.
pub(crate) fn claimed(kept: Option<ClaimedCount>, decision: &Decision) -> Option<ClaimedCount> {
    let metrics = decision.stabilized?;
    if decision.reason == Reason::Forecast && metrics < decision.desired {
        return Some(ClaimedCount {
            claimed: decision.desired,
            metrics,
        });
    }
    kept.filter(|c| metrics < decision.desired && decision.desired <= c.claimed)
        .map(|c| ClaimedCount { metrics, ..c })
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

/// A `scaleUp` forecast's floor on the stabilized count: the highest count its asks within the
/// last horizon could claim, this call's ask included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub replicas: u32,
    /// When that count was last asked for (`now` when this call's forecast asks for it).
    pub asked_at: DateTime<Utc>,
    pub horizon: HumanDuration,
}

impl Claim {
    /// The floor at `now`, from this call's forecast count and the asks [`History::record`]
    /// kept, each as it came through the scale-up stabilization window
    /// ([`through_scale_up_window`]). `None` for a policy without a `scaleUp` forecast, or when
    /// no ask is within the horizon.
    pub fn of(
        spec: &PolicySpec,
        forecast: Option<u32>,
        history: &History,
        current: u32,
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
            .filter(|ask| ask.at > since && ask.at <= now)
            .map(|ask| (ask.at, ask.floor));
        let this = forecast.map(|f| (now, through_scale_up_window(spec, history, f, current, now)));
        // The highest count wins; between equal counts, the latest ask (it lasts longest).
        kept.chain(this)
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

/// What an ask of `forecast` replicas at `now` may claim once it has passed the scale-up
/// stabilization window as HPA passes a recommendation: the lowest count asked for at every
/// decision within the window, by the forecast or by the metrics, whichever asked more. A
/// policy with a scale-up window wants a rise confirmed for that long (the demo's holds a flood
/// until the classifier has called it), and a forecast's rise is no exception; with HPA's
/// default window (0 s) the ask claims its own count at once.
pub(crate) fn through_scale_up_window(
    spec: &PolicySpec,
    history: &History,
    forecast: u32,
    current: u32,
    now: DateTime<Utc>,
) -> u32 {
    let since = cutoff(now, spec.behavior.scale_up().stabilization_window);
    let asked_at = |at| {
        history
            .forecasts
            .iter()
            .find(|ask| ask.at == at)
            .map_or(0, |ask| ask.replicas)
    };
    recommendations_or_initial(history, current, now)
        .iter()
        .filter(|&&(at, _)| at > since && at <= now)
        .map(|&(at, metrics)| metrics.max(asked_at(at)))
        .fold(forecast, u32::min)
}
