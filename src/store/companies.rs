//! Companies (tenants) and their built-in roles.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, now_ms, q};
use crate::domain::{Permission, PermissionSet, Timestamp};

/// A company: a tenant of masterz.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Company {
    /// Id.
    pub id: CompanyId,
    /// Display name.
    pub name: String,
    /// Unique short name, used in URLs and on the command line.
    pub slug: String,
    /// Plan tier, e.g. `free`, `team`, `business`.
    pub plan_tier: String,
    /// IANA time zone used for reports.
    pub time_zone: String,
    /// Theme of the agent web app.
    pub theme: String,
    /// `active` or `closed`.
    pub status: String,
    /// Whether calls are recorded when their trunk does not say (default `false`: never).
    pub recording_enabled: bool,
    /// Days a recording is kept; `null`: until its call, customer or company is deleted.
    pub recording_retention_days: Option<i64>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

macro_rules! columns {
    () => {
        "id, name, slug, plan_tier, time_zone, theme, status, recording_enabled, \
         recording_retention_days, created_at, updated_at"
    };
}

/// The names of the built-in roles that every company gets.
pub const ADMIN_ROLE: &str = "admin";
/// See [`ADMIN_ROLE`].
pub const AGENT_ROLE: &str = "agent";

/// Creates a company with its built-in `admin` and `agent` roles.
pub async fn create(ex: &mut Ex<'_>, name: &str, slug: &str) -> Result<Company> {
    let now = now_ms();
    let id: i64 = q!(ex, scalar i64,
        "INSERT INTO companies (name, slug, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
        name, slug, now)?;
    let company = CompanyId(id);
    for (role, perms) in [
        (ADMIN_ROLE, PermissionSet::all()),
        (
            AGENT_ROLE,
            PermissionSet::new(Permission::AGENT.iter().copied()),
        ),
    ] {
        q!(
            ex,
            exec,
            "INSERT INTO roles (company_id, name, permissions, builtin, created_at, updated_at) \
             VALUES ($1, $2, $3, TRUE, $4, $4)",
            company,
            role,
            perms.to_stored(),
            now
        )?;
    }
    get(ex, company).await
}

/// The company with `id` (whatever its status).
pub async fn get(ex: &mut Ex<'_>, id: CompanyId) -> Result<Company> {
    let sql = concat!("SELECT ", columns!(), " FROM companies WHERE id = $1");
    Ok(q!(ex, one Company, sql, id)?)
}

/// The company with `slug`.
pub async fn by_slug(ex: &mut Ex<'_>, slug: &str) -> Result<Option<Company>> {
    let sql = concat!("SELECT ", columns!(), " FROM companies WHERE slug = $1");
    Ok(q!(ex, opt Company, sql, slug)?)
}

/// All companies.
pub async fn list(ex: &mut Ex<'_>) -> Result<Vec<Company>> {
    let sql = concat!("SELECT ", columns!(), " FROM companies ORDER BY id");
    Ok(q!(ex, all Company, sql)?)
}

/// A change to the company profile; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct CompanyPatch {
    /// New name.
    pub name: Option<String>,
    /// New plan tier.
    pub plan_tier: Option<String>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// New theme.
    pub theme: Option<String>,
    /// Record calls by default.
    pub recording_enabled: Option<bool>,
    /// New retention of recordings in days (`Some(None)`: keep them).
    pub recording_retention_days: Option<Option<i64>>,
}

/// Applies `patch` to the company.
pub async fn update(ex: &mut Ex<'_>, id: CompanyId, patch: &CompanyPatch) -> Result<Company> {
    let retention = patch.recording_retention_days;
    q!(
        ex,
        exec,
        "UPDATE companies SET name = COALESCE($2, name), plan_tier = COALESCE($3, plan_tier), \
         time_zone = COALESCE($4, time_zone), theme = COALESCE($5, theme), updated_at = $6, \
         recording_enabled = COALESCE($7, recording_enabled), \
         recording_retention_days = CASE WHEN $8 THEN $9 ELSE recording_retention_days END \
         WHERE id = $1",
        id,
        patch.name.as_deref(),
        patch.plan_tier.as_deref(),
        patch.time_zone.as_deref(),
        patch.theme.as_deref(),
        now_ms(),
        patch.recording_enabled,
        retention.is_some(),
        retention.flatten()
    )?;
    get(ex, id).await
}

/// Whether any user exists (first-run detection).
pub async fn any_user(ex: &mut Ex<'_>) -> Result<bool> {
    let n = q!(ex, scalar i64, "SELECT COUNT(*) FROM users")?;
    Ok(n > 0)
}

/// Gives every company's built-in `admin` role every permission this version knows, so a
/// permission added by an upgrade reaches existing admins. Runs at start-up after migrations.
pub async fn sync_builtin_roles(ex: &mut Ex<'_>) -> Result<u64> {
    Ok(q!(
        ex,
        exec,
        "UPDATE roles SET permissions = $1, updated_at = $2 WHERE builtin = TRUE AND name = $3 AND permissions <> $1",
        PermissionSet::all().to_stored(),
        now_ms(),
        ADMIN_ROLE
    )?)
}
