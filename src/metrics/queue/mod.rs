//! The queue sources: a Redis list's length or a stream's pending entries, and a RabbitMQ
//! queue's ready + unacknowledged messages through its management HTTP API.
//!
//! A queue's backlog belongs to the service as a whole, like a Prometheus query: the reading
//! has no per-task values, and an `averageValue` target divides it by the replicas (messages
//! per replica). It is there with no worker running, so it can activate a service at zero.
//! Servers are named, never given as URLs: they come from the operator's servers file with
//! their credentials, and errors name the server, never a URL that could carry a password.

mod rabbitmq;
mod redis;

use std::time::Duration;

use chrono::Utc;

pub use self::rabbitmq::RabbitmqReader;
pub use self::redis::RedisReader;
use super::Reading;
use crate::servers::Target;

/// The deadline of one queue read, connection included.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

fn reading(value: f64) -> Reading {
    Reading {
        value,
        at: Utc::now(),
        tasks: Vec::new(),
        skipped: Vec::new(),
    }
}

/// How errors name the server: `redis server jobs`, or the URL of a server allowed by
/// `--allow-url` (which carries no credentials).
fn server_label(kind: &str, reference: &str, target: &Target) -> String {
    match &target.server {
        Some(name) => format!("{kind} server {name}"),
        None => format!("{kind} server {reference}"),
    }
}
