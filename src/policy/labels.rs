//! The label codec: a service's `io.swarmpilot.*` labels to and from policies, overrides and
//! the operator's state. Every problem names the label it is in, and concerns only that service.
//!
//! A service has a policy when it carries `io.swarmpilot.policy` (a whole YAML document, or
//! only its `spec`) or any shorthand label (`min`, `max`, `cpu`, `memory`, `rps`). Both at once
//! is refused with a diagnostic rather than one silently winning: a user who adds
//! `io.swarmpilot.cpu=50` to a service with a full policy would otherwise see it ignored.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value as Yaml};

use super::diagnostic::{serde_path, Diagnostic, Diagnostics};
use super::duration::HumanDuration;
use super::parse::{load, policy_from_value, text_of};
use super::state::{Override, ScaleState};
use super::types::*;

/// The whole policy document (YAML), or only its `spec`.
pub const POLICY: &str = "io.swarmpilot.policy";
/// Shorthand: the minimum replica count (default 1).
pub const MIN: &str = "io.swarmpilot.min";
/// Shorthand: the maximum replica count (required with shorthand).
pub const MAX: &str = "io.swarmpilot.max";
/// Shorthand: target CPU utilization in percent, from Docker stats.
pub const CPU: &str = "io.swarmpilot.cpu";
/// Shorthand: target memory utilization in percent, from Docker stats.
pub const MEMORY: &str = "io.swarmpilot.memory";
/// Shorthand: target requests per second per replica, from Prometheus.
pub const RPS: &str = "io.swarmpilot.rps";
/// JSON [`Override`] written by the webhook and the CLI.
pub const OVERRIDE: &str = "io.swarmpilot.override";
/// JSON [`ScaleState`] written by the operator when it scales.
pub const STATE: &str = "io.swarmpilot.state";

/// The longest policy label accepted, in bytes (32 KiB, over ten times the longest example
/// policy). A longer label is refused before the YAML parser sees it.
pub const MAX_LABEL_BYTES: usize = 32 * 1024;

/// Every label swarmpilot reads; any other `io.swarmpilot.` label is reported as a typo.
pub const KNOWN: [&str; 8] = [POLICY, MIN, MAX, CPU, MEMORY, RPS, OVERRIDE, STATE];
pub(crate) const PREFIX: &str = "io.swarmpilot.";
/// The shorthand labels, each standing for part of a policy without YAML.
pub const SHORTHAND: [&str; 5] = [MIN, MAX, CPU, MEMORY, RPS];

/// The query the `io.swarmpilot.rps` shorthand reads.
pub const RPS_QUERY: &str = r#"sum(rate(http_requests_total{service="{{service}}"}[1m]))"#;

/// Whether the labels declare a policy, or try to: any `io.swarmpilot.` label other than the
/// operator's own records, so a misspelt shorthand label is reported rather than ignored.
pub fn has_policy(labels: &BTreeMap<String, String>) -> bool {
    labels
        .keys()
        .any(|key| key.starts_with(PREFIX) && key != OVERRIDE && key != STATE)
}

/// The policy that `service_name`'s labels declare: `None` when it has none.
pub fn decode(
    service_name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Option<ScalingPolicy>, Diagnostics> {
    let mut problems = unknown_labels(labels);
    let shorthand: Vec<&str> = SHORTHAND
        .into_iter()
        .filter(|name| labels.contains_key(*name))
        .collect();
    let policy = match (labels.get(POLICY), shorthand.is_empty()) {
        (None, true) => None,
        (Some(text), true) => match from_policy_label(service_name, text) {
            Ok(policy) => Some(policy),
            Err(found) => {
                problems.extend(found.0);
                None
            }
        },
        (Some(_), false) => {
            for name in shorthand {
                problems.push(Diagnostic::new(
                    format!("label {name}"),
                    format!("conflicts with label {POLICY}; put the whole policy in {POLICY} or use only shorthand labels"),
                ));
            }
            None
        }
        (None, false) => match from_shorthand(service_name, labels) {
            Ok(policy) => Some(policy),
            Err(found) => {
                problems.extend(found.0);
                None
            }
        },
    };
    Diagnostics::result(problems)?;
    Ok(policy)
}

/// The policy as the value of `io.swarmpilot.policy`: the whole document in YAML.
///
/// Enums are written in their `{variant: value}` form (`target: {averageValue: 50}`), not as
/// YAML tags, so the label reads like the policy file it came from.
pub fn encode(policy: &ScalingPolicy) -> String {
    // Through JSON: serde_yaml would write data-carrying enum variants as `!tags`.
    let value = serde_json::to_value(policy).expect("a ScalingPolicy always serializes");
    serde_yaml::to_string(&value).expect("a JSON value always serializes to YAML")
}

/// The override in `io.swarmpilot.override`, if any.
pub fn decode_override(labels: &BTreeMap<String, String>) -> Result<Option<Override>, Diagnostics> {
    decode_json(OVERRIDE, labels)
}

/// The value of `io.swarmpilot.override`.
pub fn encode_override(value: &Override) -> String {
    serde_json::to_string(value).expect("an Override always serializes to JSON")
}

/// The operator's state in `io.swarmpilot.state`, if any.
pub fn decode_state(labels: &BTreeMap<String, String>) -> Result<Option<ScaleState>, Diagnostics> {
    decode_json(STATE, labels)
}

/// The value of `io.swarmpilot.state`.
pub fn encode_state(value: &ScaleState) -> String {
    serde_json::to_string(value).expect("a ScaleState always serializes to JSON")
}

fn decode_json<T: DeserializeOwned>(
    label: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Option<T>, Diagnostics> {
    let Some(text) = labels.get(label) else {
        return Ok(None);
    };
    let where_ = format!("label {label}");
    text_of(text.as_bytes()).map_err(|found| found.within(&where_))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let at = match serde_path(error.path()) {
            path if path.is_empty() => path,
            path => format!(" at {path}"),
        };
        Diagnostics::one(
            format!("{where_}{at}"),
            format!("is not valid: {}", error.into_inner()),
        )
    })?;
    deserializer
        .end()
        .map_err(|error| Diagnostics::one(&where_, format!("is not valid: {error}")))?;
    Ok(Some(value))
}

fn unknown_labels(labels: &BTreeMap<String, String>) -> Vec<Diagnostic> {
    labels
        .keys()
        .filter(|name| name.starts_with(PREFIX) && !KNOWN.contains(&name.as_str()))
        .map(|name| {
            Diagnostic::new(
                format!("label {name}"),
                format!("unknown swarmpilot label; known: {}", KNOWN.join(", ")),
            )
        })
        .collect()
}

/// `io.swarmpilot.policy`: a whole document, or only a `spec` (then named after the service).
fn from_policy_label(service_name: &str, text: &str) -> Result<ScalingPolicy, Diagnostics> {
    let where_ = format!("label {POLICY}");
    if text.len() > MAX_LABEL_BYTES {
        return Err(Diagnostics::one(
            where_,
            format!(
                "is {} bytes, larger than the {MAX_LABEL_BYTES}-byte limit for a policy label",
                text.len()
            ),
        ));
    }
    let mut documents = load(text).map_err(|found| found.within(&where_))?;
    if documents.len() != 1 {
        return Err(Diagnostics::one(
            where_,
            format!("must hold one YAML document, found {}", documents.len()),
        ));
    }
    let value = documents.remove(0).1;
    let whole = matches!(&value, Yaml::Mapping(m)
        if ["apiVersion", "kind", "metadata", "spec"].iter().any(|k| m.contains_key(*k)));
    let value = if whole {
        value
    } else {
        document(service_name, value)
    };
    let at = format!("{where_} at");
    let policy =
        policy_from_value(value, None).map_err(|found| within_label(found, &where_, &at))?;
    if policy.service() != service_name {
        return Err(Diagnostics::one(
            format!("{at} spec.service"),
            format!(
                "targets service {:?} but is on service {service_name:?}; a policy label governs the service it is on",
                policy.service()
            ),
        ));
    }
    Ok(policy)
}

/// Paths inside the label read `label io.swarmpilot.policy at spec.maxReplicas`.
fn within_label(found: Diagnostics, label: &str, at: &str) -> Diagnostics {
    Diagnostics(
        found
            .0
            .into_iter()
            .map(|d| {
                let path = if d.path.is_empty() {
                    label.to_owned()
                } else {
                    format!("{at} {}", d.path)
                };
                Diagnostic::new(path, d.message)
            })
            .collect(),
    )
}

fn document(service_name: &str, spec: Yaml) -> Yaml {
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), service_name.into());
    let mut root = Mapping::new();
    root.insert("apiVersion".into(), API_VERSION.into());
    root.insert("kind".into(), KIND.into());
    root.insert("metadata".into(), Yaml::Mapping(metadata));
    root.insert("spec".into(), spec);
    Yaml::Mapping(root)
}

/// The shorthand labels as the equivalent policy.
fn from_shorthand(
    service_name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<ScalingPolicy, Diagnostics> {
    let mut problems = Vec::new();
    let min = match whole_number(labels, MIN, &mut problems) {
        Ok(given) => given.or(Some(1)),
        Err(()) => None,
    };
    let max = whole_number(labels, MAX, &mut problems).unwrap_or(None);
    if !labels.contains_key(MAX) {
        problems.push(Diagnostic::new(
            format!("label {MAX}"),
            "is required with shorthand labels (the upper bound of the replica count)",
        ));
    }
    let mut metrics = Vec::new();
    for (label, resource, name) in [
        (CPU, Resource::Cpu, "cpu"),
        (MEMORY, Resource::Memory, "memory"),
    ] {
        if let Some(target) = positive_number(labels, label, true, &mut problems) {
            metrics.push(MetricSpec {
                name: name.into(),
                prometheus: None,
                scrape: None,
                docker: Some(DockerSource { resource }),
                redis: None,
                rabbitmq: None,
                target: Target::Utilization(target),
                activation: None,
            });
        }
    }
    if let Some(target) = positive_number(labels, RPS, false, &mut problems) {
        metrics.push(MetricSpec {
            name: "rps".into(),
            prometheus: Some(PrometheusSource {
                query: RPS_QUERY.into(),
                server: None,
                treat_empty_as: None,
            }),
            scrape: None,
            docker: None,
            redis: None,
            rabbitmq: None,
            target: Target::AverageValue(target),
            activation: None,
        });
    }
    if ![CPU, MEMORY, RPS].iter().any(|l| labels.contains_key(*l)) {
        problems.push(Diagnostic::new(
            format!("label {MAX}"),
            format!("shorthand labels need at least one metric label: {CPU}, {MEMORY} or {RPS}"),
        ));
    }
    if !problems.is_empty() {
        return Err(Diagnostics(problems));
    }
    let (Some(min), Some(max)) = (min, max) else {
        return Err(Diagnostics::one(format!("label {MAX}"), "is missing"));
    };
    let policy = ScalingPolicy {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata {
            name: service_name.into(),
        },
        spec: PolicySpec {
            service: None,
            min_replicas: min,
            idle_replicas: None,
            cooldown_period: None,
            max_replicas: max,
            interval: HumanDuration::from_secs(15),
            mode: Mode::default(),
            metrics,
            observe: Vec::new(),
            forecast: None,
            anomaly: None,
            alerts: None,
            behavior: Behavior::default(),
            fallback: FallbackSpec::default(),
            schedules: Vec::new(),
        },
    };
    super::validate::validate(&policy)
        .map_err(|found| Diagnostics(found.0.into_iter().map(shorthand_path).collect()))?;
    Ok(policy)
}

/// A problem found in the policy built from shorthand, named by the label it came from.
fn shorthand_path(diagnostic: Diagnostic) -> Diagnostic {
    let label = match diagnostic.path.as_str() {
        "spec.minReplicas" => MIN,
        "spec.maxReplicas" => MAX,
        "metadata.name" => return Diagnostic::new("service name", diagnostic.message),
        _ => return diagnostic,
    };
    Diagnostic::new(format!("label {label}"), diagnostic.message)
}

/// `Ok(Some(n))` for a valid label, `Ok(None)` when absent, `Err(())` after reporting.
fn whole_number(
    labels: &BTreeMap<String, String>,
    label: &str,
    problems: &mut Vec<Diagnostic>,
) -> Result<Option<u32>, ()> {
    let Some(text) = labels.get(label) else {
        return Ok(None);
    };
    match text.trim().parse::<u32>() {
        Ok(n) => Ok(Some(n)),
        Err(_) => {
            problems.push(Diagnostic::new(
                format!("label {label}"),
                format!("must be a whole number, got {text:?}"),
            ));
            Err(())
        }
    }
}

/// A target number greater than 0; `percent` also accepts a trailing `%` (`70%`).
fn positive_number(
    labels: &BTreeMap<String, String>,
    label: &str,
    percent: bool,
    problems: &mut Vec<Diagnostic>,
) -> Option<f64> {
    let text = labels.get(label)?;
    let trimmed = text.trim();
    let number = if percent {
        trimmed.strip_suffix('%').unwrap_or(trimmed).trim()
    } else {
        trimmed
    };
    match number.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Some(value),
        _ => {
            let unit = if percent {
                " (a percentage, e.g. 70)"
            } else {
                ""
            };
            problems.push(Diagnostic::new(
                format!("label {label}"),
                format!("must be a number greater than 0{unit}, got {text:?}"),
            ));
            None
        }
    }
}
