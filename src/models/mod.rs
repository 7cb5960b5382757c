//! The traffic models: ONNX loading and optimization with tract, the metadata contract, feature
//! windows from per-service history, and batched inference (see models/README.md).
//!
//! A model is loaded and optimized once ([`Model::load`], or shared through [`ModelCache`]),
//! with a symbolic batch dimension so one plan serves any number of services; each tick then makes
//! one [`Forecaster::forecast`] or [`Classifier::classify`] call for all services using that model.

mod cache;
mod check;
mod classify;
mod ensemble;
mod error;
pub mod eval;
mod features;
mod forecast;
pub mod inspect;
mod load;
mod memory;
mod metadata;
mod policy_check;
mod window;

pub use cache::{ModelCache, LOAD_TIMEOUT, MAX_RETRY};
pub use check::{check_this_process, ModelCheck, DEFAULT_MEMORY_LIMIT, MAX_BATCH_ROWS};
pub use classify::{Classification, Classifier};
pub use ensemble::{
    holt, path_error, value_at, DayHistory, Ensemble, MemberPaths, Standing, HOLT_WINDOW,
    SCORED_BEFORE_CHOICE, SCORED_KEPT,
};
pub use error::ModelError;
pub use features::{classifier_features, RoleHistories, FEATURE_NAMES};
pub use forecast::Forecaster;
pub use load::{Model, MAX_MODEL_BYTES, SHIPPED};
pub use memory::{
    forecast_history_samples, horizon_peak, horizon_steps, Answers, ForecastPath, SignalMemory,
    Signals, HISTORY,
};
pub use metadata::{ModelKind, ModelMetadata};
pub use policy_check::{check_anomaly, check_forecast};
pub use window::{forecast_window, Sample, WindowError, MAX_FILL_SECS};

/// Runs a model on `rows` rows of its input width with no interpretation of the output: the
/// golden tests and benchmarks compare this with onnxruntime.
pub fn run_raw(model: &Model, rows: usize, flat: Vec<f32>) -> Result<Vec<f32>, ModelError> {
    model.run_rows(rows, flat)
}
