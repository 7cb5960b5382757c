//! Batched forecasting: one tract run for every service using the same forecaster.

use std::sync::Arc;

use super::error::ModelError;
use super::load::Model;
use super::metadata::ModelKind;

/// A loaded forecaster.
#[derive(Clone, Debug)]
pub struct Forecaster {
    model: Arc<Model>,
}

impl Forecaster {
    /// Wraps a model whose metadata says it is a forecaster.
    pub fn new(model: Arc<Model>) -> Result<Self, ModelError> {
        expect_kind(&model, ModelKind::Forecaster)?;
        Ok(Forecaster { model })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Forecasts every window (each `metadata.window` raw samples, oldest first) in one run;
    /// returns `metadata.horizon` values per window, one per sample period ahead.
    pub fn forecast(&self, windows: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let flat = flatten(&self.model, windows)?;
        let out = self.model.run_rows(windows.len(), flat)?;
        Ok(out
            .chunks(self.model.output_width)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

pub(crate) fn expect_kind(model: &Model, kind: ModelKind) -> Result<(), ModelError> {
    if model.metadata.kind == kind {
        return Ok(());
    }
    Err(ModelError::Metadata {
        model: model.name.clone(),
        key: "kind".into(),
        problem: format!(
            "is {}, a {} is needed here",
            model.metadata.kind.as_str(),
            kind.as_str()
        ),
    })
}

pub(crate) fn flatten<R: AsRef<[f32]>>(model: &Model, rows: &[R]) -> Result<Vec<f32>, ModelError> {
    let mut flat = Vec::with_capacity(rows.len() * model.input_width);
    for (row, values) in rows.iter().enumerate() {
        let values = values.as_ref();
        if values.len() != model.input_width {
            return Err(ModelError::RowLength {
                model: model.name.clone(),
                row,
                got: values.len(),
                expected: model.input_width,
            });
        }
        flat.extend_from_slice(values);
    }
    Ok(flat)
}
