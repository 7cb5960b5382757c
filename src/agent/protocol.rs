//! What the agent and the operator say to each other: `POST /v1/stats` with the tasks to sample,
//! answered with one engine stats sample (or the reason there is none) per task.

use serde::{Deserialize, Serialize};

use crate::swarm::ContainerStats;

/// The path of the stats endpoint.
pub const STATS_PATH: &str = "/v1/stats";
/// The port the agent listens on unless told otherwise (`--listen`, `--agent-port`).
pub const DEFAULT_PORT: u16 = 9323;
/// The most tasks one request may name: a service's tasks on one node, in practice.
pub const MAX_TASKS_PER_REQUEST: usize = 512;

/// The body of `POST /v1/stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StatsRequest {
    pub tasks: Vec<TaskContainer>,
}

/// A Swarm task and the container the Swarm says runs it. The agent answers only when the
/// container, on its own engine, carries that task's label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskContainer {
    pub task: String,
    pub container: String,
}

/// The answer to `POST /v1/stats`: one entry per requested task, in the request's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsResponse {
    pub tasks: Vec<TaskStats>,
}

/// One task's sample, or why the agent has none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStats {
    pub task: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ContainerStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
