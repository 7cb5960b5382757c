//! The Docker source on real containers of the local Swarm: a task burning CPU under a CPU
//! limit reads a CPU utilization above zero, its memory a share of its limit; scrape targets
//! are the running tasks' overlay addresses; `swarmpilot agent`, as a process and as a global
//! service found through the Swarm, serves task stats to its token only.

#[path = "common/agent.rs"]
mod agent;
mod common;
#[path = "common/exporter.rs"]
mod exporter;
#[path = "common/prometheus.rs"]
mod prometheus_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agent::AgentService;
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
    // Another service read by the same reader in between keeps its own previous samples.
    let other_service = TestService::sleeping("metrics-other", 1, &[]);
    running_tasks(&swarm, &other_service.id, 1).await;
    let other = swarm.inspect_service(&other_service.id).await.unwrap();

    // The first sample of a container has nothing to compute a rate from.
    let first = read(&reader, &info, Resource::Cpu).await.unwrap_err();
    assert!(matches!(first, MetricError::WarmingUp(_)), "{first:?}");
    let other_first = read(&reader, &other, Resource::Cpu).await.unwrap_err();
    assert!(
        matches!(other_first, MetricError::WarmingUp(_)),
        "{other_first:?}"
    );
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
    let other_cpu = read(&reader, &other, Resource::Cpu).await.unwrap();
    assert_eq!(other_cpu.tasks.len(), 1, "{other_cpu:?}");

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

/// A `swarmpilot agent` process of this build on the host, killed on drop.
struct AgentProcess {
    child: std::process::Child,
    url: String,
}

impl AgentProcess {
    async fn start() -> AgentProcess {
        let port = prometheus_server::free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
            .args(["agent", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(agent::token_file())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start swarmpilot agent");
        let agent = AgentProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let health = format!("{}/healthz", agent.url);
        for _ in 0..100 {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return agent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("swarmpilot agent did not answer on {health}");
    }

    async fn stats(
        &self,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/stats", self.url))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("agent answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_swarm_task_containers_only_and_only_to_its_token() {
    let service = burning_service("agent-direct", &[]);
    let other = TestService::sleeping("agent-other", 1, &[]);
    let swarm = common::swarm().await;
    let task = running_tasks(&swarm, &service.id, 1).await.remove(0);
    let stranger = running_tasks(&swarm, &other.id, 1).await.remove(0);
    let container = task.container_id.clone().unwrap();
    let agent = AgentProcess::start().await;
    let ask = serde_json::json!({"tasks": [
        {"task": task.id, "container": container},
        // Another task's container under this task's ID: not this task's, so refused.
        {"task": task.id, "container": stranger.container_id.clone().unwrap()},
        {"task": "nosuchtask", "container": "0123456789ab"},
    ]});

    let (status, body) = agent.stats(None, ask.clone()).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = agent.stats(Some("not-the-agent-token"), ask.clone()).await;
    assert_eq!(status, 401, "{body}");

    let (status, body) = agent.stats(Some(agent::AGENT_TOKEN), ask).await;
    assert_eq!(status, 200, "{body}");
    let answers = body["tasks"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{body}");
    assert_eq!(answers[0]["task"], task.id.as_str());
    assert!(
        answers[0]["stats"]["cpuTotalNs"].as_u64().unwrap() > 0,
        "{body}"
    );
    let refused = answers[1]["error"].as_str().unwrap();
    assert!(
        refused.contains("is not the container of Swarm task"),
        "{body}"
    );
    let unknown = answers[2]["error"].as_str().unwrap();
    assert!(unknown.contains("no container"), "{body}");

    let too_many: Vec<serde_json::Value> = (0..513)
        .map(|i| serde_json::json!({"task": format!("t{i}"), "container": "c"}))
        .collect();
    let (status, body) = agent
        .stats(
            Some(agent::AGENT_TOKEN),
            serde_json::json!({"tasks": too_many}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "tasks", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_source_reads_through_the_agent_it_finds_in_the_swarm() {
    let swarm = Arc::new(common::swarm().await);
    let image = agent::agent_image();
    let published = prometheus_server::free_port();
    let agents = AgentService::deploy(&Engine::Host, image, published, "/var/run/docker.sock");
    running_tasks(&swarm, &agents.service.id, 1).await;
    let service = burning_service("agent-found", &[]);
    running_tasks(&swarm, &service.id, 1).await;
    let info = swarm.inspect_service(&service.id).await.unwrap();

    let reader = DockerReader::new(swarm.clone(), Duration::from_secs(20), 4)
        .with_agents(agents.config())
        .unwrap();
    // Until the agent listens its requests fail: wait for a first sample (warming up).
    let mut first = read(&reader, &info, Resource::Cpu).await;
    for _ in 0..100 {
        if matches!(first, Err(MetricError::WarmingUp(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        first = read(&reader, &info, Resource::Cpu).await;
    }
    assert!(matches!(first, Err(MetricError::WarmingUp(_))), "{first:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = read(&reader, &info, Resource::Cpu).await.unwrap();
    println!("cpu through the agent: {:.1}%", cpu.value);
    assert!(cpu.value > 0.0 && cpu.skipped.is_empty(), "{cpu:?}");

    // The same agents with a wrong token: the task is reported with the agent's refusal, never
    // read behind its back from the local engine.
    let wrong = std::env::temp_dir().join(format!("sp-test-wrong-token-{}", std::process::id()));
    std::fs::write(&wrong, "not-the-agent-token-at-all").unwrap();
    let mut config = agents.config();
    config.token_file = wrong;
    let refused = DockerReader::new(swarm.clone(), Duration::from_secs(20), 4)
        .with_agents(config)
        .unwrap();
    let error = read(&refused, &info, Resource::Memory).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("on node") && text.contains("the agent on that node") && text.contains("401"),
        "{text}"
    );
}
