//! Telephony: users' SIP credentials, who is registered with the SIP registrar, and the SIP
//! trunks with their registration to the provider. Registrations and trunk states are read-only
//! here; the registrar and the trunk driver write them. Trunks are created and changed as
//! `sip_trunk` channel accounts, whose settings are checked by [`trunk_settings`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::manageable_user;
use crate::domain::UserId;
use crate::domain::sip::{check_sip_password, valid_sip_username};
use crate::domain::trunk::TrunkSettings;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::store::{self, audit, sip::Registration, trunks::Trunk, users::User};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_registrations))
        .routes(routes!(list_trunks))
        .routes(routes!(set_sip_credentials, clear_sip_credentials))
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Checks and normalises the settings of a `sip_trunk` channel account; returns what to store.
///
/// `credentials` are the new credentials, if the request has any; `stored_keys` the names of the
/// credential fields already stored (on update). Registering needs a username and a password.
pub(super) fn trunk_settings(
    settings: &JsonObject,
    credentials: Option<&JsonObject>,
    stored_keys: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    let parsed = TrunkSettings::from_json(&serde_json::Value::Object(settings.clone()))?;
    check_trunk_credentials(&parsed, credentials, stored_keys)?;
    Ok(parsed.to_json())
}

/// A trunk's credentials are its password and nothing else; registering needs one.
pub(super) fn check_trunk_credentials(
    settings: &TrunkSettings,
    credentials: Option<&JsonObject>,
    stored_keys: Option<&str>,
) -> Result<(), ApiError> {
    let key = store::trunks::PASSWORD_KEY;
    if let Some(creds) = credentials {
        if let Some(other) = creds.keys().find(|k| k.as_str() != key) {
            return Err(ApiError::invalid(
                &format!("credentials.{other}"),
                "a sip_trunk takes only password",
            ));
        }
        if creds
            .get(key)
            .and_then(|v| v.as_str())
            .is_some_and(str::is_empty)
        {
            return Err(ApiError::invalid(
                "credentials.password",
                "must not be empty",
            ));
        }
    }
    let has_password = match credentials {
        Some(creds) => creds.contains_key(key),
        None => stored_keys.is_some_and(|k| k.split_whitespace().any(|k| k == key)),
    };
    settings.check_password(has_password)?;
    Ok(())
}

/// The company's current SIP registrations: which user's softphone is registered, from which
/// address, with which user agent, until when. Expired bindings are not shown.
#[utoipa::path(get, path = "/registrations", tag = "telephony",
    responses((status = 200, body = Vec<Registration>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_registrations(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersRead>,
) -> Result<Json<Vec<Registration>>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        store::sip::list_bindings(&mut conn.ex(), auth.company(), store::now_ms()).await?,
    ))
}

/// The company's SIP trunks with their settings (never the password) and registration state.
#[utoipa::path(get, path = "/trunks", tag = "telephony",
    responses((status = 200, body = Vec<Trunk>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_trunks(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsRead>,
) -> Result<Json<Vec<Trunk>>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        store::trunks::list_trunks(&mut conn.ex(), auth.company()).await?,
    ))
}

/// SIP credentials for the registrar: what a softphone is configured with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SipCredentials {
    /// Username, unique across masterz: 1–64 characters of `A-Z a-z 0-9 . _ - +`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._+-]+$")]
    username: String,
    /// Password, 8–128 characters. Write-only: stored encrypted, never returned.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

/// Sets (or replaces) a user's SIP credentials, with which their softphones register. A new
/// username ends the user's current registrations. Audited (password redacted).
#[utoipa::path(put, path = "/users/{id}/sip-credentials", tag = "users", params(("id" = i64, Path, description = "user id")),
    request_body = SipCredentials,
    responses((status = 200, body = User), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the username is taken"), (status = 422, body = ErrorBody)))]
async fn set_sip_credentials(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<SipCredentials>,
) -> Result<Json<User>, ApiError> {
    let username = req.username.trim();
    if !valid_sip_username(username) {
        return Err(ApiError::invalid(
            "username",
            "must be 1–64 characters of A-Z, a-z, 0-9, '.', '_', '-' and '+'",
        ));
    }
    check_sip_password(&req.password).map_err(|e| ApiError::invalid("password", e))?;
    let mut tx = state.db.begin().await?;
    manageable_user(&mut tx.ex(), &auth, UserId(id)).await?;
    let set = store::sip::set_credentials(
        &mut tx.ex(),
        &state.keyring,
        auth.company(),
        UserId(id),
        username,
        &req.password,
    )
    .await;
    match set {
        Ok(Some(_)) => {}
        Ok(None) => return Err(ApiError::not_found("user")),
        Err(store::StoreError::Conflict(_)) => {
            return Err(ApiError::conflict("this SIP username is taken"));
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "update",
        "user",
        Some(id),
        &audit::redact(&serde_json::json!({"sip_username": username, "sip_password": "set"})),
    )
    .await?;
    let user = store::users::get_user(&mut tx.ex(), auth.company(), UserId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    tx.commit().await?;
    Ok(Json(user))
}

/// Removes a user's SIP credentials and registrations; their softphones can no longer register.
/// Answers 204 also when the user had none. Audited.
#[utoipa::path(delete, path = "/users/{id}/sip-credentials", tag = "users", params(("id" = i64, Path, description = "user id")),
    responses((status = 204, description = "removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn clear_sip_credentials(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsersWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    manageable_user(&mut tx.ex(), &auth, UserId(id)).await?;
    if store::sip::clear_credentials(&mut tx.ex(), auth.company(), UserId(id)).await? {
        audit::record(
            &mut tx.ex(),
            auth.company(),
            &auth.actor(),
            "update",
            "user",
            Some(id),
            &serde_json::json!({"sip_username": null}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
