//! What can go wrong loading, checking or running a model.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("model {model:?} is neither a shipped model ({known}) nor a path to an .onnx file")]
    UnknownName { model: String, known: String },
    /// The file may not be loaded at all: outside the model directory, not a regular file,
    /// too large.
    #[error("model {model}: {reason}")]
    Refused { model: String, reason: String },
    /// Another reconcile is loading it; the model is used once it is ready.
    #[error("model {model}: still loading")]
    Loading { model: String },
    #[error("model {model}: loading took longer than {}s", .limit.as_secs())]
    Timeout {
        model: String,
        limit: std::time::Duration,
    },
    /// A load that failed, remembered rather than tried again on every reconcile.
    #[error("{error} (failed {failures} time(s); tried again in {}s, or sooner if the file changes)", .retry_in.as_secs())]
    Remembered {
        error: String,
        failures: u32,
        retry_in: std::time::Duration,
    },
    /// The check in a separate process failed: what it said, or how it ended; `problem`
    /// names the model.
    #[error("{problem}")]
    Check { model: String, problem: String },
    #[error("model {model}: not a valid ONNX model: {message}")]
    Decode { model: String, message: String },
    #[error("model {model}: metadata_props {key:?}: {problem}")]
    Metadata {
        model: String,
        key: String,
        problem: String,
    },
    #[error("model {model}: {problem}")]
    Shape { model: String, problem: String },
    #[error("model {model}: tract could not {action}: {message}")]
    Tract {
        model: String,
        action: &'static str,
        message: String,
    },
    /// The policy asks for something the model does not provide; names both sides.
    #[error("policy {policy_side} does not match model {model}: {model_side}")]
    Mismatch {
        model: String,
        policy_side: String,
        model_side: String,
    },
    #[error("model {model}: batch row {row} has {got} values, the model takes {expected}")]
    RowLength {
        model: String,
        row: usize,
        got: usize,
        expected: usize,
    },
}

impl ModelError {
    pub(crate) fn tract(model: &str, action: &'static str, error: impl std::fmt::Display) -> Self {
        ModelError::Tract {
            model: model.to_owned(),
            action,
            message: format!("{error:#}"),
        }
    }
}
