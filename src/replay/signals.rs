//! What the models say during a replay: the forecaster's path of the load metric and the traffic
//! state at each tick, computed for the whole trace at once (batched) behind the [`Signals`]
//! trait, so the simulation does not depend on how (or whether) models are run.

use chrono::{DateTime, Utc};

use super::demand::Point;
use super::error::ReplayError;
use crate::models::ForecastPath;
use crate::policy::{AnomalySpec, ForecastSpec, TrafficState};

/// A model's answer at one tick, or why it gave none (history too short, a gap...).
pub type PerTick<T> = Vec<Result<T, String>>;

/// The classifier's inputs by role, as trace series (see `anomaly.inputs`); `None` for a role
/// the policy does not name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleSeries {
    pub requests: Option<Vec<Point>>,
    pub errors: Option<Vec<Point>>,
    pub latency: Option<Vec<Point>>,
    pub receive_bytes: Option<Vec<Point>>,
    pub transmit_bytes: Option<Vec<Point>>,
}

/// The forecaster and classifier as replay uses them.
pub trait Signals {
    /// For each tick, the forecaster's path of the load metric, made only from the samples at
    /// or before the tick. What the path means (the forecast rule, its scoring) is the shared
    /// [`crate::models::SignalMemory`]'s, as in the live loop.
    fn forecasts(
        &self,
        spec: &ForecastSpec,
        load: &[Point],
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<ForecastPath>, ReplayError>;

    /// For each tick, the traffic state from the role series at or before it.
    fn states(
        &self,
        spec: &AnomalySpec,
        roles: &RoleSeries,
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<TrafficState>, ReplayError>;
}

/// No models: every tick says why there is no forecast or state. The policy then runs on its
/// observed metrics only, and the report says so.
#[derive(Clone, Debug)]
pub struct NoModels {
    pub reason: String,
}

impl Signals for NoModels {
    fn forecasts(
        &self,
        _: &ForecastSpec,
        _: &[Point],
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<ForecastPath>, ReplayError> {
        Ok(ticks.iter().map(|_| Err(self.reason.clone())).collect())
    }

    fn states(
        &self,
        _: &AnomalySpec,
        _: &RoleSeries,
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<TrafficState>, ReplayError> {
        Ok(ticks.iter().map(|_| Err(self.reason.clone())).collect())
    }
}
