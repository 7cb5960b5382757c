//! The queue sources against a real `redis-server` (started here, on a free port, with a
//! password from a secret file) and a real RabbitMQ (the private node of `deploy/rabbitmq.sh`,
//! which `deploy/test.sh` starts before the build): the values read are the list's length, the
//! stream group's pending entries and the queue's ready + unacknowledged messages; the errors
//! name the server and what was read, and never the password.

use crate::rabbitmq_server::{Rabbitmq, TestVhost};
use crate::redis_server::RedisServer;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use swarmpilot::metrics::{MetricError, MetricSource, RabbitmqReader, RedisReader};
use swarmpilot::policy::{RabbitmqSource, RedisSource};
use swarmpilot::servers::{AllowList, Outbound, Registry};
use swarmpilot::swarm::ServiceInfo;

fn service() -> ServiceInfo {
    ServiceInfo {
        id: "id-worker".into(),
        name: "worker".into(),
        version: 1,
        labels: BTreeMap::new(),
        replicas: Some(1),
        ..Default::default()
    }
}

fn outbound(servers: &str) -> Outbound {
    let registry = Registry::parse(servers).unwrap();
    registry.check_secrets().unwrap();
    Outbound::new(registry, AllowList::default())
}

#[tokio::test]
async fn redis_list_length_and_stream_pending_entries_are_read() {
    let redis = RedisServer::start("s3cret-pw").await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("redis_password");
    std::fs::write(&password, "s3cret-pw\n").unwrap();
    let reader = RedisReader::new(outbound(&format!(
        "servers:
  - {{name: jobs, kind: redis, url: 'redis://127.0.0.1:{port}/0', auth: {{basic: {{username: default, passwordFile: {password}}}}}}}
  - {{name: nopass, kind: redis, url: 'redis://127.0.0.1:{port}/0'}}
",
        port = redis.port,
        password = password.display()
    )));
    let list = RedisSource {
        server: "jobs".into(),
        list_name: Some("jobs".into()),
        stream: None,
        consumer_group: None,
    };
    let read = |spec: RedisSource| {
        let reader = reader.clone();
        async move { reader.read(&service(), "backlog", &spec).await }
    };
    assert_eq!(read(list.clone()).await.unwrap().value, 0.0);
    redis.cli(
        "s3cret-pw",
        &["RPUSH", "jobs", "a", "b", "c", "d", "e", "f", "g"],
    );
    assert_eq!(read(list.clone()).await.unwrap().value, 7.0);

    // A stream: 5 entries, 3 delivered to the group and not acknowledged, 1 of them acked.
    for i in 0..5 {
        redis.cli("s3cret-pw", &["XADD", "events", "*", "n", &i.to_string()]);
    }
    redis.cli("s3cret-pw", &["XGROUP", "CREATE", "events", "workers", "0"]);
    redis.cli(
        "s3cret-pw",
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w1",
            "COUNT",
            "3",
            "STREAMS",
            "events",
            ">",
        ],
    );
    let stream = RedisSource {
        list_name: None,
        stream: Some("events".into()),
        consumer_group: Some("workers".into()),
        ..list.clone()
    };
    assert_eq!(read(stream.clone()).await.unwrap().value, 3.0);
    let first = redis.cli("s3cret-pw", &["XRANGE", "events", "-", "+", "COUNT", "1"]);
    let id = first.lines().next().unwrap().trim().to_owned();
    redis.cli("s3cret-pw", &["XACK", "events", "workers", &id]);
    assert_eq!(read(stream.clone()).await.unwrap().value, 2.0);

    // A group that does not exist is the server's error, named.
    let error = read(RedisSource {
        consumer_group: Some("nobody".into()),
        ..stream
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, MetricError::Refused { ref kind, .. } if kind == "NOGROUP"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("redis server jobs") && error.to_string().contains("\"nobody\""),
        "{error}"
    );

    // Reads share one kept connection: twenty reads open none (the second INFO is the one
    // new connection between the two counts).
    let before = redis.connections_received("s3cret-pw");
    for _ in 0..20 {
        assert_eq!(read(list.clone()).await.unwrap().value, 7.0);
    }
    assert_eq!(redis.connections_received("s3cret-pw") - before, 1);

    // A restart of Redis closes the kept connection: the next read opens a new one and succeeds.
    let port = redis.port;
    drop(redis);
    let redis = RedisServer::start_on(port, "s3cret-pw").await;
    redis.cli("s3cret-pw", &["RPUSH", "jobs", "x", "y"]);
    assert_eq!(read(list.clone()).await.unwrap().value, 2.0);

    // Without the password the server refuses, and the error carries no password.
    let error = read(RedisSource {
        server: "nopass".into(),
        ..list.clone()
    })
    .await
    .unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert!(
        matches!(error, MetricError::Refused { ref kind, .. } if kind == "NOAUTH"),
        "{error:?}"
    );
    assert!(error.to_string().contains("redis server nopass"), "{error}");

    // A wrong password in the secret file: refused by the server, the error naming the server.
    std::fs::write(&password, "not-the-password\n").unwrap();
    let error = read(list.clone()).await.unwrap_err();
    assert!(matches!(error, MetricError::Refused { .. }), "{error:?}");
    assert!(error.to_string().contains("password file"), "{error}");
    println!("a wrong password: {error}");
    assert!(!error.to_string().contains("not-the-password"), "{error}");
    assert!(error.to_string().contains("redis server jobs"), "{error}");
    // The file is read at each use: a corrected secret works at the next read.
    std::fs::write(&password, "s3cret-pw\n").unwrap();
    assert_eq!(read(list.clone()).await.unwrap().value, 2.0);

    // An unregistered name is refused before any connection.
    let error = read(RedisSource {
        server: "other".into(),
        ..list
    })
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no redis server named \"other\""),
        "{error}"
    );
}

/// `amqp-consume` holding `prefetch` messages of a queue delivered and unacknowledged: its
/// command for the first message never ends. Stopped by its process group's id when dropped.
struct Consumer {
    child: Child,
}

impl Consumer {
    fn start(rabbitmq: &Rabbitmq, vhost: &str, user: &str, password: &str, queue: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let child = Command::new("amqp-consume")
            .args(["--server", "127.0.0.1", "--port", &rabbitmq.amqp_port])
            .args(["--vhost", vhost, "--username", user, "--password", password])
            .args(["--queue", queue, "--prefetch-count", "3", "sleep", "600"])
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("amqp-consume must be installed (deploy/local-swarm.sh installs amqp-tools)");
        Consumer { child }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // The group: amqp-consume and the `sleep` it runs.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_ready_and_unacknowledged_messages_are_read() {
    let rabbitmq = tokio::task::spawn_blocking(Rabbitmq::up).await.unwrap();
    let test_vhost = TestVhost::create(&rabbitmq, "reader").await;
    let (vhost, user, secret) = (
        test_vhost.vhost.clone(),
        test_vhost.user.clone(),
        test_vhost.password.as_str(),
    );
    test_vhost.queue(&rabbitmq, "jobs").await;
    test_vhost.publish(&rabbitmq, "jobs", 7).await;
    // 3 delivered to a consumer that does not acknowledge them, 4 ready.
    let consumer = Consumer::start(&rabbitmq, &vhost, &user, secret, "jobs");
    let mut counts = None;
    for _ in 0..120 {
        counts = test_vhost.counts(&rabbitmq, "jobs").await;
        if counts == Some((4, 3)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(counts, Some((4, 3)), "(ready, unacked)");

    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("rabbitmq_password");
    std::fs::write(&password, format!("{secret}\n")).unwrap();
    let wrong = dir.path().join("wrong_password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let reader = RabbitmqReader::new(outbound(&format!(
        "servers:
  - {{name: broker, kind: rabbitmq, url: '{url}', auth: {{basic: {{username: {user}, passwordFile: {password}}}}}}}
  - {{name: wrongpw, kind: rabbitmq, url: '{url}/', auth: {{basic: {{username: {user}, passwordFile: {wrong}}}}}}}
",
        url = rabbitmq.url,
        password = password.display(),
        wrong = wrong.display(),
    )));
    let jobs = RabbitmqSource {
        server: "broker".into(),
        queue_name: "jobs".into(),
        vhost_name: vhost.clone(),
    };
    let read = |spec: RabbitmqSource| {
        let reader = reader.clone();
        async move { reader.read(&service(), "backlog", &spec).await }
    };
    assert_eq!(read(jobs.clone()).await.unwrap().value, 7.0);

    // Wrong credentials, an unknown virtual host, an unknown queue: each refused, named.
    let error = read(RabbitmqSource {
        server: "wrongpw".into(),
        ..jobs.clone()
    })
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, MetricError::Refused { ref kind, .. } if kind == "HTTP 401"),
        "{error:?}"
    );
    assert!(
        text.contains("rabbitmq server wrongpw") && text.contains(&user),
        "{text}"
    );
    assert!(
        !text.contains("not-the-password") && !text.contains(secret),
        "{text}"
    );
    let error = read(RabbitmqSource {
        vhost_name: "sp-no-such-vhost".into(),
        ..jobs.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, MetricError::Refused { ref kind, .. } if kind == "no such virtual host"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("rabbitmq server broker")
            && error.to_string().contains("sp-no-such-vhost"),
        "{error}"
    );
    let error = read(RabbitmqSource {
        queue_name: "sp-no-such-queue".into(),
        ..jobs.clone()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(error, MetricError::Refused { ref kind, .. } if kind == "no such queue"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("sp-no-such-queue") && error.to_string().contains(&vhost),
        "{error}"
    );

    // Credentials come only from the secret file, read at each use: a URL holding them is
    // refused at load, and a changed file is the next read's credentials.
    let error = Registry::parse(&format!(
        "servers: [{{name: b, kind: rabbitmq, url: 'http://{user}:{secret}@127.0.0.1:1'}}]"
    ))
    .unwrap_err();
    assert!(error.to_string().contains("credentials"), "{error}");
    std::fs::write(&password, "rotated-away\n").unwrap();
    assert!(matches!(
        read(jobs.clone()).await.unwrap_err(),
        MetricError::Refused { .. }
    ));
    std::fs::write(&password, format!("{secret}\n")).unwrap();
    assert_eq!(read(jobs.clone()).await.unwrap().value, 7.0);

    // The consumer gone, its messages are ready again: still 7, all ready.
    drop(consumer);
    for _ in 0..120 {
        counts = test_vhost.counts(&rabbitmq, "jobs").await;
        if counts == Some((7, 0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(counts, Some((7, 0)), "(ready, unacked)");
    assert_eq!(read(jobs).await.unwrap().value, 7.0);
}
