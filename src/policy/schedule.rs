//! A schedule's cron window read in its IANA time zone: whether it is active at an instant, and
//! until when. Pure: the instant comes in, nothing reads a clock.
//!
//! A window is active from a `start` occurrence until the next `end` occurrence, as KEDA's
//! `cron` scaler: at an instant, it is active when the latest `start` at or before it is later
//! than the latest `end` at or before it. Both ends are read in the window's time zone, with
//! croner's daylight-saving rules (Vixie cron's):
//! - a fixed time that does not exist on a spring-forward day (02:30 in Europe/Berlin on
//!   2026-03-29) happens at the first valid time after the gap (03:00);
//! - a fixed time that happens twice on a fall-back day (02:30 on 2026-10-25) happens once,
//!   at its first pass.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

use super::types::ScheduleSpec;

/// A parsed schedule window.
#[derive(Clone, Debug)]
pub struct Window {
    zone: Tz,
    start: Cron,
    end: Cron,
}

/// What a window is at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// Active since the last `start`, until the next `end` (`None`: none within croner's range).
    Active {
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    },
    Inactive,
}

/// A field of a schedule that could not be read: the field's name and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WindowError {
    /// `timezone`, `start` or `end`.
    pub field: &'static str,
    pub message: String,
}

/// An instant every pattern is checked from, for the checks that need one ("is `end` ever
/// reached"): validation reads no clock.
fn reference() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl Window {
    /// Reads `spec`'s zone and patterns; every field that cannot be read is reported.
    pub fn parse(spec: &ScheduleSpec) -> Result<Window, Vec<WindowError>> {
        let zone = zone(&spec.timezone);
        let start = cron("start", &spec.start);
        let end = cron("end", &spec.end);
        match (zone, start, end) {
            (Ok(zone), Ok(start), Ok(end)) => Ok(Window { zone, start, end }),
            (zone, start, end) => Err([zone.err(), start.err(), end.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }

    /// The window's state at `now`.
    pub fn state_at(&self, now: DateTime<Utc>) -> WindowState {
        let local = now.with_timezone(&self.zone);
        let Ok(last_start) = self.start.find_previous_occurrence(&local, true) else {
            return WindowState::Inactive;
        };
        let last_end = self.end.find_previous_occurrence(&local, true).ok();
        if last_end.is_some_and(|end| end >= last_start) {
            return WindowState::Inactive;
        }
        WindowState::Active {
            since: last_start.with_timezone(&Utc),
            until: self
                .end
                .find_next_occurrence(&local, false)
                .ok()
                .map(|end| end.with_timezone(&Utc)),
        }
    }

    /// The window's time zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Why the window can never be active, if it cannot: a `start` or `end` that never occurs,
    /// or an `end` that falls on every `start`.
    pub fn never_active(&self) -> Option<WindowError> {
        let from = reference().with_timezone(&self.zone);
        let Ok(first_start) = self.start.find_next_occurrence(&from, false) else {
            return Some(WindowError {
                field: "start",
                message: format!("{:?} never occurs", self.start.as_str()),
            });
        };
        match self.end.find_next_occurrence(&from, false) {
            Err(_) => Some(WindowError {
                field: "end",
                message: format!(
                    "{:?} is never reached: the window would never close",
                    self.end.as_str()
                ),
            }),
            // Identical patterns (or an end on every start) close the window as it opens.
            Ok(_) if self.end.is_time_matching(&first_start).unwrap_or(false) => {
                Some(WindowError {
                    field: "end",
                    message: format!(
                        "{:?} falls on every start ({:?}): the window would never be active",
                        self.end.as_str(),
                        self.start.as_str()
                    ),
                })
            }
            Ok(_) => None,
        }
    }
}

/// An IANA zone name, as the tz database spells it.
fn zone(name: &str) -> Result<Tz, WindowError> {
    name.parse::<Tz>().map_err(|_| WindowError {
        field: "timezone",
        message: format!("unknown IANA time zone {name:?} (e.g. Europe/Berlin, Asia/Kolkata, UTC)"),
    })
}

/// A cron pattern of five fields, or six with seconds first.
fn cron(field: &'static str, pattern: &str) -> Result<Cron, WindowError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|error| WindowError {
            field,
            message: format!("not a cron pattern {pattern:?}: {error}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(zone: &str, start: &str, end: &str) -> Window {
        Window::parse(&ScheduleSpec {
            name: "w".into(),
            timezone: zone.into(),
            start: start.into(),
            end: end.into(),
            desired_replicas: 2,
        })
        .expect("the window parses")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("an RFC 3339 instant")
    }

    fn active(w: &Window, at: &str) -> bool {
        matches!(w.state_at(utc(at)), WindowState::Active { .. })
    }

    #[test]
    fn a_start_in_the_spring_forward_gap_opens_the_window_after_the_gap() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let w = window("Europe/Berlin", "30 2 * * *", "30 3 * * *");
        assert!(!active(&w, "2026-03-29T00:59:59Z"));
        assert_eq!(
            w.state_at(utc("2026-03-29T01:00:00Z")),
            WindowState::Active {
                since: utc("2026-03-29T01:00:00Z"), // 03:00 CEST, the first time after the gap
                until: Some(utc("2026-03-29T01:30:00Z")), // 03:30 CEST
            }
        );
        assert!(!active(&w, "2026-03-29T01:30:00Z"));
        // The day before and after, the same window is an hour long at 02:30 local time.
        assert!(active(&w, "2026-03-28T01:30:00Z")); // 02:30 CET
        assert!(active(&w, "2026-03-30T00:30:00Z")); // 02:30 CEST
    }

    #[test]
    fn a_start_in_the_repeated_fall_back_hour_opens_the_window_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        let w = window("Europe/Berlin", "30 2 * * *", "30 3 * * *");
        assert!(!active(&w, "2026-10-25T00:29:59Z"));
        let open = WindowState::Active {
            since: utc("2026-10-25T00:30:00Z"), // 02:30 CEST, the first pass
            until: Some(utc("2026-10-25T02:30:00Z")), // 03:30 CET
        };
        assert_eq!(w.state_at(utc("2026-10-25T00:30:00Z")), open);
        // The second pass of 02:30 (CET) neither restarts nor closes it: it stays open two hours.
        assert_eq!(w.state_at(utc("2026-10-25T01:30:00Z")), open);
        assert_eq!(w.state_at(utc("2026-10-25T02:29:59Z")), open);
        assert!(!active(&w, "2026-10-25T02:30:00Z"));
    }

    #[test]
    fn business_hours_in_a_named_zone_skip_the_weekend() {
        let w = window("Asia/Kolkata", "0 9 * * 1-5", "0 17 * * 1-5");
        assert!(active(&w, "2026-11-27T03:30:00Z")); // Friday 09:00 IST
        assert!(active(&w, "2026-11-27T11:29:59Z")); // Friday 16:59:59 IST
        assert!(!active(&w, "2026-11-27T11:30:00Z")); // Friday 17:00 IST
        assert!(!active(&w, "2026-11-28T05:00:00Z")); // Saturday 10:30 IST
        assert!(!active(&w, "2026-11-30T03:29:59Z")); // Monday 08:59:59 IST
    }

    #[test]
    fn a_window_may_run_past_midnight_and_use_seconds() {
        let night = window("America/New_York", "0 22 * * *", "0 6 * * *");
        assert!(active(&night, "2026-11-30T04:00:00Z")); // 23:00 EST
        assert!(active(&night, "2026-11-30T10:59:59Z")); // 05:59:59 EST
        assert!(!active(&night, "2026-11-30T11:00:00Z"));
        let short = window("UTC", "10 * * * * *", "30 * * * * *");
        assert!(!active(&short, "2026-11-30T10:00:09Z"));
        assert!(active(&short, "2026-11-30T10:00:10Z"));
        assert!(!active(&short, "2026-11-30T10:00:30Z"));
    }

    #[test]
    fn unreadable_fields_are_named_together() {
        let errors = Window::parse(&ScheduleSpec {
            name: "w".into(),
            timezone: "Europe/Berlinn".into(),
            start: "0 25 * * *".into(),
            end: "every day".into(),
            desired_replicas: 2,
        })
        .expect_err("nothing parses");
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["timezone", "start", "end"]);
        assert!(
            errors[0].message.contains("\"Europe/Berlinn\""),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].message.contains("\"0 25 * * *\""),
            "{}",
            errors[1]
        );
    }

    #[test]
    fn a_window_that_cannot_be_active_is_named() {
        let never_closes = window("UTC", "0 9 * * *", "0 0 30 2 *");
        assert_eq!(never_closes.never_active().map(|e| e.field), Some("end"));
        let empty = window("UTC", "0 9 * * *", "0 * * * *");
        let error = empty.never_active().expect("an end on every start");
        assert!(error.message.contains("never be active"), "{error}");
        assert_eq!(
            window("UTC", "0 9 * * *", "0 17 * * *").never_active(),
            None
        );
    }
}
