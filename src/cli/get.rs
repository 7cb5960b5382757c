//! `get`: one row per service that declares a policy, including those whose labels are
//! malformed, which show their diagnostic instead of hiding the others.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::table::write_table;
use super::{block_on, write_structured, Output};
use crate::policy::labels;
use crate::policy::Mode;
use crate::swarm::{DockerSwarm, ServiceInfo, Swarm};

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
    /// The operator's last recommendation, from the state label.
    pub desired_replicas: Option<u32>,
    /// Every problem with the service's swarmpilot labels; empty when all is well.
    pub diagnostics: Vec<String>,
}

/// The rows for every service with a policy, or with a malformed one, sorted by name.
pub fn rows(services: &[ServiceInfo]) -> Vec<PolicyRow> {
    let mut rows: Vec<PolicyRow> = services
        .iter()
        .filter_map(|service| {
            let (policy, mut diagnostics) = match labels::decode(&service.name, &service.labels) {
                Ok(None) => return None,
                Ok(Some(policy)) => (Some(policy), Vec::new()),
                Err(found) => (None, found.iter().map(|d| d.to_string()).collect()),
            };
            let desired = match labels::decode_state(&service.labels) {
                Ok(state) => state.and_then(|s| s.recommendations.last().map(|(_, r)| *r)),
                Err(found) => {
                    diagnostics.extend(found.iter().map(|d| d.to_string()));
                    None
                }
            };
            Some(PolicyRow {
                service: service.name.clone(),
                mode: policy.as_ref().map(|p| p.spec.mode),
                min_replicas: policy.as_ref().map(|p| p.spec.min_replicas),
                max_replicas: policy.as_ref().map(|p| p.spec.max_replicas),
                current_replicas: service.replicas,
                desired_replicas: desired,
                diagnostics,
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
        [] => "ok".to_owned(),
        [only] => format!("invalid: {only}"),
        [first, rest @ ..] => format!("invalid: {first} (+{} more)", rest.len()),
    }
}

/// Prints the rows in `output`.
pub fn write_rows(out: &mut dyn Write, output: Output, rows: &[PolicyRow]) -> anyhow::Result<()> {
    if output != Output::Table {
        return write_structured(out, &rows, output);
    }
    let header = [
        "SERVICE",
        "MODE",
        "MIN",
        "MAX",
        "CURRENT",
        "DESIRED",
        "POLICY-STATUS",
    ];
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.service.clone(),
                cell(row.mode.map(|m| match m {
                    Mode::Enforce => "enforce",
                    Mode::Recommend => "recommend",
                })),
                cell(row.min_replicas),
                cell(row.max_replicas),
                row.current_replicas
                    .map_or_else(|| "global".to_owned(), |r| r.to_string()),
                cell(row.desired_replicas),
                status(row),
            ]
        })
        .collect();
    write_table(out, &header, &lines)?;
    Ok(())
}

/// `swarmpilot get`.
pub fn run(output: Output) -> anyhow::Result<ExitCode> {
    let services = block_on(async {
        let swarm = DockerSwarm::connect().await?;
        swarm.list_services().await
    })??;
    write_rows(&mut std::io::stdout().lock(), output, &rows(&services))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
            stack: None,
            cpu_limit_nanos: None,
            memory_limit_bytes: None,
            ports: Vec::new(),
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
        let rows = rows(&services);
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
        write_rows(&mut out, Output::Table, &rows).unwrap();
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
        let rows = rows(&[service(
            "web",
            &[(MAX, "8"), (labels::CPU, "70"), (STATE, "{oops")],
        )]);
        assert_eq!(rows[0].desired_replicas, None);
        assert!(
            rows[0].diagnostics.iter().any(|d| d.contains(STATE)),
            "{:?}",
            rows[0].diagnostics
        );
    }

    #[test]
    fn json_output_is_a_list_of_rows() {
        let rows = rows(&[service("web", &[(MAX, "8"), (labels::CPU, "70")])]);
        let mut out = Vec::new();
        write_rows(&mut out, Output::Json, &rows).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value[0]["service"], "web");
        assert_eq!(value[0]["maxReplicas"], 8);
        assert_eq!(value[0]["currentReplicas"], 3);
        assert_eq!(value[0]["mode"], "enforce");
    }
}
