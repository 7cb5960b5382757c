//! The `swarmpilot` command: parses arguments and calls the library's commands in `cli`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use swarmpilot::cli::{self, Output};

/// A Kubernetes-style autoscaling operator for Docker Swarm.
#[derive(Debug, Parser)]
#[command(name = "swarmpilot", version, about)]
struct Cli {
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check policy files offline; exit 1 with every problem if any is invalid.
    Validate(cli::validate::Args),
    /// Write or print the JSON Schema and CRD of ScalingPolicy.
    Schema(cli::schema::Args),
    /// Validate policies, then write each onto its service's policy label.
    Apply(cli::apply::Args),
    /// List the services that declare a policy.
    Get(cli::get::Args),
    /// List the services' recent events (scales, overrides, state changes, failures); -w follows.
    Events(cli::events::Args),
    /// Show a service's effective policy, override and scaling state.
    Describe(cli::describe::Args),
    /// Remove a service's policy labels.
    Delete(cli::delete::Args),
    /// Run the operator: the reconcile loop and its HTTP API, until SIGTERM or SIGINT.
    Run(Box<cli::run::Args>),
    /// Serve this node's engine stats of Swarm tasks to the operator; run it as a global service.
    Agent(cli::agent::Args),
    /// Pin, pause or clear a service's override through the operator's API.
    Override(cli::overrides::Args),
    /// What each metric of a service's policy reads right now, with errors spelled out; exit 1
    /// when any metric has no value.
    Metrics(cli::metrics::Args),
    /// Export a policy's Prometheus metrics history as a trace CSV (docs/trace-format.md).
    Record(cli::record::Args),
    /// Simulate a policy over a trace CSV beside the HPA baseline: under-provisioned time,
    /// replica-hours, scale events; optional per-step CSV and plots.
    Replay(Box<cli::replay::Args>),
    /// Inspect an ONNX traffic model, or evaluate it on a trace.
    Model(cli::model::Args),
    /// Deploy a stack with `docker stack deploy`, keeping what the operator owns.
    Stack(cli::stack::Args),
    /// Check a model file from stdin under a memory limit: the operator runs this in a child
    /// process before it loads a file from its model directory.
    #[command(name = "check-model", hide = true)]
    CheckModel(cli::model_check::Args),
}

impl Command {
    /// Whether the command keeps Rust's start-up choice of ignoring SIGPIPE. The operator and the
    /// agent serve sockets for as long as they run: a client that hangs up must cost them one
    /// write error, never the process. check-model answers the operator through its exit status.
    /// Every other command prints for a reader and stops as coreutils do when that reader goes.
    fn keeps_sigpipe_ignored(&self) -> bool {
        match self {
            Command::Run(_) | Command::Agent(_) | Command::CheckModel(_) => true,
            Command::Validate(_)
            | Command::Schema(_)
            | Command::Apply(_)
            | Command::Get(_)
            | Command::Events(_)
            | Command::Describe(_)
            | Command::Delete(_)
            | Command::Override(_)
            | Command::Metrics(_)
            | Command::Record(_)
            | Command::Replay(_)
            | Command::Model(_)
            | Command::Stack(_) => false,
        }
    }
}

/// Restores SIGPIPE's default action, so that output into a pipe whose reader has gone (`| head`)
/// ends the process quietly, as it ends `cat`, instead of `println!` panicking on the broken
/// pipe. Sockets are unaffected: std writes to them with MSG_NOSIGNAL and sees the error.
#[cfg(unix)]
fn stop_quietly_when_the_reader_goes() {
    // SAFETY: called first thing on the main thread, before any other thread or handler exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn stop_quietly_when_the_reader_goes() {}

fn main() -> ExitCode {
    let args = Cli::parse();
    if !args.command.keeps_sigpipe_ignored() {
        stop_quietly_when_the_reader_goes();
    }
    cli::exit(match &args.command {
        Command::Validate(command) => cli::validate::run(command, args.output),
        Command::Schema(command) => cli::schema::run(command, args.output),
        Command::Apply(command) => cli::apply::run(command, args.output),
        Command::Get(command) => cli::get::run(command, args.output),
        Command::Events(command) => cli::events::run(command, args.output),
        Command::Describe(command) => cli::describe::run(command, args.output),
        Command::Delete(command) => cli::delete::run(command),
        Command::Run(command) => cli::run::run(command),
        Command::Agent(command) => cli::agent::run(command),
        Command::Override(command) => cli::overrides::run(command, args.output),
        Command::Metrics(command) => cli::metrics::run(command, args.output),
        Command::Record(command) => cli::record::run(command),
        Command::Replay(command) => cli::replay::run(command, args.output),
        Command::Model(command) => cli::model::run(command, args.output),
        Command::Stack(command) => cli::stack::run(command),
        Command::CheckModel(command) => cli::model_check::run(command),
    })
}
