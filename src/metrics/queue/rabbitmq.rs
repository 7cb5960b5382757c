//! The RabbitMQ reader: a queue's ready + unacknowledged messages, from the management HTTP
//! API's `GET /api/queues/{vhost}/{queue}`.

use std::time::Duration;

use serde::Deserialize;

use super::{reading, server_label, QUEUE_TIMEOUT};
use crate::metrics::http::fetch;
use crate::metrics::prometheus::json_problem;
use crate::metrics::{MetricError, MetricSource, Reading};
use crate::policy::RabbitmqSource;
use crate::servers::{Auth, Outbound, ServerKind, Target};
use crate::swarm::ServiceInfo;

/// The largest management API answer read (one queue's object is a few KB).
const MAX_QUEUE_BODY_BYTES: usize = 1024 * 1024;

/// Reads RabbitMQ queues through the management HTTP API.
#[derive(Clone, Debug)]
pub struct RabbitmqReader {
    outbound: Outbound,
    /// The guarded client, or why it could not be built (each read then says so).
    http: Result<reqwest::Client, String>,
    timeout: Duration,
}

impl RabbitmqReader {
    pub fn new(outbound: Outbound) -> Self {
        let http = outbound
            .client(QUEUE_TIMEOUT)
            .map_err(|error| error.to_string());
        RabbitmqReader {
            outbound,
            http,
            timeout: QUEUE_TIMEOUT,
        }
    }

    /// `GET` of `segments` (and `query`) under the server's URL, with its credentials: the
    /// status, the body and the URL asked.
    async fn get(
        &self,
        target: &Target,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, Vec<u8>, String), MetricError> {
        let mut url = target.url.clone();
        let base = url.to_string();
        url.path_segments_mut()
            .map_err(|_| MetricError::InvalidSource(format!("{base} cannot be a base URL")))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let http = self
            .http
            .as_ref()
            .map_err(|error| MetricError::InvalidSource(error.clone()))?;
        let mut request = http.get(url.clone());
        if let Some(auth) = &target.auth {
            request = auth.apply(request)?;
        }
        let shown = url.to_string();
        let (status, body) = fetch(request, &shown, self.timeout, MAX_QUEUE_BODY_BYTES).await?;
        Ok((status, body, shown))
    }

    /// Why the API answered 404 for the queue: no such virtual host, or no such queue in it.
    /// The virtual host's queue list (one name of it) answers 404 when the virtual host does
    /// not exist, and needs only the monitoring rights the queue read needs.
    async fn not_found(&self, target: &Target, at: &str, spec: &RabbitmqSource) -> MetricError {
        let one_name = [("page", "1"), ("page_size", "1"), ("columns", "name")];
        let vhost_missing = matches!(
            self.get(target, &["api", "queues", &spec.vhost_name], &one_name).await,
            Ok((status, _, _)) if status == reqwest::StatusCode::NOT_FOUND
        );
        let (kind, message) = if vhost_missing {
            (
                "no such virtual host",
                format!("no virtual host {:?}", spec.vhost_name),
            )
        } else {
            (
                "no such queue",
                format!(
                    "no queue {:?} in virtual host {:?}",
                    spec.queue_name, spec.vhost_name
                ),
            )
        };
        MetricError::Refused {
            server: at.to_owned(),
            kind: kind.to_owned(),
            message: format!("{message} (HTTP 404)"),
        }
    }
}

/// The part of `GET /api/queues/{vhost}/{queue}` read.
#[derive(Deserialize)]
struct QueueCounts {
    #[serde(default)]
    messages_ready: Option<u64>,
    #[serde(default)]
    messages_unacknowledged: Option<u64>,
}

impl MetricSource for RabbitmqReader {
    type Spec = RabbitmqSource;

    async fn read(
        &self,
        _service: &ServiceInfo,
        _metric: &str,
        spec: &RabbitmqSource,
    ) -> Result<Reading, MetricError> {
        let target = self.outbound.resolve(ServerKind::Rabbitmq, &spec.server)?;
        let at = server_label("rabbitmq", &spec.server, &target);
        let (status, body, shown) = self
            .get(
                &target,
                &["api", "queues", &spec.vhost_name, &spec.queue_name],
                &[],
            )
            .await?;
        match status {
            reqwest::StatusCode::NOT_FOUND => return Err(self.not_found(&target, &at, spec).await),
            reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => {
                let user = match &target.auth {
                    Some(Auth::Basic { username, .. }) => format!("user {username:?}"),
                    Some(Auth::Bearer { .. }) => "the bearer token".to_owned(),
                    None => "no credentials (the server has no auth in the servers file)".into(),
                };
                return Err(MetricError::Refused {
                    server: at,
                    kind: format!("HTTP {}", status.as_u16()),
                    message: format!(
                        "HTTP {status} for queue {:?} in virtual host {:?} with {user}: check the \
                         credentials in the servers file and that the user has the management \
                         (or monitoring) tag and access to the virtual host",
                        spec.queue_name, spec.vhost_name
                    ),
                });
            }
            status if !status.is_success() => {
                return Err(MetricError::BadResponse {
                    url: shown,
                    reason: format!("HTTP {status}"),
                })
            }
            _ => {}
        }
        let counts: QueueCounts =
            serde_json::from_slice(&body).map_err(|error| MetricError::BadResponse {
                url: shown.clone(),
                reason: format!(
                    "HTTP {status}, not a queue object ({})",
                    json_problem(&error)
                ),
            })?;
        // A queue the broker has not published statistics for yet has no counts: no data rather
        // than a silent zero.
        match (counts.messages_ready, counts.messages_unacknowledged) {
            (Some(ready), Some(unacked)) => Ok(reading((ready + unacked) as f64)),
            _ => Err(MetricError::Empty(format!(
                "{at} has no message counts for queue {:?} yet",
                spec.queue_name
            ))),
        }
    }
}
