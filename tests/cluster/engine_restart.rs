//! The operator through a real restart of its manager's Docker daemon: the loop keeps running
//! while the engine is gone and resumes scaling once it is back. The manager's dockerd is
//! stopped by the PID in its own pidfile, so no other engine on the machine is touched.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::common::unique_name;
use crate::operator::{load_source, service_with_policy_on, Operator};
use crate::replicas_reach;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_managers_dockerd_mid_run_does_not_stop_the_operator() {
    let (cluster, _alone) = Cluster::exclusive_with_first_manager().await;
    let manager = cluster.manager();
    let swarm = Arc::new(manager.swarm().await);
    let (exporter, prometheus) = load_source(10.0).await;
    let run = unique_name("run");
    let policy = "{minReplicas: 1, maxReplicas: 5, interval: 1s, metrics: [{name: load, prometheus: {query: 'sp_load{job=\"test\"}'}, target: {averageValue: 10}}]}";
    let service = service_with_policy_on(&manager.engine(), "dockerd-restart", &run, &[], |_| {
        policy.to_owned()
    });
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    operator.first_decision(&service).await;

    // Blocks this worker until dockerd has exited; the loop runs on the other one.
    let stopped = tokio::task::block_in_place(|| cluster.stop(manager));
    exporter.text("sp_load 40\n");
    operator.failing(&service).await;
    assert!(operator.is_running());

    tokio::task::block_in_place(|| stopped.start());
    // The operator resumed and scaled after the restart.
    replicas_reach(&*swarm, &service, 4).await;
    assert!(operator.is_running());
    operator.stop().await;
}
