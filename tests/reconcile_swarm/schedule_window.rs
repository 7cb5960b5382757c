//! A schedule's cron window on the real Swarm, in a named non-UTC time zone: the floor lifts
//! the service when the window opens and goes when it closes; and a policy on schedules alone,
//! with no metric, brings a service to its window's floor.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use swarmpilot::decide::Reason;

use swarmpilot::cli::describe::{describe, write_description};
use swarmpilot::cli::Output;
use swarmpilot::decide::{ConditionReason, ConditionType};
use swarmpilot::metrics::PrometheusClientConfig;
use swarmpilot::swarm::Swarm;

use crate::common::{swarm, unique_name};
use crate::operator::{load_source, service_with_policy, Operator};
use crate::{bare_policy, policy, wait_for_replicas};

/// The window opens this long after the policy is written, and lasts this long.
const LEAD_SECS: i64 = 12;
const WINDOW_SECS: i64 = 20;

/// `spec.schedules` with one window `name` in `zone` from `start` to `end` (their wall-clock
/// times there, to the second, every day), with a floor of `replicas`.
fn schedules(
    name: &str,
    zone: chrono_tz::Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    replicas: u32,
) -> String {
    format!(
        "  schedules:
    - name: {name}
      timezone: {zone}
      start: '{}'
      end: '{}'
      desiredReplicas: {replicas}
",
        pattern(zone, start),
        pattern(zone, end)
    )
}

/// A seconds-granularity cron pattern at `at`'s wall-clock time in `zone`, every day.
fn pattern(zone: chrono_tz::Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&zone).format("%S %M %H * * *").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_window_in_asia_kolkata_lifts_the_floor_and_lowers_it_after_end() {
    let swarm = Arc::new(swarm().await);
    // 10 against a target of 10 per replica: the metrics alone ask for 1 replica.
    let (_exporter, prometheus) = load_source(10.0).await;
    let zone: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    let start = Utc::now().trunc_subsecs(0) + Duration::seconds(LEAD_SECS);
    let end = start + Duration::seconds(WINDOW_SECS);
    let pattern = |at| pattern(zone, at);
    let schedule = format!(
        "  behavior: {{scaleDown: {{stabilizationWindow: 0s}}}}\n{}",
        schedules("kolkata-window", zone, start, end, 3)
    );
    let run = unique_name("run");
    let began = Instant::now();
    let service = service_with_policy("schedule-window", &run, |name| policy(name, &schedule));
    let operator = Operator::start(Arc::clone(&swarm), &prometheus.url, &run);
    operator.first_decision(&service).await;
    let before = operator.status.get(&service.name).unwrap().decisions[0].clone();
    assert!(
        before.at < start,
        "the first decision came after the window opened"
    );
    assert_eq!(before.desired, 1, "{before:?}");

    assert_eq!(wait_for_replicas(&*swarm, &service.id, 1, 3).await, [1, 3]);
    let lifted = began.elapsed();
    let status = operator.status.get(&service.name).unwrap();
    let up = status
        .decisions
        .iter()
        .find(|d| d.desired == 3)
        .unwrap()
        .clone();
    assert_eq!(up.reason, Reason::Scheduled, "{up:?}");
    assert!(
        up.message.contains("schedule kolkata-window"),
        "{}",
        up.message
    );
    assert!(
        up.at >= start,
        "lifted at {} before the window opened at {start}",
        up.at
    );

    assert_eq!(wait_for_replicas(&*swarm, &service.id, 3, 1).await, [3, 1]);
    let lowered = began.elapsed();
    let status = operator.status.get(&service.name).unwrap();
    let down = status
        .decisions
        .iter()
        .find(|d| d.desired == 1 && d.at > up.at)
        .unwrap()
        .clone();
    assert!(
        down.at >= end,
        "lowered at {} before the window closed at {end}",
        down.at
    );
    // Every decision inside the window kept the floor.
    let inside: Vec<_> = status
        .decisions
        .iter()
        .filter(|d| d.at >= up.at && d.at < end)
        .collect();
    assert!(inside.iter().all(|d| d.desired == 3), "{inside:?}");
    println!(
        "schedule window {} to {} (Asia/Kolkata {} to {}): lifted to 3 at {lifted:.1?} ({}), \
         lowered to 1 at {lowered:.1?} ({}); {} decisions inside the window",
        start,
        end,
        pattern(start),
        pattern(end),
        up.at,
        down.at,
        inside.len()
    );
    operator.stop().await;
}

/// KEDA's cron scaler as the only trigger: a policy with a schedule and no metric, whose window
/// (Europe/Paris, from a minute ago to ten minutes from now) is active, brings a one-replica
/// service to the floor; the status API's decision record, its conditions and `describe` name
/// the schedule. The operator reads no metric: it is given no Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_on_a_schedule_alone_brings_the_service_to_the_floor() {
    let swarm = Arc::new(swarm().await);
    let zone: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let now = Utc::now().trunc_subsecs(0);
    let pattern = |at| pattern(zone, at);
    let (start, end) = (now - Duration::seconds(60), now + Duration::seconds(600));
    let window = schedules("paris-now", zone, start, end, 3);
    let run = unique_name("run");
    let began = Instant::now();
    let service = service_with_policy("schedule-only", &run, |name| bare_policy(name, &window));
    let operator =
        Operator::start_with(Arc::clone(&swarm), PrometheusClientConfig::default(), &run);
    assert_eq!(wait_for_replicas(&*swarm, &service.id, 1, 3).await, [1, 3]);
    let lifted = began.elapsed();

    // What `GET /v1/services/{service}` serves.
    let status = operator.status.get(&service.name).unwrap();
    let up = status.decisions.iter().find(|d| d.desired == 3).unwrap();
    assert_eq!(up.reason, Reason::Scheduled, "{up:?}");
    assert!(
        up.message.starts_with("schedule paris-now (until ")
            && up
                .message
                .ends_with("sets a floor of 3 replicas; the policy has no metrics"),
        "{}",
        up.message
    );
    let floor = up.schedule.as_ref().expect("the record names the schedule");
    assert_eq!((floor.name.as_str(), floor.replicas), ("paris-now", 3));
    assert_eq!(
        floor.until.map(|u| u.with_timezone(&Utc)),
        Some(end),
        "the window closes at its end"
    );
    let api = serde_json::to_value(&status).unwrap();
    let record = api["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["desired"] == 3)
        .unwrap();
    assert_eq!(record["schedule"]["name"], "paris-now", "{record}");
    assert_eq!(record["schedule"]["replicas"], 3, "{record}");
    let active = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::ScalingActive)
        .unwrap();
    assert_eq!(active.reason, ConditionReason::SchedulesOnly, "{active:?}");
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.type_ != ConditionType::MetricsAvailable),
        "{:?}",
        status.conditions
    );

    // The operator's `/metrics`.
    let exported = operator.metrics.encode().unwrap();
    for series in [
        format!(
            "swarmpilot_schedule_floor_replicas{{service=\"{}\",schedule=\"paris-now\"}} 3",
            service.name
        ),
        format!(
            "swarmpilot_decisions_total{{service=\"{}\",reason=\"Scheduled\"}}",
            service.name
        ),
    ] {
        assert!(exported.contains(&series), "no {series} in\n{exported}");
    }

    // `describe --server` over the same status.
    let mut described = describe(&swarm.inspect_service(&service.id).await.unwrap());
    described.operator = Some(Ok(api));
    let mut out = Vec::new();
    write_description(&mut out, Output::Table, &described).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("  active schedule paris-now (until ")
            && text.contains("): floor 3 replicas")
            && text.contains("Scheduled")
            && text.contains("SchedulesOnly"),
        "{text}"
    );
    println!(
        "schedule-only policy (Europe/Paris {} to {}): 1 -> 3 replicas at {lifted:.1?} ({}), \
         {} decisions",
        pattern(start),
        pattern(end),
        up.at,
        status.decisions.len()
    );
    operator.stop().await;
}
