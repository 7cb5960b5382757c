//! Traffic states in decisions: once the classifier's state has persisted for `anomaly.for`, its
//! `anomaly.onState` action shapes the count (issue 6). The classifier itself lives in `models`.

use chrono::{DateTime, Utc};

use super::behavior::cutoff;
use super::decision::{Limit, Reason};
use super::observation::Observation;
use super::Outcome;
use crate::policy::{PolicySpec, StateAction, TrafficState};

/// The state and its action, if the policy maps the observed state to one and the state has
/// persisted long enough: one odd sample changes nothing.
pub(crate) fn active_action(
    spec: &PolicySpec,
    observation: &Observation,
    now: DateTime<Utc>,
) -> Option<(TrafficState, StateAction)> {
    let anomaly = spec.anomaly.as_ref()?;
    let observed = observation.traffic?;
    let action = *anomaly.on_state.get(&observed.state)?;
    (observed.since <= cutoff(now, anomaly.for_duration)).then_some((observed.state, action))
}

/// Applies the action to the policy's outcome.
pub(crate) fn apply(
    state: TrafficState,
    action: StateAction,
    outcome: Outcome,
    current: u32,
    min: u32,
) -> Outcome {
    let (desired, limit) = match action {
        StateAction::Scale => return outcome,
        StateAction::Hold => (current, None),
        StateAction::NoScaleDown if outcome.desired < current => {
            (current, Some(Limit::NoScaleDown))
        }
        StateAction::Cap(cap) if outcome.desired > cap => (cap.max(min), Some(Limit::Cap)),
        StateAction::NoScaleDown | StateAction::Cap(_) => {
            return Outcome {
                traffic_state: Some(state),
                ..outcome
            }
        }
    };
    if desired == outcome.desired {
        return Outcome {
            traffic_state: Some(state),
            ..outcome
        };
    }
    Outcome {
        desired,
        reason: Reason::TrafficState,
        limited_by: limit,
        traffic_state: Some(state),
        message: format!(
            "traffic state {state} ({}): {desired} replicas; the metrics would choose {}",
            describe(action),
            outcome.desired
        ),
        ..outcome
    }
}

fn describe(action: StateAction) -> String {
    match action {
        StateAction::Scale => "scale".to_owned(),
        StateAction::Hold => "hold".to_owned(),
        StateAction::NoScaleDown => "noScaleDown".to_owned(),
        StateAction::Cap(cap) => format!("cap {cap}"),
    }
}
