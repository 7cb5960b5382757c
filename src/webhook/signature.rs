//! Signed write requests: an HMAC-SHA256 over the method, the path, a timestamp and the body,
//! accepted only within a replay window and only once.
//!
//! A client sends two headers:
//!
//! ```text
//! X-Swarmpilot-Timestamp: <unix seconds>
//! X-Swarmpilot-Signature: sha256=<hex HMAC-SHA256(key, METHOD "\n" PATH "\n" TIMESTAMP "\n" BODY)>
//! ```
//!
//! `PATH` is the request target as sent (path and query, e.g. `/v1/services/web/override`).
//! Signing the method and path stops a signed request being replayed against another service or
//! endpoint; the timestamp bounds when it may be presented ([`REPLAY_WINDOW`] either side of the
//! server's clock); and a signature already accepted within the window is refused, so a captured
//! request cannot be sent again.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ApiError;

/// The header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-swarmpilot-signature";
/// The header carrying the signing time in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-swarmpilot-timestamp";
/// How far a request's timestamp may be from the server's clock, in seconds.
pub const REPLAY_WINDOW: i64 = 300;
/// Signatures remembered at most; writes are rate-limited per token, so this is never reached
/// by honest clients.
const MAX_REMEMBERED: usize = 100_000;

/// The `sha256=<hex>` signature of a request, as a client computes it.
pub fn sign(key: &[u8], method: &Method, path: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(key, method, path, timestamp, body)
        .finalize()
        .into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

fn mac(key: &[u8], method: &Method, path: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` never fails for it.
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(method.as_str().as_bytes());
    mac.update(b"\n");
    mac.update(path.as_bytes());
    mac.update(b"\n");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// Checks signatures with one key and remembers those accepted within the window.
pub struct Verifier {
    key: Vec<u8>,
    /// Accepted signatures and the Unix second after which they may be forgotten.
    seen: Mutex<HashMap<[u8; 32], i64>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: key.to_vec(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts a request signed with this key at a time within the window of `now` (Unix
    /// seconds), once.
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<(), ApiError> {
        let timestamp = header(headers, TIMESTAMP_HEADER)?
            .trim()
            .parse::<i64>()
            .map_err(|_| {
                ApiError::unauthorized(
                    "X-Swarmpilot-Timestamp must be the signing time in Unix seconds",
                )
                .at("X-Swarmpilot-Timestamp")
            })?;
        if (now - timestamp).abs() > REPLAY_WINDOW {
            return Err(ApiError::unauthorized(format!(
                "X-Swarmpilot-Timestamp {timestamp} is more than {REPLAY_WINDOW}s from the server's time {now}; sign the request when sending it"
            ))
            .at("X-Swarmpilot-Timestamp"));
        }
        let signature = header(headers, SIGNATURE_HEADER)?
            .strip_prefix("sha256=")
            .and_then(decode_hex)
            .ok_or_else(|| {
                ApiError::unauthorized("X-Swarmpilot-Signature must be sha256=<64 hex digits>")
                    .at("X-Swarmpilot-Signature")
            })?;
        let path = uri
            .path_and_query()
            .map(|target| target.as_str())
            .unwrap_or("/");
        mac(&self.key, method, path, timestamp, body)
            .verify_slice(&signature)
            .map_err(|_| {
                ApiError::unauthorized(
                    "X-Swarmpilot-Signature does not match the method, path, timestamp and body",
                )
                .at("X-Swarmpilot-Signature")
            })?;
        self.remember(signature, timestamp, now)
    }

    fn remember(&self, signature: [u8; 32], timestamp: i64, now: i64) -> Result<(), ApiError> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, forget_after| *forget_after >= now);
        }
        if seen.len() >= MAX_REMEMBERED {
            return Err(ApiError::rate_limited(1));
        }
        if seen.insert(signature, timestamp + REPLAY_WINDOW).is_some() {
            return Err(ApiError::unauthorized(
                "this signed request was already accepted; sign each request afresh",
            )
            .at("X-Swarmpilot-Signature"));
        }
        Ok(())
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, ApiError> {
    let shown = match name {
        TIMESTAMP_HEADER => "X-Swarmpilot-Timestamp",
        _ => "X-Swarmpilot-Signature",
    };
    headers
        .get(name)
        .map(|value| value.to_str().unwrap_or_default())
        .ok_or_else(|| {
            ApiError::unauthorized(format!(
                "missing {shown}: this server requires signed writes (X-Swarmpilot-Timestamp and X-Swarmpilot-Signature, see docs/security.md)"
            ))
            .at(shown)
        })
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEY: &[u8] = b"signing-key-0123456789";

    fn signed(method: &Method, path: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from(timestamp));
        headers.insert(
            SIGNATURE_HEADER,
            HeaderValue::from_str(&sign(KEY, method, path, timestamp, body)).unwrap(),
        );
        headers
    }

    #[test]
    fn a_signature_covers_method_path_time_and_body_and_is_accepted_once() {
        let verifier = Verifier::new(KEY);
        let path = "/v1/services/web/override";
        let uri: Uri = path.parse().unwrap();
        let now = 1_800_000_000;
        let headers = signed(&Method::POST, path, now, b"{}");
        let check = |method: &Method, uri: &Uri, body: &[u8], at: i64| {
            verifier.verify(method, uri, &headers, body, at)
        };
        let other: Uri = "/v1/services/db/override".parse().unwrap();
        assert!(check(&Method::POST, &other, b"{}", now).is_err());
        assert!(check(&Method::DELETE, &uri, b"{}", now).is_err());
        assert!(check(&Method::POST, &uri, b"{ }", now).is_err());
        let stale = check(&Method::POST, &uri, b"{}", now + REPLAY_WINDOW + 1).unwrap_err();
        assert!(stale.body.detail.contains("more than 300s"), "{stale:?}");
        check(&Method::POST, &uri, b"{}", now + 10).unwrap();
        let replayed = check(&Method::POST, &uri, b"{}", now + 20).unwrap_err();
        assert!(
            replayed.body.detail.contains("already accepted"),
            "{replayed:?}"
        );
        let missing = verifier
            .verify(&Method::POST, &uri, &HeaderMap::new(), b"{}", now)
            .unwrap_err();
        assert!(missing
            .body
            .detail
            .contains("missing X-Swarmpilot-Timestamp"));
    }
}
