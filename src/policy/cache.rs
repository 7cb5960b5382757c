//! Decoded policies kept by the content of the labels they came from, so a service whose labels
//! did not change is not decoded again on every reconcile.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::diagnostic::Diagnostics;
use super::labels::{self, OVERRIDE, STATE};
use super::types::ScalingPolicy;

/// The outcome of decoding one service's policy labels.
pub type Decoded = Result<Option<ScalingPolicy>, Diagnostics>;

/// The last decode of one service's policy, keyed by a digest of the service name and every
/// label the policy is read from. One entry per service: memory stays bounded by the number of
/// services, and a changed label is decoded once.
#[derive(Debug, Default)]
pub struct PolicyCache {
    last: Option<([u8; 32], Decoded)>,
}

impl PolicyCache {
    /// The policy `service_name`'s labels declare, decoded only if they changed since last time.
    pub fn decode(&mut self, service_name: &str, labels: &BTreeMap<String, String>) -> &Decoded {
        let key = policy_key(service_name, labels);
        if !matches!(&self.last, Some((last, _)) if *last == key) {
            self.last = None;
        }
        &self
            .last
            .get_or_insert_with(|| (key, labels::decode(service_name, labels)))
            .1
    }
}

/// A digest of what the policy is decoded from: the service name and the `io.swarmpilot.`
/// labels other than the operator's own records, each length-prefixed so no two label sets
/// run together into the same bytes.
fn policy_key(service_name: &str, labels: &BTreeMap<String, String>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut feed = |text: &str| {
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    };
    feed(service_name);
    for (name, value) in labels {
        if name.starts_with(labels::PREFIX) && name != OVERRIDE && name != STATE {
            feed(name);
            feed(value);
        }
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shorthand(max: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::MAX.to_owned(), max.to_owned()),
            (labels::CPU.to_owned(), "70".to_owned()),
            (STATE.to_owned(), "{}".to_owned()),
        ])
    }

    #[test]
    fn decodes_again_only_when_the_policy_labels_change() {
        let mut cache = PolicyCache::default();
        let first = cache
            .decode("web", &shorthand("5"))
            .clone()
            .unwrap()
            .unwrap();
        assert_eq!(first.spec.max_replicas, 5);
        let mut same = shorthand("5");
        same.insert(STATE.to_owned(), "changed".to_owned());
        let key = policy_key("web", &same);
        assert_eq!(
            key,
            policy_key("web", &shorthand("5")),
            "state is not part of the key"
        );
        let changed = cache
            .decode("web", &shorthand("7"))
            .clone()
            .unwrap()
            .unwrap();
        assert_eq!(changed.spec.max_replicas, 7);
        assert_ne!(
            policy_key("web", &shorthand("5")),
            policy_key("api", &shorthand("5"))
        );
        assert!(cache.decode("web", &shorthand("x")).is_err());
    }
}
