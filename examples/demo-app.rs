//! The demo app: an HTTP service with a configurable amount of CPU work per request, exposing
//! Prometheus metrics (requests by status code, a request-duration histogram, bytes in and out
//! as on the wire) and a readiness endpoint — the thing swarmpilot scales in the demo and the
//! end-to-end test.
//!
//! ```text
//! cargo run --example demo-app -- --listen 127.0.0.1:8080 --work-ms 5
//! curl 'http://127.0.0.1:8080/?work_ms=20&bytes=512'
//! curl http://127.0.0.1:8080/metrics
//! ```
//!
//! `GET /` burns `work_ms` milliseconds of CPU (query parameter, else `--work-ms`) and answers
//! with `bytes` bytes; when more than `--max-inflight` requests are in progress it answers 503 at
//! once, like an overloaded server would. `/ready` answers 200 once listening, `/metrics` serves
//! OpenMetrics text.

#[path = "support/shutdown.rs"]
mod shutdown;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// The most CPU work one request may ask for, so a typo cannot wedge a task.
const MAX_WORK: Duration = Duration::from_secs(2);
/// The largest response body one request may ask for.
const MAX_BYTES: usize = 1 << 20;

/// An HTTP service with configurable CPU work per request and Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "demo-app", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080", env = "DEMO_LISTEN")]
    listen: SocketAddr,
    /// CPU milliseconds each request burns unless it asks otherwise (`?work_ms=`).
    #[arg(long, default_value_t = 2.0, env = "DEMO_WORK_MS")]
    work_ms: f64,
    /// Response body size unless the request asks otherwise (`?bytes=`): a small web page.
    #[arg(long, default_value_t = 4096, env = "DEMO_BYTES")]
    bytes: usize,
    /// Requests in progress beyond which the app answers 503 at once.
    #[arg(long, default_value_t = 64, env = "DEMO_MAX_INFLIGHT")]
    max_inflight: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

/// The app's metrics. The `service` label is added by Prometheus's relabelling, not here.
struct Metrics {
    registry: Registry,
    requests: Family<CodeLabel, Counter>,
    duration: Histogram,
    received: Counter,
    sent: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<CodeLabel, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by status code",
            requests.clone(),
        );
        let duration = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response",
            Unit::Seconds,
            duration.clone(),
        );
        let received = Counter::default();
        registry.register_with_unit(
            "http_received",
            "Request bytes received: request line, headers and body, as HTTP/1.1 frames them",
            Unit::Bytes,
            received.clone(),
        );
        let sent = Counter::default();
        registry.register_with_unit(
            "http_sent",
            "Response bytes sent: status line, headers and body, as HTTP/1.1 frames them",
            Unit::Bytes,
            sent.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            received,
            sent,
        }
    }

    fn record(&self, code: StatusCode, started: Instant, received: usize, sent: usize) {
        self.requests
            .get_or_create(&CodeLabel {
                code: code.as_u16().to_string(),
            })
            .inc();
        self.duration.observe(started.elapsed().as_secs_f64());
        self.received.inc_by(received as u64);
        self.sent.inc_by(sent as u64);
    }
}

struct App {
    defaults: Work,
    metrics: Metrics,
    inflight: Semaphore,
}

#[derive(Clone, Copy, Debug)]
struct Work {
    cpu: Duration,
    bytes: usize,
}

#[derive(Debug, Default, Deserialize)]
struct WorkQuery {
    work_ms: Option<f64>,
    bytes: Option<usize>,
}

impl WorkQuery {
    fn resolve(&self, defaults: Work) -> Result<Work, String> {
        let cpu = match self.work_ms {
            None => defaults.cpu,
            Some(ms) => cpu_duration(ms).map_err(|e| format!("work_ms: {e}"))?,
        };
        let bytes = self.bytes.unwrap_or(defaults.bytes);
        if bytes > MAX_BYTES {
            return Err(format!(
                "bytes: {bytes} is above the maximum of {MAX_BYTES}"
            ));
        }
        Ok(Work { cpu, bytes })
    }
}

fn cpu_duration(ms: f64) -> Result<Duration, String> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!("{ms} is not a number of milliseconds from 0 up"));
    }
    let work = Duration::from_secs_f64(ms / 1000.0);
    if work > MAX_WORK {
        return Err(format!(
            "{ms} ms is above the maximum of {} ms",
            MAX_WORK.as_millis()
        ));
    }
    Ok(work)
}

/// Burns CPU for `work` (hashing, so the optimizer cannot drop the loop).
fn burn(work: Duration) -> u64 {
    let started = Instant::now();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    while started.elapsed() < work {
        for _ in 0..1000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
    }
    std::hint::black_box(state)
}

async fn serve_work(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<WorkQuery>, QueryRejection>,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let work = query
        .map_err(|rejection| rejection.body_text())
        .and_then(|Query(query)| query.resolve(app.defaults));
    let (code, reply) = match work {
        Err(problem) => (StatusCode::BAD_REQUEST, format!("{problem}\n").into_bytes()),
        Ok(work) => match app.inflight.try_acquire() {
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                b"overloaded: too many requests in progress\n".to_vec(),
            ),
            Ok(_permit) => {
                let burned = tokio::task::spawn_blocking(move || burn(work.cpu)).await;
                match burned {
                    Ok(_) => (StatusCode::OK, vec![b'.'; work.bytes]),
                    Err(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        b"the work failed\n".to_vec(),
                    ),
                }
            }
        },
    };
    let body_sent = reply.len();
    let response = (code, reply).into_response();
    app.metrics.record(
        code,
        started,
        request_wire_len(&method, &uri, &headers, body.len()),
        response_wire_len(&response, body_sent),
    );
    response
}

/// `name: value\r\n` for each header.
fn headers_wire_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum()
}

/// The request as HTTP/1.1 carries it: `METHOD TARGET HTTP/1.1\r\n`, headers, `\r\n`, body.
/// Counting the head, not only the body, is what lets a flood of small requests show as what it
/// is on the network: many requests, few bytes each.
fn request_wire_len(method: &Method, uri: &Uri, headers: &HeaderMap, body: usize) -> usize {
    let target = uri
        .path_and_query()
        .map_or(1, |target| target.as_str().len());
    method.as_str().len()
        + 1
        + target
        + " HTTP/1.1\r\n".len()
        + headers_wire_len(headers)
        + 2
        + body
}

/// The response as HTTP/1.1 carries it: the status line, the handler's headers, the
/// `content-length` and `date` headers the server adds, `\r\n`, body.
fn response_wire_len(response: &Response, body: usize) -> usize {
    let status = response.status();
    let status_line = "HTTP/1.1 200 \r\n".len() + status.canonical_reason().unwrap_or("").len();
    let content_length = "content-length: \r\n".len() + body.to_string().len();
    let date = "date: Sun, 22 Nov 2026 03:50:00 GMT\r\n".len();
    status_line + headers_wire_len(response.headers()) + content_length + date + 2 + body
}

async fn ready() -> &'static str {
    "ready\n"
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut text = String::new();
    match encode(&mut text, &app.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = Work {
        cpu: cpu_duration(args.work_ms).map_err(|e| anyhow::anyhow!("--work-ms: {e}"))?,
        bytes: args.bytes,
    };
    anyhow::ensure!(
        args.bytes <= MAX_BYTES,
        "--bytes: {} is above the maximum of {MAX_BYTES}",
        args.bytes
    );
    anyhow::ensure!(args.max_inflight > 0, "--max-inflight must be at least 1");
    let app = Arc::new(App {
        defaults,
        metrics: Metrics::new(),
        inflight: Semaphore::new(args.max_inflight),
    });
    let router = Router::new()
        .route("/", get(serve_work).post(serve_work))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "demo-app listening on {} (work {:?} per request, {} bytes, at most {} in flight)",
        args.listen, defaults.cpu, defaults.bytes, args.max_inflight
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown::signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_counted_as_http_1_1_frames_them() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "web:8080".parse().unwrap());
        let uri: Uri = "/?work_ms=0&bytes=0".parse().unwrap();
        let request = "GET /?work_ms=0&bytes=0 HTTP/1.1\r\nhost: web:8080\r\n\r\n";
        assert_eq!(
            request_wire_len(&Method::GET, &uri, &headers, 0),
            request.len()
        );
        let response = (StatusCode::OK, vec![b'.'; 12]).into_response();
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\
                    content-length: 12\r\ndate: Sun, 22 Nov 2026 03:50:00 GMT\r\n\r\n";
        assert_eq!(response_wire_len(&response, 12), head.len() + 12);
    }

    #[test]
    fn query_overrides_defaults_within_bounds() {
        let defaults = Work {
            cpu: Duration::from_millis(2),
            bytes: 64,
        };
        let work = WorkQuery {
            work_ms: Some(10.0),
            bytes: Some(8),
        }
        .resolve(defaults)
        .unwrap();
        assert_eq!(work.cpu, Duration::from_millis(10));
        assert_eq!(work.bytes, 8);
        let default = WorkQuery::default().resolve(defaults).unwrap();
        assert_eq!(default.cpu, Duration::from_millis(2));
        for bad in [
            WorkQuery {
                work_ms: Some(-1.0),
                bytes: None,
            },
            WorkQuery {
                work_ms: Some(5000.0),
                bytes: None,
            },
            WorkQuery {
                work_ms: None,
                bytes: Some(MAX_BYTES + 1),
            },
        ] {
            assert!(bad.resolve(defaults).is_err(), "{bad:?} accepted");
        }
    }
}
