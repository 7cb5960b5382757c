//! The operator's allow-list of raw URLs (`--allow-url PREFIX`): the only way a policy may name
//! an address that is not a registered server.

use super::ServersError;

/// URL prefixes a policy may use as-is. A prefix is compared as a URL, not as text: scheme, host
/// and port must be equal and the path must lie under the prefix's path at a `/`, so
/// `http://hooks.internal/swarmpilot` allows neither `http://hooks.internal.evil.example/` nor
/// `http://hooks.internal/swarmpilotx`. `http://*` allows every host of that scheme; metadata and
/// link-local addresses are still refused for hosts the list does not name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllowList(Vec<Prefix>);

#[derive(Clone, Debug, PartialEq)]
struct Prefix {
    scheme: String,
    /// `None`: every host (`scheme://*`).
    host: Option<(String, Option<u16>)>,
    path: String,
}

impl AllowList {
    /// Parses `--allow-url` values; the error names the value.
    pub fn parse<'a>(prefixes: impl IntoIterator<Item = &'a str>) -> Result<Self, ServersError> {
        prefixes
            .into_iter()
            .map(parse_prefix)
            .collect::<Result<_, _>>()
            .map(AllowList)
    }

    /// Whether `url` lies under one of the prefixes.
    pub fn allows(&self, url: &url::Url) -> bool {
        self.0.iter().any(|prefix| prefix.allows(url))
    }

    /// The hosts the list names (not those of `scheme://*`).
    pub fn hosts(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .iter()
            .filter_map(|prefix| prefix.host.as_ref().map(|(host, _)| host.clone()))
    }
}

fn parse_prefix(text: &str) -> Result<Prefix, ServersError> {
    let invalid = |message: String| ServersError::Invalid {
        field: format!("--allow-url {text}"),
        message,
    };
    if let Some(scheme) = text
        .strip_suffix("://*")
        .or_else(|| text.strip_suffix("://*/"))
    {
        if !matches!(scheme, "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        return Ok(Prefix {
            scheme: scheme.to_owned(),
            host: None,
            path: "/".into(),
        });
    }
    let url = url::Url::parse(text).map_err(|error| {
        invalid(format!(
            "not a URL ({error}); write a prefix such as http://hooks.internal/ or http://* for every host"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https" | "redis" | "rediss") {
        return Err(invalid(format!("unsupported scheme {:?}", url.scheme())));
    }
    let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
        return Err(invalid(
            "has no host; write scheme://* to allow every host".into(),
        ));
    };
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid(
            "must not hold credentials, a query or a fragment".into(),
        ));
    }
    Ok(Prefix {
        scheme: url.scheme().to_owned(),
        host: Some((host.to_ascii_lowercase(), url.port_or_known_default())),
        path: url.path().to_owned(),
    })
}

impl Prefix {
    fn allows(&self, url: &url::Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        if let Some((host, port)) = &self.host {
            let same_host = url
                .host_str()
                .is_some_and(|other| other.eq_ignore_ascii_case(host));
            if !same_host || url.port_or_known_default() != *port {
                return false;
            }
        }
        under(url.path(), &self.path)
    }
}

/// Whether `path` is `prefix` or lies below it at a `/`.
fn under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(prefix: &str, url: &str) -> bool {
        AllowList::parse([prefix])
            .unwrap()
            .allows(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn prefixes_compare_as_urls() {
        assert!(allows("http://hooks.internal/a", "http://hooks.internal/a"));
        assert!(allows(
            "http://hooks.internal/a",
            "http://HOOKS.internal:80/a/b"
        ));
        assert!(!allows(
            "http://hooks.internal/a",
            "http://hooks.internal/ab"
        ));
        assert!(!allows(
            "http://hooks.internal/a/",
            "http://hooks.internal/a"
        ));
        assert!(!allows(
            "http://hooks.internal",
            "http://hooks.internal.evil/"
        ));
        assert!(!allows(
            "http://hooks.internal",
            "http://hooks.internal:81/"
        ));
        assert!(!allows("http://hooks.internal", "https://hooks.internal/"));
        assert!(allows("http://*", "http://anything:1234/x"));
        assert!(!allows("http://*", "https://anything/"));
    }

    #[test]
    fn bad_prefixes_are_named() {
        for bad in ["http://", "ftp://x/", "http://u:p@x/", "x", "http://x/#"] {
            let error = AllowList::parse([bad]).unwrap_err().to_string();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}
