//! The Docker source: engine stats of a service's running task containers, needing no Prometheus.
//!
//! - `cpu`: CPU time used between two samples over the wall time between them, in percent of
//!   the task's CPU limit (one core when the service sets none). The service value is the
//!   average over tasks, as HPA's utilization.
//! - `memory`: working set in percent of the task's memory limit (the container's limit as the
//!   engine reports it, the host's memory, when the service sets none). Average over tasks.
//! - `network_rx`, `network_tx`: bytes per second between two samples. Sum over tasks.
//!
//! Engine stats are node-local: each node's containers are sampled by the agent on that node,
//! or in process when the node is the operator's own engine's (see [`super::agents`]). A task
//! whose node has neither is listed in [`Reading::skipped`] with that reason, never left out.
//!
//! Rates need a previous sample of the same container, kept here per service and resource. A container
//! seen for the first time has none: it is listed in [`Reading::skipped`] as warming up, and
//! when every container is, the read fails with [`MetricError::WarmingUp`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};

use super::agents::{AgentConfig, Agents, NodeReader};
use super::rates::{elapsed_secs, increase};
use super::{aggregate, running, MetricError, MetricSource, Reading, TaskError, TaskValue};
use crate::agent::protocol::TaskContainer;
use crate::policy::{Aggregate, DockerSource, Resource};
use crate::swarm::{ContainerStats, ServiceInfo, Swarm, TaskInfo};

/// Reads engine stats; remembers each container's previous sample per resource.
pub struct DockerReader<S> {
    swarm: Arc<S>,
    agents: Agents<S>,
    timeout: Duration,
    concurrency: usize,
    /// Each container's last sample, by service ID and resource name (`Resource` is not `Hash`).
    previous: Mutex<HashMap<(String, &'static str), Samples>>,
}

/// The last sample of each container of one service, by container ID.
type Samples = HashMap<String, ContainerStats>;

/// One task whose container could be sampled.
struct Sampled {
    task_id: String,
    container_id: String,
    stats: ContainerStats,
}

impl<S: Swarm> DockerReader<S> {
    /// Reads the containers of the engine `swarm` talks to only; tasks on other nodes are
    /// reported as having no agent. `timeout` bounds each stats call; `concurrency` how many
    /// containers are sampled at once.
    pub fn new(swarm: Arc<S>, timeout: Duration, concurrency: usize) -> Self {
        DockerReader {
            agents: Agents::none(Arc::clone(&swarm)),
            swarm,
            timeout,
            concurrency: concurrency.max(1),
            previous: Mutex::new(HashMap::new()),
        }
    }

    /// Reads each node's containers through the agent on that node (see [`super::agents`]).
    pub fn with_agents(mut self, config: AgentConfig) -> Result<Self, MetricError> {
        self.agents = Agents::new(Arc::clone(&self.swarm), config)?;
        Ok(self)
    }

    /// One stats sample of each running task's container, from wherever its node's are read.
    async fn sample(
        &self,
        running: Vec<TaskInfo>,
    ) -> Result<Vec<Result<Sampled, TaskError>>, MetricError> {
        let directory = self.agents.directory().await?;
        let mut samples = Vec::new();
        let mut containers = HashMap::new();
        let mut local = Vec::new();
        let mut by_agent: HashMap<SocketAddr, (String, Vec<TaskContainer>)> = HashMap::new();
        for task in running {
            let Some(container) = task.container_id.clone() else {
                samples.push(Err(TaskError::new(
                    &task.id,
                    "running but has no container yet",
                )));
                continue;
            };
            containers.insert(task.id.clone(), container.clone());
            let (node, reader) = directory.node(task.node_id.as_deref());
            match reader {
                NodeReader::Local => local.push((task.id, container)),
                NodeReader::Agent(address) => by_agent
                    .entry(address)
                    .or_insert_with(|| (node, Vec::new()))
                    .1
                    .push(TaskContainer {
                        task: task.id,
                        container,
                    }),
                NodeReader::Missing(reason) => {
                    samples.push(Err(TaskError::on_node(&task.id, &node, reason)))
                }
            }
        }
        let in_process = stream::iter(local)
            .map(|(task, container)| async move {
                let stats =
                    tokio::time::timeout(self.timeout, self.swarm.container_stats(&container))
                        .await
                        .map_err(|_| {
                            TaskError::new(&task, format!("no stats within {:?}", self.timeout))
                        })?
                        .map_err(|error| TaskError::new(&task, error))?;
                Ok((task, stats))
            })
            .buffer_unordered(self.concurrency)
            .collect::<Vec<Result<(String, ContainerStats), TaskError>>>();
        let directory = &directory;
        let from_agents = join_all(by_agent.into_iter().map(
            |(address, (node, tasks))| async move {
                self.agents.sample(directory, address, &node, tasks).await
            },
        ));
        let (in_process, from_agents) = tokio::join!(in_process, from_agents);
        let answers = in_process.into_iter().chain(
            from_agents
                .into_iter()
                .flatten()
                .map(|(task, result)| result.map(|stats| (task, stats))),
        );
        for answer in answers {
            samples.push(answer.map(|(task_id, stats)| Sampled {
                container_id: containers.remove(&task_id).unwrap_or_default(),
                task_id,
                stats,
            }));
        }
        Ok(samples)
    }
}

impl<S: Swarm> MetricSource for DockerReader<S> {
    type Spec = DockerSource;

    /// Sample the service's running task containers now and compute the spec's resource.
    async fn read(
        &self,
        service: &ServiceInfo,
        _metric: &str,
        spec: &DockerSource,
    ) -> Result<Reading, MetricError> {
        let resource = spec.resource;
        let tasks = self.swarm.list_tasks(&service.id).await?;
        // Owned tasks: a closure over borrowed ones is not `Send` for every lifetime, which the
        // reconcile loop's spawned futures need.
        let running: Vec<TaskInfo> = running(&tasks).cloned().collect();
        if running.is_empty() {
            return Err(MetricError::NoRunningTasks {
                service: service.name.clone(),
            });
        }
        let samples = self.sample(running).await?;

        let mut tasks = Vec::new();
        let mut skipped = Vec::new();
        let mut warming = 0;
        let mut latest: Option<DateTime<Utc>> = None;
        {
            let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
            // This read's samples replace the service's previous ones for this resource, so
            // containers that are gone are forgotten and other services' samples are untouched.
            let key = (service.id.clone(), resource.name());
            let before = previous.remove(&key).unwrap_or_default();
            let mut kept = HashMap::new();
            for sample in samples {
                let sample = match sample {
                    Ok(sample) => sample,
                    Err(failure) => {
                        skipped.push(failure);
                        continue;
                    }
                };
                latest = latest.max(Some(sample.stats.read_at));
                let value = task_value(
                    service,
                    resource,
                    before.get(&sample.container_id),
                    &sample.stats,
                );
                kept.insert(sample.container_id, sample.stats);
                match value {
                    Ok(Some(value)) => tasks.push(TaskValue {
                        task_id: sample.task_id,
                        value,
                    }),
                    Ok(None) => {
                        warming += 1;
                        skipped.push(TaskError::new(
                            sample.task_id,
                            "warming up: first stats sample of this container",
                        ));
                    }
                    Err(reason) => skipped.push(TaskError::new(sample.task_id, reason)),
                }
            }
            previous.insert(key, kept);
        }

        let how = match resource {
            Resource::Cpu | Resource::Memory => Aggregate::Avg,
            Resource::NetworkRx | Resource::NetworkTx => Aggregate::Sum,
        };
        let values: Vec<f64> = tasks.iter().map(|task| task.value).collect();
        match aggregate(how, &values) {
            Some(value) => Ok(Reading {
                value,
                at: latest.unwrap_or_else(Utc::now),
                tasks,
                skipped,
            }),
            None if warming > 0 => Err(MetricError::WarmingUp(format!(
                "{warming} container(s) sampled for the first time"
            ))),
            None => Err(MetricError::TooFewAnswered {
                answered: 0,
                running: skipped.len(),
                required: 1,
                failures: skipped,
            }),
        }
    }
}

/// One container's value; `Ok(None)` when a rate has no previous sample to compare with.
fn task_value(
    service: &ServiceInfo,
    resource: Resource,
    previous: Option<&ContainerStats>,
    now: &ContainerStats,
) -> Result<Option<f64>, String> {
    if resource == Resource::Memory {
        let limit = service
            .memory_limit_bytes
            .and_then(|limit| u64::try_from(limit).ok())
            .or(now.memory_limit_bytes)
            .filter(|limit| *limit > 0)
            .ok_or("the engine reports no memory limit")?;
        return Ok(Some(
            now.memory_working_set_bytes as f64 / limit as f64 * 100.0,
        ));
    }
    let Some(previous) = previous else {
        return Ok(None);
    };
    let Some(secs) = elapsed_secs(previous.read_at, now.read_at) else {
        return Ok(None);
    };
    let counter = |stats: &ContainerStats| match resource {
        Resource::Cpu => stats.cpu_total_ns,
        Resource::NetworkRx => stats.rx_bytes,
        _ => stats.tx_bytes,
    } as f64;
    let per_second = increase(counter(previous), counter(now)) / secs;
    Ok(Some(match resource {
        Resource::Cpu => {
            let cores = service
                .cpu_limit_nanos
                .filter(|nanos| *nanos > 0)
                .map_or(1.0, |nanos| nanos as f64 / 1e9);
            per_second / 1e9 / cores * 100.0
        }
        _ => per_second,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn service(cpu_limit_nanos: Option<i64>, memory_limit_bytes: Option<i64>) -> ServiceInfo {
        ServiceInfo {
            id: "s1".into(),
            name: "web".into(),
            version: 1,
            labels: BTreeMap::new(),
            replicas: Some(1),
            stack: None,
            cpu_limit_nanos,
            memory_limit_bytes,
            ports: Vec::new(),
            rollout: None,
        }
    }

    fn stats(secs: i64, cpu_total_ns: u64, rx_bytes: u64) -> ContainerStats {
        ContainerStats {
            read_at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
            cpu_total_ns,
            system_cpu_ns: None,
            online_cpus: Some(2),
            memory_working_set_bytes: 256 << 20,
            memory_limit_bytes: Some(4 << 30),
            rx_bytes,
            tx_bytes: 0,
        }
    }

    #[test]
    fn cpu_is_percent_of_the_limit_or_of_one_core() {
        let before = stats(0, 0, 0);
        let now = stats(2, 1_000_000_000, 0); // half a core over two seconds
        let unlimited = service(None, None);
        assert_eq!(
            task_value(&unlimited, Resource::Cpu, Some(&before), &now),
            Ok(Some(50.0))
        );
        let quarter_core = service(Some(250_000_000), None);
        assert_eq!(
            task_value(&quarter_core, Resource::Cpu, Some(&before), &now),
            Ok(Some(200.0))
        );
        assert_eq!(task_value(&unlimited, Resource::Cpu, None, &now), Ok(None));
    }

    #[test]
    fn memory_prefers_the_service_limit() {
        let now = stats(0, 0, 0);
        assert_eq!(
            task_value(
                &service(None, Some(512 << 20)),
                Resource::Memory,
                None,
                &now
            ),
            Ok(Some(50.0))
        );
        assert_eq!(
            task_value(&service(None, None), Resource::Memory, None, &now),
            Ok(Some(6.25))
        );
    }

    #[test]
    fn network_is_bytes_per_second() {
        let before = stats(0, 0, 1000);
        let now = stats(4, 0, 5000);
        assert_eq!(
            task_value(
                &service(None, None),
                Resource::NetworkRx,
                Some(&before),
                &now
            ),
            Ok(Some(1000.0))
        );
    }
}
