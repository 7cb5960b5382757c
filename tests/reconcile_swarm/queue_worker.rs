//! Queue workers scaled on their backlog, 0 → N → 0, on the real Swarm: a real `redis-server`
//! of the test and the tests' real RabbitMQ node, a policy reading the backlog through a
//! registered server (its password from a secret file), and worker tasks that take the
//! messages until none is left.
//!
//! The workers reach the queue servers on the host's loopback: they run on the `host` network
//! (a task's own network namespace has a loopback of its own, and no overlay reaches the
//! host's).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use swarmpilot::decide::Reason;
use swarmpilot::metrics::PrometheusClientConfig;
use swarmpilot::policy::EventReason;
use swarmpilot::servers::{AllowList, Outbound, Registry};
use swarmpilot::swarm::Swarm;

use crate::common::{
    copy_libraries, docker, ensure_test_image, running_tasks, swarm, unique_name, Engine,
    TestService, TEST_IMAGE,
};
use crate::operator::{add_policy, Operator, RUN_LABEL};
use crate::rabbitmq_server::{Rabbitmq, TestVhost};
use crate::redis_server::RedisServer;
use crate::{state_label, wait_for_replicas};

/// Messages pushed, and messages per replica: ceil(40 / 10) = 4 workers.
const MESSAGES: usize = 40;
const PER_REPLICA: usize = 10;
const COOLDOWN_SECS: i64 = 10;

/// A queue the test fills and the workers drain.
trait Queue {
    /// The policy's metric source, reading the server registered as `jobs`.
    fn source(&self) -> String;
    /// The servers file registering `jobs`, its password in `password_file`.
    fn servers(&self, password_file: &Path) -> String;
    fn password(&self) -> &str;
    /// The worker: `docker service create` options, then image and command.
    fn worker(&self) -> (Vec<String>, Vec<String>);
    async fn push(&self, count: usize);
    /// The messages not yet done, as the server counts them now.
    async fn backlog(&self) -> Option<usize>;
}

const REDIS_PASSWORD: &str = "sp-queue-worker-pw";

struct RedisList {
    redis: RedisServer,
    list: String,
}

impl Queue for RedisList {
    fn source(&self) -> String {
        format!("redis: {{server: jobs, listName: {}}}", self.list)
    }

    fn servers(&self, password_file: &Path) -> String {
        format!(
            "servers: [{{name: jobs, kind: redis, url: 'redis://127.0.0.1:{}/0', auth: {{basic: {{username: default, passwordFile: {}}}}}}}]",
            self.redis.port,
            password_file.display()
        )
    }

    fn password(&self) -> &str {
        REDIS_PASSWORD
    }

    /// busybox's `sh` and `nc`: pops one message (`LPOP` in Redis's inline protocol), takes
    /// half a second over it, and waits a second when the list is empty.
    fn worker(&self) -> (Vec<String>, Vec<String>) {
        let script = format!(
            r#"while true; do
  out=$(printf 'AUTH %s\r\nLPOP {list}\r\nQUIT\r\n' "$REDIS_PASSWORD" | nc 127.0.0.1 {port})
  case "$out" in
    *'$-1'*) sleep 1 ;;
    *'$'*) sleep 0.5 ;;
    *) echo "redis: $out" >&2; sleep 1 ;;
  esac
done"#,
            list = self.list,
            port = self.redis.port
        );
        (
            vec!["--env".into(), format!("REDIS_PASSWORD={REDIS_PASSWORD}")],
            vec![TEST_IMAGE.into(), "sh".into(), "-c".into(), script],
        )
    }

    async fn push(&self, count: usize) {
        let messages: Vec<String> = (0..count).map(|i| format!("job-{i}")).collect();
        let mut command = vec!["RPUSH", self.list.as_str()];
        command.extend(messages.iter().map(String::as_str));
        self.redis.cli(REDIS_PASSWORD, &command);
    }

    async fn backlog(&self) -> Option<usize> {
        self.redis
            .cli(REDIS_PASSWORD, &["LLEN", &self.list])
            .trim()
            .parse()
            .ok()
    }
}

struct RabbitmqQueue {
    rabbitmq: Rabbitmq,
    vhost: TestVhost,
}

impl Queue for RabbitmqQueue {
    fn source(&self) -> String {
        format!(
            "rabbitmq: {{server: jobs, queueName: jobs, vhostName: {}}}",
            self.vhost.vhost
        )
    }

    fn servers(&self, password_file: &Path) -> String {
        format!(
            "servers: [{{name: jobs, kind: rabbitmq, url: '{}', auth: {{basic: {{username: {}, passwordFile: {}}}}}}}]",
            self.rabbitmq.url,
            self.vhost.user,
            password_file.display()
        )
    }

    fn password(&self) -> &str {
        &self.vhost.password
    }

    /// Debian's `amqp-consume`, one message at a time (prefetch 1), running `sleep 0.5` for
    /// each and acknowledging it when that ends.
    fn worker(&self) -> (Vec<String>, Vec<String>) {
        let arguments = [
            "--server",
            "127.0.0.1",
            "--port",
            &self.rabbitmq.amqp_port,
            "--vhost",
            &self.vhost.vhost,
            "--username",
            &self.vhost.user,
            "--password",
            &self.vhost.password,
            "--queue",
            "jobs",
            "--prefetch-count",
            "1",
            "/bin/busybox",
            "sleep",
            "0.5",
        ];
        (
            Vec::new(),
            [amqp_worker_image()]
                .into_iter()
                .chain(arguments)
                .map(str::to_owned)
                .collect(),
        )
    }

    async fn push(&self, count: usize) {
        self.vhost.publish(&self.rabbitmq, "jobs", count).await;
    }

    async fn backlog(&self) -> Option<usize> {
        let (ready, unacked) = self.vhost.counts(&self.rabbitmq, "jobs").await?;
        Some((ready + unacked) as usize)
    }
}

/// The test image with Debian's `amqp-consume` (and the libraries it loads) beside busybox,
/// as its entrypoint; built once per process.
fn amqp_worker_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        ensure_test_image();
        let consume = Path::new("/usr/bin/amqp-consume");
        assert!(
            consume.exists(),
            "amqp-consume must be installed (deploy/local-swarm.sh installs amqp-tools)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr/bin")).expect("image root");
        std::fs::copy(consume, root.join("usr/bin/amqp-consume")).expect("copy amqp-consume");
        copy_libraries(consume, &root);
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {TEST_IMAGE}\nCOPY root/ /\nENTRYPOINT [\"/usr/bin/amqp-consume\"]\n"),
        )
        .expect("write Dockerfile");
        let image = "sp-test-amqp-worker:1".to_owned();
        docker(&["build", "-q", "-t", &image, dir.path().to_str().unwrap()]);
        image
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_queue_worker_goes_from_zero_to_n_and_back_after_the_cooldown() {
    let queue = RedisList {
        redis: RedisServer::start(REDIS_PASSWORD).await,
        list: unique_name("jobs"),
    };
    zero_to_n_and_back("redis", &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_queue_worker_goes_from_zero_to_n_and_back_after_the_cooldown() {
    let rabbitmq = tokio::task::spawn_blocking(Rabbitmq::up).await.unwrap();
    let vhost = TestVhost::create(&rabbitmq, "worker").await;
    vhost.queue(&rabbitmq, "jobs").await;
    zero_to_n_and_back("rabbitmq", &RabbitmqQueue { rabbitmq, vhost }).await;
}

/// A worker at `minReplicas: 0` on `queue`: messages activate it to N, its tasks drain the
/// queue, and it goes back to 0 only after the cooldown. Prints the timeline.
async fn zero_to_n_and_back(kind: &str, queue: &impl Queue) {
    let swarm = Arc::new(swarm().await);
    ensure_test_image();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, format!("{}\n", queue.password())).unwrap();
    let prometheus = PrometheusClientConfig {
        outbound: Outbound::new(
            Registry::parse(&queue.servers(&password_file)).unwrap(),
            AllowList::default(),
        ),
        ..Default::default()
    };

    let run = unique_name("run");
    let run_label = format!("{RUN_LABEL}={run}");
    let (options, image) = queue.worker();
    let mut extra = vec!["--label", run_label.as_str()];
    extra.extend(options.iter().map(String::as_str));
    let image: Vec<&str> = image.iter().map(String::as_str).collect();
    let service = TestService::create(
        &Engine::Host,
        &format!("{kind}-worker"),
        &["--replicas", "0", "--network", "host"],
        &extra,
        &image,
    );
    add_policy(
        &service,
        &format!(
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
      {source}
      target: {{averageValue: {PER_REPLICA}}}
",
            name = service.name,
            source = queue.source()
        ),
    );
    // A new RabbitMQ queue has no counts until the broker's next statistics: the first read
    // would fail, and the first decision would not be the one looked at here.
    for _ in 0..600 {
        if queue.backlog().await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(queue.backlog().await, Some(0), "the queue starts empty");
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
    let pushed = Instant::now();
    queue.push(MESSAGES).await;
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

    // The workers drain the queue; nothing else takes from it.
    let mut drained = None;
    let mut backlog = Vec::new();
    for _ in 0..1200 {
        let left = queue.backlog().await;
        if left.is_some() && backlog.last() != Some(&left) {
            backlog.push(left);
        }
        if left == Some(0) {
            drained = Some((pushed.elapsed(), chrono::Utc::now()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let backlog: Vec<usize> = backlog.into_iter().flatten().collect();
    let (drained, drained_at) =
        drained.unwrap_or_else(|| panic!("the workers never drained the queue: {backlog:?}"));

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
    // queue was empty included: the cooldown held them.
    let between: Vec<_> = status
        .decisions
        .iter()
        .filter(|d| d.at > woke.at && d.at < idle.at)
        .collect();
    assert!(between.iter().all(|d| d.desired >= 1), "{between:?}");
    let held_empty = between.iter().filter(|d| d.at > drained_at).count();
    assert!(
        held_empty >= 1,
        "no decision held the workers on an empty queue: {between:?}"
    );
    let reasons: Vec<_> = state.log.iter().map(|e| e.reason).collect();
    for wanted in [EventReason::Activated, EventReason::Idle] {
        assert!(reasons.contains(&wanted), "{reasons:?}");
    }
    println!(
        "{kind} worker timeline: {MESSAGES} messages pushed at 0s; activated to {n} replicas at \
         {activated:.1?} ({}); {n} tasks running at {running:.1?}; backlog {backlog:?} drained \
         at {drained:.1?}; last active read {last_active}, idle (0 replicas) at \
         {idle_after:.1?}, {:.1}s after it ({held_empty} decisions held {n} workers on the \
         empty queue)",
        woke.message,
        (idle.at - last_active).num_milliseconds() as f64 / 1000.0,
    );
    operator.stop().await;
}
