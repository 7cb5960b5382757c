//! Batched traffic-state classification: distances to each cluster, nearest cluster's state,
//! or `unknown` beyond the model's threshold.

use std::sync::Arc;

use crate::policy::TrafficState;

use super::error::ModelError;
use super::forecast::{expect_kind, flatten};
use super::load::Model;
use super::metadata::ModelKind;

/// A loaded classifier.
#[derive(Clone, Debug)]
pub struct Classifier {
    model: Arc<Model>,
}

/// The state of one service's traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Classification {
    pub state: TrafficState,
    /// The nearest cluster and its distance (beyond the threshold the state is `unknown`).
    pub cluster: usize,
    pub distance: f32,
}

impl Classifier {
    pub fn new(model: Arc<Model>) -> Result<Self, ModelError> {
        expect_kind(&model, ModelKind::Classifier)?;
        Ok(Classifier { model })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Classifies every feature row in one run.
    pub fn classify<R: AsRef<[f32]>>(&self, rows: &[R]) -> Result<Vec<Classification>, ModelError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let flat = flatten(&self.model, rows)?;
        let distances = self.model.run_rows(rows.len(), flat)?;
        Ok(distances
            .chunks(self.model.output_width)
            .map(|row| self.nearest(row))
            .collect())
    }

    /// The state for one row of distances, as `classify` computes it.
    pub fn nearest(&self, distances: &[f32]) -> Classification {
        let meta = &self.model.metadata;
        let (cluster, distance) = distances
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, f32::INFINITY));
        // A NaN distance (bad input) is not "near" anything.
        let state = if distance.is_finite() && distance <= meta.threshold {
            meta.states
                .get(cluster)
                .copied()
                .unwrap_or(TrafficState::Unknown)
        } else {
            TrafficState::Unknown
        };
        Classification {
            state,
            cluster,
            distance,
        }
    }
}
