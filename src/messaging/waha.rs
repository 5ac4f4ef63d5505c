//! WAHA webhook payloads → events.
//!
//! A body is `{event, session, payload, me?, timestamp?(ms), …}` and holds one event. WAHA routes
//! by URL, so every event has [`AccountKey::default()`].
//!
//! Representation choices the applying code relies on:
//! - Only one-to-one chats are supported. The chat id is the contact
//!   ([`IdentityKind::WahaChatId`]): `<digits>@c.us` (with the phone in E.164; the
//!   `@s.whatsapp.net` form and device suffixes are normalised to `<digits>@c.us`) or `<n>@lid`
//!   (no phone). Groups (`@g.us`), broadcasts/status (`@broadcast`) and channels (`@newsletter`)
//!   are `Ignored`.
//! - `message` is what customers send. A `message` or `message.any` with `fromMe: true` is an
//!   echo: an `Out` message to the `to` chat (sent from the phone, or by masterz itself — dedupe
//!   on the WAHA id that `sendText` returned). `message.any` without `fromMe` is `Ignored`: it
//!   duplicates `message`, so a session may subscribe to both.
//! - `message.ack` is a receipt for a message the business sent: 1 `SERVER` → `Sent`, 2 `DEVICE`
//!   → `Delivered`, 3 `READ` and 4 `PLAYED` → `Read`, -1 `ERROR` → `Failed` with
//!   `ProviderError{code: "ack_error"}`; 0 `PENDING` and acks of the customer's messages are
//!   `Ignored`. It has no time of its own: `at_ms` is the envelope's `timestamp`, else 0.
//! - `message.revoked` → `Removed`; `message.edited` → a message with `edited: true`. Both name
//!   the original by its bare id in newer WAHA builds; it is completed to the serialised form
//!   `<fromMe>_<chat>_<id>` that messages are stored under (the sender is the one who revokes
//!   or edits, so `fromMe` carries over). Quoted messages (`replyTo`) are completed the same way
//!   when the quoted sender is known.
//! - `message.reaction` with an empty text removes the reaction (`emoji: None`); the business's
//!   own reactions are `Ignored`.
//! - A `message` with no text, media, location or vCards gets one attachment of kind
//!   `unsupported` (`data: {"type": _data.type}`), except WhatsApp's own notices (end-to-end
//!   encryption, call log…), which are `Ignored`.
//! - Timestamps are Unix seconds (ms also accepted).

use serde_json::Value;

use super::event::{
    AccountKey, Attachment, Contact, DeliveryStatus, Direction, EventKind, InboundEvent,
    InboundMessage, MessageKind, ParseError, ProviderError, StatusUpdate,
};
use super::meta::{bool_at, ignored, ms_of, str_at, text_at, unknown};
use crate::domain::IdentityKind;
use crate::domain::phone::normalize_e164;

#[cfg(test)]
#[path = "waha_tests.rs"]
mod tests;

/// Parses a WAHA webhook body into its (one) event.
///
/// Errors only when the body is not a JSON object or has no `event`.
pub fn parse(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("not JSON: {e}")))?;
    if !envelope.is_object() {
        return Err(ParseError("not a JSON object".into()));
    }
    let event = str_at(&envelope, "event").ok_or_else(|| ParseError("no `event`".into()))?;
    let payload = envelope.get("payload").unwrap_or(&Value::Null);
    let envelope_ms = envelope.get("timestamp").and_then(ms_of).unwrap_or(0);
    let me = envelope
        .get("me")
        .and_then(|m| str_at(m, "id"))
        .and_then(|id| chat(id).ok())
        .map(|(id, _)| id);
    let kind = match event {
        "message" | "message.any" => message(event, payload, me.as_deref(), envelope_ms),
        "message.ack" => ack(payload, envelope_ms),
        "message.reaction" => reaction(payload, envelope_ms),
        "message.revoked" => revoked(payload),
        "message.edited" => edited(payload, envelope_ms),
        "session.status" => match text_at(payload, "status") {
            Some(status) => EventKind::SessionStatus { status },
            None => ignored("session.status without `status`".into()),
        },
        other => unknown(other.to_owned()),
    };
    Ok(vec![InboundEvent {
        account: AccountKey::default(),
        kind,
    }])
}

/// `message`/`message.any`: `payload{id, timestamp, from, fromMe, to, body, hasMedia,
/// media{url, mimetype, filename, error}?, location?, vCards?, replyTo?, _data}`.
fn message(event: &str, p: &Value, me: Option<&str>, envelope_ms: i64) -> EventKind {
    let from_me = bool_at(p, "fromMe");
    if event == "message.any" && !from_me {
        return ignored("message.any of an inbound message duplicates `message`".into());
    }
    let Some(id) = message_id(p) else {
        return ignored("message without `id`".into());
    };
    let (chat_id, phone) = match chat_of(p) {
        Ok(chat) => chat,
        Err(reason) => return ignored(reason),
    };
    let data = p.get("_data").unwrap_or(&Value::Null);
    // On an echo, `notifyName` is the business's own name.
    let name = (!from_me)
        .then(|| text_at(data, "notifyName").or_else(|| text_at(data, "pushName")))
        .flatten();
    let raw_type = str_at(data, "type").unwrap_or("");

    let mut attachments = Vec::new();
    let media = p.get("media").filter(|m| m.is_object());
    if bool_at(p, "hasMedia") || media.is_some() {
        attachments.push(media_attachment(p, media, raw_type));
    }
    let mut text = text_at(p, "body");
    if let Some(location) = p.get("location").filter(|l| l.is_object()) {
        attachments.push(data_attachment("location", location.clone()));
        text = None; // WEBJS puts the map thumbnail (base64) in `body`.
    }
    if let Some(cards) = p
        .get("vCards")
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        attachments.push(data_attachment("contacts", cards.clone()));
        text = None; // `body` repeats the vCard.
    }
    if text.is_none() && attachments.is_empty() {
        if matches!(
            raw_type,
            "e2e_notification" | "notification_template" | "gp2" | "call_log" | "protocol"
        ) {
            return ignored(format!("WhatsApp notice `{raw_type}`"));
        }
        let data = (!raw_type.is_empty()).then(|| serde_json::json!({ "type": raw_type }));
        attachments.push(Attachment {
            kind: "unsupported".into(),
            data,
            ..Attachment::default()
        });
    }
    let reply_to = reply_to(p, &chat_id, me);
    EventKind::Message(InboundMessage {
        external_id: id,
        contact: Contact {
            kind: Some(IdentityKind::WahaChatId),
            external_id: chat_id,
            phone,
            name,
            ..Contact::default()
        },
        direction: if from_me {
            Direction::Out
        } else {
            Direction::In
        },
        kind: MessageKind::Message,
        text,
        attachments,
        reply_to,
        thread: None,
        edited: false,
        at_ms: p.get("timestamp").and_then(ms_of).unwrap_or(envelope_ms),
    })
}

/// The media reference: `media{url, mimetype, filename, error}` (or the older `mediaUrl`).
fn media_attachment(p: &Value, media: Option<&Value>, raw_type: &str) -> Attachment {
    let media = media.unwrap_or(&Value::Null);
    let mime_type = text_at(media, "mimetype");
    let kind = match raw_type {
        "image" | "video" | "audio" | "document" | "sticker" => raw_type,
        "ptt" => "audio",
        _ => mime_type
            .as_deref()
            .and_then(|m| m.split('/').next())
            .filter(|major| matches!(*major, "image" | "video" | "audio"))
            .unwrap_or("document"),
    };
    let error = media.get("error").filter(|e| !e.is_null());
    Attachment {
        kind: kind.into(),
        url: text_at(media, "url").or_else(|| text_at(p, "mediaUrl")),
        mime_type,
        filename: text_at(media, "filename"),
        data: error.map(|e| serde_json::json!({ "error": e })),
        ..Attachment::default()
    }
}

fn data_attachment(kind: &str, data: Value) -> Attachment {
    Attachment {
        kind: kind.into(),
        data: Some(data),
        ..Attachment::default()
    }
}

/// `message.ack`: `payload{id, from, to, fromMe, ack, ackName}`.
fn ack(p: &Value, envelope_ms: i64) -> EventKind {
    let Some(id) = message_id(p) else {
        return ignored("message.ack without `id`".into());
    };
    if p.get("fromMe").and_then(Value::as_bool) == Some(false) {
        return ignored("ack of a message the customer sent".into());
    }
    // The chat is `to` (the business sent the message); an ack may lack it.
    let recipient = match str_at(p, "to").map(chat) {
        Some(Ok((chat_id, _))) => Some(chat_id),
        Some(Err(reason)) => return ignored(reason),
        None => None,
    };
    let code = p.get("ack").and_then(Value::as_i64).or_else(|| {
        Some(match str_at(p, "ackName")? {
            "ERROR" => -1,
            "PENDING" => 0,
            "SERVER" => 1,
            "DEVICE" => 2,
            "READ" => 3,
            "PLAYED" => 4,
            _ => return None,
        })
    });
    let (status, error) = match code {
        Some(1) => (DeliveryStatus::Sent, None),
        Some(2) => (DeliveryStatus::Delivered, None),
        Some(3 | 4) => (DeliveryStatus::Read, None),
        Some(-1) => (
            DeliveryStatus::Failed,
            Some(ProviderError {
                code: "ack_error".into(),
                message: text_at(p, "ackName").unwrap_or_else(|| "ERROR".into()),
            }),
        ),
        Some(0) => return ignored("ack PENDING".into()),
        Some(n) => return unknown(format!("message.ack {n}")),
        None => return ignored("message.ack without `ack`".into()),
    };
    EventKind::Status(StatusUpdate {
        message_id: id,
        status,
        at_ms: p.get("timestamp").and_then(ms_of).unwrap_or(envelope_ms),
        error,
        recipient,
    })
}

/// `message.reaction`: `payload{id, from, fromMe, to, timestamp, reaction{text, messageId}}`.
fn reaction(p: &Value, envelope_ms: i64) -> EventKind {
    if bool_at(p, "fromMe") {
        return ignored("reaction by the business".into());
    }
    let (chat_id, phone) = match chat_of(p) {
        Ok(chat) => chat,
        Err(reason) => return ignored(reason),
    };
    let body = p.get("reaction").unwrap_or(&Value::Null);
    let Some(message_id) = text_at(body, "messageId") else {
        return ignored("reaction without `messageId`".into());
    };
    EventKind::Reaction {
        contact: Contact {
            kind: Some(IdentityKind::WahaChatId),
            external_id: chat_id,
            phone,
            ..Contact::default()
        },
        message_id,
        emoji: text_at(body, "text"),
        at_ms: p.get("timestamp").and_then(ms_of).unwrap_or(envelope_ms),
    }
}

/// `message.revoked`: `payload{before?, after?, revokedMessageId?}`.
fn revoked(p: &Value) -> EventKind {
    if let Some(before) = p.get("before").filter(|b| b.is_object())
        && let Some(id) = message_id(before)
    {
        return match chat_of(before) {
            Ok(_) => EventKind::Removed { external_id: id },
            Err(reason) => ignored(reason),
        };
    }
    let after = p.get("after").unwrap_or(&Value::Null);
    let Some(bare) = text_at(p, "revokedMessageId") else {
        return ignored("message.revoked without the revoked message's id".into());
    };
    match chat_of(after) {
        Ok((chat_id, _)) => EventKind::Removed {
            external_id: serialized_id(&bare, bool_at(after, "fromMe"), &chat_id),
        },
        // Without `after` the id cannot be completed; pass it on as given.
        Err(_) if after.is_null() => EventKind::Removed { external_id: bare },
        Err(reason) => ignored(reason),
    }
}

/// `message.edited`: `payload{id, editedMessageId, body, from, fromMe, to, timestamp}`.
fn edited(p: &Value, envelope_ms: i64) -> EventKind {
    let Some(bare) = text_at(p, "editedMessageId") else {
        return ignored("message.edited without `editedMessageId`".into());
    };
    let (chat_id, phone) = match chat_of(p) {
        Ok(chat) => chat,
        Err(reason) => return ignored(reason),
    };
    let from_me = bool_at(p, "fromMe");
    EventKind::Message(InboundMessage {
        external_id: serialized_id(&bare, from_me, &chat_id),
        contact: Contact {
            kind: Some(IdentityKind::WahaChatId),
            external_id: chat_id,
            phone,
            ..Contact::default()
        },
        direction: if from_me {
            Direction::Out
        } else {
            Direction::In
        },
        kind: MessageKind::Message,
        text: text_at(p, "body"),
        attachments: Vec::new(),
        reply_to: None,
        thread: None,
        edited: true,
        at_ms: p.get("timestamp").and_then(ms_of).unwrap_or(envelope_ms),
    })
}

/// The id as a string (older WEBJS builds send `{_serialized, …}`).
fn message_id(p: &Value) -> Option<String> {
    match p.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        id @ Value::Object(_) => text_at(id, "_serialized"),
        _ => None,
    }
}

/// The chat of a message: `to` when the business sent it, else `from`.
fn chat_of(p: &Value) -> Result<(String, Option<String>), String> {
    let key = if bool_at(p, "fromMe") { "to" } else { "from" };
    let raw = str_at(p, key).ok_or_else(|| format!("message without `{key}`"))?;
    chat(raw)
}

/// A one-to-one chat id, normalised, with its phone in E.164 when it has one; or why the chat
/// is skipped.
fn chat(raw: &str) -> Result<(String, Option<String>), String> {
    let Some((user, server)) = raw.rsplit_once('@') else {
        return Err(format!("chat id without a server: `{}`", redact_chat(raw)));
    };
    // `4915112345678:12@s.whatsapp.net` names one device of the user.
    let user = user.split(':').next().unwrap_or(user);
    if user.is_empty() {
        return Err("empty chat id".into());
    }
    match server {
        "c.us" | "s.whatsapp.net" => {
            let phone = normalize_e164(&format!("+{user}"));
            Ok((format!("{user}@c.us"), phone))
        }
        "lid" => Ok((format!("{user}@lid"), None)),
        "g.us" => Err("group chats are not supported".into()),
        "broadcast" => Err("broadcasts and status updates are not supported".into()),
        "newsletter" => Err("channels are not supported".into()),
        other => Err(format!("chats on `@{other}` are not supported")),
    }
}

/// A chat id in a reason string: its digits are a phone number, which stays out of logs.
fn redact_chat(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .take(64)
        .collect()
}

/// `<fromMe>_<chat>_<bare id>`, the form WAHA's message ids take; ids already serialised
/// (they contain `_`) are kept.
fn serialized_id(id: &str, from_me: bool, chat_id: &str) -> String {
    if id.contains('_') {
        id.to_owned()
    } else {
        format!("{from_me}_{chat_id}_{id}")
    }
}

/// `replyTo`: a serialised id, or `{id, participant}` with the bare id, completed when the
/// quoted sender is the customer or the business.
fn reply_to(p: &Value, chat_id: &str, me: Option<&str>) -> Option<String> {
    let reply = p.get("replyTo")?;
    let (id, participant) = match reply {
        Value::String(s) => (s.as_str(), None),
        Value::Object(_) => (str_at(reply, "id")?, str_at(reply, "participant")),
        _ => return None,
    };
    if id.is_empty() {
        return None;
    }
    let participant = participant.and_then(|raw| chat(raw).ok()).map(|(id, _)| id);
    let from_me = match participant.as_deref() {
        _ if id.contains('_') => return Some(id.to_owned()),
        Some(who) if who == chat_id => false,
        Some(who) if Some(who) == me => true,
        _ => return Some(id.to_owned()),
    };
    Some(serialized_id(id, from_me, chat_id))
}
