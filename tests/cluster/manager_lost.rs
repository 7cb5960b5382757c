//! The operator's manager dies: the operator runs as one task of a Swarm service on the
//! managers (as in `deploy/stack.yml`: the node's engine socket, the overlay, a lease on its own
//! service), the dockerd of its node is killed by its PID, Swarm starts the task again on
//! another manager, and the new operator continues from the labels: it holds a scale-down that
//! the stabilization window (begun before the kill) still forbids, keeps a pinned override, and
//! scales down once the window has passed. The test prints the time from the kill to each step
//! of the takeover.
//!
//! The operator is this build's binary in a FROM-scratch image (the agent's image); the first
//! manager, which the test talks through, is left out of its placement so the kill never takes
//! the test's own engine. The killed node is started again at the end.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use swarmpilot::decide::Reason;
use swarmpilot::reconcile::ServiceStatus;
use swarmpilot::swarm::{DockerSwarm, Swarm, TaskState};

use crate::agent::agent_image;
use crate::cluster::{Cluster, Node};
use crate::common::{
    get_json, unique_name, Engine, TestSecret, TestService, TEST_IMAGE, TEST_NETWORK,
};
use crate::operator::RUN_LABEL;
use crate::replicas_reach;

/// The scale-down window of the loaded service: longer than a takeover (Swarm's notice of the
/// lost node, the restart delay, the lease's TTL), so the new operator meets it still open.
const WINDOW: Duration = Duration::from_secs(130);
/// The port the operator's API is published on (host mode) on its node's address.
const API_PORT: u16 = 18080;
const READ_TOKEN: &str = "sp-test-read-token-0123456789abcdef";
/// A pin on the second service, for ever.
const PIN: &str = r#"{"replicas":3,"expiresAt":"2100-01-01T00:00:00Z","reason":"kept across the kill","by":"test"}"#;

/// A directory of the host holding the `metrics` file every task of the loaded services serves
/// (the nodes share the host's files): the test sets the load by writing it.
struct LoadFile {
    dir: PathBuf,
}

impl LoadFile {
    fn new() -> LoadFile {
        let dir = std::env::temp_dir().join(unique_name("sp-load"));
        std::fs::create_dir_all(&dir).expect("the load directory");
        LoadFile { dir }
    }

    fn set(&self, load: u32) {
        // Written whole, then renamed: a task never serves half a file.
        let staged = self.dir.join("metrics.new");
        std::fs::write(&staged, format!("sp_load {load}\n")).expect("write the load");
        std::fs::rename(&staged, self.dir.join("metrics")).expect("publish the load");
    }
}

impl Drop for LoadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A service on the workers serving the load file at :8080/metrics, scraped by a policy (10 a
/// task, at most 4) with `window` to scale down; `extra` labels it further.
fn loaded_service(
    engine: &Engine,
    prefix: &str,
    run: &str,
    load: &LoadFile,
    extra: &[&str],
) -> TestService {
    let policy = format!(
        "io.swarmpilot.policy={{minReplicas: 1, maxReplicas: 4, interval: 1s, \
         metrics: [{{name: load, scrape: {{port: 8080, metric: sp_load}}, target: {{averageValue: 10}}}}], \
         behavior: {{scaleDown: {{stabilizationWindow: {}s}}}}}}",
        WINDOW.as_secs()
    );
    let run_label = format!("{RUN_LABEL}={run}");
    let mount = format!("type=bind,source={},target=/w,readonly", load.dir.display());
    let mut options = vec![
        "--constraint",
        "node.role==worker",
        "--network",
        TEST_NETWORK,
        "--endpoint-mode",
        "dnsrr",
        "--mount",
        &mount,
        "--label",
        &run_label,
        "--label",
        &policy,
    ];
    options.extend_from_slice(extra);
    TestService::create(
        engine,
        prefix,
        &["--replicas", "1"],
        &options,
        &[TEST_IMAGE, "httpd", "-f", "-p", "8080", "-h", "/w"],
    )
}

/// The operator as one task on the managers but the first, electing itself through the lease on
/// its own service, reading the load over the overlay, its status API behind a read token.
struct OperatorService {
    /// Declared before its secret: removed first.
    service: TestService,
    _read_token: TestSecret,
}

impl OperatorService {
    fn deploy(cluster: &Cluster, run: &str) -> OperatorService {
        let engine = cluster.manager().engine();
        let image = agent_image();
        cluster.load_image(image);
        let read_token = TestSecret::create(&engine, "read-token", READ_TOKEN.as_bytes());
        // Each node's own engine socket (the nodes share the host's files).
        let first = cluster.manager();
        let socket = first
            .socket()
            .display()
            .to_string()
            .replace(&first.name, "{{.Node.Hostname}}");
        let not_first = format!("node.hostname!={}", first.name);
        let secret_flag = format!("source={},target=sp_read", read_token.name);
        let mount = format!("type=bind,source={socket},target=/var/run/docker.sock");
        let publish = format!("mode=host,target=8080,published={API_PORT}");
        let selector = format!("{RUN_LABEL}={run}");
        let service = TestService::create(
            &engine,
            "operator",
            &["--replicas", "1"],
            &[
                "--constraint",
                "node.role==manager",
                "--constraint",
                &not_first,
                "--mount",
                &mount,
                "--secret",
                &secret_flag,
                "--network",
                TEST_NETWORK,
                "--publish",
                &publish,
                "--restart-delay",
                "2s",
                "--env",
                "SWARMPILOT_LEASE_SERVICE={{.Service.Name}}",
            ],
            &[
                image,
                "run",
                "--listen",
                "0.0.0.0:8080",
                "--read-token-file",
                "/run/secrets/sp_read",
                "--selector",
                &selector,
                "--log-format",
                "json",
            ],
        );
        OperatorService {
            service,
            _read_token: read_token,
        }
    }

    /// The node its running task is on, once one runs there (up to three minutes).
    async fn running_on<'a>(
        &self,
        cluster: &'a Cluster,
        swarm: &DockerSwarm,
        besides: Option<&str>,
    ) -> &'a Node {
        for _ in 0..900 {
            let tasks = swarm.list_tasks(&self.service.id).await.unwrap_or_default();
            let node = tasks
                .iter()
                .filter(|t| t.state == TaskState::Running && t.desired_running)
                .filter_map(|t| t.node_id.as_deref())
                .filter(|id| Some(*id) != besides)
                .find_map(|id| cluster.node_of(id));
            if let Some(node) = node {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no task of the operator runs after three minutes");
    }
}

/// The operator's status of `service`, through its API on `node`; `None` while it does not answer.
async fn status_on(node: &Node, service: &TestService) -> Option<ServiceStatus> {
    let url = format!(
        "http://{}:{API_PORT}/v1/services/{}",
        node.address, service.name
    );
    get_json(&url, READ_TOKEN, Duration::from_secs(2)).await
}

/// Polls the status of `service` on `node` every 200 ms until `done` holds (up to four
/// minutes); returns it and when it first held.
async fn status_until(
    node: &Node,
    service: &TestService,
    what: &str,
    done: impl Fn(&ServiceStatus) -> bool,
) -> (ServiceStatus, DateTime<Utc>) {
    for _ in 0..1200 {
        if let Some(status) = status_on(node, service).await {
            if done(&status) {
                return (status, Utc::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "timed out waiting for {what} in the operator's status on {}",
        node.name
    );
}

/// A decision made while holding the lease (a standby's says so in its detail).
fn acting(decision: &swarmpilot::reconcile::DecisionRecord) -> bool {
    !decision.detail.iter().any(|d| d.starts_with("standby"))
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_manager_killed_its_task_moves_and_the_new_operator_keeps_the_window_and_the_pin(
) {
    // Alone, though it kills a spare manager: that manager may be the raft leader, and the
    // election stalls every write in the swarm, the first manager's too (a lease renewal of
    // the two-operator test held up past its TTL hands the lease over).
    let (cluster, _alone) = Cluster::exclusive_with_first_manager().await;
    assert!(
        cluster.spare_managers().len() >= 2,
        "the test needs three managers: run `deploy/local-cluster.sh up --managers 3 --workers 2`"
    );
    let _open = cluster.open_spare_managers();
    let engine = cluster.manager().engine();
    let swarm = cluster.swarm().await;
    let run = unique_name("run");
    let load = LoadFile::new();
    load.set(20);
    let pin = format!("io.swarmpilot.override={PIN}");
    let web = loaded_service(&engine, "killed-web", &run, &load, &[]);
    let pinned = loaded_service(&engine, "killed-pinned", &run, &load, &["--label", &pin]);

    let operator = OperatorService::deploy(cluster, &run);
    let first_node = operator.running_on(cluster, &swarm, None).await;
    // 20 a task against 10: the count doubles up to 4; the pin holds the other at 3.
    replicas_reach(&swarm, &web, 4).await;
    replicas_reach(&swarm, &pinned, 3).await;

    // The load drops: the window holds the count at 4 for WINDOW from the last high
    // recommendation, which the operator makes until it reads the drop.
    load.set(1);
    let dropped_at = Utc::now();
    status_until(first_node, &web, "a decision on the low load", |s| {
        s.decisions
            .iter()
            .any(|d| d.at > dropped_at + chrono::Duration::seconds(1) && d.desired == 4)
    })
    .await;

    let (killed_name, killed_id) = (first_node.name.clone(), first_node.swarm_id());
    let killed = tokio::task::block_in_place(|| cluster.kill(first_node));
    let killed_at = Utc::now();
    let second_node = operator.running_on(cluster, &swarm, Some(&killed_id)).await;
    let rescheduled_at = Utc::now();
    let (_, answered_at) = status_until(second_node, &web, "any status", |_| true).await;
    let (status, acting_at) =
        status_until(second_node, &web, "a decision holding the lease", |s| {
            s.decisions.iter().any(acting)
        })
        .await;
    let first_acting = status
        .decisions
        .iter()
        .find(|d| acting(d))
        .expect("an acting decision")
        .clone();
    println!(
        "manager killed: {killed_name}'s dockerd (SIGKILL); operator task running on {} after {:.1} s; \
         its API answering after {:.1} s; its first decision holding the lease at {:.1} s \
         (seen at {:.1} s), desired {} ({:?})",
        second_node.name,
        seconds(killed_at, rescheduled_at),
        seconds(killed_at, answered_at),
        seconds(killed_at, first_acting.at),
        seconds(killed_at, acting_at),
        first_acting.desired,
        first_acting.reason
    );
    // The window that began before the kill is still open: the new operator holds the count.
    assert!(
        first_acting.at < dropped_at + chrono::Duration::from_std(WINDOW).unwrap(),
        "the takeover took longer than the window ({WINDOW:?}): the test cannot see it honoured; raise WINDOW"
    );
    assert_eq!(
        (first_acting.current, first_acting.desired),
        (4, 4),
        "no scale-down inside the window: {first_acting:?}"
    );

    // The pin is intact, and the new operator keeps it.
    let (pinned_status, _) = status_until(
        second_node,
        &pinned,
        "an acting decision on the pinned service",
        |s| s.decisions.iter().any(acting),
    )
    .await;
    let pinned_decision = pinned_status
        .decisions
        .iter()
        .find(|d| acting(d))
        .expect("an acting decision");
    assert_eq!(
        (pinned_decision.desired, pinned_decision.reason),
        (3, Reason::Override),
        "the pin holds after the takeover: {pinned_decision:?}"
    );
    let labels = swarm.inspect_service(&pinned.id).await.unwrap().labels;
    assert_eq!(
        labels.get("io.swarmpilot.override").map(String::as_str),
        Some(PIN),
        "the override label is untouched"
    );

    // Once the window has passed, the new operator scales down: its first write.
    let (status, _) = status_until(second_node, &web, "the scale-down", |s| {
        s.decisions.iter().any(|d| d.applied && d.desired < 4)
    })
    .await;
    let scaled = status
        .decisions
        .iter()
        .find(|d| d.applied && d.desired < 4)
        .expect("the scale-down")
        .clone();
    println!(
        "the new operator scaled down {:.1} s after the kill, {:.1} s after the load dropped (window {} s)",
        seconds(killed_at, scaled.at),
        seconds(dropped_at, scaled.at),
        WINDOW.as_secs()
    );
    assert!(
        scaled.at >= dropped_at + chrono::Duration::from_std(WINDOW).unwrap(),
        "scaled down inside the window: {scaled:?}"
    );
    replicas_reach(&swarm, &web, 1).await;
    assert_eq!(
        swarm.inspect_service(&pinned.id).await.unwrap().replicas,
        Some(3)
    );

    // The killed node comes back, for the tests after this one.
    tokio::task::block_in_place(|| killed.start());
    drop(operator);
}
