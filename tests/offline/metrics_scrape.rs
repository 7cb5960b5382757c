//! The scrape source against real exposition endpoints on 127.0.0.1: rates, resets, histogram
//! quantiles, label matchers, and tasks that refuse, stall, flood or talk nonsense.

use crate::exporter;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use exporter::{refused_address, Behavior, Exporter};
use swarmpilot::metrics::{
    MetricError, MetricSource, ScrapeConfig, ScrapeReader, ScrapeTarget, StaticTargets,
};
use swarmpilot::policy::{Aggregate, ScrapeSource};
use swarmpilot::swarm::ServiceInfo;

fn service() -> ServiceInfo {
    ServiceInfo {
        id: "id-sp-metrics-scrape".into(),
        name: "sp-metrics-scrape".into(),
        version: 1,
        labels: BTreeMap::new(),
        replicas: Some(2),
        ..Default::default()
    }
}

fn source(metric: &str) -> ScrapeSource {
    ScrapeSource {
        port: 0,
        path: "/metrics".into(),
        metric: metric.into(),
        labels: BTreeMap::new(),
        aggregate: Aggregate::Sum,
        network: None,
        quantile: None,
        min_responding: 0.5,
    }
}

fn reader(
    targets: &[(&str, std::net::SocketAddr)],
    config: ScrapeConfig,
) -> ScrapeReader<StaticTargets> {
    let targets = targets
        .iter()
        .map(|(task, address)| ScrapeTarget {
            task_id: (*task).into(),
            address: *address,
        })
        .collect();
    ScrapeReader::new(StaticTargets { targets }, config).unwrap()
}

/// What [`exporter::drive_counter`] counts per second.
const COUNTER_RATE: f64 = 100.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_read_as_per_second_rates_across_tasks() {
    let a = Arc::new(Exporter::start(Behavior::Text(String::new())).await);
    let b = Arc::new(Exporter::start(Behavior::Text(String::new())).await);
    let text = |count| format!("# TYPE sp_requests_total counter\nsp_requests_total {count}\n");
    let drivers = [
        exporter::drive_counter(a.clone(), text),
        exporter::drive_counter(b.clone(), text),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reader = reader(&[("a", a.addr), ("b", b.addr)], ScrapeConfig::default());
    let mut sum = source("sp_requests_total");
    let mut max = sum.clone();
    max.aggregate = Aggregate::Max;
    sum.aggregate = Aggregate::Sum;

    let first = reader.read(&service(), "rps", &sum).await.unwrap_err();
    assert!(matches!(first, MetricError::WarmingUp(_)), "{first:?}");
    let _ = reader.read(&service(), "rps-max", &max).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let total = reader.read(&service(), "rps", &sum).await.unwrap();
    // Within 5%: the integer increments at each end of a two-second window are worth 1%.
    assert!(
        (total.value - 2.0 * COUNTER_RATE).abs() < 0.05 * 2.0 * COUNTER_RATE,
        "{total:?}"
    );
    let mut tasks: Vec<&str> = total.tasks.iter().map(|t| t.task_id.as_str()).collect();
    tasks.sort();
    assert_eq!(tasks, ["a", "b"]);
    for task in &total.tasks {
        assert!(
            (task.value - COUNTER_RATE).abs() < 0.05 * COUNTER_RATE,
            "{task:?}"
        );
    }
    let highest = reader.read(&service(), "rps-max", &max).await.unwrap();
    assert!(
        (highest.value - COUNTER_RATE).abs() < 0.05 * COUNTER_RATE,
        "{highest:?}"
    );
    drivers.iter().for_each(|d| d.abort());
}

/// Exposition lines may carry their own timestamps (ms); with them rates are exact.
fn counter_at(series: &[(&str, f64)], millis: i64) -> String {
    let mut text = String::from("# TYPE sp_requests_total counter\n");
    for (labels, value) in series {
        text.push_str(&format!("sp_requests_total{{{labels}}} {value} {millis}\n"));
    }
    text
}

const T0: i64 = 1_700_000_000_000;

#[tokio::test]
async fn a_counter_reset_counts_from_zero_and_label_matchers_select_series() {
    let task = Exporter::start(Behavior::Text(counter_at(
        &[("code=\"200\"", 1000.0), ("code=\"500\"", 50.0)],
        T0,
    )))
    .await;
    let reader = reader(&[("t1", task.addr)], ScrapeConfig::default());
    let all = source("sp_requests_total");
    let mut errors = all.clone();
    errors.labels.insert("code".into(), "500".into());
    assert!(reader.read(&service(), "all", &all).await.is_err());
    assert!(reader.read(&service(), "errors", &errors).await.is_err());

    // Ten seconds later the process restarted: 200s went 1000 -> 30 (a reset), 500s 50 -> 70.
    task.text(counter_at(
        &[("code=\"200\"", 30.0), ("code=\"500\"", 70.0)],
        T0 + 10_000,
    ));
    let all = reader.read(&service(), "all", &all).await.unwrap();
    assert_eq!(all.value, (30.0 + 20.0) / 10.0);
    let errors = reader.read(&service(), "errors", &errors).await.unwrap();
    assert_eq!(errors.value, 2.0);
    assert_eq!(errors.tasks.len(), 1);
}

fn histogram_at(buckets: [f64; 4], millis: i64) -> String {
    let bounds = ["0.1", "0.5", "1", "+Inf"];
    let mut text = String::from("# TYPE sp_latency_seconds histogram\n");
    for (bound, count) in bounds.iter().zip(buckets) {
        text.push_str(&format!(
            "sp_latency_seconds_bucket{{le=\"{bound}\"}} {count} {millis}\n"
        ));
    }
    text.push_str(&format!(
        "sp_latency_seconds_count {} {millis}\n",
        buckets[3]
    ));
    text
}

#[tokio::test]
async fn histograms_give_the_quantile_of_the_increase_since_the_last_scrape() {
    // Before: 1000 old observations, all fast. They must not weigh on the new quantile.
    let a = Exporter::start(Behavior::Text(histogram_at([1000.0; 4], T0))).await;
    let b = Exporter::start(Behavior::Text(histogram_at([0.0; 4], T0))).await;
    let reader = reader(&[("a", a.addr), ("b", b.addr)], ScrapeConfig::default());
    let p95 = |aggregate| ScrapeSource {
        quantile: Some(0.95),
        aggregate,
        ..source("sp_latency_seconds")
    };
    for (name, aggregate) in [
        ("sum", Aggregate::Sum),
        ("avg", Aggregate::Avg),
        ("max", Aggregate::Max),
    ] {
        let error = reader
            .read(&service(), name, &p95(aggregate))
            .await
            .unwrap_err();
        assert!(matches!(error, MetricError::WarmingUp(_)), "{error:?}");
    }
    // Then task a saw 100 requests (50 <= 0.1s, 40 more <= 0.5s, 10 more <= 1s) and b saw 100 fast ones.
    a.text(histogram_at([1050.0, 1090.0, 1100.0, 1100.0], T0 + 15_000));
    b.text(histogram_at([100.0; 4], T0 + 15_000));
    let sum = reader
        .read(&service(), "sum", &p95(Aggregate::Sum))
        .await
        .unwrap();
    // Merged: 150 <= 0.1, 190 <= 0.5, 200 <= 1: rank 190 is the top of the (0.1, 0.5] bucket.
    assert!((sum.value - 0.5).abs() < 1e-9, "{sum:?}");
    let per_task: BTreeMap<&str, f64> = sum
        .tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.value))
        .collect();
    assert!((per_task["a"] - 0.75).abs() < 1e-9, "{per_task:?}");
    assert!((per_task["b"] - 0.095).abs() < 1e-9, "{per_task:?}");
    let avg = reader
        .read(&service(), "avg", &p95(Aggregate::Avg))
        .await
        .unwrap();
    assert!((avg.value - (0.75 + 0.095) / 2.0).abs() < 1e-9, "{avg:?}");
    let max = reader
        .read(&service(), "max", &p95(Aggregate::Max))
        .await
        .unwrap();
    assert!((max.value - 0.75).abs() < 1e-9, "{max:?}");

    // A histogram without a quantile is a clear error.
    let error = reader
        .read(&service(), "noq", &source("sp_latency_seconds"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("quantile"), "{error}");
}

#[tokio::test]
async fn min_responding_decides_whether_a_refusing_task_fails_the_metric() {
    let up = Exporter::start(Behavior::Text(
        "# TYPE sp_inflight gauge\nsp_inflight 4\n".into(),
    ))
    .await;
    let down = refused_address();
    let reader = reader(&[("up", up.addr), ("down", down)], ScrapeConfig::default());

    let half = source("sp_inflight");
    let reading = reader.read(&service(), "inflight", &half).await.unwrap();
    assert_eq!(reading.value, 4.0);
    assert_eq!(reading.skipped.len(), 1);
    assert_eq!(reading.skipped[0].task_id, "down");
    assert!(
        reading.skipped[0].reason.contains("cannot reach"),
        "{:?}",
        reading.skipped
    );

    let all = ScrapeSource {
        min_responding: 1.0,
        ..source("sp_inflight")
    };
    match reader
        .read(&service(), "inflight-all", &all)
        .await
        .unwrap_err()
    {
        MetricError::TooFewAnswered {
            answered: 1,
            running: 2,
            required: 2,
            failures,
        } => {
            assert_eq!(failures[0].task_id, "down");
        }
        other => panic!("expected TooFewAnswered, got {other:?}"),
    }

    let nobody = ScrapeReader::new(StaticTargets::default(), ScrapeConfig::default()).unwrap();
    let error = nobody.read(&service(), "x", &half).await.unwrap_err();
    assert!(
        matches!(error, MetricError::NoRunningTasks { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn garbage_floods_stalls_and_http_errors_fail_the_task_not_the_process() {
    let garbage = Exporter::start(Behavior::Text(
        "\u{0}\u{fffd}{{{ }}} 12 not exposition\nsp_inflight{ 3\n".into(),
    ))
    .await;
    let endless = Exporter::start(Behavior::Endless).await;
    let slow = Exporter::start(Behavior::Slow(
        Duration::from_secs(30),
        "sp_inflight 1\n".into(),
    ))
    .await;
    let failing = Exporter::start(Behavior::Status(500)).await;
    let fine = Exporter::start(Behavior::Text("sp_inflight 2\n".into())).await;
    let config = ScrapeConfig {
        timeout: Duration::from_millis(500),
        max_body_bytes: 256 * 1024,
        concurrency: 2,
    };
    let reader = reader(
        &[
            ("garbage", garbage.addr),
            ("endless", endless.addr),
            ("slow", slow.addr),
            ("failing", failing.addr),
            ("fine", fine.addr),
        ],
        config,
    );
    let lenient = ScrapeSource {
        min_responding: 0.2,
        ..source("sp_inflight")
    };
    let reading = reader.read(&service(), "inflight", &lenient).await.unwrap();
    assert_eq!(reading.value, 2.0);
    let reasons: BTreeMap<&str, &str> = reading
        .skipped
        .iter()
        .map(|s| (s.task_id.as_str(), s.reason.as_str()))
        .collect();
    assert!(
        reasons["garbage"].contains("no series of metric sp_inflight"),
        "{reasons:?}"
    );
    assert!(
        reasons["endless"].contains("more than 262144 bytes"),
        "{reasons:?}"
    );
    assert!(
        reasons["slow"].contains("did not answer within"),
        "{reasons:?}"
    );
    assert!(reasons["failing"].contains("500"), "{reasons:?}");

    let strict = source("sp_inflight");
    let error = reader
        .read(&service(), "inflight-strict", &strict)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            MetricError::TooFewAnswered {
                answered: 1,
                running: 5,
                required: 3,
                ..
            }
        ),
        "{error:?}"
    );
}
