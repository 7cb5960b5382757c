//! The Swarm lifecycle with the operator running: stack redeploys (with `swarmpilot stack
//! deploy`, and a plain `docker stack deploy` the operator undoes), and rolling updates and
//! rollbacks it never writes during.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use swarmpilot::decide::Reason;
use swarmpilot::policy::EventReason;
use swarmpilot::swarm::{DockerSwarm, Swarm, TaskState};

use crate::common::{docker, ensure_test_image, swarm, unique_name, TEST_IMAGE};
use crate::operator::{load_source, service_with_policy, wait_until, Operator, RUN_LABEL};
use crate::{policy, replicas_of, wait_for_replicas, wait_prometheus_sees};

const OVERRIDE: &str =
    r#"{"pauseScaleIn":true,"expiresAt":"2100-01-01T00:00:00Z","reason":"sale","by":"test"}"#;

/// A stack of two sleeping services: `web` declares its policy in the file, `api` gets one the
/// way `swarmpilot apply` writes it. `interval` is long, so what happens at once comes from the
/// service event, not the next interval.
struct Stack {
    name: String,
    file: tempfile::NamedTempFile,
}

impl Stack {
    fn deploy(run: &str) -> Stack {
        ensure_test_image();
        let name = unique_name("stk");
        let web_policy =
            policy(&format!("{name}_web"), "").replace("interval: 1s", "interval: 30s");
        let web_policy = web_policy.replace('\n', "\n          ");
        let compose = format!(
            r#"version: "3.8"
services:
  web:
    image: {TEST_IMAGE}
    command: ["sleep", "86400"]
    x-unknown: {{kept: yes}}
    deploy:
      endpoint_mode: dnsrr
      replicas: 2
      labels:
        {RUN_LABEL}: {run}
        io.swarmpilot.policy: |
          {web_policy}
  api:
    image: {TEST_IMAGE}
    command: ["sleep", "86400"]
    deploy:
      endpoint_mode: dnsrr
      labels:
        - "{RUN_LABEL}={run}"
"#
        );
        let file = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
        std::fs::write(file.path(), compose).unwrap();
        let stack = Stack { name, file };
        stack.docker_deploy();
        stack
    }

    fn service(&self, key: &str) -> String {
        format!("{}_{key}", self.name)
    }

    fn docker_deploy(&self) {
        let file = self.file.path().to_str().unwrap();
        docker(&["stack", "deploy", "--compose-file", file, &self.name]);
    }

    fn swarmpilot_deploy(&self) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
            .args(["stack", "deploy", "-c"])
            .arg(self.file.path())
            .arg(&self.name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "swarmpilot stack deploy failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["stack", "rm", &self.name])
            .output();
    }
}

fn operator_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| key.starts_with("io.swarmpilot.") && *key != "io.swarmpilot.state")
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

async fn running_task_ids(swarm: &DockerSwarm, id: &str) -> Vec<String> {
    let mut ids: Vec<String> = swarm
        .list_tasks(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.desired_running && t.state == TaskState::Running)
        .map(|t| t.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_keeps_what_the_operator_owns_and_a_plain_one_is_undone_at_once() {
    let swarm = Arc::new(swarm().await);
    // 40 against 10 per replica: 4 replicas for each service.
    let (_exporter, prometheus) = load_source(40.0).await;
    wait_prometheus_sees(&prometheus, 40.0).await;
    let run = unique_name("run");
    let stack = Stack::deploy(&run);
    let (web, api) = (stack.service("web"), stack.service("api"));
    let api_policy = format!(
        "io.swarmpilot.policy={}",
        policy(&api, "").replace("interval: 1s", "interval: 30s")
    );
    let pin = format!("io.swarmpilot.override={OVERRIDE}");
    docker(&[
        "service",
        "update",
        "--detach",
        "--quiet",
        "--label-add",
        &api_policy,
        "--label-add",
        &pin,
        &api,
    ]);
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    wait_for_replicas(&*swarm, &web, 2, 4).await;
    wait_for_replicas(&*swarm, &api, 1, 4).await;
    wait_until("the state labels", || {
        all_have_state_labels(&swarm, &[&web, &api])
    })
    .await;
    // A task still starting when the ids are taken would read as replaced once it runs.
    wait_until("4 running tasks of each service", || {
        [&web, &api].iter().all(|name| {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let id = swarm.inspect_service(name).await.unwrap().id;
                    running_task_ids(&swarm, &id).await.len() == 4
                })
            })
        })
    })
    .await;
    let before_web = swarm.inspect_service(&web).await.unwrap();
    let before_api = swarm.inspect_service(&api).await.unwrap();
    let tasks_web = running_task_ids(&swarm, &before_web.id).await;
    let tasks_api = running_task_ids(&swarm, &before_api.id).await;

    // `swarmpilot stack deploy` of the unchanged file: no task removed, nothing lost.
    let said = stack.swarmpilot_deploy();
    assert!(
        said.contains(&format!(
            "service/{web}: keeping 4 replicas (the file says 2)"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "service/{api}: keeping 4 replicas (the file says 1)"
        )),
        "{said}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (before, tasks) in [(&before_web, &tasks_web), (&before_api, &tasks_api)] {
        let after = swarm.inspect_service(&before.id).await.unwrap();
        assert_eq!(after.replicas, Some(4), "{}", after.name);
        assert_eq!(
            operator_labels(&after.labels),
            operator_labels(&before.labels),
            "{}",
            after.name
        );
        assert!(
            after.labels.contains_key("io.swarmpilot.state"),
            "{}",
            after.name
        );
        assert_eq!(
            &running_task_ids(&swarm, &before.id).await,
            tasks,
            "{}: a task was replaced",
            after.name
        );
    }
    let restored = |name: &str| {
        operator.status.get(name).is_some_and(|s| {
            s.decisions
                .iter()
                .any(|d| d.reason == Reason::RestoredAfterExternalUpdate)
        })
    };
    assert!(
        !restored(&web) && !restored(&api),
        "swarmpilot stack deploy looked like a reset"
    );

    // A plain `docker stack deploy`: the file's counts and labels, undone at once.
    let deployed = Instant::now();
    stack.docker_deploy();
    let returned = deployed.elapsed();
    let mut back = [None, None];
    while back.iter().any(Option::is_none) && deployed.elapsed() < Duration::from_secs(60) {
        for (slot, name) in back.iter_mut().zip([&web, &api]) {
            if slot.is_none() && replicas_of(&*swarm, name).await == 4 {
                let info = swarm.inspect_service(name).await.unwrap();
                if info.labels.contains_key("io.swarmpilot.override") == (name == &api) {
                    *slot = Some(deployed.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "plain docker stack deploy: the CLI returned after {returned:?}; 4 replicas and the labels back after {:?} (web) and {:?} (api)",
        back[0], back[1]
    );
    for (name, at) in [(&web, back[0]), (&api, back[1])] {
        let at = at.unwrap_or_else(|| panic!("{name} was not restored within a minute"));
        // The policies' interval is 30 s: a restore well within it came from the event.
        assert!(
            at < Duration::from_secs(15),
            "{name} restored only after {at:?}"
        );
        let status = operator.status.get(name).unwrap();
        let decision = status
            .decisions
            .iter()
            .find(|d| d.reason == Reason::RestoredAfterExternalUpdate)
            .unwrap_or_else(|| panic!("{name}: {:?}", status.decisions));
        assert!(
            decision
                .message
                .starts_with("restored after an external update"),
            "{decision:?}"
        );
        assert!(status
            .events
            .iter()
            .any(|e| e.reason == EventReason::RestoredAfterExternalUpdate));
    }
    let api_now = swarm.inspect_service(&api).await.unwrap();
    assert_eq!(
        operator_labels(&api_now.labels),
        operator_labels(&before_api.labels)
    );
    operator.stop().await;
}

/// Whether every named service carries the state label (the operator has recorded it).
fn all_have_state_labels(swarm: &DockerSwarm, names: &[&str]) -> bool {
    names.iter().all(|name| {
        let labels = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(swarm.inspect_service(name))
        });
        labels.is_ok_and(|info| info.labels.contains_key("io.swarmpilot.state"))
    })
}

/// The engine's events of one service, each as its attributes, read by `docker events` from
/// now on. Every write to the service is an event; Swarm's own rollout steps carry
/// `updatestate.new`, a write of the count carries `replicas.new`.
struct ServiceEvents {
    child: std::process::Child,
    seen: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServiceEvents {
    fn watch(name: &str) -> ServiceEvents {
        let filter = format!("service={name}");
        // From now, whenever the subscription is live: the engine replays what came before.
        let since = format!(
            "{:.3}",
            chrono::Utc::now().timestamp_millis() as f64 / 1000.0
        );
        let mut child = Command::new("docker")
            .args([
                "events",
                "--since",
                &since,
                "--filter",
                "type=service",
                "--filter",
                &filter,
            ])
            .args(["--format", "{{json .Actor.Attributes}}"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(attributes) = serde_json::from_str(&line) {
                    lines.lock().unwrap().push(attributes);
                }
            }
        });
        ServiceEvents {
            child,
            seen,
            reader: Some(reader),
        }
    }

    fn seen(&self) -> Vec<BTreeMap<String, String>> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a rollout step `until` has been seen, and checks that between the start of
    /// the rollout and that step there was no write but Swarm's own steps. Returns the steps.
    async fn rollout_without_writes(&self, until: &str) -> Vec<String> {
        for _ in 0..1800 {
            let events = self.seen();
            let state = |e: &BTreeMap<String, String>| e.get("updatestate.new").cloned();
            let Some(start) = events
                .iter()
                .position(|e| state(e).as_deref() == Some("updating"))
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut steps = Vec::new();
            for event in &events[start..] {
                match state(event) {
                    Some(step) if step == until => {
                        steps.push(step);
                        return steps;
                    }
                    Some(step) => steps.push(step),
                    None => panic!("a write during the rollout ({steps:?}): {event:?}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the rollout never reached {until}: {:?}", self.seen());
    }
}

impl Drop for ServiceEvents {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_during_a_rolling_update_or_a_rollback_and_scaling_resumes_after() {
    let swarm = Arc::new(swarm().await);
    let (exporter, prometheus) = load_source(20.0).await;
    let run = unique_name("run");
    let update = [
        "--update-parallelism",
        "1",
        "--update-delay",
        "3s",
        "--update-monitor",
        "2s",
        "--update-failure-action",
        "rollback",
        "--rollback-parallelism",
        "1",
        "--rollback-monitor",
        "1s",
    ];
    let service = service_with_policy("rollout", &run, |name| policy(name, ""));
    // The update settings change no task: no rollout follows.
    docker(
        &[
            &["service", "update", "--detach", "--quiet"][..],
            &update[..],
            &[&service.name],
        ]
        .concat(),
    );
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    wait_for_replicas(&*swarm, &service.id, 1, 2).await;

    // A rolling update, one task at a time with a delay, and demand rising during it.
    let events = ServiceEvents::watch(&service.name);
    docker(&[
        "service",
        "update",
        "--detach",
        "--quiet",
        "--env-add",
        "SP_ROLL=1",
        &service.name,
    ]);
    exporter.text("sp_load 40\n");
    let seen = events.rollout_without_writes("completed").await;
    println!("rolling update: {seen:?}");
    let status = operator.status.get(&service.name).unwrap();
    let held = status
        .decisions
        .iter()
        .filter(|d| d.reason == Reason::RolloutInProgress)
        .count();
    assert!(held > 0, "{:?}", status.decisions);
    wait_for_replicas(&*swarm, &service.id, 2, 4).await;
    drop(events);

    // An update to a task that exits at once: Swarm rolls it back, the operator never writes
    // meanwhile, and scales once the service is back on its old command.
    let events = ServiceEvents::watch(&service.name);
    docker(&[
        "service",
        "update",
        "--detach",
        "--quiet",
        "--args",
        "sh -c 'exit 3'",
        &service.name,
    ]);
    exporter.text("sp_load 60\n");
    let seen = events.rollout_without_writes("rollback_completed").await;
    println!("failing update: {seen:?}");
    let args = docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Args}}",
        &service.name,
    ]);
    assert_eq!(
        args, r#"["sleep","86400"]"#,
        "rolled back to the old command"
    );
    wait_for_replicas(&*swarm, &service.id, 4, 6).await;
    operator.stop().await;
}
