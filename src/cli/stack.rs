//! `swarmpilot stack deploy -c FILE STACK`: `docker stack deploy` that keeps what the operator
//! owns (the replica count, the state and override labels, a policy written by `apply`).
//!
//! The compose files are read, not rewritten: what must be kept goes into one more compose file,
//! deployed after them, so the files' relative paths, variables and unknown keys reach the real
//! `docker stack deploy` exactly as written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use serde_yaml::Value as Yaml;

use super::block_on;
use crate::policy::compose::{self, Carried, ComposeService, Running};
use crate::policy::{load_yaml, text_of, Diagnostics, MAX_INPUT_BYTES};
use crate::swarm::{DockerSwarm, Swarm};

/// Arguments of `swarmpilot stack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: StackCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StackCommand {
    /// `docker stack deploy`, keeping each autoscaled service's replica count (within the
    /// file's policy bounds) and the operator's labels.
    Deploy(DeployArgs),
}

/// The flags of `docker stack deploy` that swarmpilot passes on.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Path to a compose file; may be repeated, later files override earlier ones.
    #[arg(
        short = 'c',
        long = "compose-file",
        value_name = "FILE",
        required = true
    )]
    pub compose_files: Vec<PathBuf>,
    /// Prune services that are no longer referenced.
    #[arg(long)]
    pub prune: bool,
    /// Send registry authentication details to Swarm agents.
    #[arg(long)]
    pub with_registry_auth: bool,
    /// Query the registry to resolve image digest and supported platforms.
    #[arg(long, value_parser = ["always", "changed", "never"])]
    pub resolve_image: Option<String>,
    /// Print what would be kept and the compose file that keeps it; deploy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The stack's name.
    pub stack: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        StackCommand::Deploy(deploy) => run_deploy(deploy),
    }
}

fn run_deploy(args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    let mut version = None;
    for path in &args.compose_files {
        let document = read_compose(path)?;
        if version.is_none() {
            version = document.get("version").cloned();
        }
        files.push(compose::services(&document).map_err(|found| problems(path, found))?);
    }
    let services = compose::merge(files);
    let running = block_on(running_services(&args.stack))??;
    let carried = compose::carry_over(&args.stack, &services, &running).map_err(|found| {
        anyhow::anyhow!(
            "nothing deployed: fix the policies or deploy with docker stack deploy:\n{found}"
        )
    })?;
    let overlay = compose::overlay(&carried, version.as_ref());
    let mut out = std::io::stdout().lock();
    for kept in &carried {
        report(&mut out, &args.stack, kept, &services)?;
    }
    if args.dry_run {
        write!(out, "{}", serde_yaml::to_string(&overlay)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let overlay_file = (!carried.is_empty())
        .then(|| OverlayFile::write(&args.stack, &overlay))
        .transpose()?;
    let status = docker_stack_deploy(args, overlay_file.as_ref().map(|f| f.path.as_path()))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn problems(path: &Path, found: Diagnostics) -> anyhow::Error {
    anyhow::anyhow!("{}", found.within(&path.display().to_string()))
}

/// One compose file as YAML, bounded like a policy file.
fn read_compose(path: &Path) -> anyhow::Result<Yaml> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > MAX_INPUT_BYTES {
        bail!(
            "{}: larger than the {MAX_INPUT_BYTES}-byte limit",
            path.display()
        );
    }
    let text = text_of(&bytes).map_err(|found| problems(path, found))?;
    let document = load_yaml(text).map_err(|found| problems(path, found))?;
    if !compose::is_compose(&document) {
        bail!(
            "{}: not a compose file (no `services` mapping)",
            path.display()
        );
    }
    Ok(document)
}

/// The stack's services as they run now, by name.
async fn running_services(stack: &str) -> anyhow::Result<BTreeMap<String, Running>> {
    let swarm = DockerSwarm::connect().await?;
    Ok(swarm
        .list_services()
        .await?
        .into_iter()
        .filter(|service| service.stack.as_deref() == Some(stack))
        .map(|service| {
            let running = Running {
                labels: service.labels,
                replicas: service.replicas,
            };
            (service.name, running)
        })
        .collect())
}

fn report(
    out: &mut dyn Write,
    stack: &str,
    kept: &Carried,
    services: &[ComposeService],
) -> std::io::Result<()> {
    let file_says = services
        .iter()
        .find(|s| s.key == kept.key)
        .map_or(1, |s| s.replicas.unwrap_or(1));
    let labels: Vec<&str> = kept.labels.keys().map(String::as_str).collect();
    writeln!(
        out,
        "service/{}: keeping {} replicas (the file says {file_says}){}",
        compose::stack_service_name(stack, &kept.key),
        kept.replicas,
        if labels.is_empty() {
            String::new()
        } else {
            format!(" and labels {}", labels.join(", "))
        }
    )
}

/// Runs the real `docker stack deploy` with the files given, then the overlay.
fn docker_stack_deploy(
    args: &DeployArgs,
    overlay: Option<&Path>,
) -> anyhow::Result<std::process::ExitStatus> {
    let mut command = Command::new("docker");
    command.args(["stack", "deploy"]);
    for file in args
        .compose_files
        .iter()
        .map(PathBuf::as_path)
        .chain(overlay)
    {
        command.arg("--compose-file").arg(file);
    }
    if args.prune {
        command.arg("--prune");
    }
    if args.with_registry_auth {
        command.arg("--with-registry-auth");
    }
    if let Some(resolve) = &args.resolve_image {
        command.args(["--resolve-image", resolve]);
    }
    command.arg(&args.stack);
    command
        .status()
        .context("cannot run `docker stack deploy` (is the docker CLI installed?)")
}

/// The overlay compose file, removed when dropped.
struct OverlayFile {
    path: PathBuf,
}

impl OverlayFile {
    fn write(stack: &str, overlay: &Yaml) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "swarmpilot-{stack}-{}-{nanos}.yml",
            std::process::id()
        ));
        // A new file only: never write through a file or link someone else put there.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(serde_yaml::to_string(overlay)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(OverlayFile { path })
    }
}

impl Drop for OverlayFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
