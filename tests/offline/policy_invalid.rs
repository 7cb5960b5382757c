//! Invalid policy documents, each with the diagnostic it must produce (path and message), and
//! the valid examples that must pass. Hostile inputs (10 MB, deep nesting, alias bombs,
//! non-UTF-8) must end in a diagnostic, never a panic.

use swarmpilot::policy::{parse, parse_bytes, parse_documents, Diagnostics, Fallback};

const BASE: &str = "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {name: web}
spec:
  maxReplicas: 10
  metrics:
  - name: cpu
    docker: {resource: cpu}
    target: {utilization: 70}
";

/// BASE with one line replaced (the line must exist, so a case cannot silently test nothing).
fn with(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "BASE has no {old:?}");
    BASE.replacen(old, new, 1)
}

/// BASE with lines appended under `spec:`.
fn spec_plus(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn diagnostics_of(text: &str) -> Diagnostics {
    match parse_documents(text) {
        Ok(policies) => panic!("expected diagnostics, parsed {policies:#?}\n--- from:\n{text}"),
        Err(found) => found,
    }
}

#[track_caller]
fn assert_diagnostic(found: &Diagnostics, path: &str, fragment: &str) {
    assert!(
        found
            .iter()
            .any(|d| d.path == path && d.message.contains(fragment)),
        "expected `{path}: ...{fragment}...`, got:\n{found}"
    );
}

#[track_caller]
fn expect(text: &str, path: &str, fragment: &str) {
    assert_diagnostic(&diagnostics_of(text), path, fragment);
}

#[test]
fn base_document_is_valid() {
    parse(BASE).unwrap();
}

// ---- structure: unknown fields, wrong types, missing fields ----

#[test]
fn unknown_top_level_field() {
    expect(
        &BASE.replace("spec:", "specs:"),
        "specs",
        "unknown field (did you mean spec?), expected one of apiVersion, kind, metadata, spec",
    );
}

#[test]
fn unknown_nested_field_names_the_known_ones() {
    expect(
        &with("    target:", "    targett:"),
        "spec.metrics[0].targett",
        "unknown field (did you mean target?), expected one of activation, docker, name, prometheus, rabbitmq, redis, scrape, target",
    );
}

#[test]
fn unknown_field_in_behavior() {
    expect(
        &spec_plus("  behavior: {scaleDown: {stabilisationWindow: 60s}}\n"),
        "spec.behavior.scaleDown.stabilisationWindow",
        "unknown field (did you mean stabilizationWindow?)",
    );
}

#[test]
fn wrong_type_string_for_integer() {
    expect(
        &with("maxReplicas: 10", "maxReplicas: ten"),
        "spec.maxReplicas",
        "must be a whole number, got the string \"ten\"",
    );
}

#[test]
fn wrong_type_fraction_for_integer() {
    expect(
        &with("maxReplicas: 10", "maxReplicas: 2.5"),
        "spec.maxReplicas",
        "must be a whole number, got 2.5",
    );
}

#[test]
fn wrong_type_mapping_for_list() {
    expect(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec: {maxReplicas: 3, metrics: {cpu: 70}}\n",
        "spec.metrics",
        "must be a list, got a mapping {cpu}",
    );
}

#[test]
fn negative_replica_count() {
    expect(
        &with("maxReplicas: 10", "maxReplicas: -3"),
        "spec.maxReplicas",
        "must be at least 0, got -3",
    );
}

#[test]
fn missing_required_fields() {
    let found =
        diagnostics_of("apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nspec: {}\n");
    assert_diagnostic(&found, "metadata", "missing required field");
    assert_diagnostic(&found, "spec.maxReplicas", "missing required field");
    // `metrics` may be left out (a policy on schedules alone); `neither_metrics_nor_schedules`
    // covers a policy with neither.
    assert!(!found.0.iter().any(|d| d.path == "spec.metrics"), "{found}");
}

#[test]
fn unknown_enum_values() {
    expect(
        &spec_plus("  mode: fast\n"),
        "spec.mode",
        "must be one of enforce, recommend, got the string \"fast\"",
    );
    expect(
        &with("resource: cpu", "resource: gpu"),
        "spec.metrics[0].docker.resource",
        "must be one of cpu, memory, network_rx, network_tx, got the string \"gpu\"",
    );
    expect(
        &spec_plus("  behavior: {scaleUp: {selectPolicy: Largest}}\n"),
        "spec.behavior.scaleUp.selectPolicy",
        "must be one of Max, Min, Disabled",
    );
}

#[test]
fn wrong_api_version_and_kind() {
    let found = diagnostics_of(
        &BASE
            .replace("swarmpilot.io/v1alpha1", "autoscaling/v2")
            .replace("kind: ScalingPolicy", "kind: HorizontalPodAutoscaler"),
    );
    assert_diagnostic(
        &found,
        "apiVersion",
        "must be swarmpilot.io/v1alpha1, got the string \"autoscaling/v2\"",
    );
    assert_diagnostic(
        &found,
        "kind",
        "must be ScalingPolicy, got the string \"HorizontalPodAutoscaler\"",
    );
}

#[test]
fn invalid_service_names() {
    expect(
        &BASE.replace("name: web}", "name: Web App!}"),
        "metadata.name",
        "must be a valid Swarm service name",
    );
    expect(
        &with(
            "  maxReplicas: 10",
            "  service: shop.web\n  maxReplicas: 10",
        ),
        "spec.service",
        "got \"shop.web\"",
    );
}

// ---- replica bounds ----

#[test]
fn min_above_max() {
    expect(
        &with("maxReplicas: 10", "maxReplicas: 10\n  minReplicas: 12"),
        "spec.minReplicas",
        "must not exceed maxReplicas (10), got 12",
    );
}

#[test]
fn max_zero() {
    expect(
        &with("maxReplicas: 10", "maxReplicas: 0"),
        "spec.maxReplicas",
        "must be at least 1, got 0",
    );
}

// ---- durations ----

#[test]
fn negative_duration() {
    expect(
        &spec_plus("  interval: -15s\n"),
        "spec.interval",
        "must not be negative, got \"-15s\"",
    );
}

#[test]
fn malformed_duration() {
    expect(
        &spec_plus("  interval: fast\n"),
        "spec.interval",
        "is not a duration like 15s, 5m or 1h30m, got \"fast\"",
    );
}

#[test]
fn duration_without_unit() {
    expect(
        &spec_plus("  interval: 15\n"),
        "spec.interval",
        "a duration needs a unit, e.g. 15s",
    );
}

#[test]
fn interval_out_of_range() {
    expect(
        &spec_plus("  interval: 2h\n"),
        "spec.interval",
        "must be between 1s and 1h, got 2h",
    );
    expect(
        &spec_plus("  interval: 500ms\n"),
        "spec.interval",
        "must be between 1s and 1h, got 500ms",
    );
}

// ---- metrics ----

#[test]
fn empty_metrics() {
    expect(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec: {maxReplicas: 3, metrics: []}\n",
        "spec.metrics",
        "must list at least one metric, or spec.schedules at least one schedule",
    );
}

#[test]
fn neither_metrics_nor_schedules() {
    expect(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\nspec: {maxReplicas: 3}\n",
        "spec.metrics",
        "must list at least one metric, or spec.schedules at least one schedule",
    );
}

#[test]
fn two_sources_in_one_metric() {
    expect(
        &with(
            "    docker: {resource: cpu}",
            "    docker: {resource: cpu}\n    prometheus: {query: up}",
        ),
        "spec.metrics[0]",
        "needs exactly one source, but prometheus and docker are set",
    );
}

#[test]
fn no_source() {
    expect(
        &with("    docker: {resource: cpu}\n", ""),
        "spec.metrics[0]",
        "needs exactly one source: prometheus, scrape, docker, redis or rabbitmq; none is set",
    );
}

#[test]
fn no_target() {
    expect(
        &with("    target: {utilization: 70}\n", ""),
        "spec.metrics[0].target",
        "missing required field",
    );
}

#[test]
fn two_targets() {
    expect(
        &with("{utilization: 70}", "{utilization: 70, averageValue: 5}"),
        "spec.metrics[0].target",
        "must be one of {utilization: X}, {averageValue: X}, {value: X}, got a mapping {utilization, averageValue}",
    );
}

#[test]
fn target_not_positive_or_not_finite() {
    expect(
        &with("{utilization: 70}", "{utilization: 0}"),
        "spec.metrics[0].target.utilization",
        "must be a finite number greater than 0, got 0",
    );
    expect(
        &with("{utilization: 70}", "{utilization: .nan}"),
        "spec.metrics[0].target.utilization",
        "must be a finite number, got .nan",
    );
}

#[test]
fn utilization_needs_docker_cpu_or_memory() {
    expect(
        &with("docker: {resource: cpu}", "prometheus: {query: up}"),
        "spec.metrics[0].target.utilization",
        "utilization needs a docker cpu or memory source",
    );
    expect(
        &with("resource: cpu", "resource: network_rx"),
        "spec.metrics[0].target.utilization",
        "utilization is defined only for docker cpu and memory, not network_rx",
    );
}

#[test]
fn duplicate_metric_names_across_metrics_and_observe() {
    expect(
        &spec_plus("  observe:\n  - name: cpu\n    docker: {resource: memory}\n"),
        "spec.observe[0].name",
        "duplicate metric name \"cpu\", already used by spec.metrics[0]",
    );
}

#[test]
fn unknown_placeholder() {
    expect(
        &with(
            "docker: {resource: cpu}",
            "prometheus: {query: 'sum(rate(x{svc=\"{{svc}}\"}[1m]))'}",
        )
        .replace("utilization", "averageValue"),
        "spec.metrics[0].prometheus.query",
        "unknown placeholder {{svc}}; known placeholders: {{service}}, {{stack}}",
    );
}

#[test]
fn unclosed_placeholder_and_empty_query() {
    expect(
        &with(
            "docker: {resource: cpu}",
            "prometheus: {query: 'x{a=\"{{service\"}'}",
        )
        .replace("utilization", "value"),
        "spec.metrics[0].prometheus.query",
        "unclosed placeholder",
    );
    expect(
        &with("docker: {resource: cpu}", "prometheus: {query: ' '}")
            .replace("utilization", "value"),
        "spec.metrics[0].prometheus.query",
        "must not be empty",
    );
}

#[test]
fn prometheus_server_is_a_server_name_or_an_http_url() {
    let text = with(
        "docker: {resource: cpu}",
        "prometheus: {query: up, server: 'ftp://prom:9090'}",
    )
    .replace("utilization", "value");
    expect(
        &text,
        "spec.metrics[0].prometheus.server",
        "must be an http or https URL, got scheme \"ftp\"",
    );
    // A server name (registered with the operator) is not a URL: the operator checks it.
    let text = with(
        "docker: {resource: cpu}",
        "prometheus: {query: up, server: 'prometheus'}",
    )
    .replace("utilization", "value");
    assert!(swarmpilot::policy::parse(&text).is_ok());
    let text = with(
        "docker: {resource: cpu}",
        "prometheus: {query: up, server: 'Prometheus'}",
    )
    .replace("utilization", "value");
    expect(
        &text,
        "spec.metrics[0].prometheus.server",
        "must be an http or https URL, got \"Prometheus\"",
    );
}

#[test]
fn scrape_fields_out_of_range() {
    let found = diagnostics_of(
        &with(
            "docker: {resource: cpu}",
            "scrape: {port: 0, path: metrics, metric: '', quantile: 1.5, minResponding: 0}",
        )
        .replace("utilization", "value"),
    );
    assert_diagnostic(
        &found,
        "spec.metrics[0].scrape.port",
        "must be greater than 0, got 0",
    );
    assert_diagnostic(
        &found,
        "spec.metrics[0].scrape.path",
        "must start with '/', got \"metrics\"",
    );
    assert_diagnostic(&found, "spec.metrics[0].scrape.metric", "must not be empty");
    assert_diagnostic(
        &found,
        "spec.metrics[0].scrape.quantile",
        "between 0 and 1 (exclusive), got 1.5",
    );
    assert_diagnostic(
        &found,
        "spec.metrics[0].scrape.minResponding",
        "greater than 0 and at most 1, got 0",
    );
    assert_eq!(found.len(), 5, "{found}");
}

#[test]
fn scrape_port_above_u16() {
    expect(
        &with(
            "docker: {resource: cpu}",
            "scrape: {port: 70000, metric: x}",
        )
        .replace("utilization", "value"),
        "spec.metrics[0].scrape.port",
        "must be at most 65535, got 70000",
    );
}

// ---- behavior ----

#[test]
fn stabilization_window_too_long() {
    expect(
        &spec_plus("  behavior: {scaleDown: {stabilizationWindow: 3601s}}\n"),
        "spec.behavior.scaleDown.stabilizationWindow",
        "must be at most 1h (3600s), got 1h1s",
    );
}

#[test]
fn policy_period_out_of_range() {
    let found = diagnostics_of(&spec_plus(
        "  behavior:\n    scaleUp: {policies: [{type: Pods, value: 1, period: 15s}]}\n    scaleDown: {policies: [{type: Percent, value: 10, period: 31m}, {type: Replicas, value: 1, period: 0s}]}\n",
    ));
    assert_diagnostic(
        &found,
        "spec.behavior.scaleUp.policies[0].type",
        "must be one of Replicas, Percent, got the string \"Pods\"",
    );
    // Structural problems stop before semantic checks, so fix the type to see the periods.
    let found = diagnostics_of(&spec_plus(
        "  behavior:\n    scaleDown: {policies: [{type: Percent, value: 10, period: 31m}, {type: Replicas, value: 1, period: 0s}]}\n",
    ));
    assert_diagnostic(
        &found,
        "spec.behavior.scaleDown.policies[0].period",
        "must be between 1s and 30m (1800s), got 31m",
    );
    assert_diagnostic(
        &found,
        "spec.behavior.scaleDown.policies[1].period",
        "got 0s",
    );
}

#[test]
fn policy_value_zero() {
    expect(
        &spec_plus(
            "  behavior: {scaleDown: {policies: [{type: Percent, value: 0, period: 15s}]}}\n",
        ),
        "spec.behavior.scaleDown.policies[0].value",
        "must be greater than 0, got 0",
    );
    let found = diagnostics_of(&spec_plus(
        "  behavior: {scaleDown: {policies: [{type: Percent, value: 0, period: 15s}]}}\n",
    ));
    assert_eq!(
        found.to_string(),
        "spec.behavior.scaleDown.policies[0].value: must be greater than 0, got 0"
    );
}

#[test]
fn empty_policies_unless_disabled() {
    expect(
        &spec_plus("  behavior: {scaleUp: {policies: []}}\n"),
        "spec.behavior.scaleUp.policies",
        "must list at least one policy unless selectPolicy is Disabled",
    );
    parse(&spec_plus(
        "  behavior: {scaleUp: {selectPolicy: Disabled, policies: []}}\n",
    ))
    .unwrap();
}

#[test]
fn tolerance_out_of_range() {
    expect(
        &spec_plus("  behavior: {scaleUp: {tolerance: 1.0}}\n"),
        "spec.behavior.scaleUp.tolerance",
        "must be at least 0 and less than 1, got 1",
    );
    expect(
        &spec_plus("  behavior: {scaleDown: {tolerance: -0.1}}\n"),
        "spec.behavior.scaleDown.tolerance",
        "got -0.1",
    );
}

// ---- forecast, anomaly, fallback ----

#[test]
fn forecast_must_name_a_scaling_metric() {
    expect(
        &spec_plus("  forecast: {model: traffic-forecast, metric: rps}\n"),
        "spec.forecast.metric",
        "names no metric of this policy, got \"rps\"; known: cpu",
    );
    expect(
        &spec_plus("  observe: [{name: rx, docker: {resource: network_rx}}]\n  forecast: {model: m, metric: rx}\n"),
        "spec.forecast.metric",
        "must name a metric in spec.metrics (one with a target), but \"rx\" is spec.observe[0]",
    );
    expect(
        &spec_plus("  forecast: {model: m, metric: cpu, horizon: 0s}\n"),
        "spec.forecast.horizon",
        "must be greater than 0s",
    );
}

#[test]
fn anomaly_inputs_cap_and_notify() {
    let found = diagnostics_of(&spec_plus(
        "  anomaly:\n    model: traffic-states\n    inputs: {requests: rps, latency: cpu}\n    onState: {flood: {cap: 50}}\n    notify: [{url: 'hooks.example/ops'}]\n",
    ));
    assert_diagnostic(
        &found,
        "spec.anomaly.inputs.requests",
        "names no metric of this policy, got \"rps\"",
    );
    assert_diagnostic(
        &found,
        "spec.anomaly.onState.flood.cap",
        "must be within minReplicas and maxReplicas (1..=10), got 50",
    );
    assert_diagnostic(
        &found,
        "spec.anomaly.notify[0].url",
        "must be an http or https URL",
    );
    assert_eq!(found.len(), 3, "{found}");
}

#[test]
fn a_receiver_is_named_or_given_as_a_url_not_both() {
    let found = diagnostics_of(&spec_plus(
        "  anomaly:\n    model: traffic-states\n    notify: [{receiver: pager, url: 'http://h/'}, {}, {receiver: 'Not A Name'}]\n",
    ));
    assert_diagnostic(
        &found,
        "spec.anomaly.notify[0]",
        "must set exactly one of receiver",
    );
    assert_diagnostic(
        &found,
        "spec.anomaly.notify[1]",
        "must set exactly one of receiver",
    );
    assert_diagnostic(
        &found,
        "spec.anomaly.notify[2].receiver",
        "must be an http or https URL",
    );
}

#[test]
fn anomaly_unknown_state_and_action() {
    let found = diagnostics_of(&spec_plus(
        "  anomaly: {model: m, onState: {flod: hold, flood: panic}}\n",
    ));
    assert_diagnostic(
        &found,
        "spec.anomaly.onState.flod",
        "must be one of normal, flash_crowd, flood, degraded, unknown, got the string \"flod\"",
    );
    assert_diagnostic(
        &found,
        "spec.anomaly.onState.flood",
        "must be one of scale, hold, noScaleDown, {cap: N}, got the string \"panic\"",
    );
}

#[test]
fn fallback_outside_bounds_or_unknown() {
    expect(
        &spec_plus("  fallback: {replicas: 50}\n"),
        "spec.fallback.replicas",
        "must be within minReplicas and maxReplicas (1..=10), got 50",
    );
    expect(
        &spec_plus("  fallback: {currentIfHigher: 0}\n"),
        "spec.fallback.currentIfHigher",
        "got 0",
    );
    expect(
        &spec_plus("  fallback: currentIfHigher\n"),
        "spec.fallback",
        "must be one of hold, {currentIfHigher: N}, {replicas: N}, {currentIfHigher: ..., failureThreshold: N, replicas: ...}, got the string \"currentIfHigher\"",
    );
    expect(
        &spec_plus("  fallback: {replicas: many}\n"),
        "spec.fallback.replicas",
        "must be a whole number, got the string \"many\"",
    );
}

// ---- YAML-level and hostile input ----

#[test]
fn non_utf8_bytes() {
    let mut bytes = BASE.as_bytes().to_vec();
    bytes.insert(20, 0xff);
    let found = parse_bytes(&bytes).unwrap_err();
    assert_diagnostic(&found, "", "is not UTF-8 text: invalid byte at offset 20");
}

#[test]
fn ten_megabyte_document() {
    let huge = format!("{BASE}  # {}\n", "x".repeat(10 * 1024 * 1024));
    expect(&huge, "", "larger than the 1048576-byte limit for a policy");
}

#[test]
fn deeply_nested_flow_sequences() {
    let deep = format!("spec: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    expect(
        &deep,
        "",
        "nests '[' or '{' deeper than 32 levels (at line 1)",
    );
}

#[test]
fn deeply_nested_mappings() {
    let deep = format!("spec: {}1{}", "{a: ".repeat(10_000), "}".repeat(10_000));
    expect(&deep, "", "nests '[' or '{' deeper than 32 levels");
}

#[test]
fn deeply_nested_block_sequences() {
    // Refused before parsing: the parser holds a document's events before its own limit.
    let deep = format!("spec:\n  {}x\n", "- ".repeat(100_000));
    expect(
        &deep,
        "",
        "nests block collections deeper than 64 levels (at line 2)",
    );
    // Nesting by indentation alone, one level a line.
    let deep: String = (0..65).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
    expect(
        &deep,
        "",
        "nests block collections deeper than 64 levels (at line 65)",
    );
    // 64 levels pass the check (and then fail as a policy).
    let deep: String = (0..64).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
    let found = swarmpilot::policy::parse_documents(&deep)
        .unwrap_err()
        .to_string();
    assert!(!found.contains("nests block"), "{found}");
}

#[test]
fn alias_bomb() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        let refs = vec![format!("*{prev}"); 10].join(", ");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    bomb.push_str("spec: *i\n");
    expect(&bomb, "", "anchors and aliases (&name, *name) are expanded");
}

#[test]
fn yaml_syntax_error_and_duplicate_keys() {
    expect("spec: [", "", "invalid YAML");
    expect(
        &with("maxReplicas: 10", "maxReplicas: 10\n  maxReplicas: 11"),
        "",
        "duplicate entry with key \"maxReplicas\"",
    );
}

#[test]
fn yaml_tags_and_non_string_keys() {
    expect(
        &with("{utilization: 70}", "!utilization 70"),
        "spec.metrics[0].target",
        "YAML tags are not supported",
    );
    expect(
        &with("maxReplicas: 10", "maxReplicas: 10\n  7: seven"),
        "spec",
        "field names must be strings, got 7",
    );
}

#[test]
fn a_scalar_is_not_a_policy() {
    expect("hello", "", "must be a mapping, got the string \"hello\"");
}

#[test]
fn empty_stream() {
    expect("", "", "no ScalingPolicy document found");
    expect("---\n---\n", "", "no ScalingPolicy document found");
}

// ---- several documents, several problems ----

#[test]
fn later_documents_are_named_by_position() {
    let stream = format!(
        "{BASE}---\n{}",
        BASE.replace("name: web", "name: api")
            .replace("maxReplicas: 10", "maxReplicas: 0")
    );
    let found = diagnostics_of(&stream);
    assert_eq!(
        found.to_string(),
        "document[1].spec.maxReplicas: must be at least 1, got 0"
    );
}

#[test]
fn two_documents_for_one_service() {
    let stream = format!("{BASE}---\n{BASE}");
    expect(
        &stream,
        "document[1]",
        "service \"web\" already has a policy in document[0]",
    );
}

#[test]
fn parse_wants_exactly_one_document() {
    let stream = format!("{BASE}---\n{}", BASE.replace("name: web", "name: api"));
    let found = parse(&stream).unwrap_err();
    assert_diagnostic(&found, "", "expected one ScalingPolicy document, found 2");
    assert_eq!(parse_documents(&stream).unwrap().len(), 2);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "apiVersion: swarmpilot.io/v1alpha1
kind: ScalingPolicy
metadata: {name: web}
spec:
  minReplicas: 5
  maxReplicas: 3
  interval: 0s
  metrics:
  - name: rps
    prometheus: {query: 'x{s=\"{{svc}}\"}'}
    target: {averageValue: -1}
  behavior:
    scaleDown: {stabilizationWindow: 2h, policies: [{type: Percent, value: 0, period: 1h}]}
  fallback: {replicas: 9}
";
    let found = diagnostics_of(text);
    let lines: Vec<String> = found.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        vec![
            "spec.minReplicas: must not exceed maxReplicas (3), got 5",
            "spec.interval: must be between 1s and 1h, got 0s",
            "spec.metrics[0].prometheus.query: unknown placeholder {{svc}}; known placeholders: {{service}}, {{stack}}",
            "spec.metrics[0].target.averageValue: must be a finite number greater than 0, got -1",
            "spec.behavior.scaleDown.stabilizationWindow: must be at most 1h (3600s), got 2h",
            "spec.behavior.scaleDown.policies[0].value: must be greater than 0, got 0",
            "spec.behavior.scaleDown.policies[0].period: must be between 1s and 30m (1800s), got 1h",
            "spec.fallback.replicas: must be within minReplicas and maxReplicas (5..=3), got 9",
        ]
    );
}

#[test]
fn the_number_of_diagnostics_is_capped() {
    let mut text = BASE.to_owned();
    for i in 0..500 {
        text.push_str(&format!("  unknown{i}: 1\n"));
    }
    let found = diagnostics_of(&text);
    assert_eq!(found.len(), swarmpilot::policy::diagnostic::MAX_DIAGNOSTICS);
    assert!(found
        .0
        .last()
        .unwrap()
        .message
        .contains("more problems not shown"));
}

// ---- valid documents ----

#[test]
fn design_example_is_valid() {
    let text = include_str!("../../examples/policies/web.yaml");
    let policy = parse(text).unwrap();
    assert_eq!(policy.service(), "shop_web");
    assert_eq!(policy.spec.min_replicas, 2);
    assert_eq!(policy.spec.fallback, Fallback::Hold.into());
    assert_eq!(policy.spec.metrics.len(), 2);
}

#[test]
fn scrape_example_with_current_if_higher_is_valid() {
    let policy = parse(include_str!("../../examples/policies/api-scrape.yaml")).unwrap();
    assert_eq!(policy.spec.fallback, Fallback::CurrentIfHigher(6).into());
    assert_eq!(policy.spec.min_replicas, 1);
}

#[test]
fn defaults_follow_hpa() {
    let policy = parse(BASE).unwrap();
    assert_eq!(policy.spec.min_replicas, 1);
    assert_eq!(policy.spec.interval.to_string(), "15s");
    let up = policy.spec.behavior.scale_up();
    assert_eq!(up.stabilization_window.to_string(), "0s");
    assert_eq!(up.policies.len(), 2);
    let down = policy.spec.behavior.scale_down();
    assert_eq!(down.stabilization_window.to_string(), "5m");
    assert_eq!(down.tolerance, 0.1);
}

/// Scale to zero (KEDA's `minReplicaCount: 0`, `idleReplicaCount`, `cooldownPeriod`,
/// `activationTargetValue`) and `fallback.failureThreshold`: what is refused, and why.
#[test]
fn idle_and_failure_threshold_fields() {
    let prometheus = "    prometheus: {query: 'sum(queue_depth)'}\n";
    let zero = with("spec:\n", "spec:\n  minReplicas: 0\n");
    // A policy that can go idle needs a metric that reads with no task running.
    expect(&zero, "spec.metrics", "reads with no task running");
    let zero_prom = zero
        .replace("    docker: {resource: cpu}\n", prometheus)
        .replace("{utilization: 70}", "{averageValue: 5}");
    parse(&zero_prom).expect("minReplicas 0 with a prometheus metric is valid");
    expect(
        &format!("{zero_prom}  idleReplicas: 1\n"),
        "spec.idleReplicas",
        "must be less than minReplicas (and 0 when minReplicas is 0), got 1",
    );
    expect(
        &spec_plus("  cooldownPeriod: 60s\n"),
        "spec.cooldownPeriod",
        "applies only to a policy that can go idle",
    );
    expect(
        &with(
            "    target: {utilization: 70}\n",
            "    target: {utilization: 70}\n    activation: 3\n",
        ),
        "spec.metrics[0].activation",
        "applies only to a policy that can go idle",
    );
    expect(
        &spec_plus("  fallback: {replicas: 3, failureThreshold: 0}\n"),
        "spec.fallback.failureThreshold",
        "must be at least 1, got 0",
    );
    expect(
        &spec_plus("  fallback: {replicas: 3, currentIfHigher: 2, failureThreshold: 2}\n"),
        "spec.fallback",
        "at most one of replicas and currentIfHigher",
    );
    let detailed = parse(&spec_plus(
        "  fallback: {currentIfHigher: 6, failureThreshold: 5}\n",
    ))
    .unwrap();
    assert_eq!(detailed.spec.fallback.action, Fallback::CurrentIfHigher(6));
    assert_eq!(detailed.spec.fallback.failure_threshold(), 5);
}

// ---- schedules: each bad field named with its value ----

fn schedule(zone: &str, start: &str, end: &str, desired: u32) -> String {
    spec_plus(&format!(
        "  schedules:\n  - name: business-hours\n    timezone: {zone:?}\n    start: {start:?}\n    end: {end:?}\n    desiredReplicas: {desired}\n"
    ))
}

#[test]
fn schedules_name_the_bad_field_and_value() {
    parse(&schedule("Europe/Berlin", "0 8 * * 1-5", "0 18 * * 1-5", 3)).unwrap();
    let path = "spec.schedules[0]";
    expect(
        &schedule("Europe/Berln", "0 8 * * *", "0 18 * * *", 3),
        &format!("{path}.timezone"),
        "unknown IANA time zone \"Europe/Berln\"",
    );
    expect(
        &schedule("UTC", "0 25 * * *", "0 18 * * *", 3),
        &format!("{path}.start"),
        "not a cron pattern \"0 25 * * *\"",
    );
    expect(
        &schedule("UTC", "0 8 * * *", "at six", 3),
        &format!("{path}.end"),
        "not a cron pattern \"at six\"",
    );
    expect(
        &schedule("UTC", "0 8 * * *", "0 0 31 2 *", 3),
        &format!("{path}.end"),
        "\"0 0 31 2 *\" is never reached",
    );
    expect(
        &schedule("UTC", "0 8 * * *", "0 8 * * *", 3),
        &format!("{path}.end"),
        "never be active",
    );
    expect(
        &schedule("UTC", "0 8 * * *", "0 18 * * *", 11),
        &format!("{path}.desiredReplicas"),
        "must be between 1 and maxReplicas (10), got 11",
    );
    expect(
        &schedule("UTC", "0 8 * * *", "0 18 * * *", 0),
        &format!("{path}.desiredReplicas"),
        "got 0",
    );
    let twice = spec_plus(
        "  schedules:\n  - {name: a, timezone: UTC, start: '0 8 * * *', end: '0 9 * * *', desiredReplicas: 2}\n  - {name: a, timezone: UTC, start: '0 8 * * *', end: '0 9 * * *', desiredReplicas: 2}\n",
    );
    expect(
        &twice,
        "spec.schedules[1].name",
        "\"a\" names another schedule too",
    );
}
