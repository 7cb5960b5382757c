//! The memory `decide` needs between calls: past recommendations (for the stabilization windows),
//! scale events (for the rate policies) and the forecast's recent asks (for its hold). It is the
//! label-borne [`ScaleState`], so the reconcile loop can persist it in `io.swarmpilot.state` and a
//! restarted operator keeps its windows, limits and holds.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::behavior::cutoff;
use super::decision::Decision;
use super::forecast;
use crate::policy::{ForecastAsk, HumanDuration, PolicySpec, ScaleEvent, ScaleState};

/// Recommendations and scale events, oldest first.
pub type History = ScaleState;

impl ScaleState {
    /// The history after `decision` was made at `now`: its recommendation remembered, a scale
    /// event added when `applied` (the caller wrote `decision.desired`), and everything pruned
    /// that no window or period of `spec` can still see.
    pub fn record(
        &self,
        spec: &PolicySpec,
        decision: &Decision,
        applied: bool,
        now: DateTime<Utc>,
    ) -> ScaleState {
        let mut recommendations = self.recommendations.clone();
        if recommendations.is_empty() {
            // HPA's recordInitialRecommendation: the count found at the first look counts as a
            // recommendation, so a fresh operator does not scale in before a full window.
            recommendations.push((now, decision.current));
        }
        if let Some(recommendation) = decision.recommendation {
            recommendations.push((now, recommendation));
        }
        let mut events = self.events.clone();
        let mut last_scale = self.last_scale;
        if applied && decision.desired != decision.current {
            events.push(ScaleEvent {
                at: now,
                from: decision.current,
                to: decision.desired,
            });
            last_scale = Some(now);
        }
        let mut forecasts = self.forecasts.clone();
        if let Some(replicas) = forecast::ask(spec, decision) {
            // The claim as `decide` computed it, from the same history.
            let floor =
                forecast::through_scale_up_window(spec, self, replicas, decision.current, now);
            forecasts.push(ForecastAsk {
                at: now,
                replicas,
                floor,
            });
        }
        prune(
            ScaleState {
                events,
                recommendations,
                forecasts,
                last_scale,
                claimed: forecast::claimed(self.claimed, decision),
                last_active: decision.last_active.or(self.last_active),
                failed_reads: decision.failed_reads.clone(),
                ..self.clone()
            },
            spec,
            now,
        )
    }
}

/// The recommendations the stabilization windows look at, with HPA's initial recommendation (the
/// current count, now) standing in when nothing was recorded yet.
pub(crate) fn recommendations_or_initial(
    history: &History,
    current: u32,
    now: DateTime<Utc>,
) -> Cow<'_, [(DateTime<Utc>, u32)]> {
    if history.recommendations.is_empty() {
        Cow::Owned(vec![(now, current)])
    } else {
        Cow::Borrowed(&history.recommendations)
    }
}

/// Drops what no window or period can see any more. The newest recommendation always stays, so
/// the history never looks fresh again (HPA likewise never empties its list once it has one).
fn prune(mut state: ScaleState, spec: &PolicySpec, now: DateTime<Utc>) -> ScaleState {
    let up = spec.behavior.scale_up();
    let down = spec.behavior.scale_down();
    let window = up.stabilization_window.max(down.stabilization_window);
    let period = up
        .policies
        .iter()
        .chain(&down.policies)
        .map(|policy| policy.period)
        .max()
        .unwrap_or(HumanDuration::from_secs(0));

    let recommendation_cutoff = cutoff(now, window);
    let newest = state.recommendations.len().saturating_sub(1);
    let mut index = 0;
    state.recommendations.retain(|&(at, _)| {
        let keep = at > recommendation_cutoff || index == newest;
        index += 1;
        keep
    });
    let event_cutoff = cutoff(now, period);
    state.events.retain(|event| event.at > event_cutoff);
    match spec.forecast.as_ref() {
        Some(forecast) => {
            // The claim looks back one horizon; the scale-up window, at the asks within it.
            let ask_cutoff = cutoff(now, forecast.horizon.max(up.stabilization_window));
            state.forecasts.retain(|ask| ask.at > ask_cutoff);
        }
        None => state.forecasts.clear(),
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::decision::Reason;
    use crate::policy::{Behavior, Fallback, Mode};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
    }

    fn spec() -> PolicySpec {
        PolicySpec {
            service: None,
            min_replicas: 1,
            idle_replicas: None,
            cooldown_period: None,
            max_replicas: 10,
            interval: HumanDuration::from_secs(15),
            mode: Mode::Enforce,
            metrics: vec![],
            observe: vec![],
            forecast: None,
            anomaly: None,
            alerts: None,
            behavior: Behavior::default(),
            fallback: Fallback::Hold.into(),
            schedules: Vec::new(),
        }
    }

    fn decision(current: u32, desired: u32, recommendation: Option<u32>) -> Decision {
        Decision {
            desired,
            current,
            reason: Reason::DesiredWithinRange,
            limited_by: None,
            recommendation,
            stabilized: None,
            per_metric: vec![],
            forecast: None,
            traffic_state: None,
            recommend_only: false,
            override_expired: false,
            last_active: None,
            failed_reads: Default::default(),
            schedule: None,
            message: String::new(),
            detail: Vec::new(),
        }
    }

    #[test]
    fn first_record_keeps_the_initial_count() {
        let history = History::default().record(&spec(), &decision(3, 5, Some(5)), true, now());
        assert_eq!(history.recommendations, vec![(now(), 3), (now(), 5)]);
        assert_eq!(
            history.events,
            vec![ScaleEvent {
                at: now(),
                from: 3,
                to: 5
            }]
        );
    }

    #[test]
    fn unapplied_decisions_add_no_event() {
        let history = History::default().record(&spec(), &decision(3, 5, Some(5)), false, now());
        assert!(history.events.is_empty());
    }

    #[test]
    fn prunes_beyond_the_longest_window_and_period_but_keeps_the_newest() {
        let old = now() - chrono::Duration::seconds(400);
        let history = History {
            recommendations: vec![(old, 7), (old, 8)],
            events: vec![ScaleEvent {
                at: old,
                from: 1,
                to: 2,
            }],
            ..History::default()
        };
        // No recommendation this time: the newest old one survives, the rest go.
        let pruned = history.record(&spec(), &decision(3, 3, None), true, now());
        assert_eq!(pruned.recommendations, vec![(old, 8)]);
        assert!(pruned.events.is_empty());
        let pruned = history.record(&spec(), &decision(3, 3, Some(3)), true, now());
        assert_eq!(pruned.recommendations, vec![(now(), 3)]);
    }

    #[test]
    fn a_label_written_before_forecast_asks_were_kept_decodes() {
        let old = r#"{"events":[{"at":"2024-01-01T11:59:00Z","from":2,"to":4}],"recommendations":[["2024-01-01T11:59:00Z",4]],"lastScale":"2024-01-01T11:59:00Z"}"#;
        let state: ScaleState = serde_json::from_str(old).unwrap();
        assert!(state.forecasts.is_empty());
        assert_eq!(state.recommendations.len(), 1);
        // And a state without asks writes no field, as before.
        assert!(!serde_json::to_string(&state).unwrap().contains("forecasts"));
    }

    #[test]
    fn forecast_asks_keep_only_what_can_still_hold_within_the_horizon() {
        let mut spec = spec();
        spec.forecast = Some(
            serde_yaml::from_str("{model: traffic-forecast, metric: rps, horizon: 60s}").unwrap(),
        );
        let at = |secs: i64| now() + chrono::Duration::seconds(secs);
        let mut asking = decision(4, 7, Some(4));
        let mut history = History::default();
        for (secs, forecast) in [(0, 7), (15, 6), (30, 6), (45, 4)] {
            asking.forecast = Some(forecast);
            history = history.record(&spec, &asking, true, at(secs));
        }
        // Every ask above the metrics' 4 is kept for the horizon; 4 is none. With HPA's default
        // scale-up window (0 s) each ask could claim its own count.
        let asked = |secs, replicas| ForecastAsk {
            at: at(secs),
            replicas,
            floor: replicas,
        };
        assert_eq!(history.forecasts, [asked(0, 7), asked(15, 6), asked(30, 6)]);
        history = history.record(&spec, &asking, true, at(60));
        assert_eq!(history.forecasts, [asked(15, 6), asked(30, 6)]);
        let json = serde_json::to_string(&history).unwrap();
        assert!(json.contains(r#""forecasts":[{"at":"#), "{json}");
        assert_eq!(serde_json::from_str::<ScaleState>(&json).unwrap(), history);
    }
}
