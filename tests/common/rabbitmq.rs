//! The tests' RabbitMQ node (`deploy/rabbitmq.sh`: Debian's `rabbitmq-server` with the
//! management plugin, on ports of its own; `deploy/test.sh` starts it before the build), and a
//! virtual host with a user of a test's own, removed when dropped.
#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

/// Where the node listens, and its admin credentials.
pub struct Rabbitmq {
    pub url: String,
    pub amqp_port: String,
    admin_user: String,
    admin_password: String,
    http: reqwest::Client,
}

impl Rabbitmq {
    /// Waits for the node (starting it when `deploy/test.sh` has not), then reads where it is.
    pub fn up() -> Rabbitmq {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rabbitmq.sh");
        let waited = Command::new("bash").args([script, "wait"]).status();
        assert!(
            matches!(waited, Ok(status) if status.success()),
            "{script} wait: {waited:?} (rabbitmq-server is installed by deploy/local-swarm.sh)"
        );
        let env = Command::new("bash").args([script, "env"]).output().unwrap();
        let env: BTreeMap<String, String> = String::from_utf8_lossy(&env.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        let password_file = &env["SP_RABBITMQ_ADMIN_PASSWORD_FILE"];
        Rabbitmq {
            url: env["SP_RABBITMQ_URL"].clone(),
            amqp_port: env["SP_RABBITMQ_AMQP_PORT"].clone(),
            admin_user: env["SP_RABBITMQ_ADMIN_USER"].clone(),
            admin_password: std::fs::read_to_string(password_file).unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// An admin call of the management API; panics unless it succeeds.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/{path}", self.url))
            .basic_auth(&self.admin_user, Some(&self.admin_password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }
}

/// A virtual host and a user (tag `monitoring`, every right in it) of one test; both are
/// removed when dropped.
pub struct TestVhost {
    pub vhost: String,
    pub user: String,
    pub password: String,
    url: String,
    admin: (String, String),
}

impl TestVhost {
    pub async fn create(rabbitmq: &Rabbitmq, prefix: &str) -> TestVhost {
        // Unique across tests and test processes sharing the node.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sp-test-{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let vhost = TestVhost {
            vhost: name.clone(),
            user: format!("{name}-user"),
            password: format!("{name}-pw-0123456789"),
            url: rabbitmq.url.clone(),
            admin: (rabbitmq.admin_user.clone(), rabbitmq.admin_password.clone()),
        };
        let put = reqwest::Method::PUT;
        rabbitmq
            .admin(put.clone(), &format!("vhosts/{}", vhost.vhost), None)
            .await;
        rabbitmq
            .admin(
                put.clone(),
                &format!("users/{}", vhost.user),
                Some(json!({"password": vhost.password, "tags": "monitoring"})),
            )
            .await;
        rabbitmq
            .admin(
                put,
                &format!("permissions/{}/{}", vhost.vhost, vhost.user),
                Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
            )
            .await;
        vhost
    }

    /// Declares `queue` in this virtual host.
    pub async fn queue(&self, rabbitmq: &Rabbitmq, queue: &str) {
        rabbitmq
            .admin(
                reqwest::Method::PUT,
                &format!("queues/{}/{queue}", self.vhost),
                Some(json!({"durable": false, "auto_delete": false})),
            )
            .await;
    }

    /// Publishes `count` messages to `queue` through the default exchange.
    pub async fn publish(&self, rabbitmq: &Rabbitmq, queue: &str, count: usize) {
        for i in 0..count {
            let routed = rabbitmq
                .admin(
                    reqwest::Method::POST,
                    &format!("exchanges/{}/amq.default/publish", self.vhost),
                    Some(json!({"properties": {}, "routing_key": queue, "payload": format!("job {i}"), "payload_encoding": "string"})),
                )
                .await;
            assert_eq!(routed["routed"], json!(true), "{routed}");
        }
    }

    /// The queue's ready and unacknowledged messages as the management API counts them now
    /// (`None` before its first statistics).
    pub async fn counts(&self, rabbitmq: &Rabbitmq, queue: &str) -> Option<(u64, u64)> {
        let counts = rabbitmq
            .admin(
                reqwest::Method::GET,
                &format!("queues/{}/{queue}", self.vhost),
                None,
            )
            .await;
        Some((
            counts["messages_ready"].as_u64()?,
            counts["messages_unacknowledged"].as_u64()?,
        ))
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let auth = format!("{}:{}", self.admin.0, self.admin.1);
        for path in [
            format!("vhosts/{}", self.vhost),
            format!("users/{}", self.user),
        ] {
            let _ = Command::new("curl")
                .args(["-fsS", "-m", "10", "-X", "DELETE", "-u", &auth])
                .arg(format!("{}/api/{path}", self.url))
                .output();
        }
    }
}
