//! An OpenAI-compatible Chat Completions client: one request, its outcome classified (retry after
//! `Retry-After`, give up on `insufficient_quota`…), and a redacted record of the exchange for
//! `integration_logs` (P12: the key never leaves this module unredacted).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::messaging::clients::Exchange;
use crate::messaging::redact;
use crate::messaging::wire::{self, truncate};
use crate::secrets::Secret;

/// Connecting may take this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request may take this long (models can be slow to answer).
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(60);

/// One chat message of a request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// What one request came to.
#[derive(Debug, PartialEq)]
pub enum Completion {
    /// The model's answer.
    Text {
        /// The reply text.
        text: String,
        /// The model that answered (as the response names it).
        model: String,
    },
    /// Worth another try: rate limited (429 other than `insufficient_quota`), a server error, or
    /// no answer at all. `retry_after` is what the server asked for.
    Retry {
        /// What happened.
        reason: String,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// Not worth another try: no quota left, a refused key, a refused request, a refusal.
    Fail {
        /// What happened.
        reason: String,
    },
}

/// A Chat Completions client.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client with the standard timeouts.
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("masterz/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// `POST {base}/chat/completions` with `body`; the outcome and the redacted exchange.
    pub async fn complete(
        &self,
        base: &str,
        key: &Secret<String>,
        body: &Value,
    ) -> (Completion, Exchange) {
        let secrets = [key.expose().as_str()];
        let url = format!("{}/chat/completions", base.trim_end_matches('/'));
        let text = body.to_string();
        let authorization = format!("Bearer {}", key.expose());
        let headers = [
            ("accept", "application/json"),
            ("content-type", "application/json"),
            ("authorization", authorization.as_str()),
        ];
        let mut exchange = Exchange {
            provider: "openai",
            method: "POST",
            endpoint: redact::url(&url, &secrets),
            request_headers: redact::headers(headers, &secrets),
            request_body: Some(redact::body(text.as_bytes(), &secrets)),
            status: None,
            response_body: None,
            duration_ms: 0,
            error: None,
        };
        let mut request = self.http.post(&url).body(text);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let outcome = read(request).await;
        exchange.duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let completion = match outcome {
            Ok((status, retry_after, raw)) => {
                exchange.status = Some(status);
                exchange.response_body = Some(truncate(redact::body(&raw, &secrets)));
                interpret(status, retry_after, &raw)
            }
            Err(e) => Completion::Retry {
                reason: redact::scrub(&describe(&e), &secrets),
                retry_after: None,
            },
        };
        if let Completion::Retry { reason, .. } | Completion::Fail { reason } = &completion {
            exchange.error = Some(redact::scrub(reason, &secrets));
        }
        (completion, exchange)
    }
}

/// Sends and reads the status, `Retry-After` and body.
async fn read(
    request: reqwest::RequestBuilder,
) -> Result<(u16, Option<Duration>, Vec<u8>), reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = wire::retry_after(&response);
    let body = wire::read_body(&mut response).await?;
    Ok((status, retry_after, body))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

/// Classifies a response (see the error table in `shared/contracts/messaging.md`).
pub fn interpret(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Completion {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let Some(v) = parsed else {
            return Completion::Retry {
                reason: format!("{status}: the response is not JSON"),
                retry_after: None,
            };
        };
        let message = &v["choices"][0]["message"];
        let model = v["model"].as_str().unwrap_or_default().to_owned();
        return match message["content"].as_str().map(str::trim) {
            Some(text) if !text.is_empty() => Completion::Text {
                text: text.to_owned(),
                model,
            },
            _ => Completion::Fail {
                reason: match message["refusal"].as_str() {
                    Some(r) => format!("the model refused: {r}"),
                    None => "the model gave no text".into(),
                },
            },
        };
    }
    let error = parsed.as_ref().map(|v| &v["error"]);
    let code = error
        .and_then(|e| e["code"].as_str().or(e["type"].as_str()))
        .unwrap_or_default();
    let message = error
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default();
    let reason = if code.is_empty() {
        format!("{status}: {message}")
            .trim_end_matches([':', ' '])
            .to_owned()
    } else {
        format!("{status} {code}: {message}")
            .trim_end_matches([':', ' '])
            .to_owned()
    };
    match status {
        429 if code == "insufficient_quota" => Completion::Fail { reason },
        429 | 408 | 409 => Completion::Retry {
            reason,
            retry_after,
        },
        s if s >= 500 => Completion::Retry {
            reason,
            retry_after,
        },
        _ => Completion::Fail { reason },
    }
}

/// The request body: the instructions with the knowledge-base passages, then the conversation.
pub fn request_body(model: &str, instructions: &str, conversation: &[ChatMessage]) -> Value {
    let mut messages = vec![json!({"role": "system", "content": instructions})];
    messages.extend(
        conversation
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content})),
    );
    // `store: false`: the provider keeps no copy for its own dashboards or evaluations.
    json!({"model": model, "messages": messages, "n": 1, "store": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_answer_is_read() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini-2024",
            "choices":[{"index":0,"message":{"role":"assistant","content":" We open at 9. ","refusal":null},"finish_reason":"stop"}]}"#;
        assert_eq!(
            interpret(200, None, body),
            Completion::Text {
                text: "We open at 9.".into(),
                model: "gpt-4o-mini-2024".into()
            }
        );
    }

    #[test]
    fn refusals_and_empty_answers_fail() {
        let refusal = br#"{"choices":[{"message":{"content":null,"refusal":"I can't help"}}]}"#;
        assert!(
            matches!(interpret(200, None, refusal), Completion::Fail { reason } if reason.contains("I can't help"))
        );
        assert!(matches!(
            interpret(200, None, br#"{"choices":[]}"#),
            Completion::Fail { .. }
        ));
        assert!(matches!(
            interpret(200, None, b"<html>"),
            Completion::Retry { .. }
        ));
    }

    #[test]
    fn rate_limits_retry_after_the_header_but_no_quota_does_not() {
        let limited = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            interpret(429, Some(Duration::from_secs(7)), limited),
            Completion::Retry {
                reason: "429 rate_limit_exceeded: Rate limit reached".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert_eq!(
            interpret(429, Some(Duration::from_secs(7)), quota),
            Completion::Fail {
                reason: "429 insufficient_quota: You exceeded your current quota".into()
            }
        );
    }

    #[test]
    fn server_errors_retry_and_client_errors_fail() {
        assert!(matches!(
            interpret(503, None, b""),
            Completion::Retry { .. }
        ));
        let bad_key = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(
            interpret(401, None, bad_key),
            Completion::Fail {
                reason: "401 invalid_api_key: Incorrect API key provided".into()
            }
        );
        assert_eq!(
            interpret(400, None, b"nope"),
            Completion::Fail {
                reason: "400".into()
            }
        );
    }

    #[test]
    fn the_request_holds_the_instructions_then_the_conversation() {
        let body = request_body(
            "m",
            "Answer briefly.",
            &[
                ChatMessage {
                    role: "user",
                    content: "Hi".into(),
                },
                ChatMessage {
                    role: "assistant",
                    content: "Hello".into(),
                },
            ],
        );
        assert_eq!(
            body,
            json!({"model": "m", "n": 1, "store": false, "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ]})
        );
    }
}
