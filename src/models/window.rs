//! The forecaster's input window from a service's history, and the missing-sample rule.
//!
//! The window is `window` values on the model's sample grid ending at `now`:
//! `now - (window-1)*period, ..., now - period, now`. Each grid point takes the latest finite
//! sample at or before it (forward fill, so a 15 s scrape interval feeds a 5 s model), as long as
//! that sample is at most [`MAX_FILL_SECS`] older than the grid point. Otherwise the model is
//! skipped for that service this tick, with the [`WindowError`] as the reason.

use chrono::{DateTime, Utc};
use thiserror::Error;

/// The oldest a sample may be and still stand for a grid point: a few missed scrapes at a
/// 15 s interval, but not an outage of the metrics pipeline.
pub const MAX_FILL_SECS: f64 = 60.0;

/// One observation of a metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// Why no window (or feature row) could be built for a service.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum WindowError {
    #[error("{metric}: history covers {have_secs:.0}s, the model needs {need_secs:.0}s")]
    TooShort {
        metric: String,
        have_secs: f64,
        need_secs: f64,
    },
    #[error(
        "{metric}: no sample in the {gap_secs:.0}s before {at} (forward fill stops at {}s)",
        MAX_FILL_SECS
    )]
    Gap {
        metric: String,
        at: DateTime<Utc>,
        gap_secs: f64,
    },
    #[error("{metric}: no sample in the last {window_secs:.0}s")]
    NoRecentSample { metric: String, window_secs: f64 },
}

fn secs_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier).num_milliseconds() as f64 / 1000.0
}

/// Builds a forecaster window from `history` (oldest first) for the metric named `metric`.
pub fn forecast_window(
    metric: &str,
    history: &[Sample],
    now: DateTime<Utc>,
    window: usize,
    period_secs: f64,
) -> Result<Vec<f32>, WindowError> {
    let finite: Vec<&Sample> = history
        .iter()
        .filter(|s| s.value.is_finite() && s.at <= now)
        .collect();
    let need_secs = (window.saturating_sub(1)) as f64 * period_secs;
    let have_secs = finite
        .first()
        .map(|first| secs_between(now, first.at))
        .unwrap_or(0.0);
    if finite.is_empty() || have_secs + 1e-9 < need_secs {
        return Err(WindowError::TooShort {
            metric: metric.to_owned(),
            have_secs,
            need_secs,
        });
    }
    let mut values = Vec::with_capacity(window);
    let mut next = 0; // index of the first sample after the current grid point
    for i in 0..window {
        let back_ms = ((window - 1 - i) as f64 * period_secs * 1000.0).round() as i64;
        let at = now - chrono::Duration::milliseconds(back_ms);
        while next < finite.len() && finite[next].at <= at {
            next += 1;
        }
        let sample = next.checked_sub(1).map(|ix| finite[ix]);
        match sample {
            Some(sample) if secs_between(at, sample.at) <= MAX_FILL_SECS => {
                values.push(sample.value as f32)
            }
            _ => {
                return Err(WindowError::Gap {
                    metric: metric.to_owned(),
                    at,
                    gap_secs: sample
                        .map(|s| secs_between(at, s.at))
                        .unwrap_or(f64::INFINITY),
                })
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(s, value)| Sample { at: at(s), value })
            .collect()
    }

    #[test]
    fn forward_fills_a_slower_scrape_onto_the_grid() {
        // 15 s scrapes feeding a 4-sample, 5 s window ending at t=30.
        let history = samples(&[(0, 1.0), (15, 2.0), (30, 3.0)]);
        let window = forecast_window("rps", &history, at(30), 4, 5.0).unwrap();
        assert_eq!(window, vec![2.0, 2.0, 2.0, 3.0]); // grid 15, 20, 25, 30
    }

    #[test]
    fn skips_non_finite_samples_and_future_ones() {
        let history = samples(&[(0, 1.0), (5, f64::NAN), (10, 4.0), (15, 9.0)]);
        let window = forecast_window("rps", &history, at(10), 3, 5.0).unwrap();
        assert_eq!(window, vec![1.0, 1.0, 4.0]);
    }

    #[test]
    fn a_gap_longer_than_the_fill_limit_skips_the_model() {
        let history = samples(&[(0, 1.0), (100, 2.0)]);
        let error = forecast_window("rps", &history, at(100), 21, 5.0).unwrap_err();
        match error {
            WindowError::Gap {
                metric, gap_secs, ..
            } => {
                assert_eq!(metric, "rps");
                assert_eq!(gap_secs, 65.0); // grid point t=65 would need the sample from t=0
            }
            other => panic!("expected a gap, got {other}"),
        }
    }

    #[test]
    fn a_short_history_says_how_much_is_missing() {
        let history = samples(&[(20, 1.0), (25, 1.0), (30, 1.0)]);
        let error = forecast_window("rps", &history, at(30), 60, 5.0).unwrap_err();
        assert_eq!(
            error,
            WindowError::TooShort {
                metric: "rps".into(),
                have_secs: 10.0,
                need_secs: 295.0
            }
        );
        assert!(error.to_string().contains("needs 295s"), "{error}");
    }
}
