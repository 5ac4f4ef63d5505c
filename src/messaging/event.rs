//! What a provider's webhook says, in masterz's terms: the parsers in [`super::meta`] and
//! [`super::waha`] turn wire payloads into [`InboundEvent`]s, and [`super::process`] applies them
//! to the store. Nothing here knows a wire format or a database.

use serde::{Deserialize, Serialize};

use crate::domain::IdentityKind;

/// One thing that happened on a channel.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundEvent {
    /// Which channel account it belongs to, as the provider names it.
    pub account: AccountKey,
    /// What happened.
    pub kind: EventKind,
}

/// The provider's ids that route an event to a channel account: Meta's entry id (Page id,
/// Instagram account id, WhatsApp Business Account id) and, for WhatsApp, the
/// `metadata.phone_number_id` of the change. WAHA events are routed by URL and carry neither.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountKey {
    /// `entry[].id`.
    pub entry_id: Option<String>,
    /// `changes[].value.metadata.phone_number_id` (WhatsApp Cloud API).
    pub phone_number_id: Option<String>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// A message or comment, from the customer or (an echo) from the business.
    Message(InboundMessage),
    /// A comment was removed (Facebook `verb: remove`).
    Removed {
        /// The comment's or message's provider id.
        external_id: String,
    },
    /// A receipt for one message the business sent: WhatsApp `statuses[]`, WAHA `message.ack`,
    /// Instagram `read{mid}`.
    Status(StatusUpdate),
    /// Messenger's `delivery`/`read`: every message to `contact` sent at or before `watermark_ms`
    /// (and those named in `mids`) reached `status`.
    Watermark {
        /// The customer (PSID) whose receipt it is.
        contact: String,
        /// `Delivered` or `Read`.
        status: DeliveryStatus,
        /// Unix ms.
        watermark_ms: i64,
        /// Message ids named explicitly (`delivery.mids`), possibly empty.
        mids: Vec<String>,
    },
    /// A reaction to a message (Instagram `reaction`, WhatsApp `type: reaction`, WAHA
    /// `message.reaction`). `emoji: None` removes it.
    Reaction {
        /// Who reacted.
        contact: Contact,
        /// The message reacted to.
        message_id: String,
        /// The emoji, or `None` when the reaction was removed.
        emoji: Option<String>,
        /// Unix ms.
        at_ms: i64,
    },
    /// A WAHA session changed state (`STOPPED|STARTING|SCAN_QR_CODE|WORKING|FAILED`).
    SessionStatus {
        /// The state as WAHA names it.
        status: String,
    },
    /// A known event that masterz deliberately skips, e.g. a comment by the Page itself (it would
    /// loop), a feed item that is not a comment, `message.any` duplicates.
    Ignored {
        /// Why, for the integration log.
        reason: String,
    },
    /// An event type masterz does not know: logged and ignored, never an error.
    Unknown {
        /// The provider's name for it (`object/field`, `event`…).
        what: String,
    },
}

/// A message or comment.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundMessage {
    /// The provider's id: `mid`, `wamid.…`, `comment_id`, WAHA `id`. Unique per channel account.
    pub external_id: String,
    /// The customer (for an echo: the recipient).
    pub contact: Contact,
    /// `In` from the customer; `Out` for echoes of what the business sent (from another app,
    /// Meta Business Suite, the phone).
    pub direction: Direction,
    /// Message, comment, postback…
    pub kind: MessageKind,
    /// The text: message text, caption, comment text, postback title, button text.
    pub text: Option<String>,
    /// Attachments, as references (URLs or provider media ids); never downloaded here.
    pub attachments: Vec<Attachment>,
    /// The provider id of the message this one answers or quotes, if any.
    pub reply_to: Option<String>,
    /// For comments: the post or media commented on, and the parent comment of a reply.
    pub thread: Option<CommentThread>,
    /// An edit of an earlier message/comment with the same `external_id` (Facebook `edited`):
    /// replace its text instead of adding a message.
    pub edited: bool,
    /// When the provider says it was sent (Unix ms).
    pub at_ms: i64,
}

/// Who a message is from (or, for echoes, to).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contact {
    /// The identity that keys the customer on this channel account: PSID, IGSID, WhatsApp
    /// business-scoped user id (when present) or `wa_id`, WAHA chat id.
    pub kind: Option<IdentityKind>,
    /// Its value.
    pub external_id: String,
    /// More ids of the same person on this channel account, e.g. the `wa_id` when the key is the
    /// business-scoped user id.
    pub aliases: Vec<(IdentityKind, String)>,
    /// The phone number in E.164 (`+` and digits) when the channel tells it (WhatsApp `wa_id`,
    /// WAHA `…@c.us`). This is what joins a caller and a WhatsApp contact into one customer.
    pub phone: Option<String>,
    /// Display name (WhatsApp `profile.name`, Facebook `from.name`, WAHA `notifyName`).
    pub name: Option<String>,
    /// Username (Instagram `from.username`, WhatsApp `username`).
    pub username: Option<String>,
    /// Profile picture URL.
    pub avatar_url: Option<String>,
    /// Locale, e.g. `en_US`.
    pub locale: Option<String>,
}

/// `in` or `out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    In,
    /// From the business.
    Out,
}

impl Direction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// What kind of item a message is in the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A direct message.
    Message,
    /// A public comment on a Facebook post or Instagram media.
    Comment,
    /// A button press (Messenger/Instagram postback, WhatsApp `button`/`interactive` reply).
    Postback,
}

impl MessageKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Comment => "comment",
            Self::Postback => "postback",
        }
    }
}

/// An attachment reference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `audio`, `video`, `file`, `document`, `sticker`, `location`, `contacts`,
    /// `reel`, `post`, `fallback`…, as the provider names it.
    #[serde(rename = "type")]
    pub kind: String,
    /// A URL (Messenger/Instagram CDN, WAHA `/api/files/…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A provider media id to fetch later (WhatsApp Cloud API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// MIME type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// File name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// SHA-256 the provider gives for the media.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Anything else worth keeping, as the provider sent it (a location's coordinates, shared
    /// contacts, an interactive reply's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// Where a comment sits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentThread {
    /// The Facebook post id or Instagram media id.
    pub post_id: Option<String>,
    /// The parent comment, for a reply to a comment.
    pub parent_id: Option<String>,
}

/// A receipt for a message the business sent.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// The provider's id of the message (`wamid`, WAHA id, Instagram `mid`).
    pub message_id: String,
    /// The new status.
    pub status: DeliveryStatus,
    /// When (Unix ms).
    pub at_ms: i64,
    /// For `Failed`: the provider's error code and text (e.g. `131047`, "Re-engagement message").
    pub error: Option<ProviderError>,
    /// The recipient's id, when given (WhatsApp `recipient_id`).
    pub recipient: Option<String>,
}

/// A provider's error: code and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    /// Numeric code (`131047`, `190`…), as text so WAHA's and others fit.
    pub code: String,
    /// Human text (title and message/details).
    pub message: String,
}

/// How far an outbound message got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by the provider.
    Sent,
    /// Reached the device.
    Delivered,
    /// Read.
    Read,
    /// The provider gave up (with a reason).
    Failed,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A payload that is not what its provider documents (not JSON, no `object`/`event`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed webhook payload: {0}")]
pub struct ParseError(pub String);
