//! API tokens for integrations: `Authorization: Bearer <token>`, stored hashed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::required_text;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::http::{AppState, created};
use crate::secrets::{new_token, token_hash};
use crate::store::{self, audit, auth::ApiToken};

/// Prefix of API tokens, so that secret scanners can recognise them.
pub(crate) const TOKEN_PREFIX: &str = "mzt_";

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
}

/// A new token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenCreate {
    /// Label, e.g. the integration's name.
    name: String,
}

/// A created token; the secret is shown only here.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenCreated {
    /// The token row.
    api_token: ApiToken,
    /// The secret to send as `Authorization: Bearer …`.
    token: String,
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/api-tokens", tag = "auth",
    responses((status = 200, body = Vec<ApiToken>), (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::TokensWrite>,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        store::auth::list_tokens(&mut conn.ex(), auth.company(), auth.principal.user_id).await?,
    ))
}

/// Creates an API token acting as the caller. Audited.
#[utoipa::path(post, path = "/api-tokens", tag = "auth", request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::TokensWrite>,
    ApiJson(req): ApiJson<TokenCreate>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let name = required_text("name", &req.name, 100)?;
    let token = new_token(TOKEN_PREFIX)?;
    let mut tx = state.db.begin().await?;
    let row = store::auth::create_token(
        &mut tx.ex(),
        auth.company(),
        auth.principal.user_id,
        &name,
        &token_hash(token.expose()),
    )
    .await?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "create",
        "api_token",
        Some(row.id),
        &serde_json::json!({"name": name}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(TokenCreated {
        api_token: row,
        token: token.expose().clone(),
    }))
}

/// Revokes one of the caller's tokens. Audited.
#[utoipa::path(delete, path = "/api-tokens/{id}", tag = "auth", params(("id" = i64, Path, description = "token id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody)))]
async fn delete_token(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::TokensWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    if !store::auth::delete_token(&mut tx.ex(), auth.company(), auth.principal.user_id, id).await? {
        return Err(ApiError::not_found("API token"));
    }
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "delete",
        "api_token",
        Some(id),
        &serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
