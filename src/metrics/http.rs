//! One HTTP exchange with a deadline over the whole answer and a cap on the body's size.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};

use super::MetricError;

/// Send the request and read the body, failing past `timeout` (headers and body together) or
/// past `limit` bytes, so neither a server that trickles nor one that streams forever holds us.
pub(crate) async fn fetch(
    request: RequestBuilder,
    url: &str,
    timeout: Duration,
    limit: usize,
) -> Result<(StatusCode, Vec<u8>), MetricError> {
    match tokio::time::timeout(timeout, exchange(request, url, limit)).await {
        Ok(answer) => answer,
        Err(_) => Err(MetricError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

async fn exchange(
    request: RequestBuilder,
    url: &str,
    limit: usize,
) -> Result<(StatusCode, Vec<u8>), MetricError> {
    let unreachable = |error: reqwest::Error| MetricError::Unreachable {
        url: url.to_owned(),
        reason: error_chain(&error),
    };
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let too_large = || MetricError::TooLarge {
        url: url.to_owned(),
        limit,
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// reqwest's top-level message hides the cause ("error sending request"); show the whole chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
