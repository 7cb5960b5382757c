//! Each model loaded and optimized once per process, shared by every service that names it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::ModelError;
use super::load::Model;

/// Models by the name or path policies use; loading happens on first use.
#[derive(Debug, Default)]
pub struct ModelCache {
    models: Mutex<HashMap<String, Arc<Model>>>,
}

impl ModelCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The model for `spec` (a shipped name or a path), loading it the first time.
    pub fn get(&self, spec: &str) -> Result<Arc<Model>, ModelError> {
        let mut models = self
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(model) = models.get(spec) {
            return Ok(Arc::clone(model));
        }
        let model = Arc::new(Model::load(spec)?);
        models.insert(spec.to_owned(), Arc::clone(&model));
        Ok(model)
    }
}
