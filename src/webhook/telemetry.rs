//! The operator's own metrics as the reconcile loop's [`Telemetry`] sink.

use std::time::Duration;

use super::Metrics;
use crate::decide::{Condition, Reason, ScheduleFloor};
use crate::policy::{Override, Target, TrafficState};
use crate::reconcile::{ForecasterStatus, MetricStatus, Telemetry};

impl Telemetry for Metrics {
    fn reconciled(
        &self,
        service: &str,
        duration: Duration,
        reason: Reason,
        current: u32,
        desired: u32,
    ) {
        self.observe_reconcile(service, duration, reason, current, desired);
    }

    fn models(
        &self,
        service: &str,
        forecast: Option<f64>,
        forecaster: Option<&ForecasterStatus>,
        state: Option<TrafficState>,
    ) {
        self.set_forecast(service, forecast);
        self.set_forecaster(service, forecaster);
        self.set_traffic_state(service, state);
    }

    fn state_changed(&self, service: &str, to: TrafficState) {
        self.count_state_change(service, to);
    }

    fn override_seen(&self, service: &str, active: Option<&Override>) {
        self.set_override(service, active);
    }

    fn metric_failed(&self, service: &str, metric: &str) {
        self.count_metric_error(service, metric);
    }

    fn write_conflict(&self, service: &str) {
        self.count_write_conflict(service);
    }

    fn docker_failed(&self, operation: &str) {
        self.count_docker_error(operation);
    }

    fn metric_read(&self, source: &'static str, took: Duration) {
        self.observe_metric_read(source, took);
    }

    fn metric_values(&self, service: &str, metrics: &[MetricStatus]) {
        self.set_metrics(
            service,
            metrics.iter().map(|metric| {
                (
                    metric.name.as_str(),
                    metric.compared.or(metric.value),
                    metric.target.map(Target::amount),
                )
            }),
        );
    }

    fn swarm_synced(&self, at: chrono::DateTime<chrono::Utc>) {
        self.count_swarm_sync(at);
    }

    fn bounds(&self, service: &str, min: u32, max: u32) {
        self.set_bounds(service, min, max);
    }

    fn conditions(&self, service: &str, conditions: &[Condition]) {
        self.set_conditions(service, conditions);
    }

    fn tasks_pending(&self, service: &str, pending: u32) {
        self.set_tasks_pending(service, pending);
    }

    fn schedule(&self, service: &str, active: Option<&ScheduleFloor>) {
        self.set_schedule(service, active);
    }

    fn forgotten(&self, service: &str) {
        self.forget_service(service);
    }
}
