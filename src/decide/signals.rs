//! The vocabulary of the model signals the caller of [`super::decide`] keeps (the live loop and
//! `replay` alike): the forecast ensemble's members and its verdict, and since when the
//! classifier has reported the same traffic state. Pure: time is a parameter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ObservedState;
use crate::policy::TrafficState;

/// A forecaster of the online ensemble (see `crate::models::Ensemble`), in order of preference:
/// a member is replaced only by one that has lately done better by more than the scale-up
/// tolerance of the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Member {
    /// The mean of the model's and the autoregression's paths, equal weights: two forecasters
    /// that read the recent shape differently, whose errors partly cancel.
    Combined,
    /// The policy's forecast model (the shipped LSTM or the user's).
    Model,
    /// An autoregression of the load's changes, fitted on the service's last hour.
    Autoregressive,
    /// Holt's exponential smoothing with a damped trend.
    Holt,
    /// The value one day earlier.
    SeasonalNaive,
    /// The load stays as it is: what a reactive policy assumes.
    Naive,
}

impl Member {
    /// Every member, in order of preference.
    pub const ALL: [Member; 6] = [
        Member::Combined,
        Member::Model,
        Member::Autoregressive,
        Member::Holt,
        Member::SeasonalNaive,
        Member::Naive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Member::Combined => "combined",
            Member::Model => "model",
            Member::Autoregressive => "autoregressive",
            Member::Holt => "holt",
            Member::SeasonalNaive => "seasonal-naive",
            Member::Naive => "naive",
        }
    }

    /// The member's position in [`Member::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the forecast may feed decisions, and which member makes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "verdict")]
pub enum ForecastVerdict {
    /// Too few forecasts have come due to judge; the model's forecast is used.
    Learning { scored: usize },
    /// `member`'s forecast is used: its recent error is the lowest, or within the tolerance of
    /// the load of the lowest and it comes first in the order of preference.
    #[serde(rename_all = "camelCase")]
    Trusted {
        member: Member,
        member_error: f64,
        naive_error: f64,
    },
    /// Every forecaster has lately been worse than assuming the load stays as it is, by more
    /// than the tolerance of the load: ignored. `best` is the forecaster that came closest.
    #[serde(rename_all = "camelCase")]
    Ignored {
        best: Member,
        member_error: f64,
        naive_error: f64,
    },
}

impl ForecastVerdict {
    pub fn usable(&self) -> bool {
        !matches!(self, ForecastVerdict::Ignored { .. })
    }

    /// The member whose forecast is used, if any.
    pub fn member(&self) -> Option<Member> {
        match self {
            ForecastVerdict::Learning { .. } => Some(Member::Model),
            ForecastVerdict::Trusted { member, .. } => Some(*member),
            ForecastVerdict::Ignored { .. } => None,
        }
    }

    /// A sentence for decisions and `describe`.
    pub fn describe(&self) -> String {
        match self {
            ForecastVerdict::Learning { scored } => format!(
                "forecast used: the model's ({scored} forecasts scored so far, the ensemble chooses from {})",
                crate::models::SCORED_BEFORE_CHOICE
            ),
            ForecastVerdict::Trusted { member, member_error, naive_error } => format!(
                "forecast used: {member}, recent error {member_error:.3} vs {naive_error:.3} for the naive forecast"
            ),
            ForecastVerdict::Ignored { best, member_error, naive_error } => format!(
                "forecast ignored: the best forecaster ({best}) has a recent error of {member_error:.3}, worse than the naive forecast's {naive_error:.3}"
            ),
        }
    }
}

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

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
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
