//! The read side: the status API over the [`StatusStore`](crate::reconcile::StatusStore),
//! health and readiness, the operator's metrics, the OpenAPI document and the dashboard page.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::ServiceName;
use super::AppState;
use crate::reconcile::{HistoryRange, Role, Sample, ServiceStatus};
use crate::swarm::Swarm;

/// The OpenAPI 3.1 description of this server, committed beside the code.
pub const OPENAPI: &str = include_str!("openapi.json");
/// The dashboard page; its script and style are served beside it from this server, and nothing
/// is fetched from anywhere else.
pub const DASHBOARD: &str = include_str!("dashboard.html");
/// The dashboard's script (`GET /dashboard.js`).
pub const DASHBOARD_SCRIPT: &str = include_str!("dashboard.js");
/// The dashboard's style (`GET /dashboard.css`).
pub const DASHBOARD_STYLE: &str = include_str!("dashboard.css");
/// The dashboard's Content-Security-Policy: its own script, style and API only; no inline
/// script or style, no frames, no forms posted elsewhere.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The body of `GET /v1/services`.
#[derive(Serialize, Deserialize)]
pub struct ServiceList {
    pub services: Vec<ServiceStatus>,
}

/// `GET /v1/services`
pub async fn list_services<S: Swarm>(State(state): State<AppState<S>>) -> Json<ServiceList> {
    Json(ServiceList {
        services: state.status.all(),
    })
}

/// `GET /v1/services/{service}`
pub async fn get_service<S: Swarm>(
    State(state): State<AppState<S>>,
    ServiceName(service): ServiceName,
) -> Result<Json<ServiceStatus>, ApiError> {
    state
        .status
        .get(&service)
        .map(Json)
        .ok_or_else(|| unwatched(&service))
}

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
}

/// `GET /healthz`: the process serves requests.
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: the Docker engine answers; `standby` when another operator holds the lease
/// (this one serves the read APIs and takes over when the lease expires).
pub async fn readyz<S: Swarm>(State(state): State<AppState<S>>) -> Result<Json<Health>, ApiError> {
    match state.swarm.ping().await {
        Ok(()) if state.status.leadership().role() == Role::Standby => {
            Ok(Json(Health { status: "standby" }))
        }
        Ok(()) => Ok(Json(Health { status: "ready" })),
        Err(error) => {
            state.metrics.count_docker_error("ping");
            Err(ApiError::unavailable(format!(
                "the Docker engine does not answer: {error}"
            )))
        }
    }
}

/// `GET /metrics`
pub async fn metrics<S: Swarm>(State(state): State<AppState<S>>) -> Response {
    state
        .metrics
        .set_standby(state.status.leadership().role() == Role::Standby);
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the metrics could not be encoded",
        )
        .into_response(),
    }
}

/// `GET /openapi.json`
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /`
pub async fn dashboard() -> Response {
    page(DASHBOARD, "text/html; charset=utf-8")
}

/// `GET /dashboard.js`
pub async fn dashboard_script() -> Response {
    page(DASHBOARD_SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /dashboard.css`
pub async fn dashboard_style() -> Response {
    page(DASHBOARD_STYLE, "text/css; charset=utf-8")
}

/// One of the dashboard's files, with the headers that keep it to itself.
fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The query of `GET /v1/services/{service}/history`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `15m`, `1h` (the default) or `6h`.
    #[serde(default)]
    pub range: HistoryRange,
}

/// The body of `GET /v1/services/{service}/history`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub service: String,
    pub range: HistoryRange,
    /// The start of the range asked for; the samples may start later (a younger service).
    pub from: DateTime<Utc>,
    /// When the answer was made.
    pub to: DateTime<Utc>,
    /// The metric charted as `demand`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demand_metric: Option<String>,
    /// Oldest first: every sample of the last hour or so, one a minute before.
    pub samples: Vec<Sample>,
}

/// `GET /v1/services/{service}/history?range=15m|1h|6h`
pub async fn history<S: Swarm>(
    State(state): State<AppState<S>>,
    ServiceName(service): ServiceName,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::invalid(
            "range",
            format!(
                "range must be one of 15m, 1h or 6h: {}",
                rejection.body_text()
            ),
        )
    })?;
    let status = state
        .status
        .get(&service)
        .ok_or_else(|| unwatched(&service))?;
    let to = Utc::now();
    let from = to - query.range.duration();
    Ok(Json(History {
        samples: status.history(from),
        service,
        range: query.range,
        from,
        to,
        demand_metric: status.demand_metric,
    }))
}

fn unwatched(service: &str) -> ApiError {
    ApiError::not_found(format!(
        "swarmpilot watches no service named {service} (no policy label, or not seen yet)"
    ))
    .at("service")
}
