//! `replay` on small synthetic traces whose figures can be worked out by hand.

use chrono::{DateTime, Duration, Utc};
use swarmpilot::models::ForecastPath;
use swarmpilot::policy::{parse, AnomalySpec, ForecastSpec, ScalingPolicy, TrafficState};
use swarmpilot::replay::{
    compare, hpa_baseline, NoModels, Options, PerTick, Point, ReplayError, RoleSeries, Signals,
    Trace,
};

const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0 + secs, 0).unwrap()
}

/// A `timestamp,value` trace at 5 s steps over `secs` seconds, the value from `demand(t)`.
fn trace(secs: i64, demand: impl Fn(i64) -> f64) -> Trace {
    let mut text = "timestamp,value\n".to_owned();
    for t in (0..secs).step_by(5) {
        text.push_str(&format!("{},{}\n", T0 + t, demand(t)));
    }
    Trace::read("test", text.as_bytes()).unwrap()
}

fn policy(extra: &str) -> ScalingPolicy {
    parse(&policy_text(extra)).unwrap()
}

fn policy_text(extra: &str) -> String {
    format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  \
         minReplicas: 1\n  maxReplicas: 10\n  metrics:\n  - name: rps\n    prometheus: {{query: 'sum(x)'}}\n    \
         target: {{averageValue: 50}}\n{extra}"
    )
}

fn options(capacity: f64, startup_secs: i64) -> Options {
    Options {
        metric: None,
        scale: 1.0,
        metric_window: None,
        capacity_per_replica: capacity,
        startup: Duration::seconds(startup_secs),
        initial_replicas: None,
        from: None,
        ticks: None,
    }
}

fn no_models() -> NoModels {
    NoModels {
        reason: "no models in this test".to_owned(),
    }
}

#[test]
fn a_step_is_under_provisioned_for_the_startup_time() {
    // 40/s for 60 s, then 200/s for 120 s; one replica serves 50/s and starts in 30 s.
    let trace = trace(180, |t| if t < 60 { 40.0 } else { 200.0 });
    let result = compare(&policy(""), &trace, &options(50.0, 30), &no_models()).unwrap();
    for run in [&result.policy, &result.baseline] {
        let s = &run.summary;
        // At 60 s the HPA asks for ceil(200/50) = 4 (within 100%/4-pods per 15 s), serving at 90 s.
        assert_eq!(s.under_provisioned_secs, 30.0, "{}", run.name);
        let over = (200.0 - 50.0) * 30.0;
        let total = 40.0 * 60.0 + 200.0 * 120.0;
        assert!((s.over_capacity_share - over / total).abs() < 1e-12);
        assert!((s.replica_hours - (60.0 + 4.0 * 120.0) / 3600.0).abs() < 1e-12);
        assert_eq!((s.scale_ups, s.scale_downs, s.max_replicas), (1, 0, 4));
        assert_eq!(s.no_data_secs, 0.0);
    }
}

/// 100/s, a flash crowd of 400/s from 300 s to 360 s, then 100/s to 1800 s; 100/s per replica.
fn flash_crowd() -> Trace {
    trace(1800, |t| {
        if (300..360).contains(&t) {
            400.0
        } else {
            100.0
        }
    })
}

fn per_replica_100(extra: &str) -> ScalingPolicy {
    let text = format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: slow}}\nspec:\n  \
         minReplicas: 1\n  maxReplicas: 10\n  metrics:\n  - name: rps\n    prometheus: {{query: 'sum(x)'}}\n    \
         target: {{averageValue: 100}}\n{extra}"
    );
    parse(&text).unwrap()
}

#[test]
fn the_baseline_scales_down_after_five_minutes_and_a_slower_policy_later() {
    let slow = per_replica_100("  behavior: {scaleDown: {stabilizationWindow: 600s}}\n");
    let result = compare(&slow, &flash_crowd(), &options(100.0, 30), &no_models()).unwrap();
    let (p, b) = (&result.policy.summary, &result.baseline.summary);
    // Both go to 4 replicas at 300 s (serving at 330 s): 30 s with 400/s on 100/s of capacity.
    for s in [p, b] {
        assert_eq!(s.under_provisioned_secs, 30.0);
        let share = 300.0 * 30.0 / (100.0 * 1740.0 + 400.0 * 60.0);
        assert!((s.over_capacity_share - share).abs() < 1e-12);
        assert_eq!((s.scale_ups, s.scale_downs, s.max_replicas), (1, 1, 4));
    }
    // The last recommendation of 4 is at 345 s: it leaves HPA's 300 s window at 645 s and the
    // policy's 600 s window at 945 s.
    assert!((b.replica_hours - (1800.0 + 3.0 * 345.0) / 3600.0).abs() < 1e-12);
    assert!((p.replica_hours - (1800.0 + 3.0 * 645.0) / 3600.0).abs() < 1e-12);
    let down = |run: &swarmpilot::replay::Run| {
        run.ticks
            .iter()
            .find(|t| t.at > at(300) && t.desired() < t.current)
            .map(|t| t.at)
    };
    assert_eq!(down(&result.baseline), Some(at(645)));
    assert_eq!(down(&result.policy), Some(at(945)));
}

#[test]
fn the_baseline_is_the_policy_with_hpa_defaults_and_no_models() {
    let mut policy = per_replica_100("  behavior: {scaleDown: {stabilizationWindow: 600s}}\n");
    policy.spec.forecast = Some(ForecastSpec {
        model: "traffic-forecast".into(),
        metric: "rps".into(),
        horizon: swarmpilot::policy::HumanDuration::from_secs(60),
        use_for: Default::default(),
    });
    let baseline = hpa_baseline(&policy);
    assert_eq!(baseline.spec.behavior, Default::default());
    assert!(baseline.spec.forecast.is_none() && baseline.spec.anomaly.is_none());
    assert_eq!(baseline.spec.metrics, policy.spec.metrics);
}

/// Test-only signals: forecasts from a function of the tick time (an oracle or a constant),
/// and no traffic states. Never used outside tests.
struct Scripted<F: Fn(DateTime<Utc>) -> f64>(F);

impl<F: Fn(DateTime<Utc>) -> f64> Signals for Scripted<F> {
    /// A path of one step, a horizon ahead.
    fn forecasts(
        &self,
        spec: &ForecastSpec,
        _: &[Point],
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<ForecastPath>, ReplayError> {
        let path = |t| ForecastPath {
            steps: vec![(self.0)(t) as f32],
            period_secs: spec.horizon.as_std().as_secs_f64(),
        };
        Ok(ticks.iter().map(|&t| Ok(path(t))).collect())
    }

    fn states(
        &self,
        _: &AnomalySpec,
        _: &RoleSeries,
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<TrafficState>, ReplayError> {
        Ok(ticks.iter().map(|_| Err("none".to_owned())).collect())
    }
}

const FORECAST: &str =
    "  forecast: {model: traffic-forecast, metric: rps, horizon: 60s, use: scaleUp}\n";

#[test]
fn a_forecast_never_scales_in_under_use_scale_up() {
    let policy = per_replica_100(FORECAST);
    let trace = flash_crowd();
    let observed = compare(&policy, &trace, &options(100.0, 30), &no_models()).unwrap();
    // A forecast of no load at all, every tick: the run is the one without forecasts.
    let zero = compare(&policy, &trace, &options(100.0, 30), &Scripted(|_| 0.0)).unwrap();
    let counts = |run: &swarmpilot::replay::Run| -> Vec<u32> {
        run.ticks.iter().map(|t| t.desired()).collect()
    };
    assert_eq!(counts(&zero.policy), counts(&observed.policy));
    assert!(zero.policy.ticks.iter().all(|t| t.forecast == Some(0.0)));
    assert_eq!(zero.policy.summary, observed.policy.summary);
}

#[test]
fn a_perfect_forecast_serves_the_flash_crowd_in_time() {
    let policy = per_replica_100(FORECAST);
    let trace = flash_crowd();
    let demand = |t: DateTime<Utc>| {
        let secs = (t - at(0)).num_seconds() + 60;
        if (300..360).contains(&secs) {
            400.0
        } else {
            100.0
        }
    };
    let result = compare(&policy, &trace, &options(100.0, 30), &Scripted(demand)).unwrap();
    // At 240 s the forecast of 300 s says 400/s: 4 replicas serve from 270 s.
    assert_eq!(result.policy.summary.under_provisioned_secs, 0.0);
    assert_eq!(result.baseline.summary.under_provisioned_secs, 30.0);
    let first_up = result.policy.ticks.iter().find(|t| t.desired() > t.current);
    assert_eq!(first_up.map(|t| t.at), Some(at(240)));
}

#[test]
fn an_unknown_stretch_is_no_data_and_a_failed_metric() {
    // 100/s, then 3 minutes of empty cells, then 100/s again.
    let mut text = "timestamp,value\n".to_owned();
    for t in (0..600).step_by(5) {
        let cell = if (200..380).contains(&t) {
            String::new()
        } else {
            "100".to_owned()
        };
        text.push_str(&format!("{},{cell}\n", T0 + t));
    }
    let trace = Trace::read("gap", text.as_bytes()).unwrap();
    let result = compare(
        &per_replica_100(""),
        &trace,
        &options(100.0, 30),
        &no_models(),
    )
    .unwrap();
    // The last sample (195 s) holds for 60 s: unknown from 255 s to 380 s.
    assert_eq!(result.policy.summary.no_data_secs, 125.0);
    let tick = result
        .policy
        .ticks
        .iter()
        .find(|t| t.at == at(300))
        .unwrap();
    assert_eq!(tick.demand, None);
    assert_eq!(tick.reason, swarmpilot::decide::Reason::Fallback);
}

#[test]
fn utilization_targets_see_each_replica_share_of_its_capacity() {
    let policy = parse(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: worker}\nspec:\n  \
         minReplicas: 2\n  maxReplicas: 10\n  metrics:\n  - name: cpu\n    docker: {resource: cpu}\n    \
         target: {utilization: 50}\n",
    )
    .unwrap();
    // 150% of one replica's CPU on 2 replicas: 75% each, target 50%: ceil(2 * 1.5) = 3.
    let trace = trace(60, |_| 150.0);
    let result = compare(&policy, &trace, &options(100.0, 0), &no_models()).unwrap();
    assert_eq!(result.policy.ticks[0].desired(), 3);
    assert_eq!(result.policy.summary.max_replicas, 3);
}

/// A worker that scales to zero: activation 0, cooldown 60 s, no scale-down window.
fn scale_to_zero(extra: &str) -> ScalingPolicy {
    let text = policy_text(&format!(
        "  cooldownPeriod: 60s\n  behavior: {{scaleDown: {{stabilizationWindow: 0s}}}}\n{extra}"
    ))
    .replace("minReplicas: 1", "minReplicas: 0");
    parse(&text).unwrap()
}

#[test]
fn a_policy_at_zero_replicas_serves_nothing_until_activated_and_started() {
    use swarmpilot::decide::Reason;
    // Nothing for 120 s, 120/s until 240 s, nothing until 600 s; 50/s per replica, 30 s start-up.
    let trace = trace(600, |t| if (120..240).contains(&t) { 120.0 } else { 0.0 });
    let result = compare(&scale_to_zero(""), &trace, &options(50.0, 30), &no_models()).unwrap();
    let run = &result.policy;
    let at_tick = |secs: i64| run.ticks.iter().find(|t| t.at == at(secs)).unwrap();
    assert_eq!((at_tick(0).desired(), at_tick(0).reason), (0, Reason::Idle));
    // Activated at once to HPA's count from zero, ceil(120 / 50) = 3, serving 30 s later: all
    // the demand of those 30 s is above capacity (zero replicas serve nothing).
    assert_eq!(
        (at_tick(120).desired(), at_tick(120).reason),
        (3, Reason::Activated)
    );
    let s = &run.summary;
    assert_eq!(s.under_provisioned_secs, 30.0);
    assert!((s.over_capacity_share - 120.0 * 30.0 / (120.0 * 120.0)).abs() < 1e-12);
    // Last active read at 225 s: 1 replica while cooling down, idle 60 s later.
    assert_eq!(at_tick(240).desired(), 1);
    assert_eq!(at_tick(270).desired(), 1);
    assert_eq!(
        (at_tick(285).desired(), at_tick(285).reason),
        (0, Reason::Idle)
    );
    assert_eq!(run.ticks.last().unwrap().desired(), 0);
    assert_eq!((s.scale_ups, s.scale_downs, s.max_replicas), (1, 2, 3));
}

#[test]
fn a_schedule_lifts_the_floor_in_replay_as_it_does_live() {
    use swarmpilot::decide::Reason;
    // T0 is 2023-11-14 22:13:20 UTC, 03:43:20 in Asia/Kolkata: a window 03:45:00 to 03:47:00
    // there is 100 s to 220 s into the trace.
    let schedule = "  schedules:\n  - {name: night-batch, timezone: Asia/Kolkata, \
                    start: '0 45 3 * * *', end: '0 47 3 * * *', desiredReplicas: 2}\n";
    let trace = trace(600, |_| 0.0);
    let result = compare(
        &scale_to_zero(schedule),
        &trace,
        &options(50.0, 30),
        &no_models(),
    )
    .unwrap();
    let run = &result.policy;
    let at_tick = |secs: i64| run.ticks.iter().find(|t| t.at == at(secs)).unwrap();
    assert_eq!(at_tick(90).desired(), 0);
    assert_eq!(
        (at_tick(105).desired(), at_tick(105).reason),
        (2, Reason::Activated)
    );
    assert_eq!(
        (at_tick(210).desired(), at_tick(210).reason),
        (2, Reason::Scheduled)
    );
    // The window closed at 220 s; idle once the cooldown from its last active tick (210 s) ran.
    assert_eq!(at_tick(225).desired(), 1);
    assert_eq!(
        (at_tick(270).desired(), at_tick(270).reason),
        (0, Reason::Idle)
    );
    // The HPA baseline keeps the schedule: it is part of the policy, not of its behavior.
    let baseline = &result.baseline;
    assert!(baseline.ticks.iter().any(|t| t.reason == Reason::Scheduled));
}

/// An arrival trace: requests counted per second over 1800 s at a rate of 100/s, 300/s from
/// 600 s to 1200 s, then 100/s again, all arriving every 4th second (single seconds see 4x the
/// rate or nothing; every minute holds 15 bursts).
fn arrivals() -> Trace {
    let mut text = "timestamp,requests\n".to_owned();
    for t in 0..1800 {
        let rate = if (600..1200).contains(&t) { 300 } else { 100 };
        let count = if t % 4 == 0 { 4 * rate } else { 0 };
        text.push_str(&format!("{},{count}\n", T0 + t));
    }
    Trace::read("arrivals", text.as_bytes()).unwrap()
}

/// A policy that reads `rate(requests[1m])`, 50/s a replica.
fn rate_policy(extra: &str) -> ScalingPolicy {
    parse(&format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  \
         minReplicas: 1\n  maxReplicas: 30\n  metrics:\n  - name: rps\n    \
         prometheus: {{query: 'sum(rate(requests[1m]))'}}\n    target: {{averageValue: 50}}\n{extra}"
    ))
    .unwrap()
}

fn windowed(window: Option<i64>) -> Options {
    Options {
        metric_window: window.map(Duration::seconds),
        ..options(50.0, 30)
    }
}

/// The desired counts of `run` at the ticks in `[from, to)` seconds.
fn desired_between(run: &swarmpilot::replay::Run, from: i64, to: i64) -> Vec<u32> {
    run.ticks
        .iter()
        .filter(|t| t.at >= at(from) && t.at < at(to))
        .map(|t| t.desired())
        .collect()
}

#[test]
fn through_a_window_the_baseline_follows_the_mean_rate_not_single_seconds() {
    let trace = arrivals();
    let policy = rate_policy("");
    let mean = compare(&policy, &trace, &windowed(Some(60)), &no_models()).unwrap();
    let counts = compare(&policy, &trace, &windowed(None), &no_models()).unwrap();
    let (mean, counts) = (&mean.baseline, &counts.baseline);
    // Through the window: 100/s is 2 replicas and 300/s 6, once HPA's 300 s scale-down
    // window has passed the first partial minute (3 at 45 s) and the fall after 1200 s.
    assert!(desired_between(mean, 360, 600).iter().all(|&n| n == 2));
    assert!(desired_between(mean, 660, 1200).iter().all(|&n| n == 6));
    assert!(desired_between(mean, 1560, 1800).iter().all(|&n| n == 2));
    assert_eq!(mean.summary.max_replicas, 6);
    // Single seconds: the decision every minute that lands on a burst sees 400/s (8 replicas)
    // or 1200/s (24), and HPA's scale-down window holds it.
    assert!(desired_between(counts, 120, 600).iter().all(|&n| n == 8));
    assert!(desired_between(counts, 660, 1200).iter().all(|&n| n == 24));
    assert_eq!(counts.summary.max_replicas, 24);
    // The demand served is the column as it is either way: the bursts are what is short.
    assert_eq!(mean.summary.no_data_secs, 0.0);
    assert!(mean.summary.under_provisioned_secs > counts.summary.under_provisioned_secs);
    assert!(mean.summary.replica_hours < counts.summary.replica_hours / 3.0);
}

/// Test-only signals that keep the load samples the forecaster would be fed and the role
/// series the classifier would be fed, and forecast and classify nothing. Never used outside
/// tests.
#[derive(Default)]
struct Recording {
    load: std::cell::RefCell<Vec<Point>>,
    roles: std::cell::RefCell<Option<RoleSeries>>,
}

impl Signals for Recording {
    fn forecasts(
        &self,
        _: &ForecastSpec,
        load: &[Point],
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<ForecastPath>, ReplayError> {
        self.load.borrow_mut().extend_from_slice(load);
        Ok(ticks.iter().map(|_| Err("recording".to_owned())).collect())
    }

    fn states(
        &self,
        spec: &AnomalySpec,
        roles: &RoleSeries,
        ticks: &[DateTime<Utc>],
    ) -> Result<PerTick<TrafficState>, ReplayError> {
        *self.roles.borrow_mut() = Some(roles.clone());
        no_models().states(spec, roles, ticks)
    }
}

#[test]
fn through_a_window_the_forecaster_reads_the_mean_rate_too() {
    let policy = rate_policy(FORECAST);
    let recording = Recording::default();
    compare(&policy, &arrivals(), &windowed(Some(60)), &recording).unwrap();
    let load = recording.load.into_inner();
    // One sample a row from the second row on (the first row's window is empty), each the
    // mean of the minute before it: 100/s in every full minute of the first phase.
    assert_eq!(load.len(), 1799);
    assert_eq!(load[0].at, at(1));
    let full_minutes: Vec<f64> = load
        .iter()
        .filter(|p| p.at >= at(60) && p.at <= at(600))
        .map(|p| p.value)
        .collect();
    assert_eq!(full_minutes.len(), 541);
    assert!(full_minutes.iter().all(|&v| v == 100.0), "{full_minutes:?}");
}

/// `from`: decisions and figures start there, and the rows before are history, as the
/// operator's start-up backfill gives it: the forecaster is fed them, and the first decision
/// reads a full minute through the window.
#[test]
fn rows_before_from_are_history_not_decisions() {
    let policy = rate_policy(FORECAST);
    let from = Options {
        from: Some(at(700)),
        ..windowed(Some(60))
    };
    let recording = Recording::default();
    let run = compare(&policy, &arrivals(), &from, &recording).unwrap();
    let load = recording.load.into_inner();
    // The forecaster got every row's window from the second row on, as without `from`.
    assert_eq!(load.len(), 1799);
    assert_eq!(load[0].at, at(1));
    // Decisions and figures cover [700 s, 1800 s) only.
    assert_eq!(run.policy.ticks[0].at, at(700));
    assert_eq!(run.demand.start, at(700));
    assert_eq!(run.times[0], at(700));
    // The first decision reads the minute before 700 s, all at 300/s: 6 replicas, of which
    // HPA's scale-up rate (4 a period from 1) allows 5 at once.
    assert_eq!(run.observed.at_ticks[0], Some(300.0));
    assert_eq!(run.baseline.ticks[0].desired(), 5);
    // Without the history, the same range read from its own first row has no full minute yet.
    let cut = arrivals().select(Some(at(700)), None).unwrap();
    let alone = compare(&policy, &cut, &windowed(Some(60)), &no_models()).unwrap();
    assert_eq!(alone.observed.at_ticks[0], None);
    // A `from` past the trace is refused.
    let late = Options {
        from: Some(at(5000)),
        ..windowed(Some(60))
    };
    assert!(compare(&policy, &arrivals(), &late, &no_models()).is_err());
}

#[test]
fn a_window_shorter_than_the_rows_is_refused_by_name() {
    // Rows every 5 s; a 2 s window would hold less than a row.
    let trace = trace(60, |_| 10.0);
    let error = compare(&policy(""), &trace, &windowed(Some(2)), &no_models()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("--metric-window 2s") && text.contains("row spacing 5s"),
        "{text}"
    );
    assert!(compare(&policy(""), &trace, &windowed(Some(5)), &no_models()).is_ok());
}

#[test]
fn given_decision_times_replace_the_interval_grid() {
    let slow = per_replica_100("");
    let trace = flash_crowd();
    let by_interval = compare(&slow, &trace, &options(100.0, 30), &no_models()).unwrap();
    // The same times given: the same decisions.
    let grid: Vec<DateTime<Utc>> = by_interval.policy.ticks.iter().map(|t| t.at).collect();
    let given = Options {
        ticks: Some(grid),
        ..options(100.0, 30)
    };
    let same = compare(&slow, &trace, &given, &no_models()).unwrap();
    assert_eq!(same.policy.ticks, by_interval.policy.ticks);
    // Times a live loop drifts to (5.3 s apart): a decision at each, none between.
    let drifting: Vec<DateTime<Utc>> = (0..300)
        .map(|i| at(0) + Duration::milliseconds(5_300 * i))
        .collect();
    let given = Options {
        ticks: Some(drifting.clone()),
        ..options(100.0, 30)
    };
    let run = compare(&slow, &trace, &given, &no_models()).unwrap();
    let times: Vec<DateTime<Utc>> = run.policy.ticks.iter().map(|t| t.at).collect();
    assert_eq!(times, drifting);
    assert_eq!(run.policy.summary.max_replicas, 4);
    // Times out of order are refused.
    let given = Options {
        ticks: Some(vec![at(10), at(5)]),
        ..options(100.0, 30)
    };
    let error = compare(&slow, &trace, &given, &no_models()).unwrap_err();
    assert!(error.to_string().contains("decision times"), "{error}");
}

/// An arrival trace of the classifier's roles, the bursts of [`arrivals`] in each: requests
/// (the load, `rps`), errors a quarter of them, bytes received and sent 1024 and 2048 per
/// request, and a latency of 0.25 s in a burst second and 0.5 s in a quiet one.
fn arrivals_by_role() -> Trace {
    let mut text = "timestamp,rps,errors,latency,rx,tx\n".to_owned();
    for t in 0..1800 {
        let rate = if (600..1200).contains(&t) { 300 } else { 100 };
        let count = if t % 4 == 0 { 4 * rate } else { 0 };
        let latency = if count > 0 { 0.25 } else { 0.5 };
        text.push_str(&format!(
            "{},{count},{},{latency},{},{}\n",
            T0 + t,
            count / 4,
            count * 1024,
            count * 2048
        ));
    }
    Trace::read("arrivals by role", text.as_bytes()).unwrap()
}

const CLASSIFIER: &str = "  observe:\n  - name: errors\n    prometheus: {query: 'sum(rate(errors[1m]))'}\n  \
    - name: latency\n    prometheus: {query: 'latency'}\n  - name: rx\n    \
    prometheus: {query: 'sum(rate(rx[1m]))'}\n  - name: tx\n    prometheus: {query: 'sum(rate(tx[1m]))'}\n  \
    anomaly:\n    model: traffic-states\n    \
    inputs: {requests: rps, errors: errors, latency: latency, receiveBytes: rx, transmitBytes: tx}\n";

/// The roles `compare` feeds the classifier over [`arrivals_by_role`] with `window` seconds.
fn roles_through(window: Option<i64>) -> RoleSeries {
    let recording = Recording::default();
    let policy = rate_policy(CLASSIFIER);
    compare(&policy, &arrivals_by_role(), &windowed(window), &recording).unwrap();
    recording
        .roles
        .into_inner()
        .expect("the classifier was asked")
}

#[test]
fn through_a_window_every_traffic_role_of_the_classifier_is_read_alike() {
    let roles = roles_through(Some(60));
    let requests = roles.requests.unwrap();
    // Each traffic role is its column's mean over the same window at the same rows: errors a
    // quarter of the requests and bytes 1024 and 2048 per request at every row, as in each
    // second of the trace (powers of two, so the means compare exactly).
    for (name, role, per_request) in [
        ("errors", roles.errors.clone().unwrap(), 0.25),
        ("receiveBytes", roles.receive_bytes.unwrap(), 1024.0),
        ("transmitBytes", roles.transmit_bytes.unwrap(), 2048.0),
    ] {
        assert_eq!(role.len(), requests.len(), "{name}");
        for (point, request) in role.iter().zip(&requests) {
            assert_eq!(point.at, request.at, "{name}");
            assert_eq!(
                point.value,
                request.value * per_request,
                "{name} at {}",
                point.at
            );
        }
    }
    // Those are means of the minute before, not single seconds: 100 requests/s and 25
    // errors/s in every full minute of the first phase.
    assert_eq!(requests.len(), 1799);
    let full_minutes = |points: &[Point]| -> Vec<f64> {
        points
            .iter()
            .filter(|p| p.at >= at(60) && p.at <= at(600))
            .map(|p| p.value)
            .collect()
    };
    assert!(full_minutes(&requests).iter().all(|&v| v == 100.0));
    assert!(full_minutes(&roles.errors.unwrap())
        .iter()
        .all(|&v| v == 25.0));
    // Latency, a figure per request, is read as the column gives it, window or not.
    let latency = roles.latency.unwrap();
    assert_eq!(latency.len(), 1800);
    assert_eq!(latency[0].value, 0.25);
    assert_eq!(latency[1].value, 0.5);
    assert_eq!(Some(latency), roles_through(None).latency);

    // Without a window every role is the column as it is: single seconds, 0 or 4x the rate.
    let raw = roles_through(None);
    let raw_errors = raw.errors.unwrap();
    assert_eq!(raw_errors.len(), 1800);
    assert_eq!((raw_errors[0].value, raw_errors[1].value), (100.0, 0.0));
    assert_eq!(raw.requests.unwrap()[0].value, 400.0);
}
