//! Tasks Swarm cannot place. While some of a service's tasks wait for a node that no node can be
//! (none meets the placement constraints, or none has the resources the tasks reserve), more
//! replicas only make more waiting tasks: the count is not raised. Scaling down stays allowed,
//! and so do bringing the count within `[min, max]` and an override.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::decision::{Limit, Reason};
use super::observation::Observation;
use super::Outcome;

/// The tasks of a service that Swarm cannot place, and why, in Swarm's own words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTasks {
    /// How many tasks wait for a node.
    pub pending: u32,
    /// The service's replica count.
    pub replicas: u32,
    /// Swarm's message on the first such task, e.g. `no suitable node (scheduling constraints
    /// not satisfied on 3 nodes)` or `no suitable node (insufficient resources on 3 nodes)`.
    pub reason: String,
}

impl PendingTasks {
    /// The service's tasks that cannot be placed, if it has any.
    pub fn of(observation: &Observation) -> Option<PendingTasks> {
        let reasons = observation
            .tasks
            .iter()
            .filter_map(|task| task.unplaced.as_deref());
        PendingTasks::from_reasons(observation.current_replicas, reasons)
    }

    /// From Swarm's reason for each task it cannot place (`TaskInfo::unplaced_reason`), of a
    /// service of `replicas` replicas; `None` when there is no such task.
    pub fn from_reasons<'a>(
        replicas: u32,
        mut reasons: impl Iterator<Item = &'a str>,
    ) -> Option<PendingTasks> {
        let reason = reasons.next()?;
        let pending = 1 + reasons.count();
        Some(PendingTasks {
            pending: u32::try_from(pending).unwrap_or(u32::MAX),
            replicas,
            reason: reason.to_owned(),
        })
    }
}

impl fmt::Display for PendingTasks {
    /// `2 of 6 tasks pending: no suitable node (...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tasks = if self.replicas == 1 { "task" } else { "tasks" };
        write!(
            f,
            "{} of {} {tasks} pending: {}",
            self.pending, self.replicas, self.reason
        )
    }
}

/// Keeps the current count instead of a scale-up while tasks cannot be placed. Only counts the
/// behavior produced are held: a count outside `[min, max]` still goes to the bound.
pub(crate) fn hold_scale_up(
    outcome: Outcome,
    current: u32,
    pending: Option<&PendingTasks>,
) -> Outcome {
    match pending {
        Some(pending) if outcome.desired > current && outcome.stabilized.is_some() => Outcome {
            desired: current,
            reason: Reason::TasksPending,
            limited_by: Some(Limit::TasksPending),
            message: format!("no scale-up to {}: {pending}", outcome.desired),
            ..outcome
        },
        _ => outcome,
    }
}
