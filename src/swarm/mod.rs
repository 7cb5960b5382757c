//! The Swarm port: the few operations the operator needs from Docker Swarm, as a trait, with the
//! bollard adapter in [`docker`].
//!
//! Everything above this module speaks in [`ServiceInfo`] and [`TaskInfo`], never in bollard's
//! types, so the reconcile loop can be tested against a fake and the engine API can change under it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::decide::Rollout;

pub mod docker;
mod engine_http;
mod local;
mod stats;
mod tasks;

pub use docker::DockerSwarm;
pub use local::LocalEngine;

/// What the operator knows of one Swarm service. `Default` is for tests and literals that name
/// only the fields they care about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceInfo {
    pub id: String,
    pub name: String,
    /// The version index for optimistic concurrency: updates must carry the version they read.
    pub version: u64,
    pub labels: BTreeMap<String, String>,
    /// Desired replicas of a replicated service; `None` for a global service (not scalable).
    pub replicas: Option<u64>,
    /// The stack namespace (`com.docker.stack.namespace`), if deployed with `docker stack deploy`.
    pub stack: Option<String>,
    /// The task's CPU limit in nano-CPUs, if any.
    pub cpu_limit_nanos: Option<i64>,
    /// The task's memory limit in bytes, if any.
    pub memory_limit_bytes: Option<i64>,
    /// The ports the service publishes, as its spec declares them.
    pub ports: Vec<PublishedPort>,
    /// The rolling update or rollback in progress (`UpdateStatus.State`), if any.
    pub rollout: Option<Rollout>,
}

/// A port a service publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedPort {
    /// The port inside the task.
    pub target: u16,
    /// The port on the node (`host` mode) or on every node's routing mesh (`ingress` mode);
    /// `None` when the engine picks one.
    pub published: Option<u16>,
    /// `mode: host`: the task's node itself listens on `published`.
    pub host_mode: bool,
}

/// One node of the Swarm.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    /// The address the node is reached at (its `Status.Addr`), when it reports a usable one.
    pub address: Option<IpAddr>,
    /// Whether this is the node of the engine the operator talks to.
    pub local: bool,
}

/// The lifecycle state of a task, reduced to what scaling needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Created, but not running yet (pending, assigned, preparing, starting...).
    Starting,
    Running,
    /// Complete, failed, shut down, rejected, orphaned or removed.
    Stopped,
}

/// One task of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    pub id: String,
    pub service_id: String,
    pub node_id: Option<String>,
    /// The replica slot of a replicated service's task: a task Swarm replaces (its node was
    /// lost, it failed, a rolling update) and its replacement share one. `None` for a global
    /// service's task.
    pub slot: Option<u64>,
    /// The container, once the task has one.
    pub container_id: Option<String>,
    pub state: TaskState,
    /// Whether the orchestrator wants this task running: false for tasks being shut down, true
    /// too for a replacement held back by the restart delay (Swarm's desired state `ready`).
    pub desired_running: bool,
    /// When the task entered its current state.
    pub since: Option<DateTime<Utc>>,
    /// The task's address on each attached network, by network name.
    pub addresses: BTreeMap<String, IpAddr>,
    /// Swarm's own words on the task's state, e.g. `pending task scheduling`.
    pub message: Option<String>,
    /// What went wrong, in Swarm's words: e.g. `no suitable node (scheduling constraints not
    /// satisfied on 3 nodes)` for a task it cannot place, or a failed task's exit.
    pub error: Option<String>,
}

impl TaskInfo {
    /// Why Swarm cannot place this task, in its own words: the scheduler's error on a task it
    /// wants running but has assigned to no node (no node meets the placement constraints, or
    /// none has the resources the task reserves).
    pub fn unplaced_reason(&self) -> Option<&str> {
        let waiting_for_a_node =
            self.desired_running && self.state == TaskState::Starting && self.node_id.is_none();
        self.error.as_deref().filter(|_| waiting_for_a_node)
    }
}

/// Usage figures of one container, from one stats sample of the engine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub read_at: DateTime<Utc>,
    /// Cumulative CPU time used by the container, in nanoseconds.
    pub cpu_total_ns: u64,
    /// Cumulative CPU time of the host, in nanoseconds (for usage ratios).
    pub system_cpu_ns: Option<u64>,
    pub online_cpus: Option<u32>,
    /// Working set: usage minus inactive file cache, in bytes.
    pub memory_working_set_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    /// Cumulative bytes received and sent over all interfaces.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// A change to a service, from the engine's event stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceEvent {
    Created { id: String, name: String },
    Updated { id: String, name: String },
    Removed { id: String, name: String },
}

/// Why a Swarm operation failed, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The service changed since it was read ("update out of sequence"): re-read and retry.
    #[error("service {service} changed since it was read (version {version}); re-read and retry")]
    Conflict { service: String, version: u64 },
    #[error("no such service: {0}")]
    NotFound(String),
    #[error("service {0} is in global mode and has no replica count")]
    NotReplicated(String),
    /// The engine could not be reached or answered with an error: back off and retry.
    #[error("Docker engine: {0}")]
    Engine(String),
}

pub type SwarmResult<T> = Result<T, SwarmError>;

/// The stream of service events; it ends or yields an error when the engine connection drops.
pub type EventStream = Pin<Box<dyn Stream<Item = SwarmResult<ServiceEvent>> + Send>>;

/// What the operator needs from a Swarm manager.
pub trait Swarm: Send + Sync + 'static {
    /// Every service, with labels, versions and replica counts.
    fn list_services(&self) -> impl Future<Output = SwarmResult<Vec<ServiceInfo>>> + Send;

    /// One service by name or ID.
    fn inspect_service(
        &self,
        name_or_id: &str,
    ) -> impl Future<Output = SwarmResult<ServiceInfo>> + Send;

    /// Set the replica count of the service at `version`; a stale version is [`SwarmError::Conflict`].
    /// Only the replica count changes: tasks are not restarted.
    fn update_replicas(
        &self,
        id: &str,
        version: u64,
        replicas: u64,
    ) -> impl Future<Output = SwarmResult<()>> + Send;

    /// Set the replica count and some labels in one update at `version`, so the operator's record
    /// of a scale (`io.swarmpilot.state`) can never disagree with the scale itself.
    fn scale(
        &self,
        id: &str,
        version: u64,
        replicas: u64,
        set: &BTreeMap<String, String>,
    ) -> impl Future<Output = SwarmResult<()>> + Send;

    /// Set and remove labels of the service at `version`; a stale version is [`SwarmError::Conflict`].
    fn update_labels(
        &self,
        id: &str,
        version: u64,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> impl Future<Output = SwarmResult<()>> + Send;

    /// The tasks of a service (all states; filter with [`TaskInfo::state`]).
    fn list_tasks(
        &self,
        service_id: &str,
    ) -> impl Future<Output = SwarmResult<Vec<TaskInfo>>> + Send;

    /// One stats sample of a container running on the engine this operator talks to.
    fn container_stats(
        &self,
        container_id: &str,
    ) -> impl Future<Output = SwarmResult<ContainerStats>> + Send;

    /// Every node of the Swarm.
    fn nodes(&self) -> impl Future<Output = SwarmResult<Vec<NodeInfo>>> + Send;

    /// Whether the engine answers.
    fn ping(&self) -> impl Future<Output = SwarmResult<()>> + Send;

    /// Service create, update and remove events from now on.
    fn events(&self) -> EventStream;
}
