//! The operator through a real restart of the Docker daemon: the loop keeps running while the
//! engine is gone and resumes scaling once it is back. Alone in its test binary, because it takes
//! the engine away from everything else for a moment.

mod common;
#[path = "common/exporter.rs"]
mod exporter;
#[path = "common/operator.rs"]
mod operator;
#[path = "common/prometheus.rs"]
mod prometheus_server;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{ensure_swarm, swarm, unique_name};
use operator::{load_source, service_with_policy, wait_until, Operator};
use swarmpilot::swarm::Swarm;

fn engine_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn dockerd_alive() -> bool {
    Command::new("pgrep")
        .args(["-x", "dockerd"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_dockerd_mid_run_does_not_stop_the_operator() {
    let swarm = Arc::new(swarm().await);
    let (exporter, prometheus) = load_source(10.0).await;
    let run = unique_name("run");
    let policy = "{minReplicas: 1, maxReplicas: 5, interval: 1s, metrics: [{name: load, prometheus: {query: 'sp_load{job=\"test\"}'}, target: {averageValue: 10}}]}";
    let service = service_with_policy("dockerd-restart", &run, |_| policy.to_owned());
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    let status = Arc::clone(&operator.status);
    wait_until("the first decision", || {
        status
            .get(&service.name)
            .is_some_and(|s| !s.decisions.is_empty())
    })
    .await;

    assert!(
        Command::new("pkill")
            .args(["-x", "dockerd"])
            .status()
            .unwrap()
            .success(),
        "no dockerd to stop"
    );
    // dockerd stops its containers before it exits: give it minutes on a busy machine.
    for _ in 0..1800 {
        if !engine_answers() && !dockerd_alive() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !dockerd_alive(),
        "dockerd did not exit within 3 minutes of SIGTERM"
    );
    exporter.text("sp_load 40\n");
    wait_until("a reconcile failing while the engine is gone", || {
        status
            .get(&service.name)
            .is_some_and(|s| s.last_error.is_some())
    })
    .await;
    assert!(operator.is_running());

    ensure_swarm_restarted();
    let mut replicas = None;
    for _ in 0..1200 {
        replicas = swarm
            .inspect_service(&service.id)
            .await
            .ok()
            .and_then(|s| s.replicas);
        if replicas == Some(4) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        replicas,
        Some(4),
        "the operator resumed and scaled after the restart"
    );
    assert!(operator.is_running());
    operator.stop().await;
}

/// Starts dockerd again with the project's own script, which waits until the engine answers.
fn ensure_swarm_restarted() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local-swarm.sh");
    let status = Command::new("bash").arg(script).status().unwrap();
    assert!(
        status.success(),
        "deploy/local-swarm.sh could not restart dockerd"
    );
    ensure_swarm();
}
