//! Policies in a compose file's `deploy.labels`, and what a redeploy must carry over so it keeps
//! what the operator owns. Pure: the caller reads the files and the running services.
//!
//! `docker stack deploy` replaces each service's spec with the file's: replicas go back to the
//! file's `deploy.replicas` (1 when it names none) and every label the file does not name is
//! dropped, the operator's state, overrides and a policy written by `swarmpilot apply` among
//! them. [`carry_over`] works out, for each service of the stack with a policy, the replica count
//! and labels to deploy instead; [`overlay`] writes them as one more compose file, so the files
//! given stay untouched (relative paths, variables and unknown keys included).

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value as Yaml};

use super::labels::{self, OVERRIDE, POLICY, SHORTHAND, STATE};
use super::{Diagnostic, Diagnostics, PolicySpec, ScalingPolicy};

/// One service of a compose file (or of several, merged in order), as far as scaling goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComposeService {
    /// The service's key in the file; a stack deploys it as `STACK_KEY`.
    pub key: String,
    /// `deploy.labels`, in either of its forms.
    pub labels: BTreeMap<String, String>,
    /// `deploy.replicas`, when the file names one.
    pub replicas: Option<u64>,
}

/// Whether a YAML document is a compose file rather than a policy: a `services` mapping and no
/// `kind`.
pub fn is_compose(document: &Yaml) -> bool {
    matches!(document, Yaml::Mapping(root)
        if root.get("services").is_some_and(Yaml::is_mapping) && !root.contains_key("kind"))
}

/// The services of one compose document, with each problem naming the service and field.
pub fn services(document: &Yaml) -> Result<Vec<ComposeService>, Diagnostics> {
    let Some(Yaml::Mapping(services)) = document.get("services") else {
        return Err(Diagnostics::one(
            "services",
            "must be a mapping of services",
        ));
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (key, service) in services {
        let Some(key) = key.as_str() else {
            problems.push(Diagnostic::new("services", "service names must be strings"));
            continue;
        };
        let path = format!("services.{key}");
        let deploy = service.get("deploy");
        let labels = match deploy.and_then(|d| d.get("labels")) {
            None | Some(Yaml::Null) => Ok(BTreeMap::new()),
            Some(labels) => deploy_labels(labels, &format!("{path}.deploy.labels")),
        };
        let replicas = match deploy.and_then(|d| d.get("replicas")) {
            None | Some(Yaml::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                Diagnostic::new(
                    format!("{path}.deploy.replicas"),
                    format!("must be a whole number, got {}", show(value)),
                )
            }),
        };
        match (labels, replicas) {
            (Ok(labels), Ok(replicas)) => found.push(ComposeService {
                key: key.to_owned(),
                labels,
                replicas,
            }),
            (labels, replicas) => {
                problems.extend(labels.err().into_iter().flat_map(|d| d.0));
                problems.extend(replicas.err());
            }
        }
    }
    Diagnostics::result(problems)?;
    Ok(found)
}

/// The services of several compose files deployed together: a later file's labels and replica
/// count override an earlier one's, as `docker stack deploy -c a.yml -c b.yml` merges them.
pub fn merge(files: Vec<Vec<ComposeService>>) -> Vec<ComposeService> {
    let mut merged: Vec<ComposeService> = Vec::new();
    for service in files.into_iter().flatten() {
        match merged.iter_mut().find(|s| s.key == service.key) {
            Some(known) => {
                known.labels.extend(service.labels);
                known.replicas = service.replicas.or(known.replicas);
            }
            None => merged.push(service),
        }
    }
    merged
}

/// `deploy.labels` as a map, from `{key: value}` or `["key=value"]`.
fn deploy_labels(labels: &Yaml, path: &str) -> Result<BTreeMap<String, String>, Diagnostics> {
    let mut found = BTreeMap::new();
    let mut problems = Vec::new();
    match labels {
        Yaml::Mapping(map) => {
            for (key, value) in map {
                match (key.as_str(), scalar(value)) {
                    (Some(key), Some(value)) => {
                        found.insert(key.to_owned(), value);
                    }
                    (Some(key), None) => problems.push(Diagnostic::new(
                        format!("{path}.{key}"),
                        "must be a string (quote YAML documents with `|`)",
                    )),
                    (None, _) => {
                        problems.push(Diagnostic::new(path, "label names must be strings"))
                    }
                }
            }
        }
        Yaml::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                match item.as_str().map(|text| text.split_once('=')) {
                    Some(Some((key, value))) => {
                        found.insert(key.to_owned(), value.to_owned());
                    }
                    Some(None) => {
                        // `- key` alone is a label with an empty value, as the CLI reads it.
                        found.insert(item.as_str().unwrap_or_default().to_owned(), String::new());
                    }
                    None => problems.push(Diagnostic::new(
                        format!("{path}[{index}]"),
                        format!("must be a `key=value` string, got {}", show(item)),
                    )),
                }
            }
        }
        other => problems.push(Diagnostic::new(
            path,
            format!(
                "must be a mapping or a list of `key=value`, got {}",
                show(other)
            ),
        )),
    }
    Diagnostics::result(problems)?;
    Ok(found)
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) => Some(text.clone()),
        Yaml::Number(number) => Some(number.to_string()),
        Yaml::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A value as YAML text, cut short: for diagnostics.
fn show(value: &Yaml) -> String {
    let text = serde_yaml::to_string(value).unwrap_or_default();
    let text = text.trim();
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The name a stack gives a compose service.
pub fn stack_service_name(stack: &str, key: &str) -> String {
    format!("{stack}_{key}")
}

/// The policy a compose service declares, checked as the operator will check it on the
/// deployed service `service_name`. Problems name the service and the field.
pub fn policy_of(
    service: &ComposeService,
    service_name: &str,
) -> Result<Option<ScalingPolicy>, Diagnostics> {
    labels::decode(service_name, &service.labels).map_err(|found| {
        let base = format!("services.{}.deploy.labels", service.key);
        Diagnostics(
            found
                .0
                .into_iter()
                .map(|d| Diagnostic::new(in_labels(&base, &d.path), d.message))
                .collect(),
        )
    })
}

/// A label decoder's path (`label io.swarmpilot.policy at spec.maxReplicas`) as a path in the
/// compose file (`services.web.deploy.labels[io.swarmpilot.policy] at spec.maxReplicas`).
fn in_labels(base: &str, path: &str) -> String {
    let Some(inner) = path.strip_prefix("label ") else {
        return if path.is_empty() {
            base.to_owned()
        } else {
            format!("{base} {path}")
        };
    };
    match inner.split_once(' ') {
        Some((label, rest)) => format!("{base}[{label}] {rest}"),
        None => format!("{base}[{inner}]"),
    }
}

/// The policies of a compose file for `validate`, each checked as it will be once deployed.
/// Without the stack's name, a policy naming `spec.service` is taken to be deployed under that
/// name when it ends in `_KEY`, as a stack names its services.
pub fn validate(services: &[ComposeService]) -> Result<Vec<ScalingPolicy>, Diagnostics> {
    let mut policies = Vec::new();
    let mut problems = Vec::new();
    for service in services {
        let name = named_service(service).unwrap_or_else(|| service.key.clone());
        match policy_of(service, &name) {
            Ok(Some(policy)) => policies.push(policy),
            Ok(None) => {}
            Err(found) => problems.extend(found.0),
        }
    }
    Diagnostics::result(problems)?;
    Ok(policies)
}

/// The `spec.service` a whole policy document in the label names, when it is this compose
/// service deployed in some stack.
fn named_service(service: &ComposeService) -> Option<String> {
    let text = service.labels.get(POLICY)?;
    let document = super::load_yaml(text).ok()?;
    let named = document.get("spec")?.get("service")?.as_str()?;
    named
        .strip_suffix(&service.key)
        .is_some_and(|stack| stack.ends_with('_') && stack.len() > 1)
        .then(|| named.to_owned())
}

/// What a running service of the stack holds that a redeploy would lose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Running {
    pub labels: BTreeMap<String, String>,
    /// The replica count; `None` for a global service.
    pub replicas: Option<u64>,
}

/// What to deploy for one compose service instead of what its file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Carried {
    pub key: String,
    /// The running count, within the bounds of the policy being deployed.
    pub replicas: u64,
    /// The operator's labels from the running service that the files do not name.
    pub labels: BTreeMap<String, String>,
}

/// For each compose service of `stack` that has a policy (in the files or on the running
/// service), the replica count and operator labels to deploy, so a redeploy removes no task and
/// drops no state, override or policy. The file's policy, when it has one, is the one that
/// applies: its bounds clip the running count, and the running service's policy labels are not
/// carried beside it. A service not running yet, or global, deploys as the file says.
pub fn carry_over(
    stack: &str,
    services: &[ComposeService],
    running: &BTreeMap<String, Running>,
) -> Result<Vec<Carried>, Diagnostics> {
    let mut carried = Vec::new();
    let mut problems = Vec::new();
    for service in services {
        let name = stack_service_name(stack, &service.key);
        let Some(Running {
            labels: now,
            replicas: Some(replicas),
        }) = running.get(&name)
        else {
            continue;
        };
        let labels = kept_labels(now, &service.labels);
        let mut deployed = service.clone();
        deployed.labels.extend(labels.clone());
        let policy = match policy_of(&deployed, &name) {
            Ok(Some(policy)) => policy,
            Ok(None) => continue,
            Err(found) => {
                problems.extend(found.0);
                continue;
            }
        };
        let replicas = kept_replicas(&policy.spec, *replicas);
        carried.push(Carried {
            key: service.key.clone(),
            replicas,
            labels,
        });
    }
    Diagnostics::result(problems)?;
    Ok(carried)
}

fn is_policy_label(key: &str) -> bool {
    key == POLICY || SHORTHAND.contains(&key)
}

/// The operator's labels of `before` that a spec with labels `after` lacks and a redeploy must
/// keep: the state and the override, and the policy labels unless `after` declares a policy of
/// its own (then that one applies).
pub fn kept_labels(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let after_has_policy = after.keys().any(|key| is_policy_label(key));
    before
        .iter()
        .filter(|(key, _)| {
            let owned =
                *key == STATE || *key == OVERRIDE || (!after_has_policy && is_policy_label(key));
            owned && !after.contains_key(*key)
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The replica count a redeploy keeps: the running one within the bounds of the policy being
/// deployed. A service someone turned off (0 replicas, `minReplicas` above 0) stays off, as the
/// operator leaves it (HPA's rule).
pub fn kept_replicas(spec: &PolicySpec, running: u64) -> u64 {
    let (min, max) = (u64::from(spec.min_replicas), u64::from(spec.max_replicas));
    if running == 0 && min > 0 {
        0
    } else {
        running.clamp(min, max)
    }
}

/// One more compose file that sets what `carried` says on top of the files given: deployed
/// last, it overrides their `deploy.replicas` and adds to their `deploy.labels`. `version` is
/// the files' own `version`, when they name one.
pub fn overlay(carried: &[Carried], version: Option<&Yaml>) -> Yaml {
    let mut services = Mapping::new();
    for service in carried {
        let mut deploy = Mapping::new();
        deploy.insert("replicas".into(), service.replicas.into());
        if !service.labels.is_empty() {
            let labels: Mapping = service
                .labels
                .iter()
                .map(|(key, value)| (Yaml::from(key.as_str()), Yaml::from(value.as_str())))
                .collect();
            deploy.insert("labels".into(), Yaml::Mapping(labels));
        }
        let mut entry = Mapping::new();
        entry.insert("deploy".into(), Yaml::Mapping(deploy));
        services.insert(service.key.as_str().into(), Yaml::Mapping(entry));
    }
    let mut root = Mapping::new();
    if let Some(version) = version {
        root.insert("version".into(), version.clone());
    }
    root.insert("services".into(), Yaml::Mapping(services));
    Yaml::Mapping(root)
}

/// The `deploy.labels` a stack file needs to keep `policy` on its service across redeploys.
pub fn labels_snippet(key: &str, policy: &ScalingPolicy) -> String {
    let mut labels = Mapping::new();
    labels.insert(POLICY.into(), labels::encode(policy).into());
    let mut deploy = Mapping::new();
    deploy.insert("labels".into(), Yaml::Mapping(labels));
    let mut service = Mapping::new();
    service.insert("deploy".into(), Yaml::Mapping(deploy));
    let mut services = Mapping::new();
    services.insert(key.into(), Yaml::Mapping(service));
    let mut root = Mapping::new();
    root.insert("services".into(), Yaml::Mapping(services));
    serde_yaml::to_string(&Yaml::Mapping(root)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
