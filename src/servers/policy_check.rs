//! A policy's outbound references checked against the operator's rule before anything is read,
//! so a refused name or URL is a diagnostic on that service, naming the field.

use super::{Outbound, ServerKind};
use crate::policy::{Diagnostic, PolicySpec, Source};

impl Outbound {
    /// Every server reference of `spec` that this operator refuses, with its field path.
    pub fn check_policy(&self, spec: &PolicySpec) -> Vec<Diagnostic> {
        let mut found = Vec::new();
        let sources = spec
            .metrics
            .iter()
            .enumerate()
            .map(|(i, metric)| (format!("spec.metrics[{i}]"), metric.source()))
            .chain(
                spec.observe
                    .iter()
                    .enumerate()
                    .map(|(i, metric)| (format!("spec.observe[{i}]"), metric.source())),
            );
        for (path, source) in sources {
            if let Some((field, kind, reference)) = source.and_then(server_of) {
                if let Err(error) = self.resolve(kind, reference) {
                    found.push(Diagnostic::new(
                        format!("{path}.{field}"),
                        error.to_string(),
                    ));
                }
            }
        }
        let receivers = spec.anomaly.iter().flat_map(|anomaly| &anomaly.notify);
        for (i, notify) in receivers.enumerate() {
            let (field, reference) = match (&notify.receiver, &notify.url) {
                (Some(receiver), _) => ("receiver", receiver),
                (None, Some(url)) => ("url", url),
                (None, None) => continue,
            };
            if let Err(error) = self.resolve(ServerKind::Webhook, reference) {
                found.push(Diagnostic::new(
                    format!("spec.anomaly.notify[{i}].{field}"),
                    error.to_string(),
                ));
            }
        }
        found
    }
}

/// The server a source names: its field (relative to the metric), kind and reference.
fn server_of(source: Source<'_>) -> Option<(&'static str, ServerKind, &str)> {
    match source {
        Source::Prometheus(spec) => spec
            .server
            .as_deref()
            .map(|server| ("prometheus.server", ServerKind::Prometheus, server)),
        Source::Redis(spec) => Some(("redis.server", ServerKind::Redis, spec.server.as_str())),
        Source::Rabbitmq(spec) => Some((
            "rabbitmq.server",
            ServerKind::Rabbitmq,
            spec.server.as_str(),
        )),
        Source::Scrape(_) | Source::Docker(_) => None,
    }
}
