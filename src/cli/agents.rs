//! The `--agent-*` arguments of the commands that read Docker engine stats (`run`, `metrics`).

use std::path::PathBuf;
use std::time::Duration;

use crate::agent::protocol::DEFAULT_PORT;
use crate::metrics::{AgentConfig, AgentRoute};

/// Where the node agents are and how to reach them.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The `swarmpilot agent` global service (e.g. `swarmpilot_agent`). Without it, engine stats
    /// are read only on the node of the engine the operator talks to, and tasks on other nodes
    /// are reported as having no agent.
    #[arg(
        long,
        value_name = "SERVICE",
        env = "SWARMPILOT_AGENT_SERVICE",
        requires = "agent_token_file"
    )]
    pub agent_service: Option<String>,
    /// The file holding the agent token (the Docker secret the agents were given).
    #[arg(long, value_name = "FILE", env = "SWARMPILOT_AGENT_TOKEN_FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// The port the agents listen on inside their tasks.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub agent_port: u16,
    /// The overlay network the agents are reached on (default: the agent task's first network
    /// other than ingress).
    #[arg(long, value_name = "NETWORK")]
    pub agent_network: Option<String>,
    /// How agents are reached: `host-port` at the node's address and the port the agent service
    /// publishes in host mode (an operator outside the overlay), `overlay` at the agent task's
    /// overlay address (an operator running as a service on that network), `auto` the first when
    /// the agent service publishes --agent-port in host mode, else the second.
    #[arg(long, value_enum, default_value_t = AgentRoute::Auto)]
    pub agent_route: AgentRoute,
    /// Deadline of one request to an agent.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub agent_timeout: Duration,
}

impl AgentArgs {
    /// The agents' configuration, or `None` when no agent service is named.
    pub fn config(&self) -> Option<AgentConfig> {
        let service = self.agent_service.clone()?;
        Some(AgentConfig {
            service,
            port: self.agent_port,
            network: self.agent_network.clone(),
            route: self.agent_route,
            token_file: self.agent_token_file.clone().unwrap_or_default(),
            timeout: self.agent_timeout,
            max_body_bytes: 4 * 1024 * 1024,
            refresh: Duration::from_secs(10),
        })
    }
}
