//! Queueing replies: what an agent's reply becomes (a `queued` message and an outbox row, in the
//! caller's transaction), whom it goes to on the channel, read receipts, and the messaging window.

use std::time::Duration;

use serde::Serialize;

use super::outbox::Outgoing;
use crate::domain::{ChannelKind, CompanyId, IdentityKind, UserId};
use crate::store::messages::{self as msgs, ChannelMessageNew};
use crate::store::{self, Ex, now_ms, outbox};

/// The standard messaging window after the customer's last message.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Messenger's and Instagram's HUMAN_AGENT tag window.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// A reply an agent asked for.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Text.
    Text(String),
    /// A WhatsApp template.
    Template {
        /// Name.
        name: String,
        /// Language code.
        language: String,
        /// Components.
        components: Option<serde_json::Value>,
    },
}

/// Why a reply cannot be queued (the API answers 422 or 409 with this text).
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The conversation is not on a messaging channel.
    #[error("the conversation has no messaging channel")]
    NoChannel,
    /// The channel has no id for this customer.
    #[error("the customer has no identity on this channel to send to")]
    NoRecipient,
    /// A template on a channel without templates.
    #[error("templates are only sent on WhatsApp Cloud API channels")]
    TemplateUnsupported,
    /// The channel's credentials were refused; they must be updated first.
    #[error("the channel needs reconnection: update its credentials")]
    NeedsReconnection,
    /// The database.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// The reply window of a conversation whose customer last wrote at `last_inbound` (Unix ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplyWindow {
    /// Whether a free-form reply is allowed now.
    pub open: bool,
    /// When the standard (24-hour) window closes.
    pub expires_at: Option<crate::domain::Timestamp>,
    /// Messenger/Instagram with the HUMAN_AGENT tag enabled: an agent may still reply until then.
    pub human_agent_until: Option<crate::domain::Timestamp>,
}

impl ReplyWindow {
    /// The window for a conversation on a channel of `kind` (`human_agent`: the tag is enabled).
    pub fn compute(
        kind: Option<ChannelKind>,
        human_agent: bool,
        last_inbound: Option<i64>,
        now: i64,
    ) -> Option<Self> {
        let kind = kind?;
        if kind == ChannelKind::SipTrunk || kind == ChannelKind::Openai {
            return None;
        }
        // WAHA is a WhatsApp client: no platform window applies.
        if kind == ChannelKind::Waha {
            return Some(Self {
                open: true,
                expires_at: None,
                human_agent_until: None,
            });
        }
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let expires = last_inbound.map(|t| t + ms(WINDOW));
        let tagged = (human_agent
            && matches!(kind, ChannelKind::Messenger | ChannelKind::Instagram))
        .then(|| last_inbound.map(|t| t + ms(HUMAN_AGENT_WINDOW)))
        .flatten();
        Some(Self {
            open: expires.is_some_and(|e| now < e) || tagged.is_some_and(|e| now < e),
            expires_at: expires.map(crate::domain::Timestamp),
            human_agent_until: tagged.map(crate::domain::Timestamp),
        })
    }
}

/// Whether the channel account has Messenger's HUMAN_AGENT tag enabled (`settings.human_agent_tag`).
pub fn human_agent_enabled(account: &store::channels::ChannelAccount) -> bool {
    account
        .settings
        .0
        .get("human_agent_tag")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Queues a reply in `conversation` (an agent's, or an AI auto-reply with no `user`): the
/// `queued` message and its outbox row, in the caller's transaction. Returns the message id.
pub async fn queue_reply(
    ex: &mut Ex<'_>,
    company: CompanyId,
    conversation: &store::conversations::Conversation,
    user: Option<UserId>,
    reply: &Reply,
) -> Result<i64, ReplyError> {
    let account_id = conversation
        .channel_account_id
        .ok_or(ReplyError::NoChannel)?;
    let account = store::channels::get(ex, company, account_id)
        .await?
        .ok_or(ReplyError::NoChannel)?;
    let kind = ChannelKind::parse(&account.kind).ok_or(ReplyError::NoChannel)?;
    if !matches!(
        kind,
        ChannelKind::Messenger
            | ChannelKind::Instagram
            | ChannelKind::WhatsappCloud
            | ChannelKind::Waha
    ) {
        return Err(ReplyError::NoChannel);
    }
    if account.status == "needs_reconnection" {
        return Err(ReplyError::NeedsReconnection);
    }
    let now = now_ms();
    let latest_in = latest_inbound(ex, company, conversation.id).await?;
    let (outgoing, body) = match reply {
        Reply::Template {
            name,
            language,
            components,
        } => {
            if kind != ChannelKind::WhatsappCloud {
                return Err(ReplyError::TemplateUnsupported);
            }
            let to = recipient(ex, company, conversation.customer_id, account_id, kind).await?;
            (
                Outgoing::Template {
                    to,
                    name: name.clone(),
                    language: language.clone(),
                    components: components.clone(),
                },
                format!("[template {name} ({language})]"),
            )
        }
        Reply::Text(text) => {
            // A customer known only from a comment is answered with a private reply to it.
            let out = match &latest_in {
                Some(m)
                    if m.kind == "comment"
                        && matches!(kind, ChannelKind::Messenger | ChannelKind::Instagram) =>
                {
                    Outgoing::PrivateReply {
                        comment_id: m.external_id.clone().unwrap_or_default(),
                        text: text.clone(),
                    }
                }
                _ => {
                    let to =
                        recipient(ex, company, conversation.customer_id, account_id, kind).await?;
                    let window = ReplyWindow::compute(
                        Some(kind),
                        human_agent_enabled(&account),
                        conversation.last_inbound_at.map(|t| t.0),
                        now,
                    );
                    let human_agent = window.is_some_and(|w| {
                        w.expires_at.is_some_and(|e| now >= e.0)
                            && w.human_agent_until.is_some_and(|h| now < h.0)
                    });
                    Outgoing::Text {
                        to,
                        text: text.clone(),
                        human_agent,
                    }
                }
            };
            (out, text.clone())
        }
    };
    let message = msgs::insert(
        ex,
        company,
        &ChannelMessageNew {
            conversation_id: conversation.id,
            customer_id: conversation.customer_id,
            channel_account_id: account_id,
            direction: "out",
            kind: "message",
            sender_user_id: user,
            body: Some(&body),
            attachments: None,
            reply_to: None,
            thread: None,
            status: "queued",
            external_id: None,
            at: now,
        },
    )
    .await?
    .ok_or_else(|| store::StoreError::Conflict("message".into()))?;
    outbox::enqueue(
        ex,
        company,
        account_id,
        Some(message),
        "send",
        &serde_json::to_value(&outgoing).unwrap_or_default(),
    )
    .await?;
    Ok(message)
}

/// Queues a read receipt for the customer's latest message in `conversation`; false when there
/// is nothing to mark.
pub async fn queue_mark_read(
    ex: &mut Ex<'_>,
    company: CompanyId,
    conversation: &store::conversations::Conversation,
) -> Result<bool, ReplyError> {
    let account_id = conversation
        .channel_account_id
        .ok_or(ReplyError::NoChannel)?;
    let account = store::channels::get(ex, company, account_id)
        .await?
        .ok_or(ReplyError::NoChannel)?;
    let kind = ChannelKind::parse(&account.kind).ok_or(ReplyError::NoChannel)?;
    let Some(latest) = latest_inbound(ex, company, conversation.id).await? else {
        return Ok(false);
    };
    let (Some(message_id), false) = (latest.external_id, latest.kind == "comment") else {
        return Ok(false);
    };
    let to = recipient(ex, company, conversation.customer_id, account_id, kind).await?;
    outbox::enqueue(
        ex,
        company,
        account_id,
        None,
        "mark_read",
        &serde_json::to_value(Outgoing::MarkRead { to, message_id }).unwrap_or_default(),
    )
    .await?;
    Ok(true)
}

async fn latest_inbound(
    ex: &mut Ex<'_>,
    company: CompanyId,
    conversation: i64,
) -> store::Result<Option<msgs::Message>> {
    Ok(msgs::list(ex, company, conversation, None, 50)
        .await?
        .into_iter()
        .find(|m| m.direction == "in"))
}

/// The customer's id to send to on `account`.
async fn recipient(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    account: i64,
    kind: ChannelKind,
) -> Result<String, ReplyError> {
    let ids = store::customers::identities(ex, company, customer).await?;
    let on = |k: IdentityKind| {
        ids.iter()
            .find(|i| i.kind == k.as_str() && i.channel_account_id == Some(account))
            .map(|i| i.external_id.clone())
    };
    let found = match kind {
        ChannelKind::Messenger => on(IdentityKind::Psid),
        ChannelKind::Instagram => on(IdentityKind::Igsid),
        ChannelKind::WhatsappCloud => on(IdentityKind::WaId)
            .or_else(|| on(IdentityKind::WhatsappBsuid))
            // A customer known by phone (a caller) can be written to on WhatsApp.
            .or_else(|| {
                ids.iter()
                    .find(|i| i.kind == IdentityKind::Phone.as_str())
                    .map(|i| i.external_id.trim_start_matches('+').to_owned())
            }),
        ChannelKind::Waha => on(IdentityKind::WahaChatId).or_else(|| {
            ids.iter()
                .find(|i| i.kind == IdentityKind::Phone.as_str())
                .map(|i| format!("{}@c.us", i.external_id.trim_start_matches('+')))
        }),
        _ => None,
    };
    found.ok_or(ReplyError::NoRecipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn the_window_is_24_hours_and_7_days_with_the_tag() {
        let wa = Some(ChannelKind::WhatsappCloud);
        let w = ReplyWindow::compute(wa, false, Some(0), 23 * H).unwrap();
        assert!(w.open);
        assert_eq!(w.expires_at.map(|t| t.0), Some(24 * H));
        assert!(
            !ReplyWindow::compute(wa, false, Some(0), 25 * H)
                .unwrap()
                .open
        );
        // The tag is Messenger's and Instagram's; WhatsApp ignores it.
        assert!(
            !ReplyWindow::compute(wa, true, Some(0), 25 * H)
                .unwrap()
                .open
        );
        let fb = Some(ChannelKind::Messenger);
        let w = ReplyWindow::compute(fb, true, Some(0), 25 * H).unwrap();
        assert!(w.open);
        assert_eq!(w.human_agent_until.map(|t| t.0), Some(7 * 24 * H));
        assert!(
            !ReplyWindow::compute(fb, true, Some(0), 7 * 24 * H + 1)
                .unwrap()
                .open
        );
        // Never written: closed. WAHA has no platform window. Trunks have no window at all.
        assert!(!ReplyWindow::compute(fb, false, None, 0).unwrap().open);
        assert!(
            ReplyWindow::compute(Some(ChannelKind::Waha), false, None, 0)
                .unwrap()
                .open
        );
        assert_eq!(
            ReplyWindow::compute(Some(ChannelKind::SipTrunk), false, Some(0), 0),
            None
        );
    }
}
