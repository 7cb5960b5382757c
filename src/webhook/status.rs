//! The read side: the status API over the [`StatusStore`](crate::reconcile::StatusStore),
//! health and readiness, the operator's metrics, the OpenAPI document and the dashboard page.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::ServiceName;
use super::AppState;
use crate::reconcile::{Role, ServiceStatus};
use crate::swarm::Swarm;

/// The OpenAPI 3.1 description of this server, committed beside the code.
pub const OPENAPI: &str = include_str!("openapi.json");
/// The dashboard: one self-contained page (inline script and SVG, nothing fetched from elsewhere).
pub const DASHBOARD: &str = include_str!("dashboard.html");

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
    state.status.get(&service).map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "swarmpilot watches no service named {service} (no policy label, or not seen yet)"
        ))
        .at("service")
    })
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
pub async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}
