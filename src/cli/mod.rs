//! The command-line interface's commands, one file each; `src/main.rs` only parses arguments
//! and dispatches here. Every command returns an exit code or an error that main prints as one
//! line on stderr.

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;

pub mod agent;
pub mod agents;
pub mod apply;
pub mod delete;
pub mod describe;
pub mod events;
pub mod files;
pub mod get;
pub mod label_write;
pub mod metrics;
pub mod model;
pub mod model_check;
pub mod operator_api;
pub mod overrides;
pub mod prometheus;
pub mod record;
pub mod replay;
pub mod run;
pub mod schema;
pub mod servers;
pub mod stack;
mod table;
pub mod validate;

/// The global `-o/--output` format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable lines or a table.
    #[default]
    Table,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// A command's outcome as the process exit code: errors are one line on stderr and exit 1.
pub fn exit(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            let line = format!("{error:#}").replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `value` as YAML or JSON (`Output::Table` callers print their own text).
pub fn print_structured<T: serde::Serialize>(value: &T, output: Output) -> anyhow::Result<()> {
    write_structured(&mut std::io::stdout().lock(), value, output)
}

/// [`print_structured`] to any writer.
pub fn write_structured<T: serde::Serialize>(
    out: &mut dyn Write,
    value: &T,
    output: Output,
) -> anyhow::Result<()> {
    match output {
        Output::Yaml => {
            // Through JSON, so enums read `{variant: value}` rather than YAML tags.
            write!(
                out,
                "{}",
                serde_yaml::to_string(&serde_json::to_value(value)?)?
            )?
        }
        Output::Json | Output::Table => writeln!(out, "{}", serde_json::to_string_pretty(value)?)?,
    }
    Ok(())
}

/// Runs an async command (one that talks to the Swarm) to completion.
pub fn block_on<F: Future>(command: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(command))
}

/// The service's tasks Swarm cannot place, as `get` and `describe` report them.
pub async fn pending_tasks(
    swarm: &crate::swarm::DockerSwarm,
    service: &crate::swarm::ServiceInfo,
) -> Result<Option<crate::decide::PendingTasks>, crate::swarm::SwarmError> {
    use crate::swarm::Swarm;
    let tasks = swarm.list_tasks(&service.id).await?;
    let replicas = service
        .replicas
        .map_or(0, |r| u32::try_from(r).unwrap_or(u32::MAX));
    Ok(crate::decide::PendingTasks::from_reasons(
        replicas,
        tasks
            .iter()
            .filter_map(crate::swarm::TaskInfo::unplaced_reason),
    ))
}
