//! The models as `replay` runs them: one tick at a time, through the same
//! [`crate::models::SignalMemory`] as the live loop, behind the [`Models`] trait so the
//! simulation does not depend on how (or whether) models are run.

use chrono::{DateTime, Utc};

use crate::models::ModelMetadata;
use crate::policy::{AnomalySpec, ForecastSpec, TrafficState};

/// The forecaster and classifier a policy names, loaded once, asked per tick.
pub trait Models {
    /// The forecaster's metadata (window, sample period), or why it cannot run.
    fn forecaster(&self, spec: &ForecastSpec) -> Result<ModelMetadata, String>;

    /// The forecaster's output for one window ending at `now`: one value per sample period.
    fn forecast(
        &self,
        spec: &ForecastSpec,
        window: Vec<f32>,
        now: DateTime<Utc>,
    ) -> Result<Vec<f32>, String>;

    /// The classifier's metadata (windows, baseline), or why it cannot run.
    fn classifier(&self, spec: &AnomalySpec) -> Result<ModelMetadata, String>;

    /// The traffic state of one feature row.
    fn classify(&self, spec: &AnomalySpec, row: [f32; 5]) -> Result<TrafficState, String>;
}

/// No models: every tick says why there is no model forecast or state. The forecast ensemble's
/// simple members still forecast; the report says why the model did not.
#[derive(Clone, Debug)]
pub struct NoModels {
    pub reason: String,
}

impl Models for NoModels {
    fn forecaster(&self, _: &ForecastSpec) -> Result<ModelMetadata, String> {
        Err(self.reason.clone())
    }

    fn forecast(
        &self,
        _: &ForecastSpec,
        _: Vec<f32>,
        _: DateTime<Utc>,
    ) -> Result<Vec<f32>, String> {
        Err(self.reason.clone())
    }

    fn classifier(&self, _: &AnomalySpec) -> Result<ModelMetadata, String> {
        Err(self.reason.clone())
    }

    fn classify(&self, _: &AnomalySpec, _: [f32; 5]) -> Result<TrafficState, String> {
        Err(self.reason.clone())
    }
}
