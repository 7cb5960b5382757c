//! `spec.fallback`: what the count should be when every metric failed.

use crate::policy::Fallback;

/// The recommendation the fallback makes, or `None` for `hold` (keep the count, record nothing,
/// as HPA does when it cannot compute a count).
pub(crate) fn recommendation(fallback: Fallback, current: u32) -> Option<u32> {
    match fallback {
        Fallback::Hold => None,
        Fallback::Replicas(replicas) => Some(replicas),
        Fallback::CurrentIfHigher(replicas) => Some(current.max(replicas)),
    }
}

/// How `describe` words the fallback.
pub(crate) fn describe(fallback: Fallback) -> String {
    match fallback {
        Fallback::Hold => "hold".to_owned(),
        Fallback::Replicas(replicas) => format!("{{replicas: {replicas}}}"),
        Fallback::CurrentIfHigher(replicas) => format!("{{currentIfHigher: {replicas}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fallback() {
        assert_eq!(recommendation(Fallback::Hold, 4), None);
        assert_eq!(recommendation(Fallback::Replicas(2), 4), Some(2));
        assert_eq!(recommendation(Fallback::CurrentIfHigher(2), 4), Some(4));
        assert_eq!(recommendation(Fallback::CurrentIfHigher(6), 4), Some(6));
    }
}
