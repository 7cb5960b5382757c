//! swarmpilot: a Kubernetes-style autoscaling operator for Docker Swarm.
//!
//! Operators declare a [`policy::ScalingPolicy`] in YAML and attach it to a Swarm service as a
//! label. A reconcile loop reads the policies, observes each service through Prometheus-format
//! metrics, asks two ONNX models what the traffic is about to do and what kind of traffic it is,
//! and converges the replica count with the Kubernetes HPA algorithm and behavior semantics.
//!
//! The modules depend downward only:
//!
//! - [`policy`]: the document, its defaults, validation and the label codec (no I/O).
//! - [`decide`]: the pure decision engine (HPA algorithm and behavior, forecasts, traffic
//!   states, overrides, fallback), and the per-service memory of model signals.
//! - [`swarm`]: the Swarm port, a small trait and its bollard adapter.
//! - [`servers`]: the outbound addresses a policy may name (registered servers, the
//!   allow-list), their credentials, and HTTP clients that follow no redirect and refuse
//!   link-local and metadata addresses.
//! - [`metrics`]: observing services through Prometheus, the tasks' exposition endpoints and
//!   Docker stats, each source behind one trait.
//! - [`agent`]: `swarmpilot agent`, which serves its node's engine stats to the operator.
//! - [`models`]: the ONNX traffic models (forecaster, traffic-state classifier) run with tract.
//! - [`reconcile`]: the control loop (per-service workers, events, backoff) and the policy
//!   reconciler that observes, asks the models, decides and writes; its in-memory status.
//! - [`webhook`]: the HTTP server beside the loop: overrides, Alertmanager, status API,
//!   the operator's own metrics and the dashboard. It reaches the loop only through handles.
//! - [`replay`]: offline simulation of `decide` over a trace, beside the HPA baseline.
//! - [`cli`]: the bodies of the `swarmpilot` commands; `main.rs` only parses arguments.
//!
//! Every reconcile is `observe -> decide -> actuate`; `decide` is a pure function of the policy,
//! the observation, the history, any override and the time, so it can be tested exhaustively and
//! replayed offline over recorded traffic.

pub mod agent;
pub mod cli;
pub mod decide;
pub mod metrics;
pub mod models;
pub mod policy;
pub mod reconcile;
pub mod replay;
pub mod servers;
pub mod swarm;
pub mod webhook;
