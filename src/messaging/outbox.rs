//! Sending: agents' replies and read receipts go to the `outbox` table in the same transaction as
//! the `queued` message; a worker sends due rows through [`super::clients`], logs every call in
//! `integration_logs` (redacted), and records the outcome:
//! - success: the message is `sent` with the provider's id (receipts that came first apply now);
//! - a rate limit or a transient error: another attempt after `Retry-After`, or after an
//!   exponential backoff with jitter, up to `outbox_max_attempts`;
//! - an expired token (190): the channel account needs reconnection and the message fails;
//! - outside the messaging window (131047) or any other permanent error: the message fails with
//!   the provider's reason.
//!
//! [`step`] sends what is due once; tests call it directly.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clients::{Credentials, Request, SendError};
use crate::agents::ServerFrame;
use crate::domain::{ChannelKind, CompanyId, IdentityKind};
use crate::http::AppState;
use crate::secrets::Secret;
use crate::store::integration_logs::{self, NewLog};
use crate::store::messages as msgs;
use crate::store::outbox::{self, Item};
use crate::store::{self, Ex, now_ms};

/// How long a claimed row is reserved for the worker that claimed it.
const LEASE: Duration = Duration::from_secs(60);
/// The first retry waits this long; each further one twice as long.
const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Longest wait between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// What an outbox row sends (its `payload`), decided when it is queued.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outgoing {
    /// A direct message to the customer's id on the channel.
    Text {
        /// PSID, IGSID, WhatsApp number digits or BSUID, WAHA chat id.
        to: String,
        /// Text.
        text: String,
        /// Messenger/Instagram: send with the HUMAN_AGENT tag (outside 24 h, within 7 days).
        #[serde(default)]
        human_agent: bool,
    },
    /// A private reply to a Facebook or Instagram comment.
    PrivateReply {
        /// The comment.
        comment_id: String,
        /// Text.
        text: String,
    },
    /// A WhatsApp template (for replies outside the 24-hour window).
    Template {
        /// Recipient.
        to: String,
        /// Template name.
        name: String,
        /// Language code.
        language: String,
        /// Components with parameters.
        components: Option<serde_json::Value>,
    },
    /// Look up a Messenger/Instagram customer's name, picture and locale (P6).
    Profile {
        /// PSID or IGSID.
        id: String,
        /// An Instagram account (other fields).
        instagram: bool,
    },
    /// Mark the customer's messages read.
    MarkRead {
        /// The customer's id on the channel.
        to: String,
        /// The latest inbound message's provider id.
        message_id: String,
    },
}

/// Starts the outbox worker.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = step(&state).await {
                tracing::error!(error = %e, "outbox step failed");
            }
            let wait = match next_due(&state).await {
                Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)),
                None => Duration::from_secs(30),
            }
            .clamp(Duration::from_millis(50), Duration::from_secs(30));
            tokio::select! {
                () = state.messaging.outbound.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

async fn next_due(state: &AppState) -> Option<i64> {
    let mut conn = state.db.conn().await.ok()?;
    outbox::next_due(&mut conn.ex()).await.ok().flatten()
}

/// Sends every row due now, one at a time; returns how many were attempted.
pub async fn step(state: &AppState) -> store::Result<usize> {
    let mut attempted = 0;
    loop {
        let due = {
            let mut conn = state.db.conn().await?;
            outbox::due(&mut conn.ex(), now_ms(), 20).await?
        };
        if due.is_empty() {
            return Ok(attempted);
        }
        let mut claimed_any = false;
        for item in due {
            let claimed = {
                let mut conn = state.db.conn().await?;
                let lease = now_ms() + i64::try_from(LEASE.as_millis()).unwrap_or(60_000);
                outbox::claim(&mut conn.ex(), &item, lease).await?
            };
            if claimed {
                claimed_any = true;
                attempted += 1;
                send_one(state, &item).await?;
            }
        }
        if !claimed_any {
            return Ok(attempted);
        }
    }
}

/// The message id of `item` as a realtime change, when it has one.
async fn send_one(state: &AppState, item: &Item) -> store::Result<()> {
    let company = item.company_id;
    let attempts = item.attempts + 1;
    let mut conn = state.db.conn().await?;
    let account = store::channels::get(&mut conn.ex(), company, item.channel_account_id).await?;
    let creds = store::channels::credentials(
        &mut conn.ex(),
        &state.keyring,
        company,
        item.channel_account_id,
    )
    .await?;
    drop(conn);
    let outgoing: Result<Outgoing, _> = serde_json::from_str(&item.payload);
    let (Some(account), Ok(outgoing)) = (account, outgoing) else {
        return finish(
            state,
            item,
            Verdict::Fail("the channel account or the queued payload is gone".into()),
        )
        .await;
    };
    let creds = credentials(creds.as_ref().map(|c| c.expose()));
    if let Outgoing::Profile { id, instagram } = &outgoing {
        let (result, exchange) = state
            .messaging
            .clients
            .fetch_profile(id, *instagram, &creds)
            .await;
        log_exchange(state, item, exchange).await?;
        let verdict = match result {
            Ok(profile) => {
                save_profile(state, item, id, *instagram, &profile).await?;
                Verdict::Sent(None)
            }
            Err(e) => verdict_for(state, e, attempts),
        };
        return finish(state, item, verdict).await;
    }
    let Some(request) = request_for(&account, &outgoing) else {
        return finish(
            state,
            item,
            Verdict::Fail(format!(
                "cannot send {} on a {} channel",
                kind_name(&outgoing),
                account.kind
            )),
        )
        .await;
    };
    let (result, exchange) = state.messaging.clients.send(&request, &creds).await;
    log_exchange(state, item, exchange).await?;
    let verdict = match result {
        Ok(sent) => Verdict::Sent(sent.message_id),
        Err(e) => verdict_for(state, e, attempts),
    };
    finish(state, item, verdict).await
}

async fn log_exchange(
    state: &AppState,
    item: &Item,
    exchange: super::clients::Exchange,
) -> store::Result<()> {
    let log = NewLog {
        company_id: Some(item.company_id),
        channel_account_id: Some(item.channel_account_id),
        direction: "out",
        provider: exchange.provider,
        method: exchange.method,
        endpoint: exchange.endpoint,
        status: exchange.status.map(i32::from),
        duration_ms: Some(exchange.duration_ms),
        request_headers: Some(exchange.request_headers.to_string()),
        request_body: exchange.request_body,
        response_body: exchange.response_body,
        error: exchange.error,
        state: "done",
        message_id: item.message_id,
        created_at: now_ms(),
    };
    let mut conn = state.db.conn().await?;
    integration_logs::insert(&mut conn.ex(), &log).await?;
    Ok(())
}

fn verdict_for(state: &AppState, e: SendError, attempts: i32) -> Verdict {
    let reason = describe(&e);
    match e {
        SendError::AuthExpired(_) => Verdict::Reconnect(reason),
        SendError::RateLimited { retry_after, .. } if attempts < max_attempts(state) => {
            Verdict::Retry(
                retry_after
                    .unwrap_or_else(|| backoff(attempts))
                    .min(Duration::from_secs(3600)),
                reason,
            )
        }
        SendError::Transient(_) if attempts < max_attempts(state) => {
            Verdict::Retry(backoff(attempts), reason)
        }
        _ => Verdict::Fail(reason),
    }
}

/// Stores what the Graph API says about a customer on the identity and the customer (P6).
async fn save_profile(
    state: &AppState,
    item: &Item,
    id: &str,
    instagram: bool,
    p: &super::clients::Profile,
) -> store::Result<()> {
    let kind = if instagram {
        IdentityKind::Igsid
    } else {
        IdentityKind::Psid
    };
    let profile = msgs::ChannelProfile {
        name: p.name.as_deref(),
        username: p.username.as_deref(),
        avatar_url: p.avatar_url.as_deref(),
        locale: p.locale.as_deref(),
    };
    let (company, account) = (item.company_id, Some(item.channel_account_id));
    let mut tx = state.db.begin().await?;
    let found =
        store::customers::find_identity(&mut tx.ex(), company, kind.as_str(), account, id).await?;
    if let Some(identity) = found {
        let customer = identity.customer_id;
        msgs::link_identity(
            &mut tx.ex(),
            company,
            customer,
            kind.as_str(),
            account,
            id,
            &profile,
        )
        .await?;
        msgs::refresh_customer(&mut tx.ex(), company, customer, &profile).await?;
    }
    tx.commit().await
}

fn max_attempts(state: &AppState) -> i32 {
    i32::try_from(state.config.outbox_max_attempts.max(1)).unwrap_or(i32::MAX)
}

fn kind_name(o: &Outgoing) -> &'static str {
    match o {
        Outgoing::Text { .. } => "a text",
        Outgoing::PrivateReply { .. } => "a private reply",
        Outgoing::Template { .. } => "a template",
        Outgoing::MarkRead { .. } => "a read receipt",
        Outgoing::Profile { .. } => "a profile look-up",
    }
}

/// The message that a failure leaves on the message, with the provider's code.
fn describe(e: &SendError) -> String {
    let p = e.provider_error();
    let what = match e {
        SendError::AuthExpired(_) => {
            "the channel's access token was refused; reconnect the channel"
        }
        SendError::WindowClosed(_) => {
            "outside the messaging window; a WhatsApp reply needs a template"
        }
        SendError::RateLimited { .. } => "rate limited",
        SendError::Transient(_) => "temporary provider error",
        SendError::Permanent(_) => "refused by the provider",
    };
    format!("{what} ({}: {})", p.code, p.message)
}

/// Exponential backoff with ±25 % jitter, so rows that failed together do not retry together.
pub fn backoff(attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    let base = BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX);
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let unit = f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX); // 0..=1
    base.mul_f64(0.75 + unit * 0.5)
}

enum Verdict {
    Sent(Option<String>),
    Retry(Duration, String),
    Reconnect(String),
    Fail(String),
}

async fn finish(state: &AppState, item: &Item, verdict: Verdict) -> store::Result<()> {
    let company = item.company_id;
    let mut tx = state.db.begin().await?;
    let mut channel_changed = false;
    match &verdict {
        Verdict::Sent(external_id) => {
            outbox::done(&mut tx.ex(), item.id).await?;
            if let Some(m) = item.message_id {
                if let Some(ext) = external_id {
                    // An echo of this very message may have been stored first; it is the same
                    // message, so the echo row gives way.
                    dedupe_echo(&mut tx.ex(), company, item.channel_account_id, m, ext).await?;
                }
                outbox::message_result(
                    &mut tx.ex(),
                    company,
                    m,
                    "sent",
                    external_id.as_deref(),
                    None,
                )
                .await?;
                if let Some(ext) = external_id {
                    msgs::apply_receipts(&mut tx.ex(), company, item.channel_account_id, ext)
                        .await?;
                }
            }
        }
        Verdict::Retry(after, why) => {
            let at = now_ms() + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2);
            outbox::retry(&mut tx.ex(), item.id, at, why).await?;
            tracing::info!(outbox = item.id, retry_in_ms = after.as_millis() as u64, reason = %why, "send will be retried");
        }
        Verdict::Reconnect(why) | Verdict::Fail(why) => {
            outbox::fail(&mut tx.ex(), item.id, why).await?;
            if let Some(m) = item.message_id {
                outbox::message_result(&mut tx.ex(), company, m, "failed", None, Some(why)).await?;
            }
            if matches!(verdict, Verdict::Reconnect(_)) {
                channel_changed = store::channels::set_status(
                    &mut tx.ex(),
                    company,
                    item.channel_account_id,
                    "needs_reconnection",
                    Some(why),
                )
                .await?;
            }
            tracing::warn!(outbox = item.id, reason = %why, "send failed");
        }
    }
    tx.commit().await?;
    let mut conn = state.db.conn().await?;
    if let Some(m) = item.message_id
        && !matches!(verdict, Verdict::Retry(..))
        && let Some(msg) = msgs::get(&mut conn.ex(), company, m).await?
    {
        state.agents.broadcast(
            company,
            &ServerFrame::Message {
                message: serde_json::to_value(msg).unwrap_or_default(),
            },
        );
    }
    if channel_changed
        && let Some(a) =
            store::channels::get(&mut conn.ex(), company, item.channel_account_id).await?
    {
        state.agents.broadcast(
            company,
            &ServerFrame::Channel {
                account: serde_json::to_value(a).unwrap_or_default(),
            },
        );
    }
    Ok(())
}

/// Removes the echo of our own reply that arrived (and was stored as a message of its own)
/// before the send's answer; it is one message, so it is counted once in `messages_out` (P15).
async fn dedupe_echo(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    message: i64,
    external_id: &str,
) -> store::Result<()> {
    use crate::store::q;
    let echoes = q!(
        ex,
        scalars i64,
        "DELETE FROM messages WHERE company_id = $1 AND channel_account_id = $2 AND external_id = $3 \
           AND id <> $4 AND direction = 'out' AND sender_user_id IS NULL RETURNING created_at",
        company,
        account,
        external_id,
        message
    )?;
    for at in echoes {
        store::usage::add(ex, company, store::usage::MESSAGES_OUT, -1, at).await?;
    }
    Ok(())
}

fn credentials(map: Option<&serde_json::Map<String, serde_json::Value>>) -> Credentials {
    let get = |k: &str| {
        map.and_then(|m| m.get(k))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(|s| Secret::new(s.to_owned()))
    };
    Credentials {
        access_token: get("access_token"),
        api_key: get("api_key"),
        other_secrets: ["app_secret", "verify_token", "hmac_key"]
            .iter()
            .filter_map(|k| get(k))
            .collect(),
    }
}

fn setting<'a>(account: &'a store::channels::ChannelAccount, key: &str) -> Option<&'a str> {
    account.settings.0.get(key).and_then(|v| v.as_str())
}

/// The provider request for `outgoing` on `account`, or `None` when the channel cannot send it.
fn request_for(account: &store::channels::ChannelAccount, outgoing: &Outgoing) -> Option<Request> {
    let kind = ChannelKind::parse(&account.kind)?;
    let ext = account.external_id.clone().unwrap_or_default();
    Some(match (kind, outgoing.clone()) {
        (
            ChannelKind::Messenger,
            Outgoing::Text {
                to,
                text,
                human_agent,
            },
        ) => Request::MessengerText {
            page_id: ext,
            recipient: to,
            text,
            human_agent_tag: human_agent,
        },
        (
            ChannelKind::Instagram,
            Outgoing::Text {
                to,
                text,
                human_agent,
            },
        ) => Request::InstagramText {
            account_id: ext,
            recipient: to,
            text,
            human_agent_tag: human_agent,
        },
        (
            ChannelKind::Messenger | ChannelKind::Instagram,
            Outgoing::PrivateReply { comment_id, text },
        ) => Request::PrivateReply {
            account_id: ext,
            comment_id,
            text,
        },
        (ChannelKind::Messenger | ChannelKind::Instagram, Outgoing::MarkRead { to, .. }) => {
            Request::MarkSeen {
                account_id: ext,
                recipient: to,
            }
        }
        (ChannelKind::WhatsappCloud, Outgoing::Text { to, text, .. }) => Request::WhatsappText {
            phone_number_id: ext,
            to,
            text,
            reply_to: None,
        },
        (
            ChannelKind::WhatsappCloud,
            Outgoing::Template {
                to,
                name,
                language,
                components,
            },
        ) => Request::WhatsappTemplate {
            phone_number_id: ext,
            to,
            name,
            language,
            components,
        },
        (ChannelKind::WhatsappCloud, Outgoing::MarkRead { message_id, .. }) => {
            Request::WhatsappRead {
                phone_number_id: ext,
                message_id,
            }
        }
        (ChannelKind::Waha, Outgoing::Text { to, text, .. }) => Request::WahaText {
            base_url: setting(account, "base_url")?.to_owned(),
            session: setting(account, "session").map_or(ext, str::to_owned),
            chat_id: to,
            text,
            reply_to: None,
        },
        (ChannelKind::Waha, Outgoing::MarkRead { to, message_id }) => Request::WahaSeen {
            base_url: setting(account, "base_url")?.to_owned(),
            session: setting(account, "session").map_or(ext, str::to_owned),
            chat_id: to,
            message_id: Some(message_id),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 1..=20 {
            let d = backoff(attempt);
            let base = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(
                d >= base.mul_f64(0.75) && d <= base.mul_f64(1.25),
                "{attempt}: {d:?}"
            );
        }
        assert!(backoff(30) <= BACKOFF_MAX.mul_f64(1.25));
    }
}
