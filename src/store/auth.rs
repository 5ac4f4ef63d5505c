//! Sessions, API tokens and the login history (P4). Tokens are stored as SHA-256 hashes only.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, UserId, now_ms, q};
use crate::domain::Timestamp;

/// Who a valid session or token belongs to, with what the request needs to authorise.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The user's company.
    pub company_id: CompanyId,
    /// The user's email (for audit labels).
    pub email: String,
    /// The role's permissions, space-separated.
    pub permissions: String,
    /// The session row, when authenticated by cookie.
    pub session_id: Option<i64>,
    /// The token row, when authenticated by API token.
    pub token_id: Option<i64>,
    /// When the session or token was last noted as used (Unix ms).
    pub last_used_at: Option<i64>,
}

impl Principal {
    /// Whether the last-use time is old enough to be written again: at most once a minute, so
    /// that reads do not turn into writes (SQLite has one writer at a time).
    pub fn use_is_stale(&self, now: i64) -> bool {
        self.last_used_at.is_none_or(|t| t < now - 60_000)
    }
}

/// Records a login attempt: `outcome` is `success`, `bad_credentials`, `rate_limited` or `closed`.
pub async fn record_login(
    ex: &mut Ex<'_>,
    company: Option<CompanyId>,
    user: Option<UserId>,
    email: &str,
    ip: &str,
    user_agent: Option<&str>,
    outcome: &str,
) -> Result<()> {
    q!(
        ex,
        exec,
        "INSERT INTO login_events (company_id, user_id, email, ip, user_agent, outcome, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        company,
        user,
        email,
        ip,
        user_agent,
        outcome,
        now_ms()
    )?;
    Ok(())
}

/// One row of the login history.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct LoginEvent {
    /// Id.
    pub id: i64,
    /// User, when the email matched one.
    pub user_id: Option<UserId>,
    /// Email given.
    pub email: String,
    /// Client IP.
    pub ip: String,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// `success`, `bad_credentials`, `rate_limited` or `closed`.
    pub outcome: String,
    /// When.
    pub created_at: Timestamp,
}

/// The login history of one user, newest first.
pub async fn login_events(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    limit: i64,
) -> Result<Vec<LoginEvent>> {
    Ok(q!(ex, all LoginEvent,
        "SELECT id, user_id, email, ip, user_agent, outcome, created_at FROM login_events \
         WHERE company_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3",
        company, user, limit)?)
}

/// Creates a session for a successful login.
pub async fn create_session(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    token_hash: &str,
    ip: &str,
    user_agent: Option<&str>,
    expires_at: i64,
) -> Result<i64> {
    let now = now_ms();
    Ok(q!(ex, scalar i64,
        "INSERT INTO sessions (company_id, user_id, token_hash, ip, user_agent, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
        company, user, token_hash, ip, user_agent, now, expires_at)?)
}

/// The principal of a live session of an active company.
pub async fn session_principal(ex: &mut Ex<'_>, token_hash: &str) -> Result<Option<Principal>> {
    Ok(q!(ex, opt Principal,
        "SELECT u.id AS user_id, u.company_id, u.email, r.permissions, s.id AS session_id, \
                CAST(NULL AS BIGINT) AS token_id, s.last_seen_at AS last_used_at \
         FROM sessions s JOIN users u ON u.id = s.user_id JOIN roles r ON r.id = u.role_id \
         JOIN companies c ON c.id = u.company_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND c.status = 'active'",
        token_hash, now_ms())?)
}

/// Notes that a session was used now, from `ip` (P4).
pub async fn touch_session(ex: &mut Ex<'_>, id: i64, ip: &str) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE sessions SET last_seen_at = $2, ip = $3 WHERE id = $1",
        id,
        now_ms(),
        ip
    )?;
    Ok(())
}

/// Notes that an API token was used now.
pub async fn touch_token(ex: &mut Ex<'_>, id: i64) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
        id,
        now_ms()
    )?;
    Ok(())
}

/// Ends a session.
pub async fn delete_session(ex: &mut Ex<'_>, id: i64) -> Result<()> {
    q!(ex, exec, "DELETE FROM sessions WHERE id = $1", id)?;
    Ok(())
}

/// Ends every session of a user (after a password reset).
pub async fn delete_user_sessions(ex: &mut Ex<'_>, user: UserId) -> Result<u64> {
    Ok(q!(
        ex,
        exec,
        "DELETE FROM sessions WHERE user_id = $1",
        user
    )?)
}

/// Removes expired sessions.
pub async fn prune_sessions(ex: &mut Ex<'_>) -> Result<u64> {
    Ok(q!(
        ex,
        exec,
        "DELETE FROM sessions WHERE expires_at <= $1",
        now_ms()
    )?)
}

/// An API token (its hash is never shown).
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiToken {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: UserId,
    /// Label.
    pub name: String,
    /// Last use.
    pub last_used_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
}

/// Stores a new API token for `user`.
pub async fn create_token(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    name: &str,
    token_hash: &str,
) -> Result<ApiToken> {
    let id = q!(ex, scalar i64,
        "INSERT INTO api_tokens (company_id, user_id, name, token_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        company, user, name, token_hash, now_ms())?;
    Ok(q!(ex, one ApiToken,
        "SELECT id, user_id, name, last_used_at, created_at FROM api_tokens WHERE id = $1", id)?)
}

/// The API tokens of `user`.
pub async fn list_tokens(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
) -> Result<Vec<ApiToken>> {
    Ok(q!(ex, all ApiToken,
        "SELECT id, user_id, name, last_used_at, created_at FROM api_tokens \
         WHERE company_id = $1 AND user_id = $2 ORDER BY id",
        company, user)?)
}

/// Revokes one of `user`'s tokens.
pub async fn delete_token(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    id: i64,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM api_tokens WHERE company_id = $1 AND user_id = $2 AND id = $3",
        company,
        user,
        id
    )?;
    Ok(n > 0)
}

/// The principal of a valid API token of an active company.
pub async fn token_principal(ex: &mut Ex<'_>, token_hash: &str) -> Result<Option<Principal>> {
    Ok(q!(ex, opt Principal,
        "SELECT u.id AS user_id, u.company_id, u.email, r.permissions, \
                CAST(NULL AS BIGINT) AS session_id, t.id AS token_id, t.last_used_at \
         FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN roles r ON r.id = u.role_id \
         JOIN companies c ON c.id = u.company_id \
         WHERE t.token_hash = $1 AND c.status = 'active'",
        token_hash)?)
}
