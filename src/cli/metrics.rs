//! `swarmpilot metrics SERVICE`: what each metric of the service's policy reads right now.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::agents::AgentArgs;
use super::prometheus::PrometheusArgs;
use super::{block_on, print_structured, Output};
use crate::metrics::inspect::{inspect, ServiceReport};
use crate::swarm::DockerSwarm;

/// Arguments of `swarmpilot metrics`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Swarm service (name or ID).
    pub service: String,
    /// How long to wait before reading rate metrics (scrape counters, Docker CPU) a second time.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    #[command(flatten)]
    pub agents: AgentArgs,
}

pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let report = block_on(async {
        let swarm = Arc::new(
            DockerSwarm::connect()
                .await
                .context("connecting to Docker")?,
        );
        let report = inspect(
            swarm,
            &args.service,
            args.prometheus.config(),
            args.agents.config(),
            args.warmup,
        )
        .await?;
        anyhow::Ok(report)
    })??;
    match output {
        Output::Table => print!("{report}"),
        structured => print_structured(&as_json(&report), structured)?,
    }
    Ok(if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn as_json(report: &ServiceReport) -> serde_json::Value {
    let metrics: Vec<serde_json::Value> = report
        .metrics
        .iter()
        .map(|metric| match &metric.result {
            Ok(reading) => json!({
                "name": metric.name,
                "source": metric.source,
                "value": reading.value,
                "at": reading.at,
                "tasks": reading.tasks.iter().map(|t| json!({"task": t.task_id, "value": t.value})).collect::<Vec<_>>(),
                "skipped": reading.skipped.iter().map(|s| json!({"task": s.task_id, "node": s.node, "reason": s.reason})).collect::<Vec<_>>(),
            }),
            Err(error) => json!({"name": metric.name, "source": metric.source, "error": error.to_string()}),
        })
        .collect();
    json!({
        "service": report.service.name,
        "replicas": report.service.replicas,
        "policy": report.policy,
        "metrics": metrics,
    })
}
