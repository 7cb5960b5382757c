//! The one entry point the reconcile loop uses: read a policy metric from whichever source it
//! names, through that source's [`MetricSource`] reader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use super::{
    AgentConfig, DockerReader, MetricError, MetricSource, PrometheusClient, PrometheusClientConfig,
    RabbitmqReader, Reading, RedisReader, ScrapeConfig, ScrapeReader, SwarmTargets, Targets,
};
use crate::policy::{PolicySpec, Source};
use crate::swarm::{ServiceInfo, Swarm};

/// How many metrics of one policy are read at once: a policy with many metrics waits for its
/// own reads rather than opening many connections at a time.
pub const MAX_READS_PER_POLICY: usize = 4;

/// The outcome of reading one named metric of a policy.
#[derive(Debug)]
pub struct MetricReading {
    pub name: String,
    pub result: Result<Reading, MetricError>,
    /// How long the read took (up to the deadline), for the read-latency histogram.
    pub took: Duration,
}

/// Reads metrics from the three sources. Keep one per process: the scrape and Docker sources
/// remember previous samples to compute rates, so a fresh `Observer` starts warming up again.
pub struct Observer<S, T = SwarmTargets<S>> {
    prometheus: PrometheusClient,
    redis: RedisReader,
    rabbitmq: RabbitmqReader,
    scrape: ScrapeReader<T>,
    docker: DockerReader<S>,
}

impl<S: Swarm> Observer<S, SwarmTargets<S>> {
    /// Scrape targets and container stats both come from `swarm`.
    pub fn new(
        swarm: Arc<S>,
        prometheus: PrometheusClientConfig,
        scrape: ScrapeConfig,
    ) -> Result<Self, MetricError> {
        let docker = DockerReader::new(swarm.clone(), scrape.timeout, scrape.concurrency);
        Ok(Observer::from_parts(
            PrometheusClient::new(prometheus)?,
            ScrapeReader::new(SwarmTargets::new(swarm), scrape)?,
            docker,
        ))
    }
}

impl<S: Swarm, T: Targets> Observer<S, T> {
    /// Reads Docker engine stats through the node agents (see [`super::agents`]).
    pub fn with_agents(mut self, agents: AgentConfig) -> Result<Self, MetricError> {
        self.docker = self.docker.with_agents(agents)?;
        Ok(self)
    }

    /// Assemble from parts, e.g. with [`super::StaticTargets`] for scrape targets on the host.
    pub fn from_parts(
        prometheus: PrometheusClient,
        scrape: ScrapeReader<T>,
        docker: DockerReader<S>,
    ) -> Self {
        // The queue readers follow the Prometheus client's outbound rule: one registry.
        let outbound = prometheus.outbound().clone();
        Observer {
            prometheus,
            redis: RedisReader::new(outbound.clone()),
            rabbitmq: RabbitmqReader::new(outbound),
            scrape,
            docker,
        }
    }

    /// The Prometheus client, for range queries over a metric's past (the start-up backfill).
    pub fn prometheus(&self) -> &PrometheusClient {
        &self.prometheus
    }

    /// Read one metric of `service` from `source`; `name` keys the rate history.
    pub async fn read(
        &self,
        service: &ServiceInfo,
        name: &str,
        source: Option<Source<'_>>,
    ) -> Result<Reading, MetricError> {
        // The one place a policy source meets its reader: a new `Source` variant fails to
        // compile here until it has a reader.
        match source {
            Some(Source::Prometheus(spec)) => self.prometheus.read(service, name, spec).await,
            Some(Source::Scrape(spec)) => self.scrape.read(service, name, spec).await,
            Some(Source::Docker(spec)) => self.docker.read(service, name, spec).await,
            Some(Source::Redis(spec)) => self.redis.read(service, name, spec).await,
            Some(Source::Rabbitmq(spec)) => self.rabbitmq.read(service, name, spec).await,
            None => Err(MetricError::InvalidSource(format!(
                "metric {name} must set exactly one of prometheus, scrape, docker, redis, rabbitmq"
            ))),
        }
    }

    /// The outbound rule of the Prometheus reads (and of notifications): who a policy may name.
    pub fn outbound(&self) -> &crate::servers::Outbound {
        self.prometheus.outbound()
    }

    /// Read every metric of the policy, `metrics` then `observe`, at most
    /// [`MAX_READS_PER_POLICY`] at once, each bounded by `deadline` from when it starts.
    pub async fn read_policy(
        &self,
        service: &ServiceInfo,
        spec: &PolicySpec,
        deadline: Duration,
    ) -> Vec<MetricReading> {
        let permits = Semaphore::new(MAX_READS_PER_POLICY);
        let permits = &permits;
        join_all(
            policy_sources(spec)
                .into_iter()
                .map(|(name, source)| async move {
                    // Never closed, so acquiring fails only if it were; read anyway then.
                    let _turn = permits.acquire().await.ok();
                    let started = Instant::now();
                    let result = tokio::time::timeout(deadline, self.read(service, name, source))
                        .await
                        .unwrap_or_else(|_| {
                            Err(MetricError::Timeout {
                                url: format!("metric {name}"),
                                timeout: deadline,
                            })
                        });
                    MetricReading {
                        name: name.to_owned(),
                        result,
                        took: started.elapsed(),
                    }
                }),
        )
        .await
    }
}

/// Every named signal of a policy with its source: `metrics` first, then `observe`, in order.
pub fn policy_sources(spec: &PolicySpec) -> Vec<(&str, Option<Source<'_>>)> {
    spec.metrics
        .iter()
        .map(|metric| (metric.name.as_str(), metric.source()))
        .chain(
            spec.observe
                .iter()
                .map(|metric| (metric.name.as_str(), metric.source())),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::routing::get;
    use axum::{Json, Router};

    use super::*;
    use crate::webhook::tests::FakeSwarm;

    /// Requests being answered now, and the most at once.
    #[derive(Default)]
    struct Load {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    /// A Prometheus that holds each query a moment, counting how many it holds at once.
    async fn slow_prometheus(load: Arc<Load>) -> String {
        let app = Router::new()
            .route(
                "/api/v1/query",
                get(|State(load): State<Arc<Load>>| async move {
                    let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
                    load.most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    load.now.fetch_sub(1, Ordering::SeqCst);
                    Json(serde_json::json!({
                        "status": "success",
                        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}
                    }))
                }),
            )
            .with_state(load);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn a_policy_reads_at_most_a_few_metrics_at_once() {
        let load = Arc::new(Load::default());
        let url = slow_prometheus(Arc::clone(&load)).await;
        let observer = Observer::new(
            Arc::new(FakeSwarm::default()),
            PrometheusClientConfig {
                default_url: Some(url),
                ..Default::default()
            },
            ScrapeConfig::default(),
        )
        .unwrap();
        let metrics: String = (0..16)
            .map(|i| format!("    - name: m{i}\n      prometheus: {{query: up}}\n      target: {{averageValue: 1}}\n"))
            .collect();
        let text = format!(
            "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  maxReplicas: 4\n  metrics:\n{metrics}"
        );
        let policy = crate::policy::parse_documents(&text).unwrap().remove(0);
        let readings = observer
            .read_policy(
                &ServiceInfo::default(),
                &policy.spec,
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(readings.len(), 16);
        assert!(
            readings.iter().all(|reading| reading.result.is_ok()),
            "{readings:?}"
        );
        assert_eq!(load.most.load(Ordering::SeqCst), MAX_READS_PER_POLICY);
    }
}
