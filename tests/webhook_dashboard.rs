//! The dashboard in a real browser during a real scale-up: a service on the local Swarm whose
//! load (a gauge read through a real Prometheus) triples while headless Chromium shows the
//! dashboard of the operator scaling it. Driven over the DevTools protocol, the page must chart
//! the data across the whole time axis, list the scale-up event by its next refresh, and set a
//! pin through its own form (typed token, confirm step, the API's answer shown) that reaches
//! the service. Screenshots are kept in target/test-artifacts/.

mod common;
#[path = "common/exporter.rs"]
mod exporter;
#[path = "common/operator.rs"]
mod operator;
#[path = "common/prometheus.rs"]
mod prometheus_server;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use swarmpilot::policy::labels;
use swarmpilot::swarm::Swarm;
use swarmpilot::webhook::{self, AppState, AuthConfig, Metrics, Scope, ServerConfig};
use tokio_tungstenite::tungstenite::Message;

use common::{swarm, unique_name};
use operator::{load_source, service_with_policy, Operator};

const TOKEN: &str = "dashboard-test-token-0123456789";

/// Headless Chromium with the DevTools protocol on a port of its own, killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium on `url` and connects to that page.
    async fn open(url: &str) -> (Browser, Page) {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("chromium")
            .args([
                "--headless",
                // Root in a container: Chromium's sandbox needs user namespaces it has not got.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1400,1100",
                &format!("--user-data-dir={}", profile.path().display()),
                url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "Debian's chromium is needed for the dashboard test ({error}): \
                     `apt-get install -y chromium` (deploy/local-swarm.sh installs it)"
                )
            });
        let browser = Browser {
            child,
            _profile: profile,
        };
        // Chromium writes the port it chose into the profile.
        let port_file = browser._profile.path().join("DevToolsActivePort");
        let port = poll("Chromium's DevTools port", || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next()?.parse::<u16>().ok())
        })
        .await;
        let list = format!("http://127.0.0.1:{port}/json/list");
        let socket = poll_async("the page's DevTools socket", || async {
            let targets: Vec<Value> = reqwest::get(&list).await.ok()?.json().await.ok()?;
            targets
                .into_iter()
                .find(|t| t["type"] == "page" && t["url"].as_str() == Some(url))
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
        })
        .await;
        let (ws, _) = tokio_tungstenite::connect_async(socket.as_str())
            .await
            .unwrap();
        (browser, Page { ws, next_id: 0 })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, spoken to over the DevTools protocol.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .unwrap();
        loop {
            let message = self
                .ws
                .next()
                .await
                .expect("Chromium closed the DevTools socket")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str()).unwrap();
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Polls `expression` every 200 ms until it is true, for up to a minute; while the page
    /// loads, an expression that throws counts as false.
    async fn wait_for(&mut self, what: &str, expression: &str) {
        let guarded =
            format!("(() => {{ try {{ return {expression}; }} catch (_) {{ return false; }} }})()");
        for _ in 0..300 {
            if self.eval(&guarded).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let shown = self
            .eval("document.getElementById('state').textContent + ' | ' + document.getElementById('services').textContent")
            .await;
        panic!("the page never showed {what}; it showed: {shown}");
    }

    async fn refreshes(&mut self) -> u64 {
        self.eval("Number(document.body.dataset.refreshes || 0)")
            .await
            .as_u64()
            .unwrap()
    }

    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{name}");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("dashboard-{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

async fn poll<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    poll_async(what, || std::future::ready(found())).await
}

async fn poll_async<T, F, Fut>(what: &str, mut found: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(value) = found().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Where the first and last points of a chart's series are, as fractions of its plot's width.
fn series_extent(kind: &str, series: &str, service: &str) -> String {
    format!(
        "(() => {{
            const svg = document.querySelector('[data-service=\"{service}\"] svg.chart.{kind}');
            const plot = svg.querySelector('rect.plot').getBBox();
            const path = svg.querySelector('path.series.{series}');
            if (!path) return null;
            const box = path.getBBox();
            return [(box.x - plot.x) / plot.width, (box.x + box.width - plot.x) / plot.width];
        }})()"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_scale_up_and_pins_the_service_from_the_page() {
    let swarm = Arc::new(swarm().await);
    let (exporter, prometheus) = load_source(10.0).await;
    let run = unique_name("dash-run");
    let service = service_with_policy("dash", &run, |_| {
        "{minReplicas: 1, maxReplicas: 4, interval: 2s, \
          metrics: [{name: load, prometheus: {query: 'sp_load{job=\"test\"}'}, target: {averageValue: 10}}]}"
            .to_owned()
    });
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    let config = ServerConfig {
        auth: AuthConfig::default().with_token("ops", TOKEN, Scope::Write),
        ..ServerConfig::default()
    };
    let state = AppState::new(
        Arc::clone(&swarm),
        Arc::clone(&operator.status),
        operator.waker.clone(),
        Arc::new(Metrics::new()),
        &config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(webhook::serve_on(listener, state, operator.stopping()));
    let status = Arc::clone(&operator.status);
    let name = service.name.clone();
    poll("the first decision", || {
        status.get(&name).filter(|s| !s.decisions.is_empty())
    })
    .await;

    let (_browser, mut page) = Browser::open(&url).await;
    // The API needs a token: the page asks (its script shows the form once it is ready), and one
    // is typed into it.
    page.wait_for("the token form", "!document.getElementById('login').hidden")
        .await;
    page.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; \
         document.getElementById('login').requestSubmit(); true"
    ))
    .await;
    let card = format!("[data-service=\"{name}\"]");
    page.wait_for(
        "the service's card",
        &format!("!!document.querySelector('{card} svg.chart.demand path.series.demand')"),
    )
    .await;

    // The scripted scale-up: three times the load wants three replicas.
    exporter.text("sp_load 30\n");
    poll("the scale-up event in the status API", || {
        status.get(&name).filter(|s| {
            s.events
                .iter()
                .any(|e| e.reason.as_str() == "SuccessfulRescale")
        })
    })
    .await;
    // The refresh under way may have read the API just before: the next one must show it.
    let seen_at = page.refreshes().await;
    page.wait_for(
        "a refresh after the event",
        &format!("Number(document.body.dataset.refreshes) >= {}", seen_at + 2),
    )
    .await;
    let listed = page
        .eval(&format!(
            "[...document.querySelectorAll('{card} ol.events li')].map(li => li.dataset.reason)"
        ))
        .await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .contains(&json!("SuccessfulRescale")),
        "no SuccessfulRescale in the page's events, one refresh after the API had it: {listed}"
    );
    page.wait_for(
        "3 replicas",
        &format!("document.querySelector('{card} .facts').textContent.includes('replicas 3 → 3')"),
    )
    .await;
    let badges = page
        .eval(&format!(
            "[...document.querySelectorAll('{card} .badge.condition')].map(b => b.dataset.condition)"
        ))
        .await;
    for condition in [
        "AbleToScale",
        "ScalingActive",
        "ScalingLimited",
        "MetricsAvailable",
    ] {
        assert!(
            badges.as_array().unwrap().contains(&json!(condition)),
            "{badges}"
        );
    }

    // The charts span the data, in every range: the series start at the left edge of the plot
    // and end at its right edge (the last sample is at most one interval old). Half a minute
    // of samples first, so one interval is a small part of the axis.
    poll("half a minute of samples", || {
        status.get(&name).filter(|s| {
            s.samples
                .front()
                .is_some_and(|first| chrono::Utc::now() - first.at > chrono::Duration::seconds(30))
        })
    })
    .await;
    for range in ["1h", "15m", "6h"] {
        let before = page.refreshes().await;
        page.eval(&format!(
            "document.querySelector('#ranges button[data-range=\"{range}\"]').click(); true"
        ))
        .await;
        page.wait_for(
            "a refresh in the new range",
            &format!("Number(document.body.dataset.refreshes) > {before}"),
        )
        .await;
        for (kind, series) in [
            ("demand", "demand"),
            ("demand", "capacity"),
            ("replicas", "replicas"),
            ("replicas", "desired"),
        ] {
            let extent = page.eval(&series_extent(kind, series, &name)).await;
            let (left, right) = (
                extent[0].as_f64().unwrap_or(f64::NAN),
                extent[1].as_f64().unwrap_or(f64::NAN),
            );
            eprintln!("{range} {kind}/{series}: {left:.3}..{right:.3}");
            assert!(left.abs() < 0.01, "{range}: {series} starts at {left}");
            assert!(
                right > 0.85 && right <= 1.001,
                "{range}: {series} ends at {right}"
            );
        }
    }
    page.screenshot("scaled-up").await;

    // A pin from the page: the form, the page's own confirm step, then the API's answer.
    page.eval(&format!(
        "(() => {{
            const form = document.querySelector('{card} details.override');
            form.open = true;
            form.querySelector('select.action').value = 'pin';
            form.querySelector('select.action').dispatchEvent(new Event('change'));
            form.querySelector('input.replicas').value = '2';
            form.querySelector('input.ttl').value = '10m';
            form.querySelector('input.reason').value = 'dashboard test pin';
            form.querySelector('form').requestSubmit();
            return true;
        }})()"
    ))
    .await;
    let question = page
        .eval(&format!(
            "(() => {{ const c = document.querySelector('{card} .confirm'); \
              return c.hidden ? null : c.textContent; }})()"
        ))
        .await;
    let question = question.as_str().unwrap_or_default().to_owned();
    assert!(
        question.contains(&format!("Pin {name} at 2 replicas for 10m")),
        "{question}"
    );
    assert_eq!(
        labels::decode_override(&swarm.inspect_service(&service.id).await.unwrap().labels).unwrap(),
        None,
        "nothing is written before the confirmation"
    );
    page.screenshot("confirm-pin").await;
    page.eval(&format!(
        "document.querySelector('{card} .confirm button.confirm-yes').click(); true"
    ))
    .await;
    page.wait_for(
        "the API's answer",
        &format!("document.querySelector('{card} pre.answer').dataset.status === '200'"),
    )
    .await;
    let answer = page
        .eval(&format!(
            "document.querySelector('{card} pre.answer').textContent"
        ))
        .await;
    assert!(
        answer.as_str().unwrap().contains("\"replicas\": 2"),
        "{answer}"
    );
    let id = service.id.clone();
    let pinned = poll_async("the pin on the service", || {
        let swarm = Arc::clone(&swarm);
        let id = id.clone();
        async move {
            let info = swarm.inspect_service(&id).await.ok()?;
            let pin = labels::decode_override(&info.labels).ok()??;
            (info.replicas == Some(2)).then_some(pin)
        }
    })
    .await;
    assert_eq!(pinned.replicas, Some(2));
    assert_eq!(pinned.reason, "dashboard test pin");
    assert_eq!(pinned.by, "ops");
    page.wait_for(
        "the pin badge",
        &format!("document.querySelector('{card} h2').textContent.includes('pinned at 2')"),
    )
    .await;
    page.wait_for(
        "the pinned count and the override event",
        &format!(
            "document.querySelector('{card} .facts').textContent.includes('replicas 2 → 2') && \
             !!document.querySelector('{card} ol.events li[data-reason=\"OverrideSet\"]')"
        ),
    )
    .await;
    page.screenshot("pinned").await;

    operator.stop().await;
    server.await.unwrap().unwrap();
}
