//! Overrides: the request people send, its validation against the service's policy, and the
//! version-checked write of the `io.swarmpilot.override` label that both the override endpoint
//! and the Alertmanager receiver use.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ServiceName};
use super::AppState;
use crate::policy::labels::{self, OVERRIDE as OVERRIDE_LABEL};
use crate::policy::{HumanDuration, Override, ScalingPolicy};
use crate::swarm::{ServiceInfo, Swarm, SwarmError};

/// The longest an override may last: anything longer should be a policy change.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Reasons are shown in one line of `describe` and the dashboard.
pub const MAX_REASON_LEN: usize = 500;
/// Version conflicts (someone else updated the service in between) retried before giving up.
pub const MAX_ATTEMPTS: u32 = 5;

/// The body of `POST /v1/services/{service}/override`: exactly one intent, a TTL and a reason.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OverrideRequest {
    /// Pin at this many replicas. Signed so that a negative count gets a clear refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause_scale_in: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause_scale_out: bool,
    /// How long the override lasts, e.g. `30m`.
    pub ttl: HumanDuration,
    pub reason: String,
}

/// What an override does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    Pin(u32),
    Pause,
    PauseScaleIn,
    PauseScaleOut,
}

impl OverrideRequest {
    /// The one intent of the request, or the field at fault.
    pub fn intent(&self) -> Result<Intent, ApiError> {
        let mut intents = Vec::new();
        if let Some(replicas) = self.replicas {
            let replicas = u32::try_from(replicas).map_err(|_| {
                ApiError::invalid(
                    "replicas",
                    format!("replicas must be a whole number from 0 up, got {replicas}"),
                )
            })?;
            intents.push(Intent::Pin(replicas));
        }
        if self.pause {
            intents.push(Intent::Pause);
        }
        if self.pause_scale_in {
            intents.push(Intent::PauseScaleIn);
        }
        if self.pause_scale_out {
            intents.push(Intent::PauseScaleOut);
        }
        match intents.as_slice() {
            [one] => Ok(*one),
            [] => Err(ApiError::invalid(
                "replicas",
                "say what the override does: one of replicas, pause, pauseScaleIn or pauseScaleOut",
            )),
            _ => Err(ApiError::invalid(
                "replicas",
                "give exactly one of replicas, pause, pauseScaleIn or pauseScaleOut",
            )),
        }
    }
}

/// Checks a TTL: more than zero, at most [`MAX_TTL`]. `field` names where it came from.
pub fn check_ttl(ttl: HumanDuration, field: &str) -> Result<(), ApiError> {
    if ttl.as_std().is_zero() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be longer than 0s"),
        ));
    }
    if ttl.as_std() > MAX_TTL {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} {ttl} is longer than the maximum of {}; change the policy instead",
                HumanDuration(MAX_TTL)
            ),
        ));
    }
    Ok(())
}

fn check_reason(reason: &str) -> Result<String, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "reason must say why, for whoever looks at the service next",
        ));
    }
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::invalid(
            "reason",
            format!("reason is longer than {MAX_REASON_LEN} characters"),
        ));
    }
    Ok(reason.to_owned())
}

/// Refuses a pin outside the policy's `[minReplicas, maxReplicas]` (`idleReplicas` for a
/// policy that can go idle), saying which bound.
pub fn check_bounds(intent: Intent, policy: &ScalingPolicy, field: &str) -> Result<(), ApiError> {
    let Intent::Pin(replicas) = intent else {
        return Ok(());
    };
    let (min, max) = (policy.spec.lowest_replicas(), policy.spec.max_replicas);
    if replicas > max {
        return Err(ApiError::refused(
            field,
            format!(
                "{replicas} replicas is above the policy's maxReplicas {max} for {}; raise maxReplicas in the policy first",
                policy.service()
            ),
        ));
    }
    if replicas < min {
        return Err(ApiError::refused(
            field,
            format!(
                "{replicas} replicas is below the policy's minReplicas {min} for {}; lower minReplicas in the policy first",
                policy.service()
            ),
        ));
    }
    Ok(())
}

/// The label value for `intent`, lasting `ttl` from `now`.
pub fn build(
    intent: Intent,
    ttl: HumanDuration,
    reason: String,
    by: String,
    now: DateTime<Utc>,
) -> Override {
    let expires_at = now
        + chrono::Duration::from_std(ttl.as_std()).unwrap_or_else(|_| chrono::Duration::days(7));
    Override {
        replicas: match intent {
            Intent::Pin(replicas) => Some(replicas),
            _ => None,
        },
        pause: intent == Intent::Pause,
        pause_scale_in: intent == Intent::PauseScaleIn,
        pause_scale_out: intent == Intent::PauseScaleOut,
        expires_at,
        reason,
        by,
    }
}

/// The override currently in the service's labels; a malformed one counts as none, since the
/// reconcile loop ignores it too and writing a new one repairs it.
pub fn current_override(info: &ServiceInfo) -> Option<Override> {
    labels::decode_override(&info.labels).ok().flatten()
}

/// The service's policy, decoded from the labels just read (not from the loop's last reconcile,
/// which may predate a policy change).
pub fn policy_of(info: &ServiceInfo) -> Result<ScalingPolicy, ApiError> {
    match labels::decode(&info.name, &info.labels) {
        Ok(Some(policy)) => Ok(policy),
        Ok(None) => Err(ApiError::conflict(format!(
            "service {} has no scaling policy (no io.swarmpilot.policy or shorthand labels); an override applies only to services swarmpilot manages",
            info.name
        ))
        .at("service")),
        Err(problems) => Err(ApiError::conflict(format!(
            "the scaling policy of service {} is not valid, so its bounds are unknown: {problems}",
            info.name
        ))
        .at("service")),
    }
}

/// What to do with a service's override label.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Set(Override),
    Clear,
    /// Leave the label as it is, for this reason.
    Keep(String),
}

/// What [`change_override`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    pub service: ServiceInfo,
    pub change: Change,
    pub previous: Option<Override>,
}

/// Reads the service, asks `decide` what to do given its current override, and writes the
/// label at the version read; on a version conflict it reads again and asks again.
pub async fn change_override<S: Swarm>(
    state: &AppState<S>,
    service: &str,
    mut decide: impl FnMut(&ServiceInfo, Option<Override>) -> Result<Change, ApiError>,
) -> Result<Changed, ApiError> {
    for _ in 0..MAX_ATTEMPTS {
        let info = state
            .swarm
            .inspect_service(service)
            .await
            .map_err(|error| swarm_error(state, "inspect_service", error))?;
        let previous = current_override(&info);
        let change = decide(&info, previous.clone())?;
        let written = match &change {
            Change::Set(value) => {
                let set =
                    BTreeMap::from([(OVERRIDE_LABEL.to_owned(), labels::encode_override(value))]);
                state
                    .swarm
                    .update_labels(&info.id, info.version, &set, &[])
                    .await
            }
            Change::Clear if info.labels.contains_key(OVERRIDE_LABEL) => {
                state
                    .swarm
                    .update_labels(
                        &info.id,
                        info.version,
                        &BTreeMap::new(),
                        &[OVERRIDE_LABEL.to_owned()],
                    )
                    .await
            }
            Change::Clear | Change::Keep(_) => Ok(()),
        };
        match written {
            Ok(()) => {
                after_change(state, &info.name, &change);
                return Ok(Changed {
                    service: info,
                    change,
                    previous,
                });
            }
            Err(SwarmError::Conflict { .. }) => continue,
            Err(error) => return Err(swarm_error(state, "update_labels", error)),
        }
    }
    Err(ApiError::conflict(format!(
        "service {service} kept changing while the override was written ({MAX_ATTEMPTS} attempts); try again"
    )))
}

/// Makes the change visible at once: the status API and metrics show it, and the loop
/// reconciles the service now rather than at its next interval.
fn after_change<S: Swarm>(state: &AppState<S>, service: &str, change: &Change) {
    let current = match change {
        Change::Set(value) => Some(value.clone()),
        Change::Clear => None,
        Change::Keep(_) => return,
    };
    if state.status.get(service).is_some() {
        state
            .status
            .update(service, |status| status.override_ = current.clone());
    }
    state.metrics.set_override(service, current.as_ref());
    state.waker.wake(service);
}

/// The API error for a failed Swarm call, counted in the operator's metrics.
pub fn swarm_error<S: Swarm>(state: &AppState<S>, operation: &str, error: SwarmError) -> ApiError {
    match error {
        SwarmError::NotFound(name) => {
            ApiError::not_found(format!("no Swarm service named {name}")).at("service")
        }
        SwarmError::NotReplicated(name) => ApiError::refused(
            "service",
            format!("service {name} is in global mode and has no replica count to override"),
        ),
        SwarmError::Conflict { service, .. } => ApiError::conflict(format!(
            "service {service} changed while it was written; try again"
        )),
        SwarmError::Engine(message) => {
            state.metrics.count_docker_error(operation);
            ApiError::unavailable(format!("the Docker engine did not answer: {message}"))
        }
    }
}

/// The response to a written override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverrideResponse {
    pub service: String,
    #[serde(rename = "override")]
    pub value: Override,
}

/// The response to a cleared override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClearResponse {
    pub service: String,
    /// Whether there was an override to clear.
    pub cleared: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Override>,
}

/// `POST /v1/services/{service}/override`
pub async fn set_override<S: Swarm>(
    State(state): State<AppState<S>>,
    ServiceName(service): ServiceName,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<OverrideRequest>,
) -> Result<Json<OverrideResponse>, ApiError> {
    let intent = request.intent()?;
    check_ttl(request.ttl, "ttl")?;
    let reason = check_reason(&request.reason)?;
    let changed = change_override(&state, &service, |info, _| {
        if info.replicas.is_none() {
            return Err(swarm_error(
                &state,
                "inspect_service",
                SwarmError::NotReplicated(info.name.clone()),
            ));
        }
        check_bounds(intent, &policy_of(info)?, "replicas")?;
        Ok(Change::Set(build(
            intent,
            request.ttl,
            reason.clone(),
            caller.name.clone(),
            Utc::now(),
        )))
    })
    .await?;
    tracing::info!(%service, by = %caller.name, ?intent, ttl = %request.ttl, "override written");
    match changed.change {
        Change::Set(value) => Ok(Json(OverrideResponse {
            service: changed.service.name,
            value,
        })),
        // The closure above only ever sets.
        _ => Err(ApiError::unavailable("the override was not written")),
    }
}

/// `DELETE /v1/services/{service}/override`
pub async fn clear_override<S: Swarm>(
    State(state): State<AppState<S>>,
    ServiceName(service): ServiceName,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ClearResponse>, ApiError> {
    let changed = change_override(&state, &service, |_, _| Ok(Change::Clear)).await?;
    tracing::info!(%service, by = %caller.name, "override cleared");
    Ok(Json(ClearResponse {
        service: changed.service.name,
        cleared: changed.service.labels.contains_key(OVERRIDE_LABEL),
        previous: changed.previous,
    }))
}
