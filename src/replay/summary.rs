//! The figures of one simulated run: under-provisioned time, unserved demand, replica-hours,
//! scale events, maximum replicas, integrated exactly over the step functions (no sampling).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::demand::Demand;
use super::simulate::Tick;

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Seconds with the demand above the serving capacity.
    pub under_provisioned_secs: f64,
    /// The demand above capacity over the whole demand (both integrated over time), 0..=1.
    pub over_capacity_share: f64,
    /// Replicas (serving or starting) integrated over time, in hours.
    pub replica_hours: f64,
    pub scale_ups: u32,
    pub scale_downs: u32,
    pub max_replicas: u32,
    /// Seconds the trace had no demand sample (not counted above).
    pub no_data_secs: f64,
    /// Scale-ups at ticks whose trace `label` was each state (synthetic traces).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub scale_ups_by_label: BTreeMap<String, u32>,
}

impl Summary {
    pub fn scale_events(&self) -> u32 {
        self.scale_ups + self.scale_downs
    }
}

/// Per-row ground-truth labels of the trace.
#[derive(Clone, Copy, Debug)]
pub struct Labels<'a> {
    pub times: &'a [DateTime<Utc>],
    pub labels: &'a [String],
}

impl<'a> Labels<'a> {
    /// The label of the latest row at or before `at`.
    pub fn at(self, at: DateTime<Utc>) -> Option<&'a str> {
        let index = self.times.partition_point(|&t| t <= at).checked_sub(1)?;
        self.labels.get(index).map(String::as_str)
    }
}

/// Integrates a run over `[demand.start, demand.end)`.
pub fn summarize(
    demand: &Demand,
    ticks: &[Tick],
    capacity_per_replica: f64,
    labels: Option<Labels<'_>>,
) -> Summary {
    let mut summary = Summary::default();
    let (mut demand_total, mut demand_over) = (0.0, 0.0);
    let mut replica_secs = 0.0;
    for (k, tick) in ticks.iter().enumerate() {
        let end = ticks.get(k + 1).map_or(demand.end, |next| next.at);
        let desired = tick.desired();
        summary.max_replicas = summary.max_replicas.max(desired);
        if desired > tick.current {
            summary.scale_ups += 1;
            if let Some(label) = labels.and_then(|l| l.at(tick.at)) {
                *summary
                    .scale_ups_by_label
                    .entry(label.to_owned())
                    .or_default() += 1;
            }
        } else if desired < tick.current {
            summary.scale_downs += 1;
        }
        replica_secs += f64::from(desired) * secs(end - tick.at);

        let mut points: Vec<DateTime<Utc>> = demand.boundaries(tick.at, end);
        points.extend(
            tick.replicas
                .iter()
                .map(|r| r.ready_at)
                .filter(|&t| t > tick.at && t < end),
        );
        points.push(tick.at);
        points.push(end);
        points.sort();
        points.dedup();
        for piece in points.windows(2) {
            let (from, to) = (piece[0], piece[1]);
            let length = secs(to - from);
            let Some(value) = demand.at(from) else {
                summary.no_data_secs += length;
                continue;
            };
            let capacity = f64::from(tick.ready_at(from)) * capacity_per_replica;
            demand_total += value * length;
            if value > capacity {
                summary.under_provisioned_secs += length;
                demand_over += (value - capacity) * length;
            }
        }
    }
    summary.replica_hours = replica_secs / 3600.0;
    summary.over_capacity_share = if demand_total > 0.0 {
        demand_over / demand_total
    } else {
        0.0
    };
    summary
}

fn secs(duration: Duration) -> f64 {
    duration.num_milliseconds() as f64 / 1000.0
}
