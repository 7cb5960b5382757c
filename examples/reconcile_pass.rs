//! Measures a reconcile pass of the operator over many services with policies on the real
//! local Swarm: wall time, CPU time and peak RSS of the process doing the pass, and of the node
//! agents when it reads through them.
//!
//! ```sh
//! cargo run --release --example reconcile_pass -- 1000
//! # 1,000 services of one running task each, read through the agents of service sp-agent:
//! cargo run --release --example reconcile_pass -- 1000 --replicas 1 \
//!     --image sp-test-busybox:1 --agent-service sp-agent --agent-token-file token \
//!     --agent-pid 1234 --agent-pid 1235 --agent-pid 1236
//! ```
//!
//! The services are created (by default at 0 replicas: cheap, no task runs), each with a
//! shorthand CPU policy, and removed at the end; with `--replicas` (for the first `--running`
//! services, or all), the passes start once every task runs. The passes run in a child process so their figures include nothing of the set-up:
//! connect, list the services, and reconcile each one (inspect, decode the labels, list tasks,
//! read the metric, decide) with the operator's default concurrency. The first pass takes the
//! first CPU samples (every read is warming up); the second is a steady-state pass.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::models::{
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
};
use bollard::query_parameters::ListTasksOptions;
use futures_util::{stream, StreamExt};
use swarmpilot::metrics::{
    AgentConfig, AgentRoute, Observer, PrometheusClientConfig, ScrapeConfig,
};
use swarmpilot::reconcile::{
    PolicyReconciler, ReconcileOptions, Reconciler, ServiceRef, StatusStore, Wake,
};
use swarmpilot::swarm::{DockerSwarm, Swarm};

const RUN_LABEL: &str = "sp.bench.run";
const CONCURRENCY: usize = 16;

/// What to create and how to read it.
#[derive(Clone, Debug, Default)]
struct Options {
    count: usize,
    replicas: u64,
    /// How many of the services get `replicas`; the others stay at 0. All when `None`.
    running: Option<usize>,
    image: Option<String>,
    agent_service: Option<String>,
    agent_token_file: Option<PathBuf>,
    agent_pids: Vec<u32>,
}

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<(Options, Option<String>)> {
        let mut options = Options {
            count: 1000,
            ..Default::default()
        };
        let mut pass = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--pass" => pass = Some(value()?.clone()),
                "--replicas" => options.replicas = value()?.parse()?,
                "--running" => options.running = Some(value()?.parse()?),
                "--image" => options.image = Some(value()?.clone()),
                "--agent-service" => options.agent_service = Some(value()?.clone()),
                "--agent-token-file" => options.agent_token_file = Some(value()?.into()),
                "--agent-pid" => options.agent_pids.push(value()?.parse()?),
                count if !count.starts_with('-') => {
                    options.count = count
                        .parse()
                        .with_context(|| format!("not a service count: {count:?}"))?
                }
                other => bail!("unknown option {other}; usage: reconcile_pass [SERVICES] [--replicas N [--running SERVICES]] [--image IMAGE] [--agent-service NAME --agent-token-file FILE] [--agent-pid PID]..."),
            }
        }
        Ok((options, pass))
    }

    /// The arguments that give these options to the child.
    fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let (Some(service), Some(token)) = (&self.agent_service, &self.agent_token_file) {
            args.extend(["--agent-service".to_owned(), service.clone()]);
            args.extend(["--agent-token-file".to_owned(), token.display().to_string()]);
        }
        for pid in &self.agent_pids {
            args.extend(["--agent-pid".to_owned(), pid.to_string()]);
        }
        args
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (options, pass_run) = Options::parse(&args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    match pass_run {
        Some(run) => runtime.block_on(pass(&run, &options)),
        None => runtime.block_on(bench(&options)),
    }
}

async fn bench(options: &Options) -> anyhow::Result<ExitCode> {
    let count = options.count;
    let docker = bollard::Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let run = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    eprintln!(
        "creating {count} services at {} replicas...",
        options.replicas
    );
    let image = options
        .image
        .clone()
        .unwrap_or_else(|| "sp-bench-none:0".to_owned());
    let command = options
        .image
        .as_ref()
        .map(|_| vec!["sleep".to_owned(), "86400".to_owned()]);
    let created: Vec<anyhow::Result<String>> = stream::iter(0..count)
        .map(|i| {
            let docker = docker.clone();
            let run = run.clone();
            let image = image.clone();
            let command = command.clone();
            let running = options.running.unwrap_or(count);
            let replicas = if i < running {
                options.replicas as i64
            } else {
                0
            };
            async move {
                let spec = ServiceSpec {
                    name: Some(format!("sp-bench-{run}-{i}")),
                    labels: Some(HashMap::from([
                        (RUN_LABEL.to_owned(), run),
                        ("io.swarmpilot.cpu".to_owned(), "70".to_owned()),
                        ("io.swarmpilot.max".to_owned(), "10".to_owned()),
                    ])),
                    task_template: Some(TaskSpec {
                        container_spec: Some(TaskSpecContainerSpec {
                            image: Some(image),
                            args: command,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    mode: Some(ServiceSpecMode {
                        replicated: Some(ServiceSpecModeReplicated {
                            replicas: Some(replicas),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                let answer = docker.create_service(spec, None).await?;
                answer.id.context("the engine returned no service ID")
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let ids: Vec<String> = created.into_iter().filter_map(Result::ok).collect();
    let outcome = if ids.len() == count {
        let running = options.running.unwrap_or(count).min(count);
        wait_running(&docker, &ids, running * options.replicas as usize).await?;
        let status = Command::new(std::env::current_exe()?)
            .args(["--pass", &run])
            .args(options.to_args())
            .status()?;
        status.success()
    } else {
        eprintln!("only {} of {count} services could be created", ids.len());
        false
    };
    eprintln!("removing the services...");
    stream::iter(ids)
        .for_each_concurrent(CONCURRENCY, |id| {
            let docker = docker.clone();
            async move {
                let _ = docker.delete_service(&id).await;
            }
        })
        .await;
    Ok(if outcome {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Waits until `expected` tasks of the services run (the scheduler places them all at once).
async fn wait_running(
    docker: &bollard::Docker,
    ids: &[String],
    expected: usize,
) -> anyhow::Result<()> {
    let ours: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    let started = Instant::now();
    loop {
        let filters = HashMap::from([("desired-state".to_owned(), vec!["running".to_owned()])]);
        let tasks = docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await?;
        let running = tasks
            .iter()
            .filter(|t| t.service_id.as_deref().is_some_and(|id| ours.contains(id)))
            .filter(|t| {
                t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING)
            })
            .count();
        eprintln!(
            "{running} of {expected} tasks running after {:.0?}",
            started.elapsed()
        );
        if running >= expected {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("only {running} of {expected} tasks run after half an hour");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

async fn pass(run: &str, bench: &Options) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cpu_before = cpu_seconds("self")?;
    let swarm = Arc::new(DockerSwarm::connect().await?);
    let mut observer = Observer::new(
        Arc::clone(&swarm),
        PrometheusClientConfig::default(),
        ScrapeConfig::default(),
    )?;
    if let (Some(service), Some(token_file)) = (&bench.agent_service, &bench.agent_token_file) {
        observer = observer.with_agents(AgentConfig {
            service: service.clone(),
            port: swarmpilot::agent::protocol::DEFAULT_PORT,
            network: None,
            route: AgentRoute::Auto,
            token_file: token_file.clone(),
            timeout: Duration::from_secs(5),
            max_body_bytes: 4 << 20,
            refresh: Duration::from_secs(10),
        })?;
    }
    let options = ReconcileOptions {
        selector: BTreeMap::from([(RUN_LABEL.to_owned(), run.to_owned())]),
        ..Default::default()
    };
    let status = Arc::new(StatusStore::default());
    let reconciler =
        PolicyReconciler::new(Arc::clone(&swarm), observer, Arc::clone(&status), options);
    let services: Vec<ServiceRef> = swarm
        .list_services()
        .await?
        .into_iter()
        .filter(|service| reconciler.wants(service))
        .map(|service| ServiceRef {
            id: service.id,
            name: service.name,
        })
        .collect();
    let reconciler = &reconciler;
    // One memory per service across passes, as the operator keeps it.
    let mut memories: Vec<_> = services.iter().map(|s| reconciler.new_state(s)).collect();
    println!(
        "set-up (connect, list):  {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let mut all_decided = true;
    for (number, what) in [(1, "first samples"), (2, "steady state")] {
        let pass_started = Instant::now();
        let cpu_before_pass = cpu_seconds("self")?;
        let agents_before = agents_cpu(&bench.agent_pids)?;
        // The operator's first reconcile of a service, then the one its interval brings.
        let wake = if number == 1 {
            Wake::Started
        } else {
            Wake::Requeued
        };
        let failures = stream::iter(services.iter().zip(memories.iter_mut()))
            .map(|(service, memory)| async move {
                reconciler.reconcile(service, memory, wake).await.is_err()
            })
            .buffer_unordered(CONCURRENCY)
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        let wall = pass_started.elapsed();
        let cpu = cpu_seconds("self")? - cpu_before_pass;
        let agents = agents_cpu(&bench.agent_pids)? - agents_before;
        let statuses = status.all();
        let decided = statuses.iter().filter(|s| !s.decisions.is_empty()).count();
        let with_value = statuses
            .iter()
            .filter(|s| s.metrics.iter().all(|m| m.value.is_some()))
            .count();
        all_decided &= decided == services.len();
        if let Some(error) = statuses
            .iter()
            .flat_map(|s| &s.metrics)
            .find_map(|m| m.error.as_ref())
        {
            println!("  a metric error, e.g.:  {error}");
        }
        println!(
            "pass {number} ({what}): {} services ({decided} decided, {with_value} with every metric read, {failures} failed)",
            services.len()
        );
        println!("  wall time:             {:.3} s", wall.as_secs_f64());
        println!("  operator cpu time:     {cpu:.3} s (user + system)");
        if !bench.agent_pids.is_empty() {
            println!(
                "  agents cpu time:       {agents:.3} s (user + system, {} agents)",
                bench.agent_pids.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "operator: {:.3} s cpu in all, peak RSS {:.1} MiB",
        cpu_seconds("self")? - cpu_before,
        peak_rss_kib("self")? as f64 / 1024.0
    );
    for pid in &bench.agent_pids {
        let pid = pid.to_string();
        println!(
            "agent {pid}: peak RSS {:.1} MiB, {:.3} s cpu since it started",
            peak_rss_kib(&pid)? as f64 / 1024.0,
            cpu_seconds(&pid)?
        );
    }
    Ok(if all_decided {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The CPU time of the agents so far.
fn agents_cpu(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|pid| cpu_seconds(&pid.to_string())).sum()
}

/// User plus system CPU time of a process (`self` or a PID), from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux this runs on; sysconf would need libc for one constant.
    100.0
}

/// A process's peak resident set size (VmHWM), in KiB.
fn peak_rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("malformed VmHWM")?
        .parse()?)
}
