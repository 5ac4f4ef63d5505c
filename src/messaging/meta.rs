//! Meta webhook payloads (Messenger, Instagram, Page feed, WhatsApp Cloud API) → events.
//!
//! A body is `{object, entry: [...]}`; each entry is parsed on its own ([`parse_entry`]) because
//! the ingest stores and replays batches entry by entry. Within an entry:
//! - `messaging[]` and `standby[]` (handover: another app owns the thread) carry Messenger and
//!   Instagram DMs, echoes, receipts, postbacks and reactions;
//! - `changes[]{field, value}` carry Page feed comments, Instagram comments and everything
//!   WhatsApp (`meta_whatsapp.rs`). Instagram also sends one change as `field/value` directly under
//!   the entry; both shapes are read.
//!
//! Only a body that is not a JSON object, or lacks `object` or `entry[]`, is an error. Anything
//! else that is not understood becomes [`EventKind::Unknown`] or, when known and skipped on
//! purpose, [`EventKind::Ignored`] with the reason, so one odd item never loses its batch.
//!
//! Representation choices the applying code relies on:
//! - Echoes (`is_echo`) are [`Direction::Out`] messages whose contact is the *recipient*. Echoes
//!   of what masterz itself sent carry the `mid` the Send API returned: dedupe on it.
//! - Postbacks are [`MessageKind::Postback`] with the title as text and one attachment whose
//!   `kind` is `postback` and whose `data` is `{"payload": …}` (plus `"referral"` when present).
//!   A postback without a `mid` (older API versions) gets `postback:<sender>:<timestamp ms>`,
//!   which is stable across Meta's retries.
//! - Quick replies, referrals and Instagram story replies are extra attachments of kind
//!   `quick_reply` (`data: {"payload"}`), `referral` (`data`: the referral) and `story_reply`
//!   (`url`: the story, `data: {"id"}`).
//! - Instagram `is_deleted` → [`EventKind::Removed`]; `is_unsupported` → a message with no text
//!   and an attachment of kind `unsupported`, so the timeline shows that something came.
//! - Messenger `message_edit` and Facebook comment `verb: edited` → a message with
//!   `edited: true` and the same `external_id`.
//! - Comments by the Page or Instagram account itself are ignored (replying to them would loop).
//! - `at_ms` is the item's own time when it has one, else the entry's `time`; seconds and
//!   milliseconds are told apart by size (below 10^11 is seconds). `0` means no time was given.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::event::{
    AccountKey, Attachment, CommentThread, Contact, DeliveryStatus, Direction, EventKind,
    InboundEvent, InboundMessage, MessageKind, ParseError, StatusUpdate,
};
use crate::domain::IdentityKind;

#[path = "meta_whatsapp.rs"]
mod whatsapp;

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;

/// Parses a whole Meta webhook body (`object: page | instagram | whatsapp_business_account`, or
/// any other object, which yields [`EventKind::Unknown`] per entry).
///
/// Errors only when the body is not a JSON object, has no `object` or no `entry` array, or an
/// entry is not an object (see [`parse_entry`]).
pub fn parse(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    /// Only the envelope; entries stay raw until [`parse_entry`] reads them.
    #[derive(Deserialize)]
    struct Envelope<'a> {
        object: Option<Value>,
        #[serde(borrow)]
        entry: Option<&'a RawValue>,
    }
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError(format!("not a JSON object: {e}")))?;
    let object = envelope
        .object
        .as_ref()
        .and_then(Value::as_str)
        .ok_or_else(|| ParseError("no `object`".into()))?;
    let entries: Vec<&RawValue> = envelope
        .entry
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .ok_or_else(|| ParseError("no `entry` array".into()))?;
    let mut events = Vec::new();
    for entry in entries {
        events.extend(parse_entry(object, entry)?);
    }
    Ok(events)
}

/// Parses one `entry[]` item of a body whose `object` is `object`.
///
/// Errors only when the entry is not a JSON object.
pub fn parse_entry(object: &str, entry: &RawValue) -> Result<Vec<InboundEvent>, ParseError> {
    let entry: Value = serde_json::from_str(entry.get())
        .map_err(|e| ParseError(format!("`entry` item is not JSON: {e}")))?;
    if !entry.is_object() {
        return Err(ParseError("`entry` item is not an object".into()));
    }
    Ok(entry_events(object, &entry))
}

/// What every event of one entry shares.
struct Entry<'a> {
    object: &'a str,
    account: AccountKey,
    /// `entry.time`, in ms (0 when absent).
    time_ms: i64,
}

impl Entry<'_> {
    fn event(&self, kind: EventKind) -> InboundEvent {
        InboundEvent {
            account: self.account.clone(),
            kind,
        }
    }

    /// The entry id: the Page id or Instagram account id (for the self-comment check).
    fn id(&self) -> Option<&str> {
        self.account.entry_id.as_deref()
    }

    /// The identity kind of a messaging sender on this object.
    fn scoped_id_kind(&self) -> IdentityKind {
        if self.object == "instagram" {
            IdentityKind::Igsid
        } else {
            IdentityKind::Psid
        }
    }
}

fn entry_events(object: &str, entry: &Value) -> Vec<InboundEvent> {
    let ctx = Entry {
        object,
        account: AccountKey {
            entry_id: id_at(entry, "id"),
            phone_number_id: None,
        },
        time_ms: entry.get("time").and_then(ms_of).unwrap_or(0),
    };
    if !matches!(object, "page" | "instagram" | "whatsapp_business_account") {
        return vec![ctx.event(unknown(object.to_owned()))];
    }
    let mut events = Vec::new();
    if object != "whatsapp_business_account" {
        for key in ["messaging", "standby"] {
            for item in array_at(entry, key) {
                events.push(ctx.event(messaging_event(&ctx, item)));
            }
        }
    }
    // `changes[]`, or the single change written directly under the entry.
    let direct = entry.get("field").is_some().then_some(entry);
    for change in array_at(entry, "changes").iter().chain(direct) {
        let field = str_at(change, "field").unwrap_or("");
        let value = change.get("value").unwrap_or(&Value::Null);
        match (object, field) {
            ("whatsapp_business_account", _) => {
                events.extend(whatsapp::change_events(&ctx, field, value));
            }
            ("page", "feed") => events.push(ctx.event(feed_change(&ctx, value))),
            ("instagram", "comments" | "live_comments") => {
                events.push(ctx.event(instagram_comment(&ctx, value)));
            }
            _ => events.push(ctx.event(unknown(format!("{object}/{field}")))),
        }
    }
    let known = ["messaging", "standby", "changes", "field"];
    if !known.iter().any(|key| entry.get(key).is_some()) {
        events.push(ctx.event(unknown(format!("{object}/entry"))));
    }
    events
}

// ---- Messenger and Instagram messaging ---------------------------------------------------

/// One `messaging[]`/`standby[]` item: `{sender, recipient, timestamp, <one event object>}`.
fn messaging_event(ctx: &Entry<'_>, item: &Value) -> EventKind {
    let sender = item.get("sender").and_then(|s| id_at(s, "id"));
    let recipient = item.get("recipient").and_then(|r| id_at(r, "id"));
    let at_ms = item.get("timestamp").and_then(ms_of).unwrap_or(ctx.time_ms);
    let kind = ctx.scoped_id_kind();
    let contact = |id: String| Contact {
        kind: Some(kind),
        external_id: id,
        ..Contact::default()
    };

    if let Some(message) = item.get("message") {
        return messaging_message(message, sender, recipient, at_ms, contact);
    }
    // Every other event is from the customer.
    let event_key = item
        .as_object()
        .and_then(|o| {
            o.keys()
                .find(|k| !matches!(k.as_str(), "sender" | "recipient" | "timestamp"))
        })
        .map_or("", String::as_str);
    let Some(sender) = sender else {
        return ignored(format!("messaging `{event_key}` without a sender"));
    };
    let body = item.get(event_key).unwrap_or(&Value::Null);
    match event_key {
        "delivery" => watermark(body, sender, DeliveryStatus::Delivered),
        "read" => match text_at(body, "mid") {
            // Instagram names the message it read.
            Some(mid) => EventKind::Status(StatusUpdate {
                message_id: mid,
                status: DeliveryStatus::Read,
                at_ms,
                error: None,
                recipient: Some(sender),
            }),
            None => watermark(body, sender, DeliveryStatus::Read),
        },
        "postback" => postback(body, contact(sender), at_ms),
        "reaction" => {
            let Some(mid) = text_at(body, "mid") else {
                return ignored("reaction without `mid`".into());
            };
            let emoji = if str_at(body, "action") == Some("unreact") {
                None
            } else {
                text_at(body, "emoji").or_else(|| text_at(body, "reaction"))
            };
            EventKind::Reaction {
                contact: contact(sender),
                message_id: mid,
                emoji,
                at_ms,
            }
        }
        "message_edit" => {
            let Some(mid) = text_at(body, "mid") else {
                return ignored("message_edit without `mid`".into());
            };
            EventKind::Message(InboundMessage {
                text: text_at(body, "text"),
                edited: true,
                ..plain_message(mid, contact(sender), Direction::In, at_ms)
            })
        }
        "referral" => ignored("referral without a message".into()),
        "pass_thread_control" | "take_thread_control" | "request_thread_control" => {
            ignored(format!("handover `{event_key}`"))
        }
        _ => unknown(format!("{}/messaging.{event_key}", ctx.object)),
    }
}

/// `message{mid, text?, attachments[]?, is_echo?, is_deleted?, is_unsupported?, reply_to?,
/// quick_reply?, referral?}`.
fn messaging_message(
    message: &Value,
    sender: Option<String>,
    recipient: Option<String>,
    at_ms: i64,
    contact: impl Fn(String) -> Contact,
) -> EventKind {
    let Some(mid) = text_at(message, "mid") else {
        return ignored("message without `mid`".into());
    };
    if bool_at(message, "is_deleted") {
        return EventKind::Removed { external_id: mid };
    }
    let echo = bool_at(message, "is_echo");
    let (party, direction) = if echo {
        (recipient, Direction::Out)
    } else {
        (sender, Direction::In)
    };
    let Some(party) = party else {
        return ignored(if echo {
            "echo without a recipient".into()
        } else {
            "message without a sender".into()
        });
    };
    let mut attachments: Vec<Attachment> = array_at(message, "attachments")
        .iter()
        .map(messaging_attachment)
        .collect();
    if bool_at(message, "is_unsupported") {
        attachments.push(Attachment {
            kind: "unsupported".into(),
            ..Attachment::default()
        });
    }
    if let Some(quick_reply) = message.get("quick_reply") {
        attachments.push(Attachment {
            kind: "quick_reply".into(),
            data: Some(serde_json::json!({
                "payload": quick_reply.get("payload").cloned().unwrap_or(Value::Null)
            })),
            ..Attachment::default()
        });
    }
    if let Some(referral) = message.get("referral") {
        attachments.push(Attachment {
            kind: "referral".into(),
            data: Some(referral.clone()),
            ..Attachment::default()
        });
    }
    let reply = message.get("reply_to");
    if let Some(story) = reply.and_then(|r| r.get("story")) {
        attachments.push(Attachment {
            kind: "story_reply".into(),
            url: text_at(story, "url"),
            data: id_at(story, "id").map(|id| serde_json::json!({ "id": id })),
            ..Attachment::default()
        });
    }
    EventKind::Message(InboundMessage {
        text: text_at(message, "text"),
        attachments,
        reply_to: reply.and_then(|r| text_at(r, "mid")),
        ..plain_message(mid, contact(party), direction, at_ms)
    })
}

/// `attachments[]{type, payload{url, …}}`: the URL, and the rest of the payload as `data`.
fn messaging_attachment(attachment: &Value) -> Attachment {
    let payload = attachment.get("payload").filter(|p| p.is_object());
    let url = payload
        .and_then(|p| text_at(p, "url"))
        .or_else(|| text_at(attachment, "url"));
    let data = payload.and_then(|p| {
        let mut rest = p.as_object()?.clone();
        rest.remove("url");
        (!rest.is_empty()).then_some(Value::Object(rest))
    });
    Attachment {
        kind: text_at(attachment, "type").unwrap_or_else(|| "unknown".into()),
        url,
        data,
        ..Attachment::default()
    }
}

/// Messenger `delivery{mids[]?, watermark}` / `read{watermark}`.
fn watermark(body: &Value, contact: String, status: DeliveryStatus) -> EventKind {
    let watermark_ms = body.get("watermark").and_then(ms_of);
    let mids: Vec<String> = array_at(body, "mids")
        .iter()
        .filter_map(|m| m.as_str().filter(|m| !m.is_empty()).map(str::to_owned))
        .collect();
    if watermark_ms.is_none() && mids.is_empty() {
        return ignored(format!("{} without watermark or mids", status.as_str()));
    }
    EventKind::Watermark {
        contact,
        status,
        watermark_ms: watermark_ms.unwrap_or(0),
        mids,
    }
}

/// `postback{mid?, title, payload, referral?}`.
fn postback(body: &Value, contact: Contact, at_ms: i64) -> EventKind {
    let mid =
        text_at(body, "mid").unwrap_or_else(|| format!("postback:{}:{at_ms}", contact.external_id));
    let mut data = serde_json::Map::new();
    data.insert(
        "payload".into(),
        body.get("payload").cloned().unwrap_or(Value::Null),
    );
    if let Some(referral) = body.get("referral") {
        data.insert("referral".into(), referral.clone());
    }
    EventKind::Message(InboundMessage {
        kind: MessageKind::Postback,
        text: text_at(body, "title"),
        attachments: vec![Attachment {
            kind: "postback".into(),
            data: Some(Value::Object(data)),
            ..Attachment::default()
        }],
        ..plain_message(mid, contact, Direction::In, at_ms)
    })
}

// ---- Comments ----------------------------------------------------------------------------

/// Page `feed` change: `value{item, verb, comment_id, post_id, parent_id, from{id,name},
/// message, created_time, photo?, video?}`.
fn feed_change(ctx: &Entry<'_>, value: &Value) -> EventKind {
    let item = str_at(value, "item").unwrap_or("");
    if item != "comment" {
        return ignored(format!("feed item `{item}` is not a comment"));
    }
    let Some(comment_id) = id_at(value, "comment_id") else {
        return ignored("comment without `comment_id`".into());
    };
    let verb = str_at(value, "verb").unwrap_or("");
    match verb {
        "add" | "edited" => {}
        "remove" => {
            return EventKind::Removed {
                external_id: comment_id,
            };
        }
        "hide" | "unhide" => return ignored(format!("comment {verb}")),
        _ => return unknown(format!("page/feed.comment.{verb}")),
    }
    let from = value.get("from").unwrap_or(&Value::Null);
    let Some(from_id) = id_at(from, "id") else {
        return ignored("comment without `from`".into());
    };
    if Some(from_id.as_str()) == ctx.id() {
        return ignored("comment by the Page itself".into());
    }
    let post_id = id_at(value, "post_id");
    let parent_id = id_at(value, "parent_id").filter(|p| Some(p) != post_id.as_ref());
    let attachments = [("photo", "image"), ("video", "video")]
        .into_iter()
        .filter_map(|(key, kind)| {
            Some(Attachment {
                kind: kind.into(),
                url: Some(text_at(value, key)?),
                ..Attachment::default()
            })
        })
        .collect();
    let contact = Contact {
        kind: Some(IdentityKind::Psid),
        external_id: from_id,
        name: text_at(from, "name"),
        ..Contact::default()
    };
    let at_ms = value
        .get("created_time")
        .and_then(ms_of)
        .unwrap_or(ctx.time_ms);
    EventKind::Message(InboundMessage {
        kind: MessageKind::Comment,
        text: text_at(value, "message"),
        attachments,
        thread: Some(CommentThread { post_id, parent_id }),
        edited: verb == "edited",
        ..plain_message(comment_id, contact, Direction::In, at_ms)
    })
}

/// Instagram `comments`/`live_comments` change: `value{id, text, from{id, username},
/// media{id, media_product_type}, parent_id?, timestamp?}`.
fn instagram_comment(ctx: &Entry<'_>, value: &Value) -> EventKind {
    let Some(comment_id) = id_at(value, "id") else {
        return ignored("comment without `id`".into());
    };
    let from = value.get("from").unwrap_or(&Value::Null);
    let Some(from_id) = id_at(from, "id") else {
        return ignored("comment without `from`".into());
    };
    if Some(from_id.as_str()) == ctx.id() {
        return ignored("comment by the Instagram account itself".into());
    }
    let contact = Contact {
        kind: Some(IdentityKind::Igsid),
        external_id: from_id,
        username: text_at(from, "username"),
        ..Contact::default()
    };
    let thread = CommentThread {
        post_id: value.get("media").and_then(|m| id_at(m, "id")),
        parent_id: id_at(value, "parent_id"),
    };
    let at_ms = value
        .get("timestamp")
        .and_then(ms_of)
        .unwrap_or(ctx.time_ms);
    EventKind::Message(InboundMessage {
        kind: MessageKind::Comment,
        text: text_at(value, "text"),
        thread: Some(thread),
        ..plain_message(comment_id, contact, Direction::In, at_ms)
    })
}

// ---- Helpers, shared with the WhatsApp module and `super::waha` ----------------------------

/// A message with only the required parts; the rest is filled in with struct update syntax.
fn plain_message(
    external_id: String,
    contact: Contact,
    direction: Direction,
    at_ms: i64,
) -> InboundMessage {
    InboundMessage {
        external_id,
        contact,
        direction,
        kind: MessageKind::Message,
        text: None,
        attachments: Vec::new(),
        reply_to: None,
        thread: None,
        edited: false,
        at_ms,
    }
}

pub(super) fn ignored(reason: String) -> EventKind {
    EventKind::Ignored { reason }
}

pub(super) fn unknown(what: String) -> EventKind {
    EventKind::Unknown { what }
}

/// `v[key]` as a string.
pub(super) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

/// `v[key]` as a non-empty owned string.
pub(super) fn text_at(v: &Value, key: &str) -> Option<String> {
    str_at(v, key).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `v[key]` as an id: a non-empty string, or an integer written as one.
pub(super) fn id_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// `v[key]` as an array (empty when absent or not an array).
fn array_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn bool_at(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool) == Some(true)
}

/// A Unix time in seconds or milliseconds, as a number or a numeric string, in ms.
pub(super) fn ms_of(v: &Value) -> Option<i64> {
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            // Saturating float-to-int cast: a huge or fractional value cannot panic.
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?,
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    Some(to_ms(n))
}

/// Seconds or milliseconds → ms: below 10^11 is seconds (10^11 s is the year 5138, 10^11 ms
/// is 1973).
fn to_ms(n: i64) -> i64 {
    const LIMIT: i64 = 100_000_000_000;
    if (-LIMIT..LIMIT).contains(&n) {
        n.saturating_mul(1000)
    } else {
        n
    }
}
