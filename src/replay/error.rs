//! Why a replay could not run: unreadable or malformed traces, a policy the trace cannot feed,
//! bad options, model failures, output files that cannot be written.

use chrono::{DateTime, Utc};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{what}: {error}")]
    Io {
        what: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{file}: row {row}: {problem}")]
    Trace {
        file: String,
        row: usize,
        problem: String,
    },
    #[error("no two rows between --from and --to: the trace runs from {first} to {last}")]
    EmptyRange {
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    },
    #[error("the trace has no column {name:?} ({why}); its columns: {columns}")]
    MissingColumn {
        name: String,
        why: String,
        columns: String,
    },
    #[error(
        "the trace has several value columns ({columns}): name the load metric's with --metric"
    )]
    AmbiguousColumn { columns: String },
    #[error("column {column:?} has no value at all in the replayed range")]
    NoValues { column: String },
    #[error("{0}")]
    Options(String),
    #[error("model: {0}")]
    Model(String),
    #[error("plot {path}: {problem}")]
    Plot { path: String, problem: String },
}
