//! Which of a service's tasks count for scaling, and as what: Swarm's task list reduced to the
//! pod phases of HPA's grouping (running, not yet ready, being deleted).
//!
//! Swarm and Kubernetes part ways on a lost node. Kubernetes keeps the pod of an unreachable
//! node (it has no metrics: a missing pod, counted at the target on a scale-down) until it is
//! evicted. Swarm at once sets the lost task's desired state to `shutdown` (its last reported
//! state stays `running` until the node comes back) and creates a replacement in the same slot,
//! held at desired state `ready` for the restart delay, then started. Read naively, that slot
//! has no task that counts, the remaining tasks' average decides alone, and a service whose
//! tasks each carry their own load is scaled down for a task it only lost. So a task being
//! replaced keeps counting as running until its replacement runs: unread, it is missing data
//! (HPA's rules keep the count), and during a rolling update the old task's reading still counts.

use crate::decide::{TaskObservation, TaskPhase};
use crate::swarm::{TaskInfo, TaskState};

/// The tasks `decide` is told about, each with its phase; stopped tasks are left out.
pub fn observed_tasks(tasks: &[TaskInfo]) -> Vec<TaskObservation> {
    tasks
        .iter()
        .filter_map(|task| {
            let phase = match (task.state, task.desired_running) {
                (TaskState::Stopped, _) => return None,
                (TaskState::Running, false) if replacement_not_running(task, tasks) => {
                    TaskPhase::Running
                }
                (_, false) => TaskPhase::ShuttingDown,
                (TaskState::Starting, true) => TaskPhase::Starting,
                (TaskState::Running, true) => TaskPhase::Running,
            };
            let started_at = (phase == TaskPhase::Running)
                .then_some(task.since)
                .flatten();
            Some(TaskObservation {
                id: task.id.clone(),
                phase,
                started_at,
                unplaced: task.unplaced_reason().map(str::to_owned),
            })
        })
        .collect()
}

/// Whether Swarm has replaced `task` with another task of its slot that it wants running but
/// that does not run yet.
fn replacement_not_running(task: &TaskInfo, tasks: &[TaskInfo]) -> bool {
    let Some(slot) = task.slot else {
        return false;
    };
    tasks.iter().any(|other| {
        other.id != task.id
            && other.slot == Some(slot)
            && other.desired_running
            && other.state == TaskState::Starting
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn task(id: &str, slot: u64, state: TaskState, desired_running: bool) -> TaskInfo {
        TaskInfo {
            id: id.into(),
            service_id: "s".into(),
            node_id: Some("n".into()),
            slot: Some(slot),
            container_id: None,
            state,
            desired_running,
            since: None,
            addresses: BTreeMap::new(),
            message: None,
            error: None,
        }
    }

    fn phases(tasks: &[TaskInfo]) -> Vec<(String, TaskPhase)> {
        observed_tasks(tasks)
            .into_iter()
            .map(|t| (t.id, t.phase))
            .collect()
    }

    #[test]
    fn a_lost_task_counts_as_running_until_its_replacement_runs() {
        // As a Docker 20.10 manager lists them seconds after a worker went down: the lost task
        // still `running` with desired state `shutdown`, its replacement held at `ready`.
        let lost = task("lost", 2, TaskState::Running, false);
        let held_back = task("new", 2, TaskState::Starting, true);
        let others = [
            task("a", 1, TaskState::Running, true),
            task("c", 3, TaskState::Running, true),
        ];
        let mut tasks = others.to_vec();
        tasks.extend([lost.clone(), held_back.clone()]);
        assert_eq!(
            phases(&tasks),
            [
                ("a".into(), TaskPhase::Running),
                ("c".into(), TaskPhase::Running),
                ("lost".into(), TaskPhase::Running),
                ("new".into(), TaskPhase::Starting),
            ]
        );

        // Once the replacement runs, the lost task is only being shut down.
        let running = TaskInfo {
            state: TaskState::Running,
            ..held_back
        };
        tasks = others.to_vec();
        tasks.extend([lost.clone(), running]);
        assert_eq!(phases(&tasks)[2], ("lost".into(), TaskPhase::ShuttingDown));

        // And when the node is back, it reports the task stopped.
        let stopped = TaskInfo {
            state: TaskState::Stopped,
            ..lost
        };
        assert!(phases(&[stopped]).is_empty());
    }

    #[test]
    fn a_task_shut_down_by_a_scale_down_is_set_aside() {
        // No replacement in its slot: the replica is gone, as a deleted pod is.
        let tasks = [
            task("a", 1, TaskState::Running, true),
            task("b", 2, TaskState::Running, false),
        ];
        assert_eq!(phases(&tasks)[1], ("b".into(), TaskPhase::ShuttingDown));
        // A global service's tasks have no slot to be replaced in.
        let global = TaskInfo {
            slot: None,
            ..task("g", 0, TaskState::Running, false)
        };
        let other = TaskInfo {
            slot: None,
            ..task("h", 0, TaskState::Starting, true)
        };
        assert_eq!(phases(&[global, other])[0].1, TaskPhase::ShuttingDown);
    }
}
