//! The queue sources against a real `redis-server` (started here, on a free port, with a
//! password from a secret file) and, when one runs, a real RabbitMQ: the values read are the
//! list's length, the stream group's pending entries and the queue's ready + unacked messages.

use crate::prometheus_server::free_port;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use swarmpilot::metrics::{MetricError, MetricSource, RedisReader};
use swarmpilot::policy::RedisSource;
use swarmpilot::servers::{AllowList, Outbound, Registry};
use swarmpilot::swarm::ServiceInfo;

/// A `redis-server` of this test, stopped by its own PID when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    async fn start(password: &str) -> RedisServer {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--requirepass", password])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (deploy/local-swarm.sh installs it)");
        let server = RedisServer { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port}");
    }

    fn cli(&self, password: &str, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args([
                "-p",
                &self.port.to_string(),
                "-a",
                password,
                "--no-auth-warning",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
        matches!(error, MetricError::Query { ref kind, .. } if kind == "NOGROUP"),
        "{error:?}"
    );

    // Without the password the server refuses, and the error carries no password.
    let error = read(RedisSource {
        server: "nopass".into(),
        ..list.clone()
    })
    .await
    .unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert!(
        error.to_string().contains("NOAUTH") || error.to_string().contains("auth"),
        "{error}"
    );

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
