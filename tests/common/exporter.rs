//! A tiny HTTP server on 127.0.0.1 that serves whatever exposition (or misbehaviour) a test sets.
#![allow(dead_code)] // each test binary uses part of it

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use futures_util::stream;

/// What the exporter answers on `/metrics`.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// This exposition text.
    Text(String),
    /// This text, after a delay.
    Slow(Duration, String),
    /// A body that never ends.
    Endless,
    /// This HTTP status with a short body.
    Status(u16),
}

pub struct Exporter {
    pub addr: SocketAddr,
    behavior: Arc<Mutex<Behavior>>,
    server: tokio::task::JoinHandle<()>,
}

impl Exporter {
    pub async fn start(behavior: Behavior) -> Exporter {
        let state = Arc::new(Mutex::new(behavior));
        let app = Router::new()
            .route("/metrics", get(serve))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Exporter {
            addr,
            behavior: state,
            server,
        }
    }

    pub fn set(&self, behavior: Behavior) {
        *self.behavior.lock().unwrap() = behavior;
    }

    pub fn text(&self, text: impl Into<String>) {
        self.set(Behavior::Text(text.into()));
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(State(state): State<Arc<Mutex<Behavior>>>) -> axum::response::Response {
    let behavior = state.lock().unwrap().clone();
    match behavior {
        Behavior::Text(text) => text_response(text),
        Behavior::Slow(delay, text) => {
            tokio::time::sleep(delay).await;
            text_response(text)
        }
        Behavior::Endless => {
            let chunks =
                stream::repeat_with(|| Ok::<_, Infallible>(b"# filler line\n".repeat(4096)));
            axum::response::Response::new(Body::from_stream(chunks))
        }
        Behavior::Status(code) => axum::response::Response::builder()
            .status(code)
            .body(Body::from("nope"))
            .unwrap(),
    }
}

fn text_response(text: String) -> axum::response::Response {
    axum::response::Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(Body::from(text))
        .unwrap()
}

/// Count 100 per second: one increment every 10 ms (catching up after late ticks), each
/// published as the exposition `text(count)`. Abort the handle to stop.
pub fn drive_counter(
    exporter: Arc<Exporter>,
    text: fn(u64) -> String,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for count in 1.. {
            tick.tick().await;
            exporter.text(text(count));
        }
    })
}

/// An address on 127.0.0.1 where nothing listens (connections are refused).
pub fn refused_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
