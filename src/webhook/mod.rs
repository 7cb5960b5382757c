//! The operator's HTTP server (axum): overrides, the Alertmanager receiver, the status API, the
//! operator's own `/metrics`, health checks, the OpenAPI document and the dashboard.
//!
//! It runs beside the reconcile loop in `swarmpilot run` and talks to it only through the
//! explicit [`AppState`]: the Swarm port (to write override labels), the
//! [`StatusStore`] (what it serves), the [`Waker`] (to reconcile a service at once after an
//! override) and the [`Metrics`] the loop records into.
//!
//! Auth is closed by default; see [`auth`]. Reads: a read or write token, or `--insecure-read`.
//! Overrides: a write token, always. Alerts: an alerts token. `/`, `/healthz`, `/readyz`, `/metrics` and `/openapi.json`
//! are open: they carry no policy content (the dashboard page itself holds no data; it asks for a
//! token, keeps it in the tab's `sessionStorage` and sends it as a bearer token).

pub mod alertmanager;
pub mod auth;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod overrides;
pub mod routes;
mod server;
mod signature;
pub mod status;
mod telemetry;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{AuthConfig, AuthError, Caller, Scope, TokenFiles};
pub use error::{ApiError, ErrorBody};
pub use limits::{RateLimit, RateLimiter};
pub use metrics::Metrics;
pub use routes::router;
pub use server::ConnectionLimits;
pub use tls::{TlsError, TlsFiles};

use crate::policy::HumanDuration;
use crate::reconcile::{StatusStore, Waker};
use crate::swarm::Swarm;

/// Everything the handlers use, passed explicitly.
pub struct AppState<S: Swarm> {
    pub swarm: Arc<S>,
    pub status: Arc<StatusStore>,
    pub waker: Waker,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<AuthConfig>,
    /// One bucket per token, for writes and alerts.
    pub limiter: Arc<RateLimiter>,
    /// The one bucket every unauthenticated request shares.
    pub anonymous: Arc<RateLimiter>,
    /// The deadline of each request.
    pub timeout: Duration,
}

impl<S: Swarm> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            swarm: self.swarm.clone(),
            status: self.status.clone(),
            waker: self.waker.clone(),
            metrics: self.metrics.clone(),
            auth: self.auth.clone(),
            limiter: self.limiter.clone(),
            anonymous: self.anonymous.clone(),
            timeout: self.timeout,
        }
    }
}

impl<S: Swarm> AppState<S> {
    pub fn new(
        swarm: Arc<S>,
        status: Arc<StatusStore>,
        waker: Waker,
        metrics: Arc<Metrics>,
        config: &ServerConfig,
    ) -> Self {
        Self {
            swarm,
            status,
            waker,
            metrics,
            auth: Arc::new(config.auth.clone()),
            limiter: Arc::new(RateLimiter::new(config.rate)),
            anonymous: Arc::new(RateLimiter::new(config.anonymous_rate)),
            timeout: config.timeout,
        }
    }
}

/// The server's settings, loaded from [`ServeArgs`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub auth: AuthConfig,
    pub rate: RateLimit,
    pub anonymous_rate: RateLimit,
    pub timeout: Duration,
    pub connections: ConnectionLimits,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsFiles>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: AuthConfig::default(),
            rate: RateLimit::default(),
            anonymous_rate: limits::ANONYMOUS,
            timeout: limits::DEFAULT_TIMEOUT,
            connections: ConnectionLimits::default(),
            tls: None,
        }
    }
}

/// The server's command-line options, to flatten into `swarmpilot run`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address of the HTTP API, the dashboard and /metrics.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8080",
        env = "SWARMPILOT_LISTEN"
    )]
    pub listen: SocketAddr,
    /// A file holding a read-scope bearer token (a Docker secret, e.g. /run/secrets/sp_read).
    /// Repeat for several tokens; each is named after its file.
    #[arg(long, value_name = "FILE")]
    pub read_token_file: Vec<PathBuf>,
    /// A file holding a write-scope bearer token (overrides; implies read). Without one, every
    /// override endpoint refuses.
    #[arg(long, value_name = "FILE")]
    pub write_token_file: Vec<PathBuf>,
    /// A file holding an alerts-scope bearer token: the Alertmanager receiver, and nothing
    /// else. Without one, the receiver refuses.
    #[arg(long, value_name = "FILE")]
    pub alerts_token_file: Vec<PathBuf>,
    /// A file holding an HMAC-SHA256 key: override requests must then also carry
    /// `X-Swarmpilot-Timestamp` and `X-Swarmpilot-Signature` (docs/security.md).
    #[arg(long, value_name = "FILE")]
    pub signature_key_file: Option<PathBuf>,
    /// Let anyone who reaches the port read the status API without a token.
    #[arg(long)]
    pub insecure_read: bool,
    /// The deadline of each request.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub request_timeout: HumanDuration,
    /// Write and alert requests one token may make at once...
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub write_burst: u32,
    /// ...and per minute after that.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub writes_per_minute: u32,
    /// Requests failing authentication, all callers together, at once...
    #[arg(long, value_name = "N", default_value_t = limits::ANONYMOUS.burst)]
    pub anonymous_burst: u32,
    /// ...and per minute after that.
    #[arg(long, value_name = "N", default_value_t = limits::ANONYMOUS.per_minute)]
    pub anonymous_per_minute: u32,
    /// Open connections at most; at the cap the longest-idle connection is closed for a new one.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_connections: usize,
    /// The longest a client may take to send a request's line and headers.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub header_read_timeout: HumanDuration,
    /// A connection with no traffic for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub idle_timeout: HumanDuration,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key-file); read again when it
    /// changes.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

impl ServeArgs {
    /// Reads the token and key files.
    pub fn load(&self) -> Result<ServerConfig, AuthError> {
        Ok(ServerConfig {
            listen: self.listen,
            auth: AuthConfig::from_files(
                &TokenFiles {
                    read: self.read_token_file.clone(),
                    write: self.write_token_file.clone(),
                    alerts: self.alerts_token_file.clone(),
                },
                self.signature_key_file.as_deref(),
                self.insecure_read,
            )?,
            rate: RateLimit {
                burst: self.write_burst,
                per_minute: self.writes_per_minute,
            },
            anonymous_rate: RateLimit {
                burst: self.anonymous_burst,
                per_minute: self.anonymous_per_minute,
            },
            timeout: self.request_timeout.as_std(),
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                header_read_timeout: self.header_read_timeout.as_std(),
                idle_timeout: self.idle_timeout.as_std(),
            },
            tls: match (&self.tls_cert_file, &self.tls_key_file) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
        })
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Binds `config.listen` and serves until `shutdown` is cancelled; requests in flight finish.
pub async fn serve<S: Swarm>(
    config: &ServerConfig,
    state: AppState<S>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    tracing::info!(addr = %config.listen, tls = config.tls.is_some(), "serving the API, dashboard and /metrics");
    serve_with(listener, state, config, shutdown).await
}

/// Serves on an already bound listener (port 0 in tests) with the default connection limits
/// until `shutdown` is cancelled.
pub async fn serve_on<S: Swarm>(
    listener: TcpListener,
    state: AppState<S>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    serve_with(listener, state, &ServerConfig::default(), shutdown).await
}

/// Serves on an already bound listener with `config`'s connection limits and TLS until
/// `shutdown` is cancelled.
pub async fn serve_with<S: Swarm>(
    listener: TcpListener,
    state: AppState<S>,
    config: &ServerConfig,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(tls::Tls::load(files.clone())?)),
        None => None,
    };
    server::serve_connections(listener, router(state), config.connections, tls, shutdown).await;
    Ok(())
}

/// Serves any `router` on `listener` with the same connection handling as the API (header-read
/// and idle timeouts, a connection cap, every connection joined at shutdown), without TLS. The
/// node agent serves its stats through it.
pub async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    server::serve_connections(listener, router, limits, None, shutdown).await;
}

#[cfg(test)]
pub(crate) mod tests;
