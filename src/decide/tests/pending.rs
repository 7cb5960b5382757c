//! Tasks Swarm cannot place hold scale-ups, and nothing else.

use super::*;
use crate::decide::{Limit, PendingTasks, Reason};
use crate::policy::Override;

const NO_SUITABLE_NODE: &str = "no suitable node (scheduling constraints not satisfied on 3 nodes)";

/// `current` tasks, the last `unplaced` of which Swarm cannot place, and a request rate worth
/// `wanted` replicas.
fn with_unplaced(current: u32, unplaced: u32, wanted: u32) -> Observation {
    let mut observation = total_rps(current, f64::from(wanted) * 100.0);
    for task in observation
        .tasks
        .iter_mut()
        .skip((current - unplaced) as usize)
    {
        task.phase = TaskPhase::Starting;
        task.started_at = None;
        task.unplaced = Some(NO_SUITABLE_NODE.to_owned());
    }
    observation
}

#[test]
fn no_scale_up_while_tasks_cannot_be_placed_and_the_reason_says_swarms_words() {
    let policy = policy(1, 20, "");
    let observation = with_unplaced(6, 2, 9);
    assert_eq!(
        PendingTasks::of(&observation).unwrap().to_string(),
        format!("2 of 6 tasks pending: {NO_SUITABLE_NODE}")
    );
    let d = decide(&policy, &observation, &History::default(), None, t(0));
    assert_eq!(
        (d.desired, d.reason, d.limited_by),
        (6, Reason::TasksPending, Some(Limit::TasksPending))
    );
    assert!(
        d.message
            .contains(&format!("2 of 6 tasks pending: {NO_SUITABLE_NODE}")),
        "{}",
        d.message
    );
    // The recommendation is still what the metrics asked for, so the history stays true.
    assert!(d.recommendation.unwrap() > 6, "{d:?}");
    assert!(!d.should_scale());
}

#[test]
fn the_count_goes_up_again_once_every_task_is_placed() {
    let mut run = Run::new(policy(1, 20, ""), 6);
    let held = run.tick_with(t(0), &with_unplaced(6, 2, 9), None);
    assert_eq!((held.desired, held.reason), (6, Reason::TasksPending));
    let freed = run.tick_with(t(15), &with_unplaced(6, 0, 9), None);
    assert!(freed.desired > 6, "{freed:?}");
}

#[test]
fn scaling_down_bounds_and_overrides_still_apply() {
    let policy = policy(2, 20, "scaleDown: {stabilizationWindow: 0s}");
    let down = decide(
        &policy,
        &with_unplaced(6, 2, 3),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!((down.desired, down.reason), (3, Reason::DesiredWithinRange));

    let below_min = decide(
        &policy,
        &with_unplaced(1, 1, 9),
        &History::default(),
        None,
        t(0),
    );
    assert_eq!(
        (below_min.desired, below_min.reason),
        (2, Reason::TooFewReplicas)
    );

    let pinned = Override {
        replicas: Some(8),
        pause: false,
        pause_scale_in: false,
        pause_scale_out: false,
        expires_at: t(60),
        reason: "load test".into(),
        by: "cli".into(),
    };
    let d = decide(
        &policy,
        &with_unplaced(6, 2, 9),
        &History::default(),
        Some(&pinned),
        t(0),
    );
    assert_eq!((d.desired, d.reason), (8, Reason::Override));
}

#[test]
fn tasks_merely_waiting_their_turn_do_not_hold_a_scale_up() {
    let mut observation = total_rps(6, 900.0);
    observation.tasks[5].phase = TaskPhase::Starting;
    observation.tasks[5].started_at = None;
    assert_eq!(PendingTasks::of(&observation), None);
    let d = decide(
        &policy(1, 20, ""),
        &observation,
        &History::default(),
        None,
        t(0),
    );
    assert!(d.desired > 6, "{d:?}");
}
