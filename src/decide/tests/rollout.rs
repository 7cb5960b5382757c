//! A rollout in progress holds every count, whatever the metrics, bounds or overrides say, and
//! scaling resumes once it ends.

use super::{policy, t, total_rps, Run};
use crate::decide::{decide, History, Reason, Rollout};
use crate::policy::Override;

#[test]
fn no_change_while_swarm_rolls_out_or_back() {
    let spec = policy(2, 10, "");
    for rollout in [
        Rollout::Updating,
        Rollout::Paused,
        Rollout::RollbackStarted,
        Rollout::RollbackPaused,
    ] {
        let mut rising = total_rps(3, 900.0);
        rising.rollout = Some(rollout);
        let held = decide(&spec, &rising, &History::default(), None, t(0));
        assert_eq!(held.desired, 3, "{rollout}");
        assert_eq!(held.reason, Reason::RolloutInProgress);
        assert!(!held.should_scale());
        assert!(held.message.contains(rollout.as_str()), "{}", held.message);
        // The rate limit allows 7 of the 9 recommended now.
        assert!(held.message.contains("(7 wanted)"), "{}", held.message);
        // The recommendation is still made, so the stabilization window knows of it.
        assert_eq!(held.recommendation, Some(9));
    }
}

#[test]
fn a_rollout_outranks_bounds_and_overrides() {
    let spec = policy(4, 10, "");
    let mut below_min = total_rps(2, 100.0);
    below_min.rollout = Some(Rollout::Updating);
    let held = decide(&spec, &below_min, &History::default(), None, t(0));
    assert_eq!((held.desired, held.reason), (2, Reason::RolloutInProgress));

    let pin: Override = serde_json::from_str(
        r#"{"replicas": 8, "expiresAt": "2100-01-01T00:00:00Z", "reason": "sale", "by": "ops"}"#,
    )
    .unwrap();
    let mut rolling = total_rps(5, 500.0);
    rolling.rollout = Some(Rollout::RollbackStarted);
    let held = decide(&spec, &rolling, &History::default(), Some(&pin), t(0));
    assert_eq!((held.desired, held.reason), (5, Reason::RolloutInProgress));
}

#[test]
fn scaling_resumes_when_the_rollout_ends() {
    let mut run = Run::new(policy(1, 10, ""), 2);
    let mut rolling = total_rps(2, 600.0);
    rolling.rollout = Some(Rollout::Updating);
    for tick in 0..4 {
        let held = run.tick_with(t(tick * 15), &rolling, None);
        assert_eq!(held.reason, Reason::RolloutInProgress);
    }
    assert_eq!(run.current, 2);
    let resumed = run.tick_with(t(60), &total_rps(2, 600.0), None);
    assert_eq!((resumed.desired, run.current), (6, 6));
}
