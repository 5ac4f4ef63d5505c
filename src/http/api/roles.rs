//! Roles and their permission sets (P3).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::required_text;
use crate::domain::{Permission, PermissionSet, Timestamp};
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::http::extract::{Auth, Authz, perm};
use crate::http::{AppState, created};
use crate::store::{self, audit, users::RoleRow};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
}

/// A role.
#[derive(Serialize, ToSchema)]
pub(super) struct Role {
    /// Id.
    id: i64,
    /// Name, unique in the company.
    name: String,
    /// What the role allows.
    permissions: Vec<Permission>,
    /// Built-in roles (`admin`, `agent`) cannot be renamed or deleted.
    builtin: bool,
    /// Created.
    created_at: Timestamp,
    /// Last changed.
    updated_at: Timestamp,
}

impl From<RoleRow> for Role {
    fn from(r: RoleRow) -> Self {
        Self {
            permissions: r.permission_set().iter().collect(),
            id: r.id,
            name: r.name,
            builtin: r.builtin,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A new role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleCreate {
    /// Name.
    name: String,
    /// Permissions.
    permissions: Vec<Permission>,
}

/// A change to a role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleUpdate {
    /// Name.
    name: Option<String>,
    /// Permissions (replace the set).
    permissions: Option<Vec<Permission>>,
}

/// Refuses a permission set with anything the caller lacks.
fn grantable(auth: &Auth, perms: &PermissionSet) -> Result<(), ApiError> {
    match perms.iter().find(|p| !auth.principal.can(*p)) {
        Some(p) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("cannot grant {p}, which you do not have"),
        )),
        None => Ok(()),
    }
}

/// The company's roles.
#[utoipa::path(get, path = "/roles", tag = "roles",
    responses((status = 200, body = Vec<Role>), (status = 403, body = ErrorBody)))]
async fn list_roles(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RolesRead>,
) -> Result<Json<Vec<Role>>, ApiError> {
    let mut conn = state.db.conn().await?;
    let roles = store::users::list_roles(&mut conn.ex(), auth.company()).await?;
    Ok(Json(roles.into_iter().map(Role::from).collect()))
}

/// Creates a role. Audited.
#[utoipa::path(post, path = "/roles", tag = "roles", request_body = RoleCreate,
    responses((status = 201, body = Role), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_role(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RolesWrite>,
    ApiJson(req): ApiJson<RoleCreate>,
) -> Result<(StatusCode, Json<Role>), ApiError> {
    let name = required_text("name", &req.name, 100)?;
    let perms = PermissionSet::new(req.permissions);
    grantable(&auth, &perms)?;
    let mut tx = state.db.begin().await?;
    let role = store::users::create_role(&mut tx.ex(), auth.company(), &name, &perms).await?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "create",
        "role",
        Some(role.id),
        &serde_json::json!({"name": name, "permissions": perms.to_stored()}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(Role::from(role)))
}

/// One role.
#[utoipa::path(get, path = "/roles/{id}", tag = "roles", params(("id" = i64, Path, description = "role id")),
    responses((status = 200, body = Role), (status = 404, body = ErrorBody)))]
async fn get_role(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RolesRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Role>, ApiError> {
    let mut conn = state.db.conn().await?;
    store::users::get_role(&mut conn.ex(), auth.company(), id)
        .await?
        .map(|r| Json(Role::from(r)))
        .ok_or_else(|| ApiError::not_found("role"))
}

/// Renames a role or replaces its permissions. Built-in roles keep their names; the `admin`
/// role keeps every permission, so a company cannot lock itself out. Audited.
#[utoipa::path(patch, path = "/roles/{id}", tag = "roles", params(("id" = i64, Path, description = "role id")),
    request_body = RoleUpdate,
    responses((status = 200, body = Role), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_role(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RolesWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RoleUpdate>,
) -> Result<Json<Role>, ApiError> {
    let name = req
        .name
        .as_deref()
        .map(|n| required_text("name", n, 100))
        .transpose()?;
    let perms = req.permissions.map(PermissionSet::new);
    if let Some(p) = &perms {
        grantable(&auth, p)?;
    }
    let mut tx = state.db.begin().await?;
    let role = store::users::get_role(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("role"))?;
    if role.builtin && name.as_ref().is_some_and(|n| *n != role.name) {
        return Err(ApiError::conflict("built-in roles cannot be renamed"));
    }
    if role.builtin
        && role.name == store::companies::ADMIN_ROLE
        && perms.as_ref().is_some_and(|p| *p != PermissionSet::all())
    {
        return Err(ApiError::conflict("the admin role keeps every permission"));
    }
    let role = store::users::update_role(
        &mut tx.ex(),
        auth.company(),
        id,
        name.as_deref(),
        perms.as_ref(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("role"))?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "update",
        "role",
        Some(id),
        &serde_json::json!({"name": name, "permissions": perms.map(|p| p.to_stored())}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Role::from(role)))
}

/// Deletes a custom role that no user has. Audited.
#[utoipa::path(delete, path = "/roles/{id}", tag = "roles", params(("id" = i64, Path, description = "role id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_role(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RolesWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let role = store::users::get_role(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("role"))?;
    if role.builtin {
        return Err(ApiError::conflict("built-in roles cannot be deleted"));
    }
    if store::users::count_with_role(&mut tx.ex(), auth.company(), id).await? > 0 {
        return Err(ApiError::conflict("the role is assigned to users"));
    }
    store::users::delete_role(&mut tx.ex(), auth.company(), id).await?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "delete",
        "role",
        Some(id),
        &serde_json::json!({"name": role.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
