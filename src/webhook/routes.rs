//! The route table (the one list of paths, methods and who may call them, which the OpenAPI
//! test checks against `openapi.json`), the router built from it, and its middleware: auth,
//! rate limiting, signatures, deadlines and JSON errors for unknown routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
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
use super::limits::RateLimiter;
use super::metrics::Metrics;
use super::{alertmanager, overrides, status, AppState};
use crate::swarm::Swarm;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Open,
    Read,
    Write,
    /// An alerts token only (the Alertmanager receiver).
    Alerts,
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
        route(Method::GET, "/dashboard.js", Open, status::dashboard_script),
        route(Method::GET, "/dashboard.css", Open, status::dashboard_style),
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
            Method::GET,
            "/v1/services/{service}/history",
            Read,
            status::history::<S>,
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
            Alerts,
            alertmanager::receive::<S>,
        ),
    ]
}

/// The server's router over `state`.
pub fn router<S: Swarm>(state: AppState<S>) -> Router {
    let guard = |needed| Guard {
        auth: state.auth.clone(),
        limiter: state.limiter.clone(),
        anonymous: state.anonymous.clone(),
        needed,
    };
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState<S>>> = BTreeMap::new();
    for route in routes::<S>() {
        let needed = match route.access {
            Access::Open => None,
            Access::Read => Some(Scope::Read),
            Access::Write => Some(Scope::Write),
            Access::Alerts => Some(Scope::Alerts),
        };
        let handler = match needed {
            None => route.handler,
            Some(needed) => route
                .handler
                .layer(from_fn_with_state(guard(needed), require)),
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
        .layer(from_fn_with_state(state.metrics.clone(), count))
        .with_state(state)
}

#[derive(Clone)]
struct Guard {
    auth: Arc<AuthConfig>,
    limiter: Arc<RateLimiter>,
    anonymous: Arc<RateLimiter>,
    needed: Scope,
}

/// The token first. A request that fails it is charged to the bucket all such requests share
/// (so tokens cannot be guessed quickly, and guessing does not use up a token holder's
/// bucket); a write or an alert is charged to its token's own bucket; a write's signature is
/// then checked over the method, path, timestamp and raw body.
async fn require(
    State(guard): State<Guard>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = match guard.auth.authorize(request.headers(), guard.needed) {
        Ok(caller) => caller,
        Err(refused) => {
            if refused.status == StatusCode::UNAUTHORIZED {
                guard
                    .anonymous
                    .check("", Instant::now())
                    .map_err(ApiError::rate_limited)?;
            }
            return Err(refused);
        }
    };
    if guard.needed == Scope::Read {
        let mut request = request;
        request.extensions_mut().insert(caller);
        return Ok(next.run(request).await);
    }
    guard
        .limiter
        .check(&caller.name, Instant::now())
        .map_err(ApiError::rate_limited)?;
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
    if guard.needed == Scope::Write {
        guard
            .auth
            .verify_signature(&parts.method, &parts.uri, &parts.headers, &bytes)?;
    }
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

/// Counts each answered request by its route template (axum's [`MatchedPath`], set before
/// layers run), method and status class.
async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    // Only the methods the API knows, so a caller cannot add series.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    metrics.count_request(&route, method, response.status().as_u16());
    response
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
