//! `model eval` over traces in the `swarmpilot record` CSV format.

use std::io::Write;
use std::path::Path;

use swarmpilot::decide::signals::Member;
use swarmpilot::models::eval::{eval_trace, EvalOptions, EvalReport};
use swarmpilot::policy::TrafficState;

/// Two hours at 5 s of a wavy load, then ten minutes of a flood: 10x the requests, a third
/// of the request size, a tenth of the response size, 30 % errors and 3x latency.
fn write_trace(path: &Path, labeled: bool) {
    let mut file = std::fs::File::create(path).unwrap();
    let label = if labeled { ",label" } else { "" };
    writeln!(
        file,
        "timestamp,requests,errors,latency,receive_bytes,transmit_bytes{label}"
    )
    .unwrap();
    let start = 1_700_000_000i64;
    for k in 0..1560i64 {
        let flood = k >= 1440;
        let wave = 100.0 + 20.0 * (k as f64 / 120.0).sin() + ((k * 7919) % 13) as f64;
        let requests = if flood { wave * 10.0 } else { wave };
        let errors = requests * if flood { 0.3 } else { 0.002 };
        let latency = if flood { 0.15 } else { 0.05 };
        let rx = requests * if flood { 150.0 } else { 500.0 };
        let tx = requests * if flood { 2_000.0 } else { 20_000.0 };
        let state = if flood { ",flood" } else { ",normal" };
        let state = if labeled { state } else { "" };
        // Epoch seconds here; RFC 3339 in the other test, as `record` writes.
        let stamp = if labeled {
            chrono::DateTime::from_timestamp(start + 5 * k, 0)
                .unwrap()
                .to_rfc3339()
        } else {
            (start + 5 * k).to_string()
        };
        writeln!(
            file,
            "{stamp},{requests},{errors},{latency},{rx},{tx}{state}"
        )
        .unwrap();
    }
}

#[test]
fn the_classifier_reports_states_and_a_confusion_matrix_for_a_labeled_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    write_trace(&path, true);
    let report = eval_trace("traffic-states", &path, &EvalOptions::default())
        .unwrap()
        .report;
    let EvalReport::States {
        rows,
        distribution,
        confusion,
        ..
    } = &report
    else {
        panic!("{report:?}")
    };
    assert_eq!(distribution.values().sum::<usize>(), *rows);
    let confusion = confusion
        .as_ref()
        .expect("a labeled trace gives a confusion matrix");
    assert_eq!(confusion.values().sum::<usize>(), *rows);
    let normal_ok = confusion
        .get(&("normal".into(), TrafficState::Normal))
        .copied()
        .unwrap_or(0);
    let normal_all: usize = confusion
        .iter()
        .filter(|((l, _), _)| l == "normal")
        .map(|(_, n)| n)
        .sum();
    assert!(
        normal_ok * 10 >= normal_all * 9,
        "steady traffic should be mostly normal: {report}"
    );
    let flood_ok = confusion
        .get(&("flood".into(), TrafficState::Flood))
        .copied()
        .unwrap_or(0);
    let flood_all: usize = confusion
        .iter()
        .filter(|((l, _), _)| l == "flood")
        .map(|(_, n)| n)
        .sum();
    assert!(
        flood_ok * 2 >= flood_all,
        "a blatant flood should mostly be called one: {report}"
    );
    assert!(report.to_string().contains("confusion"));
}

#[test]
fn the_forecaster_reports_mase_against_the_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    write_trace(&path, false);
    let report = eval_trace("traffic-forecast", &path, &EvalOptions::default())
        .unwrap()
        .report;
    let EvalReport::Forecast {
        column,
        origins,
        members,
        ensemble,
        ensemble_per_step,
        in_use,
        metric_window,
    } = &report
    else {
        panic!("{report:?}")
    };
    assert_eq!(column, "requests");
    assert_eq!(*metric_window, None);
    assert_eq!(*origins, 1560 - 59 - 12);
    for member in [
        Member::Combined,
        Member::Model,
        Member::Autoregressive,
        Member::Holt,
        Member::Naive,
    ] {
        let mase = report
            .mase_of(member)
            .expect("every member but seasonal is scored");
        assert!(mase.is_finite() && mase > 0.0, "{member}: {report}");
    }
    // The autoregression (and so the combined member) waits for 8 minutes of changes; the
    // model's window is 5 minutes.
    for score in members {
        let expected = match score.member {
            Member::Combined | Member::Autoregressive => origins - (97 - 60),
            _ => *origins,
        };
        assert_eq!(score.origins, expected, "{}: {report}", score.member);
    }
    assert_eq!(
        report.mase_of(Member::SeasonalNaive),
        None,
        "a two-hour trace has no day-old values"
    );
    // The ensemble is one of its members at each origin: it cannot do worse than the worst.
    let worst = members.iter().map(|m| m.mase).fold(0.0, f64::max);
    assert!(ensemble.is_finite() && *ensemble <= worst, "{report}");
    assert_eq!(in_use.values().sum::<usize>(), *origins);
    // One figure per step ahead, whose mean is the MASE.
    assert_eq!(ensemble_per_step.len(), 12);
    let mean = ensemble_per_step.iter().sum::<f64>() / 12.0;
    assert!((mean - ensemble).abs() < 1e-9, "{report}");
    assert!(members.iter().all(|m| m.per_step.len() == 12), "{report}");
    assert!(
        report.to_string().contains("MASE per step ahead"),
        "{report}"
    );
    assert!(report.to_string().contains("ensemble"), "{report}");
}

/// The recorded Swarm metrics' format (a `time` column, ISO times without a zone, a `state`
/// label column), read by the one trace reader `replay` uses: an hour repeated by a DST
/// fall-back keeps the later rows and is noted, and the `state` column is the label.
#[test]
fn eval_reads_traces_as_replay_does_and_notes_repeated_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swarm.csv");
    let mut text = "time,requests,state\n".to_owned();
    let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    for k in 0..400i64 {
        // Row 200 repeats row 199's time.
        let at = start + chrono::Duration::seconds(5 * (k - i64::from(k >= 200)));
        let stamp = at.naive_utc().format("%Y-%m-%dT%H:%M:%S");
        text.push_str(&format!("{stamp},{},normal\n", 100 + k % 7));
    }
    std::fs::write(&path, text).unwrap();
    let evaluation = eval_trace("traffic-forecast", &path, &EvalOptions::default()).unwrap();
    assert_eq!(evaluation.notes.len(), 1, "{:?}", evaluation.notes);
    assert!(evaluation.notes[0].starts_with("1 row(s) repeated"));
    let EvalReport::Forecast {
        column, origins, ..
    } = &evaluation.report
    else {
        panic!("{:?}", evaluation.report)
    };
    assert_eq!(column, "requests", "the label column is not a value column");
    assert_eq!(*origins, 399 - 59 - 12);

    // A malformed cell is reported with its row as a text editor counts it.
    std::fs::write(&path, "timestamp,requests\n1700000000,1\n1700000005,x\n").unwrap();
    let error = eval_trace("traffic-forecast", &path, &EvalOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("row 3") && error.contains("requests"),
        "{error}"
    );
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    write_trace(&path, false);
    let options = EvalOptions {
        column: Some("rps".into()),
        ..Default::default()
    };
    let error = eval_trace("traffic-forecast", &path, &options)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"rps\"") && error.contains("requests"),
        "{error}"
    );
}

/// `swarmpilot -o json model eval MODEL ARGS... --trace PATH`, parsed.
fn eval_json(model: &str, args: &[&str], path: &Path) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(["-o", "json", "model", "eval", model])
        .args(args)
        .arg("--trace")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `-o json` prints the report as JSON, the confusion matrix as a list.
#[test]
fn eval_prints_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    write_trace(&path, true);
    let value = eval_json("traffic-states", &[], &path);
    assert_eq!(value["kind"], "states");
    assert!(
        value["rows"].as_u64().is_some_and(|rows| rows > 0),
        "{value}"
    );
    assert!(
        value["confusion"].as_array().is_some_and(|m| !m.is_empty()),
        "{value}"
    );
}

/// Per-second counts whose mean over any whole minute rises by exactly 1/60 a second: a
/// bursty pattern repeating every minute (`base`, up to 52 a second) plus 1 more request a
/// second each minute. Read as they are (every 5th second on the model's 5 s grid), the counts
/// jump about at random; through a one-minute window (replay's observed series) they are a
/// straight line once a minute has passed, on which naive's error at step `h` ahead is `h`
/// one-step changes: its MASE at each step is exactly `h`.
fn write_arrivals(path: &Path, seconds: i64) {
    let mut text = "timestamp,requests\n".to_owned();
    let start = 1_700_000_000i64;
    for s in 0..seconds {
        let r = s % 60;
        let base = (r * 7919) % 13 + if r % 4 == 0 { 40 } else { 0 };
        text.push_str(&format!("{},{}\n", start + s, base + s / 60));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_metric_window_scores_the_series_a_policy_reads_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arrivals.csv");
    write_arrivals(&path, 2 * 3600);
    let naive_steps = |options: &EvalOptions| {
        let report = eval_trace("traffic-forecast", &path, options)
            .unwrap()
            .report;
        let EvalReport::Forecast { members, .. } = &report else {
            panic!("{report:?}")
        };
        let naive = members.iter().find(|m| m.member == Member::Naive).unwrap();
        (naive.per_step.clone(), report.to_string())
    };
    let windowed = EvalOptions {
        metric_window: Some(chrono::Duration::minutes(1)),
        ..Default::default()
    };
    let (steps, text) = naive_steps(&windowed);
    assert_eq!(steps.len(), 12, "{text}");
    for (k, mase) in steps.iter().enumerate() {
        let h = (k + 1) as f64;
        assert!((mase - h).abs() < 1e-9, "step {h}: {mase}\n{text}");
    }
    assert!(
        text.starts_with("forecast of requests (its mean over the last 1m) over"),
        "{text}"
    );
    // The raw counts: as far from the last one h steps ahead as one step ahead.
    let (raw, text) = naive_steps(&EvalOptions::default());
    assert!(raw.iter().all(|mase| *mase < 2.0), "{raw:?}\n{text}");
    assert!(text.starts_with("forecast of requests over"), "{text}");

    // Refused by name: a window shorter than the rows' spacing, and on a classifier.
    let short = EvalOptions {
        metric_window: Some(chrono::Duration::milliseconds(500)),
        ..Default::default()
    };
    let error = eval_trace("traffic-forecast", &path, &short)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("--metric-window 500ms") && error.contains("row spacing 1s"),
        "{error}"
    );
    let error = eval_trace("traffic-states", &path, &windowed)
        .unwrap_err()
        .to_string();
    assert!(error.contains("--metric-window"), "{error}");
}

/// The flag reaches the evaluation, and `-o json` says which window the figures are through.
#[test]
fn eval_takes_metric_window_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arrivals.csv");
    write_arrivals(&path, 1800);
    let value = eval_json("traffic-forecast", &["--metric-window", "1m"], &path);
    assert_eq!(value["metricWindow"], "1m", "{value}");
    let naive = value["masePerStep"]["naive"].as_array().unwrap();
    let last = naive.last().and_then(serde_json::Value::as_f64).unwrap();
    assert!((last - 12.0).abs() < 1e-9, "{value}");
}
