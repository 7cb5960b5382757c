//! The live/replay parity check on a hand-made run: one tick of each kind of difference, and
//! the differences it must refuse to explain.

use chrono::{DateTime, Duration, Utc};
use swarmpilot::decide::Reason;
use swarmpilot::policy::TrafficState;
use swarmpilot::replay::parity::{compare, memory, Cause, LiveDecision, Rules, Verdict};
use swarmpilot::replay::simulate::Replica;
use swarmpilot::replay::{Point, Tick};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000 + secs, 250_000_000).unwrap()
}

/// A live decision at `secs` that read `demand`, from `current` to `desired`.
fn live(secs: i64, current: u32, desired: u32, demand: f64) -> LiveDecision {
    LiveDecision {
        at: at(secs),
        current,
        desired,
        reason: Reason::DesiredWithinRange,
        demand: Some(demand),
        forecast: None,
        state: Some(TrafficState::Normal),
        tasks: Some(current),
    }
}

/// The replay's tick with the same inputs as `live` and `desired` replicas.
fn tick(live: &LiveDecision, desired: u32) -> Tick {
    Tick {
        at: live.at,
        demand: live.demand,
        current: live.current,
        replicas: (0..desired)
            .map(|id| Replica {
                id: u64::from(id),
                created: live.at,
                ready_at: live.at,
            })
            .collect(),
        forecast: live.forecast,
        forecast_ignored: false,
        state: live.state,
        reason: Reason::DesiredWithinRange,
    }
}

#[test]
fn every_difference_is_given_its_input_or_refused() {
    let rules = Rules {
        memory: Duration::seconds(35),
        skew: Duration::seconds(5),
    };
    // The rate as recorded every half second: 20 until t=12, then 31.
    let recorded: Vec<Point> = (0..400)
        .map(|half| Point {
            at: at(0) + Duration::milliseconds(500 * half),
            value: if half < 24 { 20.0 } else { 31.0 },
        })
        .collect();
    let mut lives = Vec::new();
    let mut ticks = Vec::new();
    let mut add = |live: LiveDecision, replay: Tick| {
        lives.push(live);
        ticks.push(replay);
    };
    // t=0: everything equal.
    let l = live(0, 2, 2, 20.0);
    add(l.clone(), tick(&l, 2));
    // t=5: the rates differ, the counts do not.
    let l = live(5, 2, 2, 20.0);
    let mut r = tick(&l, 2);
    r.demand = Some(21.0);
    add(l, r);
    // t=10: live read 31, a value Prometheus gave two seconds later; the record's step has 20.
    let l = live(10, 2, 4, 31.0);
    let mut r = tick(&l, 2);
    r.demand = Some(20.0);
    add(l, r);
    // t=15: the counts have parted.
    let l = live(15, 4, 4, 31.0);
    let mut r = tick(&l, 3);
    r.current = 2;
    add(l, r);
    // t=60: live read a value Prometheus never gave near that time.
    let l = live(60, 4, 5, 47.0);
    let mut r = tick(&l, 4);
    r.demand = Some(31.0);
    add(l, r);
    // t=100: the classifier called another state.
    let l = live(100, 4, 4, 31.0);
    let mut r = tick(&l, 5);
    r.state = Some(TrafficState::FlashCrowd);
    add(l, r);
    // t=140: another forecast; an ignored forecast counts as none.
    let mut l = live(140, 4, 6, 31.0);
    l.forecast = Some(55.0);
    let mut r = tick(&l, 4);
    r.forecast_ignored = true;
    add(l, r);
    // t=145: a new task not yet listed.
    let mut l = live(145, 6, 6, 31.0);
    l.tasks = Some(5);
    let r = tick(&l, 4);
    add(l, r);
    // t=150: every input equal, but the stabilization window still holds t=145's difference.
    let l = live(150, 6, 6, 31.0);
    add(l.clone(), tick(&l, 5));
    // t=200: every input equal and nothing earlier within the memory: a real disagreement.
    let l = live(200, 6, 6, 31.0);
    add(l.clone(), tick(&l, 5));
    // t=260: a rollout held live.
    let mut l = live(260, 6, 6, 31.0);
    l.reason = Reason::RolloutInProgress;
    add(l.clone(), tick(&l, 3));
    // t=300: a live decision the replay did not make.
    let l = live(300, 6, 6, 31.0);
    let missing = l.clone();
    add(l, tick(&live(301, 6, 6, 31.0), 6));

    let parity = compare(&lives, &ticks, &recorded, &rules);
    let verdicts: Vec<&Verdict> = parity.rows.iter().map(|r| &r.verdict).collect();
    let explained = |cause| Verdict::Explained(cause);
    assert_eq!(verdicts[0], &Verdict::Equal { inputs_equal: true });
    assert_eq!(
        verdicts[1],
        &Verdict::Equal {
            inputs_equal: false
        }
    );
    assert_eq!(verdicts[2], &explained(Cause::Demand));
    assert_eq!(verdicts[3], &explained(Cause::Replicas));
    assert!(
        matches!(verdicts[4], Verdict::Unexplained(why) if why.contains("47")),
        "{:?}",
        verdicts[4]
    );
    assert_eq!(verdicts[5], &explained(Cause::TrafficState));
    assert_eq!(verdicts[6], &explained(Cause::Forecast));
    assert_eq!(verdicts[7], &explained(Cause::Tasks));
    assert_eq!(verdicts[8], &explained(Cause::Earlier));
    assert!(
        matches!(verdicts[9], Verdict::Unexplained(_)),
        "{:?}",
        verdicts[9]
    );
    assert_eq!(verdicts[10], &explained(Cause::Rollout));
    assert!(matches!(verdicts[11], Verdict::Unexplained(_)));
    assert_eq!(parity.rows[11].live, missing);

    // Of the seven explained, the counts already apart and the earlier difference follow from
    // one before them; the other five start their own.
    let following: Vec<Cause> = parity
        .explained()
        .into_keys()
        .filter(|cause| cause.follows_an_earlier())
        .collect();
    assert_eq!(following, [Cause::Replicas, Cause::Earlier]);
    assert_eq!((parity.equal(), parity.equal_inputs()), (2, 1));
    assert_eq!(parity.unexplained().len(), 3);
    assert_eq!(parity.differences().count(), 10);
    let summary = parity.summary();
    assert!(
        summary.starts_with(
            "12 ticks compared: 2 equal (1 with every input equal), 7 explained differences ("
        ) && summary.ends_with("3 unexplained"),
        "{summary}"
    );
    // Each row says what each side read and why they differ.
    let row = parity.rows[2].to_string();
    assert!(
        row.contains("live 2->4")
            && row.contains("replay 2->2")
            && row.contains("rate read at another moment"),
        "{row}"
    );
    assert!(parity.rows[4].to_string().contains("UNEXPLAINED"));
}

#[test]
fn the_memory_is_the_longest_window_or_period_and_one_interval() {
    let policy = swarmpilot::policy::parse(
        "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {name: web}
spec:
  maxReplicas: 6
  metrics:
    - name: rps
      prometheus: {query: 'sum(rate(x[15s]))'}
      target: {averageValue: 10}
  behavior:
    scaleUp: {stabilizationWindow: 30s}
    scaleDown: {stabilizationWindow: 20s}
",
    )
    .unwrap();
    // 30 s of scale-up window beats HPA's 15 s rate-limit periods.
    assert_eq!(
        memory(&policy.spec.behavior, Duration::seconds(5)),
        Duration::seconds(35)
    );
}
