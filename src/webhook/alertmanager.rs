//! The Alertmanager receiver: a webhook notification (payload version 4) whose alerts carry a
//! `swarmpilot_service` label and a `swarmpilot_action` annotation becomes overrides.
//!
//! Actions, applied to the service's current replica count and always kept within the policy's
//! `[minReplicas, maxReplicas]`:
//! - `scale_up`: pin at twice the current count (at least one more), like one HPA scale-up step
//!   at its default limit of +100%;
//! - `scale_down`: pin at half the current count, rounded down;
//! - `pin:N`: pin at N (refused when outside the bounds);
//! - `pause`: make no change at all.
//!
//! Only services whose policy opts in (`spec.alerts`) accept alerts, and only up to the policy's
//! `spec.alerts.maxReplicas` and `maxTtl`: whoever can write an alert rule gets no more than the
//! policy grants. The receiver takes only an `alerts` token.
//!
//! The override lasts `swarmpilot_ttl` (annotation, default 30m) and is written `by`
//! `alertmanager:<alertname>/<fingerprint>`. Alertmanager re-sends a firing alert every
//! `group_interval`/`repeat_interval`; a re-send of the alert that set the override only extends it
//! (a scale step is not taken again). A resolved alert clears the override only if it is still the
//! one that alert set: an override written since by someone else stays.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{validate_service_name, ApiJson};
use super::overrides::{
    build, change_override, check_bounds, check_ttl, policy_of, Change, Changed, Intent,
};
use super::AppState;
use crate::policy::{AlertsSpec, HumanDuration, Override, ScalingPolicy};
use crate::swarm::Swarm;

/// The label naming the Swarm service an alert is about.
pub const SERVICE_LABEL: &str = "swarmpilot_service";
/// The annotation saying what to do.
pub const ACTION_ANNOTATION: &str = "swarmpilot_action";
/// The annotation saying for how long.
pub const TTL_ANNOTATION: &str = "swarmpilot_ttl";
/// How long an alert's override lasts when it does not say.
pub const DEFAULT_TTL: HumanDuration = HumanDuration::from_secs(30 * 60);

/// Alertmanager's webhook notification. Unknown fields are accepted: Alertmanager (and
/// compatible senders such as Grafana) add fields over time.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: AlertStatus,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// What a firing alert asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertAction {
    ScaleUp,
    ScaleDown,
    Pin(u32),
    Pause,
}

impl FromStr for AlertAction {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "scale_up" => Ok(AlertAction::ScaleUp),
            "scale_down" => Ok(AlertAction::ScaleDown),
            "pause" => Ok(AlertAction::Pause),
            other => other
                .strip_prefix("pin:")
                .and_then(|count| count.trim().parse().ok())
                .map(AlertAction::Pin)
                .ok_or_else(|| {
                    format!("{other:?} is not an action; use scale_up, scale_down, pin:N or pause")
                }),
        }
    }
}

impl AlertAction {
    /// The override intent for a service at `current` replicas within `[min, max]`.
    pub fn intent(self, current: u32, min: u32, max: u32) -> Intent {
        match self {
            AlertAction::ScaleUp => {
                Intent::Pin(current.saturating_mul(2).max(current + 1).clamp(min, max))
            }
            AlertAction::ScaleDown => Intent::Pin((current / 2).clamp(min, max)),
            AlertAction::Pin(replicas) => Intent::Pin(replicas),
            AlertAction::Pause => Intent::Pause,
        }
    }
}

/// What was done with one alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// An override was written.
    Applied,
    /// The override this alert set earlier was extended.
    Extended,
    /// The override this alert set was removed.
    Cleared,
    /// Nothing to do (no `swarmpilot_service` label, or the override belongs to someone else).
    Skipped,
    /// The alert asks for something invalid (bad action, TTL out of range, beyond maxReplicas).
    Rejected,
    /// The Swarm could not be updated; Alertmanager should retry.
    Failed,
}

/// The report of one alert in the response.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct AlertResult {
    pub alertname: String,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub outcome: Outcome,
    pub detail: String,
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub value: Option<Override>,
}

/// The response to a notification.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct AlertsResponse {
    pub results: Vec<AlertResult>,
}

/// `POST /v1/alertmanager`
pub async fn receive<S: Swarm>(
    State(state): State<AppState<S>>,
    ApiJson(notification): ApiJson<Notification>,
) -> Result<Response, ApiError> {
    if notification.version != "4" {
        return Err(ApiError::invalid(
            "version",
            format!(
                "payload version {:?} is not supported; this receiver understands Alertmanager's version \"4\"",
                notification.version
            ),
        ));
    }
    let mut results = Vec::with_capacity(notification.alerts.len());
    for alert in &notification.alerts {
        results.push(handle(&state, alert).await);
    }
    let failed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .count();
    if failed > 0 {
        // A 5xx makes Alertmanager retry the notification; applying an alert twice is harmless
        // because a re-send of the same alert only extends its override.
        let body = serde_json::json!({
            "error": "unavailable",
            "detail": format!("{failed} of {} alerts could not be applied; see results", results.len()),
            "results": results,
        });
        return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
    }
    Ok(Json(AlertsResponse { results }).into_response())
}

async fn handle<S: Swarm>(state: &AppState<S>, alert: &Alert) -> AlertResult {
    let alertname = alert
        .labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "unnamed".into());
    let mut result = AlertResult {
        alertname: alertname.clone(),
        fingerprint: alert.fingerprint.clone(),
        service: alert.labels.get(SERVICE_LABEL).cloned(),
        outcome: Outcome::Skipped,
        detail: String::new(),
        value: None,
    };
    let Some(service) = result.service.clone() else {
        result.detail = format!("no {SERVICE_LABEL} label: not an alert for swarmpilot");
        return result;
    };
    if let Err(error) = validate_service_name(&service) {
        return reject(result, error.body.detail);
    }
    let by = if alert.fingerprint.is_empty() {
        format!("alertmanager:{alertname}")
    } else {
        format!("alertmanager:{alertname}/{}", alert.fingerprint)
    };
    let outcome = match alert.status {
        AlertStatus::Firing => fire(state, alert, &service, &alertname, &by).await,
        AlertStatus::Resolved => resolve(state, &service, &by).await,
    };
    match outcome {
        Ok((outcome, detail, value)) => {
            result.outcome = outcome;
            result.detail = detail;
            result.value = value;
        }
        Err(error) if error.status.is_server_error() || error.status == StatusCode::CONFLICT => {
            result.outcome = Outcome::Failed;
            result.detail = error.body.detail;
        }
        Err(error) => return reject(result, error.body.detail),
    }
    result
}

fn reject(mut result: AlertResult, detail: String) -> AlertResult {
    result.outcome = Outcome::Rejected;
    result.detail = detail;
    result
}

type Done = (Outcome, String, Option<Override>);

async fn fire<S: Swarm>(
    state: &AppState<S>,
    alert: &Alert,
    service: &str,
    alertname: &str,
    by: &str,
) -> Result<Done, ApiError> {
    let action: AlertAction = alert
        .annotations
        .get(ACTION_ANNOTATION)
        .ok_or_else(|| {
            ApiError::invalid(
                ACTION_ANNOTATION,
                format!("annotation {ACTION_ANNOTATION} is missing; use scale_up, scale_down, pin:N or pause"),
            )
        })?
        .parse()
        .map_err(|message| ApiError::invalid(ACTION_ANNOTATION, format!("annotation {ACTION_ANNOTATION}: {message}")))?;
    let ttl = match alert.annotations.get(TTL_ANNOTATION) {
        Some(text) => text.parse::<HumanDuration>().map_err(|error| {
            ApiError::invalid(
                TTL_ANNOTATION,
                format!("annotation {TTL_ANNOTATION} {error}"),
            )
        })?,
        None => DEFAULT_TTL,
    };
    check_ttl(ttl, TTL_ANNOTATION)?;
    let reason = match alert.annotations.get("summary") {
        Some(summary) => format!("alert {alertname}: {summary}"),
        None => format!("alert {alertname} is firing"),
    };
    let Changed {
        change, previous, ..
    } = change_override(state, service, |info, current| {
        let policy = policy_of(info)?;
        let grant = alerts_granted(&policy, ttl)?;
        let replicas = info.replicas.ok_or_else(|| {
            ApiError::refused(
                "service",
                format!(
                    "service {} is in global mode and has no replica count",
                    info.name
                ),
            )
        })?;
        let now = Utc::now();
        // A re-send of the alert that set the current override extends it without a new step.
        let intent = match current.filter(|o| o.by == by && o.is_active(now)) {
            Some(Override {
                replicas: Some(pinned),
                ..
            }) if matches!(action, AlertAction::ScaleUp | AlertAction::ScaleDown) => {
                Intent::Pin(pinned)
            }
            _ => action.intent(
                u32::try_from(replicas).unwrap_or(u32::MAX),
                policy.spec.min_replicas,
                grant.max_replicas.min(policy.spec.max_replicas),
            ),
        };
        check_bounds(intent, &policy, ACTION_ANNOTATION)?;
        if let Intent::Pin(pinned) = intent {
            if pinned > grant.max_replicas {
                return Err(ApiError::refused(
                    ACTION_ANNOTATION,
                    format!(
                        "{pinned} replicas is above spec.alerts.maxReplicas {} of {}'s policy, the most an alert may pin",
                        grant.max_replicas,
                        policy.service()
                    ),
                ));
            }
        }
        Ok(Change::Set(build(
            intent,
            ttl,
            reason.clone(),
            by.to_owned(),
            now,
        )))
    })
    .await?;
    let Change::Set(value) = change else {
        return Err(ApiError::unavailable("the override was not written"));
    };
    let extended = previous.is_some_and(|p| p.by == by && p.is_active(Utc::now()));
    let detail = match (extended, value.replicas) {
        (true, _) => format!("extended until {}", value.expires_at.to_rfc3339()),
        (false, Some(replicas)) => format!(
            "pinned {service} at {replicas} replicas until {}",
            value.expires_at.to_rfc3339()
        ),
        (false, None) => format!("paused {service} until {}", value.expires_at.to_rfc3339()),
    };
    let outcome = if extended {
        Outcome::Extended
    } else {
        Outcome::Applied
    };
    tracing::info!(%service, %by, ?outcome, "alert applied");
    Ok((outcome, detail, Some(value)))
}

/// What the service's policy lets alerts do, or why it lets them do nothing: a service accepts
/// alert-driven overrides only if its policy opts in with `spec.alerts`.
fn alerts_granted(policy: &ScalingPolicy, ttl: HumanDuration) -> Result<&AlertsSpec, ApiError> {
    let grant = policy.spec.alerts.as_ref().ok_or_else(|| {
        ApiError::refused(
            SERVICE_LABEL,
            format!(
                "the policy of {} does not accept alert-driven overrides; add spec.alerts (e.g. {{maxReplicas: 10}}) to opt in",
                policy.service()
            ),
        )
    })?;
    if ttl.as_std() > grant.max_ttl.as_std() {
        return Err(ApiError::refused(
            TTL_ANNOTATION,
            format!(
                "annotation {TTL_ANNOTATION} {ttl} is longer than spec.alerts.maxTtl {} of {}'s policy",
                grant.max_ttl,
                policy.service()
            ),
        ));
    }
    Ok(grant)
}

async fn resolve<S: Swarm>(state: &AppState<S>, service: &str, by: &str) -> Result<Done, ApiError> {
    let Changed { change, .. } = change_override(state, service, |_, current| {
        Ok(match current {
            Some(value) if value.by == by => Change::Clear,
            Some(value) => Change::Keep(format!(
                "the override on {service} was set by {}, not this alert; left in place",
                value.by
            )),
            None => Change::Keep(format!("{service} has no override to clear")),
        })
    })
    .await?;
    Ok(match change {
        Change::Keep(detail) => (Outcome::Skipped, detail, None),
        _ => {
            tracing::info!(%service, %by, "alert resolved, override cleared");
            (
                Outcome::Cleared,
                format!("cleared the override this alert set on {service}"),
                None,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_stay_in_bounds() {
        assert_eq!("scale_up".parse(), Ok(AlertAction::ScaleUp));
        assert_eq!("pin:7".parse(), Ok(AlertAction::Pin(7)));
        assert!("pin:-1".parse::<AlertAction>().is_err());
        assert!("explode".parse::<AlertAction>().is_err());
        assert_eq!(AlertAction::ScaleUp.intent(3, 2, 20), Intent::Pin(6));
        assert_eq!(AlertAction::ScaleUp.intent(0, 0, 20), Intent::Pin(1));
        assert_eq!(AlertAction::ScaleUp.intent(15, 2, 20), Intent::Pin(20));
        assert_eq!(AlertAction::ScaleDown.intent(5, 1, 20), Intent::Pin(2));
        assert_eq!(AlertAction::ScaleDown.intent(3, 2, 20), Intent::Pin(2));
        assert_eq!(AlertAction::Pause.intent(3, 2, 20), Intent::Pause);
    }
}
