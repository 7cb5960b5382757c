//! A `redis-server` of a test's own (Debian's, which `deploy/local-swarm.sh` installs) on a
//! free loopback port with a password, and `redis-cli` to drive it. Binaries using it declare
//! `prometheus_server` too (for `free_port`).
#![allow(dead_code)] // each test binary uses part of it

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::prometheus_server::free_port;

/// A `redis-server` of this test, stopped by its own PID when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub async fn start(password: &str) -> RedisServer {
        Self::start_on(free_port(), password).await
    }

    pub async fn start_on(port: u16, password: &str) -> RedisServer {
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

    pub fn cli(&self, password: &str, args: &[&str]) -> String {
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

    /// How many connections the server has accepted so far (this question's own included).
    pub fn connections_received(&self, password: &str) -> u64 {
        let info = self.cli(password, &["INFO", "stats"]);
        info.lines()
            .find_map(|line| line.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no total_connections_received in {info}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
