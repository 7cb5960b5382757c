//! `swarmpilot record`: a policy's Prometheus metrics history as a trace CSV.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use super::block_on;
use super::prometheus::PrometheusArgs;
use crate::metrics::record::{record, TimeGrid};
use crate::metrics::PrometheusClient;

/// Arguments of `swarmpilot record`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file (YAML) whose metrics are recorded.
    #[arg(long)]
    pub policy: PathBuf,
    /// Start of the range: that long ago (24h) or an RFC 3339 time.
    #[arg(long)]
    pub since: String,
    /// End of the range: that long ago or an RFC 3339 time. Default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Time between rows.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub step: Duration,
    /// The CSV file to write; `-` for standard output. (`-o` is the global output format.)
    #[arg(long, value_name = "FILE")]
    pub out_file: PathBuf,
    /// The value of `{{stack}}` in queries.
    #[arg(long)]
    pub stack: Option<String>,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&args.policy)
        .with_context(|| format!("cannot read {}", args.policy.display()))?;
    let policy = crate::policy::parse_bytes(&text).map_err(|diagnostics| {
        anyhow::anyhow!("{}: invalid policy: {diagnostics}", args.policy.display())
    })?;
    let now = Utc::now();
    let start = time_arg("--since", &args.since, now)?;
    let end = match &args.until {
        Some(until) => time_arg("--until", until, now)?,
        None => now,
    };
    let grid = TimeGrid {
        start,
        end,
        step: args.step,
    };
    let client = PrometheusClient::new(args.prometheus.config())?;
    let stack = args.stack.as_deref();
    let summary = if args.out_file.as_os_str() == "-" {
        let out = std::io::stdout().lock();
        block_on(record(&client, &policy, stack, grid, out))??
    } else {
        let file = std::fs::File::create(&args.out_file)
            .with_context(|| format!("cannot create {}", args.out_file.display()))?;
        let out = std::io::BufWriter::new(file);
        block_on(record(&client, &policy, stack, grid, out))??
    };
    for (name, reason) in &summary.skipped {
        eprintln!("skipped {name}: {reason}");
    }
    eprintln!(
        "recorded {} rows of {} ({} empty cells)",
        summary.rows,
        summary.columns.join(", "),
        summary.missing
    );
    Ok(ExitCode::SUCCESS)
}

/// `24h` (that long before `now`) or an RFC 3339 time.
fn time_arg(flag: &str, text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return chrono::Duration::from_std(ago)
            .ok()
            .and_then(|ago| now.checked_sub_signed(ago))
            .with_context(|| format!("{flag} {text}: too far back"));
    }
    match DateTime::parse_from_rfc3339(text) {
        Ok(time) => Ok(time.with_timezone(&Utc)),
        Err(_) => bail!(
            "{flag} {text:?}: expected a duration ago (24h) or an RFC 3339 time (2024-05-01T00:00:00Z)"
        ),
    }
}
