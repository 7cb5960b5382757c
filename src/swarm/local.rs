//! [`LocalEngine`]: read-only access to the task containers of the engine this process runs
//! beside, for `swarmpilot agent`. It inspects and samples containers, and nothing else.

use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;

use super::docker::{connect_docker, docker_host, one_stats_sample};
use super::{ContainerStats, SwarmError, SwarmResult};

/// The label the Swarm puts on every task container: the task's ID.
const TASK_LABEL: &str = "com.docker.swarm.task.id";

/// The local engine, seen only through container inspect and stats.
#[derive(Clone, Debug)]
pub struct LocalEngine {
    docker: Docker,
}

impl LocalEngine {
    /// Connects to the engine named by `DOCKER_HOST`, or the default socket.
    pub async fn connect() -> SwarmResult<Self> {
        Ok(LocalEngine {
            docker: connect_docker(&docker_host()).await?,
        })
    }

    /// One stats sample of `container`, provided it is a running container of Swarm task
    /// `task` on this engine: the agent serves Swarm tasks' figures, not any container's.
    pub async fn task_stats(&self, task: &str, container: &str) -> SwarmResult<ContainerStats> {
        let inspected = self
            .docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(|error| match error {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => SwarmError::Engine(format!("no container {container} on this node")),
                other => SwarmError::Engine(format!("container {container}: {other}")),
            })?;
        let labelled = inspected
            .config
            .as_ref()
            .and_then(|config| config.labels.as_ref())
            .and_then(|labels| labels.get(TASK_LABEL));
        if labelled.map(String::as_str) != Some(task) {
            return Err(SwarmError::Engine(format!(
                "container {container} is not the container of Swarm task {task}"
            )));
        }
        let running = inspected
            .state
            .as_ref()
            .and_then(|state| state.running)
            .unwrap_or(false);
        if !running {
            return Err(SwarmError::Engine(format!(
                "container {container} of task {task} is not running"
            )));
        }
        one_stats_sample(&self.docker, container).await
    }
}
