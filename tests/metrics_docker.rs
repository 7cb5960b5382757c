//! The Docker source on real containers of the local Swarm: a task burning CPU under a CPU
//! limit reads a CPU utilization above zero, its memory a share of its limit; scrape targets
//! are the running tasks' overlay addresses.

mod common;
#[path = "common/exporter.rs"]
mod exporter;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{ensure_test_image, running_tasks, Engine, TestService, TEST_IMAGE, TEST_NETWORK};
use swarmpilot::metrics::inspect::{inspect, InspectError};
use swarmpilot::metrics::{
    DockerReader, MetricError, MetricSource, PrometheusClientConfig, Reading, ScrapeTarget,
    SwarmTargets, Targets,
};
use swarmpilot::policy::{DockerSource, Resource, ScrapeSource};
use swarmpilot::swarm::{ServiceInfo, Swarm};

/// A service of one busybox task spinning a shell loop, limited to half a core and 64 MiB,
/// with `labels` (`key=value`).
fn burning_service(prefix: &str, labels: &[&str]) -> TestService {
    ensure_test_image();
    let mut extra = vec!["--limit-cpu", "0.5", "--limit-memory", "64m"];
    for label in labels {
        extra.extend(["--label", label]);
    }
    let burn = [TEST_IMAGE, "sh", "-c", "while :; do :; done"];
    TestService::create(&Engine::Host, prefix, &["--replicas", "1"], &extra, &burn)
}

/// One read of `resource` through `reader`, as the operator reads a `docker` metric.
async fn read<S: Swarm>(
    reader: &DockerReader<S>,
    info: &ServiceInfo,
    resource: Resource,
) -> Result<Reading, MetricError> {
    reader
        .read(info, resource.name(), &DockerSource { resource })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_burning_cpu_reads_cpu_and_memory_utilization() {
    let service = burning_service("metrics-burn", &[]);
    let swarm = Arc::new(common::swarm().await);
    let tasks = running_tasks(&swarm, &service.id, 1).await;
    let info = swarm.inspect_service(&service.id).await.unwrap();
    assert_eq!(info.cpu_limit_nanos, Some(500_000_000));
    let reader = DockerReader::new(swarm.clone(), Duration::from_secs(20), 4);

    // The first sample of a container has nothing to compute a rate from.
    let first = read(&reader, &info, Resource::Cpu).await.unwrap_err();
    assert!(matches!(first, MetricError::WarmingUp(_)), "{first:?}");
    let first_rx = read(&reader, &info, Resource::NetworkRx).await.unwrap_err();
    assert!(
        matches!(first_rx, MetricError::WarmingUp(_)),
        "{first_rx:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cpu = read(&reader, &info, Resource::Cpu).await.unwrap();
    println!(
        "cpu utilization of a busy loop limited to 0.5 CPU: {:.1}%",
        cpu.value
    );
    assert!(cpu.value > 0.0, "{cpu:?}");
    assert_eq!(cpu.tasks.len(), 1, "{cpu:?}");
    assert_eq!(cpu.tasks[0].task_id, tasks[0].id);

    let memory = read(&reader, &info, Resource::Memory).await.unwrap();
    println!(
        "memory working set in percent of 64 MiB: {:.3}%",
        memory.value
    );
    assert!(memory.value > 0.0 && memory.value < 100.0, "{memory:?}");

    let rx = read(&reader, &info, Resource::NetworkRx).await.unwrap();
    assert!(rx.value >= 0.0 && rx.value.is_finite(), "{rx:?}");
}

#[tokio::test]
async fn a_service_without_running_tasks_says_so() {
    let service = TestService::idle("metrics-idle", &[]);
    let swarm = Arc::new(common::swarm().await);
    let info = swarm.inspect_service(&service.id).await.unwrap();
    let reader = DockerReader::new(swarm, Duration::from_secs(20), 4);
    let error = read(&reader, &info, Resource::Memory).await.unwrap_err();
    assert!(
        matches!(error, MetricError::NoRunningTasks { ref service } if *service == info.name),
        "{error:?}"
    );
}

#[tokio::test]
async fn scrape_targets_are_the_running_tasks_addresses_on_the_network() {
    let service = TestService::sleeping("metrics-targets", 2, &[]);
    let swarm = Arc::new(common::swarm().await);
    let tasks = running_tasks(&swarm, &service.id, 2).await;
    let info = swarm.inspect_service(&service.id).await.unwrap();
    let targets = SwarmTargets::new(swarm);
    let mut source = ScrapeSource {
        port: 9100,
        path: "/metrics".into(),
        metric: "x".into(),
        labels: Default::default(),
        aggregate: Default::default(),
        network: None,
        quantile: None,
        min_responding: 0.5,
    };

    for network in [None, Some(TEST_NETWORK.to_owned())] {
        source.network = network;
        let mut resolved: Vec<ScrapeTarget> = targets
            .resolve(&info, &source)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        resolved.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        let mut expected: Vec<ScrapeTarget> = tasks
            .iter()
            .map(|task| ScrapeTarget {
                task_id: task.id.clone(),
                address: SocketAddr::new(task.addresses[TEST_NETWORK], 9100),
            })
            .collect();
        expected.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        assert_eq!(resolved, expected);
    }

    source.network = Some("sp-test-no-such-network".into());
    let missing = targets.resolve(&info, &source).await.unwrap();
    assert_eq!(missing.len(), 2);
    for target in missing {
        let error = target.unwrap_err();
        assert!(error.reason.contains("sp-test-no-such-network"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_reads_every_metric_of_the_labelled_policy_and_spells_out_errors() {
    let service = burning_service(
        "metrics-inspect",
        &[
            "io.swarmpilot.cpu=70",
            "io.swarmpilot.rps=10",
            "io.swarmpilot.max=3",
        ],
    );
    let swarm = Arc::new(common::swarm().await);
    running_tasks(&swarm, &service.id, 1).await;
    let nowhere = PrometheusClientConfig {
        default_url: Some(format!("http://{}", exporter::refused_address())),
        ..Default::default()
    };
    let report = inspect(swarm, &service.name, nowhere, None, Duration::from_secs(1))
        .await
        .unwrap();
    let text = report.to_string();
    let by_name = |name: &str| report.metrics.iter().find(|m| m.name == name).unwrap();
    // The CPU rate was warming up on the first read and was read again.
    let cpu = by_name("cpu").result.as_ref().unwrap();
    assert!(cpu.value > 0.0, "{text}");
    assert!(
        matches!(by_name("rps").result, Err(MetricError::Unreachable { .. })),
        "{text}"
    );
    assert_eq!(report.failed(), 1, "{text}");
    assert!(
        text.contains("docker: cpu") && text.contains("ERROR cannot reach"),
        "{text}"
    );

    let unlabelled = TestService::idle("metrics-nopolicy", &[]);
    let swarm = Arc::new(common::swarm().await);
    let error = inspect(
        swarm,
        &unlabelled.name,
        PrometheusClientConfig::default(),
        None,
        Duration::ZERO,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, InspectError::NoPolicy(_)), "{error}");
}
