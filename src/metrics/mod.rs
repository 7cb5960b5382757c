//! Observing services: one abstraction over three sources (a Prometheus server, the tasks' own
//! exposition endpoints, Docker engine stats) that yields a [`Reading`] or a [`MetricError`].
//!
//! Every source answers the same question: what is this metric of this service right now, when
//! was it read, and which tasks contributed? A source that cannot answer says why, with a typed
//! error, and never a silent zero. Each source is a [`MetricSource`]; [`Observer`] routes a policy
//! metric to its source's reader.

pub mod agents;
pub mod docker;
pub mod error;
pub mod exposition;
mod http;
pub mod inspect;
pub mod observer;
pub mod prometheus;
pub mod queue;
mod rates;
pub mod record;
pub mod scrape;
mod source;

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::policy::Aggregate;
use crate::swarm::{TaskInfo, TaskState};

pub use agents::{AgentConfig, AgentRoute};
pub use docker::DockerReader;
pub use error::{MetricError, TaskError};
pub use observer::{policy_sources, MetricReading, Observer};
pub use prometheus::{PrometheusAuth, PrometheusClient, PrometheusClientConfig};
pub use queue::{RabbitmqReader, RedisReader};
pub use scrape::{ScrapeConfig, ScrapeReader, ScrapeTarget, StaticTargets, SwarmTargets, Targets};
pub use source::MetricSource;

/// One metric of one service, as read now.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The service-level value (see each source for how per-task values combine).
    pub value: f64,
    /// When the value was observed.
    pub at: DateTime<Utc>,
    /// The tasks whose values went into `value`. Empty for a Prometheus query, which sees the
    /// service as a whole.
    pub tasks: Vec<TaskValue>,
    /// Tasks that were asked but did not contribute, and why (down, warming up, garbage...).
    pub skipped: Vec<TaskError>,
}

/// The value one task contributed.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskValue {
    pub task_id: String,
    pub value: f64,
}

impl Reading {
    /// The per-task values, in the order the tasks were read.
    pub fn task_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.tasks.iter().map(|task| task.value)
    }
}

/// Combine per-task values as the policy asks; `None` for no values.
pub fn aggregate(how: Aggregate, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(match how {
        Aggregate::Sum => sum,
        Aggregate::Avg => sum / values.len() as f64,
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// A task's address on `network`, or without one on its first network other than `ingress`
/// (the routing mesh, not the task); the reason when it has none.
pub(crate) fn task_address(task: &TaskInfo, network: Option<&str>) -> Result<IpAddr, String> {
    match network {
        Some(network) => task
            .addresses
            .get(network)
            .copied()
            .ok_or_else(|| format!("no address on network {network}")),
        None => task
            .addresses
            .iter()
            .find(|(network, _)| network.as_str() != "ingress")
            .map(|(_, address)| *address)
            .ok_or_else(|| "not attached to any network but ingress".to_owned()),
    }
}

/// The tasks that are running and meant to keep running: the ones a metric is read from.
pub(crate) fn running(tasks: &[TaskInfo]) -> impl Iterator<Item = &TaskInfo> {
    tasks
        .iter()
        .filter(|task| task.state == TaskState::Running && task.desired_running)
}
