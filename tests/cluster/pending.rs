//! Tasks no node can take: a placement constraint no node of the cluster meets. The operator
//! reports "2 of 2 tasks pending" with Swarm's reason and does not raise the count while they
//! are pending; once the constraint goes, the tasks run and the count follows the load. `get`
//! and `describe` say the same from the Swarm.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use swarmpilot::decide::{ConditionReason, ConditionType, Reason};
use swarmpilot::swarm::Swarm;

use crate::cluster::Cluster;
use crate::common::{docker_on, unique_name, TestService, TEST_IMAGE};
use crate::operator::{load_source, wait_until, Operator, RUN_LABEL};
use crate::replicas_reach;

const NOWHERE: &str = "node.labels.sp-test-none==1";
/// Swarm's reason; it goes on to count the nodes, which another test may have stopped.
const NO_SUITABLE_NODE: &str = "no suitable node (scheduling constraints not satisfied on";

/// `swarmpilot ARGS` against the cluster's manager; its stdout.
fn swarmpilot(cluster: &Cluster, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(args)
        .env("DOCKER_HOST", cluster.manager().docker_host())
        .output()
        .expect("run swarmpilot");
    assert!(
        output.status.success(),
        "swarmpilot {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_no_node_can_take_are_reported_and_hold_the_count() {
    let (cluster, _shared) = Cluster::shared().await;
    let engine = cluster.manager().engine();
    let swarm = Arc::new(cluster.swarm().await);
    // A load of 40 against 10 per replica: the policy asks for 4.
    let (_exporter, prometheus) = load_source(40.0).await;
    let run = unique_name("run");
    let run_label = format!("{RUN_LABEL}={run}");
    let policy = "io.swarmpilot.policy={minReplicas: 1, maxReplicas: 6, interval: 1s, metrics: [{name: load, prometheus: {query: 'sp_load{job=\"test\"}'}, target: {averageValue: 10}}]}";
    let service = TestService::create(
        &engine,
        "pending",
        &["--replicas", "2"],
        &[
            "--constraint",
            NOWHERE,
            "--label",
            &run_label,
            "--label",
            policy,
        ],
        &[TEST_IMAGE, "sleep", "86400"],
    );
    // Swarm's scheduler gives its reason a moment after the tasks are made; before that they
    // are only waiting their turn, and the operator may scale as usual.
    for _ in 0..600 {
        let tasks = swarm.list_tasks(&service.id).await.unwrap();
        if tasks
            .iter()
            .filter(|t| t.unplaced_reason().is_some())
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    let status = Arc::clone(&operator.status);
    wait_until("decisions held by the pending tasks", || {
        status.get(&service.name).is_some_and(|s| {
            s.decisions
                .iter()
                .filter(|d| d.reason == Reason::TasksPending)
                .count()
                >= 3
        })
    })
    .await;
    let held = status.get(&service.name).unwrap();
    let pending = held
        .pending_tasks
        .clone()
        .expect("pending tasks in the status");
    assert!(
        pending
            .to_string()
            .starts_with(&format!("2 of 2 tasks pending: {NO_SUITABLE_NODE}")),
        "{pending}"
    );
    for decision in &held.decisions {
        assert_eq!((decision.current, decision.desired), (2, 2), "{decision:?}");
    }
    let latest = held.decisions.back().unwrap();
    assert!(
        latest.message.contains("2 of 2 tasks pending"),
        "{latest:?}"
    );
    let limited = held
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::ScalingLimited)
        .expect("a ScalingLimited condition");
    assert_eq!(limited.reason, ConditionReason::TasksPending, "{limited:?}");

    // The status API serves the same field, and the CLI reads the same from the Swarm.
    let json = serde_json::to_value(&held).unwrap();
    assert_eq!(json["pendingTasks"]["pending"], 2, "{json}");
    let described = swarmpilot(cluster, &["describe", &service.name]);
    assert!(
        described.contains(&format!(
            "Pending:   2 of 2 tasks pending: {NO_SUITABLE_NODE}"
        )),
        "{described}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&swarmpilot(cluster, &["get", "-o", "json"])).unwrap();
    let row = listed
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["service"] == service.name.as_str()))
        .unwrap_or_else(|| panic!("{} in {listed}", service.name));
    let reason = row["pendingTasks"]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with(NO_SUITABLE_NODE), "{row}");

    // Once a node can take them, the count follows the load again.
    docker_on(
        &engine,
        &[
            "service",
            "update",
            "--detach",
            "--quiet",
            "--constraint-rm",
            NOWHERE,
            &service.id,
        ],
    );
    // Scaled once the tasks could be placed.
    replicas_reach(&*swarm, &service, 4).await;
    wait_until("no pending tasks in the status", || {
        status
            .get(&service.name)
            .is_some_and(|s| s.pending_tasks.is_none())
    })
    .await;
    operator.stop().await;
}
