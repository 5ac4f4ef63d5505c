//! Users, roles and invitations of a company.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, UserId, now_ms, q};
use crate::domain::{PermissionSet, Timestamp};

/// A user: someone who logs in to a company.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Company.
    pub company_id: CompanyId,
    /// Role.
    pub role_id: i64,
    /// Display name.
    pub name: String,
    /// Login email (unique across masterz).
    pub email: String,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Username for the SIP registrar, if the user has SIP credentials (the password is
    /// write-only).
    pub sip_username: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

// Used as `SELECT user_columns!() FROM users …`: the subquery refers to that table by name.
macro_rules! user_columns {
    () => {
        "id, company_id, role_id, name, email, avatar_url, \
         (SELECT s.username FROM sip_accounts s WHERE s.user_id = users.id) AS sip_username, \
         created_at, updated_at"
    };
}

/// A role with its permission set.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RoleRow {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Name, unique in the company.
    pub name: String,
    /// Space-separated permission names.
    pub permissions: String,
    /// Built-in roles (`admin`, `agent`) cannot be deleted or renamed.
    pub builtin: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl RoleRow {
    /// The permission set.
    pub fn permission_set(&self) -> PermissionSet {
        PermissionSet::from_stored(&self.permissions)
    }
}

macro_rules! role_columns {
    () => {
        "id, company_id, name, permissions, builtin, created_at, updated_at"
    };
}

/// What creates a user.
#[derive(Debug)]
pub struct NewUser<'a> {
    /// Role (must belong to the same company).
    pub role_id: i64,
    /// Name.
    pub name: &'a str,
    /// Normalised email.
    pub email: &'a str,
    /// bcrypt hash.
    pub password_hash: &'a str,
    /// Avatar URL.
    pub avatar_url: Option<&'a str>,
}

/// Creates a user in `company`.
pub async fn create_user(ex: &mut Ex<'_>, company: CompanyId, new: &NewUser<'_>) -> Result<User> {
    let now = now_ms();
    let id = q!(ex, scalar i64,
        "INSERT INTO users (company_id, role_id, name, email, password_hash, avatar_url, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        company, new.role_id, new.name, new.email, new.password_hash, new.avatar_url, now)?;
    get_user(ex, company, UserId(id))
        .await?
        .ok_or_else(|| super::StoreError::Database(sqlx::Error::RowNotFound))
}

/// The user `id` of `company`.
pub async fn get_user(ex: &mut Ex<'_>, company: CompanyId, id: UserId) -> Result<Option<User>> {
    let sql = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt User, sql, company, id)?)
}

/// The users of `company`.
pub async fn list_users(ex: &mut Ex<'_>, company: CompanyId) -> Result<Vec<User>> {
    let sql = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE company_id = $1 ORDER BY id"
    );
    Ok(q!(ex, all User, sql, company)?)
}

/// A user found by email for login, with the password hash. Not company-scoped: the email is the
/// key that finds the company.
#[derive(Debug, sqlx::FromRow)]
pub struct LoginUser {
    /// Id.
    pub id: UserId,
    /// Company.
    pub company_id: CompanyId,
    /// bcrypt hash.
    pub password_hash: String,
    /// Status of the company (`active` or `closed`).
    pub company_status: String,
}

/// The login record for `email`.
pub async fn login_user(ex: &mut Ex<'_>, email: &str) -> Result<Option<LoginUser>> {
    Ok(q!(ex, opt LoginUser,
        "SELECT u.id, u.company_id, u.password_hash, c.status AS company_status \
         FROM users u JOIN companies c ON c.id = u.company_id WHERE u.email = $1",
        email)?)
}

/// The user with `email` in `company`.
pub async fn user_by_email(
    ex: &mut Ex<'_>,
    company: CompanyId,
    email: &str,
) -> Result<Option<User>> {
    let sql = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE company_id = $1 AND email = $2"
    );
    Ok(q!(ex, opt User, sql, company, email)?)
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserPatch {
    /// New name.
    pub name: Option<String>,
    /// New normalised email.
    pub email: Option<String>,
    /// New role.
    pub role_id: Option<i64>,
    /// New avatar URL (`Some(None)` clears it).
    pub avatar_url: Option<Option<String>>,
    /// New bcrypt hash.
    pub password_hash: Option<String>,
}

/// Applies `patch`; `None` if there is no such user in `company`.
pub async fn update_user(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: UserId,
    patch: &UserPatch,
) -> Result<Option<User>> {
    let (set_avatar, avatar) = match &patch.avatar_url {
        Some(v) => (true, v.clone()),
        None => (false, None),
    };
    let n = q!(
        ex,
        exec,
        "UPDATE users SET name = COALESCE($3, name), email = COALESCE($4, email), \
         role_id = COALESCE($5, role_id), avatar_url = CASE WHEN $6 THEN $7 ELSE avatar_url END, \
         password_hash = COALESCE($8, password_hash), updated_at = $9 \
         WHERE company_id = $1 AND id = $2",
        company,
        id,
        patch.name.as_deref(),
        patch.email.as_deref(),
        patch.role_id,
        set_avatar,
        avatar,
        patch.password_hash.as_deref(),
        now_ms()
    )?;
    if n == 0 {
        return Ok(None);
    }
    get_user(ex, company, id).await
}

/// Deletes a user (sessions and tokens go with it); `false` if there was none.
pub async fn delete_user(ex: &mut Ex<'_>, company: CompanyId, id: UserId) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM users WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// How many users of `company` have `role_id`.
pub async fn count_with_role(ex: &mut Ex<'_>, company: CompanyId, role_id: i64) -> Result<i64> {
    Ok(q!(ex, scalar i64,
        "SELECT COUNT(*) FROM users WHERE company_id = $1 AND role_id = $2", company, role_id)?)
}

/// The role `id` of `company`.
pub async fn get_role(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<RoleRow>> {
    let sql = concat!(
        "SELECT ",
        role_columns!(),
        " FROM roles WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt RoleRow, sql, company, id)?)
}

/// The role named `name` in `company`.
pub async fn role_by_name(
    ex: &mut Ex<'_>,
    company: CompanyId,
    name: &str,
) -> Result<Option<RoleRow>> {
    let sql = concat!(
        "SELECT ",
        role_columns!(),
        " FROM roles WHERE company_id = $1 AND name = $2"
    );
    Ok(q!(ex, opt RoleRow, sql, company, name)?)
}

/// The roles of `company`.
pub async fn list_roles(ex: &mut Ex<'_>, company: CompanyId) -> Result<Vec<RoleRow>> {
    let sql = concat!(
        "SELECT ",
        role_columns!(),
        " FROM roles WHERE company_id = $1 ORDER BY id"
    );
    Ok(q!(ex, all RoleRow, sql, company)?)
}

/// Creates a custom role.
pub async fn create_role(
    ex: &mut Ex<'_>,
    company: CompanyId,
    name: &str,
    perms: &PermissionSet,
) -> Result<RoleRow> {
    let now = now_ms();
    let id = q!(ex, scalar i64,
        "INSERT INTO roles (company_id, name, permissions, builtin, created_at, updated_at) \
         VALUES ($1, $2, $3, FALSE, $4, $4) RETURNING id",
        company, name, perms.to_stored(), now)?;
    get_role(ex, company, id)
        .await?
        .ok_or_else(|| super::StoreError::Database(sqlx::Error::RowNotFound))
}

/// Renames a role or changes its permissions.
pub async fn update_role(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    name: Option<&str>,
    perms: Option<&PermissionSet>,
) -> Result<Option<RoleRow>> {
    let n = q!(
        ex,
        exec,
        "UPDATE roles SET name = COALESCE($3, name), permissions = COALESCE($4, permissions), updated_at = $5 \
         WHERE company_id = $1 AND id = $2",
        company,
        id,
        name,
        perms.map(|p| p.to_stored()),
        now_ms()
    )?;
    if n == 0 {
        return Ok(None);
    }
    get_role(ex, company, id).await
}

/// Deletes a role; `false` if there was none.
pub async fn delete_role(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM roles WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// An invitation to join a company.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Invitation {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Invited email.
    pub email: String,
    /// Suggested name.
    pub name: Option<String>,
    /// Role the new user gets.
    pub role_id: i64,
    /// Who invited.
    pub invited_by: Option<UserId>,
    /// Expiry.
    pub expires_at: Timestamp,
    /// When it was accepted, if it was.
    pub accepted_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
}

macro_rules! invitation_columns {
    () => {
        "id, company_id, email, name, role_id, invited_by, expires_at, accepted_at, created_at"
    };
}

/// Stores an invitation; only the token's hash is kept.
#[allow(clippy::too_many_arguments)]
pub async fn create_invitation(
    ex: &mut Ex<'_>,
    company: CompanyId,
    email: &str,
    name: Option<&str>,
    role_id: i64,
    token_hash: &str,
    invited_by: Option<UserId>,
    expires_at: i64,
) -> Result<Invitation> {
    let id = q!(ex, scalar i64,
        "INSERT INTO invitations (company_id, email, name, role_id, token_hash, invited_by, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        company, email, name, role_id, token_hash, invited_by, expires_at, now_ms())?;
    get_invitation(ex, company, id)
        .await?
        .ok_or_else(|| super::StoreError::Database(sqlx::Error::RowNotFound))
}

/// The invitation `id` of `company`.
pub async fn get_invitation(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
) -> Result<Option<Invitation>> {
    let sql = concat!(
        "SELECT ",
        invitation_columns!(),
        " FROM invitations WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt Invitation, sql, company, id)?)
}

/// The invitations of `company`, newest first.
pub async fn list_invitations(ex: &mut Ex<'_>, company: CompanyId) -> Result<Vec<Invitation>> {
    let sql = concat!(
        "SELECT ",
        invitation_columns!(),
        " FROM invitations WHERE company_id = $1 ORDER BY id DESC"
    );
    Ok(q!(ex, all Invitation, sql, company)?)
}

/// The invitation whose token hashes to `token_hash` (the accept flow has no company yet).
pub async fn invitation_by_token(ex: &mut Ex<'_>, token_hash: &str) -> Result<Option<Invitation>> {
    let sql = concat!(
        "SELECT ",
        invitation_columns!(),
        " FROM invitations WHERE token_hash = $1"
    );
    Ok(q!(ex, opt Invitation, sql, token_hash)?)
}

/// Marks an invitation accepted, once: `false` if it already was.
pub async fn mark_invitation_accepted(ex: &mut Ex<'_>, id: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "UPDATE invitations SET accepted_at = $2 WHERE id = $1 AND accepted_at IS NULL",
        id,
        now_ms()
    )?;
    Ok(n > 0)
}

/// Deletes (revokes) an invitation.
pub async fn delete_invitation(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM invitations WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// Takes a write lock on a role's row until the transaction ends (a no-op update, which both
/// SQLite and PostgreSQL treat as a write), to serialise checks that count the role's users.
pub async fn lock_role(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE roles SET updated_at = updated_at WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(())
}

/// The presence `user` chose (`available` or `away`); `None` when they never chose.
pub async fn presence(ex: &mut Ex<'_>, company: CompanyId, user: UserId) -> Result<Option<String>> {
    Ok(q!(ex, scalar_opt String,
        "SELECT presence FROM agent_presence WHERE company_id = $1 AND user_id = $2",
        company, user)?)
}

/// Stores the presence `user` chose; `false` when there is no such user.
pub async fn set_presence(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    presence: &str,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "INSERT INTO agent_presence (user_id, company_id, presence, updated_at) \
         SELECT id, company_id, $3, $4 FROM users WHERE company_id = $1 AND id = $2 \
         ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, \
           updated_at = excluded.updated_at",
        company,
        user,
        presence,
        now_ms()
    )?;
    Ok(n > 0)
}

/// An agent as the presence list shows them.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AgentRow {
    /// The user.
    pub id: UserId,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// SIP username (extension), if any.
    pub extension: Option<String>,
    /// The presence they chose.
    pub presence: String,
    /// Whether a SIP registration of theirs is live.
    pub registered: bool,
}

/// The users of `company` with their extension, chosen presence and whether a softphone of
/// theirs is registered (at `now_ms`).
pub async fn agents(ex: &mut Ex<'_>, company: CompanyId, now_ms: i64) -> Result<Vec<AgentRow>> {
    Ok(q!(ex, all AgentRow,
        "SELECT u.id, u.name, u.email, s.username AS extension, \
           COALESCE(p.presence, 'available') AS presence, \
           EXISTS (SELECT 1 FROM sip_registrations r \
                   WHERE r.company_id = u.company_id AND r.user_id = u.id AND r.expires_at > $2) \
             AS registered \
         FROM users u LEFT JOIN sip_accounts s ON s.user_id = u.id AND s.company_id = u.company_id \
           LEFT JOIN agent_presence p ON p.user_id = u.id \
         WHERE u.company_id = $1 ORDER BY u.name, u.id",
        company, now_ms)?)
}
