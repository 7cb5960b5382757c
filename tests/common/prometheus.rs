//! A real Prometheus server (Debian's `/usr/bin/prometheus`) for tests: started on a free port
//! with a temporary config and TSDB, scraping the given targets every second, killed on drop.
#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/prometheus";

pub struct PrometheusServer {
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Start Prometheus scraping `targets` (job `test`) every second and wait until it is ready.
    pub async fn start(targets: &[SocketAddr]) -> PrometheusServer {
        ensure_installed();
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(BINARY)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
        let server = PrometheusServer {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(response) = http.get(format!("{}/-/ready", self.url)).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "Prometheus did not become ready in 60s; log:\n{}",
            self.log()
        );
    }

    /// Wait until every scrape target is `up`.
    pub async fn wait_targets_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        while Instant::now() < deadline {
            let answer: serde_json::Value = http
                .get(format!("{}/api/v1/targets", self.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let targets = answer["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !targets.is_empty() && targets.iter().all(|t| t["health"] == "up") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("scrape targets not up within 60s; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on this host right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Install Prometheus with the repository's local-swarm script when it is missing; under CI
/// a missing binary is a failure, never a skip.
fn ensure_installed() {
    if Path::new(BINARY).exists() {
        return;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{BINARY} is missing under CI=true: run deploy/local-swarm.sh first"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local-swarm.sh");
    let status = Command::new("bash").arg(script).status().unwrap();
    assert!(
        status.success() && Path::new(BINARY).exists(),
        "{BINARY} is missing and {script} did not install it"
    );
}
