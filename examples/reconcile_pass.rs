//! Measures one reconcile pass of the operator over many services with policies on the real
//! local Swarm: wall time, CPU time and peak RSS of the process doing the pass.
//!
//! ```sh
//! cargo run --release --example reconcile_pass -- 1000
//! ```
//!
//! The services are created at 0 replicas (cheap: no task runs), each with a shorthand CPU policy,
//! and removed at the end. The pass itself runs in a child process so its figures include nothing
//! of the set-up: connect, list the services, and reconcile each one (inspect, decode the labels,
//! list tasks, read the metric, decide) with the operator's default concurrency.

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bollard::models::{
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec,
};
use futures_util::{stream, StreamExt};
use swarmpilot::metrics::{Observer, PrometheusClientConfig, ScrapeConfig};
use swarmpilot::reconcile::{
    PolicyReconciler, ReconcileOptions, Reconciler, ServiceRef, StatusStore,
};
use swarmpilot::swarm::{DockerSwarm, Swarm};

const RUN_LABEL: &str = "sp.bench.run";
const CONCURRENCY: usize = 16;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new()?;
    match args.as_slice() {
        [flag, run] if flag == "--pass" => runtime.block_on(pass(run)),
        [count] => {
            let count: usize = count
                .parse()
                .with_context(|| format!("not a service count: {count:?}"))?;
            runtime.block_on(bench(count))
        }
        [] => runtime.block_on(bench(1000)),
        _ => bail!("usage: reconcile_pass [SERVICES]"),
    }
}

async fn bench(count: usize) -> anyhow::Result<ExitCode> {
    let docker = bollard::Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let run = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    eprintln!("creating {count} services at 0 replicas...");
    let created: Vec<anyhow::Result<String>> = stream::iter(0..count)
        .map(|i| {
            let docker = docker.clone();
            let run = run.clone();
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
                            image: Some("sp-bench-none:0".to_owned()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    mode: Some(ServiceSpecMode {
                        replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
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
        let status = Command::new(std::env::current_exe()?)
            .args(["--pass", &run])
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

async fn pass(run: &str) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let cpu_before = cpu_seconds()?;
    let swarm = Arc::new(DockerSwarm::connect().await?);
    let observer = Observer::new(
        Arc::clone(&swarm),
        PrometheusClientConfig::default(),
        ScrapeConfig::default(),
    )?;
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
    let failures = stream::iter(&services)
        .map(|service| async move {
            let mut memory = reconciler.new_state(service);
            reconciler.reconcile(service, &mut memory).await.is_err()
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let wall = started.elapsed();
    let cpu = cpu_seconds()? - cpu_before;
    let decided = status
        .all()
        .iter()
        .filter(|s| !s.decisions.is_empty())
        .count();
    println!(
        "services reconciled: {} ({decided} decided, {failures} failed)",
        services.len()
    );
    println!("wall time:           {:.3} s", wall.as_secs_f64());
    println!("cpu time:            {cpu:.3} s (user + system)");
    println!(
        "peak RSS:            {:.1} MiB",
        peak_rss_kib()? as f64 / 1024.0
    );
    Ok(if decided == services.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// User plus system CPU time of this process, from /proc/self/stat.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
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

/// The process's peak resident set size (VmHWM), in KiB.
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
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
