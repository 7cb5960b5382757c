//! The Prometheus source: PromQL instant and range queries over the HTTP API.
//!
//! An instant query must come back as exactly one finite number: an empty vector is "no data"
//! (unless the policy set `treatEmptyAs`), several series are an error asking for an aggregation,
//! NaN and infinities are errors, and a rejected query shows the server's own message.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::finite;
use super::http::fetch;
use super::{MetricError, MetricSource, Reading};
use crate::decide::clip;
use crate::policy::PrometheusSource;
use crate::servers::{Auth, Outbound, ServerKind, Target};
use crate::swarm::ServiceInfo;

/// How the operator talks to Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusClientConfig {
    /// The server used by metrics that name none (`--prometheus-url`).
    pub default_url: Option<String>,
    /// Deadline for one query, answer included.
    pub timeout: Duration,
    /// Responses larger than this are dropped, counted while the body streams in.
    pub max_body_bytes: usize,
    /// Credentials, sent only to `default_url`: a policy label naming another server must not
    /// be a way to collect the operator's token.
    pub auth: Option<PrometheusAuth>,
    /// The servers a policy may name (`server`), and the allow-list of raw URLs. `default_url`
    /// joins it as the server called `default`.
    pub outbound: Outbound,
}

/// The bytes one Prometheus answer may hold. An instant query's answer is a few hundred bytes,
/// a range query's 10,000 points about 300 KB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

impl Default for PrometheusClientConfig {
    fn default() -> Self {
        PrometheusClientConfig {
            default_url: None,
            timeout: Duration::from_secs(10),
            max_body_bytes: MAX_BODY_BYTES,
            auth: None,
            outbound: Outbound::default(),
        }
    }
}

/// Credentials read from files, re-read on every query so a rotated secret takes effect
/// without a restart: the same [`Auth`] every registered server has.
pub type PrometheusAuth = Auth;

/// One sample of a query's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// A Prometheus HTTP API client.
#[derive(Clone, Debug)]
pub struct PrometheusClient {
    http: reqwest::Client,
    config: PrometheusClientConfig,
    /// `config.outbound` with the default server registered.
    outbound: Outbound,
}

/// The name `--prometheus-url` is registered under.
pub const DEFAULT_SERVER: &str = "default";

/// Prometheus refuses range queries of more than 11,000 points per series; stay below.
const MAX_POINTS_PER_RANGE_QUERY: i64 = 10_000;

impl MetricSource for PrometheusClient {
    type Spec = PrometheusSource;

    /// A policy's Prometheus metric for a service: placeholders filled, one number back.
    async fn read(
        &self,
        service: &ServiceInfo,
        _metric: &str,
        source: &PrometheusSource,
    ) -> Result<Reading, MetricError> {
        let query = fill_placeholders(&source.query, &service.name, service.stack.as_deref())?;
        let sample = self
            .instant(source.server.as_deref(), &query, source.treat_empty_as)
            .await?;
        Ok(Reading {
            value: sample.value,
            at: sample.at,
            tasks: Vec::new(),
            skipped: Vec::new(),
        })
    }
}

impl PrometheusClient {
    pub fn new(config: PrometheusClientConfig) -> Result<Self, MetricError> {
        let outbound = match &config.default_url {
            Some(url) => config.outbound.clone().with_server(
                DEFAULT_SERVER,
                ServerKind::Prometheus,
                url,
                config.auth.clone(),
            )?,
            None => config.outbound.clone(),
        };
        let http = outbound.client(config.timeout)?;
        Ok(PrometheusClient {
            http,
            config,
            outbound,
        })
    }

    /// The outbound rule this client follows, the default server included.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    pub fn config(&self) -> &PrometheusClientConfig {
        &self.config
    }

    /// A policy's Prometheus metric for a service over `[start, end]` every `step`, oldest first
    /// (the history [`MetricSource::read`] would have given): placeholders filled, at most one
    /// series, an empty result an empty list.
    pub async fn read_range(
        &self,
        service: &ServiceInfo,
        source: &PrometheusSource,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Sample>, MetricError> {
        let query = fill_placeholders(&source.query, &service.name, service.stack.as_deref())?;
        self.range(source.server.as_deref(), &query, start, end, step)
            .await
    }

    /// Evaluate an instant query that must yield a single finite number.
    pub async fn instant(
        &self,
        server: Option<&str>,
        query: &str,
        treat_empty_as: Option<f64>,
    ) -> Result<Sample, MetricError> {
        let base = self.server(server)?;
        let data = self
            .api(&base, "query", &[("query", query.to_owned())])
            .await?;
        let sample = match data {
            Data::Scalar(point) | Data::String(point) => point.sample()?,
            Data::Vector(series) => match series.as_slice() {
                [] => match treat_empty_as {
                    Some(value) => Sample {
                        at: Utc::now(),
                        value,
                    },
                    None => {
                        return Err(MetricError::NoData {
                            query: query.to_owned(),
                        })
                    }
                },
                [one] => one.value.sample()?,
                many => {
                    return Err(MetricError::TooManySeries {
                        query: query.to_owned(),
                        series: many.len(),
                    })
                }
            },
            Data::Matrix(_) => {
                return Err(MetricError::Query {
                    kind: "matrix".into(),
                    message: format!(
                        "query {query:?} returned a range vector; use an instant expression such as rate(...[1m])"
                    ),
                })
            }
        };
        finite(sample.value)?;
        Ok(sample)
    }

    /// Evaluate a range query that yields at most one series; an empty result is an empty list.
    /// Long ranges are split so no request exceeds Prometheus' per-query point limit.
    pub async fn range(
        &self,
        server: Option<&str>,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<Sample>, MetricError> {
        let base = self.server(server)?;
        let step = chrono::Duration::from_std(step)
            .ok()
            .filter(|step| *step > chrono::Duration::zero())
            .ok_or_else(|| MetricError::InvalidSource(format!("step {step:?} must be positive")))?;
        let mut samples = Vec::new();
        let mut chunk_start = start;
        while chunk_start <= end {
            let chunk_end = (chunk_start + step * (MAX_POINTS_PER_RANGE_QUERY - 1) as i32).min(end);
            let params = [
                ("query", query.to_owned()),
                ("start", rfc3339(chunk_start)),
                ("end", rfc3339(chunk_end)),
                ("step", format!("{}ms", step.num_milliseconds())),
            ];
            let series = match self.api(&base, "query_range", &params).await? {
                Data::Matrix(series) => series,
                _ => {
                    return Err(MetricError::BadResponse {
                        url: base.url.to_string(),
                        reason: "query_range did not return a matrix".into(),
                    })
                }
            };
            match series.as_slice() {
                [] => {}
                [one] => {
                    for point in &one.values {
                        samples.push(point.sample()?);
                    }
                }
                many => {
                    return Err(MetricError::TooManySeries {
                        query: query.to_owned(),
                        series: many.len(),
                    })
                }
            }
            chunk_start = chunk_end + step;
        }
        Ok(samples)
    }

    /// Where a metric's `server` leads; the default server when it names none.
    fn server(&self, server: Option<&str>) -> Result<Target, MetricError> {
        match server {
            Some(reference) => Ok(self.outbound.resolve(ServerKind::Prometheus, reference)?),
            None if self.config.default_url.is_none() => Err(MetricError::InvalidSource(
                "no Prometheus server: set `server` on the metric or start with --prometheus-url"
                    .into(),
            )),
            None => Ok(self
                .outbound
                .resolve(ServerKind::Prometheus, DEFAULT_SERVER)?),
        }
    }

    async fn api(
        &self,
        base: &Target,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> Result<Data, MetricError> {
        let url = format!(
            "{}/api/v1/{endpoint}",
            base.url.as_str().trim_end_matches('/')
        );
        let mut request = self.http.get(&url).query(params);
        // Credentials only ever go to the registered server they belong to.
        if let Some(auth) = &base.auth {
            request = auth.apply(request)?;
        }
        let (status, body) = fetch(
            request,
            &url,
            self.config.timeout,
            self.config.max_body_bytes,
        )
        .await?;
        // The body is not quoted: a policy must not be able to read an address's answer
        // through the status API. Only Prometheus' own error fields are shown, clipped.
        let envelope: Envelope =
            serde_json::from_slice(&body).map_err(|error| MetricError::BadResponse {
                url: url.clone(),
                reason: format!(
                    "HTTP {status}, the body is not a Prometheus API answer ({})",
                    json_problem(&error)
                ),
            })?;
        match (envelope.status.as_str(), envelope.data) {
            ("success", Some(data)) => Ok(data),
            _ => Err(MetricError::Query {
                kind: clip(
                    &envelope
                        .error_type
                        .unwrap_or_else(|| format!("HTTP {status}")),
                    32,
                ),
                message: clip(
                    &envelope
                        .error
                        .unwrap_or_else(|| "the server gave no error message".into()),
                    200,
                ),
            }),
        }
    }
}

/// Replace `{{service}}` and `{{stack}}`. The values are escaped for a PromQL string literal,
/// which is where they belong (`{service="{{service}}"}`).
pub fn fill_placeholders(
    query: &str,
    service: &str,
    stack: Option<&str>,
) -> Result<String, MetricError> {
    let mut filled = query.replace("{{service}}", &promql_escape(service));
    if filled.contains("{{stack}}") {
        let stack = stack.ok_or_else(|| {
            MetricError::InvalidSource(format!(
                "the query uses {{{{stack}}}} but service {service} was not deployed as part of a stack"
            ))
        })?;
        filled = filled.replace("{{stack}}", &promql_escape(stack));
    }
    Ok(filled)
}

fn promql_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// What is wrong with a JSON body, in words that quote none of it (serde_json's messages quote
/// the offending values).
pub(crate) fn json_problem(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of another shape",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<VectorSeries>),
    Matrix(Vec<MatrixSeries>),
    Scalar(Point),
    String(Point),
}

#[derive(Deserialize)]
struct VectorSeries {
    value: Point,
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    values: Vec<Point>,
}

/// `[unix seconds, "value"]`, Prometheus' encoding of one sample.
#[derive(Deserialize)]
struct Point(f64, String);

impl Point {
    fn sample(&self) -> Result<Sample, MetricError> {
        let at =
            DateTime::from_timestamp_millis((self.0 * 1000.0).round() as i64).ok_or_else(|| {
                MetricError::BadResponse {
                    url: String::new(),
                    reason: format!("timestamp {} is out of range", self.0),
                }
            })?;
        let value = parse_value(&self.1).ok_or_else(|| MetricError::BadResponse {
            url: String::new(),
            reason: format!("sample value {:?} is not a number", self.1),
        })?;
        Ok(Sample { at, value })
    }
}

/// Prometheus writes `NaN`, `+Inf` and `-Inf`; Rust's parser wants other spellings.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_escaped() {
        let query = r#"sum(rate(x{service="{{service}}",stack="{{stack}}"}[1m]))"#;
        assert_eq!(
            fill_placeholders(query, "shop_web", Some("shop")).unwrap(),
            r#"sum(rate(x{service="shop_web",stack="shop"}[1m]))"#
        );
        assert_eq!(
            fill_placeholders("{{service}}", r#"a"b"#, None).unwrap(),
            r#"a\"b"#
        );
    }

    #[test]
    fn stack_placeholder_without_a_stack_is_an_error_naming_the_service() {
        let error = fill_placeholders("x{stack=\"{{stack}}\"}", "web", None).unwrap_err();
        assert!(error.to_string().contains("{{stack}}"), "{error}");
        assert!(error.to_string().contains("web"), "{error}");
    }

    #[test]
    fn prometheus_value_spellings_parse() {
        assert!(parse_value("NaN").unwrap().is_nan());
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("1.5e3"), Some(1500.0));
        assert_eq!(parse_value("abc"), None);
    }

    #[test]
    fn api_answers_decode() {
        let vector: Envelope = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1700000000.5,"2.5"]}]}}"#,
        )
        .unwrap();
        match vector.data {
            Some(Data::Vector(series)) => {
                let sample = series[0].value.sample().unwrap();
                assert_eq!(sample.value, 2.5);
                assert_eq!(sample.at.timestamp_millis(), 1_700_000_000_500);
            }
            _ => panic!("not a vector"),
        }
        let scalar: Envelope = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}}"#,
        )
        .unwrap();
        assert!(matches!(scalar.data, Some(Data::Scalar(Point(_, ref v))) if v == "7"));
        let error: Envelope = serde_json::from_str(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .unwrap();
        assert_eq!(error.error.as_deref(), Some("parse error"));
    }
}
