//! The operator's reconcile loop run in-process by a test, watching only the services labelled
//! with the test's own run label, so tests can share the Swarm with anything else.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use swarmpilot::metrics::{Observer, PrometheusClientConfig, ScrapeConfig};
use swarmpilot::reconcile::{
    controller, ControllerConfig, PolicyReconciler, ReconcileOptions, StatusStore, Waker,
};
use swarmpilot::swarm::Swarm;
use tokio_util::sync::CancellationToken;

/// The label whose value selects a test's services.
pub const RUN_LABEL: &str = "sp.test.run";

pub struct Operator {
    pub status: Arc<StatusStore>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Operator {
    /// Starts the loop over the services labelled `RUN_LABEL=run`, reading Prometheus at
    /// `prometheus_url`, retrying a lost engine within two seconds.
    pub fn start<S: Swarm>(swarm: Arc<S>, prometheus_url: &str, run: &str) -> Operator {
        let status = Arc::new(StatusStore::default());
        let prometheus = PrometheusClientConfig {
            default_url: Some(prometheus_url.to_owned()),
            ..Default::default()
        };
        let observer =
            Observer::new(Arc::clone(&swarm), prometheus, ScrapeConfig::default()).unwrap();
        let options = ReconcileOptions {
            selector: BTreeMap::from([(RUN_LABEL.to_owned(), run.to_owned())]),
            max_backoff: Duration::from_secs(2),
            ..Default::default()
        };
        let reconciler = Arc::new(PolicyReconciler::new(
            Arc::clone(&swarm),
            observer,
            Arc::clone(&status),
            options,
        ));
        let config = ControllerConfig {
            resync: Duration::from_secs(2),
            max_backoff: Duration::from_secs(2),
            ..Default::default()
        };
        let shutdown = CancellationToken::new();
        let (_waker, wakes) = Waker::new();
        let handle = tokio::spawn(controller::run(
            swarm,
            reconciler,
            config,
            wakes,
            shutdown.clone(),
        ));
        Operator {
            status,
            shutdown,
            handle,
        }
    }

    /// Whether the loop is still running (it only ends when stopped).
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
    }
}

/// Polls `done` every 100 ms for up to a minute; panics naming `what` when it never holds.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
