//! Who may call the API: bearer tokens read from files (Docker secrets), each with a scope,
//! compared in constant time, and an optional HMAC-SHA256 signature over write requests
//! ([`super::signature`]).
//!
//! Nothing is open by default. With no write token configured every write endpoint answers 403
//! and says how to configure one. Reads (the status API) need a read or write token unless the
//! operator was started with `--insecure-read`. The Alertmanager receiver takes only an
//! `alerts` token, which can do nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::signature::Verifier;
pub use super::signature::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Shorter secrets are refused when loaded: a token is only as strong as its length.
pub const MIN_SECRET_LEN: usize = 16;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The status API and the dashboard's data.
    Read,
    /// Overrides; implies read.
    Write,
    /// The Alertmanager receiver, and nothing else: whoever can write an alert rule gets only
    /// what the policies opt into (see [`super::alertmanager`]).
    Alerts,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Alerts => "alerts",
        }
    }

    /// Whether a token of this scope may call an endpoint that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        match needed {
            Scope::Read => matches!(self, Scope::Read | Scope::Write),
            Scope::Write => self == Scope::Write,
            Scope::Alerts => self == Scope::Alerts,
        }
    }

    /// The flag that configures tokens of this scope.
    fn flag(self) -> &'static str {
        match self {
            Scope::Read => "--read-token-file",
            Scope::Write => "--write-token-file",
            Scope::Alerts => "--alerts-token-file",
        }
    }
}

/// One accepted token. Only its SHA-256 digest is kept, so comparisons take the same time
/// whatever the length of the presented token.
#[derive(Clone)]
struct Token {
    name: String,
    digest: [u8; 32],
    scope: Scope,
}

/// The identity a request was authorized as; `by` of the overrides it writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub scope: Scope,
}

/// Why the auth configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the secret is {len} bytes long; use at least {MIN_SECRET_LEN} (e.g. `openssl rand -hex 32`)")]
    TooShort { path: PathBuf, len: usize },
}

/// The tokens and signing key the server accepts.
#[derive(Clone, Default)]
pub struct AuthConfig {
    tokens: Vec<Token>,
    signing: Option<Arc<Verifier>>,
    open_reads: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "tokens",
                &self
                    .tokens
                    .iter()
                    .map(|t| (&t.name, t.scope))
                    .collect::<Vec<_>>(),
            )
            .field("signing", &self.signing.is_some())
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl AuthConfig {
    /// Accepts `secret` as a token named `name` with `scope`.
    pub fn with_token(mut self, name: &str, secret: &str, scope: Scope) -> Self {
        self.tokens.push(Token {
            name: name.to_owned(),
            digest: Sha256::digest(secret.as_bytes()).into(),
            scope,
        });
        self
    }

    /// Requires `X-Swarmpilot-Signature` on every write request.
    pub fn with_signing_key(mut self, key: &[u8]) -> Self {
        self.signing = Some(Arc::new(Verifier::new(key)));
        self
    }

    /// Lets requests without a token read the status API.
    pub fn with_open_reads(mut self, open: bool) -> Self {
        self.open_reads = open;
        self
    }

    /// Reads each token file (named after the file, e.g. `ops_write` for
    /// `/run/secrets/ops_write`) and the signing secret file.
    pub fn from_files(
        tokens: &TokenFiles,
        signing_secret: Option<&Path>,
        open_reads: bool,
    ) -> Result<Self, AuthError> {
        let mut config = AuthConfig::default().with_open_reads(open_reads);
        for (paths, scope) in [
            (&tokens.read, Scope::Read),
            (&tokens.write, Scope::Write),
            (&tokens.alerts, Scope::Alerts),
        ] {
            for path in paths {
                let secret = read_secret(path)?;
                let name = path
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_else(|| scope.as_str().to_owned());
                config = config.with_token(&name, &secret, scope);
            }
        }
        if let Some(path) = signing_secret {
            let secret = read_secret(path)?;
            config = config.with_signing_key(secret.as_bytes());
        }
        Ok(config)
    }

    /// The caller of a request that needs `needed`, or the error to answer with.
    pub fn authorize(&self, headers: &HeaderMap, needed: Scope) -> Result<Caller, ApiError> {
        if needed != Scope::Read && !self.tokens.iter().any(|t| t.scope == needed) {
            return Err(ApiError::forbidden(format!(
                "{} are disabled: no {} token is configured. Put a secret of at least 16 \
                 bytes in a file (a Docker secret) and start the operator with \
                 {} /run/secrets/<name>",
                if needed == Scope::Write {
                    "writes"
                } else {
                    "alerts"
                },
                needed.as_str(),
                needed.flag()
            )));
        }
        let Some(presented) = bearer(headers)? else {
            if needed == Scope::Read && self.open_reads {
                return Ok(Caller {
                    name: "anonymous".into(),
                    scope: Scope::Read,
                });
            }
            if needed == Scope::Read && self.tokens.is_empty() {
                return Err(ApiError::forbidden(
                    "reads are disabled: no token is configured. Start the operator with \
                     --read-token-file /run/secrets/<name>, or --insecure-read to let anyone \
                     who reaches the port read the status",
                ));
            }
            return Err(ApiError::unauthorized(
                "missing bearer token: send Authorization: Bearer <token>",
            ));
        };
        let token = self.identify(presented.as_bytes()).ok_or_else(|| {
            ApiError::unauthorized("the bearer token is not one this server accepts")
        })?;
        if !token.scope.allows(needed) {
            return Err(ApiError::forbidden(format!(
                "token {} has {} scope; this endpoint needs {} ({})",
                token.name,
                token.scope.as_str(),
                needed.as_str(),
                needed.flag()
            )));
        }
        Ok(Caller {
            name: token.name.clone(),
            scope: token.scope,
        })
    }

    /// The token whose secret is `presented`. Every configured token is compared, and each
    /// comparison is over fixed-length digests in constant time, so the timing says nothing
    /// about which token (or how much of one) matched.
    fn identify(&self, presented: &[u8]) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token);
            }
        }
        found
    }

    /// Checks the request's signature when a signing key is configured.
    pub fn verify_signature(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ApiError> {
        match &self.signing {
            Some(verifier) => {
                verifier.verify(method, uri, headers, body, chrono::Utc::now().timestamp())
            }
            None => Ok(()),
        }
    }
}

/// The token files of each scope, as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct TokenFiles {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub alerts: Vec<PathBuf>,
}

fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
                .at("Authorization"),
        );
    }
    Ok(Some(token.trim().to_owned()))
}

/// A secret from a file, trimmed, refused when shorter than [`MIN_SECRET_LEN`].
pub fn read_secret(path: &Path) -> Result<String, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.to_owned(),
        source,
    })?;
    // Secret files usually end with a newline that is not part of the secret.
    let secret = text.trim().to_owned();
    if secret.len() < MIN_SECRET_LEN {
        return Err(AuthError::TooShort {
            path: path.to_owned(),
            len: secret.len(),
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    #[test]
    fn scopes_and_identities() {
        let auth = AuthConfig::default()
            .with_token("reader", "read-secret-0123456789", Scope::Read)
            .with_token("writer", "write-secret-0123456789", Scope::Write);
        let caller = auth
            .authorize(&headers("write-secret-0123456789"), Scope::Read)
            .unwrap();
        assert_eq!(caller.name, "writer");
        let error = auth
            .authorize(&headers("read-secret-0123456789"), Scope::Write)
            .unwrap_err();
        assert_eq!(error.status, 403);
        assert_eq!(
            auth.authorize(&headers("nope"), Scope::Read)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            auth.authorize(&HeaderMap::new(), Scope::Read)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn closed_by_default() {
        let auth = AuthConfig::default();
        let error = auth.authorize(&HeaderMap::new(), Scope::Write).unwrap_err();
        assert_eq!(error.status, 403);
        assert!(error.body.detail.contains("--write-token-file"));
        let error = auth.authorize(&HeaderMap::new(), Scope::Read).unwrap_err();
        assert!(error.body.detail.contains("--insecure-read"));
        let open = AuthConfig::default().with_open_reads(true);
        assert_eq!(
            open.authorize(&HeaderMap::new(), Scope::Read).unwrap().name,
            "anonymous"
        );
    }

    #[test]
    fn the_alerts_scope_can_do_nothing_else() {
        let auth = AuthConfig::default()
            .with_token("writer", "write-secret-0123456789", Scope::Write)
            .with_token("am", "alerts-secret-0123456789", Scope::Alerts);
        let alerts = headers("alerts-secret-0123456789");
        assert_eq!(auth.authorize(&alerts, Scope::Alerts).unwrap().name, "am");
        for needed in [Scope::Read, Scope::Write] {
            let error = auth.authorize(&alerts, needed).unwrap_err();
            assert_eq!(error.status, 403, "{needed:?}");
        }
        let error = auth
            .authorize(&headers("write-secret-0123456789"), Scope::Alerts)
            .unwrap_err();
        assert!(
            error.body.detail.contains("--alerts-token-file"),
            "{error:?}"
        );
        let none = AuthConfig::default().with_token("w", "write-secret-0123456789", Scope::Write);
        let error = none
            .authorize(&HeaderMap::new(), Scope::Alerts)
            .unwrap_err();
        assert!(
            error.body.detail.contains("alerts are disabled"),
            "{error:?}"
        );
    }

    #[test]
    fn token_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ops_write");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let files = |read: &[PathBuf], write: &[PathBuf]| TokenFiles {
            read: read.to_vec(),
            write: write.to_vec(),
            alerts: Vec::new(),
        };
        let auth = AuthConfig::from_files(&files(&[], &[good]), None, false).unwrap();
        let caller = auth
            .authorize(&headers("0123456789abcdef0123"), Scope::Write)
            .unwrap();
        assert_eq!(caller.name, "ops_write");
        assert!(matches!(
            AuthConfig::from_files(&files(&[short], &[]), None, false),
            Err(AuthError::TooShort { len: 3, .. })
        ));
        assert!(matches!(
            AuthConfig::from_files(&files(&[dir.path().join("missing")], &[]), None, false),
            Err(AuthError::Read { .. })
        ));
    }
}
