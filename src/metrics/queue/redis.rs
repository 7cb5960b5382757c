//! The Redis reader: a list's length (`LLEN`), or the entries of a stream delivered to a
//! consumer group and not yet acknowledged (`XPENDING`), over one multiplexed connection per
//! server kept from read to read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};

use super::{reading, server_label, QUEUE_TIMEOUT};
use crate::metrics::{MetricError, MetricSource, Reading};
use crate::policy::RedisSource;
use crate::servers::{Auth, Outbound, ServerKind, Target};
use crate::swarm::ServiceInfo;

/// Reads Redis backlogs. Clones share the connections.
#[derive(Clone)]
pub struct RedisReader {
    outbound: Outbound,
    timeout: Duration,
    /// One connection per server reference: every policy reading a server, every interval,
    /// shares it, rather than opening a connection (and authenticating) per read.
    connections: Arc<Mutex<HashMap<String, Kept>>>,
}

/// A kept connection and the URL (credentials included) it was opened with: a rotated secret
/// gives another URL, and a new connection.
struct Kept {
    url: url::Url,
    connection: MultiplexedConnection,
}

impl std::fmt::Debug for RedisReader {
    /// Without the kept URLs: they hold passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReader")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What is read: a list or a consumer group's pending entries.
enum Backlog<'a> {
    List(&'a str),
    Pending { stream: &'a str, group: &'a str },
}

impl<'a> Backlog<'a> {
    fn of(spec: &'a RedisSource) -> Result<Self, MetricError> {
        match (&spec.list_name, &spec.stream, &spec.consumer_group) {
            (Some(list), _, _) => Ok(Backlog::List(list)),
            (None, Some(stream), Some(group)) => Ok(Backlog::Pending { stream, group }),
            _ => Err(MetricError::InvalidSource(
                "redis: set listName, or stream and consumerGroup".into(),
            )),
        }
    }

    async fn query(&self, connection: &mut MultiplexedConnection) -> Result<i64, RedisError> {
        match self {
            Backlog::List(list) => redis::cmd("LLEN").arg(list).query_async(connection).await,
            Backlog::Pending { stream, group } => {
                // The summary form: [count, lowest id, highest id, [[consumer, count]...]].
                let (pending, _, _, _): (i64, redis::Value, redis::Value, redis::Value) =
                    redis::cmd("XPENDING")
                        .arg(stream)
                        .arg(group)
                        .query_async(connection)
                        .await?;
                Ok(pending)
            }
        }
    }

    /// What was read, for an error: `list jobs`, `stream events, group workers`.
    fn describe(&self) -> String {
        match self {
            Backlog::List(list) => format!("list {list:?}"),
            Backlog::Pending { stream, group } => {
                format!("stream {stream:?}, consumer group {group:?}")
            }
        }
    }
}

impl RedisReader {
    pub fn new(outbound: Outbound) -> Self {
        RedisReader {
            outbound,
            timeout: QUEUE_TIMEOUT,
            connections: Arc::default(),
        }
    }

    /// The kept connection to `key` when it was opened with `url`, else a new one, kept.
    /// `true` with a kept one: it may have been closed by the server since.
    async fn connection(
        &self,
        key: &str,
        url: &url::Url,
        at: &str,
    ) -> Result<(MultiplexedConnection, bool), MetricError> {
        let kept = self
            .kept()
            .get(key)
            .filter(|kept| kept.url == *url)
            .map(|kept| kept.connection.clone());
        if let Some(connection) = kept {
            return Ok((connection, true));
        }
        let client = redis::Client::open(url.as_str()).map_err(|error| {
            // The error's text may quote the URL, which holds the password: its kind only.
            MetricError::InvalidSource(format!("{at}: {:?}", error.kind()))
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|error| failed(at, &error, "connecting"))?;
        self.kept().insert(
            key.to_owned(),
            Kept {
                url: url.clone(),
                connection: connection.clone(),
            },
        );
        Ok((connection, false))
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        // A panic while holding the map leaves it whole (inserts and removes only).
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many connections are kept (one per server read so far).
    pub fn kept_connections(&self) -> usize {
        self.kept().len()
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
        let at = server_label("redis", &spec.server, &target);
        let backlog = Backlog::of(spec)?;
        let url = with_credentials(&target)?;
        let read = async {
            let (mut connection, kept) = self.connection(&spec.server, &url, &at).await?;
            let value = match backlog.query(&mut connection).await {
                // The server closed a kept connection (a restart, an idle timeout): once more
                // on a new one, so a restart of Redis costs no failed read.
                Err(error) if kept && lost(&error) => {
                    self.kept().remove(&spec.server);
                    let (mut connection, _) = self.connection(&spec.server, &url, &at).await?;
                    backlog.query(&mut connection).await
                }
                result => result,
            };
            value
                .map(|value| reading(value as f64))
                .map_err(|error| failed(&at, &error, &backlog.describe()))
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(result) => result,
            Err(_) => Err(MetricError::Timeout {
                url: at,
                timeout: self.timeout,
            }),
        }
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

/// Whether the connection is gone, rather than the command refused.
fn lost(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}

const CHECK_CREDENTIALS: &str =
    "; check the username and the password file of its auth in the servers file";

/// A failed connection or command as a metric error naming the server and what was read.
fn failed(at: &str, error: &RedisError, reading: &str) -> MetricError {
    if let Some(code) = error.code() {
        let hint = match code {
            "NOAUTH" | "WRONGPASS" => CHECK_CREDENTIALS,
            "NOGROUP" => "; the stream or its consumer group does not exist",
            "WRONGTYPE" => "; the key holds another type",
            _ => "",
        };
        return MetricError::Refused {
            server: at.to_owned(),
            kind: code.to_owned(),
            message: crate::decide::clip(&format!("{reading}: {error}{hint}"), 300),
        };
    }
    if error.kind() == redis::ErrorKind::AuthenticationFailed {
        return MetricError::Refused {
            server: at.to_owned(),
            kind: "authentication failed".into(),
            message: format!("{reading}: {error}{CHECK_CREDENTIALS}"),
        };
    }
    if error.is_timeout() {
        return MetricError::Timeout {
            url: at.to_owned(),
            timeout: QUEUE_TIMEOUT,
        };
    }
    MetricError::Unreachable {
        url: at.to_owned(),
        reason: error.to_string(),
    }
}
