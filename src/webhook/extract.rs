//! Extractors that validate input at the edge and reject it in the API's error shape: JSON bodies
//! (with the serde path of the field at fault) and service names in the path.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::policy::is_valid_service_name;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body deserialized with the path of the failing field kept for the error.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .split(';')
                    .next()
                    .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            )
            .at("Content-Type"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes `bytes`, naming the field at fault on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid(".", format!("the body is not valid JSON: {inner}"));
        }
        let field = field_of(&path, &inner.to_string());
        ApiError::invalid(field.clone(), format!("{field}: {inner}"))
    })?;
    deserializer.end().map_err(|error| {
        ApiError::invalid(".", format!("trailing data after the JSON value: {error}"))
    })?;
    Ok(value)
}

/// The field a serde error is about: a missing field is reported at its parent's path, with
/// its name in backquotes in the message, so the name is appended to the path.
fn field_of(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (missing, path) {
        (Some(name), "." | "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, path) => path.to_owned(),
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(BODY_LIMIT)
    } else {
        ApiError::invalid("body", format!("the body could not be read: {rejection}"))
    }
}

/// A Swarm service name from the path, checked against Docker's rules for names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ServiceName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid("service", rejection.body_text()))?;
        validate_service_name(&name)?;
        Ok(ServiceName(name))
    }
}

/// Refuses what Docker would not accept as a service name.
pub fn validate_service_name(name: &str) -> Result<(), ApiError> {
    if is_valid_service_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "service",
            format!("{name:?} is not a Swarm service name (1-63 letters, digits, '-' or '_', starting and ending with a letter or digit)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        name: String,
    }

    #[test]
    fn names_the_field_at_fault() {
        let error = parse_json::<Outer>(br#"{"inner": {"count": -1}, "name": "x"}"#).unwrap_err();
        assert_eq!(error.body.field.as_deref(), Some("inner.count"));
        let error = parse_json::<Outer>(br#"{"inner": {"count": 1, "extra": 2}, "name": "x"}"#)
            .unwrap_err();
        assert_eq!(error.body.field.as_deref(), Some("inner.extra"));
        let error = parse_json::<Outer>(br#"{"inner": {"count": 1}}"#).unwrap_err();
        assert_eq!(error.body.field.as_deref(), Some("name"));
        let error = parse_json::<Outer>(br#"{"inner": {"count": 1}, "name": "x"} x"#).unwrap_err();
        assert_eq!(error.body.field.as_deref(), Some("."));
    }
}
