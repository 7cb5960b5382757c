//! Telling a replaced spec from the operator's own writes and from a user's scale, and what to
//! put back. Pure: the reconciler keeps the memory and writes.
//!
//! `docker stack deploy` replaces a service's spec with the stack file's: the replica count goes
//! back to the file's and every label the file does not name is dropped. The state label
//! (`io.swarmpilot.state`) is the witness: the operator writes it on its first reconcile and
//! with every scale, nothing else removes it, and a spec replacement always drops it (no stack
//! file names it). So a service that carried it at the last reconcile and lacks it now had its
//! spec replaced, and the operator restores the count and its labels at once.
//!
//! A user's `docker service scale` (or `docker service update --replicas`) keeps the labels: it
//! is not a reset, and the policy decides from the new count as HPA does when someone scales its
//! target by hand (the metrics win; a scale-down waits for the stabilization window).

use std::collections::BTreeMap;

use crate::policy::compose::kept_labels;
use crate::policy::labels::{PREFIX, STATE};

/// What the operator last saw of a service it governs, after its own writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    /// The service's `io.swarmpilot.*` labels.
    pub labels: BTreeMap<String, String>,
    pub replicas: u32,
}

impl Owned {
    pub fn of(labels: &BTreeMap<String, String>, replicas: u32) -> Self {
        Owned {
            labels: labels
                .iter()
                .filter(|(key, _)| key.starts_with(PREFIX))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            replicas,
        }
    }
}

/// What a replaced spec lost, to be put back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reset {
    /// The replica count before the reset (to be brought within the policy's bounds).
    pub replicas: u32,
    /// The operator's labels the new spec lacks (the state label is written afresh from memory).
    pub labels: BTreeMap<String, String>,
}

/// The reset, if the service's spec was replaced since `before`.
pub fn external_reset(before: &Owned, labels_now: &BTreeMap<String, String>) -> Option<Reset> {
    let replaced = before.labels.contains_key(STATE) && !labels_now.contains_key(STATE);
    replaced.then(|| {
        let mut labels = kept_labels(&before.labels, labels_now);
        labels.remove(STATE);
        Reset {
            replicas: before.replicas,
            labels,
        }
    })
}

/// The sentence the decision and the event give.
pub fn message(current: u32, restored: u32, reset: &Reset) -> String {
    let mut message =
        format!("restored after an external update: {current} -> {restored} replicas");
    if !reset.labels.is_empty() {
        let names: Vec<&str> = reset.labels.keys().map(String::as_str).collect();
        message.push_str(&format!(", labels {}", names.join(", ")));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::labels::{CPU, MAX, OVERRIDE, POLICY};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_replaced_spec_is_a_reset_and_gives_back_what_it_dropped() {
        let before = Owned::of(
            &labels(&[
                (STATE, "{}"),
                (OVERRIDE, "{pin}"),
                (POLICY, "spec: {}"),
                ("com.docker.stack.namespace", "shop"),
            ]),
            4,
        );
        assert!(!before.labels.contains_key("com.docker.stack.namespace"));
        let reset = external_reset(&before, &labels(&[("com.docker.stack.namespace", "shop")]));
        assert_eq!(
            reset,
            Some(Reset {
                replicas: 4,
                labels: labels(&[(OVERRIDE, "{pin}"), (POLICY, "spec: {}")]),
            })
        );
        // The file declares its own policy: that one applies, the old one is not put back.
        let reset = external_reset(&before, &labels(&[(CPU, "70"), (MAX, "6")])).unwrap();
        assert_eq!(reset.labels, labels(&[(OVERRIDE, "{pin}")]));
    }

    #[test]
    fn a_users_scale_and_the_operators_own_writes_are_not_resets() {
        let before = Owned::of(
            &labels(&[(STATE, "{a}"), (OVERRIDE, "{pin}"), (CPU, "70")]),
            4,
        );
        // `docker service scale`: labels kept, count changed.
        assert_eq!(
            external_reset(
                &before,
                &labels(&[(STATE, "{a}"), (OVERRIDE, "{pin}"), (CPU, "70")])
            ),
            None
        );
        // The operator's next write: a newer state, an expired override removed.
        assert_eq!(
            external_reset(&before, &labels(&[(STATE, "{b}"), (CPU, "70")])),
            None
        );
        // `swarmpilot delete`: the policy removed, the state kept.
        assert_eq!(external_reset(&before, &labels(&[(STATE, "{a}")])), None);
        // A service the operator never recorded has nothing to restore.
        let fresh = Owned::of(&labels(&[(CPU, "70")]), 2);
        assert_eq!(external_reset(&fresh, &BTreeMap::new()), None);
    }
}
