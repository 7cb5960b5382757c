//! The reconcile loop: observe each service with a policy, decide, and actuate, on a schedule and
//! at once on Swarm service events.

pub mod controller;

pub use controller::{Action, ControllerConfig, Reconciler, ServiceRef};
