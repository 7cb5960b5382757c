//! `swarmpilot validate` and `swarmpilot schema`, run as the built binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const VALID: &str = "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
spec:\n  maxReplicas: 4\n  metrics:\n  - name: cpu\n    docker: {resource: cpu}\n    target: {utilization: 70}\n";

const INVALID: &str = "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: api}\n\
spec:\n  minReplicas: 9\n  maxReplicas: 4\n  metrics: []\n  behavior: {scaleDown: {policies: [{type: Percent, value: 0, period: 15s}]}}\n";

fn swarmpilot(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        // The command stops reading past its size limit, so a large input may meet a closed pipe.
        if let Err(error) = input.write_all(bytes) {
            assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-web.yaml"), VALID).unwrap();
    std::fs::write(dir.path().join("b-api.yml"), INVALID).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
    dir
}

#[test]
fn validate_a_directory_exits_1_with_every_diagnostic() {
    let dir = policy_dir();
    let out = swarmpilot(&["validate", "-f", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let web = dir.path().join("a-web.yaml").display().to_string();
    let api = dir.path().join("b-api.yml").display().to_string();
    let expected = format!(
        "ok {web}: policy web -> service web\n\
         {api}: spec.minReplicas: must not exceed maxReplicas (4), got 9\n\
         {api}: spec.metrics: must list at least one metric, or spec.schedules at least one schedule\n\
         {api}: spec.behavior.scaleDown.policies[0].value: must be greater than 0, got 0\n"
    );
    assert_eq!(stdout, expected);
    assert!(!stdout.contains("notes.txt"));
}

#[test]
fn validate_outputs_json() {
    let dir = policy_dir();
    let out = swarmpilot(
        &["validate", "-o", "json", "-f", dir.path().to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["files"][0]["valid"], true);
    assert_eq!(report["files"][0]["policies"][0]["service"], "web");
    let diagnostics = report["files"][1]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 3);
    assert_eq!(diagnostics[0]["path"], "spec.minReplicas");
    assert_eq!(
        diagnostics[0]["message"],
        "must not exceed maxReplicas (4), got 9"
    );
}

#[test]
fn validate_reads_stdin_and_succeeds_on_valid_input() {
    let out = swarmpilot(&["validate", "-f", "-"], Some(VALID.as_bytes()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok <stdin>: policy web -> service web\n");
}

#[test]
fn validate_rejects_non_utf8_and_oversized_stdin() {
    let out = swarmpilot(&["validate", "-f", "-"], Some(b"spec: \xff\xfe\n"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        "<stdin>: is not UTF-8 text: invalid byte at offset 6\n"
    );
    let huge = vec![b'#'; 3 * 1024 * 1024];
    let out = swarmpilot(&["validate", "-f", "-"], Some(&huge));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("larger than the 1048576-byte limit"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_missing_file_is_one_line_on_stderr() {
    let out = swarmpilot(&["validate", "-f", "/nonexistent/policy.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read /nonexistent/policy.yaml: "),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = swarmpilot(&["validate", "-f", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: no .yaml or .yml files in "));
}

#[test]
fn schema_prints_the_json_schema_or_the_crd() {
    let out = swarmpilot(&["schema"], None);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "ScalingPolicy");
    let out = swarmpilot(&["schema", "-o", "yaml"], None);
    assert!(text(&out.stdout).contains("kind: CustomResourceDefinition"));
}

#[test]
fn schema_writes_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("crds");
    let out = swarmpilot(&["schema", "--out-dir", target.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for name in ["scalingpolicy.schema.json", "scalingpolicy.crd.yaml"] {
        assert_eq!(
            std::fs::read_to_string(target.join(name)).unwrap(),
            std::fs::read_to_string(committed.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn validates_the_policies_in_a_compose_files_deploy_labels() {
    let stack = "version: '3.8'\nservices:\n  web:\n    image: app:1\n    deploy:\n      labels:\n        io.swarmpilot.max: '6'\n        io.swarmpilot.cpu: '70'\n  api:\n    image: app:1\n    deploy:\n      labels:\n        - io.swarmpilot.max=0\n        - io.swarmpilot.cpu=70\n";
    let output = swarmpilot(&["validate", "-f", "-"], Some(stack.as_bytes()));
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("<stdin>: services.api.deploy.labels[io.swarmpilot.max]: "),
        "{stdout}"
    );
    let fixed = stack.replace("io.swarmpilot.max=0", "io.swarmpilot.max=3");
    let output = swarmpilot(&["validate", "-f", "-"], Some(fixed.as_bytes()));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("policy api -> service api"), "{stdout}");
}
