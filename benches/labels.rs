//! Decoding `io.swarmpilot.policy`, the label the operator reads on every pass: a typical
//! policy, and hostile labels just under the size cap, each running the decoder into one of its
//! limits or up to it. The offline fuzz test (tests/offline/policy_hostile.rs) bounds the same
//! decodes in memory and allocations; this measures their time.

use std::collections::BTreeMap;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use swarmpilot::policy::labels::{self, MAX_LABEL_BYTES, POLICY};

const TYPICAL: &str = "apiVersion: swarmpilot.io/v1alpha1\nkind: ScalingPolicy\nmetadata: {name: web}\n\
spec:\n  minReplicas: 2\n  maxReplicas: 20\n  metrics:\n  - name: rps\n    prometheus: {query: 'sum(rate(http_requests_total[1m]))'}\n    \
target: {averageValue: 50}\n  - name: cpu\n    docker: {resource: cpu}\n    target: {utilization: 70}\n  \
behavior: {scaleDown: {stabilizationWindow: 300s, policies: [{type: Percent, value: 50, period: 60s}]}}\n";

/// Lines of `line(i)` for i = 0, 1, ... while the text stays within the label cap.
fn fill(head: &str, line: impl Fn(usize) -> String) -> String {
    let mut text = head.to_owned();
    for i in 0.. {
        let next = line(i);
        if text.len() + next.len() > MAX_LABEL_BYTES {
            break;
        }
        text.push_str(&next);
    }
    text
}

/// The labels to decode, by name, each with what its refusal says (`None`: it decodes). All
/// but the first are as large as the cap allows.
fn inputs() -> Vec<(&'static str, String, Option<&'static str>)> {
    let anchor = vec!["x"; 1_000].join(",");
    vec![
        ("typical", TYPICAL.to_owned(), None),
        // One anchor of 1,000 scalars, aliased until the cap: refused by the value budget.
        (
            "aliases",
            fill(&format!("a: &a [{anchor}]\n"), |i| format!("b{i}: *a\n")),
            Some("YAML values once anchors and aliases"),
        ),
        // Block sequences nested 16,000 deep: refused by the nesting check before parsing.
        (
            "block-nesting",
            format!("spec:\n  {}x\n", "- ".repeat((MAX_LABEL_BYTES - 16) / 2)),
            Some("nests block collections deeper than"),
        ),
        // Thousands of keys, under the value budget: decoded, then each one reported.
        (
            "keys",
            fill("", |i| format!("k{i}: {i}\n")),
            Some("unknown field"),
        ),
    ]
}

fn bench_labels(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy-label");
    for (name, text, refusal) in inputs() {
        assert!(
            text.len() <= MAX_LABEL_BYTES,
            "{name}: {} bytes",
            text.len()
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        let labels = BTreeMap::from([(POLICY.to_owned(), text)]);
        // Measure the path named, not an earlier refusal.
        match (labels::decode("web", &labels), refusal) {
            (Ok(_), None) => {}
            (Err(found), Some(refusal)) if found.to_string().contains(refusal) => {}
            (outcome, _) => panic!("{name}: expected {refusal:?}, got {outcome:?}"),
        }
        group.bench_with_input(BenchmarkId::from_parameter(name), &labels, |b, labels| {
            b.iter(|| labels::decode("web", black_box(labels)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_labels);
criterion_main!(benches);
