//! `swarmpilot metrics SERVICE`: what each metric of a service's policy reads right now, with
//! per-task values and every error spelled out: the first thing to look at when scaling misbehaves.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::observer::policy_sources;
use super::{AgentConfig, MetricError, Observer, PrometheusClientConfig, Reading, ScrapeConfig};
use crate::policy::{labels, Diagnostics, Source};
use crate::swarm::{ServiceInfo, Swarm, SwarmError};

/// Why the metrics of a service could not be inspected at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    #[error("service {0} has no policy: label it with {policy} or the shorthand labels", policy = labels::POLICY)]
    NoPolicy(String),
    #[error("the policy on service {service} is invalid:\n{diagnostics}")]
    InvalidPolicy {
        service: String,
        diagnostics: Diagnostics,
    },
    #[error(transparent)]
    Metric(#[from] MetricError),
}

/// One metric of the policy and what it read.
#[derive(Debug)]
pub struct MetricReport {
    pub name: String,
    /// The source in a few words (`prometheus: sum(rate(...))`, `docker: cpu`).
    pub source: String,
    pub result: Result<Reading, MetricError>,
}

/// Every metric of one service's policy.
#[derive(Debug)]
pub struct ServiceReport {
    pub service: ServiceInfo,
    pub policy: String,
    pub metrics: Vec<MetricReport>,
}

impl ServiceReport {
    /// How many metrics have no value.
    pub fn failed(&self) -> usize {
        self.metrics.iter().filter(|m| m.result.is_err()).count()
    }
}

/// Read every metric of `service`'s policy. Rates need two samples: metrics still warming up
/// after the first read are read again after `warmup`.
pub async fn inspect<S: Swarm>(
    swarm: Arc<S>,
    service: &str,
    prometheus: PrometheusClientConfig,
    agents: Option<AgentConfig>,
    warmup: Duration,
) -> Result<ServiceReport, InspectError> {
    let info = swarm.inspect_service(service).await?;
    let policy = labels::decode(&info.name, &info.labels)
        .map_err(|diagnostics| InspectError::InvalidPolicy {
            service: info.name.clone(),
            diagnostics,
        })?
        .ok_or_else(|| InspectError::NoPolicy(info.name.clone()))?;
    let scrape = ScrapeConfig::default();
    let deadline = prometheus.timeout.max(scrape.timeout) * 2;
    let mut observer = Observer::new(swarm, prometheus, scrape)?;
    if let Some(agents) = agents {
        observer = observer.with_agents(agents)?;
    }
    let mut metrics = Vec::new();
    for (name, source) in policy_sources(&policy.spec) {
        metrics.push(MetricReport {
            name: name.to_owned(),
            source: describe(source),
            result: read(&observer, &info, name, source, deadline).await,
        });
    }
    if metrics
        .iter()
        .any(|m| matches!(m.result, Err(MetricError::WarmingUp(_))))
    {
        tokio::time::sleep(warmup).await;
        let sources = policy_sources(&policy.spec);
        for (report, (name, source)) in metrics.iter_mut().zip(sources) {
            if matches!(report.result, Err(MetricError::WarmingUp(_))) {
                report.result = read(&observer, &info, name, source, deadline).await;
            }
        }
    }
    Ok(ServiceReport {
        policy: policy.metadata.name.clone(),
        service: info,
        metrics,
    })
}

async fn read<S: Swarm>(
    observer: &Observer<S>,
    service: &ServiceInfo,
    name: &str,
    source: Option<Source<'_>>,
    deadline: Duration,
) -> Result<Reading, MetricError> {
    tokio::time::timeout(deadline, observer.read(service, name, source))
        .await
        .unwrap_or_else(|_| {
            Err(MetricError::Timeout {
                url: format!("metric {name}"),
                timeout: deadline,
            })
        })
}

fn describe(source: Option<Source<'_>>) -> String {
    source.map_or_else(
        || "no single source".to_owned(),
        |source| source.to_string(),
    )
}

impl fmt::Display for ServiceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let replicas = self
            .service
            .replicas
            .map_or("global".to_owned(), |n| format!("{n} replicas"));
        writeln!(
            f,
            "service {} ({replicas}), policy {}",
            self.service.name, self.policy
        )?;
        for metric in &self.metrics {
            writeln!(f, "\n{}  [{}]", metric.name, metric.source)?;
            match &metric.result {
                Ok(reading) => {
                    writeln!(
                        f,
                        "  value {}  at {}",
                        reading.value,
                        reading
                            .at
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    )?;
                    for task in &reading.tasks {
                        writeln!(f, "  task {}  {}", task.task_id, task.value)?;
                    }
                    for skipped in &reading.skipped {
                        writeln!(f, "  skipped {skipped}")?;
                    }
                }
                Err(error) => writeln!(f, "  ERROR {error}")?,
            }
        }
        Ok(())
    }
}
