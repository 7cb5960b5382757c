//! `swarmpilot agent`: one per node (a global service), serving its own node's engine stats of
//! Swarm task containers to the operator.
//!
//! Engine stats are node-local: through one manager's engine the operator can sample only that
//! node's containers. The agent reads its node's engine read-only (container inspect and stats,
//! nothing else), answers only for containers of Swarm tasks, and only to callers holding the
//! agent token (a Docker secret). The operator's side, finding the agents and asking them, is
//! [`crate::metrics::agents`].

pub mod protocol;
mod server;

pub use server::{router, serve, AgentConfig, AgentState};
