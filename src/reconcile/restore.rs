//! Telling a replaced spec from the operator's own writes and from a user's scale, and what to
//! put back; and so which changes of a service are worth a reconcile. Pure: the reconciler keeps
//! the memory and writes.
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
//!
//! Every write to a service, the operator's own included, wakes its loop. A wake-up whose
//! service is exactly as the operator left it (its version, its `io.swarmpilot.*` labels, its
//! count) is the operator's own write, or nothing: it runs no reconcile, which would only decide
//! again from the same inputs. Any other change runs one at once, named by [`Trigger`].

use std::collections::BTreeMap;

use super::controller::Wake;
use super::status::Trigger;
use crate::policy::compose::kept_labels;
use crate::policy::labels::{OVERRIDE, PREFIX, STATE};
use crate::swarm::ServiceInfo;

/// What the operator last saw of a service it governs, after its own writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    /// The service's `io.swarmpilot.*` labels.
    pub labels: BTreeMap<String, String>,
    pub replicas: u32,
    /// The service's version when the operator read it.
    pub version: u64,
    /// Whether the operator wrote the service after reading it at `version`. Docker does not say
    /// which version a write made: the first newer version whose labels and count are exactly
    /// the ones written is taken as that write.
    pub wrote: bool,
}

impl Owned {
    /// The service as the operator read it at `version`.
    pub fn of(labels: &BTreeMap<String, String>, replicas: u32, version: u64) -> Self {
        Owned {
            labels: own_labels(labels),
            replicas,
            version,
            wrote: false,
        }
    }

    /// Records a write of the operator's own: the count `replicas`, labels `set` and `removed`.
    pub fn wrote(&mut self, replicas: u32, set: &BTreeMap<String, String>, removed: &[&str]) {
        self.replicas = replicas;
        self.labels.extend(own_labels(set));
        for label in removed {
            self.labels.remove(*label);
        }
        self.wrote = true;
    }

    /// What changed in the service, as read `now`, since the operator last left it; `None` when
    /// nothing did but the operator's own writes. Several changes at once are named by the first
    /// of: a replaced spec, the policy, the override, the count, anything else.
    pub fn change(&self, now: &ServiceInfo) -> Option<Trigger> {
        if now.version == self.version {
            return None;
        }
        let labels_now = own_labels(&now.labels);
        let differs = |policy: fn(&str) -> bool| {
            let mine = self.labels.iter().filter(|(key, _)| policy(key.as_str()));
            let theirs = labels_now.iter().filter(|(key, _)| policy(key.as_str()));
            !mine.eq(theirs)
        };
        let change = if replaced(&self.labels, &labels_now) {
            Trigger::SpecReplaced
        } else if differs(|key| key != STATE && key != OVERRIDE) {
            Trigger::PolicyChanged
        } else if differs(|key| key == OVERRIDE) {
            Trigger::OverrideChanged
        } else if now.replicas != Some(u64::from(self.replicas)) {
            Trigger::ReplicasChanged
        } else if differs(|key| key == STATE) || !self.wrote || now.version < self.version {
            Trigger::ServiceUpdated
        } else {
            return None;
        };
        Some(change)
    }

    /// The service read at `version` is as the operator left it ([`Owned::change`] was `None`):
    /// any later version is someone else's.
    pub fn settled(&mut self, version: u64) {
        self.version = version;
        self.wrote = false;
    }
}

/// Why a reconcile woken by `wake` runs, the service read `now` and `before` what the operator
/// last left of it; `None`: it need not run, the wake-up was the operator's own write or nothing
/// changed (a change is told only from a memory of the service: without one, any change runs).
pub fn trigger(wake: Wake, before: Option<&Owned>, now: &ServiceInfo) -> Option<Trigger> {
    match wake {
        Wake::Started => Some(Trigger::Started),
        Wake::Requeued => Some(Trigger::Interval),
        Wake::Retry => Some(Trigger::Retry),
        Wake::Changed => match before {
            Some(before) => before.change(now),
            None => Some(Trigger::ServiceUpdated),
        },
    }
}

/// The operator's labels among `labels`.
fn own_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| key.starts_with(PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Whether a spec with labels `now` replaced one whose operator labels were `before`: the state
/// label the operator wrote is gone.
fn replaced(before: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> bool {
    before.contains_key(STATE) && !now.contains_key(STATE)
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
    replaced(&before.labels, labels_now).then(|| {
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
    use crate::policy::labels::{CPU, MAX, POLICY};

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
            7,
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
            7,
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
        let fresh = Owned::of(&labels(&[(CPU, "70")]), 2, 7);
        assert_eq!(external_reset(&fresh, &BTreeMap::new()), None);
    }

    fn read(version: u64, pairs: &[(&str, &str)], replicas: u64) -> ServiceInfo {
        ServiceInfo {
            id: "id-web".into(),
            name: "web".into(),
            version,
            labels: labels(pairs),
            replicas: Some(replicas),
            ..Default::default()
        }
    }

    /// The operator read version 10 (2 replicas), then scaled to 4 with a new state label.
    fn scaled_to_4() -> Owned {
        let mut owned = Owned::of(
            &labels(&[(STATE, "{a}"), (CPU, "70"), ("team", "shop")]),
            2,
            10,
        );
        owned.wrote(4, &labels(&[(STATE, "{b}")]), &[]);
        owned
    }

    #[test]
    fn the_operators_own_write_is_no_change_and_the_next_version_is_someone_elses() {
        let mut owned = scaled_to_4();
        let own = read(12, &[(STATE, "{b}"), (CPU, "70"), ("team", "shop")], 4);
        assert_eq!(owned.change(&own), None);
        assert_eq!(trigger(Wake::Changed, Some(&owned), &own), None);
        owned.settled(own.version);
        // The same version again (a repeated event, a wake-up after the reconcile saw it).
        assert_eq!(owned.change(&own), None);
        // `docker service update --image ...`: a newer version, the operator's labels and count.
        let image = read(13, &[(STATE, "{b}"), (CPU, "70"), ("team", "shop")], 4);
        assert_eq!(owned.change(&image), Some(Trigger::ServiceUpdated));
        // Without a write of its own, any newer version is someone else's.
        let unwritten = Owned::of(&image.labels, 4, 12);
        assert_eq!(unwritten.change(&image), Some(Trigger::ServiceUpdated));
    }

    #[test]
    fn the_operators_label_writes_are_its_own_too() {
        // Events written with no scale, then an expired override removed.
        let mut owned = Owned::of(
            &labels(&[(STATE, "{a}"), (OVERRIDE, "{pin}"), (CPU, "70")]),
            3,
            20,
        );
        owned.wrote(3, &labels(&[(STATE, "{b}")]), &[]);
        owned.wrote(3, &BTreeMap::new(), &[OVERRIDE]);
        assert_eq!(
            owned.change(&read(23, &[(STATE, "{b}"), (CPU, "70")], 3)),
            None
        );
        // Only the first write landed when the service was read: not what the operator left.
        assert_eq!(
            owned.change(&read(
                21,
                &[(STATE, "{b}"), (OVERRIDE, "{pin}"), (CPU, "70")],
                3
            )),
            Some(Trigger::OverrideChanged)
        );
    }

    #[test]
    fn a_users_scale_right_after_the_operators_is_a_change() {
        let owned = scaled_to_4();
        let scaled = read(13, &[(STATE, "{b}"), (CPU, "70"), ("team", "shop")], 6);
        assert_eq!(owned.change(&scaled), Some(Trigger::ReplicasChanged));
        let mut settled = scaled_to_4();
        settled.settled(12);
        assert_eq!(settled.change(&scaled), Some(Trigger::ReplicasChanged));
        // Scaled back to the very count the operator wrote: someone else's version still.
        let back = read(14, &[(STATE, "{b}"), (CPU, "70"), ("team", "shop")], 4);
        assert_eq!(settled.change(&back), Some(Trigger::ServiceUpdated));
    }

    #[test]
    fn each_change_is_named_by_the_first_that_applies() {
        let owned = scaled_to_4();
        let at = |pairs: &[(&str, &str)], replicas| owned.change(&read(12, pairs, replicas));
        // `docker stack deploy` of a file that does not name the state label.
        assert_eq!(at(&[(CPU, "70")], 4), Some(Trigger::SpecReplaced));
        assert_eq!(at(&[], 1), Some(Trigger::SpecReplaced));
        // A policy label changed, added or removed (`swarmpilot delete`), whatever else did.
        assert_eq!(
            at(&[(STATE, "{b}"), (CPU, "80"), (OVERRIDE, "{pin}")], 9),
            Some(Trigger::PolicyChanged)
        );
        assert_eq!(
            at(&[(STATE, "{b}"), (CPU, "70"), (MAX, "6")], 4),
            Some(Trigger::PolicyChanged)
        );
        assert_eq!(at(&[(STATE, "{b}")], 4), Some(Trigger::PolicyChanged));
        // The API's override, set and then cleared.
        assert_eq!(
            at(&[(STATE, "{b}"), (CPU, "70"), (OVERRIDE, "{pin}")], 9),
            Some(Trigger::OverrideChanged)
        );
        let mut pinned = owned.clone();
        pinned.labels.insert(OVERRIDE.into(), "{pin}".into());
        assert_eq!(
            pinned.change(&read(12, &[(STATE, "{b}"), (CPU, "70")], 4)),
            Some(Trigger::OverrideChanged)
        );
        // Another operator's state label (a standby sees the acting one's writes).
        assert_eq!(
            at(&[(STATE, "{c}"), (CPU, "70")], 4),
            Some(Trigger::ServiceUpdated)
        );
        // The first newer version with the labels and count written is the operator's write,
        // whatever else it carries: another change landing before the service is read (within
        // the reconcile that wrote) is seen at the next interval.
        assert_eq!(at(&[(STATE, "{b}"), (CPU, "70")], 4), None);
    }

    #[test]
    fn only_a_wake_up_by_a_change_can_be_the_operators_own() {
        let owned = scaled_to_4();
        let own = read(12, &[(STATE, "{b}"), (CPU, "70"), ("team", "shop")], 4);
        assert_eq!(
            trigger(Wake::Started, Some(&owned), &own),
            Some(Trigger::Started)
        );
        assert_eq!(
            trigger(Wake::Requeued, Some(&owned), &own),
            Some(Trigger::Interval)
        );
        assert_eq!(
            trigger(Wake::Retry, Some(&owned), &own),
            Some(Trigger::Retry)
        );
        // With no memory of the service (no decision yet), nothing can be told apart.
        assert_eq!(
            trigger(Wake::Changed, None, &own),
            Some(Trigger::ServiceUpdated)
        );
    }
}
