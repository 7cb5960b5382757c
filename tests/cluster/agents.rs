//! Engine stats across nodes: with `swarmpilot agent` as a global service, the `docker` source
//! reads every task of a service spread over the three nodes that run tasks, and a service loaded only in its
//! tasks on the two workers scales up as it would on one node, for CPU and for memory. Without
//! an agent, each worker task is named with its node and the reason.

use std::sync::Arc;
use std::time::Duration;

use swarmpilot::metrics::inspect::inspect;
use swarmpilot::metrics::{Observer, PrometheusClientConfig, ScrapeConfig};
use swarmpilot::swarm::Swarm;

use crate::agent::{agent_image, AgentService};
use crate::cluster::Cluster;
use crate::common::{running_tasks, unique_name, Engine, TestService, TEST_IMAGE, TEST_NETWORK};
use crate::operator::{Operator, RUN_LABEL};
use crate::prometheus_server::free_port;

/// A service of three tasks, one per node, running `load` on the workers and sleeping on the
/// manager (`NODE` is the task's node, from a Swarm template).
fn spread_service(engine: &Engine, prefix: &str, labels: &[&str], load: &str) -> TestService {
    let script = format!("case \"$NODE\" in spc-w*) {load} ;; esac; sleep 86400");
    let mut extra = vec![
        "--replicas-max-per-node",
        "1",
        "--env",
        "NODE={{.Node.Hostname}}",
        "--limit-cpu",
        "0.1",
        "--limit-memory",
        "64m",
        "--network",
        TEST_NETWORK,
        "--endpoint-mode",
        "dnsrr",
    ];
    for label in labels {
        extra.extend(["--label", label]);
    }
    TestService::create(
        engine,
        prefix,
        &["--replicas", "3"],
        &extra,
        &[TEST_IMAGE, "sh", "-c", &script],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_loaded_on_the_workers_scales_up_through_the_agents() {
    let (cluster, _shared) = Cluster::shared().await;
    let manager = cluster.manager();
    let engine = manager.engine();
    let swarm = Arc::new(manager.swarm().await);
    let image = agent_image();
    cluster.load_image(image);
    // Each node's own engine socket: the nodes share the host's files, so the path names the node.
    let socket = manager
        .socket()
        .to_string_lossy()
        .replace(&manager.name, "{{.Node.Hostname}}");
    let agents = AgentService::deploy(&engine, image, free_port(), &socket);

    let run = unique_name("run");
    let run_label = format!("{RUN_LABEL}={run}");
    let cpu = spread_service(
        &engine,
        "spread-cpu",
        &["io.swarmpilot.cpu=50", "io.swarmpilot.max=6", &run_label],
        "while :; do :; done",
    );
    // 40 MiB of a 64 MiB limit in tmpfs (counted as the task's memory) on each worker.
    let memory = spread_service(
        &engine,
        "spread-memory",
        &["io.swarmpilot.memory=30", "io.swarmpilot.max=6", &run_label],
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null",
    );
    running_tasks(&swarm, &agents.service.id, cluster.task_nodes().len()).await;
    let tasks = running_tasks(&swarm, &cpu.id, 3).await;
    running_tasks(&swarm, &memory.id, 3).await;
    let nodes: std::collections::BTreeSet<_> = tasks.iter().map(|t| t.node_id.clone()).collect();
    assert_eq!(nodes.len(), 3, "one task per node: {tasks:?}");

    // Without agents, the manager's task is read in process and each worker's is named.
    let report = inspect(
        Arc::clone(&swarm),
        &cpu.name,
        PrometheusClientConfig::default(),
        None,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let text = report.to_string();
    let reading = report.metrics[0].result.as_ref().unwrap();
    assert_eq!(reading.tasks.len(), 1, "{text}");
    assert_eq!(reading.skipped.len(), 2, "{text}");
    assert!(
        text.contains("on node spc-w1: no agent on that node")
            && text.contains("deploy `swarmpilot agent` as a global service"),
        "{text}"
    );

    // With them, every task has a value (what `swarmpilot metrics SERVICE -o json` lists).
    let mut report = None;
    for _ in 0..30 {
        let read = inspect(
            Arc::clone(&swarm),
            &cpu.name,
            PrometheusClientConfig::default(),
            Some(agents.config()),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        let complete = read.metrics[0]
            .result
            .as_ref()
            .is_ok_and(|r| r.tasks.len() == 3);
        report = Some(read);
        if complete {
            break;
        }
        // The agents may still be starting to listen.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let report = report.expect("at least one report");
    println!("{report}");
    let reading = report.metrics[0].result.as_ref().unwrap();
    assert_eq!(reading.tasks.len(), 3, "{report}");
    assert!(reading.skipped.is_empty(), "{report}");

    let observer = Observer::new(
        Arc::clone(&swarm),
        PrometheusClientConfig::default(),
        ScrapeConfig::default(),
    )
    .unwrap()
    .with_agents(agents.config())
    .unwrap();
    let operator = Operator::start_observing(Arc::clone(&swarm), observer, &run);
    // HPA sets a task's CPU aside for its first 30 s: allow for that and a busy machine.
    let mut scaled = (3, 3);
    for _ in 0..180 {
        let replicas = |name: &str| {
            let swarm = Arc::clone(&swarm);
            let name = name.to_owned();
            async move {
                swarm
                    .inspect_service(&name)
                    .await
                    .unwrap()
                    .replicas
                    .unwrap()
            }
        };
        scaled = (replicas(&cpu.name).await, replicas(&memory.name).await);
        if scaled.0 > 3 && scaled.1 > 3 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let describe = |name: &str| format!("{:#?}", operator.status.get(name));
    assert!(scaled.0 > 3, "cpu: {}", describe(&cpu.name));
    assert!(scaled.1 > 3, "memory: {}", describe(&memory.name));
    println!("scaled up to {scaled:?} (cpu, memory)");
    operator.stop().await;
}
