//! End to end on the real local Swarm, as a user deploys it: the images built by
//! `deploy/build-images.sh`, the stack of `deploy/stack.yml` (the operator as a Swarm service with
//! the Docker socket, the real Prometheus finding tasks through `dockerswarm_sd_configs`, the demo
//! app `web` and its twin `web-hpa`), and the load generator as a Swarm service sending both the
//! same traffic. After a warm-up that gives the models their history, a ramp scales both up, the
//! predictive `web` before its HPA-only twin; quiet scales both down after the stabilization
//! window; a flood puts `web` in the `flood` state and its policy holds while the twin scales;
//! an override posted to the webhook holds through a forced restart of the operator service.
//!
//! Run with `-- --nocapture` to see the timeline (seconds from each load step to each replica
//! change, for both services).

mod common;
#[path = "common/prometheus.rs"]
mod prometheus_server;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{docker, ensure_swarm, get_json};
use prometheus_server::free_port;
use serde_json::Value;
use std::collections::BTreeMap;
use swarmpilot::metrics::record::{record, TimeGrid};
use swarmpilot::metrics::{PrometheusClient, PrometheusClientConfig};
use swarmpilot::policy::ScalingPolicy;
use swarmpilot::reconcile::DecisionRecord;
use swarmpilot::replay::parity::{self, LiveDecision, Rules};
use swarmpilot::replay::trace::Column;
use swarmpilot::replay::{self, ModelSignals, Options, Point, Trace};

/// The twins' common policy: the stack's request-rate metric and behavior, with a short
/// scale-down window so the test does not wait five minutes for a scale-down.
const HPA_POLICY: &str = r#"minReplicas: 1
maxReplicas: 6
interval: 5s
metrics:
  - name: rps
    prometheus:
      query: sum(rate(http_requests_total{service="{{service}}"}[15s]))
      treatEmptyAs: 0
    target: {averageValue: 10}
# A scale-up must be recommended for 30 s, longer than the classifier takes to call a flood
# and the 10 s it must last: a flood is held before it scales anything. The twin has the same
# behavior, so the two differ only by the models.
behavior:
  scaleUp: {stabilizationWindow: 30s}
  scaleDown: {stabilizationWindow: 20s}
"#;
/// What `web` adds to [`HPA_POLICY`]: the forecast, and the traffic states with a hold on a flood.
const MODELS: &str = r#"observe:
  - name: errors
    prometheus:
      query: sum(rate(http_requests_total{service="{{service}}",code=~"5.."}[15s]))
      treatEmptyAs: 0
  - name: latency
    prometheus:
      query: sum(rate(http_request_duration_seconds_sum{service="{{service}}"}[15s])) / clamp_min(sum(rate(http_request_duration_seconds_count{service="{{service}}"}[15s])), 1e-9)
      treatEmptyAs: 0
  - name: rx
    prometheus:
      query: sum(rate(http_received_bytes_total{service="{{service}}"}[15s]))
      treatEmptyAs: 0
  - name: tx
    prometheus:
      query: sum(rate(http_sent_bytes_total{service="{{service}}"}[15s]))
      treatEmptyAs: 0
forecast: {model: traffic-forecast, metric: rps, horizon: 60s, use: scaleUp}
anomaly:
  model: traffic-states
  inputs: {requests: rps, errors: errors, latency: latency, receiveBytes: rx, transmitBytes: tx}
  for: 10s
  onState: {flood: hold, flash_crowd: scale, degraded: noScaleDown, unknown: noScaleDown}
"#;
/// The steady rate of the warm-up and of quiet times: half a replica's worth.
const BASE: &str = "5";
/// The ramp's final rate: 40 requests per second at 10 per replica asks for 4 replicas.
const RAMP_TO: u32 = 40;

/// The images `deploy/build-images.sh` built for this run, tagged for this process alone so
/// runs side by side on one host never deploy each other's build, and removed when dropped
/// (also when the test fails). Declared before the [`Stack`] that runs them, so the stack is
/// removed first.
struct Images {
    /// `e2e-<process id>`.
    tag: String,
    /// The images built, as the script printed them.
    names: Vec<String>,
}

impl Images {
    /// Builds the images through the script users run.
    fn build() -> Images {
        let tag = format!("e2e-{}", std::process::id());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/build-images.sh");
        let output = Command::new("bash")
            .arg(&script)
            .env("SWARMPILOT_TAG", &tag)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        // The script prints each image once built: a failed run still removes those.
        let images = Images {
            tag,
            names: String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned)
                .collect(),
        };
        assert!(
            output.status.success(),
            "{} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        images
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        // A container of the stack that is still stopping holds its image: retry a while.
        for _ in 0..60 {
            self.names.retain(|name| !remove_image(name));
            if self.names.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!("could not remove the images {:?}", self.names);
    }
}

/// Removes the image `name`; true once it is gone.
fn remove_image(name: &str) -> bool {
    let removed = Command::new("docker")
        .args(["image", "rm", name])
        .output()
        .is_ok_and(|o| o.status.success());
    removed
        || !Command::new("docker")
            .args(["image", "inspect", name])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// A deployed stack with a unique name, removed (with its load generator) when dropped.
struct Stack {
    name: String,
    /// The tag of the stack's images.
    tag: String,
    api: String,
    /// The stack's Prometheus, published on the host.
    prometheus: String,
    read_token: String,
    write_token: String,
    _secrets: tempfile::TempDir,
}

impl Stack {
    fn deploy(images: &Images) -> Stack {
        let name = format!("sp-e2e-{}", std::process::id());
        let secrets = tempfile::tempdir().unwrap();
        let read_token = format!("read-{}", uuid_like());
        let write_token = format!("write-{}", uuid_like());
        std::fs::write(secrets.path().join("read_token"), &read_token).unwrap();
        std::fs::write(secrets.path().join("write_token"), &write_token).unwrap();
        let agent_token = format!("agent-{}", uuid_like());
        std::fs::write(secrets.path().join("agent_token"), agent_token).unwrap();
        let port = free_port();
        let prom_port = free_port();
        let stack_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/stack.yml");
        let output = Command::new("docker")
            .args(["stack", "deploy", "-c"])
            .arg(&stack_file)
            .arg(&name)
            .env("SP_STACK", &name)
            .env("SP_SECRETS", secrets.path())
            .env("SP_PORT", port.to_string())
            .env("SP_PROM_PORT", prom_port.to_string())
            .env("SWARMPILOT_TAG", &images.tag)
            .output()
            .expect("run docker stack deploy");
        let stack = Stack {
            api: format!("http://127.0.0.1:{port}"),
            prometheus: format!("http://127.0.0.1:{prom_port}"),
            name,
            tag: images.tag.clone(),
            read_token,
            write_token,
            _secrets: secrets,
        };
        assert!(
            output.status.success(),
            "docker stack deploy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stack
    }

    fn service(&self, short: &str) -> String {
        format!("{}_{short}", self.name)
    }

    fn operator_logs(&self) -> String {
        let output = Command::new("docker")
            .args(["service", "logs", "--raw", "--tail", "40"])
            .arg(self.service("operator"))
            .output();
        output
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default()
    }

    /// Sends `pattern` to both twins from a load generator on the stack's network, in place of
    /// whatever load ran before.
    fn send_load(&self, pattern: &[&str]) {
        let name = self.service("loadgen");
        let _ = Command::new("docker")
            .args(["service", "rm", &name])
            .output();
        let network = self.service("swarmpilot");
        let stack_label = format!("com.docker.stack.namespace={}", self.name);
        let image = format!("swarmpilot-loadgen:{}", self.tag);
        let mut args = vec![
            "service",
            "create",
            "--detach",
            "--quiet",
            "--name",
            &name,
            "--label",
            &stack_label,
            "--network",
            &network,
            "--restart-condition",
            "none",
            &image,
            "--target",
            "http://web:8080/",
            "--target",
            "http://web-hpa:8080/",
            "--work-ms",
            "1",
        ];
        args.extend_from_slice(pattern);
        docker(&args);
    }

    /// Steady traffic at [`BASE`] requests per second.
    fn send_base_load(&self) {
        self.send_load(&["steady", "--rps", BASE, "--for", "1h"]);
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let url = format!("{}{path}", self.api);
        get_json(&url, &self.read_token, Duration::from_secs(5)).await
    }

    async fn status(&self, short: &str) -> Option<Value> {
        self.get(&format!("/v1/services/{}", self.service(short)))
            .await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["service", "rm", &self.service("loadgen")])
            .output();
        let _ = Command::new("docker")
            .args(["stack", "rm", &self.name])
            .output();
        // The network goes once its tasks are gone; wait so the next run starts clean.
        for _ in 0..60 {
            let gone = !Command::new("docker")
                .args(["network", "inspect", &self.service("swarmpilot")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// A token no one guesses: random bytes from the kernel, in hex.
fn uuid_like() -> String {
    let bytes = std::fs::read("/proc/sys/kernel/random/uuid").unwrap();
    String::from_utf8_lossy(&bytes).trim().replace('-', "")
}

fn spec_replicas(service: &str) -> Option<u32> {
    let output = Command::new("docker")
        .args([
            "service",
            "inspect",
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}",
            service,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// Every change of a service's replica count, with the time it was seen.
#[derive(Clone, Default)]
struct Timeline {
    changes: Arc<Mutex<Vec<(Instant, u32)>>>,
}

impl Timeline {
    /// Polls the service's replica count every half second until the test ends.
    fn watch(service: String) -> Timeline {
        let timeline = Timeline::default();
        let changes = Arc::clone(&timeline.changes);
        std::thread::spawn(move || loop {
            if let Some(replicas) = spec_replicas(&service) {
                let mut changes = changes.lock().unwrap();
                if changes.last().map(|(_, r)| *r) != Some(replicas) {
                    changes.push((Instant::now(), replicas));
                }
            }
            if Arc::strong_count(&changes) == 1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        });
        timeline
    }

    fn current(&self) -> Option<u32> {
        self.changes.lock().unwrap().last().map(|(_, r)| *r)
    }

    fn since(&self, start: Instant) -> Vec<(f64, u32)> {
        self.changes
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= start)
            .map(|(at, r)| (at.duration_since(start).as_secs_f64(), *r))
            .collect()
    }

    /// The time the count last changed.
    fn last_change(&self) -> Instant {
        self.changes
            .lock()
            .unwrap()
            .last()
            .map(|(at, _)| *at)
            .unwrap()
    }

    /// Seconds after `start` when the count first reached `replicas` or more.
    fn reached(&self, start: Instant, replicas: u32) -> Option<f64> {
        self.since(start)
            .into_iter()
            .find(|(_, r)| *r >= replicas)
            .map(|(s, _)| s)
    }

    /// The highest count seen since `start`.
    fn highest(&self, start: Instant) -> u32 {
        self.since(start)
            .into_iter()
            .map(|(_, r)| r)
            .max()
            .unwrap_or_else(|| self.current().unwrap_or_default())
    }

    fn render(&self, start: Instant) -> String {
        self.since(start)
            .iter()
            .map(|(s, r)| format!("{s:.0}s→{r}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Waits until `check` holds, or panics after `limit` with `what` and the operator's logs.
async fn wait_until<F, Fut>(stack: &Stack, what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!(
        "{what} did not happen within {}s; operator logs:\n{}",
        limit.as_secs(),
        stack.operator_logs()
    );
}

/// Waits until the operator's status of the stack's service `short` satisfies `check`.
async fn wait_for_status(
    stack: &Stack,
    short: &str,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) {
    wait_until(stack, what, limit, || async {
        stack
            .status(short)
            .await
            .is_some_and(|status| check(&status))
    })
    .await;
}

/// The decisions the operator reports for the service made at or after `since`.
fn decisions_since(status: &Value, since: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    status["decisions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            d["at"]
                .as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                .is_some_and(|at| at >= since)
        })
        .cloned()
        .collect()
}

/// The ids of the service's tasks that should be running, one a line.
fn running_task_ids(service: &str) -> String {
    docker(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        service,
    ])
}

/// The last decision the operator reports for the service: (current, desired, reason).
fn last_decision(status: &Value) -> Option<(u64, u64, String)> {
    let decision = status["decisions"].as_array()?.last()?;
    Some((
        decision["current"].as_u64()?,
        decision["desired"].as_u64()?,
        decision["reason"].as_str()?.to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_in_the_swarm_scales_ahead_of_hpa_holds_a_flood_and_keeps_overrides() {
    ensure_swarm();
    let images = Images::build();
    let deployed_at = chrono::Utc::now();
    let stack = Stack::deploy(&images);
    let web = stack.service("web");
    let web_decisions = DecisionLog::follow(&stack, &web);
    let twin = stack.service("web-hpa");
    let timeline = Timeline::watch(web.clone());
    let twin_timeline = Timeline::watch(twin.clone());

    // The operator runs as a Swarm service, reads the policies from the services' labels and
    // the request rates from the stack's Prometheus.
    wait_until(
        &stack,
        "the operator's API answering",
        Duration::from_secs(180),
        || async { stack.get("/readyz").await.is_some() },
    )
    .await;
    let label = |policy: &str| format!("io.swarmpilot.policy={policy}");
    let web_policy = format!("{HPA_POLICY}{MODELS}");
    for (service, policy) in [(&web, web_policy.as_str()), (&twin, HPA_POLICY)] {
        docker(&[
            "service",
            "update",
            "--detach",
            "--label-add",
            &label(policy),
            service,
        ]);
    }
    stack.send_base_load();
    wait_for_status(
        &stack,
        "web-hpa",
        "a decision of web-hpa on the test policy with the request rate read from Prometheus",
        Duration::from_secs(180),
        |status| {
            // The stack's own policies allow 8 replicas; the test's 6.
            let spec = &status["policy"]["spec"];
            let tests_policy = spec["maxReplicas"] == 6 && spec["forecast"].is_null();
            tests_policy
                && status["metrics"][0]["value"].is_number()
                && last_decision(status).is_some()
        },
    )
    .await;
    wait_for_status(
        &stack,
        "web",
        "a decision of web on the test policy",
        Duration::from_secs(60),
        |status| status["policy"]["spec"]["maxReplicas"] == 6 && last_decision(status).is_some(),
    )
    .await;
    // The live/replay parity check compares web's decisions from here to the flood's end.
    let compared_from = chrono::Utc::now();
    // The models need five minutes of a service's history before they forecast or classify.
    let warm_up = Instant::now();
    wait_for_status(
        &stack,
        "web",
        "the forecast in use and the traffic state `normal` on web",
        Duration::from_secs(600),
        |status| {
            let forecast_used = status["decisions"]
                .as_array()
                .and_then(|d| d.last())
                .is_some_and(forecast_used);
            let spec = &status["policy"]["spec"];
            spec["maxReplicas"] == 6
                && spec["anomaly"].is_object()
                && status["forecast"].is_number()
                && status["trafficState"] == "normal"
                && forecast_used
        },
    )
    .await;
    eprintln!(
        "e2e warm-up: forecast and traffic state ready {:.0}s after the steady load started",
        warm_up.elapsed().as_secs_f64()
    );
    assert_eq!(timeline.current(), Some(1), "web starts at 1 replica");
    assert_eq!(
        twin_timeline.current(),
        Some(1),
        "web-hpa starts at 1 replica"
    );

    // The same ramp to 40 requests per second for both: about 4 replicas each, the predictive
    // one first.
    let ramp = Instant::now();
    let ramp_at = chrono::Utc::now();
    stack.send_load(&[
        "ramp",
        "--from",
        BASE,
        "--to",
        &RAMP_TO.to_string(),
        "--over",
        "2m",
        "--hold",
        "30m",
    ]);
    let both_settled = || async {
        let up = |t: &Timeline| t.current().is_some_and(|r| r >= 3);
        let still = |t: &Timeline| t.last_change().elapsed() >= Duration::from_secs(30);
        up(&timeline) && up(&twin_timeline) && still(&timeline) && still(&twin_timeline)
    };
    wait_until(
        &stack,
        "both twins scaled to 3 or more and settled for 30 s",
        Duration::from_secs(420),
        both_settled,
    )
    .await;
    let converged = (
        timeline.current().unwrap(),
        twin_timeline.current().unwrap(),
    );
    let converged_at = |t: &Timeline| t.since(ramp).last().map(|(s, _)| *s).unwrap_or_default();
    eprintln!(
        "e2e ramp: web (predictive) {}; converged at {} replicas {:.0}s after the load step",
        timeline.render(ramp),
        converged.0,
        converged_at(&timeline)
    );
    eprintln!(
        "e2e ramp: web-hpa (HPA only) {}; converged at {} replicas {:.0}s after the load step",
        twin_timeline.render(ramp),
        converged.1,
        converged_at(&twin_timeline)
    );
    for (name, replicas) in [("web", converged.0), ("web-hpa", converged.1)] {
        assert!(
            (3..=6).contains(&replicas),
            "40 rps at 10 per replica should settle {name} near 4 replicas, got {replicas}"
        );
    }
    let status = stack.status("web").await.expect("status of web");
    let rate = status["metrics"][0]["value"].as_f64().unwrap_or_default();
    assert!(
        rate > 20.0,
        "Prometheus should see the ramp's rate, saw {rate} rps"
    );
    let ramp_decisions = decisions_since(&status, ramp_at);
    assert!(
        ramp_decisions
            .iter()
            .any(|d| d["desired"].as_u64() > d["current"].as_u64() && forecast_used(d)),
        "web scaled up with the forecast in use: {ramp_decisions:?}"
    );
    // Both reach the smaller of the two final counts; the predictive one gets there first.
    let common = converged.0.min(converged.1);
    let web_at = timeline.reached(ramp, common).unwrap();
    let twin_at = twin_timeline.reached(ramp, common).unwrap();
    eprintln!(
        "e2e ramp: {common} replicas reached {web_at:.0}s (web) vs {twin_at:.0}s (web-hpa) after the load step"
    );
    assert!(
        web_at < twin_at,
        "the predictive service reached {common} replicas at {web_at:.0}s, not before its HPA-only twin at {twin_at:.0}s"
    );

    // Quiet: back to the steady base rate; both come back to 1 replica after the 20 s window.
    let quiet = Instant::now();
    stack.send_base_load();
    wait_until(
        &stack,
        "both twins back at 1 replica",
        Duration::from_secs(300),
        || async { timeline.current() == Some(1) && twin_timeline.current() == Some(1) },
    )
    .await;
    for (name, t) in [("web", &timeline), ("web-hpa", &twin_timeline)] {
        eprintln!(
            "e2e quiet: {name} {} (seconds after the load dropped); back at 1 after {:.0}s",
            t.render(quiet),
            t.last_change().duration_since(quiet).as_secs_f64()
        );
    }

    // A flood of tiny requests: the classifier calls it `flood` and web's policy holds, while
    // the twin, seeing only the request rate, scales up for it.
    let flood = Instant::now();
    let flood_at = chrono::Utc::now();
    stack.send_load(&["flood", "--rps", "400", "--for", "30m"]);
    wait_for_status(
        &stack,
        "web",
        "the traffic state `flood` holding web",
        Duration::from_secs(240),
        |status| {
            status["trafficState"] == "flood"
                && last_decision(status).is_some_and(|(_, _, reason)| reason == "TrafficState")
        },
    )
    .await;
    let held = Instant::now();
    let held_replicas = timeline.current().unwrap();
    eprintln!(
        "e2e flood: web in `flood` and held {:.0}s after the flood started, at {held_replicas} replicas",
        held.duration_since(flood).as_secs_f64()
    );
    // Watch the hold for 45 s: the twin, with the same 30 s scale-up window, answers the rate.
    tokio::time::sleep(Duration::from_secs(45)).await;
    let status = stack.status("web").await.expect("status of web");
    let flood_decisions = decisions_since(&status, flood_at);
    eprintln!(
        "e2e flood: web {} and web-hpa {} (seconds after the flood started)",
        timeline.render(flood),
        twin_timeline.render(flood)
    );
    assert!(
        timeline.since(held).is_empty(),
        "web's count changed while the flood held it: {}",
        timeline.render(flood)
    );
    assert!(
        status["trafficState"] == "flood",
        "web left the flood state during the flood: {flood_decisions:?}"
    );
    let twin_highest = twin_timeline.highest(flood);
    assert!(
        twin_highest > held_replicas,
        "the HPA-only twin should have scaled past web's {held_replicas} for the same flood, reached {twin_highest}"
    );
    // The override and the restart are left out of the parity check: an override is not in the
    // trace, and a restarted operator starts a new decision history.
    let compared_to = chrono::Utc::now();
    let decisions = web_decisions.stop().await;
    stack.send_base_load();

    // An override pins 3 replicas; it holds through a forced restart of the operator service.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/services/{web}/override", stack.api))
        .bearer_auth(&stack.write_token)
        .json(&serde_json::json!({"replicas": 3, "ttl": "10m", "reason": "e2e: hold through a restart"}))
        .send()
        .await
        .expect("POST override");
    let code = response.status();
    assert!(
        code.is_success(),
        "override refused: {code} {}",
        response.text().await.unwrap_or_default()
    );
    wait_until(
        &stack,
        "the override's 3 replicas",
        Duration::from_secs(60),
        || async { timeline.current() == Some(3) },
    )
    .await;
    let pinned = timeline.last_change();
    let operator = stack.service("operator");
    let before = running_task_ids(&operator);
    let restart = Instant::now();
    let restarted_at = chrono::Utc::now();
    docker(&["service", "update", "--detach", "--force", &operator]);
    wait_until(
        &stack,
        "a new operator task",
        Duration::from_secs(120),
        || {
            let operator = operator.clone();
            let before = before.clone();
            async move {
                let now = docker(&[
                    "service",
                    "ps",
                    "-q",
                    "--filter",
                    "desired-state=running",
                    &operator,
                ]);
                !now.is_empty() && now != before
            }
        },
    )
    .await;
    // The new operator has only what the labels hold: its first decisions must come from the
    // override label.
    let override_decisions = AtomicUsize::new(0);
    wait_for_status(
        &stack,
        "web",
        "three decisions of the restarted operator keeping the override",
        Duration::from_secs(120),
        |status| {
            let decisions = status["decisions"].as_array().cloned().unwrap_or_default();
            // A status whose every decision is younger than the restart is the new process's.
            let new_process = decisions.iter().all(|d| {
                d["at"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at > restarted_at)
            });
            if !new_process {
                return false;
            }
            let kept = decisions
                .iter()
                .filter(|d| d["reason"] == "Override" && d["desired"] == 3)
                .count();
            override_decisions.store(kept, Ordering::Relaxed);
            assert!(
                decisions.iter().all(|d| d["desired"] == 3),
                "the restarted operator decided against the override: {decisions:?}"
            );
            kept >= 3
        },
    )
    .await;
    let override_decisions = override_decisions.into_inner();
    eprintln!(
        "e2e override: pinned at 3; operator restarted; {override_decisions} decisions of the new operator kept 3 ({:.0}s after the restart)",
        restart.elapsed().as_secs_f64()
    );
    assert_eq!(
        timeline.last_change(),
        pinned,
        "the replica count changed after the override was applied: {}",
        timeline.render(pinned)
    );
    assert_eq!(timeline.current(), Some(3));

    let status = stack.status("web").await.expect("status of web");
    let policy: ScalingPolicy =
        serde_json::from_value(status["policy"].clone()).expect("web's policy in its status");
    let span = Span {
        recorded_from: deployed_at,
        compared_from,
        to: compared_to,
    };
    check_parity(&stack, &policy, &decisions, span).await;
}

/// The decisions the operator reports for a service, gathered every 30 s: the status keeps only
/// the last 64, about five minutes at a 5 s interval.
struct DecisionLog {
    records: Arc<Mutex<BTreeMap<chrono::DateTime<chrono::Utc>, DecisionRecord>>>,
    url: String,
    token: String,
    task: tokio::task::JoinHandle<()>,
}

impl DecisionLog {
    fn follow(stack: &Stack, service: &str) -> DecisionLog {
        let url = format!("{}/v1/services/{service}", stack.api);
        let records = Arc::new(Mutex::default());
        let task = tokio::spawn({
            let (records, url, token) =
                (Arc::clone(&records), url.clone(), stack.read_token.clone());
            async move {
                loop {
                    gather(&records, &url, &token).await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            }
        });
        DecisionLog {
            records,
            url,
            token: stack.read_token.clone(),
            task,
        }
    }

    /// Gathers once more and stops: every decision seen, oldest first.
    async fn stop(self) -> Vec<DecisionRecord> {
        self.task.abort();
        let _ = self.task.await;
        gather(&self.records, &self.url, &self.token).await;
        let records = self.records.lock().unwrap();
        records.values().cloned().collect()
    }
}

async fn gather(
    records: &Mutex<BTreeMap<chrono::DateTime<chrono::Utc>, DecisionRecord>>,
    url: &str,
    token: &str,
) {
    let Some(status): Option<Value> = get_json(url, token, Duration::from_secs(5)).await else {
        return;
    };
    let found: Vec<DecisionRecord> =
        serde_json::from_value(status["decisions"].clone()).unwrap_or_default();
    let mut records = records.lock().unwrap();
    for record in found {
        records.insert(record.at, record);
    }
}

/// What the parity check records and compares.
struct Span {
    /// From the stack's deployment: the operator's memory of the service starts there.
    recorded_from: chrono::DateTime<chrono::Utc>,
    /// The first decision compared: web on the test policy.
    compared_from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
}

/// The fine step `record` reads Prometheus at: a live read and the recorded step before it
/// are then at most this far apart, so they see the same scrapes nearly always.
const RECORD_STEP: Duration = Duration::from_millis(500);

/// Records web's metrics with `record`, replays them at the live decision times with the same
/// policy and models, and compares: equal where the inputs were equal, every difference
/// explained by the input that differed.
async fn check_parity(
    stack: &Stack,
    policy: &ScalingPolicy,
    decisions: &[DecisionRecord],
    span: Span,
) {
    let started = Instant::now();
    let client = PrometheusClient::new(PrometheusClientConfig {
        default_url: Some(stack.prometheus.clone()),
        timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .expect("a client of the stack's Prometheus");
    let grid = TimeGrid {
        start: span.recorded_from,
        end: span.to,
        step: RECORD_STEP,
    };
    let mut csv = Vec::new();
    let recorded = record(&client, policy, Some(&stack.name), grid, &mut csv)
        .await
        .expect("record web's metrics from the stack's Prometheus");
    let fine = Trace::read("recorded", csv.as_slice()).expect("read the recorded trace");
    let decisions: Vec<&DecisionRecord> = decisions.iter().filter(|d| d.at <= span.to).collect();
    // One row per live decision, at its time, with the recorded step at or before it, as the
    // loop's memory held one sample per reconcile. Every decision gets its own row: one woken
    // by a change of the service off its interval (a user's scale, an override) may read the
    // same step as the decision before it.
    let mut rows = Vec::new();
    let mut ticks = Vec::new();
    for decision in &decisions {
        let Some(row) = fine
            .times
            .partition_point(|t| *t <= decision.at)
            .checked_sub(1)
        else {
            continue;
        };
        if ticks.last().is_none_or(|last| *last < decision.at) {
            rows.push(row);
            ticks.push(decision.at);
        }
    }
    let trace = Trace {
        times: ticks.clone(),
        columns: fine
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: rows.iter().map(|&r| c.values[r]).collect(),
            })
            .collect(),
        labels: None,
        repeated: 0,
    };
    let load = replay::load_metric(policy)
        .expect("web's load metric")
        .name
        .clone();
    let options = Options {
        metric: None,
        scale: 1.0,
        // `record` wrote the rates the policy's queries give, as the operator read them.
        metric_window: None,
        capacity_per_replica: 10.0,
        startup: chrono::Duration::zero(),
        initial_replicas: decisions.first().map(|d| d.current),
        from: None,
        ticks: Some(ticks),
    };
    let replayed = replay::compare(policy, &trace, &options, &ModelSignals).expect("replay");
    let live: Vec<LiveDecision> = decisions
        .iter()
        .filter(|d| d.at >= span.compared_from)
        .map(|d| LiveDecision::of(d, &load))
        .collect();
    let points: Vec<Point> = fine
        .times
        .iter()
        .zip(&fine.column(&load).expect("the load column").values)
        .filter_map(|(&at, v)| v.map(|value| Point { at, value }))
        .collect();
    let interval = chrono::Duration::from_std(policy.spec.interval.as_std()).unwrap();
    let rules = Rules {
        memory: parity::memory(&policy.spec.behavior, interval),
        // A live read is evaluated within the interval before its decision.
        skew: interval,
    };
    let parity = parity::compare(&live, &replayed.policy.ticks, &points, &rules);
    for row in parity.differences() {
        eprintln!("e2e parity: {row}");
    }
    eprintln!(
        "e2e parity: {} ({} rows recorded at {}ms, {} empty cells; {} replay notes: {}); took {:.1}s",
        parity.summary(),
        recorded.rows,
        RECORD_STEP.as_millis(),
        recorded.missing,
        replayed.notes.len(),
        replayed.notes.join("; "),
        started.elapsed().as_secs_f64()
    );
    let unexplained = parity.unexplained();
    assert!(
        unexplained.is_empty(),
        "replay differs from the live decisions where their inputs were equal:\n{}",
        unexplained
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Live and replay read the same Prometheus at nearly the same moments: they part only
    // around a change of load (base load, ramp, quiet, flood), where one input read at another
    // moment starts a difference; the ticks after it, until the behavior's windows and the
    // forecast's hold let go, follow from it. Parity is lost if many differences start, or if
    // the counts stay apart for most of the run.
    let explained = parity.explained();
    let all: usize = explained.values().sum();
    let starting: usize = explained
        .iter()
        .filter(|(cause, _)| !cause.follows_an_earlier())
        .map(|(_, n)| n)
        .sum();
    let rows = parity.rows.len();
    assert!(
        starting * 100 <= rows * MAX_STARTING_PERCENT,
        "{starting} of {rows} ticks start a difference (explained), more than {MAX_STARTING_PERCENT}%"
    );
    assert!(
        all * 100 <= rows * MAX_EXPLAINED_PERCENT,
        "{all} of {rows} ticks differ (explained), more than {MAX_EXPLAINED_PERCENT}%"
    );
    assert!(
        parity.rows.len() >= 100,
        "the parity check compared only {} decisions",
        parity.rows.len()
    );
}

/// The share of compared ticks that may start a difference for an explained reason (one or two
/// around each of the scenario's four changes of load).
const MAX_STARTING_PERCENT: usize = 10;
/// The share of compared ticks whose counts may differ for an explained reason, those that
/// follow an earlier difference included: a difference lasts a stabilization window and the
/// forecast's hold at most, so the counts stay together for most of the run.
const MAX_EXPLAINED_PERCENT: usize = 50;

/// Whether a decision's detail says the forecast was used (the headline names only the cause).
fn forecast_used(decision: &serde_json::Value) -> bool {
    decision["detail"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| line.as_str())
        .any(|line| line.contains("forecast used"))
}
