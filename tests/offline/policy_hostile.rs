//! Hostile policies: the alias expansion the security review reproduced, refused quickly with
//! a diagnostic that names the cause, as a file and as a label.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use swarmpilot::policy::labels::{self, MAX_LABEL_BYTES, POLICY};
use swarmpilot::policy::{
    parse_documents, parse_documents_bytes, MAX_BLOCK_DEPTH, MAX_INPUT_BYTES, MAX_NODES,
};

use crate::counting::usage_of;

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

/// `spec:` then one line of `- - - ... x`, `len` bytes long: block nesting as deep as its size.
fn deep_block_policy(len: usize) -> String {
    let head = "spec:\n  ";
    format!("{head}{}x\n", "- ".repeat((len - head.len() - 2) / 2))
}

#[test]
fn a_deep_file_is_refused_by_the_nesting_limit_within_bounded_memory() {
    // The parser alone held some 200 MB for this 1 MiB file before its own limit refused it.
    let text = deep_block_policy(MAX_INPUT_BYTES);
    assert!(text.len() > MAX_INPUT_BYTES - 2, "{}", text.len());
    let limit = format!("nests block collections deeper than {MAX_BLOCK_DEPTH} levels (at line 2)");
    let (found, usage) = usage_of(|| parse_documents_bytes(text.as_bytes()));
    let found = found.expect_err("refused").to_string();
    println!(
        "{} bytes of block nesting refused holding {} bytes at most: {found}",
        text.len(),
        usage.peak
    );
    assert!(found.starts_with(&limit), "{found}");
    assert!(usage.peak < 100 * 1024 * 1024, "{}", usage.peak);

    // The command a user runs, on a file: the refusal names the file and the limit.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.yaml");
    std::fs::write(&path, &text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_swarmpilot"))
        .args(["validate", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains(&format!("{}: {limit}", path.display())),
        "{said}"
    );

    // A label is refused by the same check, within its own size limit.
    let label = deep_block_policy(MAX_LABEL_BYTES);
    let found =
        labels::decode("web", &BTreeMap::from([(POLICY.to_owned(), label)])).expect_err("refused");
    assert!(
        found
            .to_string()
            .starts_with(&format!("label {POLICY}: {limit}")),
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

// ---- the fuzz harness: random and adversarial YAML, bounded in memory and in work ----

mod fuzz {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use swarmpilot::policy::labels::{self, MAX_LABEL_BYTES, POLICY};
    use swarmpilot::policy::{
        parse_documents_bytes, Diagnostics, MAX_BLOCK_DEPTH, MAX_FLOW_DEPTH, MAX_INPUT_BYTES,
        MAX_NODES,
    };

    use crate::counting::usage_of;

    /// The most bytes one decode may hold at once.
    const MEMORY: usize = 100 * 1024 * 1024;

    /// The most bytes one decode may allocate in all, freed or not: [`WORK_BASE`] and this per
    /// byte of input. Counted work reads the same on a busy machine as on an idle one, where a
    /// time bound does not. The decoder allocates a few hundred bytes per byte of input (about
    /// 600 at most, for block nesting and for random text); one that expanded aliases, or did
    /// work growing with the square of its input, would allocate many times this linear bound:
    /// the alias case of the review, 93 KB, expands to 179 million values.
    const WORK_PER_BYTE: usize = 1024;
    const WORK_BASE: usize = 1024 * 1024;

    /// The limit that must refuse a hostile text, unless its size is refused first.
    #[derive(Clone, Copy, Debug)]
    enum Limit {
        /// More values, or more text, than the budgets allow once aliases are expanded.
        Expansion,
        /// `[`/`{` nesting deeper than [`MAX_FLOW_DEPTH`].
        FlowDepth,
        /// Block nesting deeper than [`MAX_BLOCK_DEPTH`], as the check counts it.
        BlockDepth,
    }

    impl Limit {
        /// What the refusal says, whichever input and budget it is.
        fn message(self) -> String {
            match self {
                Limit::Expansion => "once anchors and aliases (&name, *name) are expanded".into(),
                Limit::FlowDepth => {
                    format!("nests '[' or '{{' deeper than {MAX_FLOW_DEPTH} levels")
                }
                Limit::BlockDepth => {
                    format!("nests block collections deeper than {MAX_BLOCK_DEPTH} levels")
                }
            }
        }
    }

    /// The expansion limit, for a text that holds more than `values` YAML values expanded.
    fn over(values: usize) -> Option<Limit> {
        (values > MAX_NODES).then_some(Limit::Expansion)
    }

    /// Adversarial YAML: alias expansions, merge keys, deep and wide nesting, huge scalars;
    /// each with the limit that must refuse it (`None`: within every limit, or random).
    fn hostile() -> impl Strategy<Value = (String, Option<Limit>)> {
        prop_oneof![
            (1usize..20_000, 1usize..20_000).prop_map(|(scalars, uses)| {
                let text = format!(
                    "a: &a [{}]\nb: [{}]\n",
                    vec!["x"; scalars].join(","),
                    vec!["*a"; uses].join(",")
                );
                (text, over(scalars.saturating_mul(uses + 1)))
            }),
            (1usize..9, 2usize..12).prop_map(|(levels, fan)| {
                let mut text = format!("l0: &l0 [{}]\n", vec!["x"; fan].join(","));
                for level in 1..=levels {
                    let refs = vec![format!("*l{}", level - 1); fan].join(",");
                    text.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
                }
                // The last level alone holds fan^(levels + 1) scalars.
                (text, over(fan.saturating_pow(levels as u32 + 1)))
            }),
            (1usize..3_000).prop_map(|n| {
                let base = "base: &base {minReplicas: 1, maxReplicas: 3}\n";
                let merges: String = (0..n).map(|i| format!("k{i}: {{<<: *base}}\n")).collect();
                // Each key, its mapping and the base's four values, merged or not.
                (format!("{base}{merges}"), over(6 * n))
            }),
            (1usize..200_000).prop_map(|depth| {
                let text = format!("spec:\n  {}x\n", "- ".repeat(depth));
                // `spec:` and the line's indentation, then one level a `- `.
                (
                    text,
                    (depth + 2 > MAX_BLOCK_DEPTH).then_some(Limit::BlockDepth),
                )
            }),
            (1usize..2_000).prop_map(|depth| {
                let text: String = (0..depth)
                    .map(|i| format!("{}a:\n", " ".repeat(i)))
                    .collect();
                (text, (depth > MAX_BLOCK_DEPTH).then_some(Limit::BlockDepth))
            }),
            (1usize..5_000).prop_map(|depth| {
                let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                (text, (depth > MAX_FLOW_DEPTH).then_some(Limit::FlowDepth))
            }),
            (1usize..50_000).prop_map(|width| {
                let text = (0..width)
                    .map(|i| format!("k{i}: {i}\n"))
                    .collect::<String>();
                (text, over(2 * width + 1))
            }),
            (1usize..2_000_000).prop_map(|len| (format!("spec: {}\n", "y".repeat(len)), None)),
            "\\PC{0,2000}".prop_map(|text| (text, None)),
        ]
    }

    /// Decodes `text` within [`MEMORY`] and the work bound for its size; a text over `size_cap`
    /// must be refused by its size, else one over a limit by that limit.
    fn check<T>(
        text: &str,
        limit: Option<Limit>,
        size_cap: usize,
        decode: impl FnOnce() -> Result<T, Diagnostics>,
    ) {
        let (decoded, usage) = usage_of(decode);
        let said = decoded.err().map(|found| found.to_string());
        let expected = if text.len() > size_cap {
            Some(format!(
                "larger than the {size_cap}-byte limit for a policy"
            ))
        } else {
            limit.map(Limit::message)
        };
        let shown: String = text.chars().take(200).collect();
        if let Some(expected) = expected {
            assert!(
                said.as_deref().is_some_and(|said| said.contains(&expected)),
                "{} bytes must be refused with {expected:?}, got {said:?}: {shown:?}",
                text.len(),
            );
        }
        let work = WORK_BASE + WORK_PER_BYTE * text.len().min(size_cap);
        eprintln!(
            "MEASURE {} {} {} {} {:?}",
            text.len().min(size_cap),
            usage.allocated,
            usage.allocations,
            usage.peak,
            limit
        );
        assert!(
            usage.peak < MEMORY && usage.allocated < work,
            "{} bytes held {} bytes at most and allocated {} in {} allocations \
             (bounds {MEMORY} and {work}): {shown:?}",
            text.len(),
            usage.peak,
            usage.allocated,
            usage.allocations,
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

        #[test]
        fn the_label_decoder_refuses_by_its_limits_within_bounded_memory_and_work(
            (text, limit) in hostile()
        ) {
            let labels = BTreeMap::from([(POLICY.to_owned(), text.clone())]);
            check(&text, limit, MAX_LABEL_BYTES, || labels::decode("web", &labels));
            check(&text, limit, MAX_INPUT_BYTES, || parse_documents_bytes(text.as_bytes()));
        }

        #[test]
        fn any_bytes_get_a_diagnostic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            check(&text, None, MAX_INPUT_BYTES, || parse_documents_bytes(&bytes));
        }
    }
}
