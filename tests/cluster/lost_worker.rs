//! A worker lost under a running operator: its dockerd stopped by PID. The lost task is a
//! missing task by HPA's rules (never a reason to scale down), every other service keeps being
//! reconciled, and once Swarm runs the task again the count is where it was.

use std::sync::Arc;
use std::time::Duration;

use swarmpilot::metrics::PrometheusClientConfig;
use swarmpilot::reconcile::StatusStore;
use swarmpilot::swarm::{Swarm, TaskState};

use crate::cluster::{Cluster, Role};
use crate::common::{docker_on, running_tasks, unique_name, TestService, TEST_NETWORK};
use crate::operator::{wait_until, Operator};
use crate::replicas_reach;
use crate::scrape::load_service;

/// How many decisions the operator has recorded for `service`.
fn decisions(status: &StatusStore, service: &TestService) -> usize {
    status.get(&service.name).map_or(0, |s| s.decisions.len())
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

            // Meanwhile the spread service is decided on with one task missing, never scaled
            // down.
            wait_until("decisions while the worker is gone", || {
                status
                    .get(&spread.name)
                    .is_some_and(|s| s.decisions.iter().filter(|d| d.at > stopped_at).count() >= 5)
            })
            .await;

            // Back, the node's tasks run again (Swarm restarts or replaces them) and the
            // count has stayed where it was.
            tokio::task::spawn_blocking(move || stopped.start())
                .await
                .unwrap();
            // A restarted node rejoins and Swarm settles its tasks; on a busy machine this takes
            // longer than the harness's one-minute wait for a fresh service.
            let mut running = 0;
            for _ in 0..900 {
                let tasks = swarm.list_tasks(&spread.id).await.unwrap_or_default();
                running = tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Running && t.desired_running)
                    .count();
                if running == 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(running, 3, "the spread service runs its 3 tasks again");
            let back_at = chrono::Utc::now();
            wait_until("a decision once every task runs again", || {
                status
                    .get(&spread.name)
                    .is_some_and(|s| s.decisions.back().is_some_and(|d| d.at > back_at))
            })
            .await;
            let after = status.get(&spread.name).unwrap();
            for decision in &after.decisions {
                assert_eq!(
                    (decision.current, decision.desired),
                    (3, 3),
                    "no scale-down from a lost task: {decision:?}"
                );
            }
            replicas_reach(&*swarm, &spread, 3).await;
            operator.stop().await;
        })
    });
}
