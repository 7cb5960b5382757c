//! `spec.schedules` in a decision: the floor the active schedules set at `now` (KEDA's `cron`
//! scaler). A function of the policy and `now` alone, so live decisions and `replay` agree.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{PolicySpec, Window, WindowState};

/// The active schedule with the highest floor, named in decisions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleFloor {
    /// The schedule's `name`.
    pub name: String,
    /// Its `desiredReplicas`: the fewest replicas while it is active.
    pub replicas: u32,
    /// When its window closes (the next `end`), in the schedule's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<FixedOffset>>,
}

impl ScheduleFloor {
    /// `schedule business-hours (until 17:00:00 +05:30)`, for messages.
    pub fn describe(&self) -> String {
        match self.until {
            Some(until) => format!(
                "schedule {} (until {})",
                self.name,
                until.format("%Y-%m-%d %H:%M:%S %:z")
            ),
            None => format!("schedule {}", self.name),
        }
    }
}

/// The active schedule with the highest `desiredReplicas` at `now` (the first such in policy
/// order), or `None` when no window is active. A schedule that does not parse (only in a policy
/// that failed validation) is never active.
pub(crate) fn floor(spec: &PolicySpec, now: DateTime<Utc>) -> Option<ScheduleFloor> {
    let mut best: Option<ScheduleFloor> = None;
    for schedule in &spec.schedules {
        if best
            .as_ref()
            .is_some_and(|b| b.replicas >= schedule.desired_replicas)
        {
            continue;
        }
        let Ok(window) = Window::parse(schedule) else {
            continue;
        };
        if let WindowState::Active { until, .. } = window.state_at(now) {
            best = Some(ScheduleFloor {
                name: schedule.name.clone(),
                replicas: schedule.desired_replicas,
                until: until.map(|u| u.with_timezone(&window.zone()).fixed_offset()),
            });
        }
    }
    best
}
