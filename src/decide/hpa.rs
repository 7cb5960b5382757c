//! The per-metric replica calculation of the Kubernetes HPA controller (`replica_calculator.go`):
//! usage ratio, tolerance, and the re-counting of missing and not-ready tasks.
//!
//! How swarmpilot's targets map onto HPA's metric kinds:
//! - `utilization` with per-task values: a `Resource` metric (`GetResourceReplicas`);
//! - `averageValue` with per-task values: a `Pods` metric (`calcPlainMetricReplicas`);
//! - `averageValue` with only a service total: an `External` per-pod metric
//!   (`GetExternalPerPodMetricReplicas`), whose base is the task count;
//! - `value`, and `utilization` without per-task values: an `External`/`Object` value metric
//!   (`getUsageRatioReplicaCount`), whose base is the ready task count.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::decision::{MetricOutcome, MetricResult};
use super::observation::{MetricSample, Observation, TaskObservation, TaskPhase};
use crate::policy::{MetricSpec, Resource, Target};

/// HPA's tolerance, per direction: no change while `1 - down <= ratio <= 1 + up`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Tolerance {
    pub down: f64,
    pub up: f64,
}

impl Tolerance {
    pub fn contains(self, ratio: f64) -> bool {
        1.0 - self.down <= ratio && ratio <= 1.0 + self.up
    }
}

/// Computes one metric's recommendation, as HPA's `computeReplicasForMetric` does.
///
/// `under_claim` is the metrics' own count when the replicas in place are a forecast's claim
/// (`forecast::under_claim`): a service total or a whole value is then read against that count,
/// as if the claim's replicas were not there, so the tolerance does not keep them. Per-task
/// samples are averages over the tasks in place and are read as they are.
pub(crate) fn evaluate(
    spec: &MetricSpec,
    sample: Option<&MetricSample>,
    observation: &Observation,
    under_claim: Option<u32>,
    tolerance: Tolerance,
    now: DateTime<Utc>,
) -> MetricOutcome {
    let result = match sample {
        None => failed(format!("no sample for metric {:?}", spec.name)),
        Some(MetricSample::Failed { reason }) => failed(reason.clone()),
        Some(MetricSample::Reading(reading)) => {
            let input = Input {
                target: spec.target,
                value: reading.value,
                per_task: reading.per_task.as_ref(),
                cpu: is_docker_cpu(spec),
            };
            calculate(&input, observation, under_claim, tolerance, now)
                .unwrap_or_else(|reason| MetricResult::Failed { reason })
        }
    };
    MetricOutcome {
        name: spec.name.clone(),
        target: spec.target,
        result,
    }
}

/// Computes the recommendation for a forecast value of a metric: the forecast is a service-level
/// value with no per-task breakdown.
pub(crate) fn evaluate_value(
    spec: &MetricSpec,
    value: f64,
    observation: &Observation,
    under_claim: Option<u32>,
    tolerance: Tolerance,
    now: DateTime<Utc>,
) -> Result<u32, String> {
    let input = Input {
        target: spec.target,
        value,
        per_task: None,
        cpu: false,
    };
    match calculate(&input, observation, under_claim, tolerance, now)? {
        MetricResult::Recommended { replicas, .. } => Ok(replicas),
        MetricResult::Failed { reason } => Err(reason),
    }
}

fn failed(reason: String) -> MetricResult {
    MetricResult::Failed { reason }
}

fn is_docker_cpu(spec: &MetricSpec) -> bool {
    spec.docker
        .as_ref()
        .is_some_and(|docker| docker.resource == Resource::Cpu)
}

struct Input<'a> {
    target: Target,
    value: f64,
    per_task: Option<&'a BTreeMap<String, f64>>,
    /// HPA applies its CPU initialization rule to CPU resource metrics only.
    cpu: bool,
}

fn calculate(
    input: &Input<'_>,
    observation: &Observation,
    under_claim: Option<u32>,
    tolerance: Tolerance,
    now: DateTime<Utc>,
) -> Result<MetricResult, String> {
    let (Target::Utilization(target) | Target::AverageValue(target) | Target::Value(target)) =
        input.target;
    if !(target.is_finite() && target > 0.0) {
        return Err(format!("target must be a positive number, got {target}"));
    }
    if !input.value.is_finite() {
        return Err(format!(
            "the metric's value is not a number: {}",
            input.value
        ));
    }
    let current = under_claim.unwrap_or(observation.current_replicas);
    match (input.target, input.per_task) {
        (Target::Utilization(_), Some(per_task)) => {
            // A missing task counts as using all of its limit on a scale-down, or the target
            // itself when that is above 100%.
            let fill = target.max(100.0);
            per_task_replicas(
                per_task,
                input.cpu,
                target,
                fill,
                true,
                observation,
                tolerance,
                now,
            )
        }
        (Target::AverageValue(_), Some(per_task)) => per_task_replicas(
            per_task,
            input.cpu,
            target,
            target,
            false,
            observation,
            tolerance,
            now,
        ),
        (Target::AverageValue(_), None) => {
            let tasks = observation.live_tasks();
            let tasks = under_claim.map_or(tasks, |count| tasks.min(count as usize));
            Ok(total_per_task_replicas(
                input.value,
                target,
                tasks,
                tolerance,
            ))
        }
        (Target::Value(_) | Target::Utilization(_), _) => {
            value_replicas(input.value, target, current, &observation.tasks, tolerance)
        }
    }
}

/// HPA's `groupPods`: which tasks' samples count, which are missing, which are set aside.
struct Groups {
    /// Samples of the tasks that count.
    ready: Vec<f64>,
    missing: usize,
    unready: usize,
}

fn group(
    tasks: &[TaskObservation],
    per_task: &BTreeMap<String, f64>,
    cpu: bool,
    observation: &Observation,
    now: DateTime<Utc>,
) -> Groups {
    let mut groups = Groups {
        ready: Vec::with_capacity(tasks.len()),
        missing: 0,
        unready: 0,
    };
    for task in tasks {
        match task.phase {
            TaskPhase::ShuttingDown => continue,
            TaskPhase::Starting => {
                groups.unready += 1;
                continue;
            }
            TaskPhase::Running => {}
        }
        let Some(&sample) = per_task.get(&task.id).filter(|v| v.is_finite()) else {
            groups.missing += 1;
            continue;
        };
        if cpu && still_initializing(task, observation, now) {
            groups.unready += 1;
            continue;
        }
        groups.ready.push(sample);
    }
    groups
}

/// Docker has no readiness probe result here, so HPA's "not ready, or no full metric window since
/// it became ready" becomes "started less than the CPU initialization period ago".
fn still_initializing(
    task: &TaskObservation,
    observation: &Observation,
    now: DateTime<Utc>,
) -> bool {
    let Some(started) = task.started_at else {
        return true;
    };
    let period = chrono::Duration::from_std(observation.cpu_initialization_period.as_std())
        .unwrap_or(chrono::Duration::MAX);
    started
        .checked_add_signed(period)
        .is_none_or(|ready_at| ready_at > now)
}

/// `GetResourceReplicas` (with `recheck_direction`) and `calcPlainMetricReplicas` (without).
#[allow(clippy::too_many_arguments)]
fn per_task_replicas(
    per_task: &BTreeMap<String, f64>,
    cpu: bool,
    target: f64,
    missing_fill: f64,
    recheck_direction: bool,
    observation: &Observation,
    tolerance: Tolerance,
    now: DateTime<Utc>,
) -> Result<MetricResult, String> {
    let current = observation.current_replicas;
    if observation.tasks.is_empty() {
        return Err("the service has no tasks".to_owned());
    }
    let groups = group(&observation.tasks, per_task, cpu, observation, now);
    if groups.ready.is_empty() {
        return Err(format!(
            "no samples from ready tasks ({} missing, {} not ready)",
            groups.missing, groups.unready
        ));
    }
    let ready = groups.ready.len();
    let sum: f64 = groups.ready.iter().sum();
    let average = sum / ready as f64;
    let ratio = average / target;
    let recommended = |replicas: u32, within_tolerance: bool| MetricResult::Recommended {
        replicas,
        current: average,
        ratio,
        within_tolerance,
        ready: count(ready),
        missing: count(groups.missing),
        unready: count(groups.unready),
    };

    let scale_up_with_unready = groups.unready > 0 && ratio > 1.0;
    if !scale_up_with_unready && groups.missing == 0 {
        if tolerance.contains(ratio) {
            return Ok(recommended(current, true));
        }
        return Ok(recommended(ceil_count(ratio * ready as f64), false));
    }

    // Re-count conservatively: missing tasks as if at the target (scale-down) or idle
    // (scale-up), not-ready tasks as idle on a scale-up.
    let (mut new_sum, mut counted) = (sum, ready);
    if groups.missing > 0 {
        if ratio < 1.0 {
            new_sum += missing_fill * groups.missing as f64;
            counted += groups.missing;
        } else if ratio > 1.0 {
            counted += groups.missing;
        }
    }
    if scale_up_with_unready {
        counted += groups.unready;
    }
    let new_ratio = new_sum / counted as f64 / target;
    let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if tolerance.contains(new_ratio) || flipped {
        return Ok(recommended(current, true));
    }
    let replicas = ceil_count(new_ratio * counted as f64);
    if recheck_direction
        && ((new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current))
    {
        return Ok(recommended(current, true));
    }
    Ok(recommended(replicas, false))
}

/// `GetExternalPerPodMetricReplicas`: a service total against a per-task target, based on the
/// number of tasks that exist (HPA's `status.replicas`), not the spec count.
fn total_per_task_replicas(
    total: f64,
    target: f64,
    tasks: usize,
    tolerance: Tolerance,
) -> MetricResult {
    let wanted = ceil_count(total / target);
    let (replicas, ratio, average, within_tolerance) = if tasks == 0 {
        // No task to average over: the total alone says how many are needed.
        (wanted, total / target, total, false)
    } else {
        let ratio = total / (target * tasks as f64);
        let within = tolerance.contains(ratio);
        let replicas = if within { count(tasks) } else { wanted };
        (replicas, ratio, total / tasks as f64, within)
    };
    MetricResult::Recommended {
        replicas,
        current: average,
        ratio,
        within_tolerance,
        ready: count(tasks),
        missing: 0,
        unready: 0,
    }
}

/// `getUsageRatioReplicaCount`: a whole value against a whole target, based on the ready task
/// count; from 0 replicas the ratio alone decides (scale from zero).
fn value_replicas(
    value: f64,
    target: f64,
    current: u32,
    tasks: &[TaskObservation],
    tolerance: Tolerance,
) -> Result<MetricResult, String> {
    let ratio = value / target;
    let ready = tasks
        .iter()
        .filter(|task| task.phase == TaskPhase::Running)
        .count();
    let (replicas, within_tolerance) = if current == 0 {
        (ceil_count(ratio), false)
    } else if tolerance.contains(ratio) {
        (current, true)
    } else if tasks.is_empty() {
        return Err("the service has no tasks".to_owned());
    } else {
        (ceil_count(ratio * ready as f64), false)
    };
    Ok(MetricResult::Recommended {
        replicas,
        current: value,
        ratio,
        within_tolerance,
        ready: count(ready),
        missing: 0,
        unready: 0,
    })
}

/// `int32(math.Ceil(x))`, saturating instead of wrapping; NaN and negatives give 0.
///
/// HPA works in integer milli-units, so 3 x 0.2 / 0.1 is exactly 6 there; in f64 it is
/// 6.000000000000001. Rounding to 9 decimals first keeps such noise from adding a replica.
fn ceil_count(x: f64) -> u32 {
    ((x * 1e9).round() / 1e9).ceil() as u32
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DockerSource;
    use chrono::TimeZone;

    const TOLERANCE: Tolerance = Tolerance { down: 0.1, up: 0.1 };

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
    }

    fn running(id: &str) -> TaskObservation {
        TaskObservation {
            id: id.into(),
            phase: TaskPhase::Running,
            started_at: Some(now() - chrono::Duration::minutes(10)),
            unplaced: None,
        }
    }

    fn observation(current: u32, tasks: Vec<TaskObservation>) -> Observation {
        Observation {
            tasks,
            ..Observation::new(current)
        }
    }

    fn metric(target: Target, cpu: bool) -> MetricSpec {
        MetricSpec {
            name: "m".into(),
            prometheus: None,
            scrape: None,
            docker: cpu.then_some(DockerSource {
                resource: Resource::Cpu,
            }),
            redis: None,
            rabbitmq: None,
            target,
            activation: None,
        }
    }

    fn replicas(spec: &MetricSpec, sample: MetricSample, obs: &Observation) -> Option<u32> {
        evaluate(spec, Some(&sample), obs, None, TOLERANCE, now()).replicas()
    }

    #[test]
    fn utilization_uses_the_ready_count_as_base() {
        let obs = observation(3, vec![running("a"), running("b"), running("c")]);
        let spec = metric(Target::Utilization(50.0), true);
        let sample = MetricSample::per_task([("a", 100.0), ("b", 100.0), ("c", 100.0)]);
        assert_eq!(replicas(&spec, sample, &obs), Some(6));
    }

    #[test]
    fn missing_tasks_count_as_full_on_scale_down() {
        // HPA's TestReplicaCalcScaleDownIncludeMissing-like case: 2 of 3 report 20% of a 50% target.
        let obs = observation(3, vec![running("a"), running("b"), running("c")]);
        let spec = metric(Target::Utilization(50.0), false);
        let sample = MetricSample::per_task([("a", 20.0), ("b", 20.0)]);
        // ratio 0.4; re-counted (20 + 20 + 100) / 3 / 50 = 0.933 -> within tolerance: hold.
        assert_eq!(replicas(&spec, sample, &obs), Some(3));
        let sample = MetricSample::per_task([("a", 5.0), ("b", 5.0)]);
        // (5 + 5 + 100) / 3 / 50 = 0.733 -> ceil(0.733 * 3) = 3; same count, no direction flip.
        assert_eq!(replicas(&spec, sample, &obs), Some(3));
    }

    #[test]
    fn missing_tasks_count_as_target_for_average_value() {
        let obs = observation(
            4,
            vec![running("a"), running("b"), running("c"), running("d")],
        );
        let spec = metric(Target::AverageValue(10.0), false);
        let sample = MetricSample::per_task([("a", 2.0), ("b", 2.0)]);
        // ratio 0.2; re-counted (2 + 2 + 10 + 10) / 4 / 10 = 0.6 -> ceil(0.6 * 4) = 3.
        assert_eq!(replicas(&spec, sample, &obs), Some(3));
    }

    #[test]
    fn unready_tasks_count_as_idle_on_scale_up() {
        let mut starting = running("c");
        starting.phase = TaskPhase::Starting;
        let obs = observation(3, vec![running("a"), running("b"), starting]);
        let spec = metric(Target::AverageValue(10.0), false);
        let sample = MetricSample::per_task([("a", 30.0), ("b", 30.0)]);
        // ratio 3; re-counted (30 + 30 + 0) / 3 / 10 = 2 -> ceil(2 * 3) = 6 (not 9 = 3 * 3).
        assert_eq!(replicas(&spec, sample, &obs), Some(6));
    }

    #[test]
    fn cpu_of_a_task_in_its_initialization_period_is_set_aside() {
        let mut fresh = running("c");
        fresh.started_at = Some(now() - chrono::Duration::seconds(5));
        let obs = observation(3, vec![running("a"), running("b"), fresh]);
        let sample = MetricSample::per_task([("a", 100.0), ("b", 100.0), ("c", 400.0)]);
        // CPU: c's start-up burst is ignored and c counts as idle on the scale-up: 200/3/50 -> 4.
        let cpu = metric(Target::Utilization(50.0), true);
        assert_eq!(replicas(&cpu, sample.clone(), &obs), Some(4));
        // Memory (not CPU): every sample counts: 600/3/50 = 4 -> 12.
        let memory = metric(Target::Utilization(50.0), false);
        assert_eq!(replicas(&memory, sample, &obs), Some(12));
    }

    #[test]
    fn total_against_average_value_uses_the_task_count() {
        let obs = observation(4, vec![running("a"), running("b"), running("c")]);
        let spec = metric(Target::AverageValue(50.0), false);
        assert_eq!(replicas(&spec, MetricSample::value(400.0), &obs), Some(8));
        // 160 / (50 * 3) = 1.07: within tolerance, and HPA then answers the task count.
        assert_eq!(replicas(&spec, MetricSample::value(160.0), &obs), Some(3));
    }

    #[test]
    fn value_target_scales_the_ready_count() {
        let obs = observation(2, vec![running("a"), running("b")]);
        let spec = metric(Target::Value(100.0), false);
        assert_eq!(replicas(&spec, MetricSample::value(300.0), &obs), Some(6));
        assert_eq!(replicas(&spec, MetricSample::value(105.0), &obs), Some(2));
    }

    #[test]
    fn failures_and_bad_input_are_reported_not_panicked() {
        let obs = observation(2, vec![running("a")]);
        let spec = metric(Target::Value(0.0), false);
        let outcome = evaluate(
            &spec,
            Some(&MetricSample::value(1.0)),
            &obs,
            None,
            TOLERANCE,
            now(),
        );
        assert!(
            matches!(outcome.result, MetricResult::Failed { ref reason } if reason.contains("target"))
        );
        let spec = metric(Target::Value(10.0), false);
        let outcome = evaluate(
            &spec,
            Some(&MetricSample::value(f64::NAN)),
            &obs,
            None,
            TOLERANCE,
            now(),
        );
        assert!(matches!(outcome.result, MetricResult::Failed { .. }));
        let outcome = evaluate(&spec, None, &obs, None, TOLERANCE, now());
        assert!(
            matches!(outcome.result, MetricResult::Failed { ref reason } if reason.contains("no sample"))
        );
    }

    #[test]
    fn asymmetric_tolerance() {
        let tolerance = Tolerance { down: 0.5, up: 0.0 };
        assert!(tolerance.contains(0.5));
        assert!(tolerance.contains(1.0));
        assert!(!tolerance.contains(1.01));
        assert!(!tolerance.contains(0.49));
    }
}
