//! Checking a replay against the live loop: each decision the live loop recorded beside the
//! replay's decision at the same time (replay with [`super::Options::ticks`] set to the live
//! decision times). Where their inputs were equal the desired counts must be; every difference
//! gets the input that differed and why it may, or is reported unexplained.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::demand::Point;
use super::simulate::Tick;
use crate::decide::Reason;
use crate::policy::{Behavior, TrafficState};
use crate::reconcile::DecisionRecord;

/// One live decision and what it read (the status API's decision record).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveDecision {
    pub at: DateTime<Utc>,
    pub current: u32,
    pub desired: u32,
    pub reason: Reason,
    /// The load metric's value; `None`: the read failed.
    pub demand: Option<f64>,
    /// The forecast the decision used.
    pub forecast: Option<f64>,
    pub state: Option<TrafficState>,
    /// The tasks counted as replicas, when known.
    pub tasks: Option<u32>,
}

impl LiveDecision {
    /// The decision of a status API record, whose load metric is named `load`.
    pub fn of(record: &DecisionRecord, load: &str) -> LiveDecision {
        LiveDecision {
            at: record.at,
            current: record.current,
            desired: record.desired,
            reason: record.reason,
            demand: record.inputs.values.get(load).copied(),
            forecast: record.inputs.forecast,
            state: record.inputs.traffic_state,
            tasks: record.inputs.tasks,
        }
    }
}

/// Why a replay's desired count may differ from the live one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Cause {
    /// Swarm was rolling the service out: live held the count, a replay knows of no rollout.
    Rollout,
    /// The replica counts had already parted at an earlier difference.
    Replicas,
    /// Live counted another number of tasks than its replica count: a replica not yet created
    /// or not yet gone, where a replay's replicas follow its count at once.
    Tasks,
    /// Live read the load metric at another moment than the recorded step: its value is one
    /// Prometheus gave for a nearby moment (a rate over a window ending at another second).
    Demand,
    /// The traffic state differs: the classifier's inputs were read at other moments.
    TrafficState,
    /// The forecast used differs: its window was read at other moments, or the ensemble
    /// scored those differently.
    Forecast,
    /// An earlier difference is still within the behavior's memory (the stabilization windows
    /// and rate-limit periods).
    Earlier,
}

impl Cause {
    /// Whether the difference follows from an earlier one (the counts had already parted, or an
    /// earlier difference is still in the behavior's memory) rather than starting its own.
    pub fn follows_an_earlier(self) -> bool {
        matches!(self, Cause::Replicas | Cause::Earlier)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::Rollout => "rollout",
            Cause::Replicas => "replicas already apart",
            Cause::Tasks => "tasks not yet started or gone",
            Cause::Demand => "rate read at another moment",
            Cause::TrafficState => "traffic state",
            Cause::Forecast => "forecast",
            Cause::Earlier => "earlier difference in the behavior's memory",
        })
    }
}

/// The verdict on one tick.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The same desired count; `inputs_equal` says whether every input was equal too.
    Equal {
        inputs_equal: bool,
    },
    Explained(Cause),
    Unexplained(String),
}

/// One live decision beside the replay's.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub live: LiveDecision,
    /// The replay's tick at the same time; `None` if it has none.
    pub replay: Option<Tick>,
    pub verdict: Verdict,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = &self.live;
        write!(
            f,
            "{} live {}->{} {:?} (demand {}, forecast {}, state {}, tasks {})",
            live.at.format("%H:%M:%S%.3f"),
            live.current,
            live.desired,
            live.reason,
            shown(live.demand),
            shown(live.forecast),
            shown(live.state),
            shown(live.tasks),
        )?;
        if let Some(tick) = &self.replay {
            write!(
                f,
                "; replay {}->{} {:?} (demand {}, forecast {}, state {})",
                tick.current,
                tick.desired(),
                tick.reason,
                shown(tick.demand),
                shown(used_forecast(tick)),
                shown(tick.state),
            )?;
        }
        match &self.verdict {
            Verdict::Equal { .. } => Ok(()),
            Verdict::Explained(cause) => write!(f, ": {cause}"),
            Verdict::Unexplained(why) => write!(f, ": UNEXPLAINED, {why}"),
        }
    }
}

fn shown<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// What bounds the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// How long a difference can still change later decisions: the longest stabilization
    /// window or rate-limit period of the policy's behavior, see [`memory`].
    pub memory: Duration,
    /// How far from a decision's time a live read may have been evaluated.
    pub skew: Duration,
}

/// How long the behavior remembers decisions: its longest stabilization window or rate-limit
/// period, plus one interval (the decision that put it there).
pub fn memory(behavior: &Behavior, interval: Duration) -> Duration {
    let longest = [behavior.scale_up(), behavior.scale_down()]
        .iter()
        .flat_map(|rules| {
            let periods = rules.policies.iter().map(|p| p.period.as_std());
            periods.chain([rules.stabilization_window.as_std()])
        })
        .max()
        .unwrap_or_default();
    Duration::from_std(longest).unwrap_or(Duration::MAX) + interval
}

/// Every live decision with its verdict, and counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parity {
    pub rows: Vec<Row>,
}

impl Parity {
    pub fn equal(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Equal { .. }))
    }

    /// Ticks where every input and the desired count were equal.
    pub fn equal_inputs(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Equal { inputs_equal: true }))
    }

    pub fn explained(&self) -> BTreeMap<Cause, usize> {
        let mut by = BTreeMap::new();
        for row in &self.rows {
            if let Verdict::Explained(cause) = row.verdict {
                *by.entry(cause).or_insert(0) += 1;
            }
        }
        by
    }

    pub fn unexplained(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Unexplained(_)))
            .collect()
    }

    /// The rows whose desired counts differ.
    pub fn differences(&self) -> impl Iterator<Item = &Row> {
        self.rows
            .iter()
            .filter(|r| !matches!(r.verdict, Verdict::Equal { .. }))
    }

    fn count(&self, is: impl Fn(&Verdict) -> bool) -> usize {
        self.rows.iter().filter(|r| is(&r.verdict)).count()
    }

    /// One line: ticks compared, equal, explained differences by cause, unexplained.
    pub fn summary(&self) -> String {
        let explained = self.explained();
        let by: Vec<String> = explained
            .iter()
            .map(|(cause, n)| format!("{cause} {n}"))
            .collect();
        format!(
            "{} ticks compared: {} equal ({} with every input equal), {} explained differences ({}), {} unexplained",
            self.rows.len(),
            self.equal(),
            self.equal_inputs(),
            explained.values().sum::<usize>(),
            if by.is_empty() { "none".to_owned() } else { by.join(", ") },
            self.unexplained().len()
        )
    }
}

/// Compares the `live` decisions (oldest first) with the replay's `ticks` at the same times.
/// `recorded` is the load metric as recorded at a fine step around the decisions, for telling
/// a value read at another moment from a wrong one.
pub fn compare(live: &[LiveDecision], ticks: &[Tick], recorded: &[Point], rules: &Rules) -> Parity {
    let by_time: BTreeMap<DateTime<Utc>, &Tick> = ticks.iter().map(|t| (t.at, t)).collect();
    // The times of earlier ticks whose inputs or counts differed, within the memory.
    let mut apart: VecDeque<DateTime<Utc>> = VecDeque::new();
    let mut rows = Vec::with_capacity(live.len());
    for decision in live {
        while apart
            .front()
            .is_some_and(|&t| decision.at - t > rules.memory)
        {
            apart.pop_front();
        }
        let Some(tick) = by_time.get(&decision.at).copied() else {
            rows.push(Row {
                live: decision.clone(),
                replay: None,
                verdict: Verdict::Unexplained("the replay has no tick at this time".to_owned()),
            });
            continue;
        };
        let differs = differing_input(decision, tick, recorded, rules);
        let verdict = if decision.desired == tick.desired() {
            Verdict::Equal {
                inputs_equal: differs.is_none(),
            }
        } else {
            match differs {
                Some(found) => found.map_or_else(Verdict::Unexplained, Verdict::Explained),
                None if !apart.is_empty() => Verdict::Explained(Cause::Earlier),
                None => Verdict::Unexplained(
                    "every input was equal and no earlier difference is in the behavior's memory"
                        .to_owned(),
                ),
            }
        };
        if !matches!(verdict, Verdict::Equal { inputs_equal: true }) {
            apart.push_back(decision.at);
        }
        rows.push(Row {
            live: decision.clone(),
            replay: Some(tick.clone()),
            verdict,
        });
    }
    Parity { rows }
}

/// The first input of `decision` that differs from the replay's `tick`: its cause, or why the
/// difference cannot be explained. `None`: every input is equal.
fn differing_input(
    decision: &LiveDecision,
    tick: &Tick,
    recorded: &[Point],
    rules: &Rules,
) -> Option<Result<Cause, String>> {
    if decision.reason == Reason::RolloutInProgress {
        return Some(Ok(Cause::Rollout));
    }
    if decision.current != tick.current {
        return Some(Ok(Cause::Replicas));
    }
    if decision
        .tasks
        .is_some_and(|tasks| tasks != decision.current)
    {
        return Some(Ok(Cause::Tasks));
    }
    if !same(decision.demand, tick.demand) {
        return Some(demand_read_elsewhen(decision, tick, recorded, rules));
    }
    if decision.state != tick.state {
        return Some(Ok(Cause::TrafficState));
    }
    if !same(decision.forecast, used_forecast(tick)) {
        return Some(Ok(Cause::Forecast));
    }
    None
}

/// A live value of the load metric that differs from the recorded step's is explained when
/// Prometheus gave that very value for a moment within the skew of the decision; a failed
/// live read is explained too (the replay reads the record).
fn demand_read_elsewhen(
    decision: &LiveDecision,
    tick: &Tick,
    recorded: &[Point],
    rules: &Rules,
) -> Result<Cause, String> {
    let Some(value) = decision.demand else {
        return Ok(Cause::Demand);
    };
    let near = recorded
        .iter()
        .filter(|p| (p.at - decision.at).abs() <= rules.skew)
        .any(|p| same(Some(p.value), Some(value)));
    if near {
        Ok(Cause::Demand)
    } else {
        Err(format!(
            "live read {value} where the replay read {}, and Prometheus gave no such value within {}s",
            shown(tick.demand),
            rules.skew.num_milliseconds() as f64 / 1000.0
        ))
    }
}

/// The forecast a replay tick's decision used.
fn used_forecast(tick: &Tick) -> Option<f64> {
    tick.forecast.filter(|_| !tick.forecast_ignored)
}

/// Equal up to the last bits a decimal round trip may change.
fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12),
        (None, None) => true,
        _ => false,
    }
}
