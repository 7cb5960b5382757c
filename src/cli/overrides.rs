//! `swarmpilot override SERVICE`: pins, pauses or clears a service's override through the
//! operator's API (`POST`/`DELETE /v1/services/{service}/override`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::Serialize;

use super::{block_on, print_structured, Output};
use crate::policy::{is_valid_service_name, HumanDuration, Override};
use crate::webhook::auth::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::webhook::overrides::{ClearResponse, OverrideRequest, OverrideResponse};
use crate::webhook::ErrorBody;

/// The environment variable holding a token, when `--token-file` is not given.
pub const TOKEN_ENV: &str = "SWARMPILOT_TOKEN";

/// Arguments of `swarmpilot override`.
#[derive(Clone, Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("intent")
        .required(true)
        .args(["replicas", "pause", "pause_scale_in", "pause_scale_out", "clear"])
))]
pub struct Args {
    /// The Swarm service.
    pub service: String,
    /// Pin the service at N replicas (within its policy's minReplicas..maxReplicas).
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// Make no change at all.
    #[arg(long)]
    pub pause: bool,
    /// Never scale in.
    #[arg(long)]
    pub pause_scale_in: bool,
    /// Never scale out.
    #[arg(long)]
    pub pause_scale_out: bool,
    /// Remove the service's override.
    #[arg(long)]
    pub clear: bool,
    /// How long the override lasts, e.g. 30m.
    #[arg(long, value_name = "DURATION", required_unless_present = "clear")]
    pub ttl: Option<HumanDuration>,
    /// Why, for whoever looks at the service next.
    #[arg(long, value_name = "TEXT", required_unless_present = "clear")]
    pub reason: Option<String>,
    /// The operator's API.
    #[arg(
        long,
        value_name = "URL",
        env = "SWARMPILOT_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// A file holding a write token; without it the token is read from env SWARMPILOT_TOKEN.
    #[arg(long, value_name = "FILE", env = "SWARMPILOT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A file holding the HMAC key, when the operator requires signed writes.
    #[arg(long, value_name = "FILE", env = "SWARMPILOT_SIGNATURE_KEY_FILE")]
    pub signature_key_file: Option<PathBuf>,
    /// How long to wait for the operator.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub timeout: HumanDuration,
}

/// What the operator answered.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Set(OverrideResponse),
    Cleared(ClearResponse),
}

/// Sends the override and prints the operator's answer.
pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let answer = block_on(send(args))??;
    match output {
        Output::Table => println!("{}", describe(&answer)),
        other => print_structured(&answer, other)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One line saying what the operator did.
pub fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Set(OverrideResponse { service, value }) => {
            format!(
                "{service}: {} ({}, by {})",
                what(value),
                value.reason,
                value.by
            )
        }
        Answer::Cleared(ClearResponse {
            service,
            cleared: true,
            ..
        }) => format!("{service}: override cleared"),
        Answer::Cleared(ClearResponse { service, .. }) => {
            format!("{service}: had no override")
        }
    }
}

fn what(value: &Override) -> String {
    let until = value.expires_at.format("%Y-%m-%d %H:%M:%S UTC");
    match value.replicas {
        Some(replicas) => format!("pinned at {replicas} replicas until {until}"),
        None if value.pause => format!("paused until {until}"),
        None if value.pause_scale_in => format!("no scale-in until {until}"),
        None => format!("no scale-out until {until}"),
    }
}

/// Sends the request of `args` to the operator.
pub async fn send(args: &Args) -> anyhow::Result<Answer> {
    if !is_valid_service_name(&args.service) {
        bail!("{:?} is not a Swarm service name", args.service);
    }
    let token = token(args)?;
    let path = format!("/v1/services/{}/override", args.service);
    let url = format!("{}{path}", args.server.trim_end_matches('/'));
    let body = if args.clear {
        Vec::new()
    } else {
        serde_json::to_vec(&OverrideRequest {
            replicas: args.replicas.map(i64::from),
            pause: args.pause,
            pause_scale_in: args.pause_scale_in,
            pause_scale_out: args.pause_scale_out,
            ttl: args.ttl.context("--ttl is required")?,
            reason: args.reason.clone().context("--reason is required")?,
        })?
    };
    let client = reqwest::Client::builder()
        .timeout(args.timeout.as_std().max(Duration::from_secs(1)))
        .build()?;
    let method = if args.clear {
        reqwest::Method::DELETE
    } else {
        reqwest::Method::POST
    };
    let mut request = if args.clear {
        client.delete(&url)
    } else {
        client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
    };
    request = request.bearer_auth(token);
    if let Some(key_file) = &args.signature_key_file {
        let key = read_trimmed(key_file)?;
        let now = chrono::Utc::now().timestamp();
        request = request.header(TIMESTAMP_HEADER, now).header(
            SIGNATURE_HEADER,
            sign(key.as_bytes(), &method, &path, now, &body),
        );
    }
    let response = request
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach the operator at {}", args.server))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(error) => anyhow!("{} ({status})", error.detail),
            Err(_) => anyhow!("the operator answered {status}"),
        });
    }
    let answer = if args.clear {
        Answer::Cleared(serde_json::from_slice(&bytes)?)
    } else {
        Answer::Set(serde_json::from_slice(&bytes)?)
    };
    Ok(answer)
}

fn token(args: &Args) -> anyhow::Result<String> {
    if let Some(path) = &args.token_file {
        return read_trimmed(path);
    }
    match std::env::var(TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        _ => bail!("no token: pass --token-file FILE (a write token) or set {TOKEN_ENV}"),
    }
}

fn read_trimmed(path: &PathBuf) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim().to_owned())
}
