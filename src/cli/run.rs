//! `swarmpilot run`: the operator itself — the reconcile loop and the HTTP server side by side,
//! until SIGTERM or SIGINT.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::agents::AgentArgs;
use super::prometheus::PrometheusArgs;
use super::servers::OutboundArgs;
use crate::metrics::{Observer, ScrapeConfig};
use crate::models::ModelCheck;
use crate::policy::HumanDuration;
use crate::reconcile::controller::{self, Backoff};
use crate::reconcile::lease::{self, Elector, LeaseTimings};
use crate::reconcile::{
    ControllerConfig, Leadership, PolicyReconciler, ReconcileOptions, StatusStore, Waker,
};
use crate::swarm::DockerSwarm;
use crate::webhook::{self, AppState, Metrics, ServeArgs};

/// Arguments of `swarmpilot run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServeArgs,
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    #[command(flatten)]
    pub agents: AgentArgs,
    #[command(flatten)]
    pub outbound: OutboundArgs,
    /// Decide and report, but never change a service.
    #[arg(long)]
    pub dry_run: bool,
    /// Watch only services with this label (`key=value`); repeat to require several.
    #[arg(long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub selector: Vec<(String, String)>,
    /// The directory policies may load model files from (`forecast.model`, `anomaly.model`
    /// naming a file under it); without it, only the shipped models.
    #[arg(long, value_name = "DIR", env = "SWARMPILOT_MODEL_DIR")]
    pub model_dir: Option<std::path::PathBuf>,
    /// The memory, in MiB, a model file may use while it is checked in a child process before
    /// the operator loads it.
    #[arg(
        long,
        value_name = "MIB",
        env = "SWARMPILOT_MODEL_MEMORY_LIMIT",
        default_value_t = 512
    )]
    pub model_memory_limit: u64,
    /// Show each service's traffic state and overrides on /metrics (open to anyone who reaches
    /// the port; they tell a flooder when it has been detected).
    #[arg(long)]
    pub metrics_detail: bool,
    /// How many services are reconciled at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// The operator's own Swarm service, whose `io.swarmpilot.lease` label elects the one
    /// operator that acts when several run (a second replica, a partitioned manager still
    /// running the old task): the others stand by. Set it in the stack with
    /// `SWARMPILOT_LEASE_SERVICE: '{{.Service.Name}}'`. Without it the operator acts alone.
    #[arg(long, value_name = "SERVICE", env = "SWARMPILOT_LEASE_SERVICE")]
    pub lease_service: Option<String>,
    /// How long the lease lasts without renewal: renewed every third of it, and no write
    /// after two thirds of it without a successful renewal.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub lease_ttl: HumanDuration,
    /// Log lines as human-readable text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, env = "SWARMPILOT_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    run_until_stopped(operate(args))??;
    Ok(ExitCode::SUCCESS)
}

/// How long the runtime waits at exit for work left on its blocking threads: a model load
/// past its own timeout (which cannot be stopped), an inference, a DNS lookup. None of it
/// writes anything, and the writes and the lease release are joined before this, so what
/// still runs then is abandoned rather than holding the exit until Swarm's SIGKILL.
const BLOCKING_GRACE: Duration = Duration::from_secs(5);

/// Runs a long-lived command (the operator, the agent) on a multi-threaded runtime, then shuts
/// the runtime down waiting at most [`BLOCKING_GRACE`] for its blocking threads: dropping a
/// runtime would wait for them without bound.
pub(crate) fn run_until_stopped<F: std::future::Future>(command: F) -> anyhow::Result<F::Output> {
    run_within(command, BLOCKING_GRACE)
}

fn run_within<F: std::future::Future>(command: F, grace: Duration) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let output = runtime.block_on(command);
    runtime.shutdown_timeout(grace);
    Ok(output)
}

pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

async fn operate(args: &Args) -> anyhow::Result<()> {
    let server_config = args
        .server
        .load()
        .context("cannot load the server's token files")?;
    let outbound = args
        .outbound
        .load()
        .context("cannot load the servers policies may name")?;
    let shutdown = CancellationToken::new();
    // Owned, so it ends with this function on every path.
    let _signals = AbortOnDropHandle::new(tokio::spawn(cancel_on_signal(shutdown.clone())));

    let Some(swarm) = connect(&shutdown).await else {
        return Ok(());
    };
    let swarm = Arc::new(swarm);
    anyhow::ensure!(
        args.lease_ttl.as_std() >= Duration::from_secs(3),
        "--lease-ttl must be at least 3s (renewals come every third of it), not {}",
        args.lease_ttl
    );
    // Everything that can fail is set up before the election starts: past this point the
    // lease task is always joined and its lease given back.
    let mut prometheus = args.prometheus.config();
    if let Some(auth) = &prometheus.auth {
        auth.check()
            .context("cannot read the --prometheus-url credentials")?;
    }
    prometheus.outbound = outbound;
    let mut observer = Observer::new(Arc::clone(&swarm), prometheus, ScrapeConfig::default())
        .context("cannot set up the metric sources")?;
    if let Some(agents) = args.agents.config() {
        tracing::info!(service = %agents.service, route = ?agents.route, "reading engine stats through the node agents");
        observer = observer
            .with_agents(agents)
            .context("cannot set up the agent client")?;
    }
    let (status, election) = match &args.lease_service {
        Some(service) => {
            let service = service.clone();
            let leadership = Leadership::elected();
            let elector = Elector::new(
                holder_id(),
                LeaseTimings {
                    ttl: args.lease_ttl.as_std(),
                },
            );
            let election = tokio::spawn(lease::run(
                Arc::clone(&swarm),
                service.clone(),
                elector,
                leadership.clone(),
                shutdown.clone(),
            ));
            let status = StatusStore::with_leadership(leadership);
            (status, Some((service, election)))
        }
        None => {
            tracing::info!(
                "no --lease-service: acting alone, with no election (run one operator only)"
            );
            (StatusStore::default(), None)
        }
    };
    let status = Arc::new(status);
    let leadership = status.leadership().clone();
    let metrics = Arc::new(Metrics::new().with_detail(args.metrics_detail));
    let (waker, wakes) = Waker::new();
    let options = ReconcileOptions {
        dry_run: args.dry_run,
        selector: args.selector.iter().cloned().collect::<BTreeMap<_, _>>(),
        model_dir: args.model_dir.clone(),
        model_check: ModelCheck {
            memory_limit: args.model_memory_limit.saturating_mul(1024 * 1024),
            ..ModelCheck::default()
        },
        max_replicas_ceiling: args.outbound.max_replicas_ceiling,
        ..Default::default()
    };
    let reconciler =
        PolicyReconciler::new(Arc::clone(&swarm), observer, Arc::clone(&status), options)
            .with_telemetry(Arc::clone(&metrics) as Arc<dyn crate::reconcile::Telemetry>);

    let state = AppState::new(Arc::clone(&swarm), status, waker, metrics, &server_config);
    let server = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let result = webhook::serve(&server_config, state, shutdown.clone()).await;
            // Without its API the operator cannot take overrides: stop rather than run half-deaf.
            shutdown.cancel();
            result
        })
    };
    let config = ControllerConfig {
        concurrency: args.concurrency,
        ..Default::default()
    };
    tracing::info!(dry_run = args.dry_run, "swarmpilot is running");
    controller::run(
        Arc::clone(&swarm),
        Arc::new(reconciler),
        config,
        wakes,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    // The loop has finished its writes: give the lease back so a standby acts at once.
    if let Some((service, election)) = election {
        let elector = election.await.context("the lease loop panicked")?;
        lease::release(&*swarm, &service, elector, &leadership).await;
    }
    server.await.context("the HTTP server panicked")??;
    tracing::info!("stopped");
    Ok(())
}

/// This process's name in the lease: the host (a task's container ID in Swarm), the PID and
/// the start time, so a restarted operator is a new holder.
fn holder_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".to_owned());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}-{}-{started:x}", std::process::id())
}

/// Connects to the engine, retrying with backoff: an operator started before dockerd (or during
/// its restart) waits for it rather than exiting. `None` when stopped while waiting.
async fn connect(shutdown: &CancellationToken) -> Option<DockerSwarm> {
    let mut backoff = Backoff::new(Duration::from_secs(30));
    loop {
        match DockerSwarm::connect().await {
            Ok(swarm) => {
                tracing::info!(api = %swarm.api_version(), "connected to the Docker engine");
                return Some(swarm);
            }
            Err(error) => tracing::warn!(%error, "cannot reach the Docker engine; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Cancels `shutdown` on SIGTERM (what `docker service rm` and rolling updates send) or SIGINT.
pub(crate) async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop the operator with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing the updates in flight"),
        _ = int.recv() => tracing::info!("SIGINT: finishing the updates in flight"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};

    use super::*;

    #[test]
    fn a_blocking_thread_still_running_does_not_hold_the_exit() {
        let (release, held) = mpsc::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&finished);
        let (done, returned) = mpsc::channel();
        // On its own thread, so a runtime that waited for the blocked thread shows as a hang.
        std::thread::spawn(move || {
            let output = run_within(
                async move {
                    // Like a model load past its timeout: nobody waits for it, nothing stops it.
                    drop(tokio::task::spawn_blocking(move || {
                        let _ = held.recv();
                        flag.store(true, Ordering::SeqCst);
                    }));
                    7
                },
                Duration::from_millis(100),
            );
            let _ = done.send(output.ok());
        });
        let output = returned
            .recv_timeout(Duration::from_secs(60))
            .expect("the runtime waited for its blocking thread");
        assert_eq!(output, Some(7));
        assert!(!finished.load(Ordering::SeqCst));
        drop(release);
    }
}
