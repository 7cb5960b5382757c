//! What the loop reports about itself as it works, for whoever keeps the operator's own metrics
//! (the webhook's `/metrics`); the loop does not know who listens.

use std::time::Duration;

use super::{ForecasterStatus, MetricStatus};
use crate::decide::{Condition, Reason, ScheduleFloor};
use crate::policy::{Override, TrafficState};

/// Receives the loop's events. Every method defaults to doing nothing.
pub trait Telemetry: Send + Sync + 'static {
    /// One finished reconcile and the decision it made.
    fn reconciled(
        &self,
        _service: &str,
        _duration: Duration,
        _reason: Reason,
        _current: u32,
        _desired: u32,
    ) {
    }
    /// The forecast, the forecast ensemble's standing and the traffic state the models gave,
    /// if any.
    fn models(
        &self,
        _service: &str,
        _forecast: Option<f64>,
        _forecaster: Option<&ForecasterStatus>,
        _state: Option<TrafficState>,
    ) {
    }
    /// The classifier's state for the service changed to `to`.
    fn state_changed(&self, _service: &str, _to: TrafficState) {}
    /// The service's active override, or none.
    fn override_seen(&self, _service: &str, _active: Option<&Override>) {}
    /// One failed metric read.
    fn metric_failed(&self, _service: &str, _metric: &str) {}
    /// A write to the service was refused: it changed since it was read (another writer).
    fn write_conflict(&self, _service: &str) {}
    /// One failed Docker engine call, by operation.
    fn docker_failed(&self, _operation: &str) {}
    /// One read of a metric from `source` (`prometheus`, `scrape`, `docker`) took `took`.
    fn metric_read(&self, _source: &'static str, _took: Duration) {}
    /// Each metric's value compared with its target, and the target, after a reconcile.
    fn metric_values(&self, _service: &str, _metrics: &[MetricStatus]) {}
    /// The Swarm's services were listed successfully at `at`.
    fn swarm_synced(&self, _at: chrono::DateTime<chrono::Utc>) {}
    /// The policy's minReplicas and maxReplicas.
    fn bounds(&self, _service: &str, _min: u32, _max: u32) {}
    /// The service's conditions after a reconcile.
    fn conditions(&self, _service: &str, _conditions: &[Condition]) {}
    /// How many of the service's tasks Swarm cannot place on any node (0 when none).
    fn tasks_pending(&self, _service: &str, _pending: u32) {}
    /// The active schedule with the highest floor at the last decision, or none.
    fn schedule(&self, _service: &str, _active: Option<&ScheduleFloor>) {}
    /// The service is no longer watched.
    fn forgotten(&self, _service: &str) {}
}

/// Telemetry that goes nowhere, for tests and tools that run the loop without a server.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {}
