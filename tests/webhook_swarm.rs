//! The webhook on the real local Swarm, beside the real reconcile loop: an override POSTed to
//! the API is written to the service's label, acts at once, survives an operator restart (it
//! lives in the label, not in the operator), and expires on time; and in [`published_port`],
//! the rule that keeps the API's published port to the manager's chosen address.

mod common;
#[path = "common/exporter.rs"]
mod exporter;
#[path = "common/operator.rs"]
mod operator;
#[path = "common/prometheus.rs"]
mod prometheus_server;
#[path = "webhook_swarm/published_port.rs"]
mod published_port;

use std::sync::Arc;
use std::time::Duration;

use common::{swarm, unique_name};
use operator::{service_with_policy, Operator};
use serde_json::Value;
use swarmpilot::metrics::PrometheusClientConfig;
use swarmpilot::policy::{labels, Override};
use swarmpilot::swarm::{DockerSwarm, Swarm};
use swarmpilot::webhook::{self, AppState, AuthConfig, Metrics, Scope, ServerConfig};

const TOKEN: &str = "webhook-test-token-0123456789";

/// One operator process, in-process: the shared test loop and the API on a port of its own.
struct Api {
    operator: Operator,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Api {
    async fn start(swarm: Arc<DockerSwarm>, run: &str) -> Api {
        let operator =
            Operator::start_with(Arc::clone(&swarm), PrometheusClientConfig::default(), run);
        let config = ServerConfig {
            auth: AuthConfig::default().with_token("ops", TOKEN, Scope::Write),
            ..ServerConfig::default()
        };
        let state = AppState::new(
            swarm,
            Arc::clone(&operator.status),
            operator.waker.clone(),
            Arc::new(Metrics::new()),
            &config,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stopping = operator.stopping();
        let server =
            tokio::spawn(
                async move { webhook::serve_on(listener, state, stopping).await.unwrap() },
            );
        Api {
            operator,
            url,
            server,
        }
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.operator.stop().await;
        self.server.await.unwrap();
    }
}

fn policy(name: &str) -> String {
    format!(
        "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {{name: {name}}}
spec:
  minReplicas: 1
  maxReplicas: 4
  interval: 1s
  metrics:
    - name: cpu
      docker: {{resource: cpu}}
      target: {{utilization: 70}}
  behavior:
    scaleDown: {{stabilizationWindow: 0s}}
  fallback: hold
"
    )
}

async fn override_label(swarm: &DockerSwarm, id: &str) -> Option<Override> {
    let info = swarm.inspect_service(id).await.unwrap();
    labels::decode_override(&info.labels).unwrap()
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_acts_at_once_survives_a_restart_and_expires() {
    let swarm = Arc::new(swarm().await);
    let run = unique_name("webhook-run");
    let service = service_with_policy("webhook", &run, policy);

    let first = Api::start(Arc::clone(&swarm), &run).await;
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/services/{}/override",
            first.url, service.name
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"replicas": 3, "ttl": "20s", "reason": "integration test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let stored = override_label(&swarm, &service.id)
        .await
        .expect("the override label");
    assert_eq!(stored.replicas, Some(3));
    assert_eq!(stored.by, "ops");
    // Above maxReplicas: refused, and the label is unchanged.
    let refused = reqwest::Client::new()
        .post(format!(
            "{}/v1/services/{}/override",
            first.url, service.name
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"replicas": 9, "ttl": "20s", "reason": "too many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(
        override_label(&swarm, &service.id).await,
        Some(stored.clone())
    );

    let id = service.id.clone();
    wait_until("the pinned 3 replicas are set", || {
        let swarm = Arc::clone(&swarm);
        let id = id.clone();
        async move { swarm.inspect_service(&id).await.unwrap().replicas == Some(3) }
    })
    .await;
    first.stop().await;

    // A new operator knows nothing but the labels, and keeps the pin while it lasts.
    let second = Api::start(Arc::clone(&swarm), &run).await;
    let path = format!("/v1/services/{}", service.name);
    wait_until("the restarted operator reports the override", || {
        let second = &second;
        let path = path.clone();
        async move { second.get(&path).await["override"]["replicas"] == 3 }
    })
    .await;
    assert_eq!(
        swarm.inspect_service(&service.id).await.unwrap().replicas,
        Some(3)
    );

    // Once expired, the operator removes the label and the policy rules again (idle CPU: min).
    wait_until("the expired override is removed", || {
        let swarm = Arc::clone(&swarm);
        let id = id.clone();
        async move { override_label(&swarm, &id).await.is_none() }
    })
    .await;
    assert!(chrono::Utc::now() >= stored.expires_at);
    wait_until("the service is back to minReplicas", || {
        let swarm = Arc::clone(&swarm);
        let id = id.clone();
        async move { swarm.inspect_service(&id).await.unwrap().replicas == Some(1) }
    })
    .await;
    second.stop().await;
}

/// Runs the `swarmpilot` binary; panics with its output when it fails.
fn cli(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(args)
        .env_remove("SWARMPILOT_SERVER")
        .env_remove("SWARMPILOT_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "swarmpilot {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The reasons of the service's events as the status API serves them.
fn event_reasons(status: &Value) -> Vec<String> {
    status["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

/// `get`, `describe` and `events` against a real service and operator: the targets and
/// replicas, the HPA-style conditions, and the events, which outlive an operator restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_describe_and_events_show_targets_conditions_and_events_across_a_restart() {
    let swarm = Arc::new(swarm().await);
    let run = unique_name("observe-run");
    // minReplicas 2 for a service started at 1: the operator scales it up (an event), then idle
    // CPU keeps it limited at the minimum.
    let service = service_with_policy("observe", &run, |name| {
        policy(name).replace("minReplicas: 1", "minReplicas: 2")
    });
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), TOKEN).unwrap();
    let token = token.path().to_str().unwrap().to_owned();

    let first = Api::start(Arc::clone(&swarm), &run).await;
    let path = format!("/v1/services/{}", service.name);
    wait_until("scaled to 2 with the CPU read", || {
        let first = &first;
        let path = path.clone();
        async move {
            let status = first.get(&path).await;
            status["current"] == 2
                && status["metrics"][0]["compared"].is_number()
                && event_reasons(&status).contains(&"SuccessfulRescale".to_owned())
        }
    })
    .await;

    let get = cli(&["get", "--server", &first.url, "--token-file", &token]);
    eprintln!("{get}");
    let header = get.lines().next().unwrap();
    for column in ["TARGETS", "REPLICAS", "AGE"] {
        assert!(header.contains(column), "{get}");
    }
    let row = get
        .lines()
        .find(|line| line.starts_with(&service.name))
        .unwrap_or_else(|| panic!("no row for {} in\n{get}", service.name));
    assert!(row.contains("cpu ") && row.contains("%/70%"), "{row}");
    assert!(row.contains(" 2/2 "), "{row}");
    assert!(!row.contains("<unknown>"), "{row}");

    let describe = cli(&[
        "describe",
        &service.name,
        "--server",
        &first.url,
        "--token-file",
        &token,
    ]);
    eprintln!("{describe}");
    let line_of = |what: &str| {
        describe
            .lines()
            .find(|line| line.trim_start().starts_with(what))
            .unwrap_or_else(|| panic!("no {what} line in\n{describe}"))
            .to_owned()
    };
    assert!(describe.contains("Conditions:"), "{describe}");
    let limited = line_of("ScalingLimited");
    assert!(
        limited.contains("True") && limited.contains("TooFewReplicas"),
        "{limited}"
    );
    let active = line_of("ScalingActive");
    assert!(
        active.contains("True") && active.contains("ValidMetricFound"),
        "{active}"
    );
    assert!(line_of("AbleToScale").contains("True"), "{describe}");
    assert!(line_of("MetricsAvailable").contains("True"), "{describe}");
    assert!(describe.contains("Events:"), "{describe}");
    let rescale = line_of("Normal   SuccessfulRescale");
    assert!(rescale.contains("1 -> 2: "), "{rescale}");
    first.stop().await;

    // With no operator running, the events are in the label.
    let events = cli(&["events", &service.name]);
    eprintln!("{events}");
    assert!(events.contains("SuccessfulRescale"), "{events}");
    assert!(events.contains("StateRestored"), "{events}");

    // A new operator knows nothing but the labels: it serves the old events and adds its own.
    let second = Api::start(Arc::clone(&swarm), &run).await;
    wait_until(
        "the restarted operator serves the events of the first",
        || {
            let second = &second;
            let path = path.clone();
            async move {
                let reasons = event_reasons(&second.get(&path).await);
                reasons.contains(&"SuccessfulRescale".to_owned())
                    && reasons.iter().filter(|r| *r == "StateRestored").count() == 2
            }
        },
    )
    .await;
    second.stop().await;
    let events = cli(&["events", &service.name, "-o", "json"]);
    let events: Vec<Value> = serde_json::from_str(&events).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "SuccessfulRescale" && e["service"] == service.name.as_str()),
        "{events:?}"
    );
}
