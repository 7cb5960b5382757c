//! The operator against a failing Docker engine connection and process signals: it keeps going
//! through a lost connection and resumes, and SIGTERM ends it cleanly with exit status 0.

mod common;
#[path = "common/exporter.rs"]
mod exporter;
#[path = "common/operator.rs"]
mod operator;
#[path = "common/prometheus.rs"]
mod prometheus_server;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{replicas_reach, swarm, unique_name};
use operator::{load_source, service_with_policy, Operator};
use swarmpilot::swarm::{DockerSwarm, Swarm};
use tokio::net::{TcpListener, UnixStream};
use tokio::task::JoinSet;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A TCP front for the engine's unix socket that the test can cut and restore, as a daemon
/// restart or a network partition would, without disturbing anything else using the engine.
struct EngineLink {
    port: u16,
    connections: Option<JoinSet<()>>,
}

impl EngineLink {
    async fn up(port: u16) -> EngineLink {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut connections = JoinSet::new();
        connections.spawn(async move {
            let mut relays = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    break;
                };
                relays.spawn(async move {
                    if let Ok(mut engine) = UnixStream::connect(DOCKER_SOCKET).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
        });
        EngineLink {
            port,
            connections: Some(connections),
        }
    }

    /// Drops the listener and every open connection.
    async fn cut(&mut self) {
        if let Some(mut connections) = self.connections.take() {
            connections.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_survives_losing_the_engine_and_resumes_when_it_is_back() {
    let direct = swarm().await;
    let (exporter, prometheus) = load_source(10.0).await;
    let run = unique_name("run");
    let policy = "{minReplicas: 1, maxReplicas: 5, interval: 1s, metrics: [{name: load, prometheus: {query: 'sp_load{job=\"test\"}'}, target: {averageValue: 10}}]}";
    let service = service_with_policy("resilience", &run, |_| policy.to_owned());

    let mut link = EngineLink::up(0).await;
    let port = link.port;
    let swarm = Arc::new(
        DockerSwarm::connect_to(&format!("tcp://127.0.0.1:{port}"))
            .await
            .unwrap(),
    );
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);

    operator.first_decision(&service).await;
    link.cut().await;
    exporter.text("sp_load 30\n");
    operator.failing(&service).await;
    assert_eq!(
        direct.inspect_service(&service.id).await.unwrap().replicas,
        Some(1)
    );

    let _link = EngineLink::up(port).await;
    // Resumed and scaled.
    replicas_reach(&direct, &service, 3).await;
    assert!(
        operator
            .status
            .get(&service.name)
            .unwrap()
            .last_error
            .is_none(),
        "the error cleared"
    );
    operator.stop().await;
}

#[tokio::test]
async fn sigterm_stops_the_operator_cleanly_with_status_zero() {
    let _ = swarm().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut operator = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--selector",
            &format!("sp.test.run={}", unique_name("none")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..300 {
        if http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the operator never became ready");
    let pid = operator.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = tokio::task::spawn_blocking(move || {
        let status = operator.wait().unwrap();
        let mut log = String::new();
        std::io::Read::read_to_string(operator.stderr.as_mut().unwrap(), &mut log).unwrap();
        (status, log)
    })
    .await
    .unwrap();
    assert!(
        output.0.success(),
        "exit status {:?}; log:\n{}",
        output.0,
        output.1
    );
    assert!(
        output.1.contains("SIGTERM") && output.1.contains("stopped"),
        "{}",
        output.1
    );
}
