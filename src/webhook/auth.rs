//! Who may call the API: bearer tokens read from files (Docker secrets), each with a scope,
//! compared in constant time, and an optional HMAC-SHA256 signature over write request bodies.
//!
//! Nothing is open by default. With no write token configured every write endpoint answers 403
//! and says how to configure one. Reads (the status API) need a read or write token unless the
//! operator was started with `--insecure-read`.

use std::path::{Path, PathBuf};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// Shorter secrets are refused when loaded: a token is only as strong as its length.
pub const MIN_SECRET_LEN: usize = 16;
/// The header carrying `sha256=<hex>` of HMAC-SHA256(secret, raw body).
pub const SIGNATURE_HEADER: &str = "x-swarmpilot-signature";

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The status API and the dashboard's data.
    Read,
    /// Overrides and alerts; implies read.
    Write,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
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
    signing_key: Option<Vec<u8>>,
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
            .field("signing", &self.signing_key.is_some())
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
        self.signing_key = Some(key.to_vec());
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
        read_tokens: &[PathBuf],
        write_tokens: &[PathBuf],
        signing_secret: Option<&Path>,
        open_reads: bool,
    ) -> Result<Self, AuthError> {
        let mut config = AuthConfig::default().with_open_reads(open_reads);
        for (paths, scope) in [(read_tokens, Scope::Read), (write_tokens, Scope::Write)] {
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

    fn has_write_token(&self) -> bool {
        self.tokens.iter().any(|t| t.scope == Scope::Write)
    }

    /// The caller of a request that needs `needed`, or the error to answer with.
    pub fn authorize(&self, headers: &HeaderMap, needed: Scope) -> Result<Caller, ApiError> {
        if needed == Scope::Write && !self.has_write_token() {
            return Err(ApiError::forbidden(
                "writes are disabled: no write token is configured. Put a secret of at least 16 \
                 bytes in a file (a Docker secret) and start the operator with \
                 --write-token-file /run/secrets/<name>",
            ));
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
        if token.scope < needed {
            return Err(ApiError::forbidden(format!(
                "token {} has {} scope; this endpoint needs {} (--write-token-file)",
                token.name,
                token.scope.as_str(),
                needed.as_str()
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

    /// Checks the body's signature when a signing key is configured.
    pub fn verify_signature(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        let Some(key) = &self.signing_key else {
            return Ok(());
        };
        let header = headers
            .get(SIGNATURE_HEADER)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing X-Swarmpilot-Signature: this server requires sha256=<hex HMAC-SHA256 of the body>",
                )
                .at("X-Swarmpilot-Signature")
            })?
            .to_str()
            .unwrap_or_default();
        let signature = header
            .strip_prefix("sha256=")
            .and_then(decode_hex)
            .ok_or_else(|| {
                ApiError::unauthorized("X-Swarmpilot-Signature must be sha256=<64 hex digits>")
                    .at("X-Swarmpilot-Signature")
            })?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| ApiError::unavailable("the signing key cannot be used"))?;
        mac.update(body);
        mac.verify_slice(&signature).map_err(|_| {
            ApiError::unauthorized("X-Swarmpilot-Signature does not match the body")
                .at("X-Swarmpilot-Signature")
        })
    }
}

/// The `sha256=<hex>` header value for `body`, as a client computes it.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
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

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
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
    fn signatures() {
        let auth = AuthConfig::default().with_signing_key(b"signing-key");
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sign(b"signing-key", b"{}")).unwrap(),
        );
        assert!(auth.verify_signature(&headers, b"{}").is_ok());
        assert!(auth.verify_signature(&headers, b"{ }").is_err());
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_static("sha256=zz"));
        assert!(auth.verify_signature(&headers, b"{}").is_err());
        assert!(auth.verify_signature(&HeaderMap::new(), b"{}").is_err());
        assert!(AuthConfig::default()
            .verify_signature(&HeaderMap::new(), b"{}")
            .is_ok());
    }

    #[test]
    fn token_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ops_write");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let auth = AuthConfig::from_files(&[], std::slice::from_ref(&good), None, false).unwrap();
        let caller = auth
            .authorize(&headers("0123456789abcdef0123"), Scope::Write)
            .unwrap();
        assert_eq!(caller.name, "ops_write");
        assert!(matches!(
            AuthConfig::from_files(&[short], &[], None, false),
            Err(AuthError::TooShort { len: 3, .. })
        ));
        assert!(matches!(
            AuthConfig::from_files(&[dir.path().join("missing")], &[], None, false),
            Err(AuthError::Read { .. })
        ));
    }
}
