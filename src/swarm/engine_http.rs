//! Plain JSON requests to the engine API, for what bollard's generated models cannot carry.
//!
//! bollard's models follow the published API spec, and the engine does not: a task's
//! `NetworksAttachments` (its addresses, on every node) is not in the spec, and the spec spells
//! `ContainerSpec.HealthCheck` where the engine writes `Healthcheck`, so a spec read through
//! bollard and written back silently drops the service's health check. Service updates therefore
//! go through here as raw JSON, and so do task listings. Same `DOCKER_HOST`, same API version.

use std::path::PathBuf;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use serde::de::DeserializeOwned;

use super::{SwarmError, SwarmResult};

/// Why a request failed: the engine's refusal, with its status and message, or no answer at all.
#[derive(Debug)]
pub(crate) enum EngineFailure {
    Refused { status: u16, message: String },
    Unanswered(String),
}

/// Where the engine listens, parsed from `DOCKER_HOST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EngineAddress {
    Unix(PathBuf),
    /// `host:port`, spoken to in plain HTTP.
    Tcp(String),
}

impl EngineAddress {
    /// Parses a `DOCKER_HOST` value: `unix:///path` or `tcp://host:port`.
    pub(crate) fn parse(docker_host: &str) -> SwarmResult<Self> {
        if let Some(path) = docker_host.strip_prefix("unix://") {
            return Ok(EngineAddress::Unix(PathBuf::from(path)));
        }
        let authority = docker_host
            .strip_prefix("tcp://")
            .or_else(|| docker_host.strip_prefix("http://"));
        match authority {
            Some(authority) if !authority.is_empty() => Ok(EngineAddress::Tcp(
                authority.trim_end_matches('/').to_owned(),
            )),
            _ => Err(SwarmError::Engine(format!(
                "unsupported DOCKER_HOST {docker_host:?}: expected unix:///path or tcp://host:port"
            ))),
        }
    }
}

#[derive(Clone, Debug)]
enum Transport {
    Unix(Client<UnixConnector, Full<Bytes>>, PathBuf),
    Tcp(Client<HttpConnector, Full<Bytes>>, String),
}

/// A JSON GET client for one engine, at one API version.
#[derive(Clone, Debug)]
pub(crate) struct EngineHttp {
    transport: Transport,
    /// `/v1.41`: the version negotiated by bollard, so both clients speak the same API.
    version_prefix: String,
}

impl EngineHttp {
    pub(crate) fn new(address: &EngineAddress, api_version: &str) -> Self {
        let builder = Client::builder(TokioExecutor::new());
        let transport = match address {
            EngineAddress::Unix(path) => {
                Transport::Unix(builder.build(UnixConnector), path.clone())
            }
            EngineAddress::Tcp(authority) => {
                Transport::Tcp(builder.build(HttpConnector::new()), authority.clone())
            }
        };
        EngineHttp {
            transport,
            version_prefix: format!("/v{api_version}"),
        }
    }

    /// GETs `path_and_query` (e.g. `/tasks?filters=...`) and decodes the JSON answer.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<T, EngineFailure> {
        let body = self.request(Method::GET, path_and_query, None).await?;
        serde_json::from_slice(&body).map_err(|e| {
            EngineFailure::Unanswered(format!("GET {path_and_query}: unexpected answer: {e}"))
        })
    }

    /// POSTs `body` as JSON to `path_and_query`; the answer's body is returned undecoded.
    pub(crate) async fn post_json(
        &self,
        path_and_query: &str,
        body: &serde_json::Value,
    ) -> Result<Bytes, EngineFailure> {
        let body = serde_json::to_vec(body)
            .map_err(|e| EngineFailure::Unanswered(format!("POST {path_and_query}: {e}")))?;
        self.request(Method::POST, path_and_query, Some(body)).await
    }

    async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, EngineFailure> {
        let path = format!("{}{}", self.version_prefix, path_and_query);
        let what = format!("{method} {path}");
        let unanswered =
            |e: &dyn std::fmt::Display| EngineFailure::Unanswered(format!("{what}: {e}"));
        let uri: hyper::Uri = match &self.transport {
            Transport::Unix(_, socket) => hyperlocal::Uri::new(socket, &path).into(),
            Transport::Tcp(_, authority) => format!("http://{authority}{path}")
                .parse()
                .map_err(|e| unanswered(&e))?,
        };
        let mut request = hyper::Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| unanswered(&e))?;
        let response = match &self.transport {
            Transport::Unix(client, _) => client.request(request).await,
            Transport::Tcp(client, _) => client.request(request).await,
        }
        .map_err(|e| unanswered(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unanswered(&e))?
            .to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(EngineFailure::Refused {
            status: status.as_u16(),
            message,
        })
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass through).
pub(crate) fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_docker_host_forms() {
        assert_eq!(
            EngineAddress::parse("unix:///var/run/docker.sock").unwrap(),
            EngineAddress::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            EngineAddress::parse("tcp://10.0.0.1:2375").unwrap(),
            EngineAddress::Tcp("10.0.0.1:2375".into())
        );
        let err = EngineAddress::parse("ssh://me@host")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssh://me@host"), "{err}");
        assert!(EngineAddress::parse("tcp://").is_err());
    }

    #[test]
    fn escapes_a_json_filter() {
        assert_eq!(
            query_escape(r#"{"service":["a b"]}"#),
            "%7B%22service%22%3A%5B%22a%20b%22%5D%7D"
        );
    }
}
