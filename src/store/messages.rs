//! The store side of the messaging bridge: identities and profiles from webhooks, the
//! conversation a channel message belongs to, idempotent message inserts, receipts and statuses,
//! and the outbox of replies.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, UserId, now_ms, q};
use crate::domain::Timestamp;

/// Rank of a delivery status: a receipt only ever moves a message forward. `read` and `failed`
/// share the top rank, so neither overrides the other.
const RANK: &str = "(CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 \
                    WHEN 'failed' THEN 3 ELSE 0 END)";

/// The rank of a status name, as in [`RANK`].
pub fn rank(status: &str) -> i32 {
    match status {
        "sent" => 1,
        "delivered" => 2,
        "read" | "failed" => 3,
        _ => 0,
    }
}

/// Profile fields a channel tells about a person.
#[derive(Clone, Debug, Default)]
pub struct ChannelProfile<'a> {
    /// Display name.
    pub name: Option<&'a str>,
    /// Username.
    pub username: Option<&'a str>,
    /// Picture URL.
    pub avatar_url: Option<&'a str>,
    /// Locale.
    pub locale: Option<&'a str>,
}

/// The customer of the first of `keys` `(kind, channel account, external id)` that is known.
pub async fn customer_by_identities(
    ex: &mut Ex<'_>,
    company: CompanyId,
    keys: &[(&str, Option<i64>, &str)],
) -> Result<Option<i64>> {
    for (kind, account, external) in keys {
        if let Some(found) =
            super::customers::find_identity(ex, company, kind, *account, external).await?
        {
            return Ok(Some(found.customer_id));
        }
    }
    Ok(None)
}

/// Creates a customer named `name` and returns its id.
pub async fn new_customer(ex: &mut Ex<'_>, company: CompanyId, name: Option<&str>) -> Result<i64> {
    Ok(q!(ex, scalar i64,
        "INSERT INTO customers (company_id, display_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $3) RETURNING id",
        company, name, now_ms())?)
}

/// Links an identity to `customer` if it is new (a concurrent insert of the same identity is not
/// an error), and refreshes its profile with what the channel sent (P6). Returns the customer
/// that owns the identity, which is another one if it was already known elsewhere, and whether
/// the identity is new.
pub async fn link_identity(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    kind: &str,
    account: Option<i64>,
    external_id: &str,
    profile: &ChannelProfile<'_>,
) -> Result<(i64, bool)> {
    let now = now_ms();
    let inserted = q!(
        ex,
        exec,
        "INSERT INTO customer_identities (company_id, customer_id, kind, channel_account_id, external_id, \
           display_name, avatar_url, locale, username, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT DO NOTHING",
        company,
        customer,
        kind,
        account,
        external_id,
        profile.name,
        profile.avatar_url,
        profile.locale,
        profile.username,
        now
    )? > 0;
    if profile.name.is_some()
        || profile.avatar_url.is_some()
        || profile.locale.is_some()
        || profile.username.is_some()
    {
        q!(
            ex,
            exec,
            "UPDATE customer_identities SET display_name = COALESCE($5, display_name), \
               avatar_url = COALESCE($6, avatar_url), locale = COALESCE($7, locale), \
               username = COALESCE($8, username), updated_at = $9 \
             WHERE company_id = $1 AND kind = $2 AND COALESCE(channel_account_id, 0) = COALESCE(CAST($3 AS BIGINT), 0) \
               AND external_id = $4",
            company,
            kind,
            account,
            external_id,
            profile.name,
            profile.avatar_url,
            profile.locale,
            profile.username,
            now
        )?;
    }
    let owner = super::customers::find_identity(ex, company, kind, account, external_id)
        .await?
        .map_or(customer, |i| i.customer_id);
    Ok((owner, inserted))
}

/// Refreshes a customer's profile from a channel: the name replaces one that is empty or was
/// only an id (a phone number, a PSID); picture and locale replace the old ones.
pub async fn refresh_customer(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    profile: &ChannelProfile<'_>,
) -> Result<()> {
    let name = profile.name.or(profile.username);
    if name.is_none() && profile.avatar_url.is_none() && profile.locale.is_none() {
        return Ok(());
    }
    q!(
        ex,
        exec,
        "UPDATE customers SET \
           display_name = CASE WHEN CAST($3 AS TEXT) IS NOT NULL AND (display_name IS NULL OR display_name IN \
               (SELECT external_id FROM customer_identities WHERE company_id = $1 AND customer_id = $2)) \
             THEN $3 ELSE display_name END, \
           avatar_url = COALESCE($4, avatar_url), locale = COALESCE($5, locale), updated_at = $6 \
         WHERE company_id = $1 AND id = $2",
        company,
        customer,
        name,
        profile.avatar_url,
        profile.locale,
        now_ms()
    )?;
    Ok(())
}

/// The conversation of `customer` on `account`: the latest one, reopened if it was resolved
/// and this is an inbound message; a new one if there is none. Returns its id.
pub async fn conversation_for(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    account: i64,
    inbound: bool,
) -> Result<i64> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        status: String,
    }
    let found = q!(ex, opt Row,
        "SELECT id, status FROM conversations WHERE company_id = $1 AND customer_id = $2 \
           AND channel_account_id = $3 ORDER BY id DESC LIMIT 1",
        company, customer, account)?;
    match found {
        Some(c) => {
            if inbound && c.status == "resolved" {
                q!(
                    ex,
                    exec,
                    "UPDATE conversations SET status = 'open', updated_at = $3 WHERE company_id = $1 AND id = $2",
                    company,
                    c.id,
                    now_ms()
                )?;
            }
            Ok(c.id)
        }
        None => Ok(
            super::conversations::create(ex, company, customer, Some(account), None, None)
                .await?
                .id,
        ),
    }
}

/// A message from a channel to store.
#[derive(Debug)]
pub struct ChannelMessageNew<'a> {
    /// Conversation.
    pub conversation_id: i64,
    /// Customer.
    pub customer_id: i64,
    /// Channel account.
    pub channel_account_id: i64,
    /// `in` or `out`.
    pub direction: &'a str,
    /// `message`, `comment` or `postback`.
    pub kind: &'a str,
    /// The agent who wrote it (replies from masterz).
    pub sender_user_id: Option<UserId>,
    /// Text.
    pub body: Option<&'a str>,
    /// Attachments as a JSON array.
    pub attachments: Option<String>,
    /// The provider's id of the message answered.
    pub reply_to: Option<&'a str>,
    /// A comment's thread as JSON.
    pub thread: Option<String>,
    /// `received`, `queued`, `sent`…
    pub status: &'a str,
    /// The provider's id; `None` until a reply is sent.
    pub external_id: Option<&'a str>,
    /// Unix ms.
    pub at: i64,
}

/// Stores a channel message unless one with the same provider id exists on the account
/// (at-least-once delivery); returns the new id, or `None` for a duplicate.
pub async fn insert(
    ex: &mut Ex<'_>,
    company: CompanyId,
    m: &ChannelMessageNew<'_>,
) -> Result<Option<i64>> {
    let id = q!(ex, scalar_opt i64,
        "INSERT INTO messages (company_id, conversation_id, customer_id, channel_account_id, direction, kind, \
           sender_user_id, body, attachments, reply_to, thread, status, external_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
         ON CONFLICT DO NOTHING RETURNING id",
        company, m.conversation_id, m.customer_id, m.channel_account_id, m.direction, m.kind,
        m.sender_user_id, m.body, m.attachments.as_deref(), m.reply_to, m.thread.as_deref(),
        m.status, m.external_id, m.at)?;
    if id.is_some() {
        // Billing (P15): only a row actually stored counts, so a redelivered webhook does not.
        let metric = if m.direction == "in" {
            super::usage::MESSAGES_IN
        } else {
            super::usage::MESSAGES_OUT
        };
        super::usage::add(ex, company, metric, 1, m.at).await?;
        q!(
            ex,
            exec,
            "UPDATE conversations SET last_activity_at = $3 WHERE company_id = $1 AND id = $2 AND last_activity_at < $3",
            company,
            m.conversation_id,
            m.at
        )?;
        if m.direction == "in" {
            q!(
                ex,
                exec,
                "UPDATE conversations SET last_inbound_at = $3 WHERE company_id = $1 AND id = $2 \
                   AND (last_inbound_at IS NULL OR last_inbound_at < $3)",
                company,
                m.conversation_id,
                m.at
            )?;
        }
    }
    Ok(id)
}

/// A message as the API and the agent app show it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Message {
    /// Id.
    pub id: i64,
    /// Conversation.
    pub conversation_id: i64,
    /// Customer.
    pub customer_id: i64,
    /// Channel account.
    pub channel_account_id: Option<i64>,
    /// `in` (from the customer) or `out`.
    pub direction: String,
    /// `message`, `comment` or `postback`.
    pub kind: String,
    /// The agent who wrote it.
    pub sender_user_id: Option<UserId>,
    /// Text (`null` once removed by its author).
    pub body: Option<String>,
    /// Attachment references.
    #[sqlx(try_from = "Option<String>")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub attachments: OptionalJson,
    /// `received` (inbound); `queued`, `sent`, `delivered`, `read` or `failed` (outbound).
    pub status: String,
    /// Why it failed, with the provider's code (e.g. `131047: Re-engagement message`).
    pub error: Option<String>,
    /// The provider's id.
    pub external_id: Option<String>,
    /// The provider's id of the message answered.
    pub reply_to: Option<String>,
    /// The customer's reaction to it.
    pub reaction: Option<String>,
    /// When its author removed it.
    pub removed_at: Option<Timestamp>,
    /// When it was sent.
    pub created_at: Timestamp,
}

/// A nullable JSON column.
#[derive(Clone, Debug, Default)]
pub struct OptionalJson(pub Option<serde_json::Value>);

impl TryFrom<Option<String>> for OptionalJson {
    type Error = serde_json::Error;
    fn try_from(text: Option<String>) -> std::result::Result<Self, Self::Error> {
        text.map(|t| serde_json::from_str(&t))
            .transpose()
            .map(OptionalJson)
    }
}

impl Serialize for OptionalJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

macro_rules! message_columns {
    () => {
        "id, conversation_id, customer_id, channel_account_id, direction, kind, sender_user_id, body, \
         attachments, status, error, external_id, reply_to, reaction, removed_at, created_at"
    };
}

/// One message of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Message>> {
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt Message, sql, company, id)?)
}

/// A conversation's messages, newest first, with ids below `before`.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    conversation: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Message>> {
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE company_id = $1 AND conversation_id = $2 \
           AND (CAST($3 AS BIGINT) IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    );
    Ok(q!(ex, all Message, sql, company, conversation, before, limit)?)
}

/// The message with provider id `external_id` on `account`.
pub async fn by_external(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    external_id: &str,
) -> Result<Option<Message>> {
    let sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE company_id = $1 AND channel_account_id = $2 AND external_id = $3"
    );
    Ok(q!(ex, opt Message, sql, company, account, external_id)?)
}

/// Replaces the text of an edited message or comment; returns its id.
pub async fn edit(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    external_id: &str,
    body: Option<&str>,
) -> Result<Option<i64>> {
    Ok(q!(ex, scalar_opt i64,
        "UPDATE messages SET body = $4, updated_at = $5 WHERE company_id = $1 AND channel_account_id = $2 \
           AND external_id = $3 AND removed_at IS NULL RETURNING id",
        company, account, external_id, body, now_ms())?)
}

/// Marks a message removed by its author and drops its content; returns its id.
pub async fn remove(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    external_id: &str,
) -> Result<Option<i64>> {
    let now = now_ms();
    Ok(q!(ex, scalar_opt i64,
        "UPDATE messages SET body = NULL, attachments = NULL, removed_at = $4, updated_at = $4 \
         WHERE company_id = $1 AND channel_account_id = $2 AND external_id = $3 AND removed_at IS NULL RETURNING id",
        company, account, external_id, now)?)
}

/// Sets (or with `None` clears) the customer's reaction to a message; returns its id.
pub async fn react(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    external_id: &str,
    emoji: Option<&str>,
) -> Result<Option<i64>> {
    Ok(q!(ex, scalar_opt i64,
        "UPDATE messages SET reaction = $4, updated_at = $5 WHERE company_id = $1 AND channel_account_id = $2 \
           AND external_id = $3 RETURNING id",
        company, account, external_id, emoji, now_ms())?)
}

/// Records a receipt (idempotent on message id + status); returns whether it was new.
pub async fn add_receipt(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    external_id: &str,
    status: &str,
    error: Option<&str>,
    at: i64,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "INSERT INTO message_receipts (company_id, channel_account_id, external_id, status, error, at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        company,
        account,
        external_id,
        status,
        error,
        at
    )?;
    Ok(n > 0)
}

/// Moves the outbound message `external_id` to `status` if that is forward; returns the message
/// id when it changed.
pub async fn advance(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    external_id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<Option<i64>> {
    let sql = format!(
        "UPDATE messages SET status = $4, error = COALESCE($5, error), updated_at = $6 \
         WHERE company_id = $1 AND channel_account_id = $2 AND external_id = $3 AND direction = 'out' \
           AND {RANK} < $7 RETURNING id"
    );
    Ok(
        q!(ex, scalar_opt i64, sqlx::AssertSqlSafe(sql), company, account, external_id, status,
        error, now_ms(), rank(status))?,
    )
}

/// Applies every receipt already stored for `external_id` (they can arrive before the send's
/// answer names the id); returns the message id when its status changed.
pub async fn apply_receipts(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    external_id: &str,
) -> Result<Option<i64>> {
    #[derive(sqlx::FromRow)]
    struct Receipt {
        status: String,
        error: Option<String>,
    }
    let receipts = q!(ex, all Receipt,
        "SELECT status, error FROM message_receipts WHERE company_id = $1 AND channel_account_id = $2 \
           AND external_id = $3 ORDER BY at, id",
        company, account, external_id)?;
    let mut changed = None;
    for r in receipts {
        if let Some(id) = advance(
            ex,
            company,
            account,
            external_id,
            &r.status,
            r.error.as_deref(),
        )
        .await?
        {
            changed = Some(id);
        }
    }
    Ok(changed)
}

/// Messenger's watermark receipts: every outbound message to `customer` on `account` sent at or
/// before `watermark` moves to `status`; returns the ids that changed.
pub async fn advance_until(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    customer: i64,
    status: &str,
    watermark: i64,
) -> Result<Vec<i64>> {
    let sql = format!(
        "UPDATE messages SET status = $4, updated_at = $6 \
         WHERE company_id = $1 AND channel_account_id = $2 AND customer_id = $3 AND direction = 'out' \
           AND external_id IS NOT NULL AND created_at <= $5 AND {RANK} < $7 RETURNING id"
    );
    Ok(
        q!(ex, scalars i64, sqlx::AssertSqlSafe(sql), company, account, customer, status, watermark,
        now_ms(), rank(status))?,
    )
}
