//! The label-borne runtime records: overrides (`io.swarmpilot.override`) and the operator's
//! scaling state (`io.swarmpilot.state`). Service labels are the only durable state.

use std::collections::BTreeMap;

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

/// A `scaleUp` forecast's ask above the metrics' recommendation, kept for its hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ForecastAsk {
    pub at: DateTime<Utc>,
    /// The count the forecast asked for.
    pub replicas: u32,
    /// What the ask could claim after the scale-up stabilization window (at most `replicas`).
    pub floor: u32,
}

/// The count a `scaleUp` forecast's claim set above the count the metrics held (see `decide`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimedCount {
    /// The count the claim set.
    pub claimed: u32,
    /// The count the metrics held (stabilized) at that decision.
    pub metrics: u32,
}

/// The operator's memory across restarts, stored as JSON in `io.swarmpilot.state`.
///
/// Written when the operator scales, when an event is added, when a service goes quiet (for
/// the cooldown) and when a failed-read streak grows: never at every reconcile of a steady
/// service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleState {
    /// Scale events within the longest rate-policy period, oldest first.
    #[serde(default)]
    pub events: Vec<ScaleEvent>,
    /// Recent recommendations within the longest stabilization window: (time, replicas).
    #[serde(default)]
    pub recommendations: Vec<(DateTime<Utc>, u32)>,
    /// The forecast's recent asks above the metrics (`use: scaleUp`), within the longer of its
    /// horizon and the scale-up stabilization window. A forecast claims its load arrives within
    /// the horizon, so the count it could claim holds until one horizon after the ask (see
    /// `decide`); at most one entry a reconcile, so the label stays small.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecasts: Vec<ForecastAsk>,
    /// The last count a forecast's claim raised above the metrics', while it is in place: the
    /// metrics' tolerance keeps the metrics' own count, not the claim's (see `decide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<ClaimedCount>,
    /// When the operator last changed the replica count (the AGE column of `get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<DateTime<Utc>>,
    /// For a policy that can go idle: the last time a metric was above its activation; the
    /// cooldown before going idle runs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active: Option<DateTime<Utc>>,
    /// Each failing metric's consecutive failed reads (capped at `fallback.failureThreshold`),
    /// so a restarted operator does not start the count afresh.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_reads: BTreeMap<String, FailedReads>,
    /// The service's last [`EVENTS_KEPT`] events, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<Event>,
}

/// A metric's streak of failed reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FailedReads {
    /// Consecutive failed reads, at most `fallback.failureThreshold`.
    pub count: u32,
    /// When the last one was counted.
    pub last: DateTime<Utc>,
}

/// How many events each service keeps, in memory and in its state label. Each is at most about
/// 250 bytes of JSON (the message is at most 120 characters), so the ring adds at most about
/// 5 KB to the label.
pub const EVENTS_KEPT: usize = 20;

/// Whether an event is routine or asks for attention, as Kubernetes events say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    Normal,
    Warning,
}

/// What happened.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum EventReason {
    /// The operator changed the replica count.
    SuccessfulRescale,
    /// Writing a new replica count failed.
    FailedRescale,
    /// An override started applying.
    OverrideSet,
    /// An override stopped applying (cleared or expired).
    OverrideEnded,
    /// The classifier's traffic state changed.
    TrafficStateChanged,
    /// A metric could not be read (once per failing streak).
    FailedGetMetric,
    /// Every metric reads again.
    MetricsRecovered,
    /// An operator started and took over the service's state from its label.
    StateRestored,
    /// A metric rose above its activation and the idle service was scaled up (KEDA's
    /// `KEDAScaleTargetActivated`).
    Activated,
    /// Every metric stayed at or below its activation for the cooldown and the service was
    /// scaled to its idle count (KEDA's `KEDAScaleTargetDeactivated`).
    Idle,
    /// An external update (a plain `docker stack deploy`) replaced the spec; the operator put
    /// back the replica count and its labels.
    RestoredAfterExternalUpdate,
    /// The policy label cannot be used (malformed, names another service, global mode).
    InvalidPolicy,
    /// A reconcile failed before deciding (the engine, a malformed override label).
    FailedReconcile,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::SuccessfulRescale => "SuccessfulRescale",
            EventReason::FailedRescale => "FailedRescale",
            EventReason::OverrideSet => "OverrideSet",
            EventReason::OverrideEnded => "OverrideEnded",
            EventReason::TrafficStateChanged => "TrafficStateChanged",
            EventReason::FailedGetMetric => "FailedGetMetric",
            EventReason::MetricsRecovered => "MetricsRecovered",
            EventReason::StateRestored => "StateRestored",
            EventReason::Activated => "Activated",
            EventReason::Idle => "Idle",
            EventReason::RestoredAfterExternalUpdate => "RestoredAfterExternalUpdate",
            EventReason::InvalidPolicy => "InvalidPolicy",
            EventReason::FailedReconcile => "FailedReconcile",
        }
    }
}

/// One event of a service, as `kubectl describe` lists them; repeats are counted, not added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Event {
    /// When it last happened.
    pub at: DateTime<Utc>,
    /// When it first happened, if it repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at: Option<DateTime<Utc>>,
    /// How many times it happened in a row.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
    #[serde(rename = "type")]
    pub type_: EventType,
    pub reason: EventReason,
    /// One short sentence (at most 120 characters).
    pub message: String,
}

fn one() -> u32 {
    1
}

fn is_one(count: &u32) -> bool {
    *count == 1
}

impl ScaleState {
    /// Adds an event at the end of the ring; the same reason and message as the last event
    /// count as a repeat of it. Returns whether a new entry was added (not only counted).
    pub fn push_event(&mut self, event: Event) -> bool {
        if let Some(last) = self.log.last_mut() {
            if last.reason == event.reason && last.message == event.message {
                last.first_at = last.first_at.or(Some(last.at));
                last.at = event.at;
                last.count = last.count.saturating_add(1);
                return false;
            }
        }
        if self.log.len() >= EVENTS_KEPT {
            self.log.remove(0);
        }
        self.log.push(event);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: EventReason, message: &str, secs: i64) -> Event {
        Event {
            at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs),
            first_at: None,
            count: 1,
            type_: EventType::Normal,
            reason,
            message: message.into(),
        }
    }

    #[test]
    fn the_ring_counts_repeats_and_keeps_the_newest() {
        let mut state = ScaleState::default();
        assert!(state.push_event(event(EventReason::FailedGetMetric, "rps: down", 0)));
        assert!(!state.push_event(event(EventReason::FailedGetMetric, "rps: down", 15)));
        assert_eq!(state.log.len(), 1);
        assert_eq!(state.log[0].count, 2);
        assert_eq!(state.log[0].first_at, Some(DateTime::<Utc>::UNIX_EPOCH));
        for i in 0..(EVENTS_KEPT as i64 + 5) {
            state.push_event(event(
                EventReason::SuccessfulRescale,
                &format!("to {i}"),
                30 + i,
            ));
        }
        assert_eq!(state.log.len(), EVENTS_KEPT);
        assert_eq!(
            state.log.last().unwrap().message,
            format!("to {}", EVENTS_KEPT + 4)
        );
    }

    #[test]
    fn a_full_ring_fits_a_label_of_a_few_kilobytes() {
        let mut state = ScaleState::default();
        let message = "m".repeat(120);
        for i in 0..EVENTS_KEPT as i64 {
            let mut e = event(EventReason::OverrideEnded, &format!("{i}{message}"), i);
            e.first_at = Some(e.at);
            e.count = u32::MAX;
            e.type_ = EventType::Warning;
            state.push_event(e);
        }
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.len() < 6 * 1024, "{} bytes", json.len());
    }
}
