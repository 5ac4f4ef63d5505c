//! Users of the company, their login history, and invitations.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{optional_text, optional_url, required_text};
use crate::domain::{CompanyId, UserId, normalize_email};
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorBody, double_option};
use crate::http::extract::{Auth, Authz, perm};
use crate::http::{AppState, created};
use crate::secrets::{new_token, token_hash};
use crate::store::{
    self, Ex, audit,
    auth::LoginEvent,
    users::{Invitation, NewUser, RoleRow, User, UserPatch},
};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(user_logins))
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(delete_invitation))
        .routes(routes!(accept_invitation))
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserCreate {
    /// Name.
    name: String,
    /// Email (unique across masterz).
    email: String,
    /// Password (8–72 bytes); stored as a bcrypt hash, cost 12.
    password: String,
    /// Role id.
    role_id: i64,
    /// Avatar URL.
    avatar_url: Option<String>,
}

/// A change to a user; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserUpdate {
    /// Name.
    name: Option<String>,
    /// Email.
    email: Option<String>,
    /// Role id.
    role_id: Option<i64>,
    /// Avatar URL (`null` clears it).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    /// New password; ends the user's sessions.
    password: Option<String>,
}

/// Checks that the role exists in the company and grants nothing the caller lacks: nobody can
/// hand out (or take for themselves) more than they have.
async fn grantable_role(ex: &mut Ex<'_>, auth: &Auth, role_id: i64) -> Result<RoleRow, ApiError> {
    let role = store::users::get_role(ex, auth.company(), role_id)
        .await?
        .ok_or_else(|| ApiError::invalid("role_id", "no such role"))?;
    if let Some(p) = role
        .permission_set()
        .iter()
        .find(|p| !auth.principal.can(*p))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("cannot grant {p}, which you do not have"),
        ));
    }
    Ok(role)
}

/// Refuses to act on a user who holds a permission the caller lacks: changing their password or
/// email, or deleting them, would hand the caller that permission (or take it from the company).
pub(super) async fn manageable_user(
    ex: &mut Ex<'_>,
    auth: &Auth,
    user: UserId,
) -> Result<User, ApiError> {
    let target = store::users::get_user(ex, auth.company(), user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let role = store::users::get_role(ex, auth.company(), target.role_id).await?;
    if let Some(p) = role
        .map(|r| r.permission_set())
        .unwrap_or_default()
        .iter()
        .find(|p| !auth.principal.can(*p))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this user holds {p}, which you do not have"),
        ));
    }
    Ok(target)
}

/// Refuses to remove the company's last admin (by deletion or by a role change).
async fn keep_an_admin(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: UserId,
    new_role: Option<i64>,
) -> Result<(), ApiError> {
    let Some(current) = store::users::get_user(ex, company, user).await? else {
        return Ok(());
    };
    let Some(admin) = store::users::role_by_name(ex, company, store::companies::ADMIN_ROLE).await?
    else {
        return Ok(());
    };
    let loses_admin = current.role_id == admin.id && new_role.is_none_or(|r| r != admin.id);
    if loses_admin {
        // Lock the admin role's row (a write, in both databases) so that two concurrent
        // demotions serialise here and the second one counts what the first one left.
        store::users::lock_role(ex, company, admin.id).await?;
    }
    if loses_admin && store::users::count_with_role(ex, company, admin.id).await? <= 1 {
        return Err(ApiError::conflict(
            "the company's last admin cannot be removed or demoted",
        ));
    }
    Ok(())
}

fn email_field(text: &str) -> Result<String, ApiError> {
    normalize_email(text).ok_or_else(|| ApiError::invalid("email", "not an email address"))
}

/// The company's users.
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = Vec<User>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersRead>,
) -> Result<Json<Vec<User>>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        store::users::list_users(&mut conn.ex(), auth.company()).await?,
    ))
}

/// Creates a user. Audited.
#[utoipa::path(post, path = "/users", tag = "users", request_body = UserCreate,
    responses((status = 201, body = User), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersWrite>,
    ApiJson(req): ApiJson<UserCreate>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let name = required_text("name", &req.name, 200)?;
    let email = email_field(&req.email)?;
    let avatar = optional_url("avatar_url", req.avatar_url.as_deref())?;
    let hash = crate::auth::hash_password(&req.password).await?;
    let mut tx = state.db.begin().await?;
    grantable_role(&mut tx.ex(), &auth, req.role_id).await?;
    let new = NewUser {
        role_id: req.role_id,
        name: &name,
        email: &email,
        password_hash: &hash,
        avatar_url: avatar.as_deref(),
    };
    let user = store::users::create_user(&mut tx.ex(), auth.company(), &new).await?;
    let changes = serde_json::json!({"name": name, "email": email, "role_id": req.role_id, "avatar_url": avatar, "password": "set"});
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "create",
        "user",
        Some(user.id.0),
        &audit::redact(&changes),
    )
    .await?;
    tx.commit().await?;
    Ok(created(user))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<User>, ApiError> {
    let mut conn = state.db.conn().await?;
    store::users::get_user(&mut conn.ex(), auth.company(), UserId(id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

/// Changes a user. A new password ends their sessions. Audited.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")),
    request_body = UserUpdate,
    responses((status = 200, body = User), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UserUpdate>,
) -> Result<Json<User>, ApiError> {
    let mut patch = UserPatch {
        name: req
            .name
            .as_deref()
            .map(|n| required_text("name", n, 200))
            .transpose()?,
        email: req.email.as_deref().map(email_field).transpose()?,
        role_id: req.role_id,
        avatar_url: match &req.avatar_url {
            Some(v) => Some(optional_url("avatar_url", v.as_deref())?),
            None => None,
        },
        password_hash: None,
    };
    if let Some(pw) = &req.password {
        patch.password_hash = Some(crate::auth::hash_password(pw).await?);
    }
    let mut tx = state.db.begin().await?;
    manageable_user(&mut tx.ex(), &auth, UserId(id)).await?;
    if let Some(role) = req.role_id {
        grantable_role(&mut tx.ex(), &auth, role).await?;
        keep_an_admin(&mut tx.ex(), auth.company(), UserId(id), Some(role)).await?;
    }
    let user = store::users::update_user(&mut tx.ex(), auth.company(), UserId(id), &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if patch.password_hash.is_some() {
        store::auth::delete_user_sessions(&mut tx.ex(), user.id).await?;
    }
    let changes = serde_json::json!({"name": patch.name, "email": patch.email, "role_id": patch.role_id,
        "avatar_url": req.avatar_url, "password": req.password.as_ref().map(|_| "changed")});
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "update",
        "user",
        Some(id),
        &audit::redact(&changes),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(user))
}

/// Deletes a user (not oneself). Audited.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = i64, Path, description = "user id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_user(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if auth.principal.user_id == UserId(id) {
        return Err(ApiError::conflict("you cannot delete yourself"));
    }
    let mut tx = state.db.begin().await?;
    let user = manageable_user(&mut tx.ex(), &auth, UserId(id)).await?;
    keep_an_admin(&mut tx.ex(), auth.company(), user.id, None).await?;
    store::users::delete_user(&mut tx.ex(), auth.company(), UserId(id)).await?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "delete",
        "user",
        Some(id),
        &serde_json::json!({"email": user.email, "name": user.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's login history: IP, user agent, time and outcome of each attempt (P4).
#[utoipa::path(get, path = "/users/{id}/logins", tag = "users", params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = Vec<LoginEvent>), (status = 404, body = ErrorBody)))]
async fn user_logins(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<LoginEvent>>, ApiError> {
    let mut conn = state.db.conn().await?;
    store::users::get_user(&mut conn.ex(), auth.company(), UserId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(
        store::auth::login_events(&mut conn.ex(), auth.company(), UserId(id), 200).await?,
    ))
}

/// A new invitation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InvitationCreate {
    /// Email of the person invited.
    email: String,
    /// Suggested name.
    name: Option<String>,
    /// Role they get.
    role_id: i64,
}

/// An invitation with its token, shown once.
#[derive(Serialize, ToSchema)]
pub(super) struct InvitationCreated {
    /// The invitation.
    invitation: Invitation,
    /// The secret token; only its hash is stored.
    token: String,
    /// Where the invited person sets their password.
    accept_url: String,
}

/// The company's invitations.
#[utoipa::path(get, path = "/invitations", tag = "users",
    responses((status = 200, body = Vec<Invitation>), (status = 403, body = ErrorBody)))]
async fn list_invitations(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersRead>,
) -> Result<Json<Vec<Invitation>>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        store::users::list_invitations(&mut conn.ex(), auth.company()).await?,
    ))
}

/// Invites someone. The token is returned once and stored hashed. Audited.
#[utoipa::path(post, path = "/invitations", tag = "users", request_body = InvitationCreate,
    responses((status = 201, body = InvitationCreated), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_invitation(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersWrite>,
    ApiJson(req): ApiJson<InvitationCreate>,
) -> Result<(StatusCode, Json<InvitationCreated>), ApiError> {
    let email = email_field(&req.email)?;
    let name = optional_text("name", req.name.as_deref(), 200)?;
    let token = new_token("inv_")?;
    let expires_at = store::now_ms() + state.config.invitation_ttl_hours as i64 * 3_600_000;
    let mut tx = state.db.begin().await?;
    grantable_role(&mut tx.ex(), &auth, req.role_id).await?;
    if store::users::login_user(&mut tx.ex(), &email)
        .await?
        .is_some()
    {
        return Err(ApiError::conflict("a user with this email exists"));
    }
    let invitation = store::users::create_invitation(
        &mut tx.ex(),
        auth.company(),
        &email,
        name.as_deref(),
        req.role_id,
        &token_hash(token.expose()),
        Some(auth.principal.user_id),
        expires_at,
    )
    .await?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "create",
        "invitation",
        Some(invitation.id),
        &serde_json::json!({"email": email, "role_id": req.role_id}),
    )
    .await?;
    tx.commit().await?;
    let base = &state.public_base;
    Ok(created(InvitationCreated {
        accept_url: format!("{base}/accept-invitation#token={}", token.expose()),
        token: token.expose().clone(),
        invitation,
    }))
}

/// Revokes an invitation. Audited.
#[utoipa::path(delete, path = "/invitations/{id}", tag = "users", params(("id" = i64, Path, description = "invitation id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody)))]
async fn delete_invitation(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    if !store::users::delete_invitation(&mut tx.ex(), auth.company(), id).await? {
        return Err(ApiError::not_found("invitation"));
    }
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "delete",
        "invitation",
        Some(id),
        &serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepting an invitation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InvitationAccept {
    /// The token from the invitation link.
    token: String,
    /// Name (defaults to the invitation's).
    name: Option<String>,
    /// Password to set.
    password: String,
}

/// Accepts an invitation: creates the user with the chosen password. No login needed; the token
/// is the credential, usable once, until it expires.
#[utoipa::path(post, path = "/invitations/accept", tag = "users", security(()), request_body = InvitationAccept,
    responses((status = 201, body = User), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn accept_invitation(
    State(state): State<Arc<AppState>>,
    meta: crate::http::extract::ClientMeta,
    ApiJson(req): ApiJson<InvitationAccept>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let hash = crate::auth::hash_password(&req.password).await?;
    let mut tx = state.db.begin().await?;
    let inv = store::users::invitation_by_token(&mut tx.ex(), &token_hash(req.token.trim()))
        .await?
        .filter(|i| i.accepted_at.is_none() && i.expires_at.0 > store::now_ms())
        .ok_or_else(|| ApiError::not_found("invitation (it may have expired or been used)"))?;
    let name = match optional_text("name", req.name.as_deref(), 200)? {
        Some(n) => n,
        None => inv.name.clone().unwrap_or_else(|| inv.email.clone()),
    };
    if !store::users::mark_invitation_accepted(&mut tx.ex(), inv.id).await? {
        return Err(ApiError::conflict("invitation already used"));
    }
    let new = NewUser {
        role_id: inv.role_id,
        name: &name,
        email: &inv.email,
        password_hash: &hash,
        avatar_url: None,
    };
    let user = store::users::create_user(&mut tx.ex(), inv.company_id, &new).await?;
    let actor = audit::Actor {
        user_id: Some(user.id),
        label: user.email.clone(),
        ip: Some(meta.ip.to_string()),
        user_agent: meta.user_agent.clone(),
    };
    audit::record(
        &mut tx.ex(),
        inv.company_id,
        &actor,
        "accept",
        "invitation",
        Some(inv.id),
        &serde_json::json!({"user_id": user.id, "email": user.email}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(user))
}
