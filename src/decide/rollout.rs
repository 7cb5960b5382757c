//! The last word of a decision while Swarm rolls a service out or back: no change at all.
//!
//! Every service update, a replica change included, makes Swarm replace the service's
//! `PreviousSpec` with the spec before the update and reset its `UpdateStatus`. A scale written
//! during a rolling update would make the rollback target the half-updated spec, so an automatic
//! rollback (`failure_action: rollback`) or `docker service rollback` would no longer return to
//! the old image. The recommendation is kept (it feeds the stabilization window, as HPA records
//! every recommendation), only the write is withheld; scaling resumes when the rollout ends.

use super::observation::Rollout;
use super::{Outcome, Reason};

/// `outcome` held at `current` because `rollout` is in progress.
pub(crate) fn hold(rollout: Rollout, outcome: Outcome, current: u32) -> Outcome {
    let wanted = if outcome.desired == current {
        String::new()
    } else {
        format!(" ({} wanted)", outcome.desired)
    };
    Outcome {
        desired: current,
        reason: Reason::RolloutInProgress,
        limited_by: None,
        message: format!(
            "a rollout is in progress ({rollout}): no write until it ends, keeping {current}{wanted}"
        ),
        ..outcome
    }
}
