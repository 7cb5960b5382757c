//! A schedule's cron window on the real Swarm, in a named non-UTC time zone: the floor lifts
//! the service when the window opens and goes when it closes.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, SubsecRound, Utc};
use swarmpilot::decide::Reason;

use crate::common::{swarm, unique_name};
use crate::operator::{load_source, service_with_policy, Operator};
use crate::{policy, wait_for_replicas};

/// The window opens this long after the policy is written, and lasts this long.
const LEAD_SECS: i64 = 12;
const WINDOW_SECS: i64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_window_in_asia_kolkata_lifts_the_floor_and_lowers_it_after_end() {
    let swarm = Arc::new(swarm().await);
    // 10 against a target of 10 per replica: the metrics alone ask for 1 replica.
    let (_exporter, prometheus) = load_source(10.0).await;
    let zone: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    let start = Utc::now().trunc_subsecs(0) + Duration::seconds(LEAD_SECS);
    let end = start + Duration::seconds(WINDOW_SECS);
    // Seconds-granularity patterns at those instants' wall-clock times in India.
    let pattern = |at: chrono::DateTime<Utc>| at.with_timezone(&zone).format("%S %M %H * * *");
    let schedule = format!(
        "  behavior: {{scaleDown: {{stabilizationWindow: 0s}}}}
  schedules:
    - name: kolkata-window
      timezone: Asia/Kolkata
      start: '{}'
      end: '{}'
      desiredReplicas: 3
",
        pattern(start),
        pattern(end)
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
