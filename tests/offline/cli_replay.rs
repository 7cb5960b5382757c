//! `swarmpilot replay`, run as the built binary: the table, the CSV and plots, and bad input.

use std::path::Path;
use std::process::{Command, Output};

const POLICY: &str = "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
spec:\n  minReplicas: 1\n  maxReplicas: 10\n  metrics:\n  - name: rps\n    prometheus: {query: 'sum(x)'}\n    \
target: {averageValue: 50}\n  behavior: {scaleDown: {stabilizationWindow: 60s}}\n";

fn swarmpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(args)
        .output()
        .unwrap()
}

/// `swarmpilot replay --policy P --trace T --capacity-per-replica C` plus `extra`.
fn replay(policy: &str, trace: &str, capacity: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "replay",
        "--policy",
        policy,
        "--trace",
        trace,
        "--capacity-per-replica",
        capacity,
    ];
    args.extend_from_slice(extra);
    swarmpilot(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A policy and a step trace (40/s for a minute, then 200/s for two) in a temp dir.
fn files(trace: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("web.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let csv = dir.path().join("trace.csv");
    std::fs::write(&csv, trace).unwrap();
    let (p, c) = (path(&policy), path(&csv));
    (dir, p, c)
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn step_trace() -> String {
    let mut text = "timestamp,rps,cpu\n".to_owned();
    for t in (0..180).step_by(5) {
        let rps = if t < 60 { 40 } else { 200 };
        text.push_str(&format!(
            "2024-05-01T00:{:02}:{:02}.000Z,{rps},10\n",
            t / 60,
            t % 60
        ));
    }
    text
}

#[test]
fn prints_the_table_and_writes_csv_and_plots() {
    let (dir, policy, trace) = files(&step_trace());
    let series = path(&dir.path().join("series.csv"));
    let svg = path(&dir.path().join("plot.svg"));
    let png = path(&dir.path().join("plot.png"));
    let output = replay(
        &policy,
        &trace,
        "50",
        &["--csv", &series, "--plot", &svg, "--plot", &png],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .split_whitespace()
            .skip(name.split_whitespace().count())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("under-provisioned seconds")[..2], ["30", "30"]);
    assert_eq!(row("replica-hours")[..2], ["0.15", "0.15"]);
    assert_eq!(row("max replicas")[..2], ["4", "4"]);

    let csv = std::fs::read_to_string(&series).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("timestamp,demand,policy_capacity,policy_replicas"));
    assert_eq!(lines.count(), 36);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(&png_bytes[1..4], b"PNG");
}

#[test]
fn json_output_carries_both_summaries() {
    let (_dir, policy, trace) = files(&step_trace());
    let output = replay(&policy, &trace, "50", &["-o", "json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["policySummary"]["underProvisionedSecs"], 30.0);
    assert_eq!(report["baselineSummary"]["maxReplicas"], 4);
    assert_eq!(report["column"], "rps");
}

fn fails_with(output: Output, expected: &[&str]) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{}", text(&output.stdout));
    for part in expected {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
}

#[test]
fn a_missing_column_is_named_with_the_ones_there_are() {
    let (_dir, policy, trace) = files(&step_trace());
    fails_with(
        replay(&policy, &trace, "50", &["--metric", "qps"]),
        &["no column \"qps\"", "rps, cpu"],
    );
}

#[test]
fn a_non_numeric_cell_is_named_by_row_and_column() {
    let mut trace = step_trace();
    trace = trace.replacen(",200,", ",lots,", 1);
    let (_dir, policy, trace) = files(&trace);
    fails_with(
        replay(&policy, &trace, "50", &[]),
        &["row 14", "column \"rps\"", "\"lots\" is not a number"],
    );
}

#[test]
fn an_unknown_policy_file_and_bad_options_are_refused() {
    let (dir, _policy, trace) = files(&step_trace());
    let missing = path(&dir.path().join("nope.yaml"));
    fails_with(
        replay(&missing, &trace, "50", &[]),
        &["cannot read policy", "nope.yaml"],
    );
    let (_dir, policy, trace) = files(&step_trace());
    fails_with(
        replay(&policy, &trace, "0", &[]),
        &["--capacity-per-replica must be a positive number"],
    );
    fails_with(
        replay(&policy, &trace, "5", &["--from", "2030-01-01"]),
        &["no two rows between --from and --to"],
    );
    fails_with(
        replay(&policy, &trace, "5", &["--plot", "x.gif"]),
        &[".svg or .png"],
    );
}

#[test]
fn a_two_column_file_is_the_load_metric() {
    let mut plain = "timestamp,value\n".to_owned();
    for t in 0..36 {
        plain.push_str(&format!(
            "{},{}\n",
            1_714_521_600 + t * 5,
            if t < 12 { 40 } else { 200 }
        ));
    }
    let (_dir, policy, trace) = files(&plain);
    let output = replay(&policy, &trace, "50", &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("(value as rps)"), "{stdout}");
}

#[test]
fn a_metric_window_is_named_in_the_header_and_checked_against_the_rows() {
    let (_dir, policy, trace) = files(&step_trace());
    let dir = tempfile::tempdir().unwrap();
    let series = path(&dir.path().join("series.csv"));
    let output = replay(
        &policy,
        &trace,
        "50",
        &["--metric-window", "1m", "--csv", &series],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("(rps as rps, read as its mean over the last 1m)"),
        "{stdout}"
    );
    // 40/s for a minute, then 200/s: at 90 s the decision saw the mean of 30 s of each.
    let csv = std::fs::read_to_string(&series).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",observed"));
    let at_90 = lines
        .find(|l| l.starts_with("2024-05-01T00:01:30.000Z,"))
        .unwrap();
    assert!(
        at_90.starts_with("2024-05-01T00:01:30.000Z,200,"),
        "{at_90}"
    );
    assert!(at_90.ends_with(",120"), "{at_90}");
    fails_with(
        replay(&policy, &trace, "50", &["--metric-window", "3s"]),
        &["--metric-window 3s is shorter than the trace's row spacing 5s"],
    );
}
