//! Conversations, notes, and the message and call rows that the timeline shows.
//!
//! Messages and calls are written by the messaging bridge and by call control; the functions here
//! are the store side of that, shared by both and by tests.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, UserId, now_ms, q};
use crate::domain::Timestamp;

/// A conversation with a customer.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Conversation {
    /// Id.
    pub id: i64,
    /// Customer.
    pub customer_id: i64,
    /// The channel account it runs on, if any.
    pub channel_account_id: Option<i64>,
    /// Subject.
    pub subject: Option<String>,
    /// `open`, `pending` or `resolved`.
    pub status: String,
    /// Assigned agent.
    pub assignee_id: Option<UserId>,
    /// Last message, call or note.
    pub last_activity_at: Timestamp,
    /// The customer's last message (the messaging window counts from it).
    pub last_inbound_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

macro_rules! columns {
    () => {
        "id, customer_id, channel_account_id, subject, status, assignee_id, \
     last_activity_at, last_inbound_at, created_at, updated_at"
    };
}

/// Creates a conversation.
pub async fn create(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    channel_account: Option<i64>,
    subject: Option<&str>,
    assignee: Option<UserId>,
) -> Result<Conversation> {
    let now = now_ms();
    let id = q!(ex, scalar i64,
        "INSERT INTO conversations (company_id, customer_id, channel_account_id, subject, assignee_id, \
           last_activity_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6) RETURNING id",
        company, customer, channel_account, subject, assignee, now)?;
    get(ex, company, id)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

/// The conversation `id` of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Conversation>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM conversations WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt Conversation, sql, company, id)?)
}

/// Filters for listing conversations.
#[derive(Debug, Default)]
pub struct Filter {
    /// Only this customer's.
    pub customer_id: Option<i64>,
    /// Only with this status.
    pub status: Option<String>,
    /// Only assigned to this user.
    pub assignee_id: Option<UserId>,
    /// Only unassigned ones.
    pub unassigned: bool,
    /// Cursor: only ids below this.
    pub before_id: Option<i64>,
}

/// Lists conversations, newest first.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    f: &Filter,
    limit: i64,
) -> Result<Vec<Conversation>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM conversations WHERE company_id = $1 \
         AND (CAST($2 AS BIGINT) IS NULL OR customer_id = $2) \
         AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
         AND (CAST($4 AS BIGINT) IS NULL OR assignee_id = $4) \
         AND ($5 = FALSE OR assignee_id IS NULL) \
         AND (CAST($6 AS BIGINT) IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    );
    Ok(
        q!(ex, all Conversation, sql, company, f.customer_id, f.status.as_deref(), f.assignee_id,
        f.unassigned, f.before_id, limit)?,
    )
}

/// Changes status, assignee (`Some(None)` unassigns) or subject.
pub async fn update(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    status: Option<&str>,
    assignee: Option<Option<UserId>>,
    subject: Option<Option<String>>,
) -> Result<Option<Conversation>> {
    let n = q!(
        ex,
        exec,
        "UPDATE conversations SET status = COALESCE($3, status), \
           assignee_id = CASE WHEN $4 THEN $5 ELSE assignee_id END, \
           subject = CASE WHEN $6 THEN $7 ELSE subject END, updated_at = $8 \
         WHERE company_id = $1 AND id = $2",
        company,
        id,
        status,
        assignee.is_some(),
        assignee.flatten(),
        subject.is_some(),
        subject.flatten(),
        now_ms()
    )?;
    if n == 0 {
        return Ok(None);
    }
    get(ex, company, id).await
}

async fn touch(
    ex: &mut Ex<'_>,
    company: CompanyId,
    conversation: Option<i64>,
    at: i64,
) -> Result<()> {
    if let Some(id) = conversation {
        q!(
            ex,
            exec,
            "UPDATE conversations SET last_activity_at = $3 WHERE company_id = $1 AND id = $2 AND last_activity_at < $3",
            company,
            id,
            at
        )?;
    }
    Ok(())
}

/// An internal note on a customer.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Note {
    /// Id.
    pub id: i64,
    /// Customer.
    pub customer_id: i64,
    /// Conversation, if the note belongs to one.
    pub conversation_id: Option<i64>,
    /// Author.
    pub author_id: Option<UserId>,
    /// Text.
    pub body: String,
    /// Created.
    pub created_at: Timestamp,
}

/// Adds a note.
pub async fn add_note(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    conversation: Option<i64>,
    author: Option<UserId>,
    body: &str,
) -> Result<Note> {
    let now = now_ms();
    let id = q!(ex, scalar i64,
        "INSERT INTO notes (company_id, customer_id, conversation_id, author_id, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        company, customer, conversation, author, body, now)?;
    touch(ex, company, conversation, now).await?;
    Ok(q!(ex, one Note,
        "SELECT id, customer_id, conversation_id, author_id, body, created_at FROM notes WHERE id = $1", id)?)
}

/// A message to store.
#[derive(Debug)]
pub struct NewMessage<'a> {
    /// Conversation.
    pub conversation_id: i64,
    /// Customer.
    pub customer_id: i64,
    /// `in` or `out`.
    pub direction: &'a str,
    /// Agent who sent it (outbound).
    pub sender_user_id: Option<UserId>,
    /// Text.
    pub body: Option<&'a str>,
    /// `received`, `queued`, `sent`, `delivered`, `read` or `failed`.
    pub status: &'a str,
    /// The provider's message id.
    pub external_id: Option<&'a str>,
    /// When it was sent, per the provider (Unix ms).
    pub at: i64,
}

/// Stores a message and returns its id.
pub async fn add_message(ex: &mut Ex<'_>, company: CompanyId, m: &NewMessage<'_>) -> Result<i64> {
    let id = q!(ex, scalar i64,
        "INSERT INTO messages (company_id, conversation_id, customer_id, direction, sender_user_id, body, \
           status, external_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        company, m.conversation_id, m.customer_id, m.direction, m.sender_user_id, m.body, m.status,
        m.external_id, m.at)?;
    touch(ex, company, Some(m.conversation_id), m.at).await?;
    Ok(id)
}

/// A call to store.
#[derive(Debug)]
pub struct NewCall<'a> {
    /// Customer, when known.
    pub customer_id: Option<i64>,
    /// Conversation, if any.
    pub conversation_id: Option<i64>,
    /// `in` or `out`.
    pub direction: &'a str,
    /// Caller URI.
    pub from_uri: &'a str,
    /// Callee URI.
    pub to_uri: &'a str,
    /// `ringing`, `answered`, `ended`, …
    pub status: &'a str,
    /// Agent, once answered.
    pub agent_user_id: Option<UserId>,
    /// Start (Unix ms).
    pub started_at: i64,
    /// Answer (Unix ms).
    pub answered_at: Option<i64>,
    /// End (Unix ms).
    pub ended_at: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<&'a str>,
}

/// Stores a call and returns its id.
pub async fn add_call(ex: &mut Ex<'_>, company: CompanyId, c: &NewCall<'_>) -> Result<i64> {
    let id = q!(ex, scalar i64,
        "INSERT INTO calls (company_id, customer_id, conversation_id, direction, from_uri, to_uri, status, \
           agent_user_id, started_at, answered_at, ended_at, end_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        company, c.customer_id, c.conversation_id, c.direction, c.from_uri, c.to_uri, c.status,
        c.agent_user_id, c.started_at, c.answered_at, c.ended_at, c.end_reason)?;
    touch(ex, company, c.conversation_id, c.started_at).await?;
    Ok(id)
}
