//! `delete SERVICE`: remove the service's policy labels (the YAML policy and any shorthand),
//! version-checked and retried like `apply`; the override and state labels stay.

use std::process::ExitCode;

use anyhow::bail;

use super::block_on;
use super::label_write::{change_labels, LabelChange, Outcome};
use crate::policy::labels::{POLICY, SHORTHAND};
use crate::swarm::{DockerSwarm, Swarm, SwarmResult};

/// Removes every policy-declaring label of `service`; `false` when it had none.
pub async fn delete_policy<S: Swarm>(swarm: &S, service: &str) -> SwarmResult<bool> {
    let outcome = change_labels(swarm, service, |info| {
        let remove: Vec<String> = std::iter::once(POLICY)
            .chain(SHORTHAND)
            .filter(|label| info.labels.contains_key(*label))
            .map(str::to_owned)
            .collect();
        (!remove.is_empty()).then(|| LabelChange {
            remove,
            ..Default::default()
        })
    })
    .await?;
    Ok(matches!(outcome, Outcome::Changed(_)))
}

/// Arguments of `swarmpilot delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's name or ID.
    pub service: String,
}

/// `swarmpilot delete SERVICE`: an error when the service has no policy to delete.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let service = &args.service;
    let deleted = block_on(async {
        let swarm = DockerSwarm::connect().await?;
        delete_policy(&swarm, service).await
    })??;
    if !deleted {
        bail!("service {service} has no policy");
    }
    println!("service/{service} policy deleted");
    Ok(ExitCode::SUCCESS)
}
