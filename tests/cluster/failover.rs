//! Two operators on the same services, elected by the lease on their own service's labels:
//! under changing load exactly one writes, and when it stops the other takes over within the
//! lease's TTL plus one interval (the test prints how long it took).
//!
//! Each operator runs in this process with its own status and lease loop, as two tasks of the
//! operator's service would; the lease lives in a service of the cluster made for the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use swarmpilot::reconcile::{Role, StatusStore};

use crate::cluster::Cluster;
use crate::common::{replicas_reach_watching, unique_name, TestService, TEST_IMAGE};
use crate::operator::{load_source, service_with_policy_on, wait_until, Operator};
use crate::replicas_reach;

/// Short, so the test spends seconds, not minutes, on each expiry: renewals every 3 s, no write
/// 6 s after the last successful one (two renewals must fail in a row, even on a busy machine),
/// a takeover 9 s after it at the earliest.
const TTL: Duration = Duration::from_secs(9);

/// The writes of each operator, by the time of the decision: collected while the test runs,
/// since the status keeps only the last decisions.
#[derive(Default)]
struct Writes(Vec<BTreeSet<DateTime<Utc>>>);

impl Writes {
    fn collect(&mut self, statuses: &[&StatusStore], service: &TestService) {
        self.0.resize_with(statuses.len(), BTreeSet::new);
        for (status, writes) in statuses.iter().zip(&mut self.0) {
            if let Some(status) = status.get(&service.name) {
                writes.extend(status.decisions.iter().filter(|d| d.applied).map(|d| d.at));
            }
        }
    }

    fn counts(&self) -> Vec<usize> {
        self.0.iter().map(BTreeSet::len).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_elect_one_writer_and_the_standby_takes_over_when_it_stops() {
    let (cluster, _shared) = Cluster::shared().await;
    let manager = cluster.manager();
    let engine = manager.engine();
    let swarm = Arc::new(manager.swarm().await);
    let (exporter, prometheus) = load_source(10.0).await;
    let run = unique_name("run");
    let lease = TestService::create(
        &engine,
        "lease",
        &["--replicas", "0"],
        &[],
        &[TEST_IMAGE, "sleep", "1"],
    );
    // Scale-downs after a 3 s window: both directions are exercised within seconds.
    let policy = "{minReplicas: 1, maxReplicas: 6, interval: 1s, \
        metrics: [{name: load, prometheus: {query: 'sp_load{job=\"test\"}'}, target: {averageValue: 10}}], \
        behavior: {scaleDown: {stabilizationWindow: 3s}}}";
    let service = service_with_policy_on(&engine, "lease-load", &run, &[], |_| policy.to_owned());
    let start = |holder: &str| {
        Operator::start_elected(
            Arc::clone(&swarm),
            &prometheus.url,
            &run,
            &lease.name,
            TTL,
            holder,
        )
    };
    let (a, b) = (start("operator-a"), start("operator-b"));
    let (status_a, status_b) = (Arc::clone(&a.status), Arc::clone(&b.status));
    wait_until("one operator holding the lease", || {
        [&status_a, &status_b]
            .iter()
            .any(|s| s.leadership().role() == Role::Active)
    })
    .await;

    // Changing load; each step is held until the count follows it.
    let mut writes = Writes::default();
    let statuses = [&*status_a, &*status_b];
    let steps = [40u64, 20, 50, 10, 30];
    for load in steps {
        exporter.text(format!("sp_load {load}\n"));
        replicas_reach_watching(&*swarm, &service, load.div_ceil(10), || {
            writes.collect(&statuses, &service)
        })
        .await;
        let roles = (status_a.leadership().role(), status_b.leadership().role());
        assert_ne!(roles, (Role::Active, Role::Active), "never two acting");
    }
    // A last look once the count has settled on the last step.
    tokio::time::sleep(Duration::from_secs(2)).await;
    writes.collect(&statuses, &service);
    let [written_a, written_b] = writes.counts()[..] else {
        unreachable!("two operators")
    };
    println!("writes under changing load: operator-a {written_a}, operator-b {written_b}");
    assert!(
        (written_a == 0) != (written_b == 0),
        "exactly one operator writes: a {written_a}, b {written_b}"
    );
    // A write or two a step (a rate limit may split one): no back and forth.
    assert!(
        (steps.len()..=2 * steps.len()).contains(&(written_a + written_b)),
        "{} writes for {} load steps",
        written_a + written_b,
        steps.len()
    );

    // The active one stops (its lease is not given back): the standby takes over once the
    // lease has expired, and scales.
    let (active, standby, standby_status) = if written_a > 0 {
        (a, b, status_b)
    } else {
        (b, a, status_a)
    };
    active.stop().await;
    let stopped = Instant::now();
    let mut took_over = None;
    for _ in 0..600 {
        if standby_status.leadership().role() == Role::Active {
            took_over = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took_over = took_over.expect("the standby took the lease within 30 s");
    println!(
        "the standby took over {:.1} s after the active operator stopped (TTL {} s, interval 1 s)",
        took_over.as_secs_f64(),
        TTL.as_secs()
    );
    exporter.text("sp_load 60\n");
    replicas_reach(&*swarm, &service, 6).await;
    // The count is written before the decision is recorded.
    wait_until("the new active operator's write in its status", || {
        standby_status
            .get(&service.name)
            .is_some_and(|s| s.decisions.iter().any(|d| d.applied))
    })
    .await;
    standby.stop().await;
}
