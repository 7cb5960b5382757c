//! Compose files: both label forms, errors naming service and field, and what a redeploy carries.

use super::*;

const STACK: &str = r#"
version: "3.8"
x-common: &common
  image: app:1
services:
  web:
    <<: *common
    unknown-key: {kept: true}
    deploy:
      replicas: 2
      labels:
        io.swarmpilot.min: "2"
        io.swarmpilot.max: "6"
        io.swarmpilot.cpu: "70"
        team: shop
  api:
    image: app:1
    deploy:
      labels:
        - "io.swarmpilot.policy={minReplicas: 1, maxReplicas: 3, metrics: [{name: cpu, docker: {resource: cpu}, target: {utilization: 60}}]}"
        - plain
  db:
    image: db:1
"#;

fn parsed(text: &str) -> Vec<ComposeService> {
    let document: Yaml = serde_yaml::from_str(text).unwrap();
    assert!(is_compose(&document));
    services(&document).unwrap()
}

fn running(labels: &[(&str, &str)], replicas: u64) -> Running {
    Running {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        replicas: Some(replicas),
    }
}

#[test]
fn reads_both_label_forms_and_the_replica_count() {
    let found = parsed(STACK);
    let web = &found[0];
    assert_eq!((web.key.as_str(), web.replicas), ("web", Some(2)));
    assert_eq!(web.labels["io.swarmpilot.max"], "6");
    assert_eq!(web.labels["team"], "shop");
    let api = &found[1];
    assert_eq!(api.replicas, None);
    assert!(api.labels[POLICY].starts_with("{minReplicas"));
    assert_eq!(api.labels["plain"], "");
    assert!(found[2].labels.is_empty());
    let policies = validate(&found).unwrap();
    let names: Vec<&str> = policies.iter().map(|p| p.service()).collect();
    assert_eq!(names, ["web", "api"]);
    let policy: Yaml = serde_yaml::from_str("kind: ScalingPolicy").unwrap();
    assert!(!is_compose(&policy));
}

#[test]
fn errors_name_the_service_and_the_field() {
    let bad = STACK
        .replace(r#"io.swarmpilot.max: "6""#, r#"io.swarmpilot.max: "0""#)
        .replace("maxReplicas: 3", "maxReplicas: -3");
    let problems = validate(&parsed(&bad)).unwrap_err();
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("services.web.deploy.labels[io.swarmpilot.max]: ")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("services.api.deploy.labels[io.swarmpilot.policy] at spec.maxReplicas")
            && l.contains("maxReplicas")),
        "{lines:?}"
    );

    let wrong: Yaml =
        serde_yaml::from_str("services: {web: {deploy: {replicas: two, labels: [1]}}}").unwrap();
    let lines: Vec<String> = services(&wrong)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        lines
            .contains(&"services.web.deploy.labels[0]: must be a `key=value` string, got 1".into()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"services.web.deploy.replicas: must be a whole number, got two".into()),
        "{lines:?}"
    );
}

#[test]
fn a_whole_policy_naming_the_stack_service_validates_under_that_name() {
    let text = r#"
services:
  web:
    deploy:
      labels:
        io.swarmpilot.policy: |
          apiVersion: swarmpilot.io/v1alpha1
          kind: ScalingPolicy
          metadata: {name: web}
          spec:
            service: shop_web
            maxReplicas: 5
            metrics: [{name: cpu, docker: {resource: cpu}, target: {utilization: 70}}]
"#;
    let policies = validate(&parsed(text)).unwrap();
    assert_eq!(policies[0].service(), "shop_web");
    let elsewhere = text.replace("shop_web", "shop_api");
    let problems = validate(&parsed(&elsewhere)).unwrap_err();
    assert!(
        problems.iter().any(|d| d.path.contains("spec.service")),
        "{problems:?}"
    );
}

#[test]
fn a_redeploy_keeps_the_count_and_the_operators_labels() {
    let services = parsed(STACK);
    let state = r#"{"events":[]}"#;
    let pin = r#"{"replicas":5,"expiresAt":"2100-01-01T00:00:00Z"}"#;
    let running = BTreeMap::from([
        (
            "shop_web".to_owned(),
            running(
                &[
                    ("io.swarmpilot.min", "2"),
                    ("io.swarmpilot.max", "6"),
                    ("io.swarmpilot.cpu", "70"),
                    (STATE, state),
                    (OVERRIDE, pin),
                    ("team", "shop"),
                ],
                5,
            ),
        ),
        ("shop_db".to_owned(), running(&[], 3)),
    ]);
    let carried = carry_over("shop", &services, &running).unwrap();
    assert_eq!(carried.len(), 1, "{carried:?}");
    assert_eq!(carried[0].key, "web");
    assert_eq!(carried[0].replicas, 5);
    assert_eq!(
        carried[0].labels,
        BTreeMap::from([
            (STATE.to_owned(), state.to_owned()),
            (OVERRIDE.to_owned(), pin.to_owned())
        ])
    );
}

#[test]
fn a_changed_bound_in_the_file_still_applies() {
    let services = parsed(&STACK.replace(r#"io.swarmpilot.max: "6""#, r#"io.swarmpilot.max: "4""#));
    let running = BTreeMap::from([(
        "shop_web".to_owned(),
        running(
            &[("io.swarmpilot.max", "6"), ("io.swarmpilot.cpu", "70")],
            6,
        ),
    )]);
    let carried = carry_over("shop", &services, &running).unwrap();
    assert_eq!(carried[0].replicas, 4);
    // The file's policy applies: the running shorthand labels are not carried beside it.
    assert!(carried[0].labels.is_empty(), "{:?}", carried[0].labels);
}

#[test]
fn a_policy_written_by_apply_is_carried_when_the_file_has_none() {
    let services = parsed("services: {db: {image: db:1, deploy: {replicas: 1}}}");
    let applied = "{service: shop_db, minReplicas: 2, maxReplicas: 8, metrics: [{name: cpu, docker: {resource: cpu}, target: {utilization: 70}}]}";
    let running = BTreeMap::from([("shop_db".to_owned(), running(&[(POLICY, applied)], 1))]);
    let carried = carry_over("shop", &services, &running).unwrap();
    // Within the carried policy's bounds: 1 is below its minimum of 2.
    assert_eq!(carried[0].replicas, 2);
    assert_eq!(carried[0].labels[POLICY], applied);

    let overlay = overlay(&carried, Some(&Yaml::from("3.8")));
    let text = serde_yaml::to_string(&overlay).unwrap();
    let back: Yaml = serde_yaml::from_str(&text).unwrap();
    assert_eq!(back["version"], Yaml::from("3.8"));
    assert_eq!(back["services"]["db"]["deploy"]["replicas"], Yaml::from(2));
    assert_eq!(
        back["services"]["db"]["deploy"]["labels"][POLICY],
        Yaml::from(applied)
    );
}

#[test]
fn services_not_running_global_or_without_policy_deploy_as_written() {
    let services = parsed(STACK);
    let global = Running {
        labels: BTreeMap::new(),
        replicas: None,
    };
    let running = BTreeMap::from([("shop_web".to_owned(), global)]);
    assert!(carry_over("shop", &services, &running).unwrap().is_empty());
    assert!(carry_over("shop", &services, &BTreeMap::new())
        .unwrap()
        .is_empty());
}

#[test]
fn later_files_override_earlier_ones() {
    let merged = merge(vec![
        parsed(STACK),
        parsed("services: {web: {deploy: {replicas: 3, labels: {io.swarmpilot.max: '9'}}}}"),
    ]);
    assert_eq!(merged[0].replicas, Some(3));
    assert_eq!(merged[0].labels["io.swarmpilot.max"], "9");
    assert_eq!(merged[0].labels["team"], "shop");
}

#[test]
fn the_snippet_is_a_compose_fragment_with_the_policy() {
    let policy = validate(&parsed(STACK)).unwrap().remove(0);
    let snippet = labels_snippet("web", &policy);
    let back = parsed(&snippet);
    assert_eq!(back[0].key, "web");
    assert_eq!(policy_of(&back[0], "web").unwrap(), Some(policy));
}
