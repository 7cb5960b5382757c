//! A queue worker scaled on its backlog, 0 → N → 0, on the real Swarm: a real `redis-server`
//! of the test, a policy reading the list's length through a registered server (its password
//! from a secret file), and worker tasks that pop the list until it is empty.
//!
//! The workers reach Redis on the host's loopback: they run on the `host` network (a task's
//! own network namespace has a loopback of its own, and no overlay reaches the host's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use swarmpilot::decide::Reason;
use swarmpilot::metrics::PrometheusClientConfig;
use swarmpilot::policy::EventReason;
use swarmpilot::servers::{AllowList, Outbound, Registry};
use swarmpilot::swarm::Swarm;

use crate::common::{ensure_test_image, running_tasks, swarm, Engine, TestService, TEST_IMAGE};
use crate::operator::{add_policy, Operator, RUN_LABEL};
use crate::redis_server::RedisServer;
use crate::{state_label, wait_for_replicas};

const PASSWORD: &str = "sp-queue-worker-pw";
/// Messages pushed, and messages per replica: ceil(40 / 10) = 4 workers.
const MESSAGES: usize = 40;
const PER_REPLICA: usize = 10;
const COOLDOWN_SECS: i64 = 10;

/// A worker of busybox's `sh` and `nc`: pops one message (`LPOP` in Redis's inline protocol),
/// takes half a second over it, and waits a second when the list is empty.
fn worker_script(port: u16, list: &str) -> String {
    format!(
        r#"while true; do
  out=$(printf 'AUTH %s\r\nLPOP {list}\r\nQUIT\r\n' "$REDIS_PASSWORD" | nc 127.0.0.1 {port})
  case "$out" in
    *'$-1'*) sleep 1 ;;
    *'$'*) sleep 0.5 ;;
    *) echo "redis: $out" >&2; sleep 1 ;;
  esac
done"#
    )
}

fn llen(redis: &RedisServer, list: &str) -> usize {
    redis
        .cli(PASSWORD, &["LLEN", list])
        .trim()
        .parse()
        .expect("LLEN answers a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_worker_goes_from_zero_to_n_and_back_after_the_cooldown() {
    let swarm = Arc::new(swarm().await);
    ensure_test_image();
    let redis = RedisServer::start(PASSWORD).await;
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("redis_password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let registry = Registry::parse(&format!(
        "servers: [{{name: jobs, kind: redis, url: 'redis://127.0.0.1:{}/0', auth: {{basic: {{username: default, passwordFile: {}}}}}}}]",
        redis.port,
        password_file.display()
    ))
    .unwrap();
    let prometheus = PrometheusClientConfig {
        outbound: Outbound::new(registry, AllowList::default()),
        ..Default::default()
    };

    let run = crate::common::unique_name("run");
    let list = crate::common::unique_name("jobs");
    let run_label = format!("{RUN_LABEL}={run}");
    let password_env = format!("REDIS_PASSWORD={PASSWORD}");
    let script = worker_script(redis.port, &list);
    let service = TestService::create(
        &Engine::Host,
        "queue-worker",
        &["--replicas", "0", "--network", "host"],
        &["--label", &run_label, "--env", &password_env],
        &[TEST_IMAGE, "sh", "-c", &script],
    );
    let policy = format!(
        "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {{name: {name}}}
spec:
  minReplicas: 0
  maxReplicas: 6
  interval: 1s
  cooldownPeriod: {COOLDOWN_SECS}s
  metrics:
    - name: backlog
      redis: {{server: jobs, listName: {list}}}
      target: {{averageValue: {PER_REPLICA}}}
",
        name = service.name
    );
    add_policy(&service, &policy);
    let operator = Operator::start_with(Arc::clone(&swarm), prometheus, &run);
    operator.first_decision(&service).await;
    let first = operator.status.get(&service.name).unwrap().decisions[0].clone();
    assert_eq!(
        (first.desired, first.reason),
        (0, Reason::Idle),
        "{first:?}"
    );

    // Messages arrive at a service with no task: the backlog, read with no task running,
    // activates it at once to HPA's count from zero.
    let messages: Vec<String> = (0..MESSAGES).map(|i| format!("job-{i}")).collect();
    let push = [
        &["RPUSH", list.as_str()][..],
        &messages.iter().map(String::as_str).collect::<Vec<_>>()[..],
    ]
    .concat();
    let pushed = Instant::now();
    redis.cli(PASSWORD, &push);
    let n = (MESSAGES / PER_REPLICA) as u64;
    assert_eq!(wait_for_replicas(&*swarm, &service.id, 0, n).await, [0, n]);
    let activated = pushed.elapsed();
    let status = operator.status.get(&service.name).unwrap();
    let woke = status
        .decisions
        .iter()
        .find(|d| d.desired == n as u32)
        .unwrap()
        .clone();
    assert_eq!(woke.reason, Reason::Activated, "{woke:?}");
    running_tasks(&swarm, &service.id, n as usize).await;
    let running = pushed.elapsed();

    // The workers drain the list; nothing else pops it.
    let mut drained = None;
    let mut backlog = Vec::new();
    for _ in 0..1200 {
        let left = llen(&redis, &list);
        if backlog.last() != Some(&left) {
            backlog.push(left);
        }
        if left == 0 {
            drained = Some((pushed.elapsed(), chrono::Utc::now()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (drained, drained_at) =
        drained.unwrap_or_else(|| panic!("the workers never drained the list: {backlog:?}"));

    // Back to zero only after the cooldown, measured from the last read above activation.
    assert_eq!(wait_for_replicas(&*swarm, &service.id, n, 0).await, [n, 0]);
    let idle_after = pushed.elapsed();
    let status = operator.status.get(&service.name).unwrap();
    let idle = status
        .decisions
        .iter()
        .find(|d| d.desired == 0 && d.at > woke.at)
        .unwrap()
        .clone();
    assert_eq!(idle.reason, Reason::Idle, "{idle:?}");
    let state = state_label(&swarm.inspect_service(&service.id).await.unwrap().labels);
    let last_active = state
        .last_active
        .expect("the state label records the last active read");
    assert!(
        idle.at - last_active >= chrono::Duration::seconds(COOLDOWN_SECS),
        "idle at {} though the backlog was above activation at {last_active}",
        idle.at
    );
    // Every decision between the activation and going idle kept the workers, those after the
    // list was empty included: the cooldown held them.
    let between: Vec<_> = status
        .decisions
        .iter()
        .filter(|d| d.at > woke.at && d.at < idle.at)
        .collect();
    assert!(between.iter().all(|d| d.desired >= 1), "{between:?}");
    let held_empty = between.iter().filter(|d| d.at > drained_at).count();
    assert!(
        held_empty >= 1,
        "no decision held the workers on an empty list: {between:?}"
    );
    let reasons: Vec<_> = state.log.iter().map(|e| e.reason).collect();
    for wanted in [EventReason::Activated, EventReason::Idle] {
        assert!(reasons.contains(&wanted), "{reasons:?}");
    }
    println!(
        "queue worker timeline: {MESSAGES} messages pushed at 0s; activated to {n} replicas at {activated:.1?} \
         ({}); {n} tasks running at {running:.1?}; backlog {backlog:?} drained at {drained:.1?}; \
         last active read {last_active}, idle (0 replicas) at {idle_after:.1?}, {:.1}s after it \
         ({} decisions held {n} workers on the empty list)",
        woke.message,
        (idle.at - last_active).num_milliseconds() as f64 / 1000.0,
        held_empty,
    );
    operator.stop().await;
}
