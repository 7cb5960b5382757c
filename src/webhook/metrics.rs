//! The operator's own metrics (`GET /metrics`), in OpenMetrics text with prometheus-client: the
//! reconcile loop records through [`Metrics`], the server encodes the registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::decide::signals::Member;
use crate::decide::{Condition, ConditionStatus, ConditionType, Reason, ScheduleFloor};
use crate::policy::{Override, TrafficState};
use crate::reconcile::ForecasterStatus;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    service: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    service: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabels {
    service: String,
    member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverrideLabels {
    service: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleLabels {
    service: String,
    schedule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricErrorLabels {
    service: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    service: String,
    condition: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's path template (`/v1/services/{service}`), or `unmatched`: never the raw
    /// path, so callers cannot create series.
    route: String,
    method: String,
    /// `2xx`, `4xx`...
    status: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Reconciles take from a few milliseconds (labels only) to seconds (slow Prometheus).
fn reconcile_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

/// Every metric the operator exports, registered once, shared by the loop and the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconcile_duration: Family<ServiceLabel, Histogram, fn() -> Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    current_replicas: Family<ServiceLabel, Gauge>,
    desired_replicas: Family<ServiceLabel, Gauge>,
    forecast: Family<ServiceLabel, FloatGauge>,
    forecast_member: Family<MemberLabels, Gauge>,
    forecast_member_error: Family<MemberLabels, FloatGauge>,
    traffic_state: Family<StateLabels, Gauge>,
    state_changes: Family<StateLabels, Counter>,
    overrides: Family<OverrideLabels, Gauge>,
    metric_errors: Family<MetricErrorLabels, Counter>,
    docker_errors: Family<OperationLabel, Counter>,
    write_conflicts: Family<ServiceLabel, Counter>,
    conditions: Family<ConditionLabels, Gauge>,
    min_replicas: Family<ServiceLabel, Gauge>,
    max_replicas: Family<ServiceLabel, Gauge>,
    metric_value: Family<MetricErrorLabels, FloatGauge>,
    metric_target: Family<MetricErrorLabels, FloatGauge>,
    metric_read_duration: Family<SourceLabel, Histogram, fn() -> Histogram>,
    tasks_pending: Family<ServiceLabel, Gauge>,
    schedule_floor: Family<ScheduleLabels, Gauge>,
    /// The schedule each service has a `schedule_floor` series for, so it goes when the
    /// window closes.
    active_schedules: Mutex<BTreeMap<String, String>>,
    /// Whether each service's traffic state and overrides are shown. They tell a flooder when
    /// it has been detected, so the operator shows them only with `--metrics-detail`.
    detail: bool,
    swarm_syncs: Counter,
    last_swarm_sync: FloatGauge,
    standby: Gauge,
    api_requests: Family<RequestLabels, Counter>,
    /// The metrics each service has series for, so a dropped metric's series go too.
    metric_names: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("swarmpilot");
        let reconcile_duration =
            Family::<ServiceLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        registry.register_with_unit(
            "reconcile_duration",
            "Time taken by one reconcile of a service: observe, decide, actuate",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Reconcile decisions by condition reason (ScaleUpLimit, Stabilized, Fallback, ...)",
            decisions.clone(),
        );
        let current_replicas = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "current_replicas",
            "Replicas the service had at the last reconcile",
            current_replicas.clone(),
        );
        let desired_replicas = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "desired_replicas",
            "Replicas the last decision asked for",
            desired_replicas.clone(),
        );
        let forecast = Family::<ServiceLabel, FloatGauge>::default();
        registry.register(
            "forecast",
            "The forecast model's prediction of the service's load metric at the horizon",
            forecast.clone(),
        );
        let forecast_member = Family::<MemberLabels, Gauge>::default();
        registry.register(
            "forecast_member",
            "1 for the forecast ensemble's member in use (naive: the forecast is ignored), 0 for the others",
            forecast_member.clone(),
        );
        let forecast_member_error = Family::<MemberLabels, FloatGauge>::default();
        registry.register(
            "forecast_member_error",
            "Each forecast ensemble member's recent mean absolute error per step, in the load metric's unit",
            forecast_member_error.clone(),
        );
        let traffic_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "traffic_state",
            "1 for the service's current traffic state, 0 for the others",
            traffic_state.clone(),
        );
        let state_changes = Family::<StateLabels, Counter>::default();
        registry.register(
            "traffic_state_changes",
            "Changes of the service's traffic state, by the state entered",
            state_changes.clone(),
        );
        let overrides = Family::<OverrideLabels, Gauge>::default();
        registry.register(
            "override_active",
            "1 while an override of this kind (pin, pause, pause_scale_in, pause_scale_out) applies",
            overrides.clone(),
        );
        let metric_errors = Family::<MetricErrorLabels, Counter>::default();
        registry.register(
            "metric_source_errors",
            "Failed reads of a policy metric",
            metric_errors.clone(),
        );
        let docker_errors = Family::<OperationLabel, Counter>::default();
        registry.register(
            "docker_api_errors",
            "Failed Docker engine API calls, by operation",
            docker_errors.clone(),
        );
        let write_conflicts = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "write_conflicts",
            "Writes to a service refused because it changed since it was read (\"update out \
             of sequence\"): the operator read it again and decided again",
            write_conflicts.clone(),
        );
        let conditions = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "condition",
            "1 for each condition's current status (True, False, Unknown), 0 for the others, \
             as kube-state-metrics exports HPA conditions",
            conditions.clone(),
        );
        let min_replicas = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "min_replicas",
            "The policy's minReplicas",
            min_replicas.clone(),
        );
        let max_replicas = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "max_replicas",
            "The policy's maxReplicas",
            max_replicas.clone(),
        );
        let metric_value = Family::<MetricErrorLabels, FloatGauge>::default();
        registry.register(
            "metric_value",
            "Each policy metric's value as compared with its target (per task for averageValue \
             and utilization); absent while the metric cannot be read",
            metric_value.clone(),
        );
        let metric_target = Family::<MetricErrorLabels, FloatGauge>::default();
        registry.register(
            "metric_target",
            "Each policy metric's target (a percentage for utilization)",
            metric_target.clone(),
        );
        let metric_read_duration =
            Family::<SourceLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                reconcile_histogram,
            );
        registry.register_with_unit(
            "metric_read_duration",
            "Time taken by one read of a policy metric, by source (prometheus, scrape, docker)",
            Unit::Seconds,
            metric_read_duration.clone(),
        );
        let tasks_pending = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "tasks_pending",
            "Tasks of the service that Swarm cannot place on any node (placement constraints, \
             resources); the count is not raised while above 0",
            tasks_pending.clone(),
        );
        let schedule_floor = Family::<ScheduleLabels, Gauge>::default();
        registry.register(
            "schedule_floor_replicas",
            "The desiredReplicas of the service's active schedule with the highest floor, \
             labelled with its name; no series while no window is active",
            schedule_floor.clone(),
        );
        // Series that exist from the start, so an operator with no policy-labelled service
        // still shows it is alive and syncing.
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "1, labelled with the operator's version",
            build_info,
        );
        let swarm_syncs: Counter = Counter::default();
        registry.register(
            "swarm_syncs",
            "Successful listings of the Swarm's services by the loop (resyncs)",
            swarm_syncs.clone(),
        );
        let last_swarm_sync = FloatGauge::default();
        registry.register(
            "last_swarm_sync_timestamp_seconds",
            "When the loop last listed the Swarm's services successfully (Unix time; 0 before \
             the first)",
            last_swarm_sync.clone(),
        );
        let standby = Gauge::default();
        registry.register(
            "standby",
            "1 while another operator holds the lease (this one decides and reports, never \
             writes), 0 while acting or without a lease",
            standby.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests to the HTTP API, by route template, method and status class",
            api_requests.clone(),
        );
        Self {
            registry,
            reconcile_duration,
            decisions,
            current_replicas,
            desired_replicas,
            forecast,
            forecast_member,
            forecast_member_error,
            traffic_state,
            state_changes,
            overrides,
            metric_errors,
            docker_errors,
            write_conflicts,
            conditions,
            min_replicas,
            max_replicas,
            metric_value,
            metric_target,
            metric_read_duration,
            tasks_pending,
            schedule_floor,
            active_schedules: Mutex::default(),
            detail: true,
            swarm_syncs,
            last_swarm_sync,
            standby,
            api_requests,
            metric_names: Mutex::default(),
        }
    }

    /// One answered request to `route` (a path template, or `unmatched`).
    pub fn count_request(&self, route: &str, method: &str, status: u16) {
        self.api_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: format!("{}xx", status / 100),
            })
            .inc();
    }

    /// Records one finished reconcile of `service`.
    pub fn observe_reconcile(
        &self,
        service: &str,
        duration: Duration,
        reason: Reason,
        current: u32,
        desired: u32,
    ) {
        let label = service_label(service);
        self.reconcile_duration
            .get_or_create(&label)
            .observe(duration.as_secs_f64());
        self.decisions
            .get_or_create(&DecisionLabels {
                service: service.to_owned(),
                reason: serde_name(&reason),
            })
            .inc();
        self.current_replicas
            .get_or_create(&label)
            .set(i64::from(current));
        self.desired_replicas
            .get_or_create(&label)
            .set(i64::from(desired));
    }

    /// The latest forecast; `None` removes the series (no forecast configured or available).
    pub fn set_forecast(&self, service: &str, forecast: Option<f64>) {
        let label = service_label(service);
        match forecast {
            Some(value) => {
                self.forecast.get_or_create(&label).set(value);
            }
            None => {
                self.forecast.remove(&label);
            }
        }
    }

    /// The forecast ensemble's member in use and each member's recent error; `None` removes
    /// the series (no forecast configured or available).
    pub fn set_forecaster(&self, service: &str, forecaster: Option<&ForecasterStatus>) {
        for member in Member::ALL {
            let labels = MemberLabels {
                service: service.to_owned(),
                member: member.as_str().to_owned(),
            };
            match forecaster {
                Some(status) => {
                    self.forecast_member
                        .get_or_create(&labels)
                        .set(i64::from(status.in_use == member));
                }
                None => {
                    self.forecast_member.remove(&labels);
                }
            }
            match forecaster.and_then(|status| status.errors.get(&member)) {
                Some(error) => {
                    self.forecast_member_error
                        .get_or_create(&labels)
                        .set(*error);
                }
                None => {
                    self.forecast_member_error.remove(&labels);
                }
            }
        }
    }

    /// The same metrics, with or without each service's traffic state and overrides.
    pub fn with_detail(mut self, detail: bool) -> Self {
        self.detail = detail;
        self
    }

    /// The current traffic state; `None` removes the series (no classifier configured).
    pub fn set_traffic_state(&self, service: &str, state: Option<TrafficState>) {
        if !self.detail {
            return;
        }
        for candidate in TrafficState::ALL {
            let labels = StateLabels {
                service: service.to_owned(),
                state: candidate.as_str().to_owned(),
            };
            match state {
                Some(current) => {
                    self.traffic_state
                        .get_or_create(&labels)
                        .set(i64::from(candidate == current));
                }
                None => {
                    self.traffic_state.remove(&labels);
                }
            }
        }
    }

    /// The service's traffic state changed to `to`.
    pub fn count_state_change(&self, service: &str, to: TrafficState) {
        if !self.detail {
            return;
        }
        self.state_changes
            .get_or_create(&StateLabels {
                service: service.to_owned(),
                state: to.as_str().to_owned(),
            })
            .inc();
    }

    /// The service's override as read from its label; `None` or an expired one clears it.
    pub fn set_override(&self, service: &str, active: Option<&Override>) {
        if !self.detail {
            return;
        }
        let kind_of = |value: &Override| {
            if value.replicas.is_some() {
                "pin"
            } else if value.pause {
                "pause"
            } else if value.pause_scale_in {
                "pause_scale_in"
            } else {
                "pause_scale_out"
            }
        };
        let current = active.map(kind_of);
        for kind in ["pin", "pause", "pause_scale_in", "pause_scale_out"] {
            let labels = OverrideLabels {
                service: service.to_owned(),
                kind: kind.to_owned(),
            };
            if current == Some(kind) {
                self.overrides.get_or_create(&labels).set(1);
            } else {
                self.overrides.remove(&labels);
            }
        }
    }

    /// One failed read of `metric` for `service`.
    pub fn count_metric_error(&self, service: &str, metric: &str) {
        self.metric_errors
            .get_or_create(&MetricErrorLabels {
                service: service.to_owned(),
                metric: metric.to_owned(),
            })
            .inc();
    }

    /// One failed Docker engine call (`inspect_service`, `update_replicas`, `events`...).
    pub fn count_docker_error(&self, operation: &str) {
        self.docker_errors
            .get_or_create(&OperationLabel {
                operation: operation.to_owned(),
            })
            .inc();
    }

    /// One write to `service` refused for a stale version.
    pub fn count_write_conflict(&self, service: &str) {
        self.write_conflicts
            .get_or_create(&service_label(service))
            .inc();
    }

    /// Whether this operator stands by (another holds the lease).
    pub fn set_standby(&self, standby: bool) {
        self.standby.set(i64::from(standby));
    }

    /// The loop listed the Swarm's services at `at`.
    pub fn count_swarm_sync(&self, at: chrono::DateTime<chrono::Utc>) {
        self.swarm_syncs.inc();
        self.last_swarm_sync
            .set(at.timestamp_millis() as f64 / 1000.0);
    }

    /// One read of a policy metric from `source`.
    pub fn observe_metric_read(&self, source: &str, took: Duration) {
        self.metric_read_duration
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Each metric's value as compared with its target, and the target, as (name, value,
    /// target); a `None` removes that series, and the series of metrics no longer listed go.
    pub fn set_metrics<'a>(
        &self,
        service: &str,
        metrics: impl IntoIterator<Item = (&'a str, Option<f64>, Option<f64>)>,
    ) {
        let mut names = self
            .metric_names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = names.remove(service).unwrap_or_default();
        let mut now = BTreeSet::new();
        for (metric, value, target) in metrics {
            self.set_metric_pair(service, metric, value, target);
            now.insert(metric.to_owned());
        }
        for gone in before.difference(&now) {
            self.set_metric_pair(service, gone, None, None);
        }
        if !now.is_empty() {
            names.insert(service.to_owned(), now);
        }
    }

    fn set_metric_pair(
        &self,
        service: &str,
        metric: &str,
        value: Option<f64>,
        target: Option<f64>,
    ) {
        let labels = MetricErrorLabels {
            service: service.to_owned(),
            metric: metric.to_owned(),
        };
        for (family, number) in [(&self.metric_value, value), (&self.metric_target, target)] {
            match number {
                Some(number) => {
                    family.get_or_create(&labels).set(number);
                }
                None => {
                    family.remove(&labels);
                }
            }
        }
    }

    /// The policy's bounds, for alerts such as "held at maxReplicas".
    pub fn set_bounds(&self, service: &str, min: u32, max: u32) {
        let label = service_label(service);
        self.min_replicas.get_or_create(&label).set(i64::from(min));
        self.max_replicas.get_or_create(&label).set(i64::from(max));
    }

    /// How many of the service's tasks Swarm cannot place.
    pub fn set_tasks_pending(&self, service: &str, pending: u32) {
        self.tasks_pending
            .get_or_create(&service_label(service))
            .set(i64::from(pending));
    }

    /// The service's active schedule (the highest floor), or none: one series while a window
    /// is active, replaced when another one is, removed when none is.
    pub fn set_schedule(&self, service: &str, active: Option<&ScheduleFloor>) {
        let mut shown = self
            .active_schedules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let labels = |schedule: &str| ScheduleLabels {
            service: service.to_owned(),
            schedule: schedule.to_owned(),
        };
        if let Some(before) = shown.remove(service) {
            if active.is_none_or(|now| now.name != before) {
                self.schedule_floor.remove(&labels(&before));
            }
        }
        if let Some(floor) = active {
            self.schedule_floor
                .get_or_create(&labels(&floor.name))
                .set(i64::from(floor.replicas));
            shown.insert(service.to_owned(), floor.name.clone());
        }
    }

    /// The service's conditions: three series per condition it has, one at 1; the series of
    /// conditions it no longer has are removed.
    /// Without detail the `TrafficState` condition is left out, as the traffic state is.
    pub fn set_conditions(&self, service: &str, conditions: &[Condition]) {
        for type_ in ConditionType::ALL {
            let hidden = type_ == ConditionType::TrafficState && !self.detail;
            let current = conditions
                .iter()
                .find(|c| c.type_ == type_)
                .filter(|_| !hidden);
            for status in ConditionStatus::ALL {
                let labels = ConditionLabels {
                    service: service.to_owned(),
                    condition: type_.as_str().to_owned(),
                    status: status.as_str().to_owned(),
                };
                match current {
                    Some(condition) => {
                        self.conditions
                            .get_or_create(&labels)
                            .set(i64::from(condition.status == status));
                    }
                    None => {
                        self.conditions.remove(&labels);
                    }
                }
            }
        }
    }

    /// Drops the gauges of a service that is gone or no longer has a policy. Counters and the
    /// histogram stay, as Prometheus expects of cumulative series.
    pub fn forget_service(&self, service: &str) {
        let label = service_label(service);
        self.current_replicas.remove(&label);
        self.desired_replicas.remove(&label);
        self.set_forecast(service, None);
        self.set_forecaster(service, None);
        self.set_traffic_state(service, None);
        self.set_override(service, None);
        self.set_conditions(service, &[]);
        self.min_replicas.remove(&label);
        self.max_replicas.remove(&label);
        self.tasks_pending.remove(&label);
        self.set_schedule(service, None);
        self.set_metrics(service, []);
    }

    /// The registry in OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A decision's reason as the status API spells it (its serde name, `ScaleUpLimit`), so a
/// dashboard filters `/metrics` and the status API by the same word.
fn serde_name(reason: &Reason) -> String {
    // Every reason is a unit variant, which serializes as its name and cannot fail.
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn service_label(service: &str) -> ServiceLabel {
    ServiceLabel {
        service: service.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_what_the_loop_records() {
        let metrics = Metrics::new();
        metrics.observe_reconcile("web", Duration::from_millis(30), Reason::ScaleUpLimit, 2, 4);
        metrics.set_forecast("web", Some(120.5));
        metrics.set_forecaster(
            "web",
            Some(&ForecasterStatus {
                in_use: Member::Holt,
                scored: 24,
                errors: [(Member::Holt, 1.5), (Member::Naive, 3.0)]
                    .into_iter()
                    .collect(),
            }),
        );
        metrics.set_traffic_state("web", Some(TrafficState::FlashCrowd));
        metrics.count_metric_error("web", "rps");
        metrics.count_docker_error("inspect_service");
        metrics.count_write_conflict("web");
        metrics.set_metrics(
            "web",
            [("rps", Some(38.5), Some(50.0)), ("cpu", None, Some(70.0))],
        );
        metrics.observe_metric_read("prometheus", Duration::from_millis(20));
        metrics.set_tasks_pending("web", 2);
        let floor = |name: &str, replicas| ScheduleFloor {
            name: name.into(),
            replicas,
            until: None,
        };
        metrics.set_schedule("web", Some(&floor("lunch", 4)));
        metrics.set_schedule("web", Some(&floor("business-hours", 10)));
        metrics.set_schedule("api", Some(&floor("night", 2)));
        let text = metrics.encode().unwrap();
        assert!(!text.contains("schedule=\"lunch\""), "{text}");
        for line in [
            "swarmpilot_metric_value{service=\"web\",metric=\"rps\"} 38.5",
            "swarmpilot_metric_target{service=\"web\",metric=\"rps\"} 50.0",
            "swarmpilot_metric_target{service=\"web\",metric=\"cpu\"} 70.0",
            "swarmpilot_metric_read_duration_seconds_count{source=\"prometheus\"} 1",
            "swarmpilot_reconcile_duration_seconds_count{service=\"web\"} 1",
            "swarmpilot_decisions_total{service=\"web\",reason=\"ScaleUpLimit\"} 1",
            "swarmpilot_current_replicas{service=\"web\"} 2",
            "swarmpilot_desired_replicas{service=\"web\"} 4",
            "swarmpilot_forecast{service=\"web\"} 120.5",
            "swarmpilot_forecast_member{service=\"web\",member=\"holt\"} 1",
            "swarmpilot_forecast_member{service=\"web\",member=\"model\"} 0",
            "swarmpilot_forecast_member_error{service=\"web\",member=\"holt\"} 1.5",
            "swarmpilot_forecast_member_error{service=\"web\",member=\"naive\"} 3.0",
            "swarmpilot_traffic_state{service=\"web\",state=\"flash_crowd\"} 1",
            "swarmpilot_traffic_state{service=\"web\",state=\"normal\"} 0",
            "swarmpilot_metric_source_errors_total{service=\"web\",metric=\"rps\"} 1",
            "swarmpilot_docker_api_errors_total{operation=\"inspect_service\"} 1",
            "swarmpilot_write_conflicts_total{service=\"web\"} 1",
            "swarmpilot_tasks_pending{service=\"web\"} 2",
            "swarmpilot_schedule_floor_replicas{service=\"web\",schedule=\"business-hours\"} 10",
            "swarmpilot_schedule_floor_replicas{service=\"api\",schedule=\"night\"} 2",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        metrics.forget_service("web");
        let text = metrics.encode().unwrap();
        assert!(!text.contains("swarmpilot_current_replicas{"));
        assert!(!text.contains("swarmpilot_forecast_member{"));
        assert!(!text.contains("swarmpilot_forecast_member_error{"));
        assert!(!text.contains("swarmpilot_traffic_state{"));
        assert!(!text.contains("swarmpilot_metric_value{service=\"web\",metric=\"cpu\"}"));
        assert!(!text.contains("swarmpilot_metric_value{"), "{text}");
        assert!(!text.contains("swarmpilot_metric_target{"), "{text}");
        assert!(!text.contains("swarmpilot_condition{"), "{text}");
        assert!(!text.contains("swarmpilot_tasks_pending{"));
        assert!(!text.contains("service=\"web\",schedule="), "{text}");
        metrics.set_schedule("api", None);
        let text = metrics.encode().unwrap();
        assert!(
            !text.contains("swarmpilot_schedule_floor_replicas{"),
            "{text}"
        );
        assert!(text.contains("swarmpilot_decisions_total{"));
    }

    #[test]
    fn a_dropped_metric_loses_its_series_and_others_keep_theirs() {
        let metrics = Metrics::new();
        metrics.set_metrics(
            "web",
            [
                ("rps", Some(30.0), Some(50.0)),
                ("cpu", Some(40.0), Some(70.0)),
            ],
        );
        metrics.set_metrics("api", [("rps", Some(5.0), Some(10.0))]);
        metrics.set_metrics("web", [("rps", Some(31.0), Some(50.0))]);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("swarmpilot_metric_value{service=\"web\",metric=\"rps\"} 31.0"),
            "{text}"
        );
        assert!(!text.contains("metric=\"cpu\""), "{text}");
        metrics.forget_service("web");
        let text = metrics.encode().unwrap();
        assert!(!text.contains("service=\"web\",metric="), "{text}");
        assert!(
            text.contains("swarmpilot_metric_target{service=\"api\",metric=\"rps\"} 10.0"),
            "{text}"
        );
    }

    #[test]
    fn requests_are_counted_by_route_template_and_status_class() {
        let metrics = Metrics::new();
        metrics.count_request("/v1/services/{service}", "GET", 200);
        metrics.count_request("/v1/services/{service}", "GET", 404);
        metrics.count_request("/v1/services/{service}", "GET", 204);
        let text = metrics.encode().unwrap();
        for line in [
            "swarmpilot_api_requests_total{route=\"/v1/services/{service}\",method=\"GET\",status=\"2xx\"} 2",
            "swarmpilot_api_requests_total{route=\"/v1/services/{service}\",method=\"GET\",status=\"4xx\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn an_operator_with_no_service_still_exports_its_own_series() {
        let metrics = Metrics::new();
        let text = metrics.encode().unwrap();
        for line in [
            "swarmpilot_build_info{version=\"",
            "swarmpilot_swarm_syncs_total 0",
            "swarmpilot_last_swarm_sync_timestamp_seconds 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        metrics.count_swarm_sync("2026-01-01T00:00:00Z".parse().unwrap());
        let text = metrics.encode().unwrap();
        assert!(text.contains("swarmpilot_swarm_syncs_total 1"), "{text}");
        assert!(
            text.contains("swarmpilot_last_swarm_sync_timestamp_seconds 1767225600"),
            "{text}"
        );
    }
}
