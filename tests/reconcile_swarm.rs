//! The reconcile loop on the real local Swarm, driven by a metric the test sets through a real
//! Prometheus server: HPA counts, rate limits, stabilization, recommend mode, a garbage policy
//! beside a good one, and a write that loses a race; in [`lifecycle`], stack redeploys and
//! rolling updates with the operator running; in [`queue_worker`], workers scaled 0 → N → 0
//! on a real Redis list and a real RabbitMQ queue they drain.

mod common;
#[path = "common/crafted_model.rs"]
mod crafted_model;
#[path = "common/exporter.rs"]
mod exporter;
#[path = "common/operator.rs"]
mod operator;
#[path = "common/prometheus.rs"]
mod prometheus_server;
#[path = "common/rabbitmq.rs"]
mod rabbitmq_server;
#[path = "common/raced.rs"]
mod raced;
#[path = "common/redis.rs"]
mod redis_server;

#[path = "reconcile_swarm/lifecycle.rs"]
mod lifecycle;
#[path = "reconcile_swarm/queue_worker.rs"]
mod queue_worker;
#[path = "reconcile_swarm/schedule_window.rs"]
mod schedule_window;

use std::sync::Arc;
use std::time::Duration;

use common::{docker, swarm, unique_name};
use exporter::Behavior;
use operator::{load_source, service_with_policy, Operator};
use prometheus_server::PrometheusServer;
use raced::RacedSwarm;
use swarmpilot::decide::Reason;
use swarmpilot::policy::EventReason;
use swarmpilot::reconcile::{DecisionRecord, Trigger};
use swarmpilot::swarm::Swarm;

fn policy(name: &str, extra_spec: &str) -> String {
    bare_policy(
        name,
        &format!(
            "  metrics:
    - name: load
      prometheus: {{query: 'sp_load{{job=\"test\"}}'}}
      target: {{averageValue: 10}}
{extra_spec}"
        ),
    )
}

/// A policy between 1 and 8 replicas, reconciled every second, with `spec` lines and nothing
/// else (no metric).
fn bare_policy(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {{name: {name}}}
spec:
  minReplicas: 1
  maxReplicas: 8
  interval: 1s
{spec}"
    )
}

async fn replicas_of<S: Swarm>(swarm: &S, id: &str) -> u64 {
    swarm.inspect_service(id).await.unwrap().replicas.unwrap()
}

/// Polls the replica count until it is `want`, returning every distinct count seen on the way.
/// Polls until the service has `want` replicas and returns the counts seen on the way,
/// starting with `from`: the count before the change, so a step the operator takes
/// before the first poll is still in the sequence.
async fn wait_for_replicas<S: Swarm>(swarm: &S, id: &str, from: u64, want: u64) -> Vec<u64> {
    let mut seen = vec![from];
    for _ in 0..900 {
        let now = replicas_of(swarm, id).await;
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if now == want {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service {id} never reached {want} replicas; saw {seen:?}");
}

/// Waits until Prometheus answers the gauge with `value`, so the next reconcile sees it.
async fn wait_prometheus_sees(prometheus: &PrometheusServer, value: f64) {
    for _ in 0..300 {
        if prometheus_load(prometheus).await.as_deref() == Some(value.to_string().as_str()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Prometheus never saw sp_load = {value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_to_the_hpa_count_within_the_rate_limit_and_down_only_after_the_window() {
    let swarm = Arc::new(swarm().await);
    let (exporter, prometheus) = load_source(10.0).await;
    let run = unique_name("run");
    let service = service_with_policy("reconcile-hpa", &run, |name| {
        policy(
            name,
            "  behavior:
    scaleUp: {policies: [{type: Replicas, value: 2, period: 10s}]}
    scaleDown: {stabilizationWindow: 8s, policies: [{type: Percent, value: 100, period: 1s}]}
",
        )
    });
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);

    // 50 against a target of 10 per replica is 5 replicas, reached 2 at a time per 10 s.
    exporter.text("sp_load 50\n");
    wait_prometheus_sees(&prometheus, 50.0).await;
    let seen = wait_for_replicas(&*swarm, &service.id, 1, 5).await;
    assert_eq!(seen, [1, 3, 5], "scale-up limited to 2 replicas per 10 s");
    let status = operator.status.get(&service.name).unwrap();
    let first_up = status.decisions.iter().find(|d| d.desired == 3).unwrap();
    assert_eq!(first_up.reason, Reason::ScaleUpLimit, "{first_up:?}");
    assert!(first_up.applied);

    // Back to 10: one replica, but only once the 8 s window has no higher recommendation.
    let lowered_at = chrono::Utc::now();
    exporter.text("sp_load 10\n");
    wait_prometheus_sees(&prometheus, 10.0).await;
    let seen_at = chrono::Utc::now();
    let seen = wait_for_replicas(&*swarm, &service.id, 5, 1).await;
    assert_eq!(seen, [5, 1]);
    let status = operator.status.get(&service.name).unwrap();
    let held: Vec<_> = status
        .decisions
        .iter()
        .filter(|d| d.at >= seen_at && d.desired == 5)
        .collect();
    assert!(
        !held.is_empty(),
        "decisions after the drop hold at 5: {:?}",
        status.decisions
    );
    assert!(
        held.iter().all(|d| d.reason == Reason::Stabilized),
        "{held:?}"
    );
    let down = status
        .decisions
        .iter()
        .find(|d| d.desired == 1 && d.at >= seen_at)
        .unwrap();
    // The last decision made before the load dropped recommended 5: the window starts there.
    let last_high = status
        .decisions
        .iter()
        .rfind(|d| d.at < lowered_at)
        .unwrap();
    assert!(
        down.at - last_high.at >= chrono::Duration::seconds(8),
        "scaled in at {} though 5 was recommended at {}",
        down.at,
        last_high.at
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_mode_never_writes_and_a_garbage_policy_does_not_stop_the_others() {
    let swarm = Arc::new(swarm().await);
    let (_exporter, prometheus) = load_source(30.0).await;
    let run = unique_name("run");
    let enforced = service_with_policy("reconcile-enforce", &run, |name| policy(name, ""));
    let recommended = service_with_policy("reconcile-recommend", &run, |name| {
        policy(name, "").replace("interval: 1s", "interval: 1s\n  mode: recommend")
    });
    let garbage = service_with_policy("reconcile-garbage", &run, |_| {
        "spec: [not, a, policy".to_owned()
    });
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);

    wait_for_replicas(&*swarm, &enforced.id, 1, 3).await;
    for _ in 0..300 {
        let decided = operator
            .status
            .get(&recommended.name)
            .map(|status| status.decisions.iter().filter(|d| d.desired == 3).count())
            .unwrap_or(0);
        if decided >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = operator.status.get(&recommended.name).unwrap();
    assert!(
        status.decisions.iter().filter(|d| d.desired == 3).count() >= 3,
        "{:?}",
        status.decisions
    );
    assert!(
        status.decisions.iter().all(|d| !d.applied),
        "{:?}",
        status.decisions
    );
    assert_eq!(
        replicas_of(&*swarm, &recommended.id).await,
        1,
        "recommend mode wrote"
    );

    let status = operator.status.get(&garbage.name).unwrap();
    assert!(status.policy.is_none());
    assert!(!status.diagnostics.is_empty());
    assert!(
        status
            .diagnostics
            .iter()
            .any(|d| d.contains("io.swarmpilot.policy")),
        "{:?}",
        status.diagnostics
    );
    assert_eq!(replicas_of(&*swarm, &garbage.id).await, 1);
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_loses_a_race_is_retried_and_never_overwrites_the_other_change() {
    let swarm = Arc::new(RacedSwarm::new(swarm().await));
    let (_exporter, prometheus) = load_source(20.0).await;
    let run = unique_name("run");
    let service = service_with_policy("reconcile-race", &run, |name| policy(name, ""));
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);

    wait_for_replicas(&*swarm, &service.id, 1, 2).await;
    assert!(
        swarm.writes() >= 2,
        "the first write lost the race and was retried"
    );
    let labels = swarm.inspect_service(&service.id).await.unwrap().labels;
    assert_eq!(
        labels.get("concurrent").map(String::as_str),
        Some("yes"),
        "the concurrent change survived"
    );
    assert!(
        labels.contains_key("io.swarmpilot.state"),
        "the scale was recorded with the state label"
    );
    operator.stop().await;
}

/// A scale's own write wakes the service's loop, and runs no reconcile: the next one comes at
/// the interval. A user's `docker service scale` right after runs one at once, and each decision
/// says what ran it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_own_scale_runs_no_reconcile_and_a_users_scale_runs_one_at_once() {
    let swarm = Arc::new(swarm().await);
    let (_exporter, prometheus) = load_source(30.0).await;
    let run = unique_name("run");
    let service = service_with_policy("reconcile-own", &run, |name| {
        policy(name, "").replace("interval: 1s", "interval: 5s")
    });
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    let decisions = || -> Vec<DecisionRecord> {
        operator
            .status
            .get(&service.name)
            .map(|status| status.decisions.into_iter().collect())
            .unwrap_or_default()
    };

    // 30 against a target of 10 per replica: 3 replicas, written by the first reconcile. Its
    // write wakes the loop within milliseconds; the next decision is the interval's.
    wait_for_replicas(&*swarm, &service.id, 1, 3).await;
    operator::wait_until("the decision after the scale", || decisions().len() >= 2).await;
    let seen = decisions();
    let triggers: Vec<Trigger> = seen.iter().map(|d| d.trigger).collect();
    assert_eq!(triggers, [Trigger::Started, Trigger::Interval], "{seen:?}");
    assert!(seen[0].applied && seen[0].desired == 3, "{seen:?}");

    // Right after that decision, the next interval's is seconds away.
    docker(&[
        "service",
        "scale",
        "--detach",
        &format!("{}=5", service.name),
    ]);
    operator::wait_until("a decision on the user's count", || {
        decisions().iter().any(|d| d.current == 5)
    })
    .await;
    let seen = decisions();
    let on_users = seen.iter().position(|d| d.current == 5).unwrap();
    assert_eq!(on_users, 2, "{seen:?}");
    assert_eq!(seen[2].trigger, Trigger::ReplicasChanged, "{seen:?}");
    // The metrics win, as HPA's do: the window holds no recommendation above 3. That scale's
    // own write runs no reconcile either.
    assert!(seen[2].applied && seen[2].desired == 3, "{seen:?}");
    wait_for_replicas(&*swarm, &service.id, 5, 3).await;
    operator::wait_until("the decision after the scale back", || {
        decisions().len() >= 4
    })
    .await;
    let seen = decisions();
    assert_eq!(seen[3].trigger, Trigger::Interval, "{seen:?}");
    operator.stop().await;
}

/// After a restart, the loop asks Prometheus for the history its forecast ensemble reads (up to an
/// hour): one range query, one sample per policy interval, as the loop would have read them; a
/// Prometheus that cannot be reached leaves the history to fill as the loop reads the metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_models_history_is_backfilled_from_prometheus_at_start_up() {
    use swarmpilot::metrics::{PrometheusClient, PrometheusClientConfig};
    use swarmpilot::models::SignalMemory;
    use swarmpilot::reconcile::signals::{backfill, ModelRunner};
    use swarmpilot::swarm::ServiceInfo;

    let (exporter, prometheus) = load_source(10.0).await;
    wait_prometheus_sees(&prometheus, 10.0).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    exporter.text("sp_load 20\n");
    wait_prometheus_sees(&prometheus, 20.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let text = policy(
        "backfill",
        "  forecast: {model: traffic-forecast, metric: load, horizon: 60s}\n",
    );
    let spec = swarmpilot::policy::parse(&text).unwrap().spec;
    let service = ServiceInfo {
        id: "backfill".into(),
        name: "backfill".into(),
        version: 1,
        labels: Default::default(),
        replicas: Some(1),
        ..Default::default()
    };
    let client = |url: String| {
        PrometheusClient::new(PrometheusClientConfig {
            default_url: Some(url),
            timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .unwrap()
    };
    let runner = ModelRunner::default();
    let now = chrono::Utc::now();

    let mut memory = SignalMemory::default();
    let done = backfill(
        &mut memory,
        &spec,
        &runner,
        &client(prometheus.url.clone()),
        &service,
        now,
    )
    .await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].metric, "load");
    let added = *done[0].result.as_ref().unwrap();
    let kept: Vec<_> = memory.series("load").copied().collect();
    assert_eq!(kept.len(), added);
    assert!(added >= 6, "at least 6 s of history, got {kept:?}");
    assert!(
        kept.windows(2)
            .all(|w| w[1].at - w[0].at == chrono::Duration::seconds(1)),
        "one sample per 1 s interval: {kept:?}"
    );
    assert!(kept
        .iter()
        .all(|s| s.at <= now && now - s.at <= chrono::Duration::hours(1)));
    let values: Vec<f64> = kept.iter().map(|s| s.value).collect();
    let first_20 = values.iter().position(|&v| v == 20.0).unwrap();
    assert!(values[..first_20].iter().all(|&v| v == 10.0), "{values:?}");
    assert!(values[first_20..].iter().all(|&v| v == 20.0), "{values:?}");
    assert!(first_20 >= 3, "the 10s before the 20s: {values:?}");

    let refused = format!("http://{}", exporter::refused_address());
    let mut untouched = SignalMemory::default();
    let done = backfill(
        &mut untouched,
        &spec,
        &runner,
        &client(refused),
        &service,
        now,
    )
    .await;
    assert!(done[0].result.is_err(), "{done:?}");
    assert_eq!(untouched.series("load").count(), 0);
}

/// What a policy may not make the operator do, each refused on its own service with a
/// diagnostic naming the field, while another service keeps scaling: a replica count over the
/// operator's ceiling, a Prometheus URL the operator did not allow (a metadata address here),
/// an unregistered receiver, a model file outside the model directory, and a crafted model in
/// it whose optimization would allocate 2 GiB (stopped in its check process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_policies_urls_and_model_paths_stop_only_their_own_service() {
    let swarm = Arc::new(swarm().await);
    let (_exporter, prometheus) = load_source(30.0).await;
    let run = unique_name("run");
    let scaling = service_with_policy("refuse-ok", &run, |name| policy(name, ""));
    let too_large = service_with_policy("refuse-ceiling", &run, |name| {
        policy(name, "").replace("maxReplicas: 8", "maxReplicas: 5000")
    });
    let metadata = service_with_policy("refuse-url", &run, |name| {
        policy(name, "").replace(
            "prometheus: {query:",
            "prometheus: {server: 'http://169.254.169.254/latest/meta-data', query:",
        )
    });
    let receiver = service_with_policy("refuse-receiver", &run, |name| {
        policy(
            name,
            "  anomaly: {model: traffic-states, inputs: {requests: load}, notify: [{receiver: pager}]}\n",
        )
    });
    let model = service_with_policy("refuse-model", &run, |name| {
        policy(
            name,
            "  forecast: {model: /dev/zero, metric: load, horizon: 60s}\n",
        )
    });
    let crafted = service_with_policy("refuse-graph", &run, |name| {
        policy(
            name,
            "  forecast: {model: crafted.onnx, metric: load, horizon: 60s}\n",
        )
    });
    let models = operator::model_dir(&run);
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("crafted.onnx"), crafted_model::crafted_model()).unwrap();
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);

    wait_for_replicas(&*swarm, &scaling.id, 1, 3).await;
    let diagnostics = |name: &str| {
        operator
            .status
            .get(name)
            .map(|status| status.diagnostics.join("\n"))
            .unwrap_or_default()
    };
    operator::wait_until("the refused policies' diagnostics", || {
        !diagnostics(&too_large.name).is_empty()
            && !diagnostics(&metadata.name).is_empty()
            && !diagnostics(&receiver.name).is_empty()
    })
    .await;
    let expected = [
        (
            &too_large.name,
            "spec.maxReplicas: must be at most 1000 (the ceiling of a policy), got 5000",
        ),
        (
            &metadata.name,
            "spec.metrics[0].prometheus.server: http://169.254.169.254/latest/meta-data is not a registered prometheus server and is not under an --allow-url prefix of the operator",
        ),
        (
            &receiver.name,
            "spec.anomaly.notify[0].receiver: no webhook server named \"pager\" is registered with the operator",
        ),
    ];
    for (name, message) in expected {
        let found = diagnostics(name);
        println!("{name}: {found}");
        assert!(found.contains(message), "{name}: {found}");
        // Refused before any decision, the failure is still an event the status API lists.
        let status = operator.status.get(name).unwrap();
        assert!(
            status.events.iter().any(|event| {
                event.reason == swarmpilot::policy::EventReason::InvalidPolicy
                    && found.contains(event.message.trim_end_matches('…'))
            }),
            "{name}: {:?}",
            status.events
        );
    }
    // The models are refused by the model cache: the policy applies, the forecast is skipped
    // and every decision says why.
    let model_note = |service: &str| {
        operator
            .status
            .get(service)
            .and_then(|status| status.decisions.back().map(|d| d.detail.join("\n")))
            .unwrap_or_default()
    };
    operator::wait_until("the models' refusals in decisions", || {
        model_note(&model.name).contains("model /dev/zero: is not a shipped model")
            && model_note(&crafted.name)
                .contains("model crafted.onnx: loading it stopped under the 512 MiB")
    })
    .await;
    println!("{}: {}", model.name, model_note(&model.name));
    println!("{}: {}", crafted.name, model_note(&crafted.name));
    std::fs::remove_dir_all(&models).unwrap();
    for refused in [&too_large, &metadata, &receiver] {
        assert_eq!(
            replicas_of(&*swarm, &refused.id).await,
            1,
            "{}",
            refused.name
        );
    }
    // Meanwhile the good service scaled to the HPA count and stays there.
    assert_eq!(replicas_of(&*swarm, &scaling.id).await, 3);
    operator.stop().await;
}

/// The `sp_load` gauge as Prometheus answers it now: `None` while it has no sample (the
/// exporter fails and Prometheus marked the series stale).
async fn prometheus_load(prometheus: &PrometheusServer) -> Option<String> {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/query", prometheus.url))
        .query(&[("query", "sp_load")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_owned)
}

fn state_label(
    labels: &std::collections::BTreeMap<String, String>,
) -> swarmpilot::policy::ScaleState {
    serde_json::from_str(labels.get("io.swarmpilot.state").expect("a state label")).unwrap()
}

/// KEDA's scale to zero: idle at once when never active, activated to HPA's count from zero
/// when the load rises above the activation, idle again only after `cooldownPeriod` of quiet,
/// and the cooldown is measured from the label's `lastActive` across an operator restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_to_zero_after_the_cooldown_and_back_on_activation_across_a_restart() {
    let swarm = Arc::new(swarm().await);
    let (exporter, prometheus) = load_source(0.0).await;
    let run = unique_name("run");
    let service = service_with_policy("reconcile-zero", &run, |name| {
        policy(name, "  cooldownPeriod: 6s\n")
            .replace("minReplicas: 1", "minReplicas: 0")
            .replace("maxReplicas: 8", "maxReplicas: 4")
    });
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);

    // Never active: idle at once (KEDA scales a new target to its minimum).
    assert_eq!(wait_for_replicas(&*swarm, &service.id, 1, 0).await, [1, 0]);
    // 25 is above the activation (0): at once to ceil(25 / 10) = 3, HPA's count from zero.
    exporter.text("sp_load 25\n");
    wait_prometheus_sees(&prometheus, 25.0).await;
    assert_eq!(wait_for_replicas(&*swarm, &service.id, 0, 3).await, [0, 3]);
    let status = operator.status.get(&service.name).unwrap();
    let woke = status.decisions.iter().find(|d| d.desired == 3).unwrap();
    assert_eq!(woke.reason, Reason::Activated, "{woke:?}");

    // A few more active reads, then quiet: the label learns the last active read (later than
    // the activation it was written with), and a new operator takes over mid-cooldown.
    tokio::time::sleep(Duration::from_secs(2)).await;
    exporter.text("sp_load 0\n");
    wait_prometheus_sees(&prometheus, 0.0).await;
    let mut last_active = None;
    for _ in 0..300 {
        let labels = swarm.inspect_service(&service.id).await.unwrap().labels;
        let state = state_label(&labels);
        if state.last_active.is_some_and(|at| at > woke.at) {
            last_active = state.last_active;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_active = last_active.expect("the state label records when the service went quiet");
    operator.stop().await;
    let restarted = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    assert_eq!(wait_for_replicas(&*swarm, &service.id, 3, 0).await, [3, 0]);
    let status = restarted.status.get(&service.name).unwrap();
    let idle = status.decisions.iter().find(|d| d.desired == 0).unwrap();
    assert_eq!(idle.reason, Reason::Idle, "{idle:?}");
    assert!(
        idle.at - last_active >= chrono::Duration::seconds(6),
        "idle at {} though a metric was above activation at {last_active}",
        idle.at
    );
    let state = state_label(&swarm.inspect_service(&service.id).await.unwrap().labels);
    let reasons: Vec<_> = state.log.iter().map(|e| e.reason).collect();
    for wanted in [EventReason::Activated, EventReason::Idle] {
        assert!(reasons.contains(&wanted), "{reasons:?}");
    }
    restarted.stop().await;
}

/// KEDA's `fallback.failureThreshold`: two failed reads in a row are no outage, three are.
/// The exporter behind a real Prometheus fails on demand; Prometheus then marks the series
/// stale, and the read finds no sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_needs_three_failed_reads_in_a_row() {
    let swarm = Arc::new(swarm().await);
    let (exporter, prometheus) = load_source(10.0).await;
    let run = unique_name("run");
    let service = service_with_policy("reconcile-flap", &run, |name| {
        policy(name, "  fallback: {replicas: 3, failureThreshold: 3}\n")
            .replace("interval: 1s", "interval: 4s")
    });
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    let failed_reads = |so_far: u32| {
        let status = operator.status.get(&service.name);
        // The headline may be cut: the whole sentence is then in the detail.
        let needle = format!("{so_far} of 3 reads before fallback");
        status.is_some_and(|s| {
            s.decisions.iter().any(|d| {
                d.message.contains(&needle) || d.detail.iter().any(|l| l.contains(&needle))
            })
        })
    };

    // Fails twice in a row: the second failed read is seen, then the exporter answers again
    // well before the next read (4 s).
    exporter.set(Behavior::Status(500));
    operator::wait_until("two failed reads", || failed_reads(2)).await;
    exporter.text("sp_load 10\n");
    wait_prometheus_sees(&prometheus, 10.0).await;
    let good_again = chrono::Utc::now();
    for _ in 0..100 {
        let read = operator
            .status
            .get(&service.name)
            .is_some_and(|s| s.decisions.iter().any(|d| d.at > good_again));
        if read {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = operator.status.get(&service.name).unwrap();
    assert!(
        status
            .decisions
            .iter()
            .all(|d| d.reason != Reason::Fallback),
        "{:?}",
        status.decisions
    );
    assert_eq!(replicas_of(&*swarm, &service.id).await, 1);

    // Three in a row: the fallback's 3 replicas.
    exporter.set(Behavior::Status(500));
    for _ in 0..100 {
        if prometheus_load(&prometheus).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(wait_for_replicas(&*swarm, &service.id, 1, 3).await, [1, 3]);
    let status = operator.status.get(&service.name).unwrap();
    let fell_back = status.decisions.iter().find(|d| d.desired == 3).unwrap();
    assert_eq!(fell_back.reason, Reason::Fallback, "{fell_back:?}");
    operator.stop().await;
}
