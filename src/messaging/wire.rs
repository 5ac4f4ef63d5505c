//! Reading provider responses, shared by the messaging clients and the OpenAI client: a bounded
//! body read, `Retry-After`, and the cut of a body stored in `integration_logs`.

use std::time::{Duration, SystemTime};

/// A response body is read up to this size.
pub const MAX_READ_BODY: usize = 1024 * 1024;
/// A stored body is cut to this size.
pub const MAX_LOGGED_BODY: usize = 64 * 1024;

/// Reads the body of `response` up to [`MAX_READ_BODY`] bytes (the rest is not read).
pub async fn read_body(response: &mut reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_READ_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() >= room {
            break;
        }
    }
    Ok(body)
}

/// The response's `Retry-After`, read with [`parse_retry_after`].
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date (IMF-fixdate, e.g.
/// `Wed, 21 Oct 2015 07:28:00 GMT`) counted from `now`; a date in the past means no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Not RFC 9110, but seen in the wild.
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at: SystemTime = chrono::DateTime::parse_from_rfc2822(value).ok()?.into();
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Cuts a stored body to [`MAX_LOGGED_BODY`] bytes at a character boundary.
pub fn truncate(mut text: String) -> String {
    if text.len() > MAX_LOGGED_BODY {
        let end = text.floor_char_boundary(MAX_LOGGED_BODY);
        text.truncate(end);
        text.push_str("…[truncated]");
    }
    text
}
