//! WhatsApp Cloud API changes (`object: whatsapp_business_account`) → events.
//!
//! A `messages` change holds `contacts[]`, `messages[]`, `statuses[]` and `errors[]`, in any
//! combination; every event carries the change's `metadata.phone_number_id`.
//!
//! - The customer is keyed on the business-scoped user id (`user_id`/`from_user_id`) when there
//!   is one, with the `wa_id` as a [`IdentityKind::WaId`] alias; otherwise on the `wa_id`. The
//!   phone is the `wa_id` in E.164. `wa_id`/`from` may be absent (users with a username).
//! - Media are references: `media_id` (fetch with `GET /{media-id}`), MIME type, SHA-256, file
//!   name; the caption is the text. `voice`/`animated` flags go into `data`.
//! - `interactive` `button_reply`/`list_reply` and `button` are [`MessageKind::Postback`] with
//!   the title (button text) as text and one attachment of kind `button_reply`, `list_reply` or
//!   `button` whose `data` is `{"payload": <id or payload>}` (plus `"description"` for a list
//!   row) — the same shape as Messenger postbacks.
//! - `unsupported` (and `unknown`) messages keep a trace: no text, an attachment of kind
//!   `unsupported` with `data: {"errors": […], "unsupported": {…}}` as sent. Types this parser
//!   does not know (`order`, …) become an attachment of that kind with the type object as `data`.
//! - `system` and `request_welcome` messages are ignored.
//! - Statuses: `played` (a voice message was played) is reported as `Read`; other unknown
//!   statuses are `Unknown`. `errors[0]` becomes the [`ProviderError`] (`title: details`).
//! - Value-level `errors[]` (the webhook could not be delivered as messages) are `Ignored` with the
//!   error as the reason.
//! - `smb_message_echoes` (coexistence: sent from the WhatsApp Business app) are `Out` messages
//!   to `to`.

use serde_json::{Map, Value};

use super::{
    Entry, array_at, bool_at, id_at, ignored, ms_of, plain_message, str_at, text_at, unknown,
};
use crate::domain::IdentityKind;
use crate::domain::phone::normalize_e164;
use crate::messaging::event::{
    AccountKey, Attachment, Contact, DeliveryStatus, Direction, EventKind, InboundEvent,
    InboundMessage, MessageKind, ProviderError, StatusUpdate,
};

#[cfg(test)]
#[path = "meta_whatsapp_tests.rs"]
mod tests;

/// The events of one `changes[]` item.
pub(super) fn change_events(ctx: &Entry<'_>, field: &str, value: &Value) -> Vec<InboundEvent> {
    let account = AccountKey {
        entry_id: ctx.account.entry_id.clone(),
        phone_number_id: value
            .get("metadata")
            .and_then(|m| id_at(m, "phone_number_id")),
    };
    let event = |kind| InboundEvent {
        account: account.clone(),
        kind,
    };
    match field {
        "messages" => {}
        "smb_message_echoes" => {
            return array_at(value, "message_echoes")
                .iter()
                .map(|m| event(echo(m, ctx.time_ms)))
                .collect();
        }
        _ => return vec![event(unknown(format!("whatsapp_business_account/{field}")))],
    }
    let contacts = array_at(value, "contacts");
    let mut events = Vec::new();
    for message in array_at(value, "messages") {
        events.push(event(inbound(message, contacts, ctx.time_ms)));
    }
    for status in array_at(value, "statuses") {
        events.push(event(status_event(status, ctx.time_ms)));
    }
    for error in array_at(value, "errors") {
        let error = provider_error(error);
        events.push(event(ignored(format!(
            "WhatsApp error {}: {}",
            error.code, error.message
        ))));
    }
    if events.is_empty() {
        events.push(event(unknown("whatsapp_business_account/messages".into())));
    }
    events
}

/// `messages[]{from?, from_user_id?, id, timestamp, type, context?, <type object>}`.
fn inbound(message: &Value, contacts: &[Value], time_ms: i64) -> EventKind {
    let Some(id) = text_at(message, "id") else {
        return ignored("message without `id`".into());
    };
    match str_at(message, "type") {
        Some("system") => {
            let what = message
                .get("system")
                .and_then(|s| str_at(s, "type"))
                .unwrap_or("");
            return ignored(format!("system message `{what}`"));
        }
        Some("request_welcome") => return ignored("request_welcome".into()),
        _ => {}
    }
    let Some(contact) = sender(message, contacts) else {
        return ignored("message without `from` or `from_user_id`".into());
    };
    let at_ms = message.get("timestamp").and_then(ms_of).unwrap_or(time_ms);
    content(message, id, contact, Direction::In, at_ms)
}

/// `message_echoes[]{from: business, to, to_user_id?, id, timestamp, type, …}`.
fn echo(message: &Value, time_ms: i64) -> EventKind {
    let Some(id) = text_at(message, "id") else {
        return ignored("echo without `id`".into());
    };
    let Some(contact) = customer(id_at(message, "to"), text_at(message, "to_user_id"), None) else {
        return ignored("echo without `to` or `to_user_id`".into());
    };
    let at_ms = message.get("timestamp").and_then(ms_of).unwrap_or(time_ms);
    content(message, id, contact, Direction::Out, at_ms)
}

/// The message's sender, completed from the `contacts[]` entry that is the same person.
fn sender(message: &Value, contacts: &[Value]) -> Option<Contact> {
    let wa_id = id_at(message, "from");
    let user_id = text_at(message, "from_user_id");
    // A contact is the sender when no id contradicts it and (unless it is the only one) an id
    // matches.
    let agrees = |mine: &Option<String>, theirs: Option<String>| match (mine, theirs) {
        (Some(a), Some(b)) => *a == b,
        _ => true,
    };
    let compatible =
        |c: &Value| agrees(&wa_id, id_at(c, "wa_id")) && agrees(&user_id, text_at(c, "user_id"));
    let shares = |c: &Value| {
        (wa_id.is_some() && id_at(c, "wa_id") == wa_id)
            || (user_id.is_some() && text_at(c, "user_id") == user_id)
    };
    let matched = contacts
        .iter()
        .find(|c| compatible(c) && shares(c))
        .or(match contacts {
            [only] if compatible(only) => Some(only),
            _ => None,
        });
    customer(
        wa_id.or_else(|| matched.and_then(|c| id_at(c, "wa_id"))),
        user_id.or_else(|| matched.and_then(|c| text_at(c, "user_id"))),
        matched.and_then(|c| c.get("profile")),
    )
}

/// A customer keyed on the business-scoped user id when known, else on the `wa_id`.
fn customer(
    wa_id: Option<String>,
    user_id: Option<String>,
    profile: Option<&Value>,
) -> Option<Contact> {
    let phone = wa_id
        .as_deref()
        .and_then(|digits| normalize_e164(&format!("+{digits}")));
    let (kind, external_id, aliases) = match (user_id, wa_id) {
        (Some(user_id), wa_id) => (
            IdentityKind::WhatsappBsuid,
            user_id,
            wa_id
                .map(|w| vec![(IdentityKind::WaId, w)])
                .unwrap_or_default(),
        ),
        (None, Some(wa_id)) => (IdentityKind::WaId, wa_id, Vec::new()),
        (None, None) => return None,
    };
    Some(Contact {
        kind: Some(kind),
        external_id,
        aliases,
        phone,
        name: profile.and_then(|p| text_at(p, "name")),
        username: profile.and_then(|p| text_at(p, "username")),
        ..Contact::default()
    })
}

/// The message's content by `type`.
fn content(
    message: &Value,
    id: String,
    contact: Contact,
    direction: Direction,
    at_ms: i64,
) -> EventKind {
    let kind = str_at(message, "type").unwrap_or("");
    let body = message.get(kind).unwrap_or(&Value::Null);
    let mut msg = InboundMessage {
        reply_to: message.get("context").and_then(|c| text_at(c, "id")),
        ..plain_message(id, contact, direction, at_ms)
    };
    match kind {
        "text" => msg.text = text_at(body, "body"),
        "image" | "video" | "audio" | "document" | "sticker" => {
            msg.text = text_at(body, "caption");
            msg.attachments.push(media(kind, body));
        }
        "location" | "contacts" => msg.attachments.push(Attachment {
            kind: kind.into(),
            data: Some(body.clone()),
            ..Attachment::default()
        }),
        "interactive" => {
            let reply_kind = str_at(body, "type").unwrap_or("interactive");
            let reply = body.get(reply_kind).unwrap_or(&Value::Null);
            if matches!(reply_kind, "button_reply" | "list_reply") {
                msg.kind = MessageKind::Postback;
                msg.text = text_at(reply, "title");
                let mut data = payload(reply.get("id"));
                if let Some(description) = text_at(reply, "description") {
                    data.insert("description".into(), description.into());
                }
                msg.attachments
                    .push(data_attachment(reply_kind, Value::Object(data)));
            } else {
                // Flow replies (`nfm_reply{name, body, response_json}`) and newer kinds.
                msg.text = text_at(reply, "body");
                msg.attachments
                    .push(data_attachment(reply_kind, reply.clone()));
            }
        }
        "button" => {
            msg.kind = MessageKind::Postback;
            msg.text = text_at(body, "text");
            let data = payload(body.get("payload"));
            msg.attachments
                .push(data_attachment("button", Value::Object(data)));
        }
        "reaction" => {
            if direction == Direction::Out {
                return ignored("reaction by the business".into());
            }
            let Some(message_id) = text_at(body, "message_id") else {
                return ignored("reaction without `message_id`".into());
            };
            return EventKind::Reaction {
                contact: msg.contact,
                message_id,
                // An empty emoji removes the reaction.
                emoji: text_at(body, "emoji"),
                at_ms,
            };
        }
        "unsupported" | "unknown" | "" => {
            let mut data = Map::new();
            for key in ["errors", "unsupported"] {
                if let Some(v) = message.get(key) {
                    data.insert(key.into(), v.clone());
                }
            }
            msg.attachments.push(Attachment {
                kind: "unsupported".into(),
                data: (!data.is_empty()).then_some(Value::Object(data)),
                ..Attachment::default()
            });
        }
        other => msg.attachments.push(Attachment {
            kind: other.into(),
            data: (!body.is_null()).then(|| body.clone()),
            ..Attachment::default()
        }),
    }
    if let Some(referral) = message.get("referral") {
        // Click-to-WhatsApp ads.
        msg.attachments
            .push(data_attachment("referral", referral.clone()));
    }
    EventKind::Message(msg)
}

/// `image|video|audio|document|sticker{id, mime_type, sha256, filename?, url?, voice?,
/// animated?}`.
fn media(kind: &str, body: &Value) -> Attachment {
    let mut flags = Map::new();
    for key in ["voice", "animated"] {
        if bool_at(body, key) {
            flags.insert(key.into(), true.into());
        }
    }
    Attachment {
        kind: kind.into(),
        url: text_at(body, "url"),
        media_id: id_at(body, "id"),
        mime_type: text_at(body, "mime_type"),
        filename: text_at(body, "filename"),
        sha256: text_at(body, "sha256"),
        data: (!flags.is_empty()).then_some(Value::Object(flags)),
    }
}

fn payload(value: Option<&Value>) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("payload".into(), value.cloned().unwrap_or(Value::Null));
    data
}

fn data_attachment(kind: &str, data: Value) -> Attachment {
    Attachment {
        kind: kind.into(),
        data: Some(data),
        ..Attachment::default()
    }
}

/// `statuses[]{id, status, timestamp, recipient_id?, recipient_user_id?, errors[]?}`.
fn status_event(status: &Value, time_ms: i64) -> EventKind {
    let Some(message_id) = text_at(status, "id") else {
        return ignored("status without `id`".into());
    };
    let name = str_at(status, "status").unwrap_or("");
    let delivery = match name {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        // A voice message was played: it was read, and there is no stronger state.
        "read" | "played" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return unknown(format!("whatsapp_business_account/statuses.{name}")),
    };
    EventKind::Status(StatusUpdate {
        message_id,
        status: delivery,
        at_ms: status.get("timestamp").and_then(ms_of).unwrap_or(time_ms),
        error: array_at(status, "errors").first().map(provider_error),
        recipient: id_at(status, "recipient_id").or_else(|| text_at(status, "recipient_user_id")),
    })
}

/// `{code, title, message, error_data{details}}` → code and `title: details`.
fn provider_error(error: &Value) -> ProviderError {
    let title = text_at(error, "title");
    let details = error
        .get("error_data")
        .and_then(|d| text_at(d, "details"))
        .or_else(|| text_at(error, "message"));
    let message = match (title, details) {
        (Some(t), Some(d)) if t != d => format!("{t}: {d}"),
        (Some(t), _) => t,
        (None, Some(d)) => d,
        (None, None) => String::new(),
    };
    ProviderError {
        code: id_at(error, "code").unwrap_or_else(|| "unknown".into()),
        message,
    }
}
