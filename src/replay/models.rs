//! The shipped (or user's) ONNX models for replay: loaded once with the same checks as the live
//! loop, then run on each tick's window or feature row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::signals::Models;
use crate::models::{check_anomaly, check_forecast, Classifier, Forecaster, Model, ModelMetadata};
use crate::policy::{AnomalySpec, ForecastSpec, TrafficState};

/// Loads the models a policy names and runs them tick by tick.
#[derive(Debug, Default)]
pub struct ModelSignals {
    forecasters: Mutex<HashMap<String, Forecaster>>,
    classifiers: Mutex<HashMap<String, Classifier>>,
}

impl ModelSignals {
    fn forecaster_for(&self, spec: &ForecastSpec) -> Result<Forecaster, String> {
        let mut known = self.forecasters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = known.get(&spec.model) {
            return Ok(found.clone());
        }
        let model = Arc::new(Model::load(&spec.model).map_err(|e| e.to_string())?);
        check_forecast(spec, &model).map_err(|e| e.to_string())?;
        let forecaster = Forecaster::new(model).map_err(|e| e.to_string())?;
        known.insert(spec.model.clone(), forecaster.clone());
        Ok(forecaster)
    }

    fn classifier_for(&self, spec: &AnomalySpec) -> Result<Classifier, String> {
        let mut known = self.classifiers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = known.get(&spec.model) {
            return Ok(found.clone());
        }
        let model = Arc::new(Model::load(&spec.model).map_err(|e| e.to_string())?);
        check_anomaly(spec, &model).map_err(|e| e.to_string())?;
        let classifier = Classifier::new(model).map_err(|e| e.to_string())?;
        known.insert(spec.model.clone(), classifier.clone());
        Ok(classifier)
    }
}

impl Models for ModelSignals {
    fn forecaster(&self, spec: &ForecastSpec) -> Result<ModelMetadata, String> {
        Ok(self.forecaster_for(spec)?.model().metadata.clone())
    }

    fn forecast(
        &self,
        spec: &ForecastSpec,
        window: Vec<f32>,
        _: DateTime<Utc>,
    ) -> Result<Vec<f32>, String> {
        let mut out = self
            .forecaster_for(spec)?
            .forecast(&[window])
            .map_err(|e| e.to_string())?;
        out.pop()
            .ok_or_else(|| "the model gave no output".to_owned())
    }

    fn classifier(&self, spec: &AnomalySpec) -> Result<ModelMetadata, String> {
        Ok(self.classifier_for(spec)?.model().metadata.clone())
    }

    fn classify(&self, spec: &AnomalySpec, row: [f32; 5]) -> Result<TrafficState, String> {
        let mut out = self
            .classifier_for(spec)?
            .classify(&[row])
            .map_err(|e| e.to_string())?;
        out.pop()
            .map(|c| c.state)
            .ok_or_else(|| "the model gave no output".to_owned())
    }
}
