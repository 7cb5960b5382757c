//! Changing a service's labels at the version read, re-reading and re-planning when someone
//! changed the service in between, so a concurrent change is never overwritten.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::swarm::{ServiceInfo, Swarm, SwarmError, SwarmResult};

/// How many times a change is planned and written before giving up on a busy service.
pub const MAX_ATTEMPTS: u32 = 5;

/// Labels to set and labels to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelChange {
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// What [`change_labels`] did, with the service as last read.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Changed(ServiceInfo),
    /// The plan found nothing to change.
    Unchanged(ServiceInfo),
}

/// Reads `service`, asks `plan` what to change given what was read, and writes that at the
/// version read. A [`SwarmError::Conflict`] means the service changed meanwhile: it is read
/// again and re-planned, so the change always rests on the latest state, up to
/// [`MAX_ATTEMPTS`] times.
pub async fn change_labels<S: Swarm>(
    swarm: &S,
    service: &str,
    plan: impl Fn(&ServiceInfo) -> Option<LabelChange>,
) -> SwarmResult<Outcome> {
    let mut attempt = 1;
    loop {
        let read = swarm.inspect_service(service).await?;
        let Some(change) = plan(&read) else {
            return Ok(Outcome::Unchanged(read));
        };
        match swarm
            .update_labels(&read.id, read.version, &change.set, &change.remove)
            .await
        {
            Ok(()) => return Ok(Outcome::Changed(read)),
            Err(SwarmError::Conflict { .. }) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(service, attempt, "service changed since read; re-reading");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(SwarmError::Conflict { version, .. }) => {
                return Err(SwarmError::Engine(format!(
                    "service {service} kept changing while being updated ({MAX_ATTEMPTS} attempts, last at version {version}); try again"
                )))
            }
            Err(other) => return Err(other),
        }
    }
}
