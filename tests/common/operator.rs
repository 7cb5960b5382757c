//! The operator's reconcile loop run in-process by a test, watching only the services labelled
//! with the test's own run label, so tests can share the Swarm with anything else; and the set-up
//! those tests share. Binaries using it also declare `common`, `exporter` and `prometheus_server`.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use swarmpilot::metrics::{Observer, PrometheusClientConfig, ScrapeConfig};
use swarmpilot::models::ModelCheck;
use swarmpilot::reconcile::lease::{self, Elector, LeaseTimings};
use swarmpilot::reconcile::{
    controller, ControllerConfig, Leadership, PolicyReconciler, ReconcileOptions, StatusStore,
    Waker,
};
use swarmpilot::swarm::Swarm;
use swarmpilot::webhook::Metrics;
use tokio_util::sync::CancellationToken;

use crate::common::{docker_on, ensure_test_image, Engine, TestService};
use crate::exporter::{Behavior, Exporter};
use crate::prometheus_server::PrometheusServer;

/// The model directory of the operator started for `run` (it need not exist; a test that
/// gives a policy a model file writes it there, and removes it).
pub fn model_dir(run: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("swarmpilot-models-{run}"))
}

/// The label whose value selects a test's services.
pub const RUN_LABEL: &str = "sp.test.run";

pub struct Operator {
    pub status: Arc<StatusStore>,
    /// The operator's own metrics, as its `/metrics` would export them.
    pub metrics: Arc<Metrics>,
    /// Wakes the loop for a service at once, as the API does after writing an override.
    pub waker: Waker,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    /// The lease loop of an elected operator, and what it does once the loop has stopped:
    /// give the lease back (`true`) or not.
    election: Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::oneshot::Sender<bool>,
    )>,
}

impl Operator {
    /// Starts the loop over the services labelled `RUN_LABEL=run`, reading Prometheus at
    /// `prometheus_url`, retrying a lost engine within two seconds.
    pub fn start<S: Swarm>(swarm: Arc<S>, prometheus_url: &str, run: &str) -> Operator {
        let prometheus = PrometheusClientConfig {
            default_url: Some(prometheus_url.to_owned()),
            ..Default::default()
        };
        Operator::start_with(swarm, prometheus, run)
    }

    /// Starts the loop over the services labelled `RUN_LABEL=run` with `prometheus` as the
    /// Prometheus settings (the default ones when the policies use no Prometheus metric).
    pub fn start_with<S: Swarm>(
        swarm: Arc<S>,
        prometheus: PrometheusClientConfig,
        run: &str,
    ) -> Operator {
        let observer =
            Observer::new(Arc::clone(&swarm), prometheus, ScrapeConfig::default()).unwrap();
        Operator::start_observing(swarm, observer, run)
    }

    /// Starts the loop over the services labelled `RUN_LABEL=run`, reading metrics with
    /// `observer` (one that reads engine stats through the node agents, say).
    pub fn start_observing<S: Swarm>(swarm: Arc<S>, observer: Observer<S>, run: &str) -> Operator {
        Operator::start_with_status(swarm, observer, run, StatusStore::default())
    }

    /// Starts an operator that stands by until it holds the lease in the labels of
    /// `lease_service` (its TTL `ttl`), then acts: of two started on the same services, one
    /// acts and the other takes over when the first one's lease expires.
    pub fn start_elected<S: Swarm>(
        swarm: Arc<S>,
        prometheus_url: &str,
        run: &str,
        lease_service: &str,
        ttl: Duration,
        holder: &str,
    ) -> Operator {
        let prometheus = PrometheusClientConfig {
            default_url: Some(prometheus_url.to_owned()),
            ..Default::default()
        };
        let observer =
            Observer::new(Arc::clone(&swarm), prometheus, ScrapeConfig::default()).unwrap();
        let leadership = Leadership::elected();
        let status = StatusStore::with_leadership(leadership.clone());
        let mut operator = Operator::start_with_status(Arc::clone(&swarm), observer, run, status);
        let (give_back, then) = tokio::sync::oneshot::channel();
        let elector = Elector::new(holder, LeaseTimings { ttl });
        let (service, stopping) = (lease_service.to_owned(), operator.shutdown.clone());
        let election = tokio::spawn(async move {
            let elector = lease::run(
                Arc::clone(&swarm),
                service.clone(),
                elector,
                leadership.clone(),
                stopping,
            )
            .await;
            if then.await == Ok(true) {
                lease::release(&*swarm, &service, elector, &leadership).await;
            }
        });
        operator.election = Some((election, give_back));
        operator
    }

    fn start_with_status<S: Swarm>(
        swarm: Arc<S>,
        observer: Observer<S>,
        run: &str,
        status: StatusStore,
    ) -> Operator {
        let status = Arc::new(status);
        let metrics = Arc::new(Metrics::new());
        let options = ReconcileOptions {
            selector: BTreeMap::from([(RUN_LABEL.to_owned(), run.to_owned())]),
            max_backoff: Duration::from_secs(2),
            model_dir: Some(model_dir(run)),
            // Model files are checked by the built operator, not by this test binary.
            model_check: ModelCheck {
                program: env!("CARGO_BIN_EXE_swarmpilot").into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reconciler = Arc::new(
            PolicyReconciler::new(Arc::clone(&swarm), observer, Arc::clone(&status), options)
                .with_telemetry(Arc::clone(&metrics) as Arc<dyn swarmpilot::reconcile::Telemetry>),
        );
        let config = ControllerConfig {
            resync: Duration::from_secs(2),
            max_backoff: Duration::from_secs(2),
            ..Default::default()
        };
        let shutdown = CancellationToken::new();
        let (waker, wakes) = Waker::new();
        let handle = tokio::spawn(controller::run(
            swarm,
            reconciler,
            config,
            wakes,
            shutdown.clone(),
        ));
        Operator {
            status,
            metrics,
            waker,
            shutdown,
            handle,
            election: None,
        }
    }

    /// How many of this operator's writes to `service` were refused for a stale version
    /// ("update out of sequence"), from its `swarmpilot_write_conflicts_total`.
    pub fn write_conflicts(&self, service: &TestService) -> u64 {
        let text = self.metrics.encode().expect("encode the metrics");
        let series = format!(
            "swarmpilot_write_conflicts_total{{service=\"{}\"}} ",
            service.name
        );
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |count| count.trim().parse().expect("a counter value"))
    }

    /// Cancelled when the operator is stopped: what servers started beside the loop stop on.
    pub fn stopping(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Whether the loop is still running (it only ends when stopped).
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Waits until the loop has decided on `service` once.
    pub async fn first_decision(&self, service: &TestService) {
        wait_until("the first decision", || {
            self.status
                .get(&service.name)
                .is_some_and(|s| !s.decisions.is_empty())
        })
        .await;
    }

    /// Waits until a reconcile of `service` fails (its engine gone, say).
    pub async fn failing(&self, service: &TestService) {
        wait_until("a reconcile failing", || {
            self.status
                .get(&service.name)
                .is_some_and(|s| s.last_error.is_some())
        })
        .await;
    }

    /// Stops the operator as SIGTERM does: the loop finishes its writes, then an elected
    /// operator gives its lease back.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap();
        if let Some((election, give_back)) = self.election {
            let _ = give_back.send(true);
            election.await.unwrap();
        }
    }

    /// Stops the operator as a crash would: nothing more is written, the lease is not given
    /// back (it expires after its TTL).
    pub async fn crash(self) {
        self.handle.abort();
        let _ = self.handle.await;
        if let Some((election, give_back)) = self.election {
            election.abort();
            drop(give_back);
            let _ = election.await;
        }
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

/// A gauge `sp_load` at `load` served by a test exporter, and a real Prometheus scraping it.
pub async fn load_source(load: f64) -> (Exporter, PrometheusServer) {
    let exporter = Exporter::start(Behavior::Text(format!("sp_load {load}\n"))).await;
    let prometheus = PrometheusServer::start(&[exporter.addr]).await;
    prometheus.wait_targets_up().await;
    (exporter, prometheus)
}

/// A one-replica sleeping service labelled for `run`, whose policy label is `policy_of(name)`.
pub fn service_with_policy(
    prefix: &str,
    run: &str,
    policy_of: impl Fn(&str) -> String,
) -> TestService {
    ensure_test_image();
    service_with_policy_on(&Engine::Host, prefix, run, &[], policy_of)
}

/// [`service_with_policy`] on the swarm `engine` manages (which has the test image), with
/// `extra` options for `docker service create`.
pub fn service_with_policy_on(
    engine: &Engine,
    prefix: &str,
    run: &str,
    extra: &[&str],
    policy_of: impl Fn(&str) -> String,
) -> TestService {
    let run_label = format!("{RUN_LABEL}={run}");
    let mut options = vec!["--label", run_label.as_str()];
    options.extend_from_slice(extra);
    // The name is only known once created, so the policy label is added right after.
    let service = TestService::sleeping_on(engine, prefix, 1, &options);
    add_policy(&service, &policy_of(&service.name));
    service
}

/// Labels `service` with `policy` (a test service's name is only known once it is created).
pub fn add_policy(service: &TestService, policy: &str) {
    let label = format!("io.swarmpilot.policy={policy}");
    docker_on(
        &service.engine,
        &[
            "service",
            "update",
            "--detach",
            "--quiet",
            "--label-add",
            &label,
            &service.id,
        ],
    );
}
