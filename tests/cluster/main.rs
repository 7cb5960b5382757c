//! The tests that need a multi-node Swarm, in one binary, on the local cluster of
//! `deploy/local-cluster.sh` (three managers and two workers, each its own dockerd; the
//! harness brings it up when it is not, and drains the two spare managers, so tasks are placed
//! as on one manager and two workers unless a test opens them). Tests that stop a node take the
//! cluster exclusively, but for those that use only the first manager.

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
mod failover;
mod lost_worker;
mod manager_lost;
mod pending;
mod scrape;

use common::replicas_reach;
