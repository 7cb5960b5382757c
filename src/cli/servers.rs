//! The `--servers`, `--allow-url` and `--max-replicas-ceiling` arguments of `swarmpilot run`:
//! what a policy may name beyond its own service.

use std::path::PathBuf;

use crate::servers::{AllowList, Outbound, Registry, ServersError};

/// Which outbound addresses policies may name, and how large they may scale.
#[derive(Debug, clap::Args)]
pub struct OutboundArgs {
    /// A YAML file registering the servers policies may name (Prometheus, webhook receivers,
    /// Redis, RabbitMQ), with credentials in secret files; see docs/security.md.
    #[arg(long = "servers", value_name = "FILE", env = "SWARMPILOT_SERVERS")]
    pub servers: Option<PathBuf>,
    /// A URL prefix policies may name as-is (`http://hooks.internal/swarmpilot/`, or
    /// `http://*` for every host); repeat for several. Raw URLs get no credentials.
    #[arg(long = "allow-url", value_name = "PREFIX")]
    pub allow_url: Vec<String>,
    /// The highest `maxReplicas` a policy label may set.
    #[arg(long, value_name = "N", default_value_t = crate::policy::MAX_REPLICAS)]
    pub max_replicas_ceiling: u32,
}

impl OutboundArgs {
    /// The registry (its secret files read once, so a missing one stops the start with its
    /// name) and the allow-list.
    pub fn load(&self) -> Result<Outbound, ServersError> {
        let registry = match &self.servers {
            Some(path) => Registry::load(path)?,
            None => Registry::default(),
        };
        let allow = AllowList::parse(self.allow_url.iter().map(String::as_str))?;
        Ok(Outbound::new(registry, allow))
    }
}
