//! What the policy observes of the load column, and the classifier of its other traffic columns:
//! the column as it is (a trace `record` wrote, whose rows are the policy's query results), or
//! its mean over a trailing window (`--metric-window`: an arrival trace, whose queries are
//! `rate(x[w])` of it).
//!
//! Through a window, the value at time `t` is the time-weighted mean of the demand (the scaled
//! column as its step function, [`Demand`]) over `[t - w, t)`: exactly what `rate(x[w])` of a
//! counter of those events reads when the column is a rate per second. It counts only the time
//! the demand is known (a gap beyond the hold rule is left out of the mean), so the first
//! window after the trace start averages the rows there are; with no known time in the window
//! there is no value, as `rate` returns nothing without samples.

use chrono::{DateTime, Duration, Utc};

use super::demand::{Demand, Point};
use super::error::ReplayError;

/// Refuses a `--metric-window` shorter than the trace's row spacing `step`: it would average
/// less than one row, a single count again.
pub fn check_window(window: Duration, step: Duration) -> Result<(), ReplayError> {
    if window < step {
        return Err(ReplayError::Options(format!(
            "--metric-window {} is shorter than the trace's row spacing {}: the window must hold \
             at least one row",
            show(window),
            show(step)
        )));
    }
    Ok(())
}

/// A duration as the flags take it (`1m`, `500ms`).
pub fn show(duration: Duration) -> String {
    duration.to_std().map_or_else(
        |_| duration.to_string(),
        |d| humantime::format_duration(d).to_string(),
    )
}

/// The load metric as the policy reads it, for `decide` at each tick and for the models.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The samples the forecaster and classifier read for the load metric, oldest first: one
    /// at each row time where a value is known.
    pub points: Vec<Point>,
    /// The value `decide` observes at each tick; `None` when unknown.
    pub at_ticks: Vec<Option<f64>>,
}

impl Observed {
    /// The column as the policy reads it, sampled at each of the trace's `rows` and ticks:
    /// through the trailing `window` when there is one ([`Observed::windowed`]), else as it is
    /// ([`Observed::raw`]). The one rule every windowed series of a replay is read by.
    pub fn read(
        demand: &Demand,
        window: Option<Duration>,
        rows: &[DateTime<Utc>],
        ticks: &[DateTime<Utc>],
    ) -> Observed {
        match window {
            Some(window) => Observed::windowed(demand, window, rows, ticks),
            None => Observed::raw(demand, ticks),
        }
    }

    /// The column as it is: the demand's samples, and the demand at each tick.
    pub fn raw(demand: &Demand, ticks: &[DateTime<Utc>]) -> Observed {
        Observed {
            points: demand.points.clone(),
            at_ticks: ticks.iter().map(|&at| demand.at(at)).collect(),
        }
    }

    /// The column through a trailing `window`, sampled at each of the trace's `rows` and ticks.
    pub fn windowed(
        demand: &Demand,
        window: Duration,
        rows: &[DateTime<Utc>],
        ticks: &[DateTime<Utc>],
    ) -> Observed {
        let integral = Integral::new(demand);
        let mean = |at: DateTime<Utc>| integral.mean(at - window, at);
        Observed {
            points: rows
                .iter()
                .filter_map(|&at| mean(at).map(|value| Point { at, value }))
                .collect(),
            at_ticks: ticks.iter().map(|&at| mean(at)).collect(),
        }
    }
}

/// The running integral of the known demand and of the known time, at each segment start, so
/// the mean over any window is two lookups. With integer counts at whole-second rows the sums
/// are exact, so a window of zeros averages to exactly zero.
struct Integral<'d> {
    demand: &'d Demand,
    /// Before segment `i`: (demand x seconds, known seconds).
    before: Vec<(f64, f64)>,
}

impl<'d> Integral<'d> {
    fn new(demand: &'d Demand) -> Integral<'d> {
        let mut before = Vec::with_capacity(demand.segments.len() + 1);
        let (mut area, mut known) = (0.0, 0.0);
        for segment in &demand.segments {
            before.push((area, known));
            if let Some(value) = segment.value {
                let secs = seconds(segment.end - segment.start);
                area += value * secs;
                known += secs;
            }
        }
        before.push((area, known));
        Integral { demand, before }
    }

    /// (demand x seconds, known seconds) over `[demand.start, at)`.
    fn upto(&self, at: DateTime<Utc>) -> (f64, f64) {
        let segments = &self.demand.segments;
        let index = segments.partition_point(|s| s.start <= at);
        let Some(i) = index.checked_sub(1) else {
            return (0.0, 0.0);
        };
        let segment = &segments[i];
        let (area, known) = self.before[i];
        match segment.value {
            Some(value) => {
                let secs = seconds(at.min(segment.end) - segment.start);
                (area + value * secs, known + secs)
            }
            None => (area, known),
        }
    }

    /// The mean of the known demand over `[from, to)`, `None` when none of it is known.
    fn mean(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        let (area_to, known_to) = self.upto(to);
        let (area_from, known_from) = self.upto(from);
        let known = known_to - known_from;
        (known > 0.0).then(|| (area_to - area_from) / known)
    }
}

fn seconds(duration: Duration) -> f64 {
    duration.num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    /// Rows every `step` seconds from 0, the values given (`None`: an empty cell).
    fn demand(step: i64, values: &[Option<f64>]) -> (Vec<DateTime<Utc>>, Demand) {
        let times: Vec<_> = (0..values.len() as i64).map(|i| t(i * step)).collect();
        let demand = Demand::new(&times, values, Duration::seconds(step));
        (times, demand)
    }

    fn windowed(step: i64, values: &[Option<f64>], window: i64, ticks: &[i64]) -> Observed {
        let (times, demand) = demand(step, values);
        let ticks: Vec<_> = ticks.iter().map(|&s| t(s)).collect();
        Observed::windowed(&demand, Duration::seconds(window), &times, &ticks)
    }

    #[test]
    fn the_mean_of_per_second_counts_over_the_minute_before() {
        // A burst of 60 every 4th second: a rate of 15/s that single seconds see as 60 or 0.
        let values: Vec<_> = (0..300)
            .map(|i| Some(if i % 4 == 0 { 60.0 } else { 0.0 }))
            .collect();
        let observed = windowed(1, &values, 60, &[60, 61, 120, 299]);
        assert_eq!(observed.at_ticks, vec![Some(15.0); 4]);
        // The row at the tick is not in its window yet (it counts the second after it).
        let observed = windowed(1, &values, 1, &[4, 5]);
        assert_eq!(observed.at_ticks, vec![Some(0.0), Some(60.0)]);
    }

    #[test]
    fn the_first_minute_averages_the_rows_there_are_and_the_start_has_none() {
        let values: Vec<_> = (1..=120).map(|i| Some(f64::from(i))).collect();
        let observed = windowed(1, &values, 60, &[0, 1, 10, 60, 90]);
        assert_eq!(
            observed.at_ticks,
            vec![
                None,
                Some(1.0),
                Some(5.5),  // rows 1..=10
                Some(30.5), // rows 1..=60
                Some(60.5)  // rows 31..=90
            ]
        );
        // The models' samples: one a row, from the second row on.
        assert_eq!(observed.points.len(), 119);
        assert_eq!(
            observed.points[0],
            Point {
                at: t(1),
                value: 1.0
            }
        );
        assert_eq!(observed.points[59].value, 30.5);
    }

    #[test]
    fn a_gap_counts_only_the_known_time_and_a_window_inside_it_has_no_value() {
        // 10/s for 60 rows, 200 empty rows, then 40/s: the last 10 sample holds 60 s more.
        let mut values = vec![Some(10.0); 60];
        values.extend(vec![None; 200]);
        values.extend(vec![Some(40.0); 60]);
        let observed = windowed(1, &values, 60, &[100, 150, 200, 260, 270, 290]);
        assert_eq!(
            observed.at_ticks,
            vec![
                Some(10.0), // [40, 100): rows and the held sample, all 10
                Some(10.0), // [90, 150): 29 s held, 31 s unknown
                None,       // [140, 200): unknown (the hold ended at 119)
                None,       // [200, 260)
                Some(40.0), // [210, 270): 10 s of the new rows
                Some(40.0),
            ]
        );
        // An empty cell still gets a sample while its window knows something.
        let (times, demand) = demand(1, &values);
        let observed = Observed::windowed(&demand, Duration::seconds(60), &times, &[]);
        assert!(observed.points.iter().any(|p| p.at == t(150)));
        assert!(!observed.points.iter().any(|p| p.at == t(200)));
    }

    #[test]
    fn rows_farther_apart_weigh_by_the_time_they_cover() {
        // Rows every 7 s (already a rate per second): 0, 7, 14, ... with values 1, 2, 3, ...
        let values: Vec<_> = (1..=20).map(|i| Some(f64::from(i))).collect();
        // [10, 70): row 1 (value 2) covers 10..14 (4 s), rows 2..=9 (values 3..=10) 7 s each
        // up to 70 (the last, row 9 from 63, covers 7 s): (2*4 + 7*(3+...+10)) / 60.
        let observed = windowed(7, &values, 60, &[70]);
        let expected = (2.0 * 4.0 + 7.0 * (3..=10).sum::<i32>() as f64) / 60.0;
        let got = observed.at_ticks[0].unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        // A window of one row spacing at a row time is the row before.
        let observed = windowed(7, &values, 7, &[70]);
        assert_eq!(observed.at_ticks, vec![Some(10.0)]);
    }

    #[test]
    fn raw_is_the_demand_itself() {
        let (_, demand) = demand(5, &[Some(1.0), Some(2.0), None, Some(3.0)]);
        let observed = Observed::raw(&demand, &[t(0), t(7), t(12)]);
        assert_eq!(observed.points, demand.points);
        assert_eq!(observed.at_ticks, vec![Some(1.0), Some(2.0), Some(2.0)]);
    }
}
