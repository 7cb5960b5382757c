//! The agent's HTTP server: `POST /v1/stats` for holders of the agent token, `GET /healthz`
//! for anyone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::join_all;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    StatsRequest, StatsResponse, TaskContainer, TaskStats, MAX_TASKS_PER_REQUEST, STATS_PATH,
};
use crate::swarm::LocalEngine;
use crate::webhook::extract::{ApiJson, BODY_LIMIT};
use crate::webhook::{serve_router, ApiError, AuthConfig, ConnectionLimits, Scope};

/// How the agent serves.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    /// The accepted token(s); read scope is what the stats endpoint asks for.
    pub auth: AuthConfig,
    /// The deadline of one container's inspect and stats sample.
    pub stats_timeout: Duration,
    /// Engine calls in flight at once, over all requests: the agent never loads its engine more.
    pub concurrency: usize,
    /// Header-read and idle timeouts and the connection cap, as the operator's API has.
    pub connections: ConnectionLimits,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AgentState {
    engine: LocalEngine,
    auth: Arc<AuthConfig>,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

impl AgentState {
    pub fn new(engine: LocalEngine, config: &AgentConfig) -> Self {
        AgentState {
            engine,
            auth: Arc::new(config.auth.clone()),
            timeout: config.stats_timeout,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
        }
    }
}

/// The agent's routes.
pub fn router(state: AgentState) -> Router {
    let stats = Router::new()
        .route(STATS_PATH, post(stats))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(stats)
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Binds `config.listen` and serves until `shutdown` is cancelled.
pub async fn serve(
    config: &AgentConfig,
    state: AgentState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %config.listen, "serving this node's task stats");
    serve_router(listener, router(state), config.connections, shutdown).await;
    Ok(())
}

/// Checks the bearer token before the body is even read.
async fn require_token(
    State(state): State<AgentState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.auth.authorize(&headers, Scope::Read)?;
    Ok(next.run(request).await)
}

async fn stats(
    State(state): State<AgentState>,
    ApiJson(request): ApiJson<StatsRequest>,
) -> Result<Json<StatsResponse>, ApiError> {
    if request.tasks.len() > MAX_TASKS_PER_REQUEST {
        return Err(ApiError::invalid(
            "tasks",
            format!(
                "tasks: {} entries, at most {MAX_TASKS_PER_REQUEST} per request",
                request.tasks.len()
            ),
        ));
    }
    let tasks = join_all(request.tasks.into_iter().map(|task| sample(&state, task))).await;
    Ok(Json(StatsResponse { tasks }))
}

async fn sample(state: &AgentState, wanted: TaskContainer) -> TaskStats {
    let result = async {
        let _permit = state
            .permits
            .acquire()
            .await
            .map_err(|_| "the agent is shutting down".to_owned())?;
        tokio::time::timeout(
            state.timeout,
            state.engine.task_stats(&wanted.task, &wanted.container),
        )
        .await
        .map_err(|_| format!("no stats within {:?}", state.timeout))?
        .map_err(|error| error.to_string())
    }
    .await;
    match result {
        Ok(stats) => TaskStats {
            task: wanted.task,
            stats: Some(stats),
            error: None,
        },
        Err(error) => TaskStats {
            task: wanted.task,
            stats: None,
            error: Some(error),
        },
    }
}
