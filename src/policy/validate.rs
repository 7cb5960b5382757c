//! Semantic validation of a typed `ScalingPolicy`: everything serde cannot check, with HPA's
//! limits, every problem reported at once with its path and the offending value.

use std::collections::BTreeMap;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::duration::HumanDuration;
use super::schedule::Window;
use super::types::*;

/// HPA's upper limit for a stabilization window.
pub const MAX_STABILIZATION_WINDOW_SECS: u64 = 3600;
/// HPA's upper limit for a rate-policy period.
pub const MAX_POLICY_PERIOD_SECS: u64 = 1800;
/// The shortest and longest reconcile interval.
pub const INTERVAL_SECS: std::ops::RangeInclusive<u64> = 1..=3600;
/// The placeholders a Prometheus query may use.
pub const PLACEHOLDERS: [&str; 2] = ["{{service}}", "{{stack}}"];

/// Every semantic problem of `policy`, or `Ok(())`.
pub fn validate(policy: &ScalingPolicy) -> Result<(), Diagnostics> {
    let mut check = Check::default();
    check.document(policy);
    Diagnostics::result(check.found)
}

/// The most metrics one policy may scale on.
pub const MAX_METRICS: usize = 16;
/// The most observed-only metrics one policy may read.
pub const MAX_OBSERVE: usize = 16;
/// The most schedules one policy may have.
pub const MAX_SCHEDULES: usize = 16;
/// The most receivers one policy may notify.
pub const MAX_NOTIFY: usize = 4;
/// The highest `maxReplicas` a policy may set unless the operator is started with another
/// ceiling (`--max-replicas-ceiling`): a label cannot ask for an unbounded fleet.
pub const MAX_REPLICAS: u32 = 1000;

/// `spec.maxReplicas` against a ceiling: the operator's for labels, [`MAX_REPLICAS`] for files.
/// Kept apart from [`validate`] because the ceiling is the operator's setting, not the policy's.
pub fn check_max_replicas(spec: &PolicySpec, ceiling: u32) -> Result<(), Diagnostic> {
    if spec.max_replicas > ceiling {
        return Err(Diagnostic::new(
            "spec.maxReplicas",
            format!(
                "must be at most {ceiling} (the ceiling of a policy), got {}",
                spec.max_replicas
            ),
        ));
    }
    Ok(())
}

/// Whether `name` can name a server registered with the operator: lowercase letters, digits
/// and `-`, starting with a letter, at most 63 characters. Any other value is read as a URL.
pub fn is_server_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Whether `name` is a name Docker accepts for a Swarm service: letters, digits, `-` and `_`,
/// starting and ending with a letter or digit, at most 63 characters (swarmkit's rule).
pub fn is_valid_service_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[derive(Default)]
struct Check {
    found: Vec<Diagnostic>,
}

impl Check {
    fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push(Diagnostic::new(path, message));
    }

    fn document(&mut self, policy: &ScalingPolicy) {
        if policy.api_version != API_VERSION {
            self.report(
                "apiVersion",
                format!("must be {API_VERSION}, got {:?}", policy.api_version),
            );
        }
        if policy.kind != KIND {
            self.report("kind", format!("must be {KIND}, got {:?}", policy.kind));
        }
        self.service_name("metadata.name", &policy.metadata.name);
        let spec = &policy.spec;
        if let Some(service) = &spec.service {
            self.service_name("spec.service", service);
        }
        self.bounds(spec);
        self.idle(spec);
        self.schedules(spec);
        self.list_lengths(spec);
        let interval = spec.interval.as_std();
        if interval < std::time::Duration::from_secs(*INTERVAL_SECS.start())
            || interval > std::time::Duration::from_secs(*INTERVAL_SECS.end())
        {
            self.report(
                "spec.interval",
                format!("must be between 1s and 1h, got {}", spec.interval),
            );
        }
        let names = self.metrics(spec);
        if let Some(forecast) = &spec.forecast {
            self.forecast(forecast, &names);
        }
        if let Some(anomaly) = &spec.anomaly {
            self.anomaly(anomaly, spec, &names);
        }
        if let Some(alerts) = &spec.alerts {
            self.alerts(alerts, spec);
        }
        if let Some(rules) = &spec.behavior.scale_up {
            self.rules("spec.behavior.scaleUp", rules);
        }
        if let Some(rules) = &spec.behavior.scale_down {
            self.rules("spec.behavior.scaleDown", rules);
        }
        if spec.metrics.is_empty() && spec.fallback != FallbackSpec::default() {
            self.report(
                "spec.fallback",
                "applies only when every metric failed, and the policy has no metrics (its schedules need no read)",
            );
        }
        if spec.fallback.failure_threshold == Some(0) {
            self.report(
                "spec.fallback.failureThreshold",
                "must be at least 1, got 0",
            );
        }
        match spec.fallback.action {
            Fallback::Hold => {}
            Fallback::CurrentIfHigher(n) => {
                self.within_bounds("spec.fallback.currentIfHigher", n, spec)
            }
            Fallback::Replicas(n) => self.within_bounds("spec.fallback.replicas", n, spec),
        }
    }

    /// Each policy's work is bounded: a label cannot ask for thousands of reads or posts.
    fn list_lengths(&mut self, spec: &PolicySpec) {
        let notify = spec
            .anomaly
            .as_ref()
            .map_or(0, |anomaly| anomaly.notify.len());
        for (path, len, most) in [
            ("spec.metrics", spec.metrics.len(), MAX_METRICS),
            ("spec.observe", spec.observe.len(), MAX_OBSERVE),
            ("spec.schedules", spec.schedules.len(), MAX_SCHEDULES),
            ("spec.anomaly.notify", notify, MAX_NOTIFY),
        ] {
            if len > most {
                self.report(path, format!("may hold at most {most} entries, got {len}"));
            }
        }
    }

    fn alerts(&mut self, alerts: &AlertsSpec, spec: &PolicySpec) {
        if alerts.max_replicas < 1 || alerts.max_replicas > spec.max_replicas {
            self.report(
                "spec.alerts.maxReplicas",
                format!(
                    "must be between 1 and spec.maxReplicas ({}), got {}",
                    spec.max_replicas, alerts.max_replicas
                ),
            );
        }
        let ttl = alerts.max_ttl.as_std();
        if ttl.is_zero() || ttl > std::time::Duration::from_secs(7 * 24 * 3600) {
            self.report(
                "spec.alerts.maxTtl",
                format!(
                    "must be longer than 0s and at most 7d, got {}",
                    alerts.max_ttl
                ),
            );
        }
    }

    fn service_name(&mut self, path: &str, name: &str) {
        if !is_valid_service_name(name) {
            self.report(
                path,
                format!(
                    "must be a valid Swarm service name (letters, digits, '-' and '_', starting and ending with a letter or digit, at most 63 characters), got {name:?}"
                ),
            );
        }
    }

    fn bounds(&mut self, spec: &PolicySpec) {
        if spec.max_replicas < 1 {
            self.report(
                "spec.maxReplicas",
                format!("must be at least 1, got {}", spec.max_replicas),
            );
        }
        if spec.min_replicas > spec.max_replicas && spec.max_replicas >= 1 {
            self.report(
                "spec.minReplicas",
                format!(
                    "must not exceed maxReplicas ({}), got {}",
                    spec.max_replicas, spec.min_replicas
                ),
            );
        }
    }

    /// `idleReplicas`, `cooldownPeriod` and `activation`: going idle must be reversible, so a
    /// policy that can go idle needs a metric that reads with no task running.
    fn idle(&mut self, spec: &PolicySpec) {
        if let Some(idle) = spec.idle_replicas {
            if idle >= spec.active_min() {
                self.report(
                    "spec.idleReplicas",
                    format!(
                        "must be less than minReplicas (and 0 when minReplicas is 0), got {idle}"
                    ),
                );
            }
        }
        let can_idle = spec.idle_replicas().is_some();
        if let Some(cooldown) = spec.cooldown_period {
            if !can_idle {
                self.report(
                    "spec.cooldownPeriod",
                    format!("applies only to a policy that can go idle (minReplicas: 0 or idleReplicas), got {cooldown}"),
                );
            }
        }
        for (i, metric) in spec.metrics.iter().enumerate() {
            let Some(activation) = metric.activation else {
                continue;
            };
            let path = format!("spec.metrics[{i}].activation");
            if !activation.is_finite() {
                self.report(path, format!("must be a finite number, got {activation}"));
            } else if !can_idle {
                self.report(path, format!("applies only to a policy that can go idle (minReplicas: 0 or idleReplicas), got {activation}"));
            }
        }
        // A schedule's window activates an idle service too.
        let wakes = !spec.schedules.is_empty()
            || spec
                .metrics
                .iter()
                .any(|m| m.source().is_some_and(|s| s.reads_without_tasks()));
        if can_idle && !spec.metrics.is_empty() && !wakes {
            self.report(
                "spec.metrics",
                "a policy that can go idle needs a metric that reads with no task running (prometheus, redis, rabbitmq) or a schedule, or it would never be activated again",
            );
        }
    }

    /// Each schedule: a unique name, a known zone, cron patterns that parse, a window that can
    /// be active, and a floor within `[1, maxReplicas]`.
    fn schedules(&mut self, spec: &PolicySpec) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, schedule) in spec.schedules.iter().enumerate() {
            let path = format!("spec.schedules[{i}]");
            if schedule.name.trim().is_empty() {
                self.report(format!("{path}.name"), "must not be empty");
            } else if !seen.insert(schedule.name.as_str()) {
                self.report(
                    format!("{path}.name"),
                    format!("{:?} names another schedule too", schedule.name),
                );
            }
            match Window::parse(schedule) {
                Err(errors) => {
                    for error in errors {
                        self.report(format!("{path}.{}", error.field), error.message);
                    }
                }
                Ok(window) => {
                    if let Some(error) = window.never_active() {
                        self.report(format!("{path}.{}", error.field), error.message);
                    }
                }
            }
            let desired = schedule.desired_replicas;
            if desired < 1 || desired > spec.max_replicas {
                self.report(
                    format!("{path}.desiredReplicas"),
                    format!(
                        "must be between 1 and maxReplicas ({}), got {desired}",
                        spec.max_replicas
                    ),
                );
            }
        }
    }

    fn within_bounds(&mut self, path: &str, replicas: u32, spec: &PolicySpec) {
        if replicas < spec.min_replicas || replicas > spec.max_replicas {
            self.report(
                path,
                format!(
                    "must be within minReplicas and maxReplicas ({}..={}), got {replicas}",
                    spec.min_replicas, spec.max_replicas
                ),
            );
        }
    }

    /// Checks `metrics` and `observe`; returns each metric name with where it is defined and
    /// whether it has a target (is in `metrics`).
    fn metrics(&mut self, spec: &PolicySpec) -> BTreeMap<String, (String, bool)> {
        let mut names: BTreeMap<String, (String, bool)> = BTreeMap::new();
        if spec.metrics.is_empty() && spec.schedules.is_empty() {
            // `observe` signals are read for the models, never scaled on: they do not count.
            let observe = if spec.observe.is_empty() {
                ""
            } else {
                " (spec.observe signals are read, never scaled on)"
            };
            self.report(
                "spec.metrics",
                format!("must list at least one metric, or spec.schedules at least one schedule{observe}"),
            );
        }
        for (i, metric) in spec.metrics.iter().enumerate() {
            let path = format!("spec.metrics[{i}]");
            self.metric_name(&path, &metric.name, true, &mut names);
            self.sources(&path, &metric.sources());
            self.target(&path, metric);
        }
        for (i, observed) in spec.observe.iter().enumerate() {
            let path = format!("spec.observe[{i}]");
            self.metric_name(&path, &observed.name, false, &mut names);
            self.sources(&path, &observed.sources());
        }
        names
    }

    fn metric_name(
        &mut self,
        path: &str,
        name: &str,
        has_target: bool,
        names: &mut BTreeMap<String, (String, bool)>,
    ) {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            self.report(
                format!("{path}.name"),
                format!("must be 1 to 63 letters, digits, '_', '-' or '.', got {name:?}"),
            );
        }
        if let Some((first, _)) = names.get(name) {
            self.report(
                format!("{path}.name"),
                format!("duplicate metric name {name:?}, already used by {first}; names must be unique across metrics and observe"),
            );
        } else {
            names.insert(name.to_owned(), (path.to_owned(), has_target));
        }
    }

    fn sources(&mut self, path: &str, sources: &[Source<'_>]) {
        match sources {
            [] => self.report(
                path,
                "needs exactly one source: prometheus, scrape, docker, redis or rabbitmq; none is set",
            ),
            [_] => {}
            several => {
                let kinds: Vec<&str> = several.iter().map(Source::kind).collect();
                self.report(
                    path,
                    format!("needs exactly one source, but {} are set", kinds.join(" and ")),
                )
            }
        }
        for source in sources {
            let at = format!("{path}.{}", source.kind());
            match source {
                Source::Prometheus(spec) => self.prometheus(&at, spec),
                Source::Scrape(spec) => self.scrape(&at, spec),
                Source::Docker(_) => {}
                Source::Redis(spec) => self.redis(&at, spec),
                Source::Rabbitmq(spec) => self.rabbitmq(&at, spec),
            }
        }
    }

    fn redis(&mut self, path: &str, source: &RedisSource) {
        self.registered_server(&format!("{path}.server"), &source.server);
        match (&source.list_name, &source.stream, &source.consumer_group) {
            (Some(list), None, None) => self.not_empty(&format!("{path}.listName"), list),
            (None, Some(stream), Some(group)) => {
                self.not_empty(&format!("{path}.stream"), stream);
                self.not_empty(&format!("{path}.consumerGroup"), group);
            }
            _ => self.report(
                path,
                "must set either listName, or stream and consumerGroup",
            ),
        }
    }

    fn rabbitmq(&mut self, path: &str, source: &RabbitmqSource) {
        self.registered_server(&format!("{path}.server"), &source.server);
        self.not_empty(&format!("{path}.queueName"), &source.queue_name);
        self.not_empty(&format!("{path}.vhostName"), &source.vhost_name);
    }

    /// Queue servers are only ever named: their URLs carry credentials and databases.
    fn registered_server(&mut self, path: &str, name: &str) {
        if !is_server_name(name) {
            self.report(
                path,
                format!("must name a server registered with the operator (lowercase letters, digits and '-'), got {name:?}"),
            );
        }
    }

    fn not_empty(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.report(path, "must not be empty");
        }
    }

    fn prometheus(&mut self, path: &str, source: &PrometheusSource) {
        if source.query.trim().is_empty() {
            self.report(format!("{path}.query"), "must not be empty");
        }
        if let Err(message) = check_placeholders(&source.query) {
            self.report(format!("{path}.query"), message);
        }
        if let Some(server) = &source.server {
            self.server_reference(&format!("{path}.server"), server);
        }
        if let Some(value) = source.treat_empty_as {
            if !value.is_finite() {
                self.report(
                    format!("{path}.treatEmptyAs"),
                    format!("must be a finite number, got {value}"),
                );
            }
        }
    }

    fn scrape(&mut self, path: &str, source: &ScrapeSource) {
        if source.port == 0 {
            self.report(format!("{path}.port"), "must be greater than 0, got 0");
        }
        if !source.path.starts_with('/') {
            self.report(
                format!("{path}.path"),
                format!("must start with '/', got {:?}", source.path),
            );
        }
        if source.metric.trim().is_empty() {
            self.report(format!("{path}.metric"), "must not be empty");
        }
        if let Some(quantile) = source.quantile {
            if !(quantile > 0.0 && quantile < 1.0) {
                self.report(
                    format!("{path}.quantile"),
                    format!("must be between 0 and 1 (exclusive), got {quantile}"),
                );
            }
        }
        let share = source.min_responding;
        if !(share > 0.0 && share <= 1.0) {
            self.report(
                format!("{path}.minResponding"),
                format!("must be greater than 0 and at most 1, got {share}"),
            );
        }
    }

    fn target(&mut self, path: &str, metric: &MetricSpec) {
        let (field, value) = match metric.target {
            Target::Utilization(v) => ("utilization", v),
            Target::AverageValue(v) => ("averageValue", v),
            Target::Value(v) => ("value", v),
        };
        let target_path = format!("{path}.target.{field}");
        if !(value.is_finite() && value > 0.0) {
            self.report(
                &target_path,
                format!("must be a finite number greater than 0, got {value}"),
            );
        }
        if let Target::Utilization(_) = metric.target {
            match (&metric.docker, &metric.prometheus, &metric.scrape) {
                (Some(DockerSource { resource: Resource::Cpu | Resource::Memory }), _, _) => {}
                (Some(DockerSource { resource }), _, _) => self.report(
                    target_path,
                    format!(
                        "utilization is defined only for docker cpu and memory, not {}; use averageValue or value",
                        resource.name()
                    ),
                ),
                (None, _, _) => self.report(
                    target_path,
                    "utilization needs a docker cpu or memory source; use averageValue or value",
                ),
            }
        }
    }

    fn forecast(&mut self, forecast: &ForecastSpec, names: &BTreeMap<String, (String, bool)>) {
        if forecast.model.trim().is_empty() {
            self.report("spec.forecast.model", "must not be empty");
        }
        match names.get(&forecast.metric) {
            Some((_, true)) => {}
            _ if !names.values().any(|(_, has_target)| *has_target) => self.report(
                "spec.forecast.metric",
                format!(
                    "must name a metric in spec.metrics, but the policy has none (a forecast scales on a metric; schedules alone cannot be forecast), got {:?}",
                    forecast.metric
                ),
            ),
            Some((where_, false)) => self.report(
                "spec.forecast.metric",
                format!(
                    "must name a metric in spec.metrics (one with a target), but {:?} is {where_}",
                    forecast.metric
                ),
            ),
            None => self.report(
                "spec.forecast.metric",
                format!(
                    "names no metric of this policy, got {:?}; known: {}",
                    forecast.metric,
                    known(names)
                ),
            ),
        }
        if forecast.horizon.as_std().is_zero() {
            self.report("spec.forecast.horizon", "must be greater than 0s, got 0s");
        }
    }

    fn anomaly(
        &mut self,
        anomaly: &AnomalySpec,
        spec: &PolicySpec,
        names: &BTreeMap<String, (String, bool)>,
    ) {
        if anomaly.model.trim().is_empty() {
            self.report("spec.anomaly.model", "must not be empty");
        }
        let inputs = &anomaly.inputs;
        for (role, name) in [
            ("requests", &inputs.requests),
            ("errors", &inputs.errors),
            ("latency", &inputs.latency),
            ("receiveBytes", &inputs.receive_bytes),
            ("transmitBytes", &inputs.transmit_bytes),
        ] {
            if let Some(name) = name {
                if !names.contains_key(name) {
                    self.report(
                        format!("spec.anomaly.inputs.{role}"),
                        format!(
                            "names no metric of this policy, got {name:?}; known: {}",
                            known(names)
                        ),
                    );
                }
            }
        }
        for (state, action) in &anomaly.on_state {
            if let StateAction::Cap(cap) = action {
                self.within_bounds(&format!("spec.anomaly.onState.{state}.cap"), *cap, spec);
            }
        }
        for (i, notify) in anomaly.notify.iter().enumerate() {
            let path = format!("spec.anomaly.notify[{i}]");
            match (&notify.receiver, &notify.url) {
                (Some(receiver), None) => {
                    self.server_reference(&format!("{path}.receiver"), receiver)
                }
                (None, Some(url)) => self.http_url(&format!("{path}.url"), url),
                _ => self.report(
                    path,
                    "must set exactly one of receiver (a receiver registered with the operator) and url",
                ),
            }
        }
    }

    fn rules(&mut self, path: &str, rules: &ScalingRules) {
        if let Some(window) = rules.stabilization_window {
            if window > HumanDuration::from_secs(MAX_STABILIZATION_WINDOW_SECS) {
                self.report(
                    format!("{path}.stabilizationWindow"),
                    format!("must be at most 1h (3600s), got {window}"),
                );
            }
        }
        if let Some(policies) = &rules.policies {
            if policies.is_empty() && rules.select_policy != Some(SelectPolicy::Disabled) {
                self.report(
                    format!("{path}.policies"),
                    "must list at least one policy unless selectPolicy is Disabled",
                );
            }
            for (i, policy) in policies.iter().enumerate() {
                let policy_path = format!("{path}.policies[{i}]");
                if policy.value == 0 {
                    self.report(
                        format!("{policy_path}.value"),
                        "must be greater than 0, got 0",
                    );
                }
                let period = policy.period;
                if period < HumanDuration::from_secs(1)
                    || period > HumanDuration::from_secs(MAX_POLICY_PERIOD_SECS)
                {
                    self.report(
                        format!("{policy_path}.period"),
                        format!("must be between 1s and 30m (1800s), got {period}"),
                    );
                }
            }
        }
        if let Some(tolerance) = rules.tolerance {
            if !(0.0..1.0).contains(&tolerance) {
                self.report(
                    format!("{path}.tolerance"),
                    format!("must be at least 0 and less than 1, got {tolerance}"),
                );
            }
        }
    }

    /// A server registered with the operator, by name, or an http(s) URL (which the operator
    /// accepts only under its allow-list).
    fn server_reference(&mut self, path: &str, text: &str) {
        if !is_server_name(text) {
            self.http_url(path, text);
        }
    }

    fn http_url(&mut self, path: &str, text: &str) {
        match url::Url::parse(text) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
            Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => self.report(
                path,
                format!(
                    "must be an http or https URL, got scheme {:?} in {text:?}",
                    parsed.scheme()
                ),
            ),
            Ok(_) => self.report(
                path,
                format!("must be an http or https URL with a host, got {text:?}"),
            ),
            Err(error) => self.report(
                path,
                format!("must be an http or https URL, got {text:?} ({error})"),
            ),
        }
    }
}

/// Every `{{...}}` in `query` must be a known placeholder.
fn check_placeholders(query: &str) -> Result<(), String> {
    let mut rest = query;
    let mut unknown = Vec::new();
    while let Some(start) = rest.find("{{") {
        let after = &rest[start..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "has an unclosed placeholder {:?}; known placeholders: {}",
                after.chars().take(20).collect::<String>(),
                PLACEHOLDERS.join(", ")
            ));
        };
        let placeholder = &after[..end + 2];
        if !PLACEHOLDERS.contains(&placeholder) {
            unknown.push(placeholder.to_owned());
        }
        rest = &after[end + 2..];
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unknown placeholder {}; known placeholders: {}",
            unknown.join(", "),
            PLACEHOLDERS.join(", ")
        ))
    }
}

fn known(names: &BTreeMap<String, (String, bool)>) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy whose `spec` is `spec` (YAML lines, two-space indented), or its diagnostics as
    /// `path: message` lines.
    fn check(spec: &str) -> Result<ScalingPolicy, Vec<String>> {
        crate::policy::parse(&format!(
            "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  maxReplicas: 20\n{spec}"
        ))
        .map_err(|found| found.0.iter().map(ToString::to_string).collect())
    }

    const PARIS: &str = "  schedules:
    - {name: business-hours, timezone: Europe/Paris, start: 0 9 * * 1-5, end: 0 18 * * 1-5, desiredReplicas: 10}
";

    #[test]
    fn a_policy_needs_a_metric_or_a_schedule() {
        let schedule_only = check(&format!("  minReplicas: 2\n{PARIS}")).expect("valid");
        assert!(schedule_only.spec.metrics.is_empty());
        // Going idle between windows: the next window activates the service.
        check(&format!("  minReplicas: 0\n  cooldownPeriod: 10m\n{PARIS}")).expect("valid");

        let neither =
            "spec.metrics: must list at least one metric, or spec.schedules at least one schedule";
        // (spec, the diagnostics)
        let cases = [
            ("", vec![neither.to_owned()]),
            ("  metrics: []\n  schedules: []\n", vec![neither.to_owned()]),
            (
                "  observe:\n    - {name: rps, prometheus: {query: up}}\n",
                vec![format!(
                    "{neither} (spec.observe signals are read, never scaled on)"
                )],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(check(spec).map(|_| ()), Err(want), "{spec}");
        }
    }

    #[test]
    fn what_needs_a_metric_says_so_in_a_schedule_only_policy() {
        // (what is added to the schedule-only policy, the diagnostic)
        let cases = [
            (
                "  forecast: {model: traffic-forecast, metric: rps}\n",
                "spec.forecast.metric: must name a metric in spec.metrics, but the policy has none",
            ),
            (
                "  observe:\n    - {name: rps, prometheus: {query: up}}\n  forecast: {model: traffic-forecast, metric: rps}\n",
                "spec.forecast.metric: must name a metric in spec.metrics, but the policy has none",
            ),
            (
                "  fallback: {replicas: 3}\n",
                "spec.fallback: applies only when every metric failed, and the policy has no metrics",
            ),
            (
                "  cooldownPeriod: 5m\n",
                "spec.cooldownPeriod: applies only to a policy that can go idle",
            ),
        ];
        for (extra, want) in cases {
            let found = check(&format!("{PARIS}{extra}")).expect_err(extra);
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{extra}: {found:?}"
            );
        }
    }

    #[test]
    fn service_names_follow_swarmkit() {
        for good in ["web", "shop_web", "a", "a-b_c9"] {
            assert!(is_valid_service_name(good), "{good}");
        }
        for bad in ["", "-web", "web_", "we b", "web.1", &"a".repeat(64)] {
            assert!(!is_valid_service_name(bad), "{bad}");
        }
    }

    #[test]
    fn placeholders_are_checked() {
        assert!(check_placeholders(
            "sum(rate(x{service=\"{{service}}\",stack=\"{{stack}}\"}[1m]))"
        )
        .is_ok());
        let error = check_placeholders("x{a=\"{{svc}}\"}").unwrap_err();
        assert!(error.contains("unknown placeholder {{svc}}"), "{error}");
        assert!(check_placeholders("x{{service")
            .unwrap_err()
            .contains("unclosed"));
    }
}
