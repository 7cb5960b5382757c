//! Why a metric has no value: the typed errors every source returns.

use std::time::Duration;

use crate::swarm::SwarmError;

/// Why a metric of a service could not be read. Each variant says what the operator should look at.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// The policy's source cannot be used as written (no server, bad quantile, `{{stack}}` without a stack...).
    #[error("invalid metric source: {0}")]
    InvalidSource(String),
    /// The query returned an empty vector: nothing matched. Set `treatEmptyAs` to read it as a number.
    #[error("no data: query {query:?} returned an empty result (set treatEmptyAs to use a value instead)")]
    NoData { query: String },
    /// The query returned several series; the operator needs exactly one number.
    #[error("query {query:?} returned {series} series; aggregate it to one, e.g. sum({query})")]
    TooManySeries { query: String, series: usize },
    /// NaN or an infinity: a division by zero or a quantile without observations, usually.
    #[error("value is not a finite number: {value}")]
    NotFinite { value: f64 },
    /// The Prometheus server rejected the query; `message` is the server's own words.
    #[error("Prometheus rejected the query ({kind}): {message}")]
    Query { kind: String, message: String },
    /// The server could not be reached (refused, DNS, TLS...).
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// No complete answer within the timeout.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The response body was larger than the cap.
    #[error("{url} sent more than {limit} bytes; the response was dropped")]
    TooLarge { url: String, limit: usize },
    /// The answer could not be understood.
    #[error("unexpected response from {url}: {reason}")]
    BadResponse { url: String, reason: String },
    /// The service has no running task to read.
    #[error("service {service} has no running tasks")]
    NoRunningTasks { service: String },
    /// Too few tasks answered the scrape for the value to stand for the service.
    #[error(
        "only {answered} of {running} running tasks answered (at least {required} needed): {}",
        join_task_errors(failures)
    )]
    TooFewAnswered {
        answered: usize,
        running: usize,
        required: usize,
        failures: Vec<TaskError>,
    },
    /// The source answered, but there was nothing to compute a value from (a histogram with no
    /// observations since the last read, a metric missing from every task...).
    #[error("no data: {0}")]
    Empty(String),
    /// A rate needs two observations; this was the first (or every task is new).
    #[error("warming up: {0}; a value is available from the next read")]
    WarmingUp(String),
    /// Docker could not list the tasks or read their stats.
    #[error(transparent)]
    Swarm(#[from] SwarmError),
}

/// Why one task did not contribute to a reading.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("task {task_id}: {reason}")]
pub struct TaskError {
    pub task_id: String,
    pub reason: String,
}

impl TaskError {
    pub fn new(task_id: impl Into<String>, reason: impl ToString) -> Self {
        TaskError {
            task_id: task_id.into(),
            reason: reason.to_string(),
        }
    }
}

fn join_task_errors(failures: &[TaskError]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A finite value, or the error saying it is not.
pub(crate) fn finite(value: f64) -> Result<f64, MetricError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(MetricError::NotFinite { value })
    }
}
