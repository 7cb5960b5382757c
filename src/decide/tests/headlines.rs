//! Every decision's message is one short sentence, whatever the inputs: metric names at their
//! longest, failures, fallbacks, overrides with long authors and reasons, every bound.

use proptest::prelude::*;

use super::*;
use crate::decide::{Reason, HEADLINE_MAX};
use crate::policy::Fallback;

/// Failure summaries as long as the sources make them, and longer (the engine must not trust
/// its callers to keep them short).
fn failure() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some("Prometheus unreachable (connection refused)".to_owned())),
        1 => "[a-z (),:]{0,400}".prop_map(Some),
    ]
}

fn fallback() -> impl Strategy<Value = Fallback> {
    prop_oneof![
        Just(Fallback::Hold),
        (0u32..=u32::MAX).prop_map(Fallback::CurrentIfHigher),
        (0u32..=u32::MAX).prop_map(Fallback::Replicas),
    ]
}

fn override_() -> impl Strategy<Value = Option<Override>> {
    let one = (
        prop::option::of(0u32..=u32::MAX),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        "[a-z:_-]{0,200}",
        "[a-z ]{0,500}",
    )
        .prop_map(
            |(replicas, pause, pause_scale_in, pause_scale_out, by, reason)| Override {
                replicas,
                pause,
                pause_scale_in,
                pause_scale_out,
                expires_at: t(3600),
                reason,
                by,
            },
        );
    prop::option::of(one)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_message_fits_the_headline(
        names in prop::collection::vec("[a-z][a-z0-9_.-]{0,62}", 1..=3),
        failures in prop::collection::vec(failure(), 3),
        loads in prop::collection::vec(0.0f64..1e12, 3),
        (min, span, current) in (0u32..=1000, 0u32..=u32::MAX / 2, 0u32..=u32::MAX),
        fallback in fallback(),
        override_ in override_(),
    ) {
        let mut policy = policy(min, min.saturating_add(span), "");
        policy.spec.fallback = fallback.into();
        let template = policy.spec.metrics[0].clone();
        policy.spec.metrics = names
            .iter()
            .map(|name| MetricSpec { name: name.clone(), ..template.clone() })
            .collect();
        let mut observation = Observation::new(current);
        observation.tasks = tasks(current.min(50));
        for ((name, failure), load) in names.iter().zip(&failures).zip(&loads) {
            let sample = match failure {
                Some(reason) => MetricSample::failed(reason.clone()),
                None => MetricSample::value(*load),
            };
            observation.metrics.insert(name.clone(), sample);
        }
        let decision = decide(&policy, &observation, &History::default(), override_.as_ref(), t(0));
        prop_assert!(
            decision.message.chars().count() <= HEADLINE_MAX,
            "{} characters: {}", decision.message.chars().count(), decision.message
        );
        prop_assert!(!decision.message.contains('\n'));
        if let Some(active) = override_.as_ref().filter(|o| !o.reason.is_empty()) {
            if matches!(decision.reason, Reason::Override | Reason::Paused) {
                prop_assert!(!decision.message.contains(&active.reason) || active.reason.len() < 3);
                prop_assert!(decision.detail.iter().any(|d| d.contains(&active.reason)));
            }
        }
    }
}

/// The example of the issue that asked for short reasons: the fallback names the metric and
/// the cause, nothing more.
#[test]
fn a_fallback_names_the_metric_and_the_cause() {
    let mut observation = Observation::new(3);
    observation.tasks = tasks(3);
    observation.metrics.insert(
        "rps".into(),
        MetricSample::failed("Prometheus unreachable (connection refused)"),
    );
    let first = decide(
        &policy(1, 10, ""),
        &observation,
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(first.reason, Reason::MetricsIncomplete);
    assert_eq!(
        first.message,
        "rps: Prometheus unreachable (connection refused); every metric failed, 1 of 3 reads before fallback: keeping 3"
    );
    let history = History {
        failed_reads: [(
            "rps".to_owned(),
            crate::policy::FailedReads {
                count: 2,
                last: t(-15),
            },
        )]
        .into(),
        ..History::default()
    };
    let third = decide(&policy(1, 10, ""), &observation, &history, None, t(0));
    assert_eq!(third.reason, Reason::Fallback);
    assert_eq!(
        third.message,
        "rps: Prometheus unreachable (connection refused); every metric failed, fallback hold keeps 3"
    );
}
