//! Per-service memory of the traffic state, kept by the caller of [`super::decide`] (the live
//! loop and `replay` alike, through `models::SignalMemory`): since when the classifier has
//! reported the same state. Pure: time is a parameter. The forecast's memory is
//! [`super::ensemble`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ObservedState;
use crate::policy::TrafficState;

/// A change of the reported traffic state, for logs, metrics and notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChange {
    pub from: Option<TrafficState>,
    pub to: TrafficState,
    pub at: DateTime<Utc>,
}

/// Since when the classifier has reported the same state without interruption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateTracker {
    current: Option<ObservedState>,
}

impl StateTracker {
    /// Takes the state reported at `now`; returns the change when it differs from the last one.
    pub fn observe(&mut self, state: TrafficState, now: DateTime<Utc>) -> Option<StateChange> {
        match self.current {
            Some(current) if current.state == state => None,
            previous => {
                self.current = Some(ObservedState { state, since: now });
                Some(StateChange {
                    from: previous.map(|p| p.state),
                    to: state,
                    at: now,
                })
            }
        }
    }

    /// The classifier gave no state (its inputs are missing): the streak is broken.
    pub fn lost(&mut self) {
        self.current = None;
    }

    pub fn current(&self) -> Option<ObservedState> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(secs)
    }

    #[test]
    fn a_state_streak_starts_at_each_change() {
        let mut tracker = StateTracker::default();
        let first = tracker.observe(TrafficState::Normal, at(0)).unwrap();
        assert_eq!((first.from, first.to), (None, TrafficState::Normal));
        assert_eq!(tracker.observe(TrafficState::Normal, at(10)), None);
        let change = tracker.observe(TrafficState::Flood, at(20)).unwrap();
        assert_eq!(change.from, Some(TrafficState::Normal));
        assert_eq!(
            tracker.current(),
            Some(ObservedState {
                state: TrafficState::Flood,
                since: at(20)
            })
        );
        assert_eq!(tracker.observe(TrafficState::Flood, at(60)), None);
        assert_eq!(
            tracker.current().unwrap().since,
            at(20),
            "the streak keeps its start"
        );
        tracker.lost();
        assert_eq!(
            tracker.observe(TrafficState::Flood, at(70)).unwrap().from,
            None
        );
    }
}
