//! The outbox: replies and read receipts waiting to be sent to a provider. A row is claimed by
//! moving its `next_attempt_at` forward (a lease), so several workers — or several servers on
//! one PostgreSQL — never send the same row twice at once; a worker that dies loses only its
//! lease, and the row is picked up again when the lease ends.

use super::{CompanyId, Ex, Result, now_ms, q};

/// A row to send.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Item {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Channel account to send through.
    pub channel_account_id: i64,
    /// The message (for `send`).
    pub message_id: Option<i64>,
    /// `send` or `mark_read`.
    pub action: String,
    /// What to send (JSON): `{"text"}`, `{"template"}`, `{"message_external_id"}`…
    pub payload: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it became due (the lease compares it).
    pub next_attempt_at: i64,
}

/// Queues an action; returns the row id.
pub async fn enqueue(
    ex: &mut Ex<'_>,
    company: CompanyId,
    account: i64,
    message: Option<i64>,
    action: &str,
    payload: &serde_json::Value,
) -> Result<i64> {
    let now = now_ms();
    Ok(q!(ex, scalar i64,
        "INSERT INTO outbox (company_id, channel_account_id, message_id, action, payload, next_attempt_at, \
           created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6) RETURNING id",
        company, account, message, action, payload.to_string(), now)?)
}

/// Rows due at `now`, oldest first.
pub async fn due(ex: &mut Ex<'_>, now: i64, limit: i64) -> Result<Vec<Item>> {
    Ok(q!(ex, all Item,
        "SELECT id, company_id, channel_account_id, message_id, action, payload, attempts, next_attempt_at \
         FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
        now, limit)?)
}

/// Claims `item` until `lease_until`; false if another worker claimed it first.
pub async fn claim(ex: &mut Ex<'_>, item: &Item, lease_until: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "UPDATE outbox SET next_attempt_at = $3, attempts = attempts + 1, updated_at = $4 \
         WHERE id = $1 AND state = 'pending' AND next_attempt_at = $2",
        item.id,
        item.next_attempt_at,
        lease_until,
        now_ms()
    )?;
    Ok(n == 1)
}

/// Marks a row sent.
pub async fn done(ex: &mut Ex<'_>, id: i64) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE outbox SET state = 'done', last_error = NULL, updated_at = $2 WHERE id = $1",
        id,
        now_ms()
    )?;
    Ok(())
}

/// Schedules another attempt at `at` after a transient failure.
pub async fn retry(ex: &mut Ex<'_>, id: i64, at: i64, error: &str) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE outbox SET next_attempt_at = $2, last_error = $3, updated_at = $4 WHERE id = $1",
        id,
        at,
        error,
        now_ms()
    )?;
    Ok(())
}

/// Gives a row up.
pub async fn fail(ex: &mut Ex<'_>, id: i64, error: &str) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE outbox SET state = 'failed', last_error = $2, updated_at = $3 WHERE id = $1",
        id,
        error,
        now_ms()
    )?;
    Ok(())
}

/// The earliest time a pending row is due, if any (the worker sleeps until then).
pub async fn next_due(ex: &mut Ex<'_>) -> Result<Option<i64>> {
    Ok(q!(ex, scalar Option<i64>,
        "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'")?)
}

/// Sets the status of an outbound message: `sent` with its provider id, or `failed` with why.
pub async fn message_result(
    ex: &mut Ex<'_>,
    company: CompanyId,
    message: i64,
    status: &str,
    external_id: Option<&str>,
    error: Option<&str>,
) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE messages SET status = $3, external_id = COALESCE($4, external_id), error = $5, updated_at = $6 \
         WHERE company_id = $1 AND id = $2",
        company,
        message,
        status,
        external_id,
        error,
        now_ms()
    )?;
    Ok(())
}
