//! The servers file: the outbound servers the operator's administrator registers, by name, with
//! credentials in secret files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ServersError;
use crate::policy::is_server_name;

/// The largest servers file read (it is the administrator's, but a wrong path must not make the
/// operator read a disk image).
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The largest secret file read.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// What a registered server is, which decides who may use it and how it is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// A Prometheus HTTP API, named by `prometheus.server`.
    Prometheus,
    /// A receiver of traffic-state changes, named by `anomaly.notify[].receiver`.
    Webhook,
    /// A Redis server (`redis://`), named by a `redis` metric source.
    Redis,
    /// A RabbitMQ management HTTP API, named by a `rabbitmq` metric source.
    Rabbitmq,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Prometheus => "prometheus",
            ServerKind::Webhook => "webhook",
            ServerKind::Redis => "redis",
            ServerKind::Rabbitmq => "rabbitmq",
        }
    }

    /// The URL schemes a server of this kind is reached with.
    fn schemes(self) -> &'static [&'static str] {
        match self {
            // `rediss://` is refused with its own reason (see `check_server_url`).
            ServerKind::Redis => &["redis"],
            _ => &["http", "https"],
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Credentials, kept as the files that hold them (Docker secrets live in `/run/secrets`). Each
/// file is read when the registry is loaded, so a missing one stops the start with its name, and
/// again on every use, so a rotated secret takes effect without a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    Bearer {
        token_file: PathBuf,
    },
    Basic {
        username: String,
        password_file: PathBuf,
    },
}

impl Auth {
    /// Reads every file the credentials name; the error names the file.
    pub fn check(&self) -> Result<(), ServersError> {
        self.secret().map(drop)
    }

    /// The secret (token or password), read now.
    pub fn secret(&self) -> Result<String, ServersError> {
        match self {
            Auth::Bearer { token_file } => read_secret(token_file),
            Auth::Basic { password_file, .. } => read_secret(password_file),
        }
    }

    /// Adds the credentials to an HTTP request.
    pub fn apply(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ServersError> {
        let secret = self.secret()?;
        Ok(match self {
            Auth::Bearer { .. } => request.bearer_auth(secret),
            Auth::Basic { username, .. } => request.basic_auth(username, Some(secret)),
        })
    }
}

/// Reads a secret file, without its trailing newline.
pub fn read_secret(path: &Path) -> Result<String, ServersError> {
    let unreadable = |reason: String| ServersError::Secret {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|error| unreadable(error.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_SECRET_BYTES {
        return Err(unreadable(format!(
            "{} bytes, more than the {MAX_SECRET_BYTES}-byte limit of a secret",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|error| unreadable(error.to_string()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(unreadable("the file is empty".into()));
    }
    Ok(secret.to_owned())
}

/// One registered server.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub name: String,
    pub kind: ServerKind,
    pub url: url::Url,
    pub auth: Option<Auth>,
}

/// The registered servers, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    servers: BTreeMap<String, Server>,
}

impl Registry {
    /// Reads, validates and checks the secrets of a servers file.
    pub fn load(path: &Path) -> Result<Self, ServersError> {
        let unreadable = |reason: String| ServersError::File {
            path: path.to_owned(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|error| unreadable(error.to_string()))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(unreadable(format!(
                "{} bytes, more than the {MAX_FILE_BYTES}-byte limit",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|error| unreadable(error.to_string()))?;
        let registry = Self::parse(&text).map_err(|error| match error {
            ServersError::Invalid { field, message } => ServersError::Invalid {
                field: format!("{}: {field}", path.display()),
                message,
            },
            other => other,
        })?;
        registry.check_secrets()?;
        Ok(registry)
    }

    /// Parses and validates the text of a servers file (secrets are not read).
    pub fn parse(text: &str) -> Result<Self, ServersError> {
        let file: File = serde_yaml::from_str(text).map_err(|error| ServersError::Invalid {
            field: "servers".into(),
            message: error.to_string(),
        })?;
        let mut registry = Registry::default();
        for (i, entry) in file.servers.into_iter().enumerate() {
            registry.add(entry.into_server(&format!("servers[{i}]"))?)?;
        }
        Ok(registry)
    }

    /// Registers `server`; a name may be registered once.
    pub fn add(&mut self, server: Server) -> Result<(), ServersError> {
        if self.servers.contains_key(&server.name) {
            return Err(ServersError::Invalid {
                field: "name".into(),
                message: format!("{:?} is registered twice", server.name),
            });
        }
        self.servers.insert(server.name.clone(), server);
        Ok(())
    }

    /// Reads every secret file, so a missing one is found at start-up, by name.
    pub fn check_secrets(&self) -> Result<(), ServersError> {
        self.servers
            .values()
            .filter_map(|server| server.auth.as_ref())
            .try_for_each(Auth::check)
    }

    /// The server called `name`, if it is of `kind`.
    pub fn get(&self, name: &str, kind: ServerKind) -> Result<&Server, ServersError> {
        match self.servers.get(name) {
            Some(server) if server.kind == kind => Ok(server),
            Some(server) => Err(ServersError::WrongKind {
                name: name.to_owned(),
                kind: server.kind,
                wanted: kind,
            }),
            None => Err(ServersError::Unknown {
                name: name.to_owned(),
                kind,
                known: self.names(kind),
            }),
        }
    }

    /// The registered server of `kind` whose URL is `url`, if any.
    pub fn by_url(&self, url: &url::Url, kind: ServerKind) -> Option<&Server> {
        self.servers
            .values()
            .find(|server| server.kind == kind && same_base(&server.url, url))
    }

    /// Every registered server.
    pub fn iter(&self) -> impl Iterator<Item = &Server> {
        self.servers.values()
    }

    fn names(&self, kind: ServerKind) -> Vec<String> {
        self.servers
            .values()
            .filter(|server| server.kind == kind)
            .map(|server| server.name.clone())
            .collect()
    }
}

/// Two base URLs are the same server when they differ at most by a trailing slash.
fn same_base(a: &url::Url, b: &url::Url) -> bool {
    a.as_str().trim_end_matches('/') == b.as_str().trim_end_matches('/')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    servers: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    kind: ServerKind,
    url: String,
    #[serde(default)]
    auth: Option<AuthEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AuthEntry {
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    basic: Option<BasicEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BasicEntry {
    username: String,
    password_file: PathBuf,
}

impl Entry {
    fn into_server(self, at: &str) -> Result<Server, ServersError> {
        let invalid = |field: &str, message: String| ServersError::Invalid {
            field: format!("{at}.{field}"),
            message,
        };
        if !is_server_name(&self.name) {
            return Err(invalid(
                "name",
                format!(
                    "{:?} is not a server name (lowercase letters, digits and '-', starting with a letter, at most 63)",
                    self.name
                ),
            ));
        }
        let url = url::Url::parse(&self.url)
            .map_err(|error| invalid("url", format!("{:?} is not a URL ({error})", self.url)))?;
        check_server_url(&url, self.kind).map_err(|message| invalid("url", message))?;
        let auth = match self.auth {
            None => None,
            Some(AuthEntry {
                bearer_token_file: Some(token_file),
                basic: None,
            }) => Some(Auth::Bearer { token_file }),
            Some(AuthEntry {
                bearer_token_file: None,
                basic:
                    Some(BasicEntry {
                        username,
                        password_file,
                    }),
            }) => Some(Auth::Basic {
                username,
                password_file,
            }),
            Some(_) => {
                return Err(invalid(
                    "auth",
                    "must set exactly one of bearerTokenFile and basic".into(),
                ))
            }
        };
        Ok(Server {
            name: self.name,
            kind: self.kind,
            url,
            auth,
        })
    }
}

/// A server URL: the kind's scheme, a host, no credentials (they come from secret files), no
/// query or fragment (a base URL has none; a `#` would make the rest of a path arbitrary).
pub(super) fn check_server_url(url: &url::Url, kind: ServerKind) -> Result<(), String> {
    let schemes = kind.schemes();
    if kind == ServerKind::Redis && url.scheme() == "rediss" {
        // The Redis client is built without TLS: refused here, when the servers file is
        // loaded, rather than failing every read.
        return Err(format!(
            "{}: TLS to Redis (rediss://) is not supported; reach Redis with redis:// over a \
             network only the operator and Redis share (an encrypted overlay: docker network \
             create --opt encrypted)",
            url.host_str().unwrap_or_default()
        ));
    }
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "{url} has scheme {:?}; a {kind} server is reached with {}",
            url.scheme(),
            schemes.join(" or ")
        ));
    }
    if url.host().is_none() {
        return Err(format!("{url} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{} holds credentials; put them in a secret file named by auth",
            url.host_str().unwrap_or_default()
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{url} has a query or fragment; give a base URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_file_parses() {
        let registry = Registry::parse(
            r#"
servers:
  - name: metrics
    kind: prometheus
    url: http://prometheus:9090
    auth: {bearerTokenFile: /run/secrets/prom_token}
  - name: jobs
    kind: redis
    url: redis://redis:6379/0
    auth: {basic: {username: default, passwordFile: /run/secrets/redis}}
"#,
        )
        .unwrap();
        let metrics = registry.get("metrics", ServerKind::Prometheus).unwrap();
        assert_eq!(metrics.url.as_str(), "http://prometheus:9090/");
        assert_eq!(
            metrics.auth,
            Some(Auth::Bearer {
                token_file: "/run/secrets/prom_token".into()
            })
        );
        let error = registry.get("jobs", ServerKind::Prometheus).unwrap_err();
        assert!(error.to_string().contains("is a redis server"), "{error}");
        let error = registry.get("nope", ServerKind::Redis).unwrap_err();
        assert!(error.to_string().contains("jobs"), "{error}");
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let cases = [
            (
                "servers: [{name: Metrics, kind: prometheus, url: 'http://p'}]",
                "servers[0].name",
            ),
            (
                "servers: [{name: m, kind: prometheus, url: 'redis://p'}]",
                "servers[0].url",
            ),
            (
                "servers: [{name: m, kind: prometheus, url: 'http://u:pw@p'}]",
                "credentials",
            ),
            (
                "servers: [{name: m, kind: webhook, url: 'http://p/x#'}]",
                "fragment",
            ),
            (
                "servers: [{name: m, kind: webhook, url: 'http://p', auth: {}}]",
                "servers[0].auth",
            ),
            ("servers: [{name: m, kind: ftp, url: 'http://p'}]", "ftp"),
            (
                "servers: [{name: m, kind: redis, url: 'rediss://r:6380'}]",
                "TLS to Redis (rediss://) is not supported",
            ),
            (
                "servers: [{name: m, kind: webhook, url: 'http://a'}, {name: m, kind: webhook, url: 'http://b'}]",
                "registered twice",
            ),
        ];
        for (text, expected) in cases {
            let error = Registry::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_missing_secret_file_is_named() {
        let registry = Registry::parse(
            "servers: [{name: m, kind: prometheus, url: 'http://p', auth: {bearerTokenFile: /nonexistent/prom_token}}]",
        )
        .unwrap();
        let error = registry.check_secrets().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/prom_token"), "{error}");
    }
}
