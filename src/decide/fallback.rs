//! `spec.fallback`: what the count should be when every metric failed, and when a metric
//! counts as failed for it: after `failureThreshold` consecutive failed reads (KEDA's rule).
//! Below the threshold a failed metric still never allows a scale-down (HPA's rule); it only
//! does not trigger the fallback yet.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::decision::MetricOutcome;
use crate::policy::{FailedReads, Fallback, HumanDuration};

/// Each failing metric's streak of failed reads, this call included, capped at `threshold` (a
/// longer streak changes nothing, and the streak is kept in the state label); metrics that read
/// are left out.
///
/// A read less than half an `interval` after the last counted one continues the same count:
/// the operator's own label write (a scale, an event) wakes the loop at once, and such an
/// extra read is not another polling interval of KEDA's count.
pub(crate) fn failed_reads(
    per_metric: &[MetricOutcome],
    before: &BTreeMap<String, FailedReads>,
    threshold: u32,
    interval: HumanDuration,
    now: DateTime<Utc>,
) -> BTreeMap<String, FailedReads> {
    let half = chrono::Duration::from_std(interval.as_std() / 2).unwrap_or(chrono::Duration::MAX);
    per_metric
        .iter()
        .filter(|m| m.replicas().is_none())
        .map(|m| {
            let streak = match before.get(&m.name) {
                Some(&kept) if kept.count >= threshold || now - kept.last < half => kept,
                Some(kept) => FailedReads {
                    count: kept.count.saturating_add(1).min(threshold),
                    last: now,
                },
                None => FailedReads {
                    count: 1.min(threshold),
                    last: now,
                },
            };
            (m.name.clone(), streak)
        })
        .collect()
}

/// The fewest failed reads in a row among the metrics, 0 when one reads.
pub(crate) fn fewest_failed(
    per_metric: &[MetricOutcome],
    failed_reads: &BTreeMap<String, FailedReads>,
) -> u32 {
    per_metric
        .iter()
        .map(|m| failed_reads.get(&m.name).map_or(0, |f| f.count))
        .min()
        .unwrap_or(0)
}

/// Whether the fallback applies: every metric failed `threshold` times in a row.
pub(crate) fn due(
    per_metric: &[MetricOutcome],
    failed_reads: &BTreeMap<String, FailedReads>,
    threshold: u32,
) -> bool {
    !per_metric.is_empty() && fewest_failed(per_metric, failed_reads) >= threshold
}

/// The recommendation the fallback makes, or `None` for `hold` (keep the count, record nothing,
/// as HPA does when it cannot compute a count).
pub(crate) fn recommendation(fallback: Fallback, current: u32) -> Option<u32> {
    match fallback {
        Fallback::Hold => None,
        Fallback::Replicas(replicas) => Some(replicas),
        Fallback::CurrentIfHigher(replicas) => Some(current.max(replicas)),
    }
}

/// How `describe` words the fallback.
pub(crate) fn describe(fallback: Fallback) -> String {
    match fallback {
        Fallback::Hold => "hold".to_owned(),
        Fallback::Replicas(replicas) => format!("{{replicas: {replicas}}}"),
        Fallback::CurrentIfHigher(replicas) => format!("{{currentIfHigher: {replicas}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fallback() {
        assert_eq!(recommendation(Fallback::Hold, 4), None);
        assert_eq!(recommendation(Fallback::Replicas(2), 4), Some(2));
        assert_eq!(recommendation(Fallback::CurrentIfHigher(2), 4), Some(4));
        assert_eq!(recommendation(Fallback::CurrentIfHigher(6), 4), Some(6));
    }
}
