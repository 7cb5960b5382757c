//! [`DockerSwarm`]: the [`Swarm`] port over the Docker engine API, through bollard.
//!
//! Updates send back the service spec exactly as read, as raw JSON (see [`super::engine_http`]
//! for why not through bollard's model), with only the replica count or the labels changed, at
//! the version read: the engine then changes nothing else, restarts no task, and refuses the
//! write ("update out of sequence", [`SwarmError::Conflict`]) if anyone changed the service in
//! between.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use bollard::errors::Error as BollardError;
use bollard::models::{
    EndpointPortConfigPublishModeEnum, EventMessage, EventMessageTypeEnum, Node, Service,
    ServiceSpec,
};
use bollard::query_parameters::{
    EventsOptions, ListNodesOptions, ListServicesOptions, StatsOptions,
};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};

use serde_json::Value;

use crate::decide::Rollout;

use super::engine_http::{query_escape, EngineAddress, EngineFailure, EngineHttp};
use super::stats::stats_from_engine;
use super::tasks::{task_from_engine, EngineTask};
use super::{
    ContainerStats, EventStream, NodeInfo, PublishedPort, ServiceEvent, ServiceInfo, Swarm,
    SwarmError, SwarmResult, TaskInfo,
};

/// Where the engine listens when `DOCKER_HOST` is not set.
const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The label `docker stack deploy` puts on every service of a stack.
const STACK_LABEL: &str = "com.docker.stack.namespace";

/// A connection to one Swarm manager's engine.
#[derive(Clone, Debug)]
pub struct DockerSwarm {
    docker: Docker,
    http: EngineHttp,
}

impl DockerSwarm {
    /// Connects to the engine named by `DOCKER_HOST` (`unix://` or `tcp://`), or the default
    /// socket, and settles on the highest API version both sides speak.
    pub async fn connect() -> SwarmResult<Self> {
        Self::connect_to(&docker_host()).await
    }

    /// Connects to the engine at `docker_host` (`unix:///path` or `tcp://host:port`).
    pub async fn connect_to(docker_host: &str) -> SwarmResult<Self> {
        let address = EngineAddress::parse(docker_host)?;
        let docker = connect_docker(docker_host).await?;
        let version = docker.client_version();
        let api_version = format!("{}.{}", version.major_version, version.minor_version);
        Ok(DockerSwarm {
            http: EngineHttp::new(&address, &api_version),
            docker,
        })
    }

    /// The API version spoken, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// The underlying bollard client, for what the port does not cover (tests create services).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Reads the service's spec as raw JSON and checks it is still at `version`, so a write
    /// never rests on a spec newer than what the caller decided on.
    async fn read_spec_at(&self, id: &str, version: u64) -> SwarmResult<Value> {
        let service: Value = self
            .http
            .get_json(&format!("/services/{}", query_escape(id)))
            .await
            .map_err(|e| classify(e, id, version))?;
        let current = service
            .pointer("/Version/Index")
            .and_then(Value::as_u64)
            .ok_or_else(|| missing(id, "Version"))?;
        if current != version {
            return Err(SwarmError::Conflict {
                service: id.to_owned(),
                version,
            });
        }
        match service.get("Spec") {
            Some(spec @ Value::Object(_)) => Ok(spec.clone()),
            _ => Err(missing(id, "Spec")),
        }
    }

    async fn write_spec(&self, id: &str, version: u64, spec: &Value) -> SwarmResult<()> {
        let path = format!("/services/{}/update?version={version}", query_escape(id));
        let answer = self
            .http
            .post_json(&path, spec)
            .await
            .map_err(|e| classify(e, id, version))?;
        let warnings = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v.get("Warnings").cloned());
        if let Some(Value::Array(warnings)) = warnings {
            for warning in warnings {
                tracing::warn!(service = id, "engine warning on update: {warning}");
            }
        }
        Ok(())
    }
}

impl Swarm for DockerSwarm {
    async fn list_services(&self) -> SwarmResult<Vec<ServiceInfo>> {
        let services = self
            .docker
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(|e| classify(e, "", 0))?;
        services.iter().map(service_info).collect()
    }

    async fn inspect_service(&self, name_or_id: &str) -> SwarmResult<ServiceInfo> {
        let service = self
            .docker
            .inspect_service(name_or_id, None)
            .await
            .map_err(|e| classify(e, name_or_id, 0))?;
        service_info(&service)
    }

    async fn update_replicas(&self, id: &str, version: u64, replicas: u64) -> SwarmResult<()> {
        self.scale(id, version, replicas, &BTreeMap::new()).await
    }

    async fn scale(
        &self,
        id: &str,
        version: u64,
        replicas: u64,
        set: &BTreeMap<String, String>,
    ) -> SwarmResult<()> {
        let mut spec = self.read_spec_at(id, version).await?;
        set_replicas(&mut spec, id, replicas)?;
        edit_labels(&mut spec, id, set, &[])?;
        self.write_spec(id, version, &spec).await
    }

    async fn update_labels(
        &self,
        id: &str,
        version: u64,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> SwarmResult<()> {
        let mut spec = self.read_spec_at(id, version).await?;
        edit_labels(&mut spec, id, set, remove)?;
        self.write_spec(id, version, &spec).await
    }

    async fn list_tasks(&self, service_id: &str) -> SwarmResult<Vec<TaskInfo>> {
        let filters = serde_json::json!({ "service": [service_id] }).to_string();
        let tasks: Vec<EngineTask> = self
            .http
            .get_json(&format!("/tasks?filters={}", query_escape(&filters)))
            .await
            .map_err(|e| classify(e, service_id, 0))?;
        Ok(tasks.into_iter().map(task_from_engine).collect())
    }

    async fn container_stats(&self, container_id: &str) -> SwarmResult<ContainerStats> {
        one_stats_sample(&self.docker, container_id).await
    }

    async fn nodes(&self) -> SwarmResult<Vec<NodeInfo>> {
        let local: Value = self
            .http
            .get_json("/info")
            .await
            .map_err(|e| classify(e, "", 0))?;
        let local = local.pointer("/Swarm/NodeID").and_then(Value::as_str);
        let nodes = self
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| classify(e, "", 0))?;
        Ok(nodes
            .iter()
            .filter_map(|node| node_info(node, local))
            .collect())
    }

    async fn ping(&self) -> SwarmResult<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, "", 0))
    }

    fn events(&self) -> EventStream {
        let filters = HashMap::from([("type".to_owned(), vec!["service".to_owned()])]);
        let options = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let stream = self
            .docker
            .events(Some(options))
            .map_err(|e| classify(e, "", 0))
            .try_filter_map(|event| async move { Ok(service_event(event)) });
        Box::pin(stream)
    }
}

/// The engine named by `DOCKER_HOST`, or the default socket.
pub(crate) fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned())
}

/// A bollard client of the engine at `docker_host`, at the highest API version both sides speak.
pub(crate) async fn connect_docker(docker_host: &str) -> SwarmResult<Docker> {
    let unreachable =
        |e: BollardError| SwarmError::Engine(format!("cannot reach {docker_host}: {e}"));
    Docker::connect_with_host(docker_host)
        .map_err(unreachable)?
        .negotiate_version()
        .await
        .map_err(unreachable)
}

/// One stats sample of a container of `docker`'s engine, at once: without one-shot the engine
/// waits a second for a second sample.
pub(crate) async fn one_stats_sample(
    docker: &Docker,
    container_id: &str,
) -> SwarmResult<ContainerStats> {
    let options = StatsOptions {
        stream: false,
        one_shot: true,
    };
    let sample = docker
        .stats(container_id, Some(options))
        .next()
        .await
        .ok_or_else(|| SwarmError::Engine(format!("container {container_id}: no stats sample")))?
        .map_err(|e| classify(e, "", 0))?;
    Ok(stats_from_engine(&sample, Utc::now()))
}

/// A node as the operator needs it; `None` for an entry without an ID.
fn node_info(node: &Node, local: Option<&str>) -> Option<NodeInfo> {
    let id = node.id.clone()?;
    let hostname = node
        .description
        .as_ref()
        .and_then(|d| d.hostname.clone())
        .unwrap_or_else(|| id.clone());
    // A manager may report 0.0.0.0 as its status address; its manager address then says where
    // it is (`10.0.0.1:2377`).
    let usable = |ip: &IpAddr| !ip.is_unspecified();
    let status = node
        .status
        .as_ref()
        .and_then(|s| s.addr.as_deref())
        .and_then(|addr| addr.parse::<IpAddr>().ok())
        .filter(usable);
    let manager = || {
        node.manager_status
            .as_ref()
            .and_then(|m| m.addr.as_deref())
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .map(|addr| addr.ip())
            .filter(usable)
    };
    Some(NodeInfo {
        local: local == Some(id.as_str()),
        address: status.or_else(manager),
        hostname,
        id,
    })
}

/// The ports of a service's endpoint spec.
fn published_ports(spec: &ServiceSpec) -> Vec<PublishedPort> {
    let port = |p: Option<i64>| p.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
    spec.endpoint_spec
        .iter()
        .flat_map(|endpoint| endpoint.ports.iter().flatten())
        .filter_map(|config| {
            Some(PublishedPort {
                target: port(config.target_port)?,
                published: port(config.published_port),
                host_mode: config.publish_mode == Some(EndpointPortConfigPublishModeEnum::HOST),
            })
        })
        .collect()
}

fn set_replicas(spec: &mut Value, id: &str, replicas: u64) -> SwarmResult<()> {
    match spec.pointer_mut("/Mode/Replicated") {
        Some(Value::Object(replicated)) => {
            replicated.insert("Replicas".to_owned(), Value::from(replicas));
            Ok(())
        }
        _ => Err(SwarmError::NotReplicated(id.to_owned())),
    }
}

fn edit_labels(
    spec: &mut Value,
    id: &str,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> SwarmResult<()> {
    let Value::Object(fields) = spec else {
        return Err(missing(id, "Spec"));
    };
    let labels = fields
        .entry("Labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        // The engine writes `null` for a service that never had labels.
        *labels = Value::Object(Default::default());
    }
    if let Value::Object(labels) = labels {
        for key in remove {
            labels.remove(key);
        }
        for (key, value) in set {
            labels.insert(key.clone(), Value::from(value.as_str()));
        }
    }
    Ok(())
}

impl From<BollardError> for EngineFailure {
    fn from(error: BollardError) -> Self {
        match error {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => EngineFailure::Refused {
                status: status_code,
                message,
            },
            other => EngineFailure::Unanswered(other.to_string()),
        }
    }
}

/// Classifies an engine failure by what the caller should do about it; `service` is the name or
/// ID asked for (empty when the request was not about one service).
fn classify(failure: impl Into<EngineFailure>, service: &str, version: u64) -> SwarmError {
    match failure.into() {
        EngineFailure::Refused { message, .. } if message.contains("update out of sequence") => {
            SwarmError::Conflict {
                service: service.to_owned(),
                version,
            }
        }
        EngineFailure::Refused { status: 404, .. } if !service.is_empty() => {
            SwarmError::NotFound(service.to_owned())
        }
        EngineFailure::Refused { status, message } => {
            SwarmError::Engine(format!("{message} (HTTP {status})"))
        }
        EngineFailure::Unanswered(message) => SwarmError::Engine(message),
    }
}

fn missing(service: &str, field: &str) -> SwarmError {
    SwarmError::Engine(format!(
        "service {service}: the engine's answer has no {field}"
    ))
}

fn service_info(service: &Service) -> SwarmResult<ServiceInfo> {
    let id = service.id.clone().ok_or_else(|| missing("?", "ID"))?;
    let spec = service.spec.as_ref().ok_or_else(|| missing(&id, "Spec"))?;
    let version = service
        .version
        .as_ref()
        .and_then(|v| v.index)
        .ok_or_else(|| missing(&id, "Version"))?;
    let labels: BTreeMap<String, String> = spec
        .labels
        .as_ref()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let replicas = spec
        .mode
        .as_ref()
        .and_then(|mode| mode.replicated.as_ref())
        // An absent count in replicated mode means the engine's default of one.
        .map(|replicated| replicated.replicas.unwrap_or(1).max(0) as u64);
    let limits = spec
        .task_template
        .as_ref()
        .and_then(|t| t.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    Ok(ServiceInfo {
        name: spec.name.clone().unwrap_or_else(|| id.clone()),
        id,
        version,
        stack: labels.get(STACK_LABEL).cloned(),
        labels,
        replicas,
        cpu_limit_nanos: limits.and_then(|l| l.nano_cpus).filter(|n| *n > 0),
        memory_limit_bytes: limits.and_then(|l| l.memory_bytes).filter(|n| *n > 0),
        ports: published_ports(spec),
        rollout: service
            .update_status
            .as_ref()
            .and_then(|status| status.state)
            .and_then(|state| Rollout::from_engine_state(state.as_ref())),
    })
}

fn service_event(event: EventMessage) -> Option<ServiceEvent> {
    if event.typ != Some(EventMessageTypeEnum::SERVICE) {
        return None;
    }
    let actor = event.actor?;
    let id = actor.id?;
    let name = actor
        .attributes
        .and_then(|mut a| a.remove("name"))
        .unwrap_or_else(|| id.clone());
    match event.action.as_deref()? {
        "create" => Some(ServiceEvent::Created { id, name }),
        "update" => Some(ServiceEvent::Updated { id, name }),
        "remove" => Some(ServiceEvent::Removed { id, name }),
        _ => None,
    }
}

/// Parses an engine timestamp (RFC 3339 with nanoseconds).
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    #[test]
    fn out_of_sequence_is_a_conflict_and_404_is_not_found() {
        let conflict = classify(
            BollardError::DockerResponseServerError {
                status_code: 500,
                message: "rpc error: code = Unknown desc = update out of sequence".into(),
            },
            "web",
            7,
        );
        assert!(
            matches!(conflict, SwarmError::Conflict { ref service, version: 7 } if service == "web")
        );
        let missing = classify(
            BollardError::DockerResponseServerError {
                status_code: 404,
                message: "service web not found".into(),
            },
            "web",
            0,
        );
        assert!(matches!(missing, SwarmError::NotFound(ref s) if s == "web"));
        let other = classify(
            BollardError::DockerResponseServerError {
                status_code: 500,
                message: "boom".into(),
            },
            "web",
            0,
        );
        assert!(matches!(other, SwarmError::Engine(ref m) if m.contains("boom")));
    }

    #[test]
    fn maps_service_events_and_ignores_the_rest() {
        let event = |typ, action: &str| EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(HashMap::from([("name".into(), "web".into())])),
            }),
            ..Default::default()
        };
        let updated = ServiceEvent::Updated {
            id: "abc".into(),
            name: "web".into(),
        };
        assert_eq!(
            service_event(event(EventMessageTypeEnum::SERVICE, "update")),
            Some(updated)
        );
        assert!(matches!(
            service_event(event(EventMessageTypeEnum::SERVICE, "create")),
            Some(ServiceEvent::Created { .. })
        ));
        assert!(matches!(
            service_event(event(EventMessageTypeEnum::SERVICE, "remove")),
            Some(ServiceEvent::Removed { .. })
        ));
        assert_eq!(
            service_event(event(EventMessageTypeEnum::CONTAINER, "update")),
            None
        );
        assert_eq!(
            service_event(event(EventMessageTypeEnum::SERVICE, "exec")),
            None
        );
    }
}
