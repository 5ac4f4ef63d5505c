//! AI reply suggestions: the company's model settings (the key encrypted, write-only), each
//! channel's opt-in, and the suggestions with the exact context they were made from (P10, P17).

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, UserId, now_ms, q};
use crate::domain::Timestamp;
use crate::secrets::{Keyring, Secret};

/// Additional data bound to the encrypted key, so it cannot be moved to another column.
pub const KEY_AAD: &str = "companies.ai_api_key";

/// A company's own model settings (each `None` falls back to the server's configuration).
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct Settings {
    /// Base URL of the Chat Completions API.
    pub ai_base_url: Option<String>,
    /// Model.
    pub ai_model: Option<String>,
    /// The encrypted key.
    pub ai_api_key: Option<String>,
}

impl Settings {
    /// The key, decrypted.
    pub fn key(&self, keyring: &Keyring) -> Result<Option<Secret<String>>> {
        let Some(stored) = &self.ai_api_key else {
            return Ok(None);
        };
        let plain = keyring.decrypt(stored, KEY_AAD)?;
        Ok(Some(Secret::new(
            String::from_utf8_lossy(plain.expose()).into_owned(),
        )))
    }
}

/// The model settings of `company`.
pub async fn settings(ex: &mut Ex<'_>, company: CompanyId) -> Result<Settings> {
    Ok(q!(ex, opt Settings,
        "SELECT ai_base_url, ai_model, ai_api_key FROM companies WHERE id = $1", company)?
    .unwrap_or_default())
}

/// A change of settings: `Some(None)` clears a value, `None` keeps it.
#[derive(Debug, Default)]
pub struct SettingsPatch {
    /// Base URL.
    pub base_url: Option<Option<String>>,
    /// Model.
    pub model: Option<Option<String>>,
    /// The key, already encrypted with [`KEY_AAD`].
    pub sealed_key: Option<Option<String>>,
}

/// Applies `patch` to `company`'s settings.
pub async fn update_settings(
    ex: &mut Ex<'_>,
    company: CompanyId,
    patch: &SettingsPatch,
) -> Result<()> {
    let now = now_ms();
    if let Some(v) = &patch.base_url {
        q!(
            ex,
            exec,
            "UPDATE companies SET ai_base_url = $2, updated_at = $3 WHERE id = $1",
            company,
            v.as_deref(),
            now
        )?;
    }
    if let Some(v) = &patch.model {
        q!(
            ex,
            exec,
            "UPDATE companies SET ai_model = $2, updated_at = $3 WHERE id = $1",
            company,
            v.as_deref(),
            now
        )?;
    }
    if let Some(v) = &patch.sealed_key {
        q!(
            ex,
            exec,
            "UPDATE companies SET ai_api_key = $2, updated_at = $3 WHERE id = $1",
            company,
            v.as_deref(),
            now
        )?;
    }
    Ok(())
}

/// Re-encrypts every company's key under the keyring's current key (`masterz admin rotate-key`).
pub async fn reencrypt_keys(ex: &mut Ex<'_>, keyring: &Keyring) -> Result<u64> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        ai_api_key: String,
    }
    let rows = q!(ex, all Row,
        "SELECT id, ai_api_key FROM companies WHERE ai_api_key IS NOT NULL ORDER BY id")?;
    let mut n = 0;
    for row in rows {
        let plain = keyring.decrypt(&row.ai_api_key, KEY_AAD)?;
        let again = keyring.encrypt(plain.expose(), KEY_AAD)?;
        n += q!(
            ex,
            exec,
            "UPDATE companies SET ai_api_key = $2 WHERE id = $1",
            row.id,
            again
        )?;
    }
    Ok(n)
}

/// Switches suggestions and auto-reply of a channel account; `None` when it does not exist.
pub async fn set_channel(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    suggestions: bool,
    auto_reply: bool,
) -> Result<Option<()>> {
    let n = q!(
        ex,
        exec,
        "UPDATE channel_accounts SET ai_suggestions = $3, ai_auto_reply = $4, updated_at = $5 \
         WHERE company_id = $1 AND id = $2",
        company,
        account,
        suggestions,
        auto_reply && suggestions,
        now_ms()
    )?;
    Ok((n > 0).then_some(()))
}

/// Queues a suggestion for the inbound message `message` when its channel has suggestions on;
/// returns whether one was queued. Runs in the transaction that stored the message, so a message
/// is never left without its pending suggestion, and a replayed message adds none.
pub async fn enqueue_if_enabled(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    conversation: i64,
    customer: i64,
    message: i64,
) -> Result<bool> {
    let now = now_ms();
    let n = q!(
        ex,
        exec,
        "INSERT INTO ai_suggestions (company_id, conversation_id, customer_id, message_id, channel_account_id, \
           state, next_attempt_at, created_at, updated_at) \
         SELECT $1, $2, $3, $4, a.id, 'pending', $6, $6, $6 FROM channel_accounts a \
          WHERE a.company_id = $1 AND a.id = $5 AND a.ai_suggestions = TRUE \
         ON CONFLICT DO NOTHING",
        company,
        conversation,
        customer,
        message,
        account,
        now
    )?;
    Ok(n > 0)
}

/// A suggestion as the API shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Suggestion {
    /// Id.
    pub id: i64,
    /// Conversation.
    pub conversation_id: i64,
    /// Customer.
    pub customer_id: i64,
    /// The inbound message it answers.
    pub message_id: i64,
    /// Channel account.
    pub channel_account_id: Option<i64>,
    /// `pending`, `ready`, `failed`, `skipped`, `accepted`, `dismissed` or `sent` (auto-reply).
    pub state: String,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Exactly what the model was given: `{messages: [{id, role, text}], chunks: [{id,
    /// document_id, content}]}`.
    #[sqlx(try_from = "Option<String>")]
    #[schema(value_type = Option<Object>)]
    pub context: super::messages::OptionalJson,
    /// Model that answered.
    pub model: Option<String>,
    /// The suggested reply.
    pub text: Option<String>,
    /// The message sent from it.
    pub reply_message_id: Option<i64>,
    /// The agent who accepted or dismissed it.
    pub decided_by: Option<UserId>,
    /// Attempts made.
    pub attempts: i32,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

macro_rules! suggestion_columns {
    () => {
        "id, conversation_id, customer_id, message_id, channel_account_id, state, reason, context, model, \
         text, reply_message_id, decided_by, attempts, created_at, updated_at"
    };
}

/// One suggestion of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Suggestion>> {
    let sql = concat!(
        "SELECT ",
        suggestion_columns!(),
        " FROM ai_suggestions WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt Suggestion, sql, company, id)?)
}

/// The suggestions of a conversation, newest first.
pub async fn for_conversation(
    ex: &mut Ex<'_>,
    company: CompanyId,
    conversation: i64,
    limit: i64,
) -> Result<Vec<Suggestion>> {
    let sql = concat!(
        "SELECT ",
        suggestion_columns!(),
        " FROM ai_suggestions WHERE company_id = $1 AND conversation_id = $2 ORDER BY id DESC LIMIT $3"
    );
    Ok(q!(ex, all Suggestion, sql, company, conversation, limit)?)
}

/// A suggestion the worker is to make.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Due {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Conversation.
    pub conversation_id: i64,
    /// The inbound message.
    pub message_id: i64,
    /// Channel account.
    pub channel_account_id: Option<i64>,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// Claims up to `limit` due suggestions: each gets a lease of `lease_ms` (another worker, or this
/// one after a crash, takes it again once the lease runs out) and one more attempt.
pub async fn claim(ex: &mut Ex<'_>, limit: i64, lease_ms: i64) -> Result<Vec<Due>> {
    let now = now_ms();
    let ids = q!(ex, scalars i64,
        "SELECT id FROM ai_suggestions WHERE state = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, id LIMIT $2",
        now, limit)?;
    let mut due = Vec::with_capacity(ids.len());
    for id in ids {
        let row = q!(ex, opt Due,
            "UPDATE ai_suggestions SET attempts = attempts + 1, next_attempt_at = $2, updated_at = $3 \
             WHERE id = $1 AND state = 'pending' AND next_attempt_at <= $3 \
             RETURNING id, company_id, conversation_id, message_id, channel_account_id, attempts",
            id, now + lease_ms, now)?;
        due.extend(row);
    }
    Ok(due)
}

/// When the next pending suggestion is due (Unix ms), if any.
pub async fn next_due(ex: &mut Ex<'_>) -> Result<Option<i64>> {
    Ok(q!(ex, scalar_opt Option<i64>,
        "SELECT MIN(next_attempt_at) FROM ai_suggestions WHERE state = 'pending'")?
    .flatten())
}

/// The outcome of one attempt.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The model answered.
    Ready {
        /// Context sent (JSON).
        context: &'a str,
        /// Model.
        model: &'a str,
        /// The suggested text.
        text: &'a str,
    },
    /// Try again at `at` (Unix ms).
    Retry {
        /// When.
        at: i64,
        /// What happened.
        reason: &'a str,
        /// Context sent (JSON), when a request was made.
        context: Option<&'a str>,
    },
    /// Given up.
    Failed {
        /// Why.
        reason: &'a str,
        /// Context sent (JSON), when a request was made.
        context: Option<&'a str>,
    },
    /// Not made at all (switched off, over the plan, no key): nothing was sent.
    Skipped {
        /// Why.
        reason: &'a str,
    },
}

/// Records the outcome of an attempt at suggestion `id` (still pending).
pub async fn finish(ex: &mut Ex<'_>, id: i64, outcome: &Outcome<'_>) -> Result<()> {
    let now = now_ms();
    match outcome {
        Outcome::Ready {
            context,
            model,
            text,
        } => q!(
            ex,
            exec,
            "UPDATE ai_suggestions SET state = 'ready', reason = NULL, context = $2, model = $3, text = $4, \
               updated_at = $5 WHERE id = $1 AND state = 'pending'",
            id,
            *context,
            *model,
            *text,
            now
        )?,
        Outcome::Retry {
            at,
            reason,
            context,
        } => q!(
            ex,
            exec,
            "UPDATE ai_suggestions SET next_attempt_at = $2, reason = $3, context = COALESCE($4, context), \
               updated_at = $5 WHERE id = $1 AND state = 'pending'",
            id,
            *at,
            *reason,
            *context,
            now
        )?,
        Outcome::Failed { reason, context } => q!(
            ex,
            exec,
            "UPDATE ai_suggestions SET state = 'failed', reason = $2, context = COALESCE($3, context), \
               updated_at = $4 WHERE id = $1 AND state = 'pending'",
            id,
            *reason,
            *context,
            now
        )?,
        Outcome::Skipped { reason } => q!(
            ex,
            exec,
            "UPDATE ai_suggestions SET state = 'skipped', reason = $2, updated_at = $3 \
             WHERE id = $1 AND state = 'pending'",
            id,
            *reason,
            now
        )?,
    };
    Ok(())
}

/// Marks a `ready` suggestion `accepted`, `dismissed` or `sent`, with the message sent from it;
/// `Conflict` when it is not `ready` any more.
pub async fn decide(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    state: &str,
    by: Option<UserId>,
    reply: Option<i64>,
) -> Result<()> {
    let n = q!(
        ex,
        exec,
        "UPDATE ai_suggestions SET state = $3, decided_by = $4, reply_message_id = $5, updated_at = $6 \
         WHERE company_id = $1 AND id = $2 AND state = 'ready'",
        company,
        id,
        state,
        by,
        reply,
        now_ms()
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(
            "the suggestion is not ready (already used, dismissed, or never made)".into(),
        ));
    }
    Ok(())
}

/// A message of the conversation, as context.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ContextMessage {
    /// Id.
    pub id: i64,
    /// `in` or `out`.
    pub direction: String,
    /// Text.
    pub body: String,
}

/// The newest `limit` messages with text of `conversation` up to and including `upto`, oldest
/// first: the conversation context of a suggestion (P17: nothing else).
pub async fn context_messages(
    ex: &mut Ex<'_>,
    company: CompanyId,
    conversation: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<ContextMessage>> {
    let mut rows = q!(ex, all ContextMessage,
        "SELECT id, direction, body FROM messages \
         WHERE company_id = $1 AND conversation_id = $2 AND id <= $3 AND body IS NOT NULL \
           AND removed_at IS NULL AND body <> '' \
         ORDER BY id DESC LIMIT $4",
        company, conversation, upto, limit)?;
    rows.reverse();
    Ok(rows)
}
