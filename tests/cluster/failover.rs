//! Two operators on the same service for five minutes of changing load, elected by the lease on
//! their own service's labels: exactly one writes, every write moves the count towards the
//! load of its step (no oscillation), and writes refused for a stale version stay rare (no
//! "update out of sequence" storm). Then the acting one crashes and the standby takes over
//! once the lease has expired; and an acting one stopped as SIGTERM stops it gives the lease
//! back, so a standby with a TTL far longer than the test's waits takes over at once. Both
//! takeover times are printed.
//!
//! Each operator runs in this process with its own status, metrics and lease loop, as tasks of
//! the operator's service would; the lease lives in a service of the cluster made for the test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use swarmpilot::reconcile::{Role, StatusStore};

use crate::cluster::Cluster;
use crate::common::{replicas_reach_watching, unique_name, TestService, TEST_IMAGE};
use crate::operator::{load_source, service_with_policy_on, wait_until, Operator};
use crate::replicas_reach;

/// Short, so each expiry costs seconds: renewals every 3 s, no write 6 s after the last
/// successful one (two renewals must fail in a row, even on a busy machine), a takeover 9 s
/// after it at the earliest.
const TTL: Duration = Duration::from_secs(9);

/// The load of each step (10 a replica, so the count follows it between 1 and 6), each held for
/// at least [`STEP`]: five minutes of changes in both directions, large and small.
const LOADS: [u64; 15] = [40, 20, 50, 10, 30, 60, 25, 45, 15, 35, 55, 20, 40, 10, 30];
const STEP: Duration = Duration::from_secs(20);

/// Writes this far into a step may still act on the previous step's load (Prometheus scrapes
/// every second; a decision reads what it last scraped).
const STALE_READ: chrono::Duration = chrono::Duration::seconds(5);

/// One applied decision: who made it, when, and from what count to what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Write {
    at: DateTime<Utc>,
    operator: usize,
    current: u32,
    desired: u32,
}

/// The writes of every operator, collected while the test runs (the status keeps only the
/// last decisions).
#[derive(Default)]
struct Writes(BTreeSet<Write>);

impl Writes {
    fn collect(&mut self, statuses: &[&StatusStore], service: &TestService) {
        for (operator, status) in statuses.iter().enumerate() {
            if let Some(status) = status.get(&service.name) {
                self.0.extend(
                    status
                        .decisions
                        .iter()
                        .filter(|d| d.applied)
                        .map(|d| Write {
                            at: d.at,
                            operator,
                            current: d.current,
                            desired: d.desired,
                        }),
                );
            }
        }
    }

    fn count_by(&self, operator: usize) -> usize {
        self.0.iter().filter(|w| w.operator == operator).count()
    }
}

/// The count a load asks for.
fn target(load: u64) -> u32 {
    u32::try_from(load.div_ceil(10))
        .unwrap_or(u32::MAX)
        .clamp(1, 6)
}

/// Whether `write` moves the count towards `target` without passing it.
fn towards(write: &Write, target: u32) -> bool {
    let (low, high) = if write.current < target {
        (write.current, target)
    } else {
        (target, write.current)
    };
    write.desired != write.current && (low..=high).contains(&write.desired)
}

/// How long after `since` `status` first says it acts (up to a minute).
async fn acts_after(status: &StatusStore, since: Instant) -> Duration {
    wait_until("the standby acting", || {
        status.leadership().role() == Role::Active
    })
    .await;
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_for_five_minutes_one_writes_and_the_standby_takes_over() {
    // Everything on the first manager: the test runs beside those that stop other nodes.
    let (cluster, _first) = Cluster::first_manager_only().await;
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
    let on_first = format!("node.hostname=={}", manager.name);
    let service = service_with_policy_on(
        &engine,
        "lease-load",
        &run,
        &["--constraint", &on_first],
        |_| policy.to_owned(),
    );
    let start = |holder: &str, ttl: Duration| {
        Operator::start_elected(
            Arc::clone(&swarm),
            &prometheus.url,
            &run,
            &lease.name,
            ttl,
            holder,
        )
    };
    let (a, b) = (start("operator-a", TTL), start("operator-b", TTL));
    let (status_a, status_b) = (Arc::clone(&a.status), Arc::clone(&b.status));
    let statuses = [&*status_a, &*status_b];
    wait_until("one operator holding the lease", || {
        statuses
            .iter()
            .any(|s| s.leadership().role() == Role::Active)
    })
    .await;

    // Five minutes of changing load; each step is held until the count follows it, and at
    // least STEP. Both roles are looked at every 100 ms.
    let began = Instant::now();
    let mut writes = Writes::default();
    let mut step_starts = Vec::new();
    let watch = |writes: &mut Writes| {
        writes.collect(&statuses, &service);
        let roles = (status_a.leadership().role(), status_b.leadership().role());
        assert_ne!(roles, (Role::Active, Role::Active), "never two acting");
    };
    for load in LOADS {
        exporter.text(format!("sp_load {load}\n"));
        let (at, held) = (Utc::now(), Instant::now());
        step_starts.push((at, target(load)));
        replicas_reach_watching(&*swarm, &service, u64::from(target(load)), || {
            watch(&mut writes)
        })
        .await;
        while held.elapsed() < STEP {
            watch(&mut writes);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    watch(&mut writes);
    let (written_a, written_b) = (writes.count_by(0), writes.count_by(1));
    let conflicts = a.write_conflicts(&service) + b.write_conflicts(&service);
    println!(
        "{:.0} s of changing load ({} steps): operator-a wrote {written_a} times, operator-b \
         {written_b}; {conflicts} writes refused for a stale version",
        began.elapsed().as_secs_f64(),
        LOADS.len()
    );
    assert!(
        (written_a == 0) != (written_b == 0),
        "exactly one operator writes: a {written_a}, b {written_b}"
    );
    // Nothing else writes to the service: a refused write means two writers.
    assert!(
        conflicts <= 2,
        "{conflicts} writes refused: a conflict storm"
    );
    // A write or two a step (a rate limit may split one), each towards its step's load.
    assert!(
        written_a + written_b <= 2 * LOADS.len(),
        "{} writes for {} load steps",
        written_a + written_b,
        LOADS.len()
    );
    for write in &writes.0 {
        let step = step_starts.iter().rposition(|(at, _)| *at <= write.at);
        let now = step.map(|i| step_starts[i].1);
        let before = step
            .filter(|i| *i > 0 && write.at - step_starts[*i].0 < STALE_READ)
            .map(|i| step_starts[i - 1].1);
        assert!(
            [now, before].iter().flatten().any(|t| towards(write, *t)),
            "a write away from the load (oscillation): {write:?}, step targets {now:?} (previous {before:?})"
        );
    }

    // The acting one crashes (no lease given back): the standby takes over once the lease has
    // expired, and scales.
    let (active, standby, standby_status) = if written_a > 0 {
        (a, b, status_b)
    } else {
        (b, a, status_a)
    };
    active.crash().await;
    let took_over = acts_after(&standby_status, Instant::now()).await;
    println!(
        "after a crash, the standby took over {:.1} s after the acting operator stopped (TTL {} s, interval 1 s)",
        took_over.as_secs_f64(),
        TTL.as_secs()
    );
    let crashed_at = Utc::now();
    exporter.text("sp_load 60\n");
    replicas_reach(&*swarm, &service, 6).await;
    // The count is written before the decision is recorded.
    wait_until("the new acting operator's write in its status", || {
        standby_status
            .get(&service.name)
            .is_some_and(|s| s.decisions.iter().any(|d| d.applied && d.at > crashed_at))
    })
    .await;

    // A standby whose TTL (10 minutes) no wait of this test could outlast takes over from one
    // stopped as SIGTERM stops it only because the lease was given back.
    let late = start("operator-c", Duration::from_secs(600));
    wait_until("the late standby deciding", || {
        late.status
            .get(&service.name)
            .is_some_and(|s| !s.decisions.is_empty())
    })
    .await;
    standby.stop().await;
    let took_over = acts_after(&late.status, Instant::now()).await;
    println!(
        "after a SIGTERM-like stop, the standby took over {:.1} s after the acting operator stopped (its TTL 600 s: the lease was given back)",
        took_over.as_secs_f64()
    );
    let handed_at = Utc::now();
    exporter.text("sp_load 20\n");
    replicas_reach(&*swarm, &service, 2).await;
    wait_until("the late operator's write in its status", || {
        late.status
            .get(&service.name)
            .is_some_and(|s| s.decisions.iter().any(|d| d.applied && d.at > handed_at))
    })
    .await;
    late.stop().await;
}
