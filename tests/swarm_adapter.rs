//! The bollard adapter against the real local Swarm: reads, version-checked writes that change
//! nothing else, tasks with addresses, container stats and the service event stream.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{docker, running_tasks, spec_json, swarm, TestService, TEST_NETWORK};
use futures_util::StreamExt;
use swarmpilot::swarm::{ServiceEvent, Swarm, SwarmError};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn negotiates_the_engines_api_version() {
    let swarm = swarm().await;
    swarm.ping().await.unwrap();
    let engine = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(swarm.api_version(), engine);
}

#[tokio::test]
async fn inspects_and_lists_a_service_with_labels_limits_and_replicas() {
    let swarm = swarm().await;
    let svc = TestService::idle(
        "swarm-inspect",
        &[
            "--label",
            "io.swarmpilot.min=2",
            "--label",
            "com.docker.stack.namespace=shop",
            "--limit-cpu",
            "0.5",
            "--limit-memory",
            "64M",
        ],
    );
    let by_name = swarm.inspect_service(&svc.name).await.unwrap();
    assert_eq!(by_name.id, svc.id);
    assert_eq!(by_name.name, svc.name);
    assert_eq!(by_name.replicas, Some(0));
    assert_eq!(by_name.labels["io.swarmpilot.min"], "2");
    assert_eq!(by_name.stack.as_deref(), Some("shop"));
    assert_eq!(by_name.cpu_limit_nanos, Some(500_000_000));
    assert_eq!(by_name.memory_limit_bytes, Some(64 * 1024 * 1024));
    assert!(by_name.version > 0);

    let by_id = swarm.inspect_service(&svc.id).await.unwrap();
    assert_eq!(by_id, by_name);

    let listed = swarm.list_services().await.unwrap();
    let found: Vec<_> = listed.iter().filter(|s| s.id == svc.id).collect();
    assert_eq!(found, vec![&by_name]);
}

#[tokio::test]
async fn a_missing_service_is_not_found() {
    let swarm = swarm().await;
    let name = common::unique_name("swarm-missing");
    let err = swarm.inspect_service(&name).await.unwrap_err();
    assert!(
        matches!(err, SwarmError::NotFound(ref n) if *n == name),
        "{err:?}"
    );
    let err = swarm
        .update_labels(&name, 1, &labels(&[("a", "b")]), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, SwarmError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn a_label_update_changes_only_the_labels() {
    let swarm = swarm().await;
    let svc = TestService::idle(
        "swarm-labels",
        &[
            "--label",
            "keep=1",
            "--label",
            "drop=1",
            "--container-label",
            "c=1",
            "--env",
            "A=1",
            "--limit-memory",
            "32M",
            "--reserve-cpu",
            "0.1",
            "--restart-condition",
            "on-failure",
            "--restart-max-attempts",
            "3",
            "--update-parallelism",
            "2",
            "--update-delay",
            "5s",
            "--update-failure-action",
            "rollback",
            "--rollback-parallelism",
            "1",
            "--placement-pref",
            "spread=node.labels.zone",
            "--health-cmd",
            "true",
            "--health-interval",
            "7s",
            "--stop-grace-period",
            "3s",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=1m",
            "--dns-option",
            "ndots:2",
            "--hostname",
            "h",
            "--user",
            "1000",
            "--workdir",
            "/tmp",
        ],
    );
    let before = spec_json(&svc.name);
    let read = swarm.inspect_service(&svc.id).await.unwrap();
    swarm
        .update_labels(
            &svc.id,
            read.version,
            &labels(&[("added", "x y")]),
            &["drop".into()],
        )
        .await
        .unwrap();

    let after = spec_json(&svc.name);
    let mut expected = before.clone();
    expected["Labels"] = serde_json::json!({"keep": "1", "added": "x y"});
    assert_eq!(after, expected, "only the labels may change");
    let reread = swarm.inspect_service(&svc.id).await.unwrap();
    assert!(reread.version > read.version);
    assert_eq!(reread.labels, labels(&[("added", "x y"), ("keep", "1")]));
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_and_the_concurrent_change_survives() {
    let swarm = swarm().await;
    let svc = TestService::idle("swarm-conflict", &[]);
    let stale = swarm.inspect_service(&svc.id).await.unwrap();
    docker(&[
        "service",
        "update",
        "--detach",
        "--label-add",
        "concurrent=1",
        &svc.name,
    ]);

    let err = swarm
        .update_labels(&svc.id, stale.version, &labels(&[("mine", "1")]), &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, SwarmError::Conflict { version, .. } if version == stale.version),
        "{err:?}"
    );
    let err = swarm
        .update_replicas(&svc.id, stale.version, 3)
        .await
        .unwrap_err();
    assert!(matches!(err, SwarmError::Conflict { .. }), "{err:?}");

    let now = swarm.inspect_service(&svc.id).await.unwrap();
    assert_eq!(now.labels, labels(&[("concurrent", "1")]));
    assert_eq!(now.replicas, Some(0));
}

#[tokio::test]
async fn the_engine_refuses_a_write_that_loses_the_race_after_the_read() {
    // The adapter re-reads the spec before writing; a change landing between that re-read and
    // the write is caught by the engine itself. Simulate it by writing twice at one version.
    let swarm = swarm().await;
    let svc = TestService::idle("swarm-race", &[]);
    let read = swarm.inspect_service(&svc.id).await.unwrap();
    swarm
        .update_labels(&svc.id, read.version, &labels(&[("first", "1")]), &[])
        .await
        .unwrap();
    let err = swarm
        .update_labels(&svc.id, read.version, &labels(&[("second", "1")]), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, SwarmError::Conflict { .. }), "{err:?}");
    let now = swarm.inspect_service(&svc.id).await.unwrap();
    assert_eq!(now.labels, labels(&[("first", "1")]));
}

#[tokio::test]
async fn a_global_service_has_no_replica_count() {
    let swarm = swarm().await;
    let svc = TestService::global("swarm-global");
    let info = swarm.inspect_service(&svc.id).await.unwrap();
    assert_eq!(info.replicas, None);
    let err = swarm
        .update_replicas(&svc.id, info.version, 2)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SwarmError::NotReplicated(ref id) if *id == svc.id),
        "{err:?}"
    );
}

#[tokio::test]
async fn running_tasks_have_addresses_and_stats_and_survive_label_and_replica_updates() {
    let swarm = swarm().await;
    let svc = TestService::sleeping("swarm-tasks", 1, &[]);
    let first = running_tasks(&swarm, &svc.id, 1).await;
    let task = &first[0];
    assert_eq!(task.service_id, svc.id);
    assert!(task.node_id.is_some());
    assert!(task.since.is_some());
    let address = task.addresses[TEST_NETWORK];
    let container = task
        .container_id
        .clone()
        .expect("a running task has a container");
    let engine_ip = docker(&[
        "container",
        "inspect",
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{TEST_NETWORK}\").IPAddress}}}}"),
        &container,
    ]);
    assert_eq!(address.to_string(), engine_ip);

    let stats = swarm.container_stats(&container).await.unwrap();
    assert!(stats.cpu_total_ns > 0, "{stats:?}");
    assert!(stats.memory_working_set_bytes > 0, "{stats:?}");
    assert!(stats.online_cpus.unwrap_or(0) > 0, "{stats:?}");
    assert!(stats.system_cpu_ns.unwrap_or(0) > 0, "{stats:?}");

    // A label update must not restart the task.
    let info = swarm.inspect_service(&svc.id).await.unwrap();
    swarm
        .update_labels(
            &svc.id,
            info.version,
            &labels(&[("io.swarmpilot.state", "{}")]),
            &[],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks = swarm.list_tasks(&svc.id).await.unwrap();
    assert_eq!(tasks.len(), 1, "a label update started a task: {tasks:?}");
    assert_eq!(running_tasks(&swarm, &svc.id, 1).await[0].id, task.id);

    // Scaling out adds a task and keeps the first one; only the replica count changes.
    let before = spec_json(&svc.name);
    let info = swarm.inspect_service(&svc.id).await.unwrap();
    swarm
        .update_replicas(&svc.id, info.version, 2)
        .await
        .unwrap();
    assert_eq!(
        swarm.inspect_service(&svc.id).await.unwrap().replicas,
        Some(2)
    );
    let mut expected = before;
    expected["Mode"]["Replicated"]["Replicas"] = serde_json::json!(2);
    assert_eq!(
        spec_json(&svc.name),
        expected,
        "only the replica count may change"
    );
    let two = running_tasks(&swarm, &svc.id, 2).await;
    assert!(two.iter().any(|t| t.id == task.id), "{two:?}");
}

/// The next event about service `id` (others' tests make events too), or `None` after `wait`.
async fn next_event_of(
    events: &mut swarmpilot::swarm::EventStream,
    id: &str,
    wait: Duration,
) -> Option<ServiceEvent> {
    loop {
        let event = tokio::time::timeout(wait, events.next()).await.ok()?;
        let event = event.expect("the event stream ended").expect("an event");
        let about = match &event {
            ServiceEvent::Created { id, .. }
            | ServiceEvent::Updated { id, .. }
            | ServiceEvent::Removed { id, .. } => id.clone(),
        };
        if about == id {
            return Some(event);
        }
    }
}

#[tokio::test]
async fn the_event_stream_reports_create_update_and_remove() {
    let swarm = swarm().await;
    let mut events = swarm.events();

    // The subscription starts on the first poll: touch a marker service until its update is
    // seen, so the stream is known to be live before the service under test exists.
    let marker = TestService::idle("swarm-events-marker", &[]);
    let mut live = false;
    for attempt in 0..30 {
        let info = swarm.inspect_service(&marker.id).await.unwrap();
        let n = attempt.to_string();
        swarm
            .update_labels(&marker.id, info.version, &labels(&[("n", &n)]), &[])
            .await
            .unwrap();
        if let Some(ServiceEvent::Updated { .. }) =
            next_event_of(&mut events, &marker.id, Duration::from_secs(2)).await
        {
            live = true;
            break;
        }
    }
    assert!(live, "no event about the marker service ever came");

    let svc = TestService::idle("swarm-events", &[]);
    let info = swarm.inspect_service(&svc.id).await.unwrap();
    swarm
        .update_labels(&svc.id, info.version, &labels(&[("e", "1")]), &[])
        .await
        .unwrap();
    let (id, name) = (svc.id.clone(), svc.name.clone());
    drop(svc);

    let wait = Duration::from_secs(60);
    let created = ServiceEvent::Created {
        id: id.clone(),
        name: name.clone(),
    };
    assert_eq!(next_event_of(&mut events, &id, wait).await, Some(created));
    let updated = ServiceEvent::Updated {
        id: id.clone(),
        name: name.clone(),
    };
    assert_eq!(next_event_of(&mut events, &id, wait).await, Some(updated));
    let removed = ServiceEvent::Removed {
        id: id.clone(),
        name,
    };
    assert_eq!(next_event_of(&mut events, &id, wait).await, Some(removed));
}

#[tokio::test]
async fn scale_sets_replicas_and_labels_in_one_version_checked_update() {
    let swarm = swarm().await;
    let svc = TestService::idle("swarm-scale", &["--label", "keep=1"]);
    let read = swarm.inspect_service(&svc.id).await.unwrap();
    let before = spec_json(&svc.name);
    swarm
        .scale(
            &svc.id,
            read.version,
            3,
            &labels(&[("io.swarmpilot.state", "{}")]),
        )
        .await
        .unwrap();

    let mut expected = before;
    expected["Mode"]["Replicated"]["Replicas"] = serde_json::json!(3);
    expected["Labels"] = serde_json::json!({"keep": "1", "io.swarmpilot.state": "{}"});
    assert_eq!(
        spec_json(&svc.name),
        expected,
        "only replicas and labels change"
    );

    let stale = swarm
        .scale(
            &svc.id,
            read.version,
            5,
            &labels(&[("io.swarmpilot.state", "[]")]),
        )
        .await;
    assert!(
        matches!(stale, Err(SwarmError::Conflict { .. })),
        "{stale:?}"
    );
    let reread = swarm.inspect_service(&svc.id).await.unwrap();
    assert_eq!(reread.replicas, Some(3));
    assert_eq!(
        reread.labels.get("io.swarmpilot.state").map(String::as_str),
        Some("{}")
    );
}
