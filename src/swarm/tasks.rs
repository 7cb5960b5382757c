//! Tasks as the engine reports them in JSON, reduced to [`TaskInfo`].
//!
//! Parsed here rather than through bollard because the engine's `NetworksAttachments` (each
//! task's address on each network, on every node) is not in bollard's model.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::docker::parse_time;
use super::{TaskInfo, TaskState};

/// The fields of an engine task that scaling needs; everything else is ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EngineTask {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "ServiceID", default)]
    service_id: String,
    #[serde(rename = "NodeID", default)]
    node_id: Option<String>,
    /// 0 or absent for a global service's task.
    #[serde(default)]
    slot: u64,
    #[serde(default)]
    status: EngineTaskStatus,
    #[serde(default)]
    desired_state: String,
    #[serde(default)]
    networks_attachments: Vec<EngineAttachment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EngineTaskStatus {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    err: Option<String>,
    #[serde(default)]
    container_status: Option<EngineContainerStatus>,
}

#[derive(Debug, Deserialize)]
struct EngineContainerStatus {
    #[serde(rename = "ContainerID", default)]
    container_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EngineAttachment {
    network: EngineNetwork,
    #[serde(default)]
    addresses: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EngineNetwork {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    spec: Option<EngineNetworkSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EngineNetworkSpec {
    #[serde(default)]
    name: String,
}

/// Reduces the engine's task state names to the three scaling cares about.
fn task_state(state: &str) -> TaskState {
    match state {
        "new" | "allocated" | "pending" | "assigned" | "accepted" | "preparing" | "ready"
        | "starting" => TaskState::Starting,
        "running" => TaskState::Running,
        _ => TaskState::Stopped,
    }
}

/// An address as the engine writes it (`10.0.1.2/24`, `fd00::2/64`), without its prefix length.
fn parse_address(text: &str) -> Option<IpAddr> {
    text.split('/').next()?.parse().ok()
}

pub(crate) fn task_from_engine(task: EngineTask) -> TaskInfo {
    let mut addresses = BTreeMap::new();
    for attachment in task.networks_attachments {
        let name = match attachment.network.spec {
            Some(spec) if !spec.name.is_empty() => spec.name,
            _ => attachment.network.id,
        };
        // A task has one address per network; the first that parses is it.
        if let Some(address) = attachment.addresses.iter().find_map(|a| parse_address(a)) {
            addresses.insert(name, address);
        }
    }
    TaskInfo {
        id: task.id,
        service_id: task.service_id,
        node_id: task.node_id.filter(|n| !n.is_empty()),
        slot: (task.slot > 0).then_some(task.slot),
        container_id: task
            .status
            .container_status
            .and_then(|c| c.container_id)
            .filter(|c| !c.is_empty()),
        state: task_state(&task.status.state),
        // `ready`: a replacement the restart supervisor holds back for the restart delay (5 s by
        // default, also after a node is lost) before it sets `running`. It is on its way to run.
        desired_running: matches!(task.desired_state.as_str(), "running" | "ready"),
        since: task.status.timestamp.as_deref().and_then(parse_time),
        addresses,
        message: task.status.message.filter(|m| !m.is_empty()),
        error: task.status.err.filter(|e| !e.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_container_and_addresses_without_prefix_length() {
        let json = r#"{
            "ID": "t1", "ServiceID": "s1", "NodeID": "n1", "DesiredState": "running",
            "Status": {"Timestamp": "2026-11-22T00:05:30.623785567Z", "State": "running",
                       "ContainerStatus": {"ContainerID": "c1", "PID": 1, "ExitCode": 0}},
            "NetworksAttachments": [
                {"Network": {"ID": "net1", "Spec": {"Name": "backend"}}, "Addresses": ["10.0.1.2/24"]},
                {"Network": {"ID": "net2"}, "Addresses": ["fd00::2/64"]},
                {"Network": {"ID": "net3", "Spec": {"Name": "empty"}}, "Addresses": []}
            ]
        }"#;
        let task = task_from_engine(serde_json::from_str(json).unwrap());
        assert_eq!(task.id, "t1");
        assert_eq!(task.state, TaskState::Running);
        assert!(task.desired_running);
        assert_eq!(task.container_id.as_deref(), Some("c1"));
        assert_eq!(task.node_id.as_deref(), Some("n1"));
        assert_eq!(
            task.since.unwrap().to_rfc3339(),
            "2026-11-22T00:05:30.623785567+00:00"
        );
        assert_eq!(
            task.addresses["backend"],
            "10.0.1.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(task.addresses["net2"], "fd00::2".parse::<IpAddr>().unwrap());
        assert!(!task.addresses.contains_key("empty"));
    }

    #[test]
    fn a_pending_task_has_no_container_yet() {
        let json = r#"{"ID": "t2", "ServiceID": "s1", "DesiredState": "running",
                       "Status": {"State": "pending"}}"#;
        let task = task_from_engine(serde_json::from_str(json).unwrap());
        assert_eq!(task.state, TaskState::Starting);
        assert_eq!(task.container_id, None);
        assert!(task.addresses.is_empty());
        assert_eq!(task.unplaced_reason(), None, "only waiting, not refused");
    }

    #[test]
    fn a_task_no_node_can_take_says_why_in_swarms_words() {
        // As a Docker 20.10 manager reports a task whose placement constraint no node meets.
        let json = r#"{"ID": "vv8lfyfwu1eh1xm0e0y1krb6q", "Labels": {},
            "ServiceID": "r9rt3axb4eu8ye6y7mcbmor9z", "Slot": 1,
            "Status": {"Timestamp": "2026-11-29T20:24:48.06788521Z", "State": "pending",
                       "Message": "pending task scheduling",
                       "Err": "no suitable node (scheduling constraints not satisfied on 3 nodes)",
                       "PortStatus": {}},
            "DesiredState": "running"}"#;
        let task = task_from_engine(serde_json::from_str(json).unwrap());
        assert_eq!(task.state, TaskState::Starting);
        assert_eq!(task.slot, Some(1));
        assert_eq!(task.message.as_deref(), Some("pending task scheduling"));
        assert_eq!(
            task.unplaced_reason(),
            Some("no suitable node (scheduling constraints not satisfied on 3 nodes)")
        );

        // The same error on a task being shut down, or one a node took, is no placement problem.
        let shutting_down = TaskInfo {
            desired_running: false,
            ..task.clone()
        };
        assert_eq!(shutting_down.unplaced_reason(), None);
        let assigned = TaskInfo {
            node_id: Some("n1".into()),
            ..task
        };
        assert_eq!(assigned.unplaced_reason(), None);
    }

    #[test]
    fn a_replacement_held_back_by_the_restart_delay_is_wanted_running() {
        // A lost worker's task's replacement, as a Docker 20.10 manager lists it for the 5 s of
        // the restart delay.
        let json = r#"{"ID": "t3", "ServiceID": "s1", "NodeID": "n2", "Slot": 2,
                       "DesiredState": "ready", "Status": {"State": "ready"}}"#;
        let task = task_from_engine(serde_json::from_str(json).unwrap());
        assert!(task.desired_running);
        assert_eq!(task.state, TaskState::Starting);
        assert_eq!(task.slot, Some(2));
        let global = r#"{"ID": "t4", "ServiceID": "s1", "DesiredState": "shutdown",
                         "Status": {"State": "running"}}"#;
        let task = task_from_engine(serde_json::from_str(global).unwrap());
        assert!(!task.desired_running);
        assert_eq!(task.slot, None);
    }

    #[test]
    fn maps_every_engine_state() {
        for s in [
            "new",
            "allocated",
            "pending",
            "assigned",
            "accepted",
            "preparing",
            "ready",
            "starting",
        ] {
            assert_eq!(task_state(s), TaskState::Starting, "{s}");
        }
        assert_eq!(task_state("running"), TaskState::Running);
        for s in [
            "complete", "shutdown", "failed", "rejected", "remove", "orphaned",
        ] {
            assert_eq!(task_state(s), TaskState::Stopped, "{s}");
        }
    }
}
