//! HTTP tests of every endpoint against the router, over a fake Swarm.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{Duration as ChronoDuration, Utc};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tower::ServiceExt;

use super::auth::{sign, AuthConfig, Scope};
use super::*;
use crate::policy::labels::OVERRIDE as OVERRIDE_LABEL;
use crate::policy::{Metadata, Override, PolicySpec, ScalingPolicy, TrafficState};
use crate::reconcile::{Sample, StatusStore, Waker};
use crate::swarm::{
    ContainerStats, EventStream, NodeInfo, ServiceInfo, SwarmError, SwarmResult, TaskInfo,
};

pub const READ: &str = "read-token-0123456789";
pub const WRITE: &str = "write-token-0123456789";
pub const ALERTS: &str = "alerts-token-0123456789";

/// A Swarm of services in memory, with versions checked like the engine's.
#[derive(Default)]
pub struct FakeSwarm {
    pub services: Mutex<BTreeMap<String, ServiceInfo>>,
    /// The next N label updates fail with a version conflict, as if someone else wrote first.
    pub conflicts: AtomicU32,
    pub down: AtomicBool,
    /// Ping hangs for an hour, as an engine that accepts connections but never answers.
    pub hung: AtomicBool,
}

impl FakeSwarm {
    /// One service with a shorthand policy of 1 to 10 replicas.
    pub fn with_service(name: &str, replicas: u64) -> Self {
        let swarm = FakeSwarm::default();
        let labels = [("min", "1"), ("max", "10"), ("cpu", "70")]
            .map(|(key, value)| (format!("io.swarmpilot.{key}"), value.to_owned()));
        swarm.services.lock().unwrap().insert(
            name.to_owned(),
            ServiceInfo {
                id: format!("id-{name}"),
                name: name.to_owned(),
                version: 1,
                labels: BTreeMap::from(labels),
                replicas: Some(replicas),
                ..Default::default()
            },
        );
        swarm
    }

    pub fn labels(&self, name: &str) -> BTreeMap<String, String> {
        self.services.lock().unwrap()[name].labels.clone()
    }

    fn engine(&self) -> SwarmResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(SwarmError::Engine("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

impl Swarm for FakeSwarm {
    async fn list_services(&self) -> SwarmResult<Vec<ServiceInfo>> {
        self.engine()?;
        Ok(self.services.lock().unwrap().values().cloned().collect())
    }

    async fn inspect_service(&self, name_or_id: &str) -> SwarmResult<ServiceInfo> {
        self.engine()?;
        self.services
            .lock()
            .unwrap()
            .values()
            .find(|s| s.name == name_or_id || s.id == name_or_id)
            .cloned()
            .ok_or_else(|| SwarmError::NotFound(name_or_id.to_owned()))
    }

    async fn update_replicas(&self, _: &str, _: u64, _: u64) -> SwarmResult<()> {
        unreachable!("the webhook never sets replicas")
    }

    async fn scale(
        &self,
        _: &str,
        _: u64,
        _: u64,
        _: &BTreeMap<String, String>,
    ) -> SwarmResult<()> {
        unreachable!("the webhook never scales")
    }

    async fn update_labels(
        &self,
        id: &str,
        version: u64,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> SwarmResult<()> {
        self.engine()?;
        let mut services = self.services.lock().unwrap();
        let service = services
            .values_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| SwarmError::NotFound(id.to_owned()))?;
        if self
            .conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            // Someone else updated the service in between.
            service.version += 1;
        }
        if service.version != version {
            return Err(SwarmError::Conflict {
                service: service.name.clone(),
                version,
            });
        }
        service.labels.extend(set.clone());
        for key in remove {
            service.labels.remove(key);
        }
        service.version += 1;
        Ok(())
    }

    async fn list_tasks(&self, _: &str) -> SwarmResult<Vec<TaskInfo>> {
        Ok(Vec::new())
    }

    async fn container_stats(&self, id: &str) -> SwarmResult<ContainerStats> {
        Err(SwarmError::NotFound(id.to_owned()))
    }

    async fn nodes(&self) -> SwarmResult<Vec<NodeInfo>> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> SwarmResult<()> {
        if self.hung.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        self.engine()
    }

    fn events(&self) -> EventStream {
        Box::pin(futures_util::stream::empty())
    }
}

pub fn policy(service: &str, min: u32, max: u32) -> ScalingPolicy {
    ScalingPolicy {
        api_version: crate::policy::API_VERSION.into(),
        kind: crate::policy::KIND.into(),
        metadata: Metadata {
            name: service.into(),
        },
        spec: PolicySpec {
            service: None,
            min_replicas: min,
            idle_replicas: None,
            cooldown_period: None,
            max_replicas: max,
            interval: crate::policy::HumanDuration::from_secs(15),
            mode: Default::default(),
            metrics: Vec::new(),
            observe: Vec::new(),
            forecast: None,
            anomaly: None,
            alerts: None,
            behavior: Default::default(),
            fallback: Default::default(),
            schedules: Vec::new(),
        },
    }
}

/// A status store with `web` (policy 1..=10) and an hour of samples.
pub fn store_with_samples() -> Arc<StatusStore> {
    let store = Arc::new(StatusStore::default());
    let now = Utc::now();
    store.update("web", |status| {
        status.service_id = "id-web".into();
        status.policy = Some(policy("web", 1, 10));
        status.current = Some(3);
        status.desired = Some(4);
        status.forecast = Some(130.0);
        status.traffic_state = Some(TrafficState::Normal);
        for i in 0..720 {
            let t = f64::from(i);
            let demand = 100.0 + 50.0 * (t / 60.0).sin();
            status.push_sample(Sample {
                at: now - ChronoDuration::seconds(5 * (720 - i64::from(i))),
                demand: Some(demand),
                replicas: 2 + (i / 240),
                desired: 2 + (i / 200),
                forecast: Some(demand * 1.1),
                capacity: Some(f64::from(2 + (i / 240)) * 50.0),
                state: Some(if (300..360).contains(&i) {
                    TrafficState::FlashCrowd
                } else {
                    TrafficState::Normal
                }),
            });
        }
    });
    store
}

pub struct Fixture {
    pub swarm: Arc<FakeSwarm>,
    pub wakes: UnboundedReceiver<String>,
    pub router: Router,
    pub state: AppState<FakeSwarm>,
}

pub fn fixture_with(auth: AuthConfig, rate: RateLimit) -> Fixture {
    fixture_limited(auth, rate, super::limits::ANONYMOUS)
}

fn fixture_limited(auth: AuthConfig, rate: RateLimit, anonymous_rate: RateLimit) -> Fixture {
    let swarm = Arc::new(FakeSwarm::with_service("web", 3));
    let status = store_with_samples();
    let (waker, wakes) = Waker::new();
    let config = ServerConfig {
        auth,
        rate,
        anonymous_rate,
        ..ServerConfig::default()
    };
    let state = AppState::new(
        swarm.clone(),
        status.clone(),
        waker,
        Arc::new(Metrics::new()),
        &config,
    );
    Fixture {
        swarm,
        wakes,
        router: router(state.clone()),
        state,
    }
}

pub fn tokens() -> AuthConfig {
    AuthConfig::default()
        .with_token("reader", READ, Scope::Read)
        .with_token("ops", WRITE, Scope::Write)
        .with_token("alertmanager", ALERTS, Scope::Alerts)
}

/// Every scope of token, and limits no test reaches.
fn fixture() -> Fixture {
    let generous = RateLimit {
        burst: 1000,
        per_minute: 6000,
    };
    fixture_limited(tokens(), generous, generous)
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    call_with(router, method, uri, token, body, &[]).await
}

async fn call_with(
    router: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Body::from(body.unwrap_or_default().to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

fn assert_error(value: &Value, code: &str, field: Option<&str>) {
    assert_eq!(value["error"], code, "{value}");
    assert!(
        value["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{value}"
    );
    if let Some(field) = field {
        assert_eq!(value["field"], field, "{value}");
    }
}

const OVERRIDE: &str = "/v1/services/web/override";

#[tokio::test]
async fn pin_writes_the_label_wakes_the_loop_and_shows_in_status() {
    let mut f = fixture();
    let (status, body) = call(
        &f.router,
        "POST",
        OVERRIDE,
        Some(WRITE),
        Some(r#"{"replicas": 8, "ttl": "30m", "reason": "launch"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["service"], "web");
    assert_eq!(body["override"]["replicas"], 8);
    assert_eq!(body["override"]["by"], "ops");
    let stored: Override = serde_json::from_str(&f.swarm.labels("web")[OVERRIDE_LABEL]).unwrap();
    assert_eq!(stored.replicas, Some(8));
    assert_eq!(stored.reason, "launch");
    let lasts = stored.expires_at - Utc::now();
    assert!(lasts > ChronoDuration::minutes(29) && lasts <= ChronoDuration::minutes(30));
    assert_eq!(f.wakes.try_recv().unwrap(), "web");
    let (_, web) = call(&f.router, "GET", "/v1/services/web", Some(READ), None).await;
    assert_eq!(web["override"]["replicas"], 8, "{web}");
    let metrics = f.state.metrics.encode().unwrap();
    assert!(metrics.contains("swarmpilot_override_active{service=\"web\",kind=\"pin\"} 1"));
}

#[tokio::test]
async fn pause_kinds_and_clear() {
    let mut f = fixture();
    for (field, flag) in [
        ("pause", "pause"),
        ("pauseScaleIn", "pauseScaleIn"),
        ("pauseScaleOut", "pauseScaleOut"),
    ] {
        let body = format!(r#"{{"{field}": true, "ttl": "1h", "reason": "maintenance"}}"#);
        let (status, value) = call(&f.router, "POST", OVERRIDE, Some(WRITE), Some(&body)).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        assert_eq!(value["override"][flag], true);
        assert!(value["override"].get("replicas").is_none());
    }
    let (status, value) = call(&f.router, "DELETE", OVERRIDE, Some(WRITE), None).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["cleared"], true);
    assert_eq!(value["previous"]["pauseScaleOut"], true);
    assert!(!f.swarm.labels("web").contains_key(OVERRIDE_LABEL));
    let (status, value) = call(&f.router, "DELETE", OVERRIDE, Some(WRITE), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["cleared"], false);
    let mut woken = 0;
    while f.wakes.try_recv().is_ok() {
        woken += 1;
    }
    assert_eq!(woken, 5);
}

#[tokio::test]
async fn version_conflicts_are_retried_then_reported() {
    let f = fixture();
    f.swarm.conflicts.store(2, Ordering::SeqCst);
    let body = r#"{"replicas": 5, "ttl": "10m", "reason": "retry"}"#;
    let (status, value) = call(&f.router, "POST", OVERRIDE, Some(WRITE), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    f.swarm.conflicts.store(100, Ordering::SeqCst);
    let (status, value) = call(&f.router, "POST", OVERRIDE, Some(WRITE), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&value, "conflict", None);
}

#[tokio::test]
async fn invalid_overrides_name_the_field() {
    let f = fixture();
    let cases: &[(&str, StatusCode, &str, &str)] = &[
        (
            r#"{"replicas": -1, "ttl": "30m", "reason": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "replicas",
        ),
        (
            r#"{"replicas": 2, "ttl": "half an hour", "reason": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "ttl",
        ),
        (
            r#"{"replicas": 2, "ttl": "30m", "reason": "x", "force": true}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "force",
        ),
        (
            r#"{"replicas": 2, "reason": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "ttl",
        ),
        (
            r#"{"replicas": "two", "ttl": "30m", "reason": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "replicas",
        ),
        (
            r#"{"ttl": "30m", "reason": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "replicas",
        ),
        (
            r#"{"replicas": 2, "pause": true, "ttl": "30m", "reason": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "replicas",
        ),
        (
            r#"{"replicas": 2, "ttl": "0s", "reason": "x"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "ttl",
        ),
        (
            r#"{"replicas": 2, "ttl": "30m", "reason": "  "}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "reason",
        ),
        (
            r#"{"replicas": 11, "ttl": "30m", "reason": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            "replicas",
        ),
        (
            r#"{"replicas": 0, "ttl": "30m", "reason": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            "replicas",
        ),
        (
            r#"{"replicas": 2, "ttl": "30m""#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            ".",
        ),
    ];
    for (body, code, error, field) in cases {
        let (status, value) = call(&f.router, "POST", OVERRIDE, Some(WRITE), Some(body)).await;
        assert_eq!(status, *code, "{body}: {value}");
        assert_error(&value, error, Some(field));
    }
    let (_, value) = call(
        &f.router,
        "POST",
        OVERRIDE,
        Some(WRITE),
        Some(r#"{"replicas": 11, "ttl": "30m", "reason": "x"}"#),
    )
    .await;
    assert!(
        value["detail"].as_str().unwrap().contains("maxReplicas 10"),
        "{value}"
    );
    assert!(!f.swarm.labels("web").contains_key(OVERRIDE_LABEL));
}

#[tokio::test]
async fn unknown_services_and_unmanaged_services() {
    let f = fixture();
    let body = r#"{"pause": true, "ttl": "30m", "reason": "x"}"#;
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/services/nope/override",
        Some(WRITE),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&value, "not_found", Some("service"));
    f.swarm.services.lock().unwrap().insert(
        "bare".into(),
        ServiceInfo {
            id: "id-bare".into(),
            name: "bare".into(),
            version: 1,
            labels: BTreeMap::new(),
            replicas: Some(1),
            ..Default::default()
        },
    );
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/services/bare/override",
        Some(WRITE),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{value}");
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/services/bad%20name/override",
        Some(WRITE),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&value, "invalid_request", Some("service"));
    f.swarm.down.store(true, Ordering::SeqCst);
    let (status, value) = call(&f.router, "POST", OVERRIDE, Some(WRITE), Some(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&value, "unavailable", None);
}

#[tokio::test]
async fn auth_on_every_protected_endpoint() {
    let f = fixture();
    let override_body = r#"{"pause": true, "ttl": "30m", "reason": "x"}"#;
    let writes = [
        ("POST", OVERRIDE, Some(override_body), WRITE),
        ("DELETE", OVERRIDE, None, WRITE),
        (
            "POST",
            "/v1/alertmanager",
            Some(r#"{"version":"4","status":"firing","alerts":[]}"#),
            ALERTS,
        ),
    ];
    let reads = [("GET", "/v1/services"), ("GET", "/v1/services/web")];
    for (method, uri, body, token) in writes {
        let (status, value) = call(&f.router, method, uri, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} no token");
        assert_error(&value, "unauthorized", None);
        let (status, _) = call(&f.router, method, uri, Some("wrong-token-0123456789"), body).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {uri} wrong token"
        );
        let (status, value) = call(&f.router, method, uri, Some(READ), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri} read token");
        assert!(value["detail"].as_str().unwrap().contains("read scope"));
        let (status, value) = call(&f.router, method, uri, Some(token), body).await;
        assert_eq!(status, StatusCode::OK, "{method} {uri}: {value}");
        // Each write scope can do nothing else.
        let other = if token == WRITE { ALERTS } else { WRITE };
        let (status, _) = call(&f.router, method, uri, Some(other), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri} other scope");
    }
    for (method, uri) in reads {
        let (status, _) = call(&f.router, method, uri, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        let (status, _) = call(&f.router, method, uri, Some("wrong-token-0123456789"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        for token in [READ, WRITE] {
            let (status, _) = call(&f.router, method, uri, Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
        }
        let (status, _) = call(&f.router, method, uri, Some(ALERTS), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri} alerts token");
    }
    let (status, value) = call_with(
        &f.router,
        "GET",
        "/v1/services",
        None,
        None,
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&value, "unauthorized", Some("Authorization"));
}

#[tokio::test]
async fn without_a_write_token_writes_are_refused_with_how_to_configure() {
    let f = fixture_with(
        AuthConfig::default().with_token("reader", READ, Scope::Read),
        RateLimit::default(),
    );
    let (status, value) = call(
        &f.router,
        "POST",
        OVERRIDE,
        Some(READ),
        Some(r#"{"pause": true, "ttl": "30m", "reason": "x"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(value["detail"]
        .as_str()
        .unwrap()
        .contains("--write-token-file"));
    // And with nothing configured, reads are closed too unless --insecure-read.
    let f = fixture_with(AuthConfig::default(), RateLimit::default());
    let (status, value) = call(&f.router, "GET", "/v1/services", None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(value["detail"]
        .as_str()
        .unwrap()
        .contains("--insecure-read"));
    let f = fixture_with(
        AuthConfig::default().with_open_reads(true),
        RateLimit::default(),
    );
    let (status, _) = call(&f.router, "GET", "/v1/services", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn signatures_are_required_when_configured() {
    use axum::http::Method;
    let f = fixture_with(
        tokens().with_signing_key(b"signing-key-0123456789"),
        RateLimit::default(),
    );
    let body = r#"{"pause": true, "ttl": "30m", "reason": "signed"}"#;
    let (status, value) = call(&f.router, "POST", OVERRIDE, Some(WRITE), Some(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&value, "unauthorized", Some("X-Swarmpilot-Timestamp"));
    let now = Utc::now().timestamp();
    let signed = |key: &[u8], method: &Method, path: &str, at: i64| {
        (at.to_string(), sign(key, method, path, at, body.as_bytes()))
    };
    let router = &f.router;
    let post = |(at, signature): (String, String)| async move {
        let headers = [
            ("x-swarmpilot-timestamp", at.as_str()),
            ("x-swarmpilot-signature", signature.as_str()),
        ];
        call_with(router, "POST", OVERRIDE, Some(WRITE), Some(body), &headers).await
    };
    let (status, value) = post(signed(b"another-key", &Method::POST, OVERRIDE, now)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(value["detail"].as_str().unwrap().contains("does not match"));
    // Signed for another service, or long ago: refused.
    let key = b"signing-key-0123456789";
    let (status, _) = post(signed(key, &Method::POST, "/v1/services/db/override", now)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, value) = post(signed(key, &Method::POST, OVERRIDE, now - 3600)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(value["detail"].as_str().unwrap().contains("more than 300s"));
    let right = signed(key, &Method::POST, OVERRIDE, now);
    let (status, value) = post(right.clone()).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    // The same signed request again is a replay.
    let (status, value) = post(right).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(value["detail"]
        .as_str()
        .unwrap()
        .contains("already accepted"));
    // Reads need no signature.
    let (status, _) = call(&f.router, "GET", "/v1/services", Some(READ), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn anonymous_traffic_has_its_own_bucket() {
    let f = fixture_with(
        tokens(),
        RateLimit {
            burst: 2,
            per_minute: 1,
        },
    );
    let mut refused = 0;
    for _ in 0..50 {
        let (status, _) = call(
            &f.router,
            "POST",
            "/v1/alertmanager",
            Some("guess-0123456789abcdef"),
            Some("{}"),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(refused, 50 - super::limits::ANONYMOUS.burst as usize);
    // Alertmanager's token still has its whole bucket.
    let empty = alertmanager_payload("firing", json!([]));
    for _ in 0..2 {
        let (status, value) = call(
            &f.router,
            "POST",
            "/v1/alertmanager",
            Some(ALERTS),
            Some(&empty),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{value}");
    }
}

#[tokio::test]
async fn oversized_bodies_and_wrong_content_types() {
    let f = fixture();
    let reason = "x".repeat(70 * 1024);
    let body = format!(r#"{{"pause": true, "ttl": "30m", "reason": "{reason}"}}"#);
    let (status, value) = call(&f.router, "POST", OVERRIDE, Some(WRITE), Some(&body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&value, "payload_too_large", None);
    let (status, value) = call_with(
        &f.router,
        "POST",
        OVERRIDE,
        Some(WRITE),
        None,
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error(&value, "unsupported_media_type", Some("Content-Type"));
}

#[tokio::test]
async fn writes_are_rate_limited_per_client() {
    let f = fixture_with(
        tokens(),
        RateLimit {
            burst: 2,
            per_minute: 1,
        },
    );
    for _ in 0..2 {
        let (status, _) = call(&f.router, "DELETE", OVERRIDE, Some(WRITE), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let request = Request::builder()
        .method("DELETE")
        .uri(OVERRIDE)
        .header(header::AUTHORIZATION, format!("Bearer {WRITE}"))
        .body(Body::empty())
        .unwrap();
    let response = f.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    // Reads are not limited.
    let (status, _) = call(&f.router, "GET", "/v1/services", Some(READ), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn status_api() {
    let f = fixture();
    let (status, value) = call(&f.router, "GET", "/v1/services", Some(READ), None).await;
    assert_eq!(status, StatusCode::OK);
    let services = value["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["service"], "web");
    assert_eq!(services[0]["samples"].as_array().unwrap().len(), 720);
    assert_eq!(services[0]["trafficState"], "normal");
    assert_eq!(services[0]["policy"]["spec"]["maxReplicas"], 10);
    let (status, value) = call(&f.router, "GET", "/v1/services/web", Some(READ), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["current"], 3);
    assert_eq!(value["desired"], 4);
    let (status, value) = call(&f.router, "GET", "/v1/services/other", Some(READ), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&value, "not_found", Some("service"));
}

#[tokio::test]
async fn health_readiness_metrics_openapi_dashboard() {
    let f = fixture();
    let (status, value) = call(&f.router, "GET", "/healthz", None, None).await;
    assert_eq!(
        (status, value["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _) = call(&f.router, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    f.swarm.down.store(true, Ordering::SeqCst);
    let (status, value) = call(&f.router, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&value, "unavailable", None);
    let (status, _) = call(&f.router, "GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    f.state.metrics.observe_reconcile(
        "web",
        std::time::Duration::from_millis(12),
        crate::decide::Reason::ScaleUpLimit,
        3,
        4,
    );
    let (status, value) = call(&f.router, "GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = value.as_str().unwrap();
    assert!(
        text.contains("swarmpilot_desired_replicas{service=\"web\"} 4"),
        "{text}"
    );
    assert!(text.contains("swarmpilot_docker_api_errors_total{operation=\"ping\"} 1"));
    assert!(text.ends_with("# EOF\n"));
    let (status, value) = call(&f.router, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["openapi"], "3.1.0");
    let (status, value) = call(&f.router, "GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(value
        .as_str()
        .unwrap()
        .contains("<title>swarmpilot</title>"));
    let (status, value) = call(&f.router, "GET", "/nowhere", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&value, "no_route", None);
    let (status, value) = call(&f.router, "PUT", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&value, "method_not_allowed", None);
}

/// The page, its script and its style come with a CSP that allows only this server, and the
/// page loads nothing inline.
#[tokio::test]
async fn dashboard_files_carry_a_csp_and_no_inline_code() {
    let f = fixture();
    for (path, kind) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = f.router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let page = status::DASHBOARD;
    assert!(
        !page.contains("<script>") && !page.contains("<style"),
        "inline code in the page"
    );
    assert!(
        !page.contains(" style="),
        "an inline style attribute in the page"
    );
    for file in [status::DASHBOARD, status::DASHBOARD_SCRIPT] {
        assert!(!file.contains("innerHTML") && !file.contains("outerHTML"));
        assert!(!file.contains("http://") || file.contains("http://www.w3.org/2000/svg"));
        assert!(
            !file.contains("https://"),
            "something fetched from elsewhere"
        );
    }
    assert!(!status::DASHBOARD_SCRIPT.contains("setAttribute(\"style\""));
}

#[tokio::test]
async fn history_serves_the_range_asked_and_refuses_others() {
    let f = fixture();
    let (status, value) = call(
        &f.router,
        "GET",
        "/v1/services/web/history?range=15m",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["range"], "15m");
    let samples = value["samples"].as_array().unwrap();
    // The fixture holds an hour at 5 s, the newest 5 s old: 15 minutes is about 180 of them.
    assert!((178..=181).contains(&samples.len()), "{}", samples.len());
    assert!(samples[0]["capacity"].is_number(), "{}", samples[0]);
    let (status, value) = call(
        &f.router,
        "GET",
        "/v1/services/web/history",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["range"], "1h");
    let hour = value["samples"].as_array().unwrap().len();
    assert!((718..=720).contains(&hour), "{hour}");
    let (status, value) = call(
        &f.router,
        "GET",
        "/v1/services/web/history?range=2d",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&value, "invalid_request", Some("range"));
    let (status, _) = call(&f.router, "GET", "/v1/services/web/history", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, value) = call(
        &f.router,
        "GET",
        "/v1/services/other/history",
        Some(READ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&value, "not_found", Some("service"));
}

#[tokio::test]
async fn api_requests_are_counted_by_route_template() {
    let f = fixture();
    call(&f.router, "GET", "/v1/services/web", Some(READ), None).await;
    call(&f.router, "GET", "/v1/services/other", Some(READ), None).await;
    call(&f.router, "GET", "/v1/services/web", None, None).await;
    call(&f.router, "GET", "/nowhere/at/all", None, None).await;
    let text = f.state.metrics.encode().unwrap();
    for line in [
        "swarmpilot_api_requests_total{route=\"/v1/services/{service}\",method=\"GET\",status=\"2xx\"} 1",
        "swarmpilot_api_requests_total{route=\"/v1/services/{service}\",method=\"GET\",status=\"4xx\"} 2",
        "swarmpilot_api_requests_total{route=\"unmatched\",method=\"GET\",status=\"4xx\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(!text.contains("/nowhere"), "a raw path became a label");
}

/// Every route of the router is in openapi.json, and every operation of openapi.json is a route.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let document: Value = serde_json::from_str(status::OPENAPI).unwrap();
    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut routed: Vec<(String, String)> = routes::routes::<FakeSwarm>()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    routed.sort();
    assert_eq!(documented, routed);
    // And each documented operation reaches a handler, not the fallbacks.
    let f = fixture();
    for (method, path) in documented {
        let uri = path.replace("{service}", "web");
        let (_, value) = call(&f.router, &method, &uri, Some(WRITE), None).await;
        assert_ne!(value["error"], "no_route", "{method} {path}");
        assert_ne!(value["error"], "method_not_allowed", "{method} {path}");
    }
}

/// The request format of Alertmanager's documentation (webhook_config), filled in, with two
/// alerts for swarmpilot and one for someone else.
/// Gives `service` a policy that accepts alerts up to `max_replicas` (the shorthand labels it
/// has cannot opt in).
pub fn accept_alerts(swarm: &FakeSwarm, service: &str, max_replicas: u32) {
    let policy = format!(
        "maxReplicas: 10\nmetrics:\n- name: cpu\n  docker: {{resource: cpu}}\n  target: {{utilization: 70}}\nalerts: {{maxReplicas: {max_replicas}, maxTtl: 2h}}\n"
    );
    let mut services = swarm.services.lock().unwrap();
    let info = services.get_mut(service).unwrap();
    info.labels
        .retain(|name, _| !name.starts_with("io.swarmpilot."));
    info.labels
        .insert(crate::policy::labels::POLICY.to_owned(), policy);
}

pub fn alertmanager_payload(status: &str, alerts: Value) -> String {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"HighLatency\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "swarmpilot",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "page"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    })
    .to_string()
}

fn alert(status: &str, fingerprint: &str, labels: Value, annotations: Value) -> Value {
    json!({
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": "2024-05-01T10:00:00.000Z",
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2024-05-01T10:30:00.000Z" },
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=latency+%3E+1",
        "fingerprint": fingerprint,
    })
}

#[tokio::test]
async fn alertmanager_documentation_payload() {
    let mut f = fixture();
    accept_alerts(&f.swarm, "web", 10);
    let firing = alertmanager_payload(
        "firing",
        json!([
            alert(
                "firing",
                "c6eadffa33fcdf37",
                json!({"alertname": "HighLatency", "severity": "page", "swarmpilot_service": "web"}),
                json!({"summary": "p99 above 1s", "swarmpilot_action": "scale_up", "swarmpilot_ttl": "15m"})
            ),
            alert(
                "firing",
                "bc97ff14869b13e3",
                json!({"alertname": "DiskFull", "instance": "node-1"}),
                json!({"summary": "not for swarmpilot"})
            ),
        ]),
    );
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&firing),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let results = value["results"].as_array().unwrap();
    assert_eq!(results[0]["outcome"], "applied", "{value}");
    // 3 replicas, scale_up doubles: 6.
    assert_eq!(results[0]["override"]["replicas"], 6);
    assert_eq!(
        results[0]["override"]["by"],
        "alertmanager:HighLatency/c6eadffa33fcdf37"
    );
    assert_eq!(
        results[0]["override"]["reason"],
        "alert HighLatency: p99 above 1s"
    );
    assert_eq!(results[1]["outcome"], "skipped");
    assert_eq!(f.wakes.try_recv().unwrap(), "web");
    let stored: Override = serde_json::from_str(&f.swarm.labels("web")[OVERRIDE_LABEL]).unwrap();
    assert_eq!(stored.replicas, Some(6));
    let lasts = stored.expires_at - Utc::now();
    assert!(lasts > ChronoDuration::minutes(14) && lasts <= ChronoDuration::minutes(15));

    // The loop has scaled to 6; Alertmanager re-sends the same firing alert: extended, not doubled.
    f.swarm
        .services
        .lock()
        .unwrap()
        .get_mut("web")
        .unwrap()
        .replicas = Some(6);
    let (_, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&firing),
    )
    .await;
    assert_eq!(value["results"][0]["outcome"], "extended", "{value}");
    assert_eq!(value["results"][0]["override"]["replicas"], 6);

    // Resolved from another alert: the override is not theirs.
    let other = alertmanager_payload(
        "resolved",
        json!([alert(
            "resolved",
            "0000000000000001",
            json!({"alertname": "Other", "swarmpilot_service": "web"}),
            json!({})
        )]),
    );
    let (_, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&other),
    )
    .await;
    assert_eq!(value["results"][0]["outcome"], "skipped", "{value}");
    assert!(f.swarm.labels("web").contains_key(OVERRIDE_LABEL));

    // Resolved: the override it set is cleared.
    let resolved = alertmanager_payload(
        "resolved",
        json!([alert(
            "resolved",
            "c6eadffa33fcdf37",
            json!({"alertname": "HighLatency", "severity": "page", "swarmpilot_service": "web"}),
            json!({"summary": "p99 above 1s", "swarmpilot_action": "scale_up"})
        )]),
    );
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&resolved),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(value["results"][0]["outcome"], "cleared", "{value}");
    assert!(!f.swarm.labels("web").contains_key(OVERRIDE_LABEL));
}

#[tokio::test]
async fn alertmanager_resolved_leaves_a_manual_override() {
    let f = fixture();
    accept_alerts(&f.swarm, "web", 10);
    let (status, _) = call(
        &f.router,
        "POST",
        OVERRIDE,
        Some(WRITE),
        Some(r#"{"replicas": 4, "ttl": "30m", "reason": "manual"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let resolved = alertmanager_payload(
        "resolved",
        json!([alert(
            "resolved",
            "c6eadffa33fcdf37",
            json!({"alertname": "HighLatency", "swarmpilot_service": "web"}),
            json!({"swarmpilot_action": "scale_up"})
        )]),
    );
    let (_, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&resolved),
    )
    .await;
    assert_eq!(value["results"][0]["outcome"], "skipped");
    assert!(value["results"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("set by ops"));
    let stored: Override = serde_json::from_str(&f.swarm.labels("web")[OVERRIDE_LABEL]).unwrap();
    assert_eq!(stored.reason, "manual");
}

#[tokio::test]
async fn alertmanager_rejections_and_failures() {
    let f = fixture();
    let labels = json!({"alertname": "A", "swarmpilot_service": "web"});
    // A policy that does not opt in takes no alert.
    let pin = alertmanager_payload(
        "firing",
        json!([alert(
            "firing",
            "0",
            labels.clone(),
            json!({"swarmpilot_action": "pin:2"})
        )]),
    );
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&pin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["results"][0]["outcome"], "rejected");
    assert!(value["results"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("does not accept alert-driven overrides; add spec.alerts"));
    accept_alerts(&f.swarm, "web", 6);
    let payload = alertmanager_payload(
        "firing",
        json!([
            alert("firing", "1", labels.clone(), json!({})),
            alert(
                "firing",
                "2",
                labels.clone(),
                json!({"swarmpilot_action": "explode"})
            ),
            alert(
                "firing",
                "3",
                labels.clone(),
                json!({"swarmpilot_action": "pin:50"})
            ),
            alert(
                "firing",
                "4",
                labels.clone(),
                json!({"swarmpilot_action": "pause", "swarmpilot_ttl": "soon"})
            ),
            alert(
                "firing",
                "5",
                json!({"alertname": "A", "swarmpilot_service": "gone"}),
                json!({"swarmpilot_action": "pause"})
            ),
            alert(
                "firing",
                "6",
                labels.clone(),
                json!({"swarmpilot_action": "pin:2"})
            ),
            alert(
                "firing",
                "7",
                labels.clone(),
                json!({"swarmpilot_action": "pin:8", "swarmpilot_ttl": "3h"})
            ),
            alert(
                "firing",
                "8",
                labels.clone(),
                json!({"swarmpilot_action": "pin:8"})
            ),
        ]),
    );
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&payload),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{value}");
    let outcomes: Vec<&str> = value["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "rejected", "rejected", "rejected", "rejected", "rejected", "applied", "rejected",
            "rejected"
        ]
    );
    assert!(value["results"][7]["detail"]
        .as_str()
        .unwrap()
        .contains("above spec.alerts.maxReplicas 6"));
    assert!(value["results"][6]["detail"]
        .as_str()
        .unwrap()
        .contains("longer than spec.alerts.maxTtl 2h"));
    assert!(value["results"][2]["detail"]
        .as_str()
        .unwrap()
        .contains("maxReplicas 10"));
    assert!(value["results"][3]["detail"]
        .as_str()
        .unwrap()
        .contains("swarmpilot_ttl"));
    // The Docker engine is down: 503 so that Alertmanager retries.
    f.swarm.down.store(true, Ordering::SeqCst);
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(&payload),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&value, "unavailable", None);
    assert_eq!(value["results"][5]["outcome"], "failed");
    // Other payload versions are refused.
    let v3 = r#"{"version": "3", "status": "firing", "alerts": []}"#;
    let (status, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(v3),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&value, "invalid_request", Some("version"));
    let bad = r#"{"version": "4", "status": "firing", "alerts": [{"status": "burning"}]}"#;
    let (_, value) = call(
        &f.router,
        "POST",
        "/v1/alertmanager",
        Some(ALERTS),
        Some(bad),
    )
    .await;
    assert_error(&value, "invalid_request", Some("alerts[0].status"));
}

/// Through a real listening socket, with the CLI's client: set, refuse, clear, and shut down.
#[tokio::test]
async fn cli_override_through_a_listening_socket() {
    use crate::cli::overrides::{describe, send, Answer, Args};

    let f = fixture_with(
        tokens().with_signing_key(b"signing-key-0123456789"),
        RateLimit::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve_on(listener, f.state.clone(), shutdown.clone()));

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{WRITE}\n")).unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "signing-key-0123456789\n").unwrap();
    let args = Args {
        service: "web".into(),
        replicas: Some(7),
        pause: false,
        pause_scale_in: false,
        pause_scale_out: false,
        clear: false,
        ttl: Some("20m".parse().unwrap()),
        reason: Some("load test".into()),
        server: format!("http://{addr}"),
        token_file: Some(token_file.clone()),
        signature_key_file: Some(key_file),
        timeout: "5s".parse().unwrap(),
    };
    let answer = send(&args).await.unwrap();
    let Answer::Set(set) = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(set.value.replicas, Some(7));
    assert!(describe(&answer).starts_with("web: pinned at 7 replicas until "));
    let stored: Override = serde_json::from_str(&f.swarm.labels("web")[OVERRIDE_LABEL]).unwrap();
    assert_eq!(stored.reason, "load test");

    let error = send(&Args {
        replicas: Some(40),
        ..args.clone()
    })
    .await
    .unwrap_err();
    let line = error.to_string();
    assert!(
        line.contains("maxReplicas 10") && line.contains("422"),
        "{line}"
    );

    let error = send(&Args {
        signature_key_file: None,
        ..args.clone()
    })
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("X-Swarmpilot-Signature"),
        "{error}"
    );

    let answer = send(&Args {
        clear: true,
        replicas: None,
        ..args.clone()
    })
    .await
    .unwrap();
    assert_eq!(describe(&answer), "web: override cleared");
    assert!(!f.swarm.labels("web").contains_key(OVERRIDE_LABEL));

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// A handler that does not finish within the deadline is answered with a JSON 503.
#[tokio::test(start_paused = true)]
async fn requests_time_out() {
    let f = fixture();
    f.swarm.hung.store(true, Ordering::SeqCst);
    let (status, value) = call(&f.router, "GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&value, "timeout", None);
}

/// Raises this process's open-file limit to its hard limit, so that the test's own 2,000 client
/// sockets fit beside the server's (a default soft limit is often 1,024).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// How long a test waits before it calls a connection hung: a guard against a test that never
/// ends, far above any answer on a loaded machine, never a bound on speed.
const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// The fixture served over TCP with chosen connection limits.
struct Served {
    addr: std::net::SocketAddr,
    shutdown: tokio_util::sync::CancellationToken,
    server: tokio::task::JoinHandle<Result<(), ServeError>>,
    _fixture: Fixture,
}

impl Served {
    /// Serves the fixture with `limits` on a free port of 127.0.0.1.
    async fn start(limits: ConnectionLimits) -> Served {
        let fixture = fixture();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let config = ServerConfig {
            connections: limits,
            ..ServerConfig::default()
        };
        let server = {
            let (state, shutdown) = (fixture.state.clone(), shutdown.clone());
            tokio::spawn(async move { serve_with(listener, state, &config, shutdown).await })
        };
        Served {
            addr,
            shutdown,
            server,
            _fixture: fixture,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
    }
}

/// Whether the server still holds `stream` open, as the kernel says now: nothing to read yet
/// (`EAGAIN`), rather than the end of the stream or a reset.
fn still_open(stream: &tokio::net::TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // SAFETY: recv writes at most one byte into `byte`, and MSG_PEEK leaves it in the socket.
    let read = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    read < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

/// Waits until the server closes `stream` (the end of the stream, or a reset).
async fn closed_by_server(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    while let Ok(1..) = stream.read(&mut buf).await {}
}

/// 2,000 idle connections, four times the cap: `/healthz` is still answered, and the only
/// connections the server closed for it are the ones beyond the cap, the longest idle first.
///
/// No timeout can free a connection here: both are an hour, past the test's hang guard. So
/// a server whose idle connections could lock out a request (one that refused connections at
/// the cap, or made them wait for a free slot) answers nothing until the guard fails the test;
/// one that kept no cap leaves the surplus open, and the wait for it to be closed fails the
/// same way. What is asserted is which events happen, never how soon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_lock_out_a_request() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    raise_open_file_limit();
    let hour = Duration::from_secs(3600);
    let limits = ConnectionLimits {
        idle_timeout: hour,
        header_read_timeout: hour,
        ..ConnectionLimits::default()
    };
    let cap = limits.max_connections;
    let served = Served::start(limits).await;
    let addr = served.addr;
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG_GUARD, client.read_to_end(&mut answer))
        .await
        .expect("/healthz got no answer: 2,000 idle connections locked it out")
        .unwrap();
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Answered while the cap's worth of idle connections are still open: nothing was freed
    // by a timeout or by closing every connection.
    let open_when_answered = idle.iter().filter(|stream| still_open(stream)).count();
    assert!(open_when_answered >= cap - 1, "{open_when_answered}");

    // The server made room for the 1,488 idle connections beyond the cap and for the request:
    // that many are closed, and then exactly the cap less the request's slot stays open.
    let made_room = idle.len() + 1 - cap;
    let stop = tokio_util::sync::CancellationToken::new();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watching = tokio::task::JoinSet::new();
    for mut stream in idle {
        let (stop, closed_tx) = (stop.clone(), closed_tx.clone());
        watching.spawn(async move {
            tokio::select! {
                () = closed_by_server(&mut stream) => {
                    let _ = closed_tx.send(());
                    None
                }
                () = stop.cancelled() => Some(stream),
            }
        });
    }
    let all_made_room = async {
        for _ in 0..made_room {
            closed_rx.recv().await;
        }
    };
    tokio::time::timeout(HANG_GUARD, all_made_room)
        .await
        .unwrap_or_else(|_| {
            panic!("fewer than {made_room} idle connections were closed to make room")
        });
    stop.cancel();
    let mut left_open = 0;
    while let Some(watched) = watching.join_next().await {
        if let Some(stream) = watched.unwrap() {
            assert!(still_open(&stream));
            left_open += 1;
        }
    }
    println!(
        "/healthz answered beside 2000 idle connections ({open_when_answered} open when it was); \
         {made_room} closed to make room, {left_open} left open (cap {cap})"
    );
    assert_eq!(left_open, cap - 1);
    served.stop().await;
}

/// A connection quiet after its request is closed by the idle timeout, and a slowloris client
/// that trickles its request head forever by the header-read timeout. Each is served where
/// the other timeout is an hour and below the cap, so nothing else can close it: without its
/// timeout the hang guard fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_and_slow_clients_are_closed_by_the_timeouts() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let hour = Duration::from_secs(3600);
    let idle = Served::start(ConnectionLimits {
        idle_timeout: Duration::from_secs(1),
        header_read_timeout: hour,
        ..ConnectionLimits::default()
    })
    .await;
    let mut quiet = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(idle.addr).await.unwrap();
        // Kept alive after the answer, then quiet.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        quiet.push(stream);
    }
    let quiet_closed = futures_util::future::join_all(quiet.iter_mut().map(closed_by_server));
    tokio::time::timeout(HANG_GUARD, quiet_closed)
        .await
        .expect("connections quiet after a request were not closed by the idle timeout");
    idle.stop().await;

    let slow = Served::start(ConnectionLimits {
        idle_timeout: hour,
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    })
    .await;
    let (mut read_half, mut write_half) = TcpStream::connect(slow.addr).await.unwrap().into_split();
    let trickle = tokio::spawn(async move {
        let mut line: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
        while write_half.write_all(line).await.is_ok() {
            line = b"X-Slow: 1\r\n";
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let slowloris_closed = async {
        let mut buf = [0u8; 256];
        while let Ok(1..) = read_half.read(&mut buf).await {}
    };
    tokio::time::timeout(HANG_GUARD, slowloris_closed)
        .await
        .expect("a slowloris client was not closed by the header-read timeout");
    trickle.abort();
    slow.stop().await;
}

/// A self-signed certificate for 127.0.0.1 and its key, written by openssl into `dir`.
fn self_signed(dir: &std::path::Path, name: &str) -> super::TlsFiles {
    let files = super::TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=swarmpilot-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output()
        .expect("openssl is installed (deploy/local-swarm.sh installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    files
}

/// HTTPS with the configured certificate, and a renewed certificate served without a restart.
#[tokio::test]
async fn tls_is_served_and_reloaded_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let first = self_signed(dir.path(), "first");
    let live = super::TlsFiles {
        cert: dir.path().join("live.crt"),
        key: dir.path().join("live.key"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = ServerConfig {
        tls: Some(live.clone()),
        ..ServerConfig::default()
    };
    let server = {
        let (state, shutdown) = (f.state.clone(), shutdown.clone());
        tokio::spawn(async move { serve_with(listener, state, &config, shutdown).await })
    };
    let get = |trusted: std::path::PathBuf| async move {
        let pem = std::fs::read(trusted).unwrap();
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        client.get(format!("https://{addr}/healthz")).send().await
    };
    assert_eq!(get(first.cert.clone()).await.unwrap().status(), 200);
    let plain = reqwest::get(format!("http://{addr}/healthz")).await;
    assert!(plain.is_err(), "plain HTTP is not served: {plain:?}");

    let second = self_signed(dir.path(), "second");
    std::fs::copy(&second.key, &live.key).unwrap();
    std::fs::copy(&second.cert, &live.cert).unwrap();
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if get(second.cert.clone()).await.is_ok() {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the renewed certificate is served");
    assert!(get(first.cert.clone()).await.is_err(), "the old one is not");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// Without `--metrics-detail`, the open `/metrics` shows no traffic state and no override.
#[test]
fn metrics_detail_is_behind_a_flag() {
    let pinned = Override {
        replicas: Some(3),
        pause: false,
        pause_scale_in: false,
        pause_scale_out: false,
        expires_at: Utc::now() + ChronoDuration::minutes(5),
        reason: "test".into(),
        by: "ops".into(),
    };
    for detail in [false, true] {
        let metrics = Metrics::new().with_detail(detail);
        metrics.set_traffic_state("web", Some(TrafficState::Flood));
        metrics.count_state_change("web", TrafficState::Flood);
        metrics.set_override("web", Some(&pinned));
        let text = metrics.encode().unwrap();
        for series in [
            "swarmpilot_traffic_state{",
            "swarmpilot_traffic_state_changes_total{",
            "swarmpilot_override_active{",
        ] {
            assert_eq!(
                text.contains(series),
                detail,
                "{series} with detail {detail}"
            );
        }
    }
}

#[path = "../../tests/common/counting.rs"]
mod counting;

/// Request bodies: random bytes (invalid UTF-8 among them), deep JSON nesting, long strings,
/// huge numbers, wide objects, and bodies past the body limit.
fn hostile_body() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        (1usize..200_000)
            .prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        (1usize..200_000).prop_map(|len| format!(
            "{{\"replicas\": 3, \"reason\": \"{}\"}}",
            "x".repeat(len)
        )
        .into_bytes()),
        "[0-9]{1,400}"
            .prop_map(
                |digits| format!("{{\"replicas\": {digits}, \"ttl\": \"{digits}s\"}}").into_bytes()
            ),
        (1usize..20_000).prop_map(|width| {
            let fields: Vec<String> = (0..width).map(|i| format!("\"k{i}\": {i}")).collect();
            format!("{{{}}}", fields.join(",")).into_bytes()
        }),
        "\\PC{0,4000}".prop_map(String::into_bytes),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Random and adversarial bodies to every route, with each scope of token: every one is
    /// answered with a status below 500 (the fake engine is up) within 100 MB (the peak the
    /// request's thread allocates), never a panic. The timeout only tells a hang from an answer;
    /// speed is not asserted here.
    #[test]
    fn random_bodies_to_every_route_are_answered(body in hostile_body()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let f = runtime.block_on(async { fixture() });
        for route in routes::routes::<FakeSwarm>() {
            let path = route.path.replace("{service}", "web");
            for token in [None, Some(READ), Some(WRITE), Some(ALERTS)] {
                let mut request = Request::builder()
                    .method(route.method.clone())
                    .uri(&path)
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(token) = token {
                    request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
                }
                let request = request.body(Body::from(body.clone())).unwrap();
                let (answered, peak) = counting::peak_of(|| {
                    runtime.block_on(async {
                        tokio::time::timeout(
                            std::time::Duration::from_secs(60),
                            f.router.clone().oneshot(request),
                        )
                        .await
                    })
                });
                let answered = answered.expect("answered, not hung").unwrap();
                assert!(answered.status().as_u16() < 500, "{} {path}: {}", route.method, answered.status());
                assert!(peak < 100 * 1024 * 1024, "{} {path}: {peak} bytes for a {}-byte body", route.method, body.len());
            }
        }
    }
}

#[tokio::test]
async fn a_standby_says_so_on_readyz_and_in_metrics() {
    let swarm = Arc::new(FakeSwarm::with_service("web", 3));
    let status = Arc::new(StatusStore::with_leadership(
        crate::reconcile::Leadership::elected(),
    ));
    let (waker, _wakes) = Waker::new();
    let state = AppState::new(
        swarm,
        status,
        waker,
        Arc::new(Metrics::new()),
        &ServerConfig::default(),
    );
    let router = router(state);
    let (code, value) = call(&router, "GET", "/readyz", None, None).await;
    assert_eq!(
        (code, value["status"].as_str()),
        (StatusCode::OK, Some("standby"))
    );
    let (_, value) = call(&router, "GET", "/metrics", None, None).await;
    let text = value.as_str().unwrap_or_default();
    assert!(text.contains("swarmpilot_standby 1"), "{text}");

    // Without a lease the operator acts alone: ready, not standby.
    let f = fixture();
    let (_, value) = call(&f.router, "GET", "/readyz", None, None).await;
    assert_eq!(value["status"].as_str(), Some("ready"));
    let (_, value) = call(&f.router, "GET", "/metrics", None, None).await;
    assert!(value
        .as_str()
        .unwrap_or_default()
        .contains("swarmpilot_standby 0"));
}
