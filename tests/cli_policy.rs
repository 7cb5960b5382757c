//! The policy commands end to end on the real local Swarm: `apply`, `get`, `describe` and
//! `delete` through the built binary, and `apply` losing a race to a concurrent
//! `docker service update` and recovering without overwriting it.

mod common;
#[path = "common/raced.rs"]
mod raced;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::{docker, swarm, TestService};
use raced::RacedSwarm;
use swarmpilot::cli::apply::{apply_policy, Applied};
use swarmpilot::cli::delete::delete_policy;
use swarmpilot::policy::labels::{self, POLICY};
use swarmpilot::swarm::Swarm;

fn policy_yaml(service: &str, max: u32) -> String {
    format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: {service}}}\nspec:\n  minReplicas: 1\n  maxReplicas: {max}\n  mode: recommend\n  metrics:\n    - name: cpu\n      docker: {{resource: cpu}}\n      target: {{utilization: 70}}\n"
    )
}

fn swarmpilot(args: &[&str]) -> Output {
    common::ensure_swarm();
    Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(args)
        .output()
        .expect("run swarmpilot")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn succeeded(output: Output) -> String {
    assert!(
        output.status.success(),
        "swarmpilot failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Fails with one `error:` line and no panic.
fn failed_cleanly(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure: {}",
        stdout(output)
    );
    let err = stderr(output);
    assert!(!err.contains("panicked"), "{err}");
    let last = err.lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("error: "), "{err}");
    last
}

#[tokio::test]
async fn apply_get_describe_delete_on_a_real_service() {
    let swarm = swarm().await;
    let svc = TestService::idle("swarm-cli", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy_yaml(&svc.name, 7)).unwrap();
    let file = file.to_str().unwrap();

    let out = succeeded(swarmpilot(&["apply", "-f", file]));
    assert_eq!(out, format!("service/{} configured\n", svc.name));
    let stored = swarm.inspect_service(&svc.id).await.unwrap();
    let policy = labels::decode(&svc.name, &stored.labels).unwrap().unwrap();
    assert_eq!(policy.spec.max_replicas, 7);
    let out = succeeded(swarmpilot(&["apply", "-f", file]));
    assert_eq!(out, format!("service/{} unchanged\n", svc.name));

    let table = succeeded(swarmpilot(&["get"]));
    let row = table
        .lines()
        .find(|l| l.starts_with(&svc.name))
        .unwrap_or_else(|| panic!("{} not in\n{table}", svc.name));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // TARGETS is `cpu <unknown>/70%`: the current value comes from the operator's API
    // (`--server`), which this test does not run; REPLICAS is current/desired.
    assert_eq!(
        cells,
        [
            svc.name.as_str(),
            "recommend",
            "cpu",
            "<unknown>/70%",
            "1",
            "7",
            "0/-",
            "-",
            "ok"
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&succeeded(swarmpilot(&["get", "-o", "json"]))).unwrap();
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == svc.name.as_str())
        .expect("row in JSON");
    assert_eq!(row["maxReplicas"], 7);

    let yaml: serde_yaml::Value = serde_yaml::from_str(&succeeded(swarmpilot(&[
        "describe", &svc.name, "-o", "yaml",
    ])))
    .unwrap();
    assert_eq!(yaml["policy"]["spec"]["maxReplicas"].as_u64(), Some(7));
    assert_eq!(
        yaml["policy"]["spec"]["service"].as_str(),
        Some(svc.name.as_str())
    );
    // The defaults are written out: HPA's scale-down stabilization window.
    assert!(!yaml["policy"]["spec"]["behavior"]["scaleDown"]["stabilizationWindow"].is_null());
    let report = succeeded(swarmpilot(&["describe", &svc.name]));
    assert!(report.contains("Policy:    ok"), "{report}");

    let out = succeeded(swarmpilot(&["delete", &svc.name]));
    assert_eq!(out, format!("service/{} policy deleted\n", svc.name));
    let stored = swarm.inspect_service(&svc.id).await.unwrap();
    assert!(!stored.labels.contains_key(POLICY));
    let last = failed_cleanly(&swarmpilot(&["delete", &svc.name]));
    assert!(last.contains("has no policy"), "{last}");
}

#[tokio::test]
async fn an_invalid_document_anywhere_means_nothing_is_written() {
    let swarm = swarm().await;
    let svc = TestService::idle("swarm-cli-invalid", &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), policy_yaml(&svc.name, 4)).unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        policy_yaml("other", 4).replace("minReplicas: 1", "minReplicas: 9"),
    )
    .unwrap();
    let output = swarmpilot(&["apply", "-f", dir.path().to_str().unwrap()]);
    let last = failed_cleanly(&output);
    assert!(last.contains("nothing applied"), "{last}");
    assert!(stderr(&output).contains("b.yaml"), "{}", stderr(&output));
    let stored = swarm.inspect_service(&svc.id).await.unwrap();
    assert!(stored.labels.is_empty(), "{:?}", stored.labels);
}

#[tokio::test]
async fn a_missing_service_is_one_clear_error_line() {
    let name = common::unique_name("swarm-cli-missing");
    let last = failed_cleanly(&swarmpilot(&["describe", &name]));
    assert_eq!(last, format!("error: no such service: {name}"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, policy_yaml(&name, 3)).unwrap();
    let output = swarmpilot(&["apply", "-f", file.to_str().unwrap()]);
    failed_cleanly(&output);
    assert!(
        stderr(&output).contains(&format!("no such service: {name}")),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn apply_loses_a_race_and_recovers_without_overwriting_the_concurrent_change() {
    let svc = TestService::idle("swarm-cli-race", &["--label", "io.swarmpilot.max=3"]);
    let raced = RacedSwarm::new(swarm().await);
    let policy = swarmpilot::policy::parse(&policy_yaml(&svc.name, 5)).unwrap();

    assert_eq!(
        apply_policy(&raced, &policy).await.unwrap(),
        Applied::Configured
    );
    assert_eq!(
        raced.writes(),
        2,
        "the first write must have lost the race and been retried once"
    );
    let stored = raced.inner.inspect_service(&svc.id).await.unwrap();
    assert_eq!(
        stored.labels.get("concurrent").map(String::as_str),
        Some("yes")
    );
    // The shorthand it replaces is gone, and the policy is exactly the one applied.
    assert!(
        !stored.labels.contains_key(labels::MAX),
        "{:?}",
        stored.labels
    );
    assert_eq!(
        labels::decode(&svc.name, &stored.labels).unwrap(),
        Some(policy)
    );

    // Delete races the same way and also keeps the concurrent change.
    let raced = RacedSwarm::new(raced.inner);
    docker(&[
        "service",
        "update",
        "--detach",
        "--label-rm",
        "concurrent",
        &svc.name,
    ]);
    assert!(delete_policy(&raced, &svc.name).await.unwrap());
    assert_eq!(raced.writes(), 2);
    let stored = raced.inner.inspect_service(&svc.id).await.unwrap();
    assert_eq!(
        stored.labels,
        BTreeMap::from([("concurrent".to_owned(), "yes".to_owned())])
    );
}
