//! The route table (the one list of paths, methods and who may call them, which the OpenAPI
//! test checks against `openapi.json`), the router built from it, and its middleware: auth,
//! rate limiting, signatures, deadlines and JSON errors for unknown routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower_http::trace::TraceLayer;

use super::auth::{AuthConfig, Scope};
use super::error::ApiError;
use super::extract::BODY_LIMIT;
use super::limits::{client_ip, RateLimiter};
use super::{alertmanager, overrides, status, AppState};
use crate::swarm::Swarm;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Open,
    Read,
    Write,
}

/// One route of the server.
pub struct Route<S: Swarm> {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState<S>>,
}

fn route<S, H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route<S>
where
    S: Swarm,
    H: Handler<T, AppState<S>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone())
        .unwrap_or_else(|_| panic!("{method} is not a routable method"));
    Route {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every route of the server.
pub fn routes<S: Swarm>() -> Vec<Route<S>> {
    use Access::*;
    vec![
        route(Method::GET, "/", Open, status::dashboard),
        route(Method::GET, "/healthz", Open, status::healthz),
        route(Method::GET, "/readyz", Open, status::readyz::<S>),
        route(Method::GET, "/metrics", Open, status::metrics::<S>),
        route(Method::GET, "/openapi.json", Open, status::openapi),
        route(
            Method::GET,
            "/v1/services",
            Read,
            status::list_services::<S>,
        ),
        route(
            Method::GET,
            "/v1/services/{service}",
            Read,
            status::get_service::<S>,
        ),
        route(
            Method::POST,
            "/v1/services/{service}/override",
            Write,
            overrides::set_override::<S>,
        ),
        route(
            Method::DELETE,
            "/v1/services/{service}/override",
            Write,
            overrides::clear_override::<S>,
        ),
        route(
            Method::POST,
            "/v1/alertmanager",
            Write,
            alertmanager::receive::<S>,
        ),
    ]
}

/// The server's router over `state`.
pub fn router<S: Swarm>(state: AppState<S>) -> Router {
    let guard = WriteGuard {
        auth: state.auth.clone(),
        limiter: state.limiter.clone(),
    };
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState<S>>> = BTreeMap::new();
    for route in routes::<S>() {
        let handler = match route.access {
            Access::Open => route.handler,
            Access::Read => route
                .handler
                .layer(from_fn_with_state(state.auth.clone(), require_read)),
            Access::Write => route
                .handler
                .layer(from_fn_with_state(guard.clone(), require_write)),
        };
        let merged = match by_path.remove(route.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(route.path, merged);
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(state.timeout, deadline))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn require_read(
    State(auth): State<Arc<AuthConfig>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = auth.authorize(request.headers(), Scope::Read)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[derive(Clone)]
struct WriteGuard {
    auth: Arc<AuthConfig>,
    limiter: Arc<RateLimiter>,
}

/// Rate limit first (failed attempts count, so tokens cannot be guessed quickly), then the
/// token, then the signature over the raw body.
async fn require_write(
    State(guard): State<WriteGuard>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    guard
        .limiter
        .check(client_ip(&request), Instant::now())
        .map_err(ApiError::rate_limited)?;
    let caller = guard.auth.authorize(request.headers(), Scope::Write)?;
    let (mut parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::too_large(BODY_LIMIT)
            } else {
                ApiError::invalid("body", format!("the body could not be read: {error}"))
            }
        })?;
    guard.auth.verify_signature(&parts.headers, &bytes)?;
    parts.extensions.insert(caller);
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

async fn deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request did not complete within {}s",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!("no route for {method} {}; see /openapi.json", uri.path()),
    )
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}; see /openapi.json", uri.path()),
    )
}
