//! The `scrape` source across nodes. The operator runs in the network
//! namespace of a container on the overlay network (as it does when deployed on the overlay):
//! from the host's namespace the tasks' overlay addresses cannot be reached.

use std::sync::Arc;

use swarmpilot::metrics::PrometheusClientConfig;

use crate::cluster::{Cluster, Role};
use crate::common::{running_tasks, unique_name, Engine, TestService, TEST_IMAGE, TEST_NETWORK};
use crate::operator::{wait_until, Operator, RUN_LABEL};
use crate::replicas_reach;

/// A service of `replicas` tasks on the overlay, each serving `sp_load N` at `:8080/metrics`,
/// N being `worker_load` on a worker and `manager_load` on the manager (`NODE` is the task's
/// node, from a Swarm template), with a scrape policy: a per-task average of 10, at most `max`
/// replicas, scale-down as soon as asked (no stabilization window).
pub(crate) fn load_service(
    engine: &Engine,
    prefix: &str,
    run: &str,
    replicas: u32,
    (manager_load, worker_load): (u32, u32),
    max: u32,
    extra: &[&str],
) -> TestService {
    let script = format!(
        "mkdir -p /w; case \"$NODE\" in spc-w*) L={worker_load} ;; *) L={manager_load} ;; esac; \
         echo \"sp_load $L\" > /w/metrics; exec httpd -f -p 8080 -h /w"
    );
    let policy = format!(
        "io.swarmpilot.policy={{minReplicas: 1, maxReplicas: {max}, interval: 1s, \
         metrics: [{{name: load, scrape: {{port: 8080, metric: sp_load}}, target: {{averageValue: 10}}}}], \
         behavior: {{scaleDown: {{stabilizationWindow: 0s}}}}}}"
    );
    let run_label = format!("{RUN_LABEL}={run}");
    let mut options = vec![
        "--env",
        "NODE={{.Node.Hostname}}",
        "--network",
        TEST_NETWORK,
        "--endpoint-mode",
        "dnsrr",
        "--label",
        &run_label,
        "--label",
        &policy,
    ];
    options.extend_from_slice(extra);
    let replicas = replicas.to_string();
    TestService::create(
        engine,
        prefix,
        &["--replicas", &replicas],
        &options,
        &[TEST_IMAGE, "sh", "-c", &script],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_reads_the_tasks_on_every_node_and_scales_on_the_workers_load() {
    let (cluster, _shared) = Cluster::shared().await;
    let engine = cluster.manager().engine();
    let run = unique_name("run");
    // The manager's task reads 0, the workers' 30: an average of 20 against a target of 10.
    let one_per_node = ["--replicas-max-per-node", "1"];
    let service = load_service(&engine, "scrape-spread", &run, 3, (0, 30), 5, &one_per_node);
    tokio::task::block_in_place(|| {
        cluster.on_overlay(TEST_NETWORK, || async {
            let swarm = Arc::new(cluster.swarm().await);
            let tasks = running_tasks(&swarm, &service.id, 3).await;
            let workers = tasks
                .iter()
                .filter_map(|t| t.node_id.as_deref().and_then(|id| cluster.node_of(id)))
                .filter(|node| node.role == Role::Worker)
                .count();
            assert_eq!(workers, 2, "one task per node: {tasks:?}");

            let operator =
                Operator::start_with(Arc::clone(&swarm), PrometheusClientConfig::default(), &run);
            let status = Arc::clone(&operator.status);
            wait_until("a decision from every task's reading", || {
                status
                    .get(&service.name)
                    .is_some_and(|s| s.decisions.iter().any(|d| d.current == 3 && d.desired > 3))
            })
            .await;
            let first = status.get(&service.name).unwrap();
            let load = &first.metrics[0];
            assert_eq!(load.error, None, "{first:?}");
            // Every task answered, the two on the workers included: 0 + 30 + 30, 20 a task.
            assert_eq!(load.value, Some(60.0), "{first:?}");
            assert_eq!(load.compared, Some(20.0), "{first:?}");
            // Five tasks asked for; the two no node can take (one per node) hold the count.
            replicas_reach(&*swarm, &service, 5).await;
            operator.stop().await;
        })
    });
}
