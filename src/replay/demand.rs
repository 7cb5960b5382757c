//! The demand over time from one trace column: a step function with the documented gap rule.
//!
//! Each sample holds until the next one. An empty cell or missing rows extend the previous
//! sample for at most [`Demand::hold`] (60 s, or one trace step when rows are farther apart);
//! after that the demand is unknown until the next sample. While it is unknown the load metric
//! has no sample (`decide` sees a failed metric, as live when Prometheus returns nothing), and
//! that time counts as "no data" in the summary instead of as served or under-provisioned.

use chrono::{DateTime, Duration, Utc};

/// The longest a sample stands in for missing ones: the models' forward-fill limit.
pub const MAX_HOLD: Duration = Duration::seconds(60);

/// One trace sample of the load metric, already scaled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// A piece of the step function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `None`: no sample covers this time.
    pub value: Option<f64>,
}

/// The demand over `[start, end)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Demand {
    pub start: DateTime<Utc>,
    /// The last row's time plus one trace step: the last sample holds for one step.
    pub end: DateTime<Utc>,
    pub hold: Duration,
    /// The samples with a value, oldest first (what the models read).
    pub points: Vec<Point>,
    /// Sorted, contiguous, covering `[start, end)`.
    pub segments: Vec<Segment>,
}

impl Demand {
    /// Builds the step function from row times and values (`None` for empty cells).
    pub fn new(times: &[DateTime<Utc>], values: &[Option<f64>], step: Duration) -> Demand {
        let start = times[0];
        let end = times[times.len() - 1] + step;
        let hold = MAX_HOLD.max(step);
        let points: Vec<Point> = times
            .iter()
            .zip(values)
            .filter_map(|(&at, value)| value.map(|value| Point { at, value }))
            .collect();
        let mut segments = Vec::new();
        let mut cursor = start;
        for (i, point) in points.iter().enumerate() {
            if point.at > cursor {
                segments.push(Segment {
                    start: cursor,
                    end: point.at,
                    value: None,
                });
            }
            let next = points.get(i + 1).map_or(end, |p| p.at);
            let held = next.min(point.at + hold).min(end);
            segments.push(Segment {
                start: point.at,
                end: held,
                value: Some(point.value),
            });
            cursor = held;
        }
        if cursor < end {
            segments.push(Segment {
                start: cursor,
                end,
                value: None,
            });
        }
        Demand {
            start,
            end,
            hold,
            points,
            segments,
        }
    }

    /// The demand at `at`, `None` when unknown or outside the trace.
    pub fn at(&self, at: DateTime<Utc>) -> Option<f64> {
        let index = self.segments.partition_point(|s| s.start <= at);
        let segment = self.segments.get(index.checked_sub(1)?)?;
        (at < segment.end).then_some(segment.value).flatten()
    }

    /// The segment boundaries strictly inside `(from, to)`.
    pub fn boundaries(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let first = self.segments.partition_point(|s| s.start <= from);
        self.segments[first..]
            .iter()
            .map(|s| s.start)
            .take_while(|&start| start < to)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn values_hold_until_the_next_row_and_the_last_for_one_step() {
        let demand = Demand::new(
            &[t(0), t(5), t(10)],
            &[Some(1.0), Some(2.0), Some(3.0)],
            Duration::seconds(5),
        );
        assert_eq!(demand.end, t(15));
        assert_eq!(demand.at(t(4)), Some(1.0));
        assert_eq!(demand.at(t(5)), Some(2.0));
        assert_eq!(demand.at(t(14)), Some(3.0));
        assert_eq!(demand.at(t(15)), None);
    }

    #[test]
    fn a_gap_holds_the_last_sample_for_sixty_seconds_then_is_unknown() {
        let mut times: Vec<_> = (0..30).map(|i| t(i * 5)).collect();
        times.push(t(150));
        let mut values = vec![None; 31];
        values[0] = Some(7.0);
        values[30] = Some(8.0);
        let demand = Demand::new(&times, &values, Duration::seconds(5));
        assert_eq!(demand.at(t(59)), Some(7.0));
        assert_eq!(demand.at(t(60)), None);
        assert_eq!(demand.at(t(149)), None);
        assert_eq!(demand.at(t(150)), Some(8.0));
        assert_eq!(demand.boundaries(t(0), t(200)), vec![t(60), t(150)]);
    }

    #[test]
    fn unknown_before_the_first_sample() {
        let demand = Demand::new(&[t(0), t(5)], &[None, Some(2.0)], Duration::seconds(5));
        assert_eq!(demand.at(t(0)), None);
        assert_eq!(demand.at(t(5)), Some(2.0));
    }
}
