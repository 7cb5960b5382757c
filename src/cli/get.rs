//! `get`: one row per service that declares a policy, including those whose labels are
//! malformed, which show their diagnostic instead of hiding the others; with `--server`, the
//! metrics against their targets as `kubectl get hpa` shows them; `-w` refreshes in place.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::operator_api::ServerArgs;
use super::table::write_table;
use super::{block_on, write_structured, Output};
use crate::decide::{PendingTasks, ScheduleFloor};
use crate::policy::labels;
use crate::policy::{Mode, Target};
use crate::reconcile::ServiceStatus;
use crate::swarm::{DockerSwarm, ServiceInfo, Swarm};
use crate::webhook::status::ServiceList;

/// How often `--watch` prints again.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Arguments of `swarmpilot get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub api: ServerArgs,
    /// Print again every 2 seconds, in place, until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// One metric against its target, as the operator last read it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReading {
    pub metric: String,
    /// The value compared with the target; `None` when unknown (no `--server`, or the read failed).
    pub current: Option<f64>,
    pub target: Target,
}

/// One service's line in `get`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRow {
    pub service: String,
    pub mode: Option<Mode>,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    /// The service's replica count; `None` for a global service.
    pub current_replicas: Option<u64>,
    /// The operator's last decision, or without `--server` its last recommendation from the
    /// state label.
    pub desired_replicas: Option<u32>,
    /// Each metric against its target.
    pub targets: Vec<TargetReading>,
    /// The active schedule with the highest floor at the operator's last decision (with
    /// `--server`); what TARGETS shows for a policy on schedules alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleFloor>,
    /// When the operator last changed the replica count (from the state label).
    pub last_scale: Option<DateTime<Utc>>,
    /// Every problem with the service's swarmpilot labels; empty when all is well.
    pub diagnostics: Vec<String>,
    /// Tasks Swarm cannot place on any node, with its reason; read from the Swarm by `run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_tasks: Option<PendingTasks>,
}

/// The rows for every service with a policy, or with a malformed one, sorted by name;
/// `operator` holds what the running operator knows, by service name.
pub fn rows(
    services: &[ServiceInfo],
    operator: &BTreeMap<String, ServiceStatus>,
) -> Vec<PolicyRow> {
    let mut rows: Vec<PolicyRow> = services
        .iter()
        .filter_map(|service| {
            let (policy, mut diagnostics) = match labels::decode(&service.name, &service.labels) {
                Ok(None) => return None,
                Ok(Some(policy)) => (Some(policy), Vec::new()),
                Err(found) => (None, found.iter().map(|d| d.to_string()).collect()),
            };
            let state = labels::decode_state(&service.labels).unwrap_or_else(|found| {
                diagnostics.extend(found.iter().map(|d| d.to_string()));
                None
            });
            let live = operator.get(&service.name);
            let desired = live.and_then(|s| s.desired).or_else(|| {
                state
                    .as_ref()
                    .and_then(|s| s.recommendations.last().map(|(_, r)| *r))
            });
            let targets = policy
                .iter()
                .flat_map(|p| &p.spec.metrics)
                .map(|metric| TargetReading {
                    metric: metric.name.clone(),
                    current: live
                        .and_then(|s| s.metrics.iter().find(|m| m.name == metric.name))
                        .and_then(|m| m.compared),
                    target: metric.target,
                })
                .collect();
            Some(PolicyRow {
                service: service.name.clone(),
                mode: policy.as_ref().map(|p| p.spec.mode),
                min_replicas: policy.as_ref().map(|p| p.spec.min_replicas),
                max_replicas: policy.as_ref().map(|p| p.spec.max_replicas),
                current_replicas: service.replicas,
                desired_replicas: desired,
                targets,
                schedule: live
                    .and_then(|s| s.decisions.back())
                    .and_then(|d| d.schedule.clone()),
                last_scale: state.and_then(|s| s.last_scale),
                diagnostics,
                pending_tasks: None,
            })
        })
        .collect();
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    rows
}

fn cell<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn status(row: &PolicyRow) -> String {
    match row.diagnostics.as_slice() {
        [] => row
            .pending_tasks
            .as_ref()
            .map_or_else(|| "ok".to_owned(), ToString::to_string),
        [only] => format!("invalid: {only}"),
        [first, rest @ ..] => format!("invalid: {first} (+{} more)", rest.len()),
    }
}

/// A number as `kubectl get hpa` would print it: no needless decimals.
fn amount(value: f64) -> String {
    let text = if value.abs() >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// `rps 38/50, cpu 72%/70%`; an unknown value is `<unknown>`, as kubectl shows it.
fn targets(row: &PolicyRow) -> String {
    if row.targets.is_empty() {
        // A policy on schedules alone: its active window is what it scales to.
        return row.schedule.as_ref().map_or_else(
            || "-".to_owned(),
            |s| format!("schedule {} {}", s.name, s.replicas),
        );
    }
    row.targets
        .iter()
        .map(|t| {
            let percent = if matches!(t.target, Target::Utilization(_)) {
                "%"
            } else {
                ""
            };
            let current = t.current.map_or_else(
                || "<unknown>".to_owned(),
                |v| format!("{}{percent}", amount(v)),
            );
            format!(
                "{} {current}/{}{percent}",
                t.metric,
                amount(t.target.amount())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration as kubectl prints ages: `45s`, `12m`, `3h`, `2d`.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Prints the rows in `output`, ages counted to `now`.
pub fn write_rows(
    out: &mut dyn Write,
    output: Output,
    rows: &[PolicyRow],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if output != Output::Table {
        return write_structured(out, &rows, output);
    }
    let header = [
        "SERVICE",
        "MODE",
        "TARGETS",
        "MIN",
        "MAX",
        "REPLICAS",
        "AGE",
        "POLICY-STATUS",
    ];
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let current = row
                .current_replicas
                .map_or_else(|| "global".to_owned(), |r| r.to_string());
            vec![
                row.service.clone(),
                cell(row.mode.map(|m| match m {
                    Mode::Enforce => "enforce",
                    Mode::Recommend => "recommend",
                })),
                targets(row),
                cell(row.min_replicas),
                cell(row.max_replicas),
                format!("{current}/{}", cell(row.desired_replicas)),
                cell(row.last_scale.map(|at| age(at, now))),
                status(row),
            ]
        })
        .collect();
    write_table(out, &header, &lines)?;
    Ok(())
}

/// `swarmpilot get [-w]`.
pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async {
        let swarm = DockerSwarm::connect().await?;
        loop {
            let services = swarm.list_services().await?;
            let (operator, note) = match args.api.get::<ServiceList>("/v1/services").await {
                None => (BTreeMap::new(), None),
                Some(Ok(list)) => (
                    list.services
                        .into_iter()
                        .map(|s| (s.service.clone(), s))
                        .collect(),
                    None,
                ),
                Some(Err(error)) => (BTreeMap::new(), Some(error)),
            };
            let mut rows = rows(&services, &operator);
            for row in &mut rows {
                if let Some(service) = services.iter().find(|s| s.name == row.service) {
                    row.pending_tasks = super::pending_tasks(&swarm, service).await?;
                }
            }
            let mut text = Vec::new();
            write_rows(&mut text, output, &rows, Utc::now())?;
            let mut stdout = std::io::stdout().lock();
            if args.watch {
                // Home and clear: the table is redrawn in place.
                write!(stdout, "\x1b[H\x1b[2J")?;
            }
            stdout.write_all(&text)?;
            if let Some(error) = note {
                writeln!(stdout, "(targets unknown: {error})")?;
            }
            stdout.flush()?;
            drop(stdout);
            if !args.watch {
                return anyhow::Ok(());
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
    })??;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::labels::{MAX, MIN, POLICY, STATE};

    fn service(name: &str, labels: &[(&str, &str)]) -> ServiceInfo {
        ServiceInfo {
            id: format!("id-{name}"),
            name: name.to_owned(),
            version: 1,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            replicas: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn a_malformed_label_is_listed_with_its_diagnostic_beside_the_others() {
        let services = [
            service("web", &[(MIN, "2"), (MAX, "8"), (labels::CPU, "70")]),
            service("broken", &[(POLICY, "spec: [not, a, mapping")]),
            service("plain", &[("other", "x")]),
            service(
                "api",
                &[
                    (MAX, "4"),
                    (labels::CPU, "50"),
                    (
                        STATE,
                        r#"{"recommendations":[["2026-01-01T00:00:00Z",3],["2026-01-01T00:00:15Z",4]]}"#,
                    ),
                ],
            ),
        ];
        let rows = rows(&services, &BTreeMap::new());
        let names: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
        assert_eq!(names, ["api", "broken", "web"]);
        assert_eq!(rows[0].desired_replicas, Some(4));
        assert_eq!(rows[0].max_replicas, Some(4));
        assert!(rows[0].diagnostics.is_empty(), "{:?}", rows[0].diagnostics);
        assert!(!rows[1].diagnostics.is_empty());
        assert!(
            rows[1].diagnostics[0].contains(POLICY),
            "{:?}",
            rows[1].diagnostics
        );
        assert_eq!(
            (rows[2].min_replicas, rows[2].max_replicas),
            (Some(2), Some(8))
        );

        let mut out = Vec::new();
        write_rows(&mut out, Output::Table, &rows, Utc::now()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SERVICE"), "{text}");
        assert!(
            lines[1].starts_with("api") && lines[1].contains("enforce") && lines[1].ends_with("ok"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("broken") && lines[2].contains("invalid: label"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("web") && lines[3].contains(" -  "),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_state_label_is_a_diagnostic_too() {
        let rows = rows(
            &[service(
                "web",
                &[(MAX, "8"), (labels::CPU, "70"), (STATE, "{oops")],
            )],
            &BTreeMap::new(),
        );
        assert_eq!(rows[0].desired_replicas, None);
        assert!(
            rows[0].diagnostics.iter().any(|d| d.contains(STATE)),
            "{:?}",
            rows[0].diagnostics
        );
    }

    #[test]
    fn json_output_is_a_list_of_rows() {
        let rows = rows(
            &[service("web", &[(MAX, "8"), (labels::CPU, "70")])],
            &BTreeMap::new(),
        );
        let mut out = Vec::new();
        write_rows(&mut out, Output::Json, &rows, Utc::now()).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value[0]["service"], "web");
        assert_eq!(value[0]["maxReplicas"], 8);
        assert_eq!(value[0]["currentReplicas"], 3);
        assert_eq!(value[0]["mode"], "enforce");
    }

    #[test]
    fn targets_replicas_and_age_as_kubectl_get_hpa_shows_them() {
        use crate::reconcile::MetricStatus;
        let services = [service(
            "web",
            &[
                (MAX, "8"),
                (labels::RPS, "50"),
                (labels::CPU, "70"),
                (
                    STATE,
                    r#"{"recommendations":[["2026-01-01T00:00:00Z",3]],"lastScale":"2026-01-01T00:00:00Z"}"#,
                ),
            ],
        )];
        let metric = |name: &str, compared: Option<f64>| MetricStatus {
            name: name.into(),
            value: compared,
            compared,
            target: None,
            error: None,
            recommendation: None,
            skipped: Vec::new(),
        };
        let live = ServiceStatus {
            service: "web".into(),
            desired: Some(5),
            metrics: vec![metric("rps", Some(38.2)), metric("cpu", None)],
            ..Default::default()
        };
        let rows = rows(&services, &BTreeMap::from([("web".to_owned(), live)]));
        let mut out = Vec::new();
        let now = "2026-01-01T00:12:30Z".parse().unwrap();
        write_rows(&mut out, Output::Table, &rows, now).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("TARGETS") && lines[0].contains("REPLICAS"),
            "{text}"
        );
        let order: Vec<&str> = rows[0].targets.iter().map(|t| t.metric.as_str()).collect();
        let expected = if order == ["cpu", "rps"] {
            "cpu <unknown>/70%, rps 38/50"
        } else {
            "rps 38/50, cpu <unknown>/70%"
        };
        assert!(lines[1].contains(expected), "{text}");
        assert!(lines[1].contains(" 3/5 "), "{text}");
        assert!(lines[1].contains(" 12m "), "{text}");
    }

    #[test]
    fn a_policy_on_schedules_alone_shows_its_active_schedule_as_target() {
        use crate::reconcile::{DecisionInputs, DecisionRecord, Trigger};
        let policy = "maxReplicas: 10\nschedules:\n  - {name: business-hours, timezone: Europe/Paris, start: 0 9 * * 1-5, end: 0 18 * * 1-5, desiredReplicas: 10}\n";
        let services = [service("web", &[(POLICY, policy)])];
        let decision = |schedule: Option<ScheduleFloor>| DecisionRecord {
            at: "2026-11-30T10:00:00Z".parse().unwrap(),
            current: 3,
            desired: 10,
            reason: crate::decide::Reason::Scheduled,
            message: String::new(),
            detail: Vec::new(),
            applied: true,
            trigger: Trigger::Interval,
            schedule,
            inputs: DecisionInputs::default(),
        };
        let floor = ScheduleFloor {
            name: "business-hours".into(),
            replicas: 10,
            until: None,
        };
        // (the last decision's schedule, what TARGETS shows)
        for (schedule, shown) in [(Some(floor), "schedule business-hours 10"), (None, "-")] {
            let live = ServiceStatus {
                service: "web".into(),
                desired: Some(10),
                decisions: [decision(schedule)].into(),
                ..Default::default()
            };
            let rows = rows(&services, &BTreeMap::from([("web".to_owned(), live)]));
            assert_eq!(targets(&rows[0]), shown);
        }
    }

    #[test]
    fn ages_and_amounts() {
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let later = |secs| at + chrono::Duration::seconds(secs);
        assert_eq!(age(at, later(45)), "45s");
        assert_eq!(age(at, later(600)), "10m");
        assert_eq!(age(at, later(3 * 3600)), "3h");
        assert_eq!(age(at, later(5 * 86_400)), "5d");
        assert_eq!(amount(72.4), "72");
        assert_eq!(amount(0.5), "0.5");
        assert_eq!(amount(3.0), "3");
    }
}
