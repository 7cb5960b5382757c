//! The scrape source: GET each running task's exposition endpoint, select the metric, turn
//! counters into rates and histograms into a quantile, and combine the tasks.
//!
//! Per task: a gauge is read as is; a counter is the per-second rate since the previous scrape
//! of that task (summed over the matching series; a series seen for the first time adds nothing
//! yet); a histogram is the quantile of its bucket increases since the previous scrape. A task
//! scraped for the first time has no rate yet: it is listed in [`Reading::skipped`] as warming
//! up, and when every task is, the read fails with [`MetricError::WarmingUp`].
//!
//! Across tasks: `sum`, `avg` or `max` of the task values; for a histogram, `sum` merges every
//! task's bucket increases before taking the quantile (the right way to combine histograms),
//! while `avg` and `max` combine the per-task quantiles. The read fails only when fewer than
//! `minResponding` of the running tasks answered with the metric.
//!
//! Where the tasks are is a [`Targets`] implementation: [`SwarmTargets`] asks Docker for the
//! tasks' overlay addresses; [`StaticTargets`] is a fixed list, for tests and for a host that
//! cannot reach overlay addresses.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};

use super::exposition::{self, histogram_quantile, merge_buckets, Selected};
use super::http::fetch;
use super::rates::{bucket_increases, elapsed_secs, increase};
use super::{
    aggregate, running, task_address, MetricError, MetricSource, Reading, TaskError, TaskValue,
};
use crate::policy::{Aggregate, ScrapeSource};
use crate::swarm::{ServiceInfo, Swarm};

/// Limits of one scrape of one task.
#[derive(Clone, Debug)]
pub struct ScrapeConfig {
    /// Deadline for one task's answer, body included.
    pub timeout: Duration,
    /// Bodies larger than this are dropped (the task counts as not answering).
    pub max_body_bytes: usize,
    /// How many tasks are scraped at once.
    pub concurrency: usize,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            timeout: Duration::from_secs(5),
            max_body_bytes: 4 * 1024 * 1024,
            concurrency: 16,
        }
    }
}

/// Where one running task serves its metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeTarget {
    pub task_id: String,
    pub address: SocketAddr,
}

/// Finds the running tasks of a service and where each serves `source.port`.
pub trait Targets: Send + Sync + 'static {
    /// One entry per running task: its address, or why it has none (which counts as not answering).
    fn resolve(
        &self,
        service: &ServiceInfo,
        source: &ScrapeSource,
    ) -> impl Future<Output = Result<Vec<Result<ScrapeTarget, TaskError>>, MetricError>> + Send;
}

/// The running tasks' addresses on the source's network, from the Swarm. Without a `network`,
/// the first attached network by name, leaving out `ingress` (the routing mesh, not the task).
pub struct SwarmTargets<S> {
    swarm: Arc<S>,
}

impl<S> SwarmTargets<S> {
    pub fn new(swarm: Arc<S>) -> Self {
        SwarmTargets { swarm }
    }
}

impl<S: Swarm> Targets for SwarmTargets<S> {
    async fn resolve(
        &self,
        service: &ServiceInfo,
        source: &ScrapeSource,
    ) -> Result<Vec<Result<ScrapeTarget, TaskError>>, MetricError> {
        let tasks = self.swarm.list_tasks(&service.id).await?;
        Ok(running(&tasks)
            .map(|task| {
                let address = task_address(task, source.network.as_deref())
                    .map_err(|reason| TaskError::new(&task.id, reason))?;
                Ok(ScrapeTarget {
                    task_id: task.id.clone(),
                    address: SocketAddr::new(address, source.port),
                })
            })
            .collect())
    }
}

/// A fixed list of targets, whatever the service: for tests and host-side demos, where the
/// tasks are reached at `127.0.0.1:PORT` instead of their overlay addresses.
#[derive(Clone, Debug, Default)]
pub struct StaticTargets {
    pub targets: Vec<ScrapeTarget>,
}

impl Targets for StaticTargets {
    async fn resolve(
        &self,
        _service: &ServiceInfo,
        _source: &ScrapeSource,
    ) -> Result<Vec<Result<ScrapeTarget, TaskError>>, MetricError> {
        Ok(self.targets.iter().cloned().map(Ok).collect())
    }
}

/// The previous scrape of one task, kept to compute rates.
#[derive(Clone, Debug)]
struct Previous {
    at: DateTime<Utc>,
    selected: Selected,
}

/// One task's answer, selected.
struct Scraped {
    task_id: String,
    at: DateTime<Utc>,
    selected: Selected,
}

/// What one task's latest scrape gives, compared with its previous one.
#[derive(Debug, PartialEq)]
enum Contribution {
    Value(f64),
    /// A histogram's bucket increases since the previous scrape, merged over the matching series.
    Buckets(Vec<(f64, f64)>),
    WarmingUp,
}

/// Reads scrape metrics; remembers each task's previous scrape per service and metric.
pub struct ScrapeReader<T> {
    targets: T,
    http: reqwest::Client,
    config: ScrapeConfig,
    /// Each task's previous scrape (by task ID), per service, metric and source.
    history: Mutex<HashMap<HistoryKey, HashMap<String, Previous>>>,
}

/// Whose previous scrapes one history holds: one metric of one service, read from one source
/// (a changed port, family or matcher starts a new history).
#[derive(Debug, PartialEq, Eq, Hash)]
struct HistoryKey {
    service_id: String,
    metric: String,
    port: u16,
    family: String,
    labels: BTreeMap<String, String>,
}

impl<T: Targets> MetricSource for ScrapeReader<T> {
    type Spec = ScrapeSource;

    /// Scrape the service's running tasks now and combine them into the metric's value.
    async fn read(
        &self,
        service: &ServiceInfo,
        metric: &str,
        source: &ScrapeSource,
    ) -> Result<Reading, MetricError> {
        if let Some(q) = source.quantile.filter(|q| !(0.0..=1.0).contains(q)) {
            return Err(MetricError::InvalidSource(format!(
                "quantile {q} is outside 0..=1"
            )));
        }
        let targets = self.targets.resolve(service, source).await?;
        if targets.is_empty() {
            return Err(MetricError::NoRunningTasks {
                service: service.name.clone(),
            });
        }
        let running = targets.len();
        let scrapes: Vec<Result<Scraped, TaskError>> = stream::iter(targets)
            .map(|target| async move {
                let target = target?;
                let (at, selected) = self
                    .scrape_one(&target, source)
                    .await
                    .map_err(|reason| TaskError::new(&target.task_id, reason))?;
                Ok(Scraped {
                    task_id: target.task_id,
                    at,
                    selected,
                })
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;

        let key = HistoryKey {
            service_id: service.id.clone(),
            metric: metric.to_owned(),
            port: source.port,
            family: source.metric.clone(),
            labels: source.labels.clone(),
        };
        let mut failures = Vec::new();
        let mut contributions = Vec::new();
        let mut latest: Option<DateTime<Utc>> = None;
        {
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let previous = history.entry(key).or_default();
            let mut seen = HashMap::new();
            for scrape in scrapes {
                match scrape {
                    Err(failure) => failures.push(failure),
                    Ok(Scraped {
                        task_id,
                        at,
                        selected,
                    }) => {
                        latest = latest.max(Some(at));
                        match contribution(previous.get(&task_id), at, &selected, source.quantile) {
                            Ok(contribution) => contributions.push((task_id.clone(), contribution)),
                            Err(reason) => failures.push(TaskError::new(&task_id, reason)),
                        }
                        seen.insert(task_id, Previous { at, selected });
                    }
                }
            }
            // Tasks that did not answer keep their previous scrape, so one missed scrape does
            // not cost a warm-up; tasks no longer running are forgotten.
            for failure in &failures {
                if let Some(kept) = previous.remove(&failure.task_id) {
                    seen.insert(failure.task_id.clone(), kept);
                }
            }
            *previous = seen;
        }

        let answered = contributions.len();
        let required = required_answers(source.min_responding, running);
        if answered < required {
            return Err(MetricError::TooFewAnswered {
                answered,
                running,
                required,
                failures,
            });
        }
        combine(
            contributions,
            failures,
            source,
            latest.unwrap_or_else(Utc::now),
        )
    }
}

impl<T: Targets> ScrapeReader<T> {
    pub fn new(targets: T, config: ScrapeConfig) -> Result<Self, MetricError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|error| MetricError::InvalidSource(format!("HTTP client: {error}")))?;
        Ok(ScrapeReader {
            targets,
            http,
            config,
            history: Mutex::new(HashMap::new()),
        })
    }

    async fn scrape_one(
        &self,
        target: &ScrapeTarget,
        source: &ScrapeSource,
    ) -> Result<(DateTime<Utc>, Selected), String> {
        let path = source.path.trim_start_matches('/');
        let url = format!("http://{}/{path}", target.address);
        let request = self.http.get(&url).header(
            reqwest::header::ACCEPT,
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        );
        let (status, body) = fetch(
            request,
            &url,
            self.config.timeout,
            self.config.max_body_bytes,
        )
        .await
        .map_err(|error| error.to_string())?;
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}"));
        }
        // Samples that carry their own timestamp are compared at that time, as Prometheus does.
        let samples = exposition::parse(&body, Utc::now());
        let (selected, at) =
            exposition::select(&samples, &source.metric, &source.labels, source.quantile)?;
        Ok((at, selected))
    }
}

/// How many of `running` tasks must answer for a read to count.
fn required_answers(min_responding: f64, running: usize) -> usize {
    let share = min_responding.clamp(0.0, 1.0);
    ((share * running as f64) - 1e-9).ceil().max(0.0) as usize
}

fn contribution(
    previous: Option<&Previous>,
    at: DateTime<Utc>,
    now: &Selected,
    quantile: Option<f64>,
) -> Result<Contribution, String> {
    match now {
        Selected::Gauge(value) if value.is_finite() => Ok(Contribution::Value(*value)),
        Selected::Gauge(value) => Err(format!("value is not a finite number: {value}")),
        Selected::Counter(series) => {
            let Some((before, secs)) = compare(previous, at) else {
                return Ok(Contribution::WarmingUp);
            };
            let Selected::Counter(before) = before else {
                return Ok(Contribution::WarmingUp);
            };
            let increase: f64 = series
                .iter()
                .filter_map(|(labels, now)| Some(increase(*before.get(labels)?, *now)))
                .sum();
            let rate = increase / secs;
            if rate.is_finite() {
                Ok(Contribution::Value(rate))
            } else {
                Err(format!("counter rate is not a finite number: {rate}"))
            }
        }
        Selected::Histogram(series) => {
            if quantile.is_none() {
                return Err("the metric is a histogram: set `quantile` (e.g. 0.95)".into());
            }
            let Some((Selected::Histogram(before), _)) = compare(previous, at) else {
                return Ok(Contribution::WarmingUp);
            };
            let mut merged = Vec::new();
            for (labels, now) in series {
                if let Some(increases) = before.get(labels).and_then(|b| bucket_increases(b, now)) {
                    merge_buckets(&mut merged, &increases);
                }
            }
            if merged.is_empty() {
                // Only new series (or a changed bucket layout): nothing to compare yet.
                return Ok(Contribution::WarmingUp);
            }
            Ok(Contribution::Buckets(merged))
        }
    }
}

/// The previous observation and the seconds since, when there is one to compare with.
fn compare(previous: Option<&Previous>, at: DateTime<Utc>) -> Option<(&Selected, f64)> {
    let previous = previous?;
    Some((&previous.selected, elapsed_secs(previous.at, at)?))
}

fn combine(
    contributions: Vec<(String, Contribution)>,
    mut skipped: Vec<TaskError>,
    source: &ScrapeSource,
    at: DateTime<Utc>,
) -> Result<Reading, MetricError> {
    let mut tasks = Vec::new();
    let mut merged = Vec::new();
    let mut warming = 0;
    for (task_id, contribution) in contributions {
        match contribution {
            Contribution::Value(value) => tasks.push(TaskValue { task_id, value }),
            Contribution::WarmingUp => {
                warming += 1;
                skipped.push(TaskError::new(
                    task_id,
                    "warming up: first scrape of this task",
                ));
            }
            Contribution::Buckets(buckets) => {
                merge_buckets(&mut merged, &buckets);
                let q = source.quantile.unwrap_or(1.0);
                match histogram_quantile(q, &buckets) {
                    Ok(Some(value)) => tasks.push(TaskValue { task_id, value }),
                    Ok(None) => skipped.push(TaskError::new(
                        task_id,
                        "no observations since the previous scrape",
                    )),
                    Err(reason) => skipped.push(TaskError::new(task_id, reason)),
                }
            }
        }
    }
    let values: Vec<f64> = tasks.iter().map(|task| task.value).collect();
    let value = match (source.quantile, source.aggregate, merged.is_empty()) {
        (Some(q), Aggregate::Sum, false) => {
            histogram_quantile(q, &merged).map_err(MetricError::Empty)?
        }
        _ => aggregate(source.aggregate, &values),
    };
    match value {
        Some(value) => Ok(Reading {
            value,
            at,
            tasks,
            skipped,
        }),
        None if warming > 0 => Err(MetricError::WarmingUp(format!(
            "{} of {} answering tasks were scraped for the first time",
            warming,
            warming + tasks.len()
        ))),
        None => Err(MetricError::Empty(format!(
            "{} has no observations since the previous scrape in any task",
            source.metric
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn counter(value: f64) -> Selected {
        Selected::Counter(BTreeMap::from([(BTreeMap::new(), value)]))
    }

    fn previous(secs: i64, selected: Selected) -> Previous {
        Previous {
            at: at(secs),
            selected,
        }
    }

    #[test]
    fn counters_become_rates_and_resets_count_from_zero() {
        let before = previous(0, counter(100.0));
        assert_eq!(
            contribution(Some(&before), at(10), &counter(150.0), None),
            Ok(Contribution::Value(5.0))
        );
        assert_eq!(
            contribution(Some(&before), at(10), &counter(20.0), None),
            Ok(Contribution::Value(2.0))
        );
        assert_eq!(
            contribution(None, at(10), &counter(20.0), None),
            Ok(Contribution::WarmingUp)
        );
    }

    #[test]
    fn histograms_need_a_quantile_and_use_increases() {
        let series = |a: f64, b: f64| {
            Selected::Histogram(BTreeMap::from([(
                BTreeMap::new(),
                vec![(0.5, a), (f64::INFINITY, b)],
            )]))
        };
        let before = previous(0, series(10.0, 10.0));
        assert!(contribution(Some(&before), at(5), &series(10.0, 20.0), None).is_err());
        assert_eq!(
            contribution(Some(&before), at(5), &series(10.0, 20.0), Some(0.9)),
            Ok(Contribution::Buckets(vec![
                (0.5, 0.0),
                (f64::INFINITY, 10.0)
            ]))
        );
    }

    #[test]
    fn required_answers_rounds_up_the_share() {
        assert_eq!(required_answers(0.5, 3), 2);
        assert_eq!(required_answers(0.5, 4), 2);
        assert_eq!(required_answers(1.0, 3), 3);
        assert_eq!(required_answers(0.0, 3), 0);
    }
}
