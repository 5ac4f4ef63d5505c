//! WAHA's HTTP API: request bodies, message ids in its responses, its errors.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Request, SendError, Sent};
use crate::messaging::event::ProviderError;

/// The body of a WAHA request.
pub(super) fn body(req: &Request) -> Value {
    match req {
        Request::WahaText {
            session,
            chat_id,
            text,
            reply_to,
            ..
        } => {
            let mut body = json!({"session": session, "chatId": chat_id, "text": text});
            if let Some(id) = reply_to {
                body["reply_to"] = json!(id);
            }
            body
        }
        Request::WahaSeen {
            session,
            chat_id,
            message_id,
            ..
        } => {
            let mut body = json!({"session": session, "chatId": chat_id});
            if let Some(id) = message_id {
                body["messageId"] = json!(id);
            }
            body
        }
        // Graph requests; `Request::body` never sends them here.
        _ => Value::Null,
    }
}

/// Reads a WAHA response: the message id on success; otherwise 401 → `AuthExpired`, 429 →
/// `RateLimited`, 5xx → `Transient`, anything else (400, 404 no such session, 422 session not
/// working) → `Permanent`.
pub(super) fn interpret(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    secrets: &[&str],
) -> Result<Sent, SendError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        return Ok(Sent {
            message_id: json.as_ref().and_then(message_id),
        });
    }
    let error = ProviderError {
        code: json
            .as_ref()
            .and_then(|j| j.get("statusCode"))
            .and_then(|c| match c {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| status.to_string()),
        message: json
            .as_ref()
            .and_then(error_message)
            .map(|m| crate::messaging::redact::scrub(&m, secrets))
            .unwrap_or_else(|| super::graph::short_text(status, body, secrets)),
    };
    Err(match status {
        401 => SendError::AuthExpired(error),
        429 => SendError::RateLimited { retry_after, error },
        500.. => SendError::Transient(error),
        _ => SendError::Permanent(error),
    })
}

/// `{message, statusCode}` (NestJS): `message` is a string, or a list of validation failures;
/// some builds answer `{error}` instead.
fn error_message(json: &Value) -> Option<String> {
    let text = match json.get("message").or_else(|| json.get("error"))? {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The id of the sent message in the form WAHA's webhooks use (`true_<chatId>_<hex>`), from
/// whichever shape the engine answers with:
/// - `{id: "true_…"}` (GOWS, and WAHA's own wrappers);
/// - `{id: {fromMe, remote, id, _serialized}}` (WEBJS);
/// - `{key: {remoteJid, fromMe, id}}` (NOWEB: the Baileys message; the id is serialized the way
///   WAHA does for webhooks, `<fromMe>_<chat id with @c.us>_<id>`, so later acks match it);
/// - `{_data: {id: {_serialized}}}`.
pub(super) fn message_id(json: &Value) -> Option<String> {
    let string = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    string(json.get("id"))
        .or_else(|| string(json.pointer("/id/_serialized")))
        .or_else(|| noweb_id(json.get("key")?))
        .or_else(|| string(json.pointer("/_data/id/_serialized")))
}

fn noweb_id(key: &Value) -> Option<String> {
    let id = key.get("id")?.as_str().filter(|s| !s.is_empty())?;
    let (Some(from_me), Some(jid)) = (
        key.get("fromMe").and_then(Value::as_bool),
        key.get("remoteJid").and_then(Value::as_str),
    ) else {
        return Some(id.to_owned());
    };
    let chat = match jid.strip_suffix("@s.whatsapp.net") {
        Some(user) => format!("{user}@c.us"),
        None => jid.to_owned(),
    };
    Some(format!("{from_me}_{chat}_{id}"))
}
