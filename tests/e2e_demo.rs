//! End to end on the real local Swarm, as a user deploys it: the images built by
//! `deploy/build-images.sh`, the stack of `deploy/stack.yml` (the operator as a Swarm service with
//! the Docker socket, the real Prometheus finding tasks through `dockerswarm_sd_configs`, the demo
//! app), and the load generator as a Swarm service. A ramp scales the demo app up; quiet scales
//! it down after the stabilization window; an override posted to the webhook holds through a
//! forced restart of the operator service.
//!
//! Run with `-- --nocapture` to see the timeline (seconds from the load step to each replica
//! change).

mod common;
#[path = "common/prometheus.rs"]
mod prometheus_server;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{docker, ensure_swarm};
use prometheus_server::free_port;
use serde_json::Value;

const TAG: &str = "e2e";
/// The test's policy for the demo app: the stack's metric, with short windows so the test
/// does not wait five minutes for a scale-down.
const TEST_POLICY: &str = r#"minReplicas: 1
maxReplicas: 6
interval: 3s
metrics:
  - name: rps
    prometheus:
      query: sum(rate(http_requests_total{service="{{service}}"}[15s]))
      treatEmptyAs: 0
    target: {averageValue: 10}
behavior:
  scaleDown: {stabilizationWindow: 20s}
"#;
/// The ramp's final rate: 40 requests per second at 10 per replica asks for 4 replicas.
const RAMP_TO: u32 = 40;

/// Builds the images once per test process, through the script users run.
fn build_images() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/build-images.sh");
    let output = Command::new("bash")
        .arg(&script)
        .env("SWARMPILOT_TAG", TAG)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A deployed stack with a unique name, removed (with its load generator) when dropped.
struct Stack {
    name: String,
    api: String,
    read_token: String,
    write_token: String,
    _secrets: tempfile::TempDir,
}

impl Stack {
    fn deploy() -> Stack {
        let name = format!("sp-e2e-{}", std::process::id());
        let secrets = tempfile::tempdir().unwrap();
        let read_token = format!("read-{}", uuid_like());
        let write_token = format!("write-{}", uuid_like());
        std::fs::write(secrets.path().join("read_token"), &read_token).unwrap();
        std::fs::write(secrets.path().join("write_token"), &write_token).unwrap();
        let port = free_port();
        let stack_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/stack.yml");
        let output = Command::new("docker")
            .args(["stack", "deploy", "-c"])
            .arg(&stack_file)
            .arg(&name)
            .env("SP_STACK", &name)
            .env("SP_SECRETS", secrets.path())
            .env("SP_PORT", port.to_string())
            .env("SP_PROM_PORT", free_port().to_string())
            .env("SWARMPILOT_TAG", TAG)
            .output()
            .expect("run docker stack deploy");
        let stack = Stack {
            api: format!("http://127.0.0.1:{port}"),
            name,
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

    /// Starts the load generator as a Swarm service on the stack's network.
    fn start_load(&self, pattern: &[&str]) {
        let name = self.service("loadgen");
        let network = self.service("swarmpilot");
        let stack_label = format!("com.docker.stack.namespace={}", self.name);
        let image = format!("swarmpilot-loadgen:{TAG}");
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
            "--work-ms",
            "1",
        ];
        args.extend_from_slice(pattern);
        docker(&args);
    }

    fn stop_load(&self) {
        docker(&["service", "rm", &self.service("loadgen")]);
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.read_token)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
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

/// Waits until the operator's status of the demo app satisfies `check`.
async fn wait_for_web(stack: &Stack, what: &str, limit: Duration, check: impl Fn(&Value) -> bool) {
    wait_until(stack, what, limit, || async {
        stack
            .status("web")
            .await
            .is_some_and(|status| check(&status))
    })
    .await;
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
async fn operator_in_the_swarm_scales_the_demo_app_and_keeps_overrides_across_restarts() {
    ensure_swarm();
    build_images();
    let stack = Stack::deploy();
    let web = stack.service("web");
    let timeline = Timeline::watch(web.clone());

    // The operator runs as a Swarm service, reads the policy from the stack's labels and the
    // demo app's request rate from the stack's Prometheus.
    wait_until(
        &stack,
        "the operator's API answering",
        Duration::from_secs(180),
        || async { stack.get("/readyz").await.is_some() },
    )
    .await;
    docker(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        &format!("io.swarmpilot.policy={TEST_POLICY}"),
        &web,
    ]);
    wait_for_web(
        &stack,
        "a decision on the test policy with the request rate read from Prometheus",
        Duration::from_secs(180),
        |status| {
            let interval_is_the_tests = status["policy"]["spec"]["interval"] == "3s";
            let rate_read = status["metrics"][0]["value"].is_number();
            interval_is_the_tests && rate_read && last_decision(status).is_some()
        },
    )
    .await;
    assert_eq!(
        timeline.current(),
        Some(1),
        "the demo app starts at 1 replica"
    );

    // A ramp to 40 requests per second scales the app up to about 4 replicas.
    let load_step = Instant::now();
    stack.start_load(&[
        "ramp",
        "--from",
        "5",
        "--to",
        &RAMP_TO.to_string(),
        "--over",
        "20s",
        "--hold",
        "10m",
    ]);
    wait_until(
        &stack,
        "a scale-up to 3 replicas or more",
        Duration::from_secs(240),
        || async { timeline.current().is_some_and(|r| r >= 3) },
    )
    .await;
    // Converged: no change for 30 s (several reconcile intervals and scrape periods).
    wait_until(
        &stack,
        "the replica count settling",
        Duration::from_secs(240),
        || async { timeline.last_change().elapsed() >= Duration::from_secs(30) },
    )
    .await;
    let converged = timeline.current().unwrap();
    let up = timeline.since(load_step);
    eprintln!(
        "e2e ramp: replicas {} (seconds after the load step); converged at {converged} replicas {:.0}s after the load step",
        timeline.render(load_step),
        up.last().map(|(s, _)| *s).unwrap_or_default()
    );
    assert!(
        (3..=6).contains(&converged),
        "40 rps at 10 per replica should settle near 4 replicas, got {converged}: {}",
        timeline.render(load_step)
    );
    let status = stack.status("web").await.expect("status of web");
    let rate = status["metrics"][0]["value"].as_f64().unwrap_or_default();
    assert!(
        rate > 20.0,
        "Prometheus should see the ramp's rate, saw {rate} rps"
    );

    // Quiet: the load stops; the count comes back to minReplicas after the 20 s window.
    let quiet = Instant::now();
    stack.stop_load();
    wait_until(
        &stack,
        "a scale-down to 1 replica",
        Duration::from_secs(240),
        || async { timeline.current() == Some(1) },
    )
    .await;
    let down_after = timeline.last_change().duration_since(quiet).as_secs_f64();
    eprintln!(
        "e2e quiet: replicas {} (seconds after the load stopped); back at 1 after {down_after:.0}s",
        timeline.render(quiet)
    );
    assert!(
        !timeline.since(quiet).is_empty(),
        "the count should have come down after the load stopped"
    );

    // An override pins 3 replicas; it holds through a forced restart of the operator service,
    // although with no load the policy alone would keep 1.
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
    wait_for_web(
        &stack,
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
}
