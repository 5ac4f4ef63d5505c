//! Meta's Graph API: request bodies, the error object, and what each error code means for the
//! outbox.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Profile, Request, SendError, Sent};
use crate::messaging::event::ProviderError;
use crate::messaging::redact;

/// Throttling: Graph 4 (app), 17 (user), 32 (page), 613 (custom); WhatsApp 80007 (business
/// account), 130429 (throughput), 131056 (pair rate, one message per ~6 s to one user).
const RATE_LIMITED: &[i64] = &[4, 17, 32, 613, 80007, 130429, 131056];

/// Worth a retry: Graph 1 (unknown), 2 (service); WhatsApp 131000 (something went wrong),
/// 131016 (service unavailable).
const TRANSIENT: &[i64] = &[1, 2, 131000, 131016];

/// The body of a Graph request.
pub(super) fn body(req: &Request) -> Value {
    match req {
        Request::MessengerText {
            recipient,
            text,
            human_agent_tag,
            ..
        }
        | Request::InstagramText {
            recipient,
            text,
            human_agent_tag,
            ..
        } => {
            let mut body = json!({
                "recipient": {"id": recipient},
                "messaging_type": "RESPONSE",
                "message": {"text": text},
            });
            if *human_agent_tag {
                body["messaging_type"] = json!("MESSAGE_TAG");
                body["tag"] = json!("HUMAN_AGENT");
            }
            body
        }
        Request::PrivateReply {
            comment_id, text, ..
        } => json!({
            "recipient": {"comment_id": comment_id},
            "message": {"text": text},
        }),
        Request::CommentReply { text, .. } => json!({"message": text}),
        Request::MarkSeen { recipient, .. } => json!({
            "recipient": {"id": recipient},
            "sender_action": "mark_seen",
        }),
        Request::WhatsappText {
            to, text, reply_to, ..
        } => {
            let mut body = whatsapp_to(to);
            body["type"] = json!("text");
            body["text"] = json!({"body": text, "preview_url": false});
            if let Some(id) = reply_to {
                body["context"] = json!({"message_id": id});
            }
            body
        }
        Request::WhatsappTemplate {
            to,
            name,
            language,
            components,
            ..
        } => {
            let mut body = whatsapp_to(to);
            body["type"] = json!("template");
            body["template"] = json!({
                "name": name,
                "language": {"code": language, "policy": "deterministic"},
            });
            if let Some(c) = components {
                body["template"]["components"] = c.clone();
            }
            body
        }
        Request::WhatsappRead { message_id, .. } => json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        }),
        // Not Graph requests; `Request::body` never sends them here.
        Request::WahaText { .. } | Request::WahaSeen { .. } => Value::Null,
    }
}

fn whatsapp_to(to: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to.strip_prefix('+').unwrap_or(to),
    })
}

/// A Graph error, parsed.
#[derive(Debug)]
pub(super) struct GraphError {
    pub(super) code: Option<i64>,
    pub(super) subcode: Option<i64>,
    pub(super) is_transient: bool,
    pub(super) error: ProviderError,
}

/// `{error{message, type, code, error_subcode?, error_data{details}?, is_transient?, …}}`, with
/// the message scrubbed (Graph quotes a malformed token back in it).
pub(super) fn parse_error(json: &Value, secrets: &[&str]) -> Option<GraphError> {
    let err = json.get("error")?.as_object()?;
    let int = |key: &str| {
        err.get(key).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
    };
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
    let code = int("code");
    let subcode = int("error_subcode");
    let mut message = text(err.get("message"))
        .or_else(|| text(err.get("type")))
        .unwrap_or("Graph API error")
        .to_owned();
    // WhatsApp puts the useful explanation here; the message is only a title.
    if let Some(details) = text(err.get("error_data").and_then(|d| d.get("details")))
        && details != message
    {
        message = format!("{message}: {details}");
    }
    if let Some(sub) = subcode {
        message = format!("{message} (subcode {sub})");
    }
    Some(GraphError {
        code,
        subcode,
        is_transient: err.get("is_transient").and_then(Value::as_bool) == Some(true),
        error: ProviderError {
            code: code.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
            message: redact::scrub(&message, secrets),
        },
    })
}

/// What a Graph error means for the outbox. `status` is the HTTP status of the response.
pub(super) fn classify(status: u16, err: GraphError, retry_after: Option<Duration>) -> SendError {
    let code = err.code.unwrap_or(-1);
    if code == 190 || (err.code.is_none() && status == 401) {
        SendError::AuthExpired(err.error)
    } else if code == 131047 || (code == 10 && err.subcode == Some(2018278)) {
        SendError::WindowClosed(err.error)
    } else if RATE_LIMITED.contains(&code) || status == 429 {
        SendError::RateLimited {
            retry_after,
            error: err.error,
        }
    } else if TRANSIENT.contains(&code) || err.is_transient || status >= 500 {
        SendError::Transient(err.error)
    } else {
        SendError::Permanent(err.error)
    }
}

/// A failed response without a Graph error object (a proxy's HTML page, an empty body).
fn http_error(status: u16, body: &[u8], secrets: &[&str]) -> GraphError {
    GraphError {
        code: None,
        subcode: None,
        is_transient: false,
        error: ProviderError {
            code: format!("http_{status}"),
            message: short_text(status, body, secrets),
        },
    }
}

/// The start of a non-JSON error body, scrubbed, or the status line when it is empty.
pub(super) fn short_text(status: u16, body: &[u8], secrets: &[&str]) -> String {
    let text = redact::body(body, secrets);
    let text = text.trim();
    if text.is_empty() {
        return reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .map_or_else(
                || format!("HTTP {status}"),
                |r| format!("HTTP {status} {r}"),
            );
    }
    let end = text.floor_char_boundary(300);
    text[..end].to_owned()
}

/// Reads a Graph response to a send.
pub(super) fn interpret(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    secrets: &[&str],
) -> Result<Sent, SendError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    check(status, retry_after, json.as_ref(), body, secrets)?;
    Ok(Sent {
        message_id: json.as_ref().and_then(message_id),
    })
}

/// The error of a response, if it is one: a non-2xx status, or an error object in any response.
fn check(
    status: u16,
    retry_after: Option<Duration>,
    json: Option<&Value>,
    body: &[u8],
    secrets: &[&str],
) -> Result<(), SendError> {
    let parsed = json.and_then(|j| parse_error(j, secrets));
    if (200..300).contains(&status) && parsed.is_none() {
        return Ok(());
    }
    let err = parsed.unwrap_or_else(|| http_error(status, body, secrets));
    Err(classify(status, err, retry_after))
}

/// The created id: Send API `message_id`, WhatsApp `messages[0].id`, comment reply `id`.
pub(super) fn message_id(json: &Value) -> Option<String> {
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    string(json.get("message_id"))
        .or_else(|| string(json.pointer("/messages/0/id")))
        .or_else(|| string(json.get("id")))
}

/// Reads a profile response (Messenger or Instagram fields).
pub(super) fn interpret_profile(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    secrets: &[&str],
) -> Result<Profile, SendError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    check(status, retry_after, json.as_ref(), body, secrets)?;
    let json = json.unwrap_or(Value::Null);
    let field = |key: &str| {
        json.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let joined = [field("first_name"), field("last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Profile {
        name: field("name").or((!joined.is_empty()).then_some(joined)),
        username: field("username"),
        avatar_url: field("profile_pic"),
        locale: field("locale"),
    })
}

/// When a throttled caller may try again, from
/// `X-Business-Use-Case-Usage: {"<id>":[{"type":…, "estimated_time_to_regain_access": <minutes>}]}`:
/// the longest wait it names, if any is above zero.
pub(super) fn buc_regain(header: &str) -> Option<Duration> {
    let json: Value = serde_json::from_str(header).ok()?;
    let minutes = json
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)))
}
