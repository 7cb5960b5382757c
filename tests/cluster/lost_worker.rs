//! A worker lost under a running operator: its dockerd stopped by PID. The lost task is a
//! missing task by HPA's rules (never a reason to scale down), every other service keeps being
//! reconciled, and once Swarm runs the task again the count is where it was.
//!
//! Swarm marks the lost task `shutdown` at once and holds its replacement at `ready` for the
//! restart delay: until the replacement runs, the lost task still counts (see
//! `reconcile::tasks`), or the two tasks left would decide alone and scale the service down.

use std::sync::Arc;
use std::time::Duration;

use swarmpilot::metrics::PrometheusClientConfig;
use swarmpilot::reconcile::StatusStore;
use swarmpilot::swarm::{DockerSwarm, Swarm, TaskState};

use crate::cluster::{Cluster, Role};
use crate::common::{docker_on, running_tasks, unique_name, TestService, TEST_NETWORK};
use crate::operator::{wait_until, Operator};
use crate::replicas_reach;
use crate::scrape::load_service;

/// How many decisions the operator has recorded for `service`.
fn decisions(status: &StatusStore, service: &TestService) -> usize {
    status.get(&service.name).map_or(0, |s| s.decisions.len())
}

/// Every decision kept for the service (the last 64) held it at 3: no scale-down from a lost task.
fn assert_held(status: &StatusStore, service: &TestService) {
    for decision in &status.get(&service.name).expect("a status").decisions {
        assert_eq!(
            (decision.current, decision.desired),
            (3, 3),
            "no scale-down from a lost task: {decision:?}"
        );
    }
}

/// How many of the service's tasks run (outside node `besides`) once 3 do, or after three
/// minutes: a node that rejoins, or a replacement after the loss is noticed and the restart
/// delay, takes longer than the harness's one-minute wait for a fresh service on a busy machine.
async fn running_tasks_besides(
    swarm: &DockerSwarm,
    service: &TestService,
    besides: Option<&str>,
) -> usize {
    let mut running = 0;
    for _ in 0..900 {
        let tasks = swarm.list_tasks(&service.id).await.unwrap_or_default();
        running = tasks
            .iter()
            .filter(|t| t.state == TaskState::Running && t.desired_running)
            .filter(|t| besides.is_none() || t.node_id.as_deref() != besides)
            .count();
        if running == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_worker_is_missing_data_not_a_scale_down_and_the_rest_keeps_reconciling() {
    let (cluster, _alone) = Cluster::exclusive().await;
    let engine = cluster.manager().engine();
    let run = unique_name("run");
    // 8 per task against 10: three tasks stay at 3 (ceil(2.4)); read from two tasks only, the
    // average would ask for 2. HPA counts a missing task at the target on the way down: 3.
    let spread = load_service(&engine, "lost-spread", &run, 3, (8, 8), 6, &[]);
    let other = load_service(
        &engine,
        "lost-other",
        &run,
        1,
        (8, 8),
        4,
        &["--constraint", "node.role==manager"],
    );
    tokio::task::block_in_place(|| {
        cluster.on_overlay(TEST_NETWORK, || async {
            let swarm = Arc::new(cluster.swarm().await);
            let tasks = running_tasks(&swarm, &spread.id, 3).await;
            let other_task = running_tasks(&swarm, &other.id, 1).await.remove(0);
            let operator =
                Operator::start_with(Arc::clone(&swarm), PrometheusClientConfig::default(), &run);
            let status = Arc::clone(&operator.status);
            wait_until("steady decisions for both services", || {
                decisions(&status, &spread) >= 3 && decisions(&status, &other) >= 3
            })
            .await;

            // Stop the dockerd of a worker that runs one of the spread service's tasks.
            let mut lost = None;
            for task in &tasks {
                let node = task.node_id.as_deref().and_then(|id| cluster.node_of(id));
                if let Some(node) = node.filter(|n| n.role == Role::Worker) {
                    lost = Some(node);
                    break;
                }
            }
            let lost = lost.expect("a task of the spread service on a worker");
            let (lost_name, lost_id) = (lost.name.clone(), lost.swarm_id());
            let stopped = tokio::task::spawn_blocking(move || cluster.stop(lost))
                .await
                .unwrap();
            let stopped_at = chrono::Utc::now();

            // The other service still follows its load: raise it in its one task.
            let container = other_task.container_id.clone().expect("a container");
            docker_on(
                &engine,
                &[
                    "exec",
                    &container,
                    "busybox",
                    "sh",
                    "-c",
                    "echo 'sp_load 40' > /w/metrics",
                ],
            );
            replicas_reach(&*swarm, &other, 4).await;

            // Swarm notices the loss (the node goes down once its heartbeats stop), marks the
            // lost task for shutdown and, after the restart delay, runs a replacement on another
            // node. All the while the spread service is decided on with a task missing.
            let running = running_tasks_besides(&swarm, &spread, Some(&lost_id)).await;
            // A scale-down from the lost task would show first in the decisions.
            assert_held(&status, &spread);
            assert_eq!(running, 3, "Swarm runs the lost task again on another node");
            let replaced_at = chrono::Utc::now();
            println!(
                "Swarm ran the lost task on another node {} s after {lost_name} stopped",
                (replaced_at - stopped_at).num_seconds()
            );
            wait_until("decisions once the replacement runs", || {
                status
                    .get(&spread.name)
                    .is_some_and(|s| s.decisions.iter().filter(|d| d.at > replaced_at).count() >= 3)
            })
            .await;
            let during = status.get(&spread.name).map_or(0, |s| {
                s.decisions
                    .iter()
                    .filter(|d| d.at > stopped_at && d.at < replaced_at)
                    .count()
            });
            println!("{during} decisions while the task was lost and not yet replaced");
            assert_held(&status, &spread);

            // Back, the node's tasks run again (Swarm restarts or replaces them) and the
            // count has stayed where it was.
            tokio::task::spawn_blocking(move || stopped.start())
                .await
                .unwrap();
            let running = running_tasks_besides(&swarm, &spread, None).await;
            assert_eq!(running, 3, "the spread service runs its 3 tasks again");
            let back_at = chrono::Utc::now();
            wait_until("a decision once every task runs again", || {
                status
                    .get(&spread.name)
                    .is_some_and(|s| s.decisions.back().is_some_and(|d| d.at > back_at))
            })
            .await;
            assert_held(&status, &spread);
            replicas_reach(&*swarm, &spread, 3).await;
            operator.stop().await;
        })
    });
}
