//! The queue sources: a Redis list's length or a stream's pending entries, and a RabbitMQ
//! queue's ready + unacknowledged messages through its management HTTP API.
//!
//! A queue's backlog belongs to the service as a whole, like a Prometheus query: the reading
//! has no per-task values, and an `averageValue` target divides it by the replicas (messages
//! per replica). Servers are named, never given as URLs: they come from the operator's servers
//! file with their credentials.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;

use super::http::fetch;
use super::prometheus::json_problem;
use super::{MetricError, MetricSource, Reading};
use crate::policy::{RabbitmqSource, RedisSource};
use crate::servers::{Auth, Outbound, ServerKind, Target};
use crate::swarm::ServiceInfo;

/// The deadline of one queue read, connection included.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest management API answer read (one queue's object is a few KB).
const MAX_QUEUE_BODY_BYTES: usize = 1024 * 1024;

fn reading(value: f64) -> Reading {
    Reading {
        value,
        at: Utc::now(),
        tasks: Vec::new(),
        skipped: Vec::new(),
    }
}

/// Reads Redis backlogs.
#[derive(Clone, Debug)]
pub struct RedisReader {
    outbound: Outbound,
    timeout: Duration,
}

impl RedisReader {
    pub fn new(outbound: Outbound) -> Self {
        RedisReader {
            outbound,
            timeout: QUEUE_TIMEOUT,
        }
    }
}

impl MetricSource for RedisReader {
    type Spec = RedisSource;

    async fn read(
        &self,
        _service: &ServiceInfo,
        _metric: &str,
        spec: &RedisSource,
    ) -> Result<Reading, MetricError> {
        let target = self.outbound.resolve(ServerKind::Redis, &spec.server)?;
        // Errors name the server, never its URL: the URL below carries the password.
        let at = format!("redis server {}", spec.server);
        let url = with_credentials(&target)?;
        let read = async {
            let client = redis::Client::open(url.as_str()).map_err(|error| {
                MetricError::InvalidSource(format!("{at}: {}", error.kind_text()))
            })?;
            let mut connection = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|error| unreachable(&at, &error))?;
            let value: i64 = match (&spec.list_name, &spec.stream, &spec.consumer_group) {
                (Some(list), _, _) => redis::cmd("LLEN")
                    .arg(list)
                    .query_async(&mut connection)
                    .await
                    .map_err(|error| query_failed(&at, &error))?,
                (None, Some(stream), Some(group)) => {
                    let (pending, _, _, _): (i64, redis::Value, redis::Value, redis::Value) =
                        redis::cmd("XPENDING")
                            .arg(stream)
                            .arg(group)
                            .query_async(&mut connection)
                            .await
                            .map_err(|error| query_failed(&at, &error))?;
                    pending
                }
                _ => {
                    return Err(MetricError::InvalidSource(
                        "redis: set listName, or stream and consumerGroup".into(),
                    ))
                }
            };
            Ok(reading(value as f64))
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .unwrap_or(Err(MetricError::Timeout {
                url: at.clone(),
                timeout: self.timeout,
            }))
    }
}

/// The server's URL with its credentials from the secret file (Redis takes them in the URL).
fn with_credentials(target: &Target) -> Result<url::Url, MetricError> {
    let mut url = target.url.clone();
    if let Some(auth) = &target.auth {
        let secret = auth.secret()?;
        let username = match auth {
            Auth::Basic { username, .. } => username.as_str(),
            Auth::Bearer { .. } => "",
        };
        let refused = || MetricError::InvalidSource("the redis URL cannot take credentials".into());
        url.set_username(username).map_err(|_| refused())?;
        url.set_password(Some(&secret)).map_err(|_| refused())?;
    }
    Ok(url)
}

trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for redis::RedisError {
    /// The error without any detail that might hold the URL.
    fn kind_text(&self) -> String {
        format!("{:?}", self.kind())
    }
}

fn unreachable(at: &str, error: &redis::RedisError) -> MetricError {
    MetricError::Unreachable {
        url: at.to_owned(),
        reason: error.to_string(),
    }
}

fn query_failed(at: &str, error: &redis::RedisError) -> MetricError {
    if error.is_io_error() || error.is_connection_dropped() || error.is_timeout() {
        return unreachable(at, error);
    }
    MetricError::Query {
        kind: error.code().unwrap_or("redis").to_owned(),
        message: crate::decide::clip(&error.to_string(), 200),
    }
}

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
        let mut url = target.url.clone();
        let base = url.to_string();
        url.path_segments_mut()
            .map_err(|_| MetricError::InvalidSource(format!("{base} cannot be a base URL")))?
            .pop_if_empty()
            .extend(["api", "queues", &spec.vhost_name, &spec.queue_name]);
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
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(MetricError::Empty(format!(
                "RabbitMQ has no queue {:?} in virtual host {:?} (HTTP 404)",
                spec.queue_name, spec.vhost_name
            )));
        }
        if !status.is_success() {
            return Err(MetricError::BadResponse {
                url: shown,
                reason: format!("HTTP {status}"),
            });
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
                "RabbitMQ has no message counts for queue {:?} yet",
                spec.queue_name
            ))),
        }
    }
}
