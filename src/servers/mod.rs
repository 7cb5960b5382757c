//! Every outbound address a policy can name: servers registered with the operator and referred
//! to by name, or URLs under the operator's allow-list; credentials only from secret files.
//!
//! A policy is written by whoever can label a service; the addresses the operator talks to are
//! chosen by its administrator. So `prometheus.server`, `anomaly.notify[].receiver` and the queue
//! sources name a [`Server`] of the servers file (`--servers`), and a raw URL is accepted only when
//! it lies under an `--allow-url` prefix. Credentials go only to registered servers. The clients
//! built here follow no redirect and refuse link-local and cloud metadata addresses after
//! resolution unless the administrator named the host ([`guard`]).

mod allow;
mod guard;
mod policy_check;
mod registry;

use std::path::PathBuf;
use std::time::Duration;

pub use allow::AllowList;
pub use guard::{refused_address, TrustedHosts};
pub use registry::{read_secret, Auth, Registry, Server, ServerKind};

/// Why an outbound address or the servers file is refused; each names the field, file or value.
#[derive(Debug, thiserror::Error)]
pub enum ServersError {
    #[error("cannot read the servers file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("cannot read the secret file {}: {reason}", path.display())]
    Secret { path: PathBuf, reason: String },
    #[error(
        "no {kind} server named {name:?} is registered with the operator (registered: {})",
        list(known)
    )]
    Unknown {
        name: String,
        kind: ServerKind,
        known: Vec<String>,
    },
    #[error("{name:?} is a {kind} server, not a {wanted} server")]
    WrongKind {
        name: String,
        kind: ServerKind,
        wanted: ServerKind,
    },
    #[error("{value:?} cannot name a server: {reason}")]
    BadUrl { value: String, reason: String },
    #[error("{url} is not a registered {kind} server and is not under an --allow-url prefix of the operator")]
    NotAllowed { url: String, kind: ServerKind },
    #[error("{host} is {reason}; the operator connects there only if it is registered or given with --allow-url")]
    Refused { host: String, reason: String },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Where a policy's reference leads: the URL, and the credentials when it is a registered server.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub url: url::Url,
    pub auth: Option<Auth>,
    /// The registered server's name; `None` for an allowed raw URL.
    pub server: Option<String>,
}

/// The operator's outbound rule: the registry, the allow-list and the hosts they name.
#[derive(Clone, Debug, Default)]
pub struct Outbound {
    registry: Registry,
    allow: AllowList,
    trusted: TrustedHosts,
}

impl Outbound {
    pub fn new(registry: Registry, allow: AllowList) -> Self {
        let trusted = TrustedHosts::new(
            registry
                .iter()
                .filter_map(|server| server.url.host_str().map(str::to_owned))
                .chain(allow.hosts()),
        );
        Outbound {
            registry,
            allow,
            trusted,
        }
    }

    /// This rule with `url` registered as `name`, unless a server of that name is registered
    /// already (the servers file wins over a flag). `--prometheus-url` joins as `default`.
    pub fn with_server(
        self,
        name: &str,
        kind: ServerKind,
        url: &str,
        auth: Option<Auth>,
    ) -> Result<Self, ServersError> {
        if self.registry.iter().any(|server| server.name == name) {
            return Ok(self);
        }
        let invalid = |message: String| ServersError::Invalid {
            field: format!("the {kind} server {url:?}"),
            message,
        };
        let parsed = url::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
        registry::check_server_url(&parsed, kind).map_err(invalid)?;
        let mut registry = self.registry;
        registry.add(Server {
            name: name.to_owned(),
            kind,
            url: parsed,
            auth,
        })?;
        Ok(Outbound::new(registry, self.allow))
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn trusted(&self) -> &TrustedHosts {
        &self.trusted
    }

    /// Where a policy's `reference` to a server of `kind` leads: a registered name, a URL that is
    /// a registered server's (with its credentials), or a URL under the allow-list (without).
    pub fn resolve(&self, kind: ServerKind, reference: &str) -> Result<Target, ServersError> {
        if crate::policy::is_server_name(reference) {
            let server = self.registry.get(reference, kind)?;
            return Ok(registered(server));
        }
        let url = url::Url::parse(reference).map_err(|error| ServersError::BadUrl {
            value: reference.to_owned(),
            reason: error.to_string(),
        })?;
        if let Some(server) = self.registry.by_url(&url, kind) {
            return Ok(registered(server));
        }
        registry::check_server_url(&url, kind).map_err(|reason| ServersError::BadUrl {
            value: reference.to_owned(),
            reason,
        })?;
        if !self.allow.allows(&url) {
            return Err(ServersError::NotAllowed {
                url: url.to_string(),
                kind,
            });
        }
        self.trusted.check_url(&url)?;
        Ok(Target {
            url,
            auth: None,
            server: None,
        })
    }

    /// An HTTP client for the targets this rule resolves to (see [`guard::client`]).
    pub fn client(&self, connect_timeout: Duration) -> Result<reqwest::Client, ServersError> {
        client(&self.trusted, connect_timeout)
    }
}

/// An HTTP client that follows no redirect and refuses link-local and metadata addresses of
/// hosts not in `trusted`.
pub fn client(
    trusted: &TrustedHosts,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ServersError> {
    guard::client(trusted, connect_timeout).map_err(|error| ServersError::Invalid {
        field: "HTTP client".into(),
        message: error.to_string(),
    })
}

fn registered(server: &Server) -> Target {
    Target {
        url: server.url.clone(),
        auth: server.auth.clone(),
        server: Some(server.name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound() -> Outbound {
        let registry = Registry::parse(
            "servers: [{name: metrics, kind: prometheus, url: 'http://prometheus:9090', auth: {bearerTokenFile: /t}}, {name: pager, kind: webhook, url: 'http://pager/hook'}]",
        )
        .unwrap();
        Outbound::new(
            registry,
            AllowList::parse(["http://hooks.internal/swarmpilot/"]).unwrap(),
        )
    }

    #[test]
    fn names_resolve_to_registered_servers_with_their_credentials() {
        let outbound = outbound();
        let target = outbound.resolve(ServerKind::Prometheus, "metrics").unwrap();
        assert_eq!(target.url.as_str(), "http://prometheus:9090/");
        assert!(target.auth.is_some());
        // The registered server's own URL is the same server, credentials included.
        let target = outbound
            .resolve(ServerKind::Prometheus, "http://prometheus:9090/")
            .unwrap();
        assert_eq!(target.server.as_deref(), Some("metrics"));
        let error = outbound
            .resolve(ServerKind::Prometheus, "pager")
            .unwrap_err();
        assert!(error.to_string().contains("webhook server"), "{error}");
    }

    #[test]
    fn raw_urls_pass_only_under_the_allow_list() {
        let outbound = outbound();
        let target = outbound
            .resolve(ServerKind::Webhook, "http://hooks.internal/swarmpilot/web")
            .unwrap();
        assert_eq!(target.auth, None);
        for refused in [
            "http://hooks.internal/other",
            "http://hooks.internal.evil.example/swarmpilot/",
            "https://hooks.internal/swarmpilot/",
            "http://hooks.internal:8080/swarmpilot/",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            let error = outbound.resolve(ServerKind::Webhook, refused).unwrap_err();
            assert!(
                error.to_string().contains("--allow-url"),
                "{refused}: {error}"
            );
        }
        let error = outbound
            .resolve(
                ServerKind::Prometheus,
                "http://hooks.internal/swarmpilot/x#",
            )
            .unwrap_err();
        assert!(error.to_string().contains("fragment"), "{error}");
    }

    #[test]
    fn a_broad_allow_list_still_refuses_metadata_addresses() {
        let outbound = Outbound::new(
            Registry::default(),
            AllowList::parse(["http://169.254.169.254/"]).unwrap(),
        );
        // Named explicitly: allowed.
        assert!(outbound
            .resolve(ServerKind::Webhook, "http://169.254.169.254/latest")
            .is_ok());
        let any = Outbound::new(Registry::default(), AllowList::parse(["http://*"]).unwrap());
        let error = any
            .resolve(ServerKind::Webhook, "http://169.254.169.254/latest")
            .unwrap_err();
        assert!(error.to_string().contains("metadata"), "{error}");
        assert!(any
            .resolve(ServerKind::Webhook, "http://[fe80::1]/")
            .is_err());
        assert!(any.resolve(ServerKind::Webhook, "http://10.0.0.1/").is_ok());
    }
}
