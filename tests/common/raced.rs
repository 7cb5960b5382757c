//! The real Swarm adapter, except that right before its first write someone else updates the
//! service with the docker CLI (adds the label `concurrent=yes`): that write then carries a stale
//! version, deterministically, and the test can check the other change survived.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use swarmpilot::swarm::{
    ContainerStats, DockerSwarm, EventStream, NodeInfo, ServiceInfo, Swarm, SwarmResult, TaskInfo,
};

use super::docker;

pub struct RacedSwarm {
    pub inner: DockerSwarm,
    writes: AtomicU32,
}

impl RacedSwarm {
    pub fn new(inner: DockerSwarm) -> Self {
        Self {
            inner,
            writes: AtomicU32::new(0),
        }
    }

    /// How many writes (label updates and scales) were attempted.
    pub fn writes(&self) -> u32 {
        self.writes.load(Ordering::SeqCst)
    }

    fn before_write(&self, id: &str) {
        if self.writes.fetch_add(1, Ordering::SeqCst) == 0 {
            docker(&[
                "service",
                "update",
                "--detach",
                "--quiet",
                "--label-add",
                "concurrent=yes",
                id,
            ]);
        }
    }
}

impl Swarm for RacedSwarm {
    async fn list_services(&self) -> SwarmResult<Vec<ServiceInfo>> {
        self.inner.list_services().await
    }
    async fn inspect_service(&self, name_or_id: &str) -> SwarmResult<ServiceInfo> {
        self.inner.inspect_service(name_or_id).await
    }
    async fn update_replicas(&self, id: &str, version: u64, replicas: u64) -> SwarmResult<()> {
        self.before_write(id);
        self.inner.update_replicas(id, version, replicas).await
    }
    async fn scale(
        &self,
        id: &str,
        version: u64,
        replicas: u64,
        set: &BTreeMap<String, String>,
    ) -> SwarmResult<()> {
        self.before_write(id);
        self.inner.scale(id, version, replicas, set).await
    }
    async fn update_labels(
        &self,
        id: &str,
        version: u64,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> SwarmResult<()> {
        self.before_write(id);
        self.inner.update_labels(id, version, set, remove).await
    }
    async fn list_tasks(&self, service_id: &str) -> SwarmResult<Vec<TaskInfo>> {
        self.inner.list_tasks(service_id).await
    }
    async fn container_stats(&self, container_id: &str) -> SwarmResult<ContainerStats> {
        self.inner.container_stats(container_id).await
    }
    async fn nodes(&self) -> SwarmResult<Vec<NodeInfo>> {
        self.inner.nodes().await
    }
    async fn ping(&self) -> SwarmResult<()> {
        self.inner.ping().await
    }
    fn events(&self) -> EventStream {
        self.inner.events()
    }
}
