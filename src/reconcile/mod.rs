//! The reconcile loop: observe each service with a policy, decide, and actuate, on a schedule and
//! at once on Swarm service events.

mod batcher;
pub mod controller;
pub mod events;
pub mod lease;
pub mod notify;
pub mod restore;
pub mod service;
pub mod signals;
pub mod status;
mod tasks;
pub mod telemetry;

pub use controller::{Action, ControllerConfig, Reconciler, ServiceRef, Wake, Waker};
pub use lease::{Leadership, Role};
pub use service::{PolicyReconciler, ReconcileError, ReconcileOptions, ServiceMemory};
pub use status::{
    DecisionInputs, DecisionRecord, ForecasterStatus, HistoryRange, MetricStatus, Sample,
    ServiceStatus, StatusStore, Trigger,
};
pub use telemetry::{NoTelemetry, Telemetry};
