//! Why a metric has no value: the typed errors every source returns.

use std::time::Duration;

use serde::Serialize;

use crate::decide::clip;
use crate::servers::ServersError;
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
    /// A queue server answered but refused the read: wrong credentials, no such queue, virtual
    /// host or consumer group, a key of another type. `server` names the registered server.
    #[error("{server}: {message}")]
    Refused {
        server: String,
        /// A short code for the headline: `NOGROUP`, `HTTP 401`, `no such queue`...
        kind: String,
        message: String,
    },
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
    /// The server the policy names is not one the operator may call (not registered, not
    /// allowed, a metadata address...), or its secret file cannot be read.
    #[error(transparent)]
    Outbound(#[from] ServersError),
}

impl MetricError {
    /// One short phrase naming the cause, for a decision's headline: no URL, no query, no server
    /// message (those stay in the [`Display`](std::fmt::Display) text, which goes to the
    /// decision's detail and the log). `source` names who was asked: `Prometheus`, `scrape
    /// target`, `Docker`. At most [`SUMMARY_MAX`] characters for a `source` of up to 16.
    pub fn summary(&self, source: &str) -> String {
        let text = match self {
            MetricError::InvalidSource(_) => "invalid metric source".to_owned(),
            MetricError::NoData { .. } => "no data: the query matched nothing".to_owned(),
            MetricError::TooManySeries { series, .. } => {
                format!("the query returned {series} series, not one")
            }
            MetricError::NotFinite { value } => format!("value {value} is not a finite number"),
            MetricError::Query { kind, .. } => {
                format!("{source} rejected the query ({})", clip(kind, 24))
            }
            MetricError::Refused { kind, .. } => {
                format!("{source} refused the read ({})", clip(kind, 24))
            }
            MetricError::Unreachable { reason, .. } => {
                format!("{source} unreachable ({})", clip(&root_cause(reason), 40))
            }
            MetricError::Timeout { timeout, .. } => {
                format!("{source} did not answer within {}s", timeout.as_secs_f64())
            }
            MetricError::TooLarge { limit, .. } => {
                format!("{source} answer larger than {limit} bytes")
            }
            MetricError::BadResponse { .. } => format!("unexpected answer from {source}"),
            MetricError::NoRunningTasks { .. } => "the service has no running tasks".to_owned(),
            MetricError::TooFewAnswered {
                answered,
                running,
                required,
                ..
            } => format!("only {answered} of {running} tasks answered ({required} needed)"),
            MetricError::Empty(_) => "no data to compute a value from".to_owned(),
            MetricError::WarmingUp(_) => "warming up: a value comes with the next read".to_owned(),
            MetricError::Swarm(SwarmError::Engine(_)) => "Docker engine error".to_owned(),
            MetricError::Swarm(_) => "the service changed while it was read".to_owned(),
            MetricError::Outbound(ServersError::Secret { .. }) => {
                format!("cannot read the {source} credentials")
            }
            MetricError::Outbound(_) => format!("{source} server refused by the operator"),
        };
        clip(&text, SUMMARY_MAX)
    }
}

/// The longest [`MetricError::summary`], in characters.
pub const SUMMARY_MAX: usize = 64;

/// The innermost cause of an error chain joined by `: ` ("tcp connect error: Connection refused
/// (os error 111)" gives "connection refused").
fn root_cause(chain: &str) -> String {
    let last = chain.rsplit(": ").next().unwrap_or(chain).trim();
    if last.contains("://") {
        // Nothing below reqwest's "error sending request for url (...)": no cause to name.
        return "connection failed".to_owned();
    }
    let last = match last.find(" (os error") {
        Some(at) => &last[..at],
        None => last,
    };
    let mut chars = last.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "no cause given".to_owned(),
    }
}

/// Why one task did not contribute to a reading.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("task {task_id}{}: {reason}", on_node(node))]
pub struct TaskError {
    pub task_id: String,
    /// The task's node, when where the task runs is part of the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub reason: String,
}

impl TaskError {
    pub fn new(task_id: impl Into<String>, reason: impl ToString) -> Self {
        TaskError {
            task_id: task_id.into(),
            node: None,
            reason: reason.to_string(),
        }
    }

    /// A failure tied to the task's node: `task X on node Y: reason`.
    pub fn on_node(task_id: impl Into<String>, node: &str, reason: impl ToString) -> Self {
        TaskError {
            node: Some(node.to_owned()),
            ..TaskError::new(task_id, reason)
        }
    }
}

fn on_node(node: &Option<String>) -> String {
    node.as_ref()
        .map(|node| format!(" on node {node}"))
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with the longest inputs the sources can put in it.
    fn every_error() -> Vec<MetricError> {
        // URLs and queries never reach the summary; server messages and causes may, clipped.
        let url = format!("http://{}/api/v1/query", "u".repeat(2000));
        let query = "q".repeat(2000);
        let long = "x".repeat(2000);
        let chain = format!(
            "error sending request for url ({url}): client error (Connect): tcp connect error: \
             Connection refused (os error 111)"
        );
        vec![
            MetricError::InvalidSource(query.clone()),
            MetricError::NoData {
                query: query.clone(),
            },
            MetricError::TooManySeries {
                query: query.clone(),
                series: usize::MAX,
            },
            MetricError::NotFinite {
                value: f64::NEG_INFINITY,
            },
            MetricError::NotFinite { value: -f64::MAX },
            MetricError::Query {
                kind: long.clone(),
                message: query.clone(),
            },
            MetricError::Refused {
                server: long.clone(),
                kind: long.clone(),
                message: query.clone(),
            },
            MetricError::Unreachable {
                url: url.clone(),
                reason: chain,
            },
            MetricError::Unreachable {
                url: url.clone(),
                reason: long.clone(),
            },
            MetricError::Unreachable {
                url: url.clone(),
                reason: format!("error sending request for url ({url})"),
            },
            MetricError::Unreachable {
                url: url.clone(),
                reason: String::new(),
            },
            MetricError::Timeout {
                url: url.clone(),
                timeout: Duration::from_millis(u64::MAX),
            },
            MetricError::TooLarge {
                url: url.clone(),
                limit: usize::MAX,
            },
            MetricError::BadResponse {
                url: url.clone(),
                reason: query.clone(),
            },
            MetricError::NoRunningTasks {
                service: long.clone(),
            },
            MetricError::TooFewAnswered {
                answered: usize::MAX,
                running: usize::MAX,
                required: usize::MAX,
                failures: vec![TaskError::new(long.clone(), url.clone())],
            },
            MetricError::Empty(query.clone()),
            MetricError::WarmingUp(query.clone()),
            MetricError::Swarm(SwarmError::Engine(url.clone())),
            MetricError::Swarm(SwarmError::Conflict {
                service: long.clone(),
                version: u64::MAX,
            }),
            MetricError::Swarm(SwarmError::NotFound(long.clone())),
            MetricError::Outbound(ServersError::NotAllowed {
                url: url.clone(),
                kind: crate::servers::ServerKind::Prometheus,
            }),
            MetricError::Outbound(ServersError::Secret {
                path: long.clone().into(),
                reason: long.clone(),
            }),
        ]
    }

    #[test]
    fn every_summary_is_short_and_names_no_url_or_query() {
        for error in every_error() {
            for source in ["Prometheus", "scrape target", "Docker", "sixteen-chars-xx"] {
                let summary = error.summary(source);
                assert!(summary.chars().count() <= SUMMARY_MAX, "{summary}");
                assert!(!summary.contains("uuuuu"), "{summary}");
                assert!(!summary.contains("qqqqq"), "{summary}");
                assert!(!summary.contains("http"), "{summary}");
            }
        }
    }

    #[test]
    fn an_unreachable_server_is_named_with_the_innermost_cause() {
        let error = MetricError::Unreachable {
            url: "http://prometheus:9090/api/v1/query?query=sum(rate(x[1m]))".into(),
            reason: "error sending request for url (http://prometheus:9090/api/v1/query): client \
                     error (Connect): tcp connect error: Connection refused (os error 111)"
                .into(),
        };
        assert_eq!(
            error.summary("Prometheus"),
            "Prometheus unreachable (connection refused)"
        );
        assert!(error.to_string().contains("http://prometheus:9090"));
    }
}
