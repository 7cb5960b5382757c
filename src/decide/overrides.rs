//! Manual and alert-driven overrides (`io.swarmpilot.override`): they take precedence over the
//! policy while they last.

use super::decision::{Limit, Reason};
use super::Outcome;
use crate::policy::Override;

/// Applies an active override to the policy's outcome. Pinned replicas win over pauses.
pub(crate) fn apply(
    active: &Override,
    outcome: Outcome,
    current: u32,
    min: u32,
    max: u32,
) -> Outcome {
    let why = describe(active);
    if let Some(pinned) = active.replicas {
        // Bounds are applied by hand: `clamp` panics when a broken policy has min > max.
        let desired = pinned.max(min).min(max);
        let limited_by = if pinned > max {
            Some(Limit::TooManyReplicas)
        } else if pinned < min {
            Some(Limit::TooFewReplicas)
        } else {
            None
        };
        return Outcome {
            desired,
            reason: Reason::Override,
            limited_by,
            message: format!(
                "pinned at {pinned} replicas {why}; policy would choose {}",
                outcome.desired
            ),
            ..outcome
        };
    }
    if active.pause {
        return Outcome {
            desired: current,
            reason: Reason::Paused,
            limited_by: None,
            message: format!("paused {why}; policy would choose {}", outcome.desired),
            ..outcome
        };
    }
    let blocked = if active.pause_scale_in && outcome.desired < current {
        Some(Limit::ScaleInPaused)
    } else if active.pause_scale_out && outcome.desired > current {
        Some(Limit::ScaleOutPaused)
    } else {
        None
    };
    match blocked {
        Some(limit) => Outcome {
            desired: current,
            reason: Reason::Paused,
            limited_by: Some(limit),
            message: format!(
                "{} paused {why}; policy would choose {}",
                if limit == Limit::ScaleInPaused {
                    "scale-in"
                } else {
                    "scale-out"
                },
                outcome.desired
            ),
            ..outcome
        },
        None => outcome,
    }
}

/// Who set it and until when; the reason goes to the decision's detail, not the headline.
fn describe(active: &Override) -> String {
    let mut text = String::new();
    if !active.by.is_empty() {
        text.push_str(&format!("by {} ", super::clip(&active.by, 32)));
    }
    text.push_str(&format!(
        "until {}",
        active.expires_at.format("%Y-%m-%d %H:%M:%SZ")
    ));
    text
}
