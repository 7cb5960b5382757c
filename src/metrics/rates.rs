//! Turning two observations of a cumulative value into a per-second rate or an increase,
//! with Prometheus' reading of a counter reset: a value lower than before counts from zero.

use chrono::{DateTime, Utc};

/// The increase of a counter from `before` to `now`; a drop means the counter restarted from zero.
pub fn increase(before: f64, now: f64) -> f64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

/// Seconds from `before` to `now`, or `None` when no time passed (nothing new to compare).
pub fn elapsed_secs(before: DateTime<Utc>, now: DateTime<Utc>) -> Option<f64> {
    let micros = (now - before).num_microseconds()?;
    (micros > 0).then(|| micros as f64 / 1e6)
}

/// Per-bucket increases between two observations of one histogram series, or `None` when the
/// bucket layout changed. A reset (any bucket lower than before) counts the whole histogram anew.
pub fn bucket_increases(before: &[(f64, f64)], now: &[(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    if before.len() != now.len() || before.iter().zip(now).any(|(b, n)| b.0 != n.0) {
        return None;
    }
    let reset = before.iter().zip(now).any(|(b, n)| n.1 < b.1);
    Some(if reset {
        now.to_vec()
    } else {
        before
            .iter()
            .zip(now)
            .map(|(b, n)| (n.0, n.1 - b.1))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_reset_counts_from_zero() {
        assert_eq!(increase(100.0, 150.0), 50.0);
        assert_eq!(increase(100.0, 30.0), 30.0);
    }

    #[test]
    fn no_elapsed_time_gives_no_rate() {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(elapsed_secs(t, t), None);
        assert_eq!(
            elapsed_secs(t, t + chrono::Duration::milliseconds(1500)),
            Some(1.5)
        );
    }

    #[test]
    fn bucket_increases_handle_resets_and_layout_changes() {
        let before = [(1.0, 10.0), (f64::INFINITY, 12.0)];
        assert_eq!(
            bucket_increases(&before, &[(1.0, 15.0), (f64::INFINITY, 20.0)]),
            Some(vec![(1.0, 5.0), (f64::INFINITY, 8.0)])
        );
        assert_eq!(
            bucket_increases(&before, &[(1.0, 1.0), (f64::INFINITY, 2.0)]),
            Some(vec![(1.0, 1.0), (f64::INFINITY, 2.0)])
        );
        assert_eq!(bucket_increases(&before, &[(f64::INFINITY, 2.0)]), None);
    }
}
