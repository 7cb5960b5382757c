//! The `ScalingPolicy` document: serde and JSON Schema types, with HPA v2's defaults.
//!
//! Field names and defaults follow Kubernetes `autoscaling/v2` HorizontalPodAutoscaler wherever
//! HPA has the same concept, so people who know HPA can read a policy without a manual.
//! These types only describe the document; [`super::validate`] checks what serde cannot.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;

/// The only `apiVersion` this build understands.
pub const API_VERSION: &str = "swarmpilot.io/v1alpha1";
/// The only `kind` this build understands.
pub const KIND: &str = "ScalingPolicy";

/// A declarative autoscaling policy for one Swarm service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// Always `swarmpilot.io/v1alpha1`.
    #[schemars(extend("const" = "swarmpilot.io/v1alpha1"))]
    pub api_version: String,
    /// Always `ScalingPolicy`.
    #[schemars(extend("const" = "ScalingPolicy"))]
    pub kind: String,
    /// The policy's identity.
    pub metadata: Metadata,
    /// What to scale and how.
    pub spec: PolicySpec,
}

/// Identifies the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// The policy's name, a valid Swarm service name; also the target service when
    /// `spec.service` is not set.
    pub name: String,
}

/// What to scale, between which bounds, on which signals, and how fast.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    /// The target Swarm service (e.g. `shop_web`). Defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Lower bound for the replica count while the service is active. Default 1, as in HPA.
    /// 0 lets the service scale to zero (KEDA's `minReplicaCount: 0`): it goes idle when every
    /// metric is at or below its `activation`, and is activated to at least 1 when one is above.
    #[serde(default = "default_min_replicas")]
    pub min_replicas: u32,
    /// The replica count of an idle service (KEDA's `idleReplicaCount`), below `minReplicas`.
    /// Setting it enables going idle with `minReplicas` above 0; with `minReplicas: 0` it is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_replicas: Option<u32>,
    /// How long every metric must stay at or below its `activation` before the service goes
    /// idle (KEDA's `cooldownPeriod`). Default 300s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<HumanDuration>,
    /// Upper bound for the replica count, at least minReplicas. Required, as in HPA.
    pub max_replicas: u32,
    /// How often the service is reconciled, 1s..=1h. Default 15s, HPA's sync period.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// `enforce` writes replica counts; `recommend` decides and reports but never writes.
    /// Default `enforce`.
    #[serde(default)]
    pub mode: Mode,
    /// The signals the replica count is computed from; the largest recommendation wins, as in HPA.
    /// May be left out when `schedules` are given: the count is then the active windows'
    /// highest `desiredReplicas`, else `minReplicas` (KEDA's `cron` scaler on its own).
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// Signals read and kept in history for the models, but never scaled on directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observe: Vec<ObservedMetric>,
    /// Predictive scale-up from a forecasting model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSpec>,
    /// Traffic-state classification and what to do in each state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalySpec>,
    /// Whether Alertmanager alerts may override this service, and how far. Without it, alerts
    /// naming the service are rejected: whoever writes alert rules gets only what the policy
    /// grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsSpec>,
    /// Scale-up and scale-down rules, with HPA's semantics and defaults.
    #[serde(default)]
    pub behavior: Behavior,
    /// What to do when every metric failed: `hold` (default), `{replicas: N}` or
    /// `{currentIfHigher: N}`, optionally with `failureThreshold` (KEDA's, default 3).
    #[serde(default)]
    pub fallback: FallbackSpec,
    /// Cron windows that set a floor (KEDA's `cron` scaler): while one is active the count is at
    /// least its `desiredReplicas`, combined with the metrics as HPA combines metrics (the
    /// highest wins), and an idle service is activated. A policy with schedules and no metrics
    /// scales on its windows alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleSpec>,
}

/// A cron window with a replica floor, KEDA's `cron` scaler with its field names. Active from
/// each `start` until the next `end`, both read in `timezone`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// A name unique among the schedules (`business-hours`); decisions name the schedule that
    /// set the count.
    pub name: String,
    /// The IANA time zone `start` and `end` are read in (`Europe/Berlin`, `Asia/Kolkata`, `UTC`).
    pub timezone: String,
    /// Cron pattern of the window's start: five fields (minute hour day-of-month month
    /// day-of-week), or six with seconds first.
    pub start: String,
    /// Cron pattern of the window's end, in the same form as `start`.
    pub end: String,
    /// The fewest replicas while the window is active, between 1 and `maxReplicas`.
    pub desired_replicas: u32,
}

fn default_min_replicas() -> u32 {
    1
}

/// KEDA's default `cooldownPeriod`.
pub const DEFAULT_COOLDOWN_PERIOD: HumanDuration = HumanDuration::from_secs(300);

impl PolicySpec {
    /// The replica count of an idle service, when the policy lets the service go idle:
    /// `minReplicas: 0` or an explicit `idleReplicas`.
    pub fn idle_replicas(&self) -> Option<u32> {
        match self.idle_replicas {
            Some(idle) => Some(idle),
            None if self.min_replicas == 0 => Some(0),
            None => None,
        }
    }

    /// The fewest replicas the policy ever sets: `idleReplicas` for a policy that can go
    /// idle, `minReplicas` otherwise. An override may pin the service this low.
    pub fn lowest_replicas(&self) -> u32 {
        self.idle_replicas().unwrap_or(self.min_replicas)
    }

    /// The fewest replicas of an active service: `max(1, minReplicas)`.
    pub fn active_min(&self) -> u32 {
        self.min_replicas.max(1)
    }

    /// `cooldownPeriod` with its default filled in.
    pub fn cooldown(&self) -> HumanDuration {
        self.cooldown_period.unwrap_or(DEFAULT_COOLDOWN_PERIOD)
    }
}

impl MetricSpec {
    /// `activation` with its default (0) filled in.
    pub fn activation(&self) -> f64 {
        self.activation.unwrap_or(0.0)
    }
}

fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(15)
}

/// Whether the operator writes its decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Decide and write the replica count.
    #[default]
    Enforce,
    /// Decide and report only: a dry run.
    Recommend,
}

/// One metric the replica count is computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricSpec {
    /// A name unique within the policy (`rps`, `cpu`); forecasts and models refer to it.
    pub name: String,
    /// Read with a PromQL instant query. Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
    /// Read by scraping the tasks' own exposition endpoints. Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeSource>,
    /// Read from Docker engine stats of the task containers. Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSource>,
    /// Read the length of a Redis list or a consumer group's pending entries. Exactly one source
    /// must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSource>,
    /// Read a RabbitMQ queue's messages (ready + unacknowledged). Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq: Option<RabbitmqSource>,
    /// The value the metric should have; exactly one of `utilization`, `averageValue`, `value`.
    pub target: Target,
    /// For a policy that can go idle: the metric's value activates the service when above this
    /// (KEDA's `activationTargetValue`); at or below it on every metric, the service goes idle
    /// after `cooldownPeriod`. Compared with the metric's value, not the per-replica average.
    /// Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<f64>,
}

/// A signal read for the models only: a source without a target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObservedMetric {
    /// A name unique within the policy, across `metrics` and `observe`.
    pub name: String,
    /// Read with a PromQL instant query. Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
    /// Read by scraping the tasks' own exposition endpoints. Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeSource>,
    /// Read from Docker engine stats of the task containers. Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSource>,
    /// Read the length of a Redis list or a consumer group's pending entries. Exactly one source
    /// must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSource>,
    /// Read a RabbitMQ queue's messages (ready + unacknowledged). Exactly one source must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq: Option<RabbitmqSource>,
}

/// Where a metric's value comes from, borrowed from a validated [`MetricSpec`] or [`ObservedMetric`].
/// Each variant has its reader in `crate::metrics`, matched in one place (`Observer::read`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source<'a> {
    Prometheus(&'a PrometheusSource),
    Scrape(&'a ScrapeSource),
    Docker(&'a DockerSource),
    Redis(&'a RedisSource),
    Rabbitmq(&'a RabbitmqSource),
}

impl Source<'_> {
    /// The source's name as the operator's metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Prometheus(_) => "prometheus",
            Source::Scrape(_) => "scrape",
            Source::Docker(_) => "docker",
            Source::Redis(_) => "redis",
            Source::Rabbitmq(_) => "rabbitmq",
        }
    }

    /// Whether the source has a value while the service has no task: only such a source can
    /// activate an idle service.
    pub fn reads_without_tasks(&self) -> bool {
        match self {
            // A queue's backlog is there with no worker running: what activates a worker.
            Source::Prometheus(_) | Source::Redis(_) | Source::Rabbitmq(_) => true,
            Source::Scrape(_) | Source::Docker(_) => false,
        }
    }

    /// Who the source asks, for a failure's headline: `Prometheus`, `scrape target`, `Docker`.
    pub fn noun(&self) -> &'static str {
        match self {
            Source::Prometheus(_) => "Prometheus",
            Source::Scrape(_) => "scrape target",
            Source::Docker(_) => "Docker",
            Source::Redis(_) => "Redis",
            Source::Rabbitmq(_) => "RabbitMQ",
        }
    }
}

/// The source in a few words, for people: `prometheus: sum(rate(...))`, `docker: cpu`.
impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Prometheus(p) => match &p.server {
                Some(server) => write!(f, "prometheus {server}: {}", p.query),
                None => write!(f, "prometheus: {}", p.query),
            },
            Source::Scrape(s) => {
                let quantile = s.quantile.map(|q| format!(" q{q}")).unwrap_or_default();
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                write!(
                    f,
                    "scrape :{}{}: {}{{{}}}{quantile} ({})",
                    s.port,
                    s.path,
                    s.metric,
                    labels.join(","),
                    s.aggregate.name()
                )
            }
            Source::Docker(d) => write!(f, "docker: {}", d.resource.name()),
            Source::Redis(r) => match (&r.list_name, &r.stream, &r.consumer_group) {
                (Some(list), _, _) => write!(f, "redis {}: list {list}", r.server),
                (None, Some(stream), Some(group)) => {
                    write!(f, "redis {}: stream {stream} group {group}", r.server)
                }
                _ => write!(f, "redis {}", r.server),
            },
            Source::Rabbitmq(q) => {
                write!(
                    f,
                    "rabbitmq {}: queue {} ({})",
                    q.server, q.queue_name, q.vhost_name
                )
            }
        }
    }
}

impl MetricSpec {
    /// The metric's source; `None` only for a policy that failed validation.
    pub fn source(&self) -> Option<Source<'_>> {
        only_one(self.sources())
    }

    /// Every source set (one in a valid policy).
    pub fn sources(&self) -> Vec<Source<'_>> {
        [
            self.prometheus.as_ref().map(Source::Prometheus),
            self.scrape.as_ref().map(Source::Scrape),
            self.docker.as_ref().map(Source::Docker),
            self.redis.as_ref().map(Source::Redis),
            self.rabbitmq.as_ref().map(Source::Rabbitmq),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl ObservedMetric {
    /// The signal's source; `None` only for a policy that failed validation.
    pub fn source(&self) -> Option<Source<'_>> {
        only_one(self.sources())
    }

    /// Every source set (one in a valid policy).
    pub fn sources(&self) -> Vec<Source<'_>> {
        [
            self.prometheus.as_ref().map(Source::Prometheus),
            self.scrape.as_ref().map(Source::Scrape),
            self.docker.as_ref().map(Source::Docker),
            self.redis.as_ref().map(Source::Redis),
            self.rabbitmq.as_ref().map(Source::Rabbitmq),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The one source set, `None` when none or several are (validation reports which).
fn only_one(sources: Vec<Source<'_>>) -> Option<Source<'_>> {
    match sources.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// A PromQL instant query. `{{service}}` and `{{stack}}` are replaced by the service's full
/// name and its stack namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusSource {
    /// The PromQL expression; it must return a single sample (use `sum(...)` or similar).
    /// Only the placeholders `{{service}}` and `{{stack}}` may appear.
    pub query: String,
    /// The name of a Prometheus server registered with the operator (`--servers`), or a base
    /// http(s) URL under the operator's `--allow-url` prefixes; defaults to `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Use this value when the query returns an empty vector; by default an empty result is
    /// "no data", never a silent zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treat_empty_as: Option<f64>,
}

/// A Redis queue: the length of a list (`LLEN`), or the entries of a stream delivered to a
/// consumer group and not yet acknowledged (`XPENDING`), KEDA's `redis` and `redis-streams`
/// scalers. With an `averageValue` target, the value is messages per replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisSource {
    /// The name of a `redis` server registered with the operator (`--servers`); the database
    /// and credentials are the server's.
    pub server: String,
    /// A list whose length is the backlog. Set this, or `stream` and `consumerGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_name: Option<String>,
    /// A stream whose entries pending for `consumerGroup` are the backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The consumer group of `stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<String>,
}

/// A RabbitMQ queue's backlog, messages ready plus unacknowledged, read through the management
/// HTTP API (KEDA's `rabbitmq` scaler in `QueueLength` mode). With an `averageValue` target, the
/// value is messages per replica.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RabbitmqSource {
    /// The name of a `rabbitmq` server (its management API) registered with the operator.
    pub server: String,
    /// The queue.
    pub queue_name: String,
    /// The queue's virtual host.
    #[serde(default = "default_vhost")]
    pub vhost_name: String,
}

fn default_vhost() -> String {
    "/".to_owned()
}

/// Scrape each running task's exposition endpoint and aggregate across tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScrapeSource {
    /// The port the tasks expose metrics on (1..=65535).
    pub port: u16,
    /// HTTP path of the exposition endpoint, starting with `/`. Default `/metrics`.
    #[serde(default = "default_scrape_path")]
    pub path: String,
    /// Metric family name, e.g. `http_requests_total` or `http_request_duration_seconds`.
    pub metric: String,
    /// Label matchers: only series whose labels equal these are read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How per-task values combine into the service's value. Default `sum`.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// The overlay network whose task addresses are scraped; default: the first one attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// For a histogram: the quantile to compute from its buckets, between 0 and 1 exclusive (e.g. 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// The metric fails when fewer than this share of the running tasks answered; in (0, 1]. Default 0.5.
    #[serde(default = "default_min_responding")]
    pub min_responding: f64,
}

fn default_scrape_path() -> String {
    "/metrics".to_owned()
}

fn default_min_responding() -> f64 {
    0.5
}

/// How per-task values combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Aggregate {
    /// The sum over tasks (for rates and counts).
    #[default]
    Sum,
    /// The mean over the tasks that answered.
    Avg,
    /// The largest task value (for latencies).
    Max,
}

impl Aggregate {
    /// The name as written in a policy.
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Sum => "sum",
            Aggregate::Avg => "avg",
            Aggregate::Max => "max",
        }
    }
}

/// Docker engine stats of the service's task containers; needs no Prometheus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DockerSource {
    /// Which engine statistic to read.
    pub resource: Resource,
}

/// The engine statistic read from each task container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// CPU usage as a percentage of the task's CPU limit (one core when unlimited).
    Cpu,
    /// Memory working set as a percentage of the task's memory limit.
    Memory,
    /// Received bytes per second.
    NetworkRx,
    /// Transmitted bytes per second.
    NetworkTx,
}

impl Resource {
    /// The name as written in a policy (`cpu`, `network_rx`).
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::NetworkRx => "network_rx",
            Resource::NetworkTx => "network_tx",
        }
    }
}

/// The target value of a metric, as in HPA's `MetricTarget`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Target {
    /// Average utilization across tasks, in percent of the task's limit (docker cpu/memory only).
    Utilization(f64),
    /// Target value per replica: the metric's total divided by the replica count.
    AverageValue(f64),
    /// Target value of the metric as a whole.
    Value(f64),
}

impl Target {
    /// The number the metric is held to (a percentage for `utilization`).
    pub fn amount(self) -> f64 {
        match self {
            Target::Utilization(v) | Target::AverageValue(v) | Target::Value(v) => v,
        }
    }

    /// The metric's value at which `replicas` tasks meet the target exactly: replicas × target
    /// for a per-replica target, the target itself for a whole value or an average
    /// utilization (the dashboard's "target capacity" line beside demand).
    pub fn capacity(self, replicas: u32) -> f64 {
        match self {
            Target::AverageValue(v) => f64::from(replicas) * v,
            Target::Utilization(v) | Target::Value(v) => v,
        }
    }
}

/// Predictive scale-up from a forecasting model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ForecastSpec {
    /// A shipped model name (`traffic-forecast`) or a path to an `.onnx` file.
    pub model: String,
    /// The name of the metric in `metrics` whose future value is forecast.
    pub metric: String,
    /// How far ahead to look; greater than 0s. Default 60s; must not exceed the model's own horizon.
    #[serde(default = "default_horizon")]
    pub horizon: HumanDuration,
    /// `scaleUp` (default): a forecast may raise the count but never lower it. `both`: it may also scale in.
    #[serde(default, rename = "use")]
    pub use_for: ForecastUse,
}

fn default_horizon() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// Which directions a forecast may drive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ForecastUse {
    /// A forecast may raise the replica count, never lower it.
    #[default]
    ScaleUp,
    /// A forecast may also lower the replica count.
    Both,
}

/// What alert-driven overrides may do to the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertsSpec {
    /// The most replicas an alert may pin the service at (at most `spec.maxReplicas`).
    pub max_replicas: u32,
    /// The longest an alert's override may last. Default 1h.
    #[serde(default = "default_alert_ttl")]
    pub max_ttl: HumanDuration,
}

fn default_alert_ttl() -> HumanDuration {
    HumanDuration::from_secs(3600)
}

/// Traffic-state classification and the action taken in each state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnomalySpec {
    /// A shipped model name (`traffic-states`) or a path to an `.onnx` file.
    pub model: String,
    /// Which policy metrics (from `metrics` or `observe`) feed the model's inputs, by role.
    #[serde(default)]
    pub inputs: AnomalyInputs,
    /// A state acts only after persisting this long, like a Prometheus alert's `for`. Default 30s.
    #[serde(default = "default_for", rename = "for")]
    pub for_duration: HumanDuration,
    /// The action in each state (`normal`, `flash_crowd`, `flood`, `degraded`, `unknown`); a
    /// state not listed scales as usual.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"enum": ["normal", "flash_crowd", "flood", "degraded", "unknown"]}))]
    pub on_state: BTreeMap<TrafficState, StateAction>,
    /// Where state changes are posted as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<Notify>,
}

fn default_for() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// The metric names that play each role for the classifier. A role left empty is fed a neutral value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnomalyInputs {
    /// Request rate (requests per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<String>,
    /// Error rate (failed requests per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<String>,
    /// Request latency (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// Bytes received per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_bytes: Option<String>,
    /// Bytes sent per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_bytes: Option<String>,
}

/// A traffic state the classifier can report.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TrafficState {
    /// Ordinary traffic.
    Normal,
    /// A sudden legitimate surge.
    FlashCrowd,
    /// Abusive or attack traffic: scaling would only feed it.
    Flood,
    /// The service is failing (errors or latency up) without more load.
    Degraded,
    /// Too far from every known cluster.
    Unknown,
}

impl TrafficState {
    pub const ALL: [TrafficState; 5] = [
        TrafficState::Normal,
        TrafficState::FlashCrowd,
        TrafficState::Flood,
        TrafficState::Degraded,
        TrafficState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrafficState::Normal => "normal",
            TrafficState::FlashCrowd => "flash_crowd",
            TrafficState::Flood => "flood",
            TrafficState::Degraded => "degraded",
            TrafficState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for TrafficState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TrafficState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        TrafficState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("unknown traffic state {text:?}; known: normal, flash_crowd, flood, degraded, unknown"))
    }
}

/// What a traffic state does to the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum StateAction {
    /// Scale as usual.
    Scale,
    /// Keep the current replica count.
    Hold,
    /// Scale up as usual, never down.
    NoScaleDown,
    /// Scale as usual but never above this many replicas (within minReplicas..=maxReplicas).
    Cap(u32),
}

/// A webhook that receives traffic-state changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Notify {
    /// The name of a webhook receiver registered with the operator (`--servers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// An http or https URL, accepted only under the operator's `--allow-url` prefixes. Set
    /// exactly one of `receiver` and `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Scale-up and scale-down rules, as HPA's `behavior`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Behavior {
    /// Defaults (HPA's): stabilizationWindow 0s; selectPolicy Max of 100% per 15s and 4 replicas
    /// per 15s; tolerance 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    /// Defaults (HPA's): stabilizationWindow 300s; 100% per 15s; selectPolicy Max; tolerance 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// The rules for one direction; each field left out takes HPA's default for that direction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScalingRules {
    /// Recommendations within this window are considered, so the count does not flap.
    /// 0s..=3600s. Default 0s for scaleUp, 300s for scaleDown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window: Option<HumanDuration>,
    /// Which policy wins when several allow different changes. Default `Max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    /// How much the count may change per period; non-empty unless selectPolicy is Disabled.
    /// Default: scaleUp 100% and 4 replicas per 15s, scaleDown 100% per 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<RatePolicy>>,
    /// No change while |ratio - 1| is within this tolerance; in [0, 1). Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

/// Which of several rate policies applies, as HPA's `selectPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// Never scale in this direction.
    Disabled,
}

/// A limit on change per period, as HPA's `HPAScalingPolicy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RatePolicy {
    /// `Replicas` (an absolute count) or `Percent` (of the count at the period's start).
    #[serde(rename = "type")]
    pub kind: RatePolicyKind,
    /// Replicas, or percent of the count at the period's start; greater than 0.
    pub value: u32,
    /// The length of the sliding window; 1s..=1800s.
    pub period: HumanDuration,
}

/// The unit of a [`RatePolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RatePolicyKind {
    /// An absolute number of replicas.
    Replicas,
    /// A percentage of the replica count at the start of the period.
    Percent,
}

/// The rules for one direction with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveRules {
    pub stabilization_window: HumanDuration,
    pub select_policy: SelectPolicy,
    pub policies: Vec<RatePolicy>,
    pub tolerance: f64,
}

/// HPA's default tolerance: no change while the usage ratio is within 10% of 1.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

impl Behavior {
    /// Scale-up rules after HPA's defaults: window 0s, Max of (100% per 15s, 4 replicas per 15s).
    pub fn scale_up(&self) -> EffectiveRules {
        resolve(
            self.scale_up.as_ref(),
            0,
            vec![
                RatePolicy {
                    kind: RatePolicyKind::Percent,
                    value: 100,
                    period: HumanDuration::from_secs(15),
                },
                RatePolicy {
                    kind: RatePolicyKind::Replicas,
                    value: 4,
                    period: HumanDuration::from_secs(15),
                },
            ],
        )
    }

    /// Scale-down rules after HPA's defaults: window 300s, 100% per 15s.
    pub fn scale_down(&self) -> EffectiveRules {
        resolve(
            self.scale_down.as_ref(),
            300,
            vec![RatePolicy {
                kind: RatePolicyKind::Percent,
                value: 100,
                period: HumanDuration::from_secs(15),
            }],
        )
    }
}

fn resolve(
    rules: Option<&ScalingRules>,
    window_secs: u64,
    policies: Vec<RatePolicy>,
) -> EffectiveRules {
    let rules = rules.cloned().unwrap_or_default();
    EffectiveRules {
        stabilization_window: rules
            .stabilization_window
            .unwrap_or(HumanDuration::from_secs(window_secs)),
        select_policy: rules.select_policy.unwrap_or(SelectPolicy::Max),
        policies: rules.policies.unwrap_or(policies),
        tolerance: rules.tolerance.unwrap_or(DEFAULT_TOLERANCE),
    }
}

/// What to do when every metric failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Fallback {
    /// Keep the current replica count.
    #[default]
    Hold,
    /// Scale to this many replicas if that is above the current count; never scale in
    /// (KEDA's `currentReplicasIfHigher`).
    CurrentIfHigher(u32),
    /// Scale to this many replicas (within min and max).
    Replicas(u32),
}

/// KEDA's default `fallback.failureThreshold`.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// `spec.fallback`: what to do when every metric failed, and after how many consecutive failed
/// reads a metric counts as failed (KEDA's `failureThreshold`). Written as before (`hold`,
/// `{replicas: N}`, `{currentIfHigher: N}`), or as a mapping that adds `failureThreshold`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FallbackRepr", into = "FallbackRepr")]
pub struct FallbackSpec {
    pub action: Fallback,
    /// Consecutive failed reads before a metric counts as failed for the fallback; `None` is
    /// the default, [`DEFAULT_FAILURE_THRESHOLD`].
    pub failure_threshold: Option<u32>,
}

impl FallbackSpec {
    /// `failureThreshold` with its default filled in.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold.unwrap_or(DEFAULT_FAILURE_THRESHOLD)
    }
}

impl From<Fallback> for FallbackSpec {
    fn from(action: Fallback) -> Self {
        FallbackSpec {
            action,
            failure_threshold: None,
        }
    }
}

/// How `spec.fallback` is written: the plain action, or a mapping with `failureThreshold`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum FallbackRepr {
    Action(Fallback),
    Detailed(FallbackDetailed),
}

/// `spec.fallback` with `failureThreshold`: at most one of `replicas` and `currentIfHigher`;
/// neither means `hold`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FallbackDetailed {
    /// Scale to this many replicas (within min and max).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replicas: Option<u32>,
    /// Scale to this many replicas if that is above the current count; never scale in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_if_higher: Option<u32>,
    /// Consecutive failed reads before a metric counts as failed; at least 1. Default 3.
    failure_threshold: u32,
}

impl TryFrom<FallbackRepr> for FallbackSpec {
    type Error = String;

    fn try_from(repr: FallbackRepr) -> Result<Self, String> {
        match repr {
            FallbackRepr::Action(action) => Ok(action.into()),
            FallbackRepr::Detailed(detailed) => {
                let action = match (detailed.replicas, detailed.current_if_higher) {
                    (None, None) => Fallback::Hold,
                    (Some(n), None) => Fallback::Replicas(n),
                    (None, Some(n)) => Fallback::CurrentIfHigher(n),
                    (Some(_), Some(_)) => {
                        return Err("set at most one of replicas and currentIfHigher".to_owned())
                    }
                };
                Ok(FallbackSpec {
                    action,
                    failure_threshold: Some(detailed.failure_threshold),
                })
            }
        }
    }
}

impl From<FallbackSpec> for FallbackRepr {
    fn from(spec: FallbackSpec) -> Self {
        let Some(failure_threshold) = spec.failure_threshold else {
            return FallbackRepr::Action(spec.action);
        };
        let (replicas, current_if_higher) = match spec.action {
            Fallback::Hold => (None, None),
            Fallback::Replicas(n) => (Some(n), None),
            Fallback::CurrentIfHigher(n) => (None, Some(n)),
        };
        FallbackRepr::Detailed(FallbackDetailed {
            replicas,
            current_if_higher,
            failure_threshold,
        })
    }
}

impl JsonSchema for FallbackSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FallbackSpec".into()
    }

    /// The plain action's alternatives and the detailed mapping side by side, in one `oneOf`:
    /// a nested alternative would blur which shape a wrong value was closest to.
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut branches = Fallback::json_schema(generator)
            .get("oneOf")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        branches.push(generator.subschema_for::<FallbackDetailed>().to_value());
        schemars::json_schema!({
            "description": "What to do when every metric failed: `hold`, `{replicas: N}` or `{currentIfHigher: N}`; or a mapping that adds `failureThreshold` (KEDA's, default 3).",
            "oneOf": branches,
        })
    }
}

impl ScalingPolicy {
    /// The Swarm service this policy targets.
    pub fn service(&self) -> &str {
        self.spec.service.as_deref().unwrap_or(&self.metadata.name)
    }

    /// The same policy with every default written out, as `describe` shows it.
    pub fn with_defaults(&self) -> ScalingPolicy {
        let mut effective = self.clone();
        effective.spec.service = Some(self.service().to_owned());
        let up = self.spec.behavior.scale_up();
        let down = self.spec.behavior.scale_down();
        if self.spec.idle_replicas().is_some() {
            effective.spec.idle_replicas = self.spec.idle_replicas();
            effective.spec.cooldown_period = Some(self.spec.cooldown());
        }
        effective.spec.behavior = Behavior {
            scale_up: Some(up.into()),
            scale_down: Some(down.into()),
        };
        effective
    }
}

impl From<EffectiveRules> for ScalingRules {
    fn from(rules: EffectiveRules) -> Self {
        ScalingRules {
            stabilization_window: Some(rules.stabilization_window),
            select_policy: Some(rules.select_policy),
            policies: Some(rules.policies),
            tolerance: Some(rules.tolerance),
        }
    }
}
