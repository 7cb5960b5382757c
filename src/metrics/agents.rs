//! Where each node's engine stats come from: the operator's side of `swarmpilot agent`.
//!
//! Engine stats are node-local. For each node, the stats of its task containers are read:
//! - from the agent on that node, when the agent service has a running task there;
//! - else in process, through the engine the operator talks to, when that engine is the node's;
//! - else not at all: every task there is reported as "no agent on that node".
//!
//! The agents are found through the Swarm API: the agent service's running tasks and their
//! nodes. Each agent is reached, by [`AgentRoute`]:
//! - `HostPort`: at its node's address (`Status.Addr`) and the port the agent service publishes
//!   in host mode; what an operator outside the overlay (on a manager's host) can route to;
//! - `Overlay`: at its task's address on the overlay network and the agent port; what an
//!   operator running as a Swarm service on that network uses;
//! - `Auto` (the default): `HostPort` when the agent service publishes the agent port in host
//!   mode, `Overlay` otherwise.
//!
//! The map is rebuilt every `refresh`, and at once after an agent could not be reached.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::http::fetch;
use super::{task_address, MetricError, TaskError};
use crate::agent::protocol::{StatsRequest, StatsResponse, TaskContainer, STATS_PATH};
use crate::swarm::{ContainerStats, NodeInfo, ServiceInfo, Swarm, SwarmError, TaskInfo};
use crate::webhook::auth::read_secret;
use crate::webhook::ErrorBody;

/// What to tell people whose task's node has no agent.
pub const DEPLOY_AGENT: &str = "deploy `swarmpilot agent` as a global service";

/// How the operator finds and asks the agents.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The agent service's name (e.g. `swarmpilot_agent`).
    pub service: String,
    /// The port the agent listens on inside its task (`swarmpilot agent --listen`).
    pub port: u16,
    /// The overlay network the agents are reached on; default the agent task's first network
    /// other than `ingress`.
    pub network: Option<String>,
    pub route: AgentRoute,
    /// The file holding the agent token (a Docker secret), re-read at every refresh.
    pub token_file: PathBuf,
    /// Deadline of one request to an agent, answer included.
    pub timeout: Duration,
    /// Answers larger than this are dropped.
    pub max_body_bytes: usize,
    /// How long the map of agents is trusted before it is rebuilt.
    pub refresh: Duration,
}

/// How each agent is reached; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentRoute {
    #[default]
    Auto,
    HostPort,
    Overlay,
}

/// Where one node's stats come from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeReader {
    Agent(SocketAddr),
    /// The engine the operator talks to is this node's.
    Local,
    /// Why nothing on this node can be read.
    Missing(String),
}

/// Every node's reader, by node ID.
#[derive(Debug)]
pub(crate) struct Directory {
    nodes: HashMap<String, (String, NodeReader)>,
    token: Option<String>,
}

impl Directory {
    /// The node's name for people (its hostname) and where its stats come from.
    pub(crate) fn node(&self, node_id: Option<&str>) -> (String, NodeReader) {
        match node_id.and_then(|id| self.nodes.get(id)) {
            Some((name, reader)) => (name.clone(), reader.clone()),
            None => {
                let name = node_id.unwrap_or("(unassigned)").to_owned();
                (
                    name,
                    NodeReader::Missing(format!("the Swarm lists no such node; {DEPLOY_AGENT}")),
                )
            }
        }
    }
}

/// The agent service as the Swarm reports it: `None` when it does not exist.
type AgentService = Option<(ServiceInfo, Vec<TaskInfo>)>;

/// Builds the directory from the nodes and the agent service. Pure, for tests.
pub(crate) fn directory(
    nodes: &[NodeInfo],
    agents: Option<(&AgentConfig, &AgentService)>,
    token: Result<Option<String>, String>,
) -> Directory {
    let mut map = HashMap::new();
    for node in nodes {
        let reader = agents.map(|(config, service)| agent_reader(node, config, service, &token));
        let reader = match reader {
            Some(Ok(address)) => NodeReader::Agent(address),
            _ if node.local => NodeReader::Local,
            None => NodeReader::Missing(format!(
                "no agent on that node; {DEPLOY_AGENT} and start the operator with --agent-service"
            )),
            Some(Err(reason)) => NodeReader::Missing(reason),
        };
        map.insert(node.id.clone(), (node.hostname.clone(), reader));
    }
    Directory {
        nodes: map,
        token: token.ok().flatten(),
    }
}

/// The address of `node`'s agent, or why there is none.
fn agent_reader(
    node: &NodeInfo,
    config: &AgentConfig,
    service: &AgentService,
    token: &Result<Option<String>, String>,
) -> Result<SocketAddr, String> {
    let Some((service, tasks)) = service else {
        return Err(format!(
            "no agent on that node: there is no service {}; {DEPLOY_AGENT}",
            config.service
        ));
    };
    let task = super::running(tasks)
        .find(|task| task.node_id.as_deref() == Some(node.id.as_str()))
        .ok_or_else(|| {
            format!(
                "no agent on that node: service {} has no running task there; {DEPLOY_AGENT}",
                config.service
            )
        })?;
    if let Err(error) = token {
        return Err(format!("the agent token cannot be used: {error}"));
    }
    let host_port = service
        .ports
        .iter()
        .find(|port| port.host_mode && port.target == config.port);
    let use_host_port = match config.route {
        AgentRoute::Auto => host_port.is_some(),
        AgentRoute::HostPort => true,
        AgentRoute::Overlay => false,
    };
    if use_host_port {
        let published = host_port.and_then(|port| port.published).ok_or_else(|| {
            format!(
                "service {} does not publish port {} in host mode with a fixed published port",
                config.service, config.port
            )
        })?;
        let address = node
            .address
            .ok_or_else(|| "the node reports no address to reach its agent at".to_owned())?;
        Ok(SocketAddr::new(address, published))
    } else {
        let address = task_address(task, config.network.as_deref())
            .map_err(|reason| format!("its agent task {}: {reason}", task.id))?;
        Ok(SocketAddr::new(address, config.port))
    }
}

/// Asks the agents, keeping the directory for `refresh`.
pub(crate) struct Agents<S> {
    swarm: Arc<S>,
    /// `None`: no agents, only the operator's own node is read.
    agents: Option<(AgentConfig, reqwest::Client)>,
    cached: Mutex<Option<(Instant, Arc<Directory>)>>,
}

impl<S: Swarm> Agents<S> {
    /// No agents: only the node of the engine `swarm` talks to is read.
    pub(crate) fn none(swarm: Arc<S>) -> Self {
        Agents {
            swarm,
            agents: None,
            cached: Mutex::new(None),
        }
    }

    /// The agents of `config`, asked over HTTP without redirects.
    pub(crate) fn new(swarm: Arc<S>, config: AgentConfig) -> Result<Self, MetricError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| MetricError::InvalidSource(format!("HTTP client: {error}")))?;
        Ok(Agents {
            swarm,
            agents: Some((config, http)),
            cached: Mutex::new(None),
        })
    }

    /// The current directory, rebuilt when older than `refresh` (one rebuild at a time).
    pub(crate) async fn directory(&self) -> Result<Arc<Directory>, SwarmError> {
        let refresh = self
            .agents
            .as_ref()
            .map_or(Duration::from_secs(10), |(config, _)| config.refresh);
        let mut cached = self.cached.lock().await;
        if let Some((at, directory)) = cached.as_ref() {
            if at.elapsed() < refresh {
                return Ok(Arc::clone(directory));
            }
        }
        let nodes = self.swarm.nodes().await?;
        let built = match &self.agents {
            None => directory(&nodes, None, Ok(None)),
            Some((config, _)) => {
                let service = self.agent_service(&config.service).await?;
                let token = read_secret(&config.token_file)
                    .map(Some)
                    .map_err(|error| error.to_string());
                directory(&nodes, Some((config, &service)), token)
            }
        };
        let built = Arc::new(built);
        *cached = Some((Instant::now(), Arc::clone(&built)));
        Ok(built)
    }

    async fn agent_service(&self, name: &str) -> Result<AgentService, SwarmError> {
        let service = match self.swarm.inspect_service(name).await {
            Ok(service) => service,
            Err(SwarmError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let tasks = self.swarm.list_tasks(&service.id).await?;
        Ok(Some((service, tasks)))
    }

    /// Forgets the directory, so the next read rebuilds it (an agent moved or restarted).
    async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// One stats sample of each task from the agent at `address`; per task, the sample or why
    /// there is none. `node` names the node in the reasons.
    pub(crate) async fn sample(
        &self,
        directory: &Directory,
        address: SocketAddr,
        node: &str,
        tasks: Vec<TaskContainer>,
    ) -> Vec<(String, Result<ContainerStats, TaskError>)> {
        let ids: Vec<String> = tasks.iter().map(|task| task.task.clone()).collect();
        match self.ask(directory, address, tasks).await {
            Ok(mut answered) => ids
                .into_iter()
                .map(|id| {
                    let result = match answered.remove(&id) {
                        Some(Ok(stats)) => Ok(stats),
                        Some(Err(reason)) => Err(format!("the agent on that node: {reason}")),
                        None => Err("the agent on that node did not answer for it".to_owned()),
                    };
                    let result = result.map_err(|reason| TaskError::on_node(&id, node, reason));
                    (id, result)
                })
                .collect(),
            Err(error) => {
                if matches!(
                    error,
                    MetricError::Unreachable { .. } | MetricError::Timeout { .. }
                ) {
                    self.forget().await;
                }
                ids.into_iter()
                    .map(|id| {
                        let failure = TaskError::on_node(
                            &id,
                            node,
                            format!("the agent on that node: {error}"),
                        );
                        (id, Err(failure))
                    })
                    .collect()
            }
        }
    }

    async fn ask(
        &self,
        directory: &Directory,
        address: SocketAddr,
        tasks: Vec<TaskContainer>,
    ) -> Result<HashMap<String, Result<ContainerStats, String>>, MetricError> {
        let Some((config, http)) = &self.agents else {
            return Err(MetricError::InvalidSource("no agent is configured".into()));
        };
        let url = format!("http://{address}{STATS_PATH}");
        let mut request = http.post(&url).json(&StatsRequest { tasks });
        if let Some(token) = &directory.token {
            request = request.bearer_auth(token);
        }
        let (status, body) = fetch(request, &url, config.timeout, config.max_body_bytes).await?;
        let bad = |reason: String| MetricError::BadResponse {
            url: url.clone(),
            reason,
        };
        if !status.is_success() {
            let detail = serde_json::from_slice::<ErrorBody>(&body)
                .map(|error| error.detail)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(bad(format!("HTTP {status}: {detail}")));
        }
        let answer: StatsResponse =
            serde_json::from_slice(&body).map_err(|error| bad(error.to_string()))?;
        Ok(answer
            .tasks
            .into_iter()
            .map(|task| {
                let result = match (task.stats, task.error) {
                    (Some(stats), _) => Ok(stats),
                    (None, Some(error)) => Err(error),
                    (None, None) => Err("an answer with neither stats nor error".to_owned()),
                };
                (task.task, result)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use super::*;
    use crate::swarm::{PublishedPort, TaskState};

    fn node(id: &str, address: &str, local: bool) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            hostname: format!("host-{id}"),
            address: Some(address.parse().unwrap()),
            local,
        }
    }

    fn config(route: AgentRoute) -> AgentConfig {
        AgentConfig {
            service: "sp_agent".into(),
            port: 9323,
            network: None,
            route,
            token_file: "/run/secrets/sp_agent".into(),
            timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            refresh: Duration::from_secs(10),
        }
    }

    fn agent_task(id: &str, node: &str, overlay: &str) -> TaskInfo {
        TaskInfo {
            id: id.into(),
            service_id: "agent".into(),
            node_id: Some(node.into()),
            slot: None,
            container_id: Some(format!("c-{id}")),
            state: TaskState::Running,
            desired_running: true,
            since: None,
            addresses: BTreeMap::from([
                (
                    "ingress".to_owned(),
                    "10.255.0.9".parse::<IpAddr>().unwrap(),
                ),
                ("sp_net".to_owned(), overlay.parse::<IpAddr>().unwrap()),
            ]),
            message: None,
            error: None,
        }
    }

    fn agent_service(ports: Vec<PublishedPort>, tasks: Vec<TaskInfo>) -> AgentService {
        let service = ServiceInfo {
            id: "agent".into(),
            name: "sp_agent".into(),
            version: 1,
            labels: BTreeMap::new(),
            replicas: None,
            stack: None,
            cpu_limit_nanos: None,
            memory_limit_bytes: None,
            ports,
            rollout: None,
        };
        Some((service, tasks))
    }

    fn token() -> Result<Option<String>, String> {
        Ok(Some("0123456789abcdef".into()))
    }

    #[test]
    fn without_agents_only_the_local_node_is_read() {
        let nodes = [node("n1", "10.0.0.1", true), node("n2", "10.0.0.2", false)];
        let directory = directory(&nodes, None, Ok(None));
        assert_eq!(
            directory.node(Some("n1")),
            ("host-n1".into(), NodeReader::Local)
        );
        let (name, reader) = directory.node(Some("n2"));
        assert_eq!(name, "host-n2");
        let NodeReader::Missing(reason) = reader else {
            panic!("{reader:?}")
        };
        assert!(reason.contains("no agent on that node"), "{reason}");
        assert!(reason.contains(DEPLOY_AGENT), "{reason}");
    }

    #[test]
    fn a_host_mode_port_is_reached_on_the_node_address_else_the_overlay_address() {
        let nodes = [node("n1", "10.0.0.1", true), node("n2", "10.0.0.2", false)];
        let tasks = vec![
            agent_task("a1", "n1", "10.1.0.11"),
            agent_task("a2", "n2", "10.1.0.12"),
        ];
        let host = PublishedPort {
            target: 9323,
            published: Some(19323),
            host_mode: true,
        };
        let published = agent_service(vec![host], tasks.clone());
        let auto = config(AgentRoute::Auto);
        let found = directory(&nodes, Some((&auto, &published)), token());
        assert_eq!(
            found.node(Some("n2")).1,
            NodeReader::Agent("10.0.0.2:19323".parse().unwrap())
        );
        let overlay = config(AgentRoute::Overlay);
        let found = directory(&nodes, Some((&overlay, &published)), token());
        assert_eq!(
            found.node(Some("n2")).1,
            NodeReader::Agent("10.1.0.12:9323".parse().unwrap())
        );

        let unpublished = agent_service(Vec::new(), tasks);
        let found = directory(&nodes, Some((&auto, &unpublished)), token());
        assert_eq!(
            found.node(Some("n1")).1,
            NodeReader::Agent("10.1.0.11:9323".parse().unwrap())
        );
        let host_port = config(AgentRoute::HostPort);
        let found = directory(&nodes, Some((&host_port, &unpublished)), token());
        // The local node falls back to the operator's own engine; the other says why not.
        assert_eq!(found.node(Some("n1")).1, NodeReader::Local);
        let NodeReader::Missing(reason) = found.node(Some("n2")).1 else {
            panic!()
        };
        assert!(reason.contains("host mode"), "{reason}");
    }

    #[test]
    fn a_node_without_an_agent_task_or_service_says_so() {
        let nodes = [node("n1", "10.0.0.1", true), node("n2", "10.0.0.2", false)];
        let auto = config(AgentRoute::Auto);
        let one = agent_service(Vec::new(), vec![agent_task("a1", "n1", "10.1.0.11")]);
        let found = directory(&nodes, Some((&auto, &one)), token());
        let NodeReader::Missing(reason) = found.node(Some("n2")).1 else {
            panic!()
        };
        assert!(reason.contains("no running task there"), "{reason}");
        let found = directory(&nodes, Some((&auto, &None)), token());
        let NodeReader::Missing(reason) = found.node(Some("n2")).1 else {
            panic!()
        };
        assert!(reason.contains("there is no service sp_agent"), "{reason}");
        assert!(reason.contains(DEPLOY_AGENT), "{reason}");
        let unreadable = Err("cannot read /run/secrets/sp_agent".to_owned());
        let found = directory(&nodes, Some((&auto, &one)), unreadable);
        // An agent that cannot be asked is no reason not to read the local node in process.
        assert_eq!(found.node(Some("n1")).1, NodeReader::Local);
        let (_, reader) = directory(&nodes, Some((&auto, &one)), token()).node(Some("n9"));
        assert!(matches!(reader, NodeReader::Missing(_)), "{reader:?}");
    }
}
