//! Asking the running operator's status API from the CLI (`get`, `describe`, `events`): what only
//! the operator knows (metric values, conditions, live events) beside what the labels hold.

use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::overrides::TOKEN_ENV;

/// Where the operator's API is and which read token to show it.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServerArgs {
    /// Also ask the running operator's API (metric values, conditions, decisions, events).
    #[arg(long, value_name = "URL", env = "SWARMPILOT_SERVER")]
    pub server: Option<String>,
    /// A file holding a read token for `--server`; without it the token is read from env
    /// SWARMPILOT_TOKEN, and with neither the request goes without one (`--insecure-read`).
    #[arg(long, value_name = "FILE", env = "SWARMPILOT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl ServerArgs {
    /// `GET path` of the operator, `None` without `--server`. An error is kept as text: the
    /// labels are worth showing whether or not the operator answers.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Option<Result<T, String>> {
        let server = self.server.as_deref()?;
        Some(self.fetch(server, path).await)
    }

    async fn fetch<T: DeserializeOwned>(&self, server: &str, path: &str) -> Result<T, String> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var(TOKEN_ENV)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
        };
        let url = format!("{}{path}", server.trim_end_matches('/'));
        let mut request = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = request
            .send()
            .await
            .map_err(|e| format!("cannot reach the operator at {server}: {e}"))?;
        let status = answer.status();
        let body: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| format!("{url}: not JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{url}: {status}: {}",
                body["detail"]
                    .as_str()
                    .or(body["error"].as_str())
                    .unwrap_or("")
            ));
        }
        serde_json::from_value(body).map_err(|e| format!("{url}: unexpected answer: {e}"))
    }
}
