//! Channel accounts. Credentials are write-only: accepted on create and update, encrypted at
//! rest (P23), never returned, and redacted in the audit log.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::telephony::{check_trunk_credentials, trunk_settings};
use super::{optional_text, required_text};
use crate::domain::ChannelKind;
use crate::domain::trunk::TrunkSettings;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, double_option};
use crate::http::extract::{Authz, perm};
use crate::http::{AppState, created};
use crate::store::{
    self, audit,
    channels::{ChannelAccount, seal},
};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account, delete_account))
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Channel account filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AccountQuery {
    /// Only this kind.
    kind: Option<ChannelKind>,
}

/// A new channel account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountCreate {
    /// Kind.
    kind: ChannelKind,
    /// Label.
    name: String,
    /// The provider's id of the account (Page id, phone number id, WAHA session, trunk host…).
    external_id: Option<String>,
    /// Non-secret settings.
    #[schema(value_type = Object)]
    settings: Option<JsonObject>,
    /// Secret fields (tokens, keys, passwords). Write-only: stored encrypted, never returned.
    #[schema(value_type = Object)]
    credentials: Option<JsonObject>,
}

/// A change to a channel account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountUpdate {
    /// Label.
    name: Option<String>,
    /// Provider's id (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    external_id: Option<Option<String>>,
    /// Non-secret settings (replace them).
    #[schema(value_type = Object)]
    settings: Option<JsonObject>,
    /// Secret fields (replace them all). Write-only.
    #[schema(value_type = Object)]
    credentials: Option<JsonObject>,
}

const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

fn sealed(
    state: &AppState,
    credentials: Option<&JsonObject>,
) -> Result<Option<(String, String)>, ApiError> {
    let Some(creds) = credentials else {
        return Ok(None);
    };
    if creds.values().any(|v| !v.is_string()) {
        return Err(ApiError::invalid(
            "credentials",
            "every credential must be a string",
        ));
    }
    if serde_json::to_vec(creds).map_or(0, |v| v.len()) > MAX_CREDENTIAL_BYTES {
        return Err(ApiError::invalid("credentials", "too large"));
    }
    Ok(Some(seal(&state.keyring, creds)?))
}

/// The company's channel accounts (without credentials).
#[utoipa::path(get, path = "/channel-accounts", tag = "channels", params(AccountQuery),
    responses((status = 200, body = Vec<ChannelAccount>), (status = 403, body = ErrorBody)))]
async fn list_accounts(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsRead>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> Result<Json<Vec<ChannelAccount>>, ApiError> {
    let mut conn = state.db.conn().await?;
    let accounts =
        store::channels::list(&mut conn.ex(), auth.company(), q.kind.map(|k| k.as_str())).await?;
    Ok(Json(
        accounts.into_iter().map(|a| with_url(&state, a)).collect(),
    ))
}

/// The account with the webhook URL its provider must call.
fn with_url(state: &AppState, mut account: ChannelAccount) -> ChannelAccount {
    account.webhook_url =
        crate::messaging::webhook_url(&state.public_base, &account.kind, account.id);
    account
}

/// Connects a channel account. Audited (credentials redacted). A `sip_trunk`'s settings are
/// checked and normalised (422 naming the field), and its only credential is `password`.
#[utoipa::path(post, path = "/channel-accounts", tag = "channels", request_body = AccountCreate,
    responses((status = 201, body = ChannelAccount), (status = 422, body = ErrorBody)))]
async fn create_account(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiJson(req): ApiJson<AccountCreate>,
) -> Result<(StatusCode, Json<ChannelAccount>), ApiError> {
    let name = required_text("name", &req.name, 200)?;
    let external_id = optional_text("external_id", req.external_id.as_deref(), 512)?;
    let raw_settings = req.settings.clone().unwrap_or_default();
    let settings = match req.kind {
        ChannelKind::SipTrunk => trunk_settings(&raw_settings, req.credentials.as_ref(), None)?,
        _ => serde_json::Value::Object(raw_settings),
    };
    let seal = sealed(&state, req.credentials.as_ref())?;
    let mut tx = state.db.begin().await?;
    let account = store::channels::create(
        &mut tx.ex(),
        auth.company(),
        req.kind.as_str(),
        &name,
        external_id.as_deref(),
        &settings,
        seal,
    )
    .await?;
    let changes = serde_json::json!({"kind": req.kind, "name": name, "external_id": external_id,
        "settings": settings, "credentials": req.credentials.as_ref().map(|_| "set")});
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "create",
        "channel_account",
        Some(account.id),
        &audit::redact(&changes),
    )
    .await?;
    tx.commit().await?;
    state.messaging.directory.invalidate();
    Ok(created(with_url(&state, account)))
}

/// One channel account (without credentials).
#[utoipa::path(get, path = "/channel-accounts/{id}", tag = "channels", params(("id" = i64, Path, description = "channel account id")),
    responses((status = 200, body = ChannelAccount), (status = 404, body = ErrorBody)))]
async fn get_account(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ChannelAccount>, ApiError> {
    let mut conn = state.db.conn().await?;
    store::channels::get(&mut conn.ex(), auth.company(), id)
        .await?
        .map(|a| Json(with_url(&state, a)))
        .ok_or_else(|| ApiError::not_found("channel account"))
}

/// Changes a channel account; new credentials replace the old ones. Audited.
#[utoipa::path(patch, path = "/channel-accounts/{id}", tag = "channels", params(("id" = i64, Path, description = "channel account id")),
    request_body = AccountUpdate,
    responses((status = 200, body = ChannelAccount), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_account(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<AccountUpdate>,
) -> Result<Json<ChannelAccount>, ApiError> {
    let name = req
        .name
        .as_deref()
        .map(|n| required_text("name", n, 200))
        .transpose()?;
    let external_id = req
        .external_id
        .as_ref()
        .map(|e| optional_text("external_id", e.as_deref(), 512))
        .transpose()?;
    let mut settings = req.settings.clone().map(serde_json::Value::Object);
    let seal = sealed(&state, req.credentials.as_ref())?;
    let mut tx = state.db.begin().await?;
    let current = store::channels::get(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel account"))?;
    // A change of a trunk's recording switch gets an audit row of its own (P9).
    let mut recording_switch = None;
    if current.kind == ChannelKind::SipTrunk.as_str() {
        let stored_keys = Some(current.credential_keys.as_str());
        match &req.settings {
            Some(new) => {
                let checked = trunk_settings(new, req.credentials.as_ref(), stored_keys)?;
                let was = TrunkSettings::from_json(&current.settings.0)
                    .ok()
                    .and_then(|s| s.recording);
                let now = TrunkSettings::from_json(&checked)
                    .ok()
                    .and_then(|s| s.recording);
                if was != now {
                    recording_switch = Some(now);
                }
                settings = Some(checked);
            }
            // New credentials against the stored settings (unless those predate validation).
            None => {
                if let Ok(stored) = TrunkSettings::from_json(&current.settings.0) {
                    check_trunk_credentials(&stored, req.credentials.as_ref(), stored_keys)?;
                }
            }
        }
    }
    let account = store::channels::update(
        &mut tx.ex(),
        auth.company(),
        id,
        name.as_deref(),
        external_id.clone(),
        settings.as_ref(),
        seal,
    )
    .await?
    .ok_or_else(|| ApiError::not_found("channel account"))?;
    if let Some(now) = recording_switch {
        let action = match now {
            Some(true) => "recording_on",
            Some(false) => "recording_off",
            None => "recording_inherit",
        };
        audit::record(
            &mut tx.ex(),
            auth.company(),
            &auth.actor(),
            action,
            "channel_account",
            Some(id),
            &serde_json::json!({ "recording": now }),
        )
        .await?;
    }
    let changes = serde_json::json!({"name": name, "external_id": external_id, "settings": settings,
        "credentials": req.credentials.as_ref().map(|_| "replaced")});
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "update",
        "channel_account",
        Some(id),
        &audit::redact(&changes),
    )
    .await?;
    tx.commit().await?;
    state.messaging.directory.invalidate();
    Ok(Json(with_url(&state, account)))
}

/// Disconnects a channel account and forgets its credentials. Audited.
#[utoipa::path(delete, path = "/channel-accounts/{id}", tag = "channels", params(("id" = i64, Path, description = "channel account id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
async fn delete_account(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let account = store::channels::get(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel account"))?;
    store::channels::delete(&mut tx.ex(), auth.company(), id).await?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "delete",
        "channel_account",
        Some(id),
        &serde_json::json!({"kind": account.kind, "name": account.name}),
    )
    .await?;
    tx.commit().await?;
    state.messaging.directory.invalidate();
    Ok(StatusCode::NO_CONTENT)
}
