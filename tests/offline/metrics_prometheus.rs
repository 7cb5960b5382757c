//! The Prometheus source against a real Prometheus server scraping an exporter this test drives,
//! and its failure paths against servers that are down, slow, or not Prometheus.

use crate::exporter;
use crate::prometheus_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use exporter::{refused_address, Behavior, Exporter};
use prometheus_server::PrometheusServer;
use swarmpilot::metrics::record::{record, TimeGrid};
use swarmpilot::metrics::{
    MetricError, MetricSource, PrometheusAuth, PrometheusClient, PrometheusClientConfig, Reading,
};
use swarmpilot::policy::{PrometheusSource, ScalingPolicy};
use swarmpilot::servers::{AllowList, Outbound, Registry};
use swarmpilot::swarm::ServiceInfo;

/// The exporter's counter grows by this much per second (see [`exporter::drive_counter`]).
const RATE: f64 = 100.0;
/// How far a rate read back may be from [`RATE`]: scrape timing jitter and the integer
/// increments at the window's edges stay well inside it.
const TOLERANCE: f64 = 0.05;

fn service(name: &str, stack: Option<&str>) -> ServiceInfo {
    ServiceInfo {
        id: format!("id-{name}"),
        name: name.to_owned(),
        version: 1,
        labels: BTreeMap::new(),
        replicas: Some(1),
        stack: stack.map(str::to_owned),
        cpu_limit_nanos: None,
        memory_limit_bytes: None,
        ports: Vec::new(),
        rollout: None,
    }
}

fn client(url: &str) -> PrometheusClient {
    PrometheusClient::new(PrometheusClientConfig {
        default_url: Some(url.to_owned()),
        timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .unwrap()
}

fn source(query: &str) -> PrometheusSource {
    PrometheusSource {
        query: query.to_owned(),
        server: None,
        treat_empty_as: None,
    }
}

fn assert_near(value: f64, expected: f64, what: &str) {
    assert!(
        (value - expected).abs() <= expected * TOLERANCE,
        "{what}: read {value}, expected {expected} ± {}%",
        TOLERANCE * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_driven_at_a_known_rate_reads_back_as_that_rate() {
    let exporter = Arc::new(Exporter::start(Behavior::Text(String::new())).await);
    let driver = exporter::drive_counter(exporter.clone(), |count| {
        format!(
            "# TYPE sp_requests_total counter\nsp_requests_total{{service=\"sp-metrics-web\"}} {count}\n\
             sp_requests_total{{service=\"other\"}} 5\n"
        )
    });
    let prometheus = PrometheusServer::start(&[exporter.addr]).await;
    prometheus.wait_targets_up().await;
    // Let a few scrapes land in the 5s rate window.
    tokio::time::sleep(Duration::from_secs(7)).await;

    let client = client(&prometheus.url);
    let web = service("sp-metrics-web", Some("sp"));
    let query = r#"sum(rate(sp_requests_total{service="{{service}}"}[5s]))"#;
    let reading = client.read(&web, "m", &source(query)).await.unwrap();
    assert_near(reading.value, RATE, "instant rate()");
    assert!(reading.tasks.is_empty());
    assert!((Utc::now() - reading.at).num_seconds().abs() < 60);

    // The same rate over the last seconds through a range query, one point per second.
    let end = Utc::now();
    let start = end - chrono::Duration::seconds(2);
    let filled = r#"sum(rate(sp_requests_total{service="sp-metrics-web"}[5s]))"#;
    let samples = client
        .range(None, filled, start, end, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(samples.len(), 3, "{samples:?}");
    for sample in &samples {
        assert_near(sample.value, RATE, "range rate()");
    }

    // `record` writes the policy's metrics as a trace CSV on the same grid.
    let policy: ScalingPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "swarmpilot.io/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": "sp-metrics-web"},
        "spec": {
            "maxReplicas": 4,
            "metrics": [
                {"name": "rps", "prometheus": {"query": query}, "target": {"averageValue": 50}},
                {"name": "cpu", "docker": {"resource": "cpu"}, "target": {"utilization": 70}}
            ],
            "observe": [
                {"name": "stack_up", "prometheus": {"query": "up{stack=\"{{stack}}\"}", "server": prometheus.url}}
            ]
        }
    }))
    .unwrap();
    let grid = TimeGrid {
        start,
        end,
        step: Duration::from_secs(1),
    };
    // The observe query references {{stack}}: without a stack it fails with a clear message.
    let error = record(&client, &policy, None, grid, Vec::new())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("stack_up"), "{error}");
    assert!(error.to_string().contains("{{stack}}"), "{error}");

    // A step where the query has no sample is what the operator reads as `treatEmptyAs`.
    let mut policy = policy;
    policy.spec.observe = serde_json::from_value(serde_json::json!([
        {"name": "none", "prometheus": {"query": "sp_no_such_series", "treatEmptyAs": 0}}
    ]))
    .unwrap();
    let mut csv = Vec::new();
    let summary = record(&client, &policy, None, grid, &mut csv)
        .await
        .unwrap();
    assert_eq!(summary.columns, vec!["rps", "none"]);
    assert_eq!(summary.skipped.len(), 1, "cpu has no history: {summary:?}");
    assert_eq!(summary.rows, 3);
    assert_eq!(summary.missing, 0, "{summary:?}");
    let text = String::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,rps,none"));
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        chrono::DateTime::parse_from_rfc3339(cells[0]).unwrap();
        assert_near(cells[1].parse().unwrap(), RATE, "recorded rps");
        assert_eq!(cells[2], "0", "treatEmptyAs fills an empty step: {line}");
    }
    driver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_that_are_not_one_finite_number_are_typed_errors() {
    let exporter = Exporter::start(Behavior::Text(
        "# TYPE sp_items gauge\nsp_items{kind=\"a\"} 1\nsp_items{kind=\"b\"} 2\n".into(),
    ))
    .await;
    let prometheus = PrometheusServer::start(&[exporter.addr]).await;
    prometheus.wait_targets_up().await;
    let client = client(&prometheus.url);
    let web = service("sp-metrics-web", None);

    let error = client
        .read(&web, "m", &source("sum(rate(x[1m]"))
        .await
        .unwrap_err();
    match &error {
        MetricError::Query { kind, message } => {
            assert_eq!(kind, "bad_data");
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected the server's PromQL error, got {other:?}"),
    }

    let empty = source(r#"sp_does_not_exist{service="{{service}}"}"#);
    let error = client.read(&web, "m", &empty).await.unwrap_err();
    assert!(
        matches!(error, MetricError::NoData { ref query } if query.contains("sp-metrics-web")),
        "{error:?}"
    );
    let zero_when_empty = PrometheusSource {
        treat_empty_as: Some(0.0),
        ..empty
    };
    assert_eq!(
        client
            .read(&web, "m", &zero_when_empty)
            .await
            .unwrap()
            .value,
        0.0
    );

    // Wait for a scrape of the gauge, then ask without aggregating.
    let mut series = None;
    for _ in 0..40 {
        match client.read(&web, "m", &source("sp_items")).await {
            Err(MetricError::NoData { .. }) => tokio::time::sleep(Duration::from_millis(250)).await,
            other => {
                series = Some(other);
                break;
            }
        }
    }
    match series.expect("the gauge was never scraped") {
        Err(MetricError::TooManySeries { series: 2, .. }) => {}
        other => panic!("expected TooManySeries, got {other:?}"),
    }
    assert_eq!(
        client
            .read(&web, "m", &source("sum(sp_items)"))
            .await
            .unwrap()
            .value,
        3.0
    );

    assert_eq!(
        client
            .read(&web, "m", &source("scalar(vector(4))"))
            .await
            .unwrap()
            .value,
        4.0
    );
    for division_by_zero in ["vector(0) / 0", "vector(1) / 0", "vector(-1) / 0"] {
        let error = client
            .read(&web, "m", &source(division_by_zero))
            .await
            .unwrap_err();
        assert!(
            matches!(error, MetricError::NotFinite { value } if !value.is_finite()),
            "{division_by_zero}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_server_that_is_down_is_unreachable() {
    let client = client(&format!("http://{}", refused_address()));
    let error = read_up(&client).await.unwrap_err();
    assert!(
        matches!(error, MetricError::Unreachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let slow = serve(Router::new().route(
        "/api/v1/query",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "{}"
        }),
    ))
    .await;
    let client = PrometheusClient::new(PrometheusClientConfig {
        default_url: Some(slow),
        timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .unwrap();
    let error = read_up(&client).await.unwrap_err();
    assert!(matches!(error, MetricError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn a_body_that_is_not_the_api_or_too_large_is_an_error() {
    let html =
        serve(Router::new().route("/api/v1/query", get(|| async { "<html>login</html>" }))).await;
    let error = read_up(&client(&html)).await.unwrap_err();
    // The status and a short cause; never what the answer held.
    assert!(
        matches!(error, MetricError::BadResponse { ref reason, .. }
            if reason.contains("HTTP 200") && reason.contains("not JSON") && !reason.contains("login")),
        "{error:?}"
    );

    let huge =
        serve(Router::new().route("/api/v1/query", get(|| async { "x".repeat(1 << 20) }))).await;
    let client = PrometheusClient::new(PrometheusClientConfig {
        default_url: Some(huge),
        max_body_bytes: 64 * 1024,
        ..Default::default()
    })
    .unwrap();
    let error = read_up(&client).await.unwrap_err();
    assert!(
        matches!(error, MetricError::TooLarge { limit: 65536, .. }),
        "{error:?}"
    );
}

const ONE_SAMPLE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"7"]}]}}"#;

#[tokio::test]
async fn credentials_are_read_from_files_and_sent_only_to_the_default_server() {
    let checked = serve(Router::new().route(
        "/api/v1/query",
        get(|headers: HeaderMap| async move {
            let authorization = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            match authorization.as_str() {
                "Bearer s3cret" => (axum::http::StatusCode::OK, ONE_SAMPLE.to_owned()),
                // "user:pa55" in base64.
                "Basic dXNlcjpwYTU1" => (
                    axum::http::StatusCode::OK,
                    ONE_SAMPLE.replace("\"7\"", "\"8\""),
                ),
                "" => (
                    axum::http::StatusCode::OK,
                    ONE_SAMPLE.replace("\"7\"", "\"0\""),
                ),
                _ => (
                    axum::http::StatusCode::UNAUTHORIZED,
                    r#"{"status":"error","errorType":"unauthorized","error":"bad credentials"}"#
                        .to_owned(),
                ),
            }
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "pa55").unwrap();
    let web = service("web", None);

    // The same server under another name, which the operator allows as a raw URL.
    let other_name = checked.replace("127.0.0.1", "localhost");
    let with = |auth| {
        PrometheusClient::new(PrometheusClientConfig {
            default_url: Some(checked.clone()),
            auth: Some(auth),
            outbound: Outbound::new(
                Registry::default(),
                AllowList::parse([other_name.as_str()]).unwrap(),
            ),
            ..Default::default()
        })
        .unwrap()
    };
    let bearer = with(PrometheusAuth::Bearer {
        token_file: token.clone(),
    });
    assert_eq!(
        bearer.read(&web, "m", &source("up")).await.unwrap().value,
        7.0
    );
    let basic = with(PrometheusAuth::Basic {
        username: "user".into(),
        password_file: password,
    });
    assert_eq!(
        basic.read(&web, "m", &source("up")).await.unwrap().value,
        8.0
    );

    std::fs::write(&token, "wrong").unwrap();
    let error = bearer.read(&web, "m", &source("up")).await.unwrap_err();
    assert!(
        matches!(error, MetricError::Query { ref message, .. } if message == "bad credentials"),
        "{error:?}"
    );

    // A metric naming an allowed raw URL gets no credentials; the default server's own URL,
    // or its name, is the default server and does.
    let elsewhere = PrometheusSource {
        server: Some(other_name.clone()),
        ..source("up")
    };
    assert_eq!(bearer.read(&web, "m", &elsewhere).await.unwrap().value, 0.0);
    std::fs::write(&token, "s3cret").unwrap();
    for reference in [checked.clone(), "default".to_owned()] {
        let named = PrometheusSource {
            server: Some(reference),
            ..source("up")
        };
        assert_eq!(bearer.read(&web, "m", &named).await.unwrap().value, 7.0);
    }
    // Neither registered nor allowed: refused before any request, naming the rule.
    let unknown = PrometheusSource {
        server: Some(checked.replace("127.0.0.1", "127.0.0.2")),
        ..source("up")
    };
    let error = bearer.read(&web, "m", &unknown).await.unwrap_err();
    assert!(error.to_string().contains("--allow-url"), "{error}");

    let missing = with(PrometheusAuth::Bearer {
        token_file: dir.path().join("absent"),
    });
    let error = missing.read(&web, "m", &source("up")).await.unwrap_err();
    assert!(error.to_string().contains("absent"), "{error}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target_hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hits = Arc::clone(&target_hits);
    let target = serve(Router::new().route(
        "/api/v1/query",
        get(move || async move {
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ONE_SAMPLE
        }),
    ))
    .await;
    let location = format!("{target}/api/v1/query?query=up");
    let redirecting = serve(Router::new().route(
        "/api/v1/query",
        get(move || async move { axum::response::Redirect::temporary(&location) }),
    ))
    .await;
    let error = read_up(&client(&redirecting)).await.unwrap_err();
    assert!(
        matches!(error, MetricError::BadResponse { ref reason, .. } if reason.contains("HTTP 307")),
        "{error:?}"
    );
    assert_eq!(target_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_metric_without_any_server_says_how_to_set_one() {
    let client = PrometheusClient::new(PrometheusClientConfig::default()).unwrap();
    let error = read_up(&client).await.unwrap_err();
    assert!(error.to_string().contains("--prometheus-url"), "{error}");
}

/// `up` from the client's default server, for a service `web`.
async fn read_up(client: &PrometheusClient) -> Result<Reading, MetricError> {
    client.read(&service("web", None), "m", &source("up")).await
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}
