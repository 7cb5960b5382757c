//! The `--prometheus-*` arguments shared by every command that queries Prometheus.

use std::path::PathBuf;
use std::time::Duration;

use crate::metrics::{PrometheusAuth, PrometheusClientConfig};

/// How to reach Prometheus.
#[derive(Debug, clap::Args)]
pub struct PrometheusArgs {
    /// Base URL of the Prometheus server used by metrics that name none.
    #[arg(long, env = "SWARMPILOT_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// Deadline of one query.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub prometheus_timeout: Duration,
    /// File holding a bearer token for --prometheus-url (e.g. /run/secrets/prometheus-token).
    #[arg(
        long,
        env = "SWARMPILOT_PROMETHEUS_TOKEN_FILE",
        conflicts_with = "prometheus_user"
    )]
    pub prometheus_token_file: Option<PathBuf>,
    /// Basic-auth user for --prometheus-url, with the password in --prometheus-password-file.
    #[arg(
        long,
        env = "SWARMPILOT_PROMETHEUS_USER",
        requires = "prometheus_password_file"
    )]
    pub prometheus_user: Option<String>,
    /// File holding the basic-auth password (e.g. /run/secrets/prometheus-password).
    #[arg(
        long,
        env = "SWARMPILOT_PROMETHEUS_PASSWORD_FILE",
        requires = "prometheus_user"
    )]
    pub prometheus_password_file: Option<PathBuf>,
}

impl PrometheusArgs {
    /// The client configuration; credentials go only to `--prometheus-url`.
    pub fn config(&self) -> PrometheusClientConfig {
        let auth = match (
            &self.prometheus_token_file,
            &self.prometheus_user,
            &self.prometheus_password_file,
        ) {
            (Some(token_file), _, _) => Some(PrometheusAuth::Bearer {
                token_file: token_file.clone(),
            }),
            (None, Some(username), Some(password_file)) => Some(PrometheusAuth::Basic {
                username: username.clone(),
                password_file: password_file.clone(),
            }),
            _ => None,
        };
        PrometheusClientConfig {
            default_url: self.prometheus_url.clone(),
            timeout: self.prometheus_timeout,
            auth,
            ..Default::default()
        }
    }
}
