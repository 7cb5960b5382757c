//! The files under `deploy/` agree with the code: the stack's policies are valid policies, the
//! Grafana dashboard queries only metrics the operator exports, and the Prometheus
//! configuration (once Docker has filled its template) passes `promtool check config`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_yaml::Value;
use std::time::Duration;

use swarmpilot::decide::Reason;
use swarmpilot::policy::{labels, Override, TrafficState};
use swarmpilot::webhook::Metrics;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_policy_in_the_stack_is_valid() {
    let stack: Value = serde_yaml::from_str(&deploy_file("stack.yml")).unwrap();
    let services = stack["services"].as_mapping().unwrap();
    let mut with_policy = Vec::new();
    for (name, service) in services {
        let name = format!("swarmpilot_{}", name.as_str().unwrap());
        let Some(labels) = service["deploy"]["labels"].as_mapping() else {
            continue;
        };
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_owned(),
                    v.as_str().unwrap().to_owned(),
                )
            })
            .filter(|(k, _)| k.starts_with("io.swarmpilot."))
            .collect();
        match labels::decode(&name, &labels) {
            Ok(Some(policy)) => {
                assert_eq!(policy.service(), name);
                with_policy.push(name);
            }
            Ok(None) => {}
            Err(problems) => panic!("the policy of {name} in deploy/stack.yml: {problems}"),
        }
    }
    assert_eq!(with_policy, ["swarmpilot_web", "swarmpilot_web-hpa"]);
}

#[test]
fn the_twin_differs_only_by_forecast_and_traffic_states() {
    let stack: Value = serde_yaml::from_str(&deploy_file("stack.yml")).unwrap();
    let policy = |service: &str| {
        let text = stack["services"][service]["deploy"]["labels"]["io.swarmpilot.policy"]
            .as_str()
            .unwrap();
        serde_yaml::from_str::<Value>(text).unwrap()
    };
    let (web, twin) = (policy("web"), policy("web-hpa"));
    assert!(web.get("forecast").is_some() && web.get("anomaly").is_some());
    assert!(twin.get("forecast").is_none() && twin.get("anomaly").is_none());
    for key in [
        "minReplicas",
        "maxReplicas",
        "interval",
        "metrics",
        "behavior",
    ] {
        assert_eq!(web[key], twin[key], "{key} differs between web and web-hpa");
    }
}

/// The metric names a PromQL expression mentions that belong to the operator.
fn operator_metrics(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("swarmpilot_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_queries_only_metrics_the_operator_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy_file("grafana/swarmpilot.json")).unwrap();
    // Families appear in the exposition once they have a series: give each one.
    let metrics = Metrics::new();
    metrics.observe_reconcile("web", Duration::from_millis(5), Reason::ScaleUpLimit, 1, 2);
    metrics.set_forecast("web", Some(12.0));
    metrics.set_traffic_state("web", Some(TrafficState::Flood));
    metrics.set_override(
        "web",
        Some(&Override {
            replicas: Some(2),
            pause: false,
            pause_scale_in: false,
            pause_scale_out: false,
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(5),
            reason: "test".into(),
            by: "test".into(),
        }),
    );
    metrics.count_metric_error("web", "rps");
    metrics.count_docker_error("inspect_service");
    let exported = metrics.encode().unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in operator_metrics(expr) {
                let family = ["_bucket", "_count", "_sum", "_total"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(&format!("# TYPE {family} ")),
                    "panel {:?} queries {name}, which the operator does not export:\n{exported}",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 8,
        "only {checked} operator metrics in the dashboard"
    );
}

#[test]
fn the_prometheus_config_passes_promtool_once_filled() {
    let template = deploy_file("prometheus.yml");
    let filled = template.replace(
        r#"{{ index .Service.Labels "com.docker.stack.namespace" }}"#,
        "swarmpilot",
    );
    assert!(
        !filled.contains("{{"),
        "a template expression the test does not fill"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, filled).unwrap();
    let output = Command::new("promtool")
        .args(["check", "config"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool (Debian's prometheus package; deploy/local-swarm.sh installs it): {e}")
        });
    assert!(
        output.status.success(),
        "promtool check config failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The exposition of a service with every condition and bound, as the operator writes it.
fn exposition_with_conditions() -> String {
    use swarmpilot::decide::{Condition, ConditionReason, ConditionStatus, ConditionType};
    let metrics = Metrics::new();
    metrics.observe_reconcile(
        "web",
        Duration::from_millis(5),
        Reason::TooManyReplicas,
        4,
        4,
    );
    metrics.set_bounds("web", 1, 4);
    let condition = |type_, status, reason| Condition {
        type_,
        status,
        reason,
        message: String::new(),
        last_transition_time: chrono::Utc::now(),
    };
    metrics.set_conditions(
        "web",
        &[
            condition(
                ConditionType::ScalingLimited,
                ConditionStatus::True,
                ConditionReason::TooManyReplicas,
            ),
            condition(
                ConditionType::MetricsAvailable,
                ConditionStatus::False,
                ConditionReason::SomeMetricsFailed,
            ),
        ],
    );
    metrics.encode().unwrap()
}

fn promtool(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool (Debian's prometheus package; deploy/local-swarm.sh installs it): {e}")
        })
}

/// deploy/alerts.yml passes `promtool check rules`, names only series the operator exports,
/// and its two main alerts fire (and only then) on the series `promtool test rules` feeds it.
#[test]
fn the_alert_rules_pass_promtool_and_fire_on_the_conditions() {
    let rules = deploy_file("alerts.yml");
    let exported = exposition_with_conditions();
    for name in operator_metrics(&rules) {
        assert!(
            exported.contains(&format!("# TYPE {name} ")),
            "deploy/alerts.yml uses {name}, which the operator does not export:\n{exported}"
        );
    }
    for line in [
        "swarmpilot_condition{service=\"web\",condition=\"ScalingLimited\",status=\"True\"} 1",
        "swarmpilot_condition{service=\"web\",condition=\"MetricsAvailable\",status=\"False\"} 1",
        "swarmpilot_condition{service=\"web\",condition=\"MetricsAvailable\",status=\"True\"} 0",
        "swarmpilot_max_replicas{service=\"web\"} 4",
    ] {
        assert!(exported.contains(line), "missing {line} in\n{exported}");
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alerts.yml"), &rules).unwrap();
    let output = promtool(&["check", "rules", "alerts.yml"], dir.path());
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Held at max 4 for 15 minutes, then metrics failing from minute 5 for 3 minutes.
    let unit = r#"
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'swarmpilot_condition{service="web",condition="ScalingLimited",status="True"}'
        values: '1x15'
      - series: 'swarmpilot_desired_replicas{service="web"}'
        values: '4x15'
      - series: 'swarmpilot_max_replicas{service="web"}'
        values: '4x15'
      - series: 'swarmpilot_condition{service="web",condition="MetricsAvailable",status="False"}'
        values: '0x4 1x3 0x7'
    alert_rule_test:
      - eval_time: 9m
        alertname: SwarmpilotScalingLimitedAtMax
        exp_alerts: []
      - eval_time: 11m
        alertname: SwarmpilotScalingLimitedAtMax
        exp_alerts:
          - exp_labels: {service: web, condition: ScalingLimited, status: "True", severity: warning}
            exp_annotations:
              summary: web has been held at maxReplicas for 10 minutes
              description: "The policy of web asks for more replicas than its maxReplicas allows. Raise maxReplicas or look at the load: `swarmpilot describe web`."
      - eval_time: 6m
        alertname: SwarmpilotMetricsUnavailable
        exp_alerts: []
      - eval_time: 7m
        alertname: SwarmpilotMetricsUnavailable
        exp_alerts:
          - exp_labels: {service: web, condition: MetricsAvailable, status: "False", severity: warning}
            exp_annotations:
              summary: "web: some of its metrics cannot be read"
              description: "swarmpilot has not read every metric of web for 2 minutes; it does not scale down on incomplete metrics and uses the fallback when all fail. The decision's detail says why: `swarmpilot describe web`."
      - eval_time: 12m
        alertname: SwarmpilotMetricsUnavailable
        exp_alerts: []
"#;
    std::fs::write(dir.path().join("alerts.test.yml"), unit).unwrap();
    let output = promtool(&["test", "rules", "alerts.test.yml"], dir.path());
    assert!(
        output.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
