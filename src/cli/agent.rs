//! `swarmpilot agent`: serve this node's engine stats of Swarm task containers to the operator,
//! until SIGTERM or SIGINT. Run it as a global service, one task per node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::run::{cancel_on_signal, init_logging, run_until_stopped, LogFormat};
use crate::agent::{self, protocol::DEFAULT_PORT, AgentConfig, AgentState};
use crate::swarm::LocalEngine;
use crate::webhook::ConnectionLimits;
use crate::webhook::{AuthConfig, TokenFiles};

/// Arguments of `swarmpilot agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to serve on; the operator reaches it on the overlay network or, when the agent
    /// service publishes this port in host mode, on the node's address.
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)), env = "SWARMPILOT_AGENT_LISTEN")]
    pub listen: SocketAddr,
    /// The file holding the agent token (a Docker secret of at least 16 bytes); the operator
    /// sends the same with --agent-token-file.
    #[arg(long, value_name = "FILE", env = "SWARMPILOT_AGENT_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Deadline of one container's inspect and stats sample.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = humantime::parse_duration)]
    pub stats_timeout: Duration,
    /// Engine calls in flight at once, over all requests.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub concurrency: usize,
    /// Log lines as human-readable text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, env = "SWARMPILOT_LOG_FORMAT")]
    pub log_format: LogFormat,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let tokens = TokenFiles {
        read: vec![args.token_file.clone()],
        ..TokenFiles::default()
    };
    let auth =
        AuthConfig::from_files(&tokens, None, false).context("cannot load the agent token")?;
    let config = AgentConfig {
        listen: args.listen,
        auth,
        stats_timeout: args.stats_timeout,
        concurrency: args.concurrency,
        connections: ConnectionLimits::default(),
    };
    run_until_stopped(async {
        let engine = LocalEngine::connect()
            .await
            .context("cannot reach this node's Docker engine")?;
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(cancel_on_signal(shutdown.clone()));
        let served = agent::serve(&config, AgentState::new(engine, &config), shutdown.clone())
            .await
            .with_context(|| format!("cannot serve on {}", config.listen));
        shutdown.cancel();
        signals.abort();
        served
    })??;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
