//! Hostile policies: the alias expansion the security review reproduced, refused quickly with
//! a diagnostic that names the cause, as a file and as a label.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use swarmpilot::policy::labels::{self, MAX_LABEL_BYTES, POLICY};
use swarmpilot::policy::{parse_documents, MAX_NODES};

const SPEC: &str = "maxReplicas: 10\n  metrics:\n  - name: cpu\n    docker: {resource: cpu}\n    target: {utilization: 70}\n";

/// A policy whose extra key holds one anchor of `scalars` scalars, aliased `uses` times.
fn alias_policy(scalars: usize, uses: usize) -> String {
    let anchor = vec!["x"; scalars].join(", ");
    let aliases = vec!["*a"; uses].join(", ");
    format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  {SPEC}extra:\n  anchor: &a [{anchor}]\n  uses: [{aliases}]\n"
    )
}

#[test]
fn the_reviewed_alias_case_is_refused_as_a_file() {
    // The review's case: 93 KB, one anchor of 16,500 scalars aliased 10,840 times.
    let text = alias_policy(16_500, 10_840);
    assert!((90_000..100_000).contains(&text.len()), "{}", text.len());
    let started = Instant::now();
    let found = parse_documents(&text).expect_err("the alias case must be refused");
    println!(
        "{} bytes refused in {:?}: {found}",
        text.len(),
        started.elapsed()
    );
    let message = found.to_string();
    assert!(
        message.contains(&format!("more than {MAX_NODES} YAML values"))
            && message.contains("aliases"),
        "{message}"
    );

    // The command a user runs, as a separate process.
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(["validate", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("anchors and aliases"), "{said}");
}

#[test]
fn the_reviewed_alias_case_is_refused_as_a_label_before_parsing() {
    let text = alias_policy(16_500, 10_840);
    let found = labels::decode("web", &BTreeMap::from([(POLICY.to_owned(), text.clone())]))
        .expect_err("refused");
    assert_eq!(
        found.to_string(),
        format!(
            "label {POLICY}: is {} bytes, larger than the {MAX_LABEL_BYTES}-byte limit for a policy label",
            text.len()
        )
    );
}

#[test]
fn an_alias_expansion_under_the_label_cap_is_refused_by_the_value_budget() {
    let text = alias_policy(5_000, 3_000);
    assert!(text.len() < MAX_LABEL_BYTES, "{}", text.len());
    let started = Instant::now();
    let found =
        labels::decode("web", &BTreeMap::from([(POLICY.to_owned(), text)])).expect_err("refused");
    println!("refused in {:?}: {found}", started.elapsed());
    assert!(
        found.to_string().starts_with(&format!(
            "label {POLICY}: holds more than {MAX_NODES} YAML values once anchors and aliases"
        )),
        "{found}"
    );
}

#[test]
fn a_long_scalar_aliased_a_few_times_is_refused_by_the_text_budget() {
    let long = "y".repeat(200_000);
    let text = format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  {SPEC}extra: [&s {long}, {}]\n",
        vec!["*s"; 50].join(", ")
    );
    let found = parse_documents(&text).expect_err("refused");
    assert!(
        found
            .to_string()
            .contains("bytes of text once anchors and aliases"),
        "{found}"
    );
}

#[test]
fn the_alerts_grant_is_bounded_by_the_policy() {
    let text = format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  {SPEC}  alerts: {{maxReplicas: 40, maxTtl: 30d}}\n"
    );
    let found = parse_documents(&text).expect_err("refused").to_string();
    assert!(
        found.contains(
            "spec.alerts.maxReplicas: must be between 1 and spec.maxReplicas (10), got 40"
        ) && found.contains("spec.alerts.maxTtl: must be longer than 0s and at most 7d"),
        "{found}"
    );
}

#[test]
fn list_lengths_and_max_replicas_are_bounded() {
    let metric = "  - name: m{i}\n    docker: {resource: cpu}\n    target: {utilization: 70}\n";
    let metrics: String = (0..17)
        .map(|i| metric.replace("{i}", &i.to_string()))
        .collect();
    let text = format!(
        "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {{name: web}}\nspec:\n  maxReplicas: 5000\n  metrics:\n{metrics}"
    );
    let found = parse_documents(&text).expect_err("refused").to_string();
    assert!(
        found.contains("spec.metrics: may hold at most 16 entries, got 17")
            && found.contains(
                "spec.maxReplicas: must be at most 1000 (the ceiling of a policy), got 5000"
            ),
        "{found}"
    );
}

// ---- the fuzz harness: random and adversarial YAML, bounded in time and memory ----

mod fuzz {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use proptest::prelude::*;
    use swarmpilot::policy::labels::{self, POLICY};
    use swarmpilot::policy::parse_documents_bytes;

    use crate::counting::peak_of;

    const SECOND: Duration = Duration::from_secs(1);
    const MEMORY: usize = 100 * 1024 * 1024;

    /// Adversarial YAML: alias expansions, merge keys, deep and wide nesting, huge scalars.
    fn hostile() -> impl Strategy<Value = String> {
        prop_oneof![
            (1usize..20_000, 1usize..20_000).prop_map(|(scalars, uses)| {
                format!(
                    "a: &a [{}]\nb: [{}]\n",
                    vec!["x"; scalars].join(","),
                    vec!["*a"; uses].join(",")
                )
            }),
            (1usize..9, 2usize..12).prop_map(|(levels, fan)| {
                let mut text = format!("l0: &l0 [{}]\n", vec!["x"; fan].join(","));
                for level in 1..=levels {
                    let refs = vec![format!("*l{}", level - 1); fan].join(",");
                    text.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
                }
                text
            }),
            (1usize..3_000).prop_map(|n| {
                let base = "base: &base {minReplicas: 1, maxReplicas: 3}\n";
                let merges: String = (0..n).map(|i| format!("k{i}: {{<<: *base}}\n")).collect();
                format!("{base}{merges}")
            }),
            (1usize..200_000).prop_map(|depth| format!("spec:\n  {}x\n", "- ".repeat(depth))),
            (1usize..5_000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth))),
            (1usize..50_000).prop_map(|width| {
                (0..width)
                    .map(|i| format!("k{i}: {i}\n"))
                    .collect::<String>()
            }),
            (1usize..2_000_000).prop_map(|len| format!("spec: {}\n", "y".repeat(len))),
            "\\PC{0,2000}",
        ]
    }

    /// Within 1 s and 100 MB (the bound for what the operator decodes: labels), or within
    /// 100 MB only (`timed: false`, files up to 1 MiB that a user gives the CLI).
    fn check(text: &str, timed: bool, decode: impl FnOnce()) {
        let started = Instant::now();
        let ((), peak) = peak_of(decode);
        let took = started.elapsed();
        assert!(
            (!timed || took < SECOND) && peak < MEMORY,
            "{} bytes took {took:?} and {peak} bytes: {:?}",
            text.len(),
            &text[..text.len().min(200)]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

        #[test]
        fn the_label_decoder_answers_every_input_quickly_and_small(text in hostile()) {
            let labels = BTreeMap::from([(POLICY.to_owned(), text.clone())]);
            check(&text, true, || {
                let _ = labels::decode("web", &labels);
            });
            check(&text, false, || {
                let _ = parse_documents_bytes(text.as_bytes());
            });
        }

        #[test]
        fn any_bytes_get_a_diagnostic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            check(&text, true, || {
                let _ = parse_documents_bytes(&bytes);
            });
        }
    }
}
