//! Tests of `decide` as a whole: HPA documentation examples and properties over sequences.

mod examples;
mod failure_threshold;
mod headlines;
mod idle;
mod pending;
mod properties;
mod rollout;
mod schedule_only;
mod schedules;
mod signals;

use chrono::{DateTime, TimeZone, Utc};

use super::{decide, Decision, History, MetricSample, Observation, TaskObservation, TaskPhase};
use crate::policy::{
    Behavior, Fallback, FallbackSpec, HumanDuration, Metadata, MetricSpec, Mode, Override,
    PolicySpec, PrometheusSource, ScalingPolicy, Target,
};

/// A policy on one request-rate metric (`rps`, 100 per replica) with the given behavior YAML.
pub(super) fn policy(min: u32, max: u32, behavior: &str) -> ScalingPolicy {
    let behavior = if behavior.trim().is_empty() {
        Behavior::default()
    } else {
        serde_yaml::from_str::<Behavior>(behavior).expect("behavior parses")
    };
    ScalingPolicy {
        api_version: crate::policy::API_VERSION.to_owned(),
        kind: crate::policy::KIND.to_owned(),
        metadata: Metadata { name: "web".into() },
        spec: PolicySpec {
            service: None,
            min_replicas: min,
            idle_replicas: None,
            cooldown_period: None,
            max_replicas: max,
            interval: HumanDuration::from_secs(15),
            mode: Mode::Enforce,
            metrics: vec![MetricSpec {
                name: "rps".into(),
                prometheus: Some(PrometheusSource {
                    query: "sum(rate(http_requests_total[1m]))".into(),
                    server: None,
                    treat_empty_as: None,
                }),
                scrape: None,
                docker: None,
                redis: None,
                rabbitmq: None,
                target: Target::AverageValue(100.0),
                activation: None,
            }],
            observe: vec![],
            forecast: None,
            anomaly: None,
            alerts: None,
            behavior,
            fallback: Fallback::Hold.into(),
            schedules: Vec::new(),
        },
    }
}

pub(super) fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

/// `n` running tasks that started long ago.
pub(super) fn tasks(n: u32) -> Vec<TaskObservation> {
    (0..n)
        .map(|i| TaskObservation {
            id: format!("task{i}"),
            phase: TaskPhase::Running,
            started_at: Some(t(-3600)),
            unplaced: None,
        })
        .collect()
}

/// An observation of `current` running tasks and a total request rate for the `rps` metric.
pub(super) fn total_rps(current: u32, total: f64) -> Observation {
    let mut observation = Observation::new(current);
    observation.tasks = tasks(current);
    observation
        .metrics
        .insert("rps".into(), MetricSample::value(total));
    observation
}

/// An observation of `current` running tasks whose `rps` read failed.
pub(super) fn failed_rps(current: u32) -> Observation {
    let mut observation = Observation::new(current);
    observation.tasks = tasks(current);
    observation
        .metrics
        .insert("rps".into(), MetricSample::failed("connection refused"));
    observation
}

/// A service driven tick by tick: each decision is applied and recorded, as the loop will do.
pub(super) struct Run {
    pub policy: ScalingPolicy,
    pub history: History,
    pub current: u32,
}

impl Run {
    pub fn new(policy: ScalingPolicy, current: u32) -> Self {
        Run {
            policy,
            history: History::default(),
            current,
        }
    }

    /// Decides at `now` with the service asking for `wanted` replicas' worth of requests.
    pub fn tick(&mut self, now: DateTime<Utc>, wanted: u32) -> Decision {
        self.tick_with(
            now,
            &total_rps(self.current, f64::from(wanted) * 100.0),
            None,
        )
    }

    pub fn tick_with(
        &mut self,
        now: DateTime<Utc>,
        observation: &Observation,
        override_: Option<&Override>,
    ) -> Decision {
        let decision = decide(&self.policy, observation, &self.history, override_, now);
        self.history =
            self.history
                .record(&self.policy.spec, &decision, decision.should_scale(), now);
        if decision.should_scale() {
            self.current = decision.desired;
        }
        decision
    }
}
