//! `describe SERVICE`: the effective policy after defaults, the override and the operator's
//! state, decoded from the service's labels, and every problem with them.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::events::event_rows;
use super::operator_api::ServerArgs;
use super::table::write_table;
use super::{block_on, write_structured, Output};
use crate::decide::{Condition, PendingTasks, ScheduleFloor};
use crate::policy::labels;
use crate::policy::{Event, Override, ScaleState, ScalingPolicy};
use crate::swarm::{DockerSwarm, ServiceInfo, Swarm};
use chrono::Utc;

/// What `describe` reports about one service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub service: String,
    pub id: String,
    pub version: u64,
    /// `None` for a global service.
    pub replicas: Option<u64>,
    /// The policy with every default written out; `None` when there is none or it is malformed.
    pub policy: Option<ScalingPolicy>,
    #[serde(rename = "override")]
    pub override_: Option<Override>,
    pub state: Option<ScaleState>,
    /// Every problem with the service's swarmpilot labels.
    pub diagnostics: Vec<String>,
    /// Tasks Swarm cannot place on any node, with its reason; read from the Swarm by `run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_tasks: Option<PendingTasks>,
    /// What the running operator knows (recent decisions, metric readings, forecast, traffic
    /// state), when `--server` was given; an error text when it could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<Result<serde_json::Value, String>>,
}

/// Decodes every swarmpilot label of `service`; a malformed one is a diagnostic, not an error.
pub fn describe(service: &ServiceInfo) -> Description {
    let mut diagnostics = Vec::new();
    let mut keep = |found: crate::policy::Diagnostics| {
        diagnostics.extend(found.iter().map(|d| d.to_string()));
    };
    let policy = labels::decode(&service.name, &service.labels).unwrap_or_else(|e| {
        keep(e);
        None
    });
    let override_ = labels::decode_override(&service.labels).unwrap_or_else(|e| {
        keep(e);
        None
    });
    let state = labels::decode_state(&service.labels).unwrap_or_else(|e| {
        keep(e);
        None
    });
    Description {
        service: service.name.clone(),
        id: service.id.clone(),
        version: service.version,
        replicas: service.replicas,
        policy: policy.map(|p| p.with_defaults()),
        override_,
        state,
        diagnostics,
        pending_tasks: None,
        operator: None,
    }
}

/// Prints the description in `output`; `table` is a readable report.
pub fn write_description(
    out: &mut dyn Write,
    output: Output,
    d: &Description,
) -> anyhow::Result<()> {
    if output != Output::Table {
        return write_structured(out, d, output);
    }
    writeln!(out, "Name:      {}", d.service)?;
    writeln!(out, "ID:        {}", d.id)?;
    writeln!(out, "Version:   {}", d.version)?;
    let replicas = d
        .replicas
        .map_or_else(|| "global".to_owned(), |r| r.to_string());
    writeln!(out, "Replicas:  {replicas}")?;
    if let Some(pending) = &d.pending_tasks {
        writeln!(out, "Pending:   {pending}")?;
    }
    let status = match (&d.policy, d.diagnostics.is_empty()) {
        (_, false) => "invalid",
        (Some(_), true) => "ok",
        (None, true) => "none",
    };
    writeln!(out, "Policy:    {status}")?;
    if !d.diagnostics.is_empty() {
        writeln!(out, "Diagnostics:")?;
        for diagnostic in &d.diagnostics {
            writeln!(out, "  {diagnostic}")?;
        }
    }
    write_section(out, "Override", d.override_.as_ref())?;
    write_section(out, "State", d.state.as_ref().map(without_log).as_ref())?;
    write_section(out, "Effective policy", d.policy.as_ref())?;
    write_events(out, d.state.as_ref().map_or(&[], |s| &s.log))?;
    match &d.operator {
        None => {}
        Some(Err(error)) => writeln!(out, "Operator: unavailable ({error})")?,
        Some(Ok(status)) => write_operator(out, status)?,
    }
    Ok(())
}

/// The operator's view: what each metric reads, the models' outputs and the latest decisions.
fn write_operator(out: &mut dyn Write, status: &serde_json::Value) -> anyhow::Result<()> {
    writeln!(out, "Operator:")?;
    for metric in status["metrics"].as_array().into_iter().flatten() {
        let reading = match (&metric["value"], &metric["error"]) {
            (serde_json::Value::Number(value), _) => value.to_string(),
            (_, serde_json::Value::String(error)) => format!("error: {error}"),
            _ => "-".to_owned(),
        };
        writeln!(
            out,
            "  metric {}: {reading}",
            metric["name"].as_str().unwrap_or("?")
        )?;
        for skipped in metric["skipped"].as_array().into_iter().flatten() {
            let on_node = skipped["node"]
                .as_str()
                .map(|node| format!(" on node {node}"))
                .unwrap_or_default();
            writeln!(
                out,
                "    left out: task {}{on_node}: {}",
                skipped["taskId"].as_str().unwrap_or("?"),
                skipped["reason"].as_str().unwrap_or("?")
            )?;
        }
    }
    if let Some(forecast) = status["forecast"].as_f64() {
        writeln!(out, "  forecast: {forecast:.2}")?;
    }
    write_forecaster(out, &status["forecaster"])?;
    if let Some(state) = status["trafficState"].as_str() {
        writeln!(out, "  traffic state: {state}")?;
    }
    let decisions = status["decisions"].as_array().cloned().unwrap_or_default();
    if let Some(latest) = decisions.last() {
        write_schedule(out, &latest["schedule"])?;
    }
    write_conditions(out, &status["conditions"])?;
    writeln!(out, "Recent decisions:")?;
    for decision in decisions.iter().rev().take(10) {
        // What ran a decision off the interval: a user's scale, an override, a start...
        let trigger = match decision["trigger"].as_str() {
            Some("interval") | None => String::new(),
            Some(trigger) => format!(" [{trigger}]"),
        };
        writeln!(
            out,
            "  {}  {} -> {}  {}{}{trigger}  {}",
            decision["at"].as_str().unwrap_or("?"),
            decision["current"],
            decision["desired"],
            decision["reason"].as_str().unwrap_or("?"),
            if decision["applied"] == true {
                ""
            } else {
                " (not applied)"
            },
            decision["message"].as_str().unwrap_or(""),
        )?;
    }
    if decisions.is_empty() {
        writeln!(out, "  none yet")?;
    }
    // The headline names the cause; the latest decision's detail says the rest (whole errors
    // with URL and query, the override's reason, the models' notes).
    if let Some(latest) = decisions.last() {
        let detail = latest["detail"].as_array().cloned().unwrap_or_default();
        if !detail.is_empty() {
            writeln!(out, "Detail of the latest decision:")?;
            for line in detail {
                writeln!(out, "  {}", line.as_str().unwrap_or("?"))?;
            }
        }
    }
    Ok(())
}

/// The schedule active at the latest decision, if one was: its name, floor and end.
fn write_schedule(out: &mut dyn Write, schedule: &serde_json::Value) -> anyhow::Result<()> {
    if let Ok(floor) = serde_json::from_value::<ScheduleFloor>(schedule.clone()) {
        writeln!(
            out,
            "  active {}: floor {} replicas",
            floor.describe(),
            floor.replicas
        )?;
    }
    Ok(())
}

/// The conditions as `kubectl describe hpa` shows them: a table with a dashed rule.
fn write_conditions(out: &mut dyn Write, conditions: &serde_json::Value) -> anyhow::Result<()> {
    let conditions: Vec<Condition> = serde_json::from_value(conditions.clone()).unwrap_or_default();
    if conditions.is_empty() {
        writeln!(out, "Conditions: none yet")?;
        return Ok(());
    }
    writeln!(out, "Conditions:")?;
    let header = ["Type", "Status", "Reason", "Since", "Message"];
    let mut rows = vec![header.iter().map(|h| "-".repeat(h.len())).collect()];
    rows.extend(conditions.iter().map(|c| {
        vec![
            c.type_.as_str().to_owned(),
            c.status.as_str().to_owned(),
            c.reason.as_str().to_owned(),
            c.last_transition_time
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string(),
            c.message.clone(),
        ]
    }));
    let mut table = Vec::new();
    write_table(&mut table, &header, &rows)?;
    for line in String::from_utf8_lossy(&table).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// The state without its event ring, which has a table of its own.
fn without_log(state: &ScaleState) -> ScaleState {
    ScaleState {
        log: Vec::new(),
        ..state.clone()
    }
}

/// The events as `kubectl describe` lists them, oldest first.
fn write_events(out: &mut dyn Write, log: &[Event]) -> anyhow::Result<()> {
    if log.is_empty() {
        writeln!(out, "Events: none")?;
        return Ok(());
    }
    writeln!(out, "Events:")?;
    let header = ["Type", "Reason", "Age", "Message"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| "-".repeat(h.len())).collect()];
    rows.extend(event_rows(&log.iter().collect::<Vec<_>>(), Utc::now()));
    let mut table = Vec::new();
    write_table(&mut table, &header, &rows)?;
    for line in String::from_utf8_lossy(&table).lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

fn write_section(
    out: &mut dyn Write,
    title: &str,
    value: Option<&impl Serialize>,
) -> anyhow::Result<()> {
    let Some(value) = value else {
        writeln!(out, "{title}: none")?;
        return Ok(());
    };
    writeln!(out, "{title}:")?;
    let yaml = serde_yaml::to_string(&serde_json::to_value(value)?)?;
    for line in yaml.lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// Arguments of `swarmpilot describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's name or ID.
    pub service: String,
    #[command(flatten)]
    pub api: ServerArgs,
}

/// `swarmpilot describe SERVICE`.
pub fn run(args: &Args, output: Output) -> anyhow::Result<ExitCode> {
    let description = block_on(async {
        let swarm = DockerSwarm::connect().await?;
        let info = swarm.inspect_service(&args.service).await?;
        let mut description = describe(&info);
        description.pending_tasks = super::pending_tasks(&swarm, &info).await?;
        description.operator = args.api.get(&format!("/v1/services/{}", info.name)).await;
        anyhow::Ok(description)
    })??;
    write_description(&mut std::io::stdout().lock(), output, &description)?;
    Ok(ExitCode::SUCCESS)
}

/// The forecast ensemble's member in use and each member's recent error, naive's last.
fn write_forecaster(out: &mut dyn Write, forecaster: &serde_json::Value) -> anyhow::Result<()> {
    let Some(in_use) = forecaster["inUse"].as_str() else {
        return Ok(());
    };
    let errors = forecaster["errors"].as_object();
    let error_of = |member: &str| {
        errors
            .and_then(|e| e.get(member))
            .and_then(serde_json::Value::as_f64)
            .map_or("-".to_owned(), |e| format!("{e:.3}"))
    };
    let what = if in_use == "naive" {
        "naive in use: forecast ignored".to_owned()
    } else {
        format!("{in_use} in use")
    };
    let others: Vec<String> = errors
        .into_iter()
        .flatten()
        .map(|(member, _)| member.as_str())
        .filter(|member| *member != in_use && *member != "naive")
        .map(|member| format!("{member} {}", error_of(member)))
        .collect();
    let others = if others.is_empty() {
        String::new()
    } else {
        format!("; {}", others.join(", "))
    };
    writeln!(
        out,
        "  forecaster: {what}, recent error {} vs naive {}{others} (over {} forecasts)",
        error_of(in_use),
        error_of("naive"),
        forecaster["scored"]
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::labels::{CPU, MAX, OVERRIDE, POLICY};

    fn service(labels: &[(&str, &str)]) -> ServiceInfo {
        ServiceInfo {
            id: "abc".into(),
            name: "web".into(),
            version: 9,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            replicas: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn shows_the_policy_with_hpa_defaults_written_out() {
        let d = describe(&service(&[(MAX, "6"), (CPU, "70")]));
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
        let policy = d.policy.clone().unwrap();
        assert_eq!(policy.spec.service.as_deref(), Some("web"));
        assert!(policy.spec.behavior.scale_down.is_some());
        let mut out = Vec::new();
        write_description(&mut out, Output::Table, &d).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Policy:    ok"), "{text}");
        assert!(
            text.contains("stabilizationWindow: 5m") || text.contains("stabilizationWindow: 300s"),
            "{text}"
        );
        assert!(text.contains("Override: none"), "{text}");
    }

    #[test]
    fn a_decision_off_the_interval_says_what_ran_it() {
        let status = serde_json::json!({"decisions": [
            {"at": "t1", "current": 1, "desired": 3, "reason": "DesiredWithinRange",
             "message": "up", "applied": true, "trigger": "started"},
            {"at": "t2", "current": 3, "desired": 3, "reason": "WithinTolerance",
             "message": "keep", "applied": false, "trigger": "interval"},
            {"at": "t3", "current": 5, "desired": 3, "reason": "DesiredWithinRange",
             "message": "down", "applied": true, "trigger": "replicasChanged"},
        ]});
        let mut out = Vec::new();
        write_operator(&mut out, &status).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("  t3  5 -> 3  DesiredWithinRange [replicasChanged]  down\n"),
            "{text}"
        );
        assert!(
            text.contains("  t2  3 -> 3  WithinTolerance (not applied)  keep\n"),
            "{text}"
        );
        assert!(
            text.contains("  t1  1 -> 3  DesiredWithinRange [started]  up\n"),
            "{text}"
        );
    }

    #[test]
    fn malformed_labels_are_diagnostics_and_the_rest_still_shows() {
        let d = describe(&service(&[
            (POLICY, "maxReplicas: [1"),
            (OVERRIDE, "not json"),
        ]));
        assert_eq!(d.policy, None);
        assert_eq!(d.override_, None);
        assert!(
            d.diagnostics.iter().any(|x| x.contains(POLICY)),
            "{:?}",
            d.diagnostics
        );
        assert!(
            d.diagnostics.iter().any(|x| x.contains(OVERRIDE)),
            "{:?}",
            d.diagnostics
        );
        let mut out = Vec::new();
        write_description(&mut out, Output::Yaml, &d).unwrap();
        let value: serde_yaml::Value = serde_yaml::from_slice(&out).unwrap();
        assert_eq!(value["service"].as_str(), Some("web"));
        assert_eq!(
            value["diagnostics"].as_sequence().map(|s| s.len()),
            Some(d.diagnostics.len())
        );
    }
}
