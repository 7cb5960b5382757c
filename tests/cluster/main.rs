//! The tests that need a multi-node Swarm, in one binary, on the local cluster of
//! `deploy/local-cluster.sh` (a manager and two workers, each its own dockerd; the harness
//! brings it up when it is not). Tests that stop a node take the cluster exclusively.

#[path = "../common/agent.rs"]
mod agent;
#[path = "../common/cluster.rs"]
mod cluster;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/exporter.rs"]
mod exporter;
#[path = "../common/operator.rs"]
mod operator;
#[path = "../common/prometheus.rs"]
mod prometheus_server;

mod agents;
mod engine_restart;
mod pending;
mod scrape;

use std::time::Duration;

use common::TestService;
use swarmpilot::swarm::Swarm;

/// Polls the service's replica count for up to two minutes until it is `expected`.
async fn replicas_reach<S: Swarm>(swarm: &S, service: &TestService, expected: u64) {
    let mut replicas = None;
    for _ in 0..1200 {
        replicas = swarm
            .inspect_service(&service.id)
            .await
            .ok()
            .and_then(|s| s.replicas);
        if replicas == Some(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} has {replicas:?} replicas, not {expected}, after two minutes",
        service.name
    );
}
