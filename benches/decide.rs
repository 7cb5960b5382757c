//! `decide` per call: a typical policy (request rate per replica from Prometheus, CPU utilization
//! from Docker with per-task samples), 8 tasks, and a history of 20 recommendations.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use swarmpilot::decide::{decide, History, MetricSample, Observation, TaskObservation, TaskPhase};
use swarmpilot::policy::{
    Behavior, DockerSource, Fallback, HumanDuration, Metadata, MetricSpec, Mode, PolicySpec,
    PrometheusSource, Resource, ScaleEvent, ScalingPolicy, Target,
};

fn policy() -> ScalingPolicy {
    ScalingPolicy {
        api_version: swarmpilot::policy::API_VERSION.into(),
        kind: swarmpilot::policy::KIND.into(),
        metadata: Metadata { name: "web".into() },
        spec: PolicySpec {
            service: None,
            min_replicas: 2,
            idle_replicas: None,
            cooldown_period: None,
            max_replicas: 20,
            interval: HumanDuration::from_secs(15),
            mode: Mode::Enforce,
            metrics: vec![
                MetricSpec {
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
                    target: Target::AverageValue(50.0),
                    activation: None,
                },
                MetricSpec {
                    name: "cpu".into(),
                    prometheus: None,
                    scrape: None,
                    docker: Some(DockerSource {
                        resource: Resource::Cpu,
                    }),
                    redis: None,
                    rabbitmq: None,
                    target: Target::Utilization(70.0),
                    activation: None,
                },
            ],
            observe: vec![],
            forecast: None,
            anomaly: None,
            alerts: None,
            behavior: Behavior::default(),
            fallback: Fallback::Hold.into(),
            schedules: Vec::new(),
        },
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn observation() -> Observation {
    let mut observation = Observation::new(8);
    observation.tasks = (0..8)
        .map(|i| TaskObservation {
            id: format!("task{i}"),
            phase: TaskPhase::Running,
            started_at: Some(now() - Duration::minutes(30)),
            unplaced: None,
        })
        .collect();
    observation
        .metrics
        .insert("rps".into(), MetricSample::value(310.0));
    let cpu: BTreeMap<String, f64> = (0..8)
        .map(|i| (format!("task{i}"), 40.0 + f64::from(i) * 2.0))
        .collect();
    observation
        .metrics
        .insert("cpu".into(), MetricSample::per_task(cpu));
    observation
}

fn history() -> History {
    History {
        recommendations: (0..20)
            .map(|i| (now() - Duration::seconds(300 - i * 15), 8 + (i % 3) as u32))
            .collect(),
        events: vec![ScaleEvent {
            at: now() - Duration::seconds(10),
            from: 6,
            to: 8,
        }],
        ..History::default()
    }
}

fn bench_decide(c: &mut Criterion) {
    let (policy, observation, history) = (policy(), observation(), history());
    c.bench_function("decide/2 metrics, 8 tasks, 20 recommendations", |b| {
        b.iter(|| {
            decide(
                black_box(&policy),
                black_box(&observation),
                black_box(&history),
                None,
                black_box(now()),
            )
        })
    });
    c.bench_function("decide+record", |b| {
        b.iter(|| {
            let decision = decide(&policy, &observation, &history, None, now());
            history.record(&policy.spec, &decision, decision.should_scale(), now())
        })
    });
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
