//! The label-borne runtime records: overrides (`io.swarmpilot.override`) and the operator's
//! scaling state (`io.swarmpilot.state`). Service labels are the only durable state.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A manual or alert-driven override of the policy, stored as JSON in `io.swarmpilot.override`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Override {
    /// Pin the service at this many replicas (must be within the policy's bounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Make no change at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    /// Never scale in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause_scale_in: bool,
    /// Never scale out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause_scale_out: bool,
    /// When the override stops applying.
    pub expires_at: DateTime<Utc>,
    /// Why it was set, for `describe` and the dashboard.
    #[serde(default)]
    pub reason: String,
    /// Who set it: a token's name, `alertmanager:<alertname>`, or `cli`.
    #[serde(default)]
    pub by: String,
}

impl Override {
    /// Whether the override still applies at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// A scale the operator made, kept so a restarted operator honours rate limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleEvent {
    pub at: DateTime<Utc>,
    pub from: u32,
    pub to: u32,
}

/// The operator's memory across restarts, stored as JSON in `io.swarmpilot.state`.
///
/// Written only when the operator scales, so it never causes churn on an idle service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleState {
    /// Scale events within the longest rate-policy period, oldest first.
    #[serde(default)]
    pub events: Vec<ScaleEvent>,
    /// Recent recommendations within the longest stabilization window: (time, replicas).
    #[serde(default)]
    pub recommendations: Vec<(DateTime<Utc>, u32)>,
    /// When the operator last changed the replica count (the AGE column of `get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<DateTime<Utc>>,
}
