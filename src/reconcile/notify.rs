//! Posting traffic-state changes to a policy's `anomaly.notify` webhooks: in the background, with
//! a timeout and a few retries, so a slow or dead receiver never delays a decision. The posts
//! are tasks the reconciler owns: bounded in number, and waited for (up to a deadline) when the
//! operator shuts down.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::policy::{Notify, StateAction, TrafficState};
use crate::servers::{Outbound, ServerKind, Target};

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per receiver, with 1 s, 2 s... between them.
pub const ATTEMPTS: u32 = 3;
/// Posts in flight at once, over all services; a state change beyond it is logged, not sent,
/// so dead receivers cannot pile up tasks and connections.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long shutdown waits for the posts in flight before it stops them.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// The JSON body each receiver gets.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChangeEvent {
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<TrafficState>,
    pub to: TrafficState,
    pub at: DateTime<Utc>,
    /// What the policy does in the new state once it has persisted for `anomaly.for`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<StateAction>,
}

/// The state-change posts in flight: each a task this owns, at most [`MAX_IN_FLIGHT`] at once.
#[derive(Debug)]
pub struct Notifications {
    tasks: TaskTracker,
    in_flight: Arc<Semaphore>,
    stop: CancellationToken,
}

impl Default for Notifications {
    fn default() -> Self {
        Self::with_capacity(MAX_IN_FLIGHT)
    }
}

impl Notifications {
    /// Room for `capacity` posts in flight.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tasks: TaskTracker::new(),
            in_flight: Arc::new(Semaphore::new(capacity)),
            stop: CancellationToken::new(),
        }
    }

    /// Starts posting `event` to every receiver the operator's rule lets the policy name, and
    /// returns at once. A registered receiver gets its credentials; a refused one is logged
    /// (the policy was refused for it already, so this happens only if the rule changed under
    /// it), and so is a post beyond the in-flight cap.
    pub fn send(
        &self,
        client: &reqwest::Client,
        outbound: &Outbound,
        receivers: &[Notify],
        event: StateChangeEvent,
    ) {
        for receiver in receivers {
            let Some(reference) = receiver.receiver.as_ref().or(receiver.url.as_ref()) else {
                continue;
            };
            let target = match outbound.resolve(ServerKind::Webhook, reference) {
                Ok(target) => target,
                Err(error) => {
                    tracing::warn!(%error, "state-change receiver refused");
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
                tracing::warn!(receiver = %reference, service = %event.service, "state-change notification not sent: too many in flight");
                continue;
            };
            let (client, event, stop) = (client.clone(), event.clone(), self.stop.clone());
            self.tasks.spawn(async move {
                let _permit = permit;
                let url = target.url.to_string();
                tokio::select! {
                    () = deliver(&client, &target, &url, &event) => {}
                    () = stop.cancelled() => {
                        tracing::warn!(%url, "state-change notification stopped by shutdown");
                    }
                }
            });
        }
    }

    /// Posts still in flight.
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Waits for the posts in flight, up to `deadline`, then stops the rest and waits for them
    /// to end.
    pub async fn drain(&self, deadline: Duration) {
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            self.stop.cancel();
            self.tasks.wait().await;
        }
    }
}

/// Posts `event` to `url`, with up to [`ATTEMPTS`] attempts.
async fn deliver(client: &reqwest::Client, target: &Target, url: &str, event: &StateChangeEvent) {
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let mut request = client.post(url).timeout(ATTEMPT_TIMEOUT).json(event);
        if let Some(auth) = &target.auth {
            request = match auth.apply(request) {
                Ok(request) => request,
                Err(error) => {
                    tracing::warn!(%url, %error, "state-change notification not sent");
                    return;
                }
            };
        }
        match request.send().await {
            Ok(answer) if answer.status().is_success() => return,
            Ok(answer) => {
                tracing::warn!(%url, status = %answer.status(), attempt, "state-change notification refused")
            }
            Err(error) => {
                tracing::warn!(%url, %error, attempt, "state-change notification failed")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::{Json, Router};
    use tokio::sync::{mpsc, Semaphore};

    use super::*;

    type HookState = (
        mpsc::UnboundedSender<serde_json::Value>,
        Arc<Semaphore>,
        Arc<Mutex<usize>>,
    );

    /// A receiver that answers 500 `failures` times, then holds each request until released.
    struct Receiver {
        url: String,
        bodies: mpsc::UnboundedReceiver<serde_json::Value>,
        release: Arc<Semaphore>,
    }

    async fn receiver(failures: usize) -> Receiver {
        let (sender, bodies) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let state: HookState = (sender, Arc::clone(&release), Arc::new(Mutex::new(failures)));
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State((sender, release, failures)): State<HookState>,
                     Json(body): Json<serde_json::Value>| async move {
                        sender.send(body).unwrap();
                        {
                            let mut left = failures.lock().unwrap();
                            if *left > 0 {
                                *left -= 1;
                                return StatusCode::INTERNAL_SERVER_ERROR;
                            }
                        }
                        release.acquire().await.unwrap().forget();
                        StatusCode::OK
                    },
                ),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url,
            bodies,
            release,
        }
    }

    fn allowing(url: &str) -> Outbound {
        Outbound::new(
            crate::servers::Registry::default(),
            crate::servers::AllowList::parse([url]).unwrap(),
        )
    }

    fn to(hook: &Receiver) -> [Notify; 1] {
        [Notify {
            receiver: None,
            url: Some(hook.url.clone()),
        }]
    }

    fn event() -> StateChangeEvent {
        StateChangeEvent {
            service: "web".into(),
            from: Some(TrafficState::Normal),
            to: TrafficState::Flood,
            at: DateTime::<Utc>::UNIX_EPOCH,
            action: Some(StateAction::Hold),
        }
    }

    #[tokio::test]
    async fn notifying_returns_before_the_receiver_answers() {
        let mut hook = receiver(0).await;
        Notifications::default().send(
            &reqwest::Client::new(),
            &allowing(&hook.url),
            &to(&hook),
            event(),
        );
        // The receiver holds the request until released: had the caller waited for the answer,
        // it would still be waiting here and this line would never run.
        let body = hook.bodies.recv().await.unwrap();
        assert_eq!(body["to"], "flood");
        assert_eq!(body["from"], "normal");
        assert_eq!(body["action"], "hold");
        hook.release.add_permits(1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_receiver_is_retried_then_given_up() {
        let mut hook = receiver(usize::MAX).await;
        Notifications::default().send(
            &reqwest::Client::new(),
            &allowing(&hook.url),
            &to(&hook),
            event(),
        );
        for _ in 0..ATTEMPTS {
            assert!(hook.bodies.recv().await.is_some());
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            hook.bodies.try_recv().is_err(),
            "no attempt beyond {ATTEMPTS}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_posts_in_flight_then_stops_them_at_its_deadline() {
        let mut hook = receiver(0).await;
        let notifications = Notifications::default();
        let client = reqwest::Client::new();
        notifications.send(&client, &allowing(&hook.url), &to(&hook), event());
        assert!(hook.bodies.recv().await.is_some());
        assert_eq!(notifications.in_flight(), 1);
        // The receiver never answers: the post is stopped at the deadline, and nothing of it
        // outlives the drain.
        notifications.drain(DRAIN_DEADLINE).await;
        assert_eq!(notifications.in_flight(), 0);
        assert!(hook.bodies.try_recv().is_err());
    }

    #[tokio::test]
    async fn shutdown_lets_a_post_in_flight_finish() {
        let mut hook = receiver(0).await;
        let notifications = Notifications::default();
        notifications.send(
            &reqwest::Client::new(),
            &allowing(&hook.url),
            &to(&hook),
            event(),
        );
        assert!(hook.bodies.recv().await.is_some());
        hook.release.add_permits(1);
        // Far longer than the post takes: it is the post's end that ends the drain.
        notifications.drain(Duration::from_secs(3600)).await;
        assert_eq!(notifications.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn posts_beyond_the_cap_are_not_sent() {
        let mut hook = receiver(0).await;
        let notifications = Notifications::with_capacity(1);
        let client = reqwest::Client::new();
        let outbound = allowing(&hook.url);
        notifications.send(&client, &outbound, &to(&hook), event());
        notifications.send(&client, &outbound, &to(&hook), event());
        assert_eq!(notifications.in_flight(), 1);
        assert!(hook.bodies.recv().await.is_some());
        hook.release.add_permits(1);
        notifications.drain(DRAIN_DEADLINE).await;
        assert!(hook.bodies.try_recv().is_err(), "one post only");
        // Room again once the first is done.
        let notifications = Notifications::with_capacity(1);
        notifications.send(&client, &outbound, &to(&hook), event());
        assert!(hook.bodies.recv().await.is_some());
        hook.release.add_permits(1);
        notifications.drain(DRAIN_DEADLINE).await;
    }
}
