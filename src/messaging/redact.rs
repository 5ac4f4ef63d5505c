//! Redaction of what goes into `integration_logs` (P11, P12, P25): bodies, headers and URLs with
//! every secret replaced by `[redacted]`.
//!
//! Two rules, both applied: a value under a secret-looking key (`access_token`, `app_secret`,
//! `api_key`, `authorization`, `password`…) is replaced whatever it is; and every known secret
//! value (the channel's token, keys, the app secret) is replaced wherever it appears, even inside
//! a URL, an error message or a non-JSON body.

use crate::secrets::REDACTED;

/// Header names whose values are always secret.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
    "set-cookie",
    "x-webhook-hmac",
];

/// Key fragments that mark a JSON value or URL parameter as secret.
const SECRET_KEYS: &[&str] = &[
    "token",
    "secret",
    "password",
    "api_key",
    "apikey",
    "authorization",
    "hmac",
    "signed_request",
];

/// Whether a JSON key or URL parameter name holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|w| lower.contains(w))
}

/// Whether a header's value is a secret.
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Replaces every occurrence of each known secret (ignoring ones shorter than 4 characters, which
/// would mangle ordinary text) by `[redacted]`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    scrub_owned(text.to_owned(), secrets)
}

/// [`scrub`] on a string the caller gives up: copied only where a secret is replaced.
fn scrub_owned(mut text: String, secrets: &[&str]) -> String {
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if text.contains(s) {
            text = text.replace(s, REDACTED);
        }
    }
    text
}

/// Redacts a JSON value in place: secret keys lose their values.
pub fn redact_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !v.is_null() {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// A body as it may be stored: JSON with secret keys redacted (re-serialised only when something
/// was secret, so a clean body keeps its exact bytes), other text as is; then every known secret
/// value scrubbed. Non-UTF-8 bytes are replaced.
pub fn body(raw: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = if might_hold_secret_key(&text) {
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(mut v) => {
                redact_json(&mut v);
                v.to_string()
            }
            Err(_) => form_or_text(&text),
        }
    } else {
        text.into_owned()
    };
    scrub_owned(text, secrets)
}

/// A cheap pre-check on the text, so the usual webhook body (no secret keys) is stored as
/// received without a parse and a re-serialisation.
fn might_hold_secret_key(text: &str) -> bool {
    const NEEDLES: &[&str] = &[
        "oken",
        "ecret",
        "assword",
        "pi_key",
        "pikey",
        "uthorization",
        "hmac",
        "signed_",
    ];
    // One lower-cased copy searched with the standard library's vectorised substring search:
    // eight byte-by-byte case-insensitive scans were 4 % of the server's time under webhook load.
    let lower = text.to_ascii_lowercase();
    NEEDLES.iter().any(|n| lower.contains(n))
}

/// A form-encoded body or query string with secret parameters redacted; other text unchanged.
fn form_or_text(text: &str) -> String {
    if !text.contains('=') || text.contains(char::is_whitespace) {
        return text.to_owned();
    }
    query(text)
}

/// A query string (`a=1&access_token=…`) with secret parameters' values redacted.
pub fn query(q: &str) -> String {
    q.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A URL with secret query parameters and userinfo redacted, and known secrets scrubbed.
pub fn url(url: &str, secrets: &[&str]) -> String {
    let url = crate::app::redact_url(url);
    let url = match url.split_once('?') {
        Some((path, q)) => format!("{path}?{}", query(q)),
        None => url,
    };
    scrub(&url, secrets)
}

/// Headers as a JSON object for the log, secret ones redacted.
pub fn headers<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    secrets: &[&str],
) -> serde_json::Value {
    let map = pairs
        .into_iter()
        .map(|(k, v)| {
            let v = if is_secret_header(k) {
                REDACTED.to_owned()
            } else {
                scrub(v, secrets)
            };
            (k.to_ascii_lowercase(), serde_json::Value::String(v))
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_json_keeps_its_bytes() {
        let raw = br#"{"object":"page","entry":[{"id":"1","messaging":[{"message":{"text":"caf\u00e9"}}]}]}"#;
        assert_eq!(body(raw, &[]).as_bytes(), raw);
    }

    #[test]
    fn secret_keys_and_values_are_redacted_everywhere() {
        let raw = br#"{"access_token":"EAAB-planted","nested":{"app_secret":"s3cr3t-x"},"text":"my key is EAAB-planted"}"#;
        let out = body(raw, &["EAAB-planted"]);
        assert!(!out.contains("EAAB-planted"), "{out}");
        assert!(!out.contains("s3cr3t-x"), "{out}");
        assert!(out.contains("my key is [redacted]"), "{out}");
    }

    #[test]
    fn form_bodies_urls_and_headers() {
        assert_eq!(
            body(b"signed_request=abc.def&x=1", &[]),
            "signed_request=[redacted]&x=1"
        );
        assert_eq!(
            url(
                "https://graph.example/v23.0/me?fields=id&access_token=EAAB",
                &[]
            ),
            "https://graph.example/v23.0/me?fields=id&access_token=[redacted]"
        );
        let h = headers(
            [
                ("Authorization", "Bearer EAAB"),
                ("X-Api-Key", "k"),
                ("Content-Type", "application/json"),
            ],
            &[],
        );
        assert_eq!(h["authorization"], REDACTED);
        assert_eq!(h["x-api-key"], REDACTED);
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn short_secrets_do_not_mangle_text() {
        assert_eq!(scrub("a b c", &["a"]), "a b c");
    }
}
