//! Per-service memory of the model signals, kept by the caller of [`super::decide`] (the live
//! loop and `replay` alike): whether the forecaster has lately beaten the naive forecast, and
//! since when the classifier has reported the same traffic state. Pure: time is a parameter.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::ObservedState;
use crate::policy::TrafficState;

/// How many scored forecasts the verdict looks at.
pub const SCORED_KEPT: usize = 24;
/// Below this many scored forecasts the forecaster is given the benefit of the doubt: it was
/// validated offline, and refusing it until proven would delay every new service's first surge.
pub const SCORED_BEFORE_VERDICT: usize = 6;

/// Whether the forecast may feed decisions.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "verdict")]
pub enum ForecastVerdict {
    /// Too few forecasts have come due to judge; the forecast is used.
    Learning { scored: usize },
    /// Its recent mean absolute error is no worse than the naive forecast's, or worse by less
    /// than the tolerance of the load.
    Trusted { model_error: f64, naive_error: f64 },
    /// It has lately been worse than assuming the load stays as it is, by more than the
    /// tolerance of the load: ignored.
    Ignored { model_error: f64, naive_error: f64 },
}

impl ForecastVerdict {
    pub fn usable(&self) -> bool {
        !matches!(self, ForecastVerdict::Ignored { .. })
    }

    /// A sentence for decisions and `describe`.
    pub fn describe(&self) -> String {
        match self {
            ForecastVerdict::Learning { scored } => {
                format!("forecast used ({scored} of {SCORED_BEFORE_VERDICT} forecasts scored so far)")
            }
            ForecastVerdict::Trusted { model_error, naive_error } => format!(
                "forecast used: recent error {model_error:.3} vs {naive_error:.3} for the naive forecast"
            ),
            ForecastVerdict::Ignored { model_error, naive_error } => format!(
                "forecast ignored: recent error {model_error:.3} is worse than the naive forecast's {naive_error:.3}"
            ),
        }
    }
}

#[derive(Clone, Debug)]
struct Pending {
    due: DateTime<Utc>,
    forecast: f64,
    naive: f64,
}

/// Scores each forecast against what the load turned out to be once its horizon has passed,
/// beside the naive forecast made at the same moment (the load stays as it was).
///
/// The forecast is ignored only when it has been worse than the naive one by more than
/// `tolerance` of the load: on steady traffic both errors are noise, an error within the
/// scale-up tolerance cannot change a replica count, and a forecaster switched off over noise
/// would be off when the next surge comes.
#[derive(Clone, Debug)]
pub struct ForecastTracker {
    horizon: Duration,
    tolerance: f64,
    pending: VecDeque<Pending>,
    /// The latest scored forecasts, oldest first.
    scored: VecDeque<Scored>,
}

/// One forecast that came due: its error, the naive forecast's, and the value it forecast.
#[derive(Clone, Copy, Debug)]
struct Scored {
    model_error: f64,
    naive_error: f64,
    actual: f64,
}

impl ForecastTracker {
    /// A tracker of forecasts `horizon` ahead, for a policy whose scale-up tolerance is
    /// `tolerance` (a share of the load, 0.1 by HPA's default).
    pub fn new(horizon: std::time::Duration, tolerance: f64) -> Self {
        let horizon = Duration::from_std(horizon).unwrap_or(Duration::MAX);
        Self {
            horizon,
            tolerance,
            pending: VecDeque::new(),
            scored: VecDeque::new(),
        }
    }

    /// Remembers the forecast made at `now` of the value at `now + horizon`, and the value seen now.
    pub fn predicted(&mut self, now: DateTime<Utc>, forecast: f64, current: f64) {
        if !(forecast.is_finite() && current.is_finite()) {
            return;
        }
        let Some(due) = now.checked_add_signed(self.horizon) else {
            return;
        };
        self.pending.push_back(Pending {
            due,
            forecast,
            naive: current,
        });
        // A forecast whose horizon never comes (the service stopped reporting) must not pile up.
        while self.pending.len() > 4 * SCORED_KEPT {
            self.pending.pop_front();
        }
    }

    /// Scores every forecast that has come due by `now` against `actual`, the value seen now.
    pub fn observed(&mut self, now: DateTime<Utc>, actual: f64) {
        if !actual.is_finite() {
            return;
        }
        while self.pending.front().is_some_and(|p| p.due <= now) {
            let Some(due) = self.pending.pop_front() else {
                break;
            };
            self.scored.push_back(Scored {
                model_error: (due.forecast - actual).abs(),
                naive_error: (due.naive - actual).abs(),
                actual,
            });
            if self.scored.len() > SCORED_KEPT {
                self.scored.pop_front();
            }
        }
    }

    pub fn verdict(&self) -> ForecastVerdict {
        let scored = self.scored.len();
        if scored < SCORED_BEFORE_VERDICT {
            return ForecastVerdict::Learning { scored };
        }
        let mean = |of: fn(&Scored) -> f64| self.scored.iter().map(of).sum::<f64>() / scored as f64;
        let model_error = mean(|s| s.model_error);
        let naive_error = mean(|s| s.naive_error);
        let load = mean(|s| s.actual.abs());
        if model_error > naive_error + self.tolerance * load {
            ForecastVerdict::Ignored {
                model_error,
                naive_error,
            }
        } else {
            ForecastVerdict::Trusted {
                model_error,
                naive_error,
            }
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
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(secs)
    }

    fn tracker_after(pairs: &[(f64, f64)]) -> ForecastTracker {
        // Each step: forecast made at t for t+60 with the load at t, then the load at t+60.
        let mut tracker = ForecastTracker::new(std::time::Duration::from_secs(60), 0.1);
        for (i, (forecast, actual)) in pairs.iter().enumerate() {
            let t = i as i64 * 60;
            tracker.predicted(at(t), *forecast, 100.0);
            tracker.observed(at(t + 60), *actual);
        }
        tracker
    }

    #[test]
    fn a_forecast_is_used_until_enough_have_come_due() {
        let tracker = tracker_after(&[(500.0, 100.0); SCORED_BEFORE_VERDICT - 1]);
        assert_eq!(
            tracker.verdict(),
            ForecastVerdict::Learning {
                scored: SCORED_BEFORE_VERDICT - 1
            }
        );
        assert!(tracker.verdict().usable());
    }

    #[test]
    fn a_forecaster_worse_than_naive_is_ignored_and_one_better_is_trusted() {
        // Load stays at 100; the model keeps predicting 500: worse than "stays as it is".
        let bad = tracker_after(&[(500.0, 100.0); 10]);
        assert_eq!(
            bad.verdict(),
            ForecastVerdict::Ignored {
                model_error: 400.0,
                naive_error: 0.0
            }
        );
        assert!(!bad.verdict().usable());
        assert!(bad.verdict().describe().contains("ignored"));
        // Load jumps to 300; the model said 280: better than the naive 100.
        let good = tracker_after(&[(280.0, 300.0); 10]);
        assert_eq!(
            good.verdict(),
            ForecastVerdict::Trusted {
                model_error: 20.0,
                naive_error: 200.0
            }
        );
    }

    #[test]
    fn an_error_within_the_tolerance_of_the_load_keeps_the_forecast() {
        // Steady load at 100 (the naive forecast is exact); the model is off by 8, within 10%.
        let noisy = tracker_after(&[(108.0, 100.0); 10]);
        assert_eq!(
            noisy.verdict(),
            ForecastVerdict::Trusted {
                model_error: 8.0,
                naive_error: 0.0
            }
        );
        // Off by 12: beyond what the tolerance absorbs.
        assert!(!tracker_after(&[(112.0, 100.0); 10]).verdict().usable());
    }

    #[test]
    fn only_forecasts_whose_horizon_passed_are_scored() {
        let mut tracker = ForecastTracker::new(std::time::Duration::from_secs(60), 0.1);
        tracker.predicted(at(0), 500.0, 100.0);
        tracker.observed(at(59), 100.0);
        assert_eq!(tracker.verdict(), ForecastVerdict::Learning { scored: 0 });
        tracker.observed(at(60), 100.0);
        assert_eq!(tracker.verdict(), ForecastVerdict::Learning { scored: 1 });
    }

    #[test]
    fn the_verdict_follows_recent_forecasts_only() {
        let mut pairs = vec![(500.0, 100.0); 30];
        pairs.extend([(100.0, 100.0); SCORED_KEPT]);
        assert!(matches!(
            tracker_after(&pairs).verdict(),
            ForecastVerdict::Trusted { .. }
        ));
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
