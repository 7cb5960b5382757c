//! Posting traffic-state changes to a policy's `anomaly.notify` webhooks: in the background, with
//! a timeout and a few retries, so a slow or dead receiver never delays a decision.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::policy::{Notify, StateAction, TrafficState};
use crate::servers::{Outbound, ServerKind};

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per receiver, with 1 s, 2 s... between them.
pub const ATTEMPTS: u32 = 3;

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

/// Starts posting `event` to every receiver the operator's rule lets the policy name, and
/// returns at once. A registered receiver gets its credentials; a refused one is logged (the
/// policy was refused for it already, so this happens only if the rule changed under it).
pub fn spawn_notifications(
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
        let client = client.clone();
        let event = event.clone();
        tokio::spawn(async move {
            let url = target.url.to_string();
            let mut delay = Duration::from_secs(1);
            for attempt in 1..=ATTEMPTS {
                let mut request = client.post(&url).timeout(ATTEMPT_TIMEOUT).json(&event);
                if let Some(auth) = &target.auth {
                    request = match auth.apply(request) {
                        Ok(request) => request,
                        Err(error) => {
                            tracing::warn!(%url, %error, "state-change notification not sent");
                            return;
                        }
                    };
                }
                let sent = request.send().await;
                match sent {
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
        });
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
        spawn_notifications(
            &reqwest::Client::new(),
            &allowing(&hook.url),
            &[Notify {
                receiver: None,
                url: Some(hook.url.clone()),
            }],
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
        spawn_notifications(
            &reqwest::Client::new(),
            &allowing(&hook.url),
            &[Notify {
                receiver: None,
                url: Some(hook.url.clone()),
            }],
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
}
