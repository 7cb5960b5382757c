//! The one interface every metric source implements.
//!
//! A source is a reader of one kind of policy source spec ([`crate::policy::PrometheusSource`],
//! [`crate::policy::ScrapeSource`], [`crate::policy::DockerSource`]...). Adding a source is: a
//! spec type and a variant of [`crate::policy::Source`] in the policy, a reader implementing
//! [`MetricSource`] here, and one arm in [`super::Observer::read`]'s exhaustive match, which the
//! compiler points at when the variant is added.

use std::future::Future;

use super::{MetricError, Reading};
use crate::swarm::ServiceInfo;

/// Reads one metric of one service as its policy spec says.
pub trait MetricSource: Send + Sync {
    /// What the policy says about where and how to read (a query, a port and metric name...).
    type Spec: Sync;

    /// Read `metric` of `service` now. `metric` is the policy's name for it: sources that keep
    /// a previous sample to compute rates key it by service and metric name.
    fn read(
        &self,
        service: &ServiceInfo,
        metric: &str,
        spec: &Self::Spec,
    ) -> impl Future<Output = Result<Reading, MetricError>> + Send;
}
