//! A trunk's consent prompt: the announcement callers hear before a recorded call rings. The
//! file is uploaded as it is (WAV, MP3, FLAC or Ogg Vorbis), checked by decoding it, stored in the
//! database and decoded again, once, by call control when a call needs it.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{ChannelKind, Timestamp};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::store::{self, audit};

/// Largest prompt file accepted.
const MAX_PROMPT_BYTES: usize = 10 * 1024 * 1024;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_prompt, set_prompt, delete_prompt))
}

/// A trunk's consent prompt.
#[derive(Serialize, ToSchema)]
pub(super) struct PromptInfo {
    /// The file name it was uploaded as.
    filename: String,
    /// Size of the file in bytes.
    bytes: i64,
    /// SHA-256 of the file, hex.
    sha256: String,
    /// Length of the audio in milliseconds.
    duration_ms: i64,
    /// When it was uploaded.
    updated_at: Timestamp,
}

/// The upload's file name.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PromptUpload {
    /// The file's name; its extension (`.wav`, `.mp3`, `.flac`, `.ogg`) hints the format.
    /// Default `prompt`.
    filename: Option<String>,
}

async fn trunk_of(
    state: &AppState,
    company: crate::domain::CompanyId,
    id: i64,
) -> Result<(), ApiError> {
    let mut conn = state.db.conn().await?;
    store::channels::get(&mut conn.ex(), company, id)
        .await?
        .filter(|a| a.kind == ChannelKind::SipTrunk.as_str())
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("trunk"))
}

fn decode(bytes: &[u8], filename: &str) -> Result<Vec<i16>, ApiError> {
    let ext = std::path::Path::new(filename)
        .extension()
        .and_then(|e| e.to_str());
    masterz_recordings::decode_prompt(bytes, ext)
        .map_err(|e| ApiError::invalid("body", format!("not a usable announcement: {e}")))
}

/// The trunk's consent prompt.
#[utoipa::path(get, path = "/trunks/{id}/consent-prompt", tag = "telephony",
    params(("id" = i64, Path, description = "trunk (channel account) id")),
    responses((status = 200, body = PromptInfo),
        (status = 404, body = ErrorBody, description = "no such trunk in the caller's company, or it has no prompt")))]
async fn get_prompt(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PromptInfo>, ApiError> {
    trunk_of(&state, auth.company(), id).await?;
    let mut conn = state.db.conn().await?;
    let prompt = store::recordings::prompt(&mut conn.ex(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("consent prompt"))?;
    Ok(Json(PromptInfo {
        bytes: i64::try_from(prompt.content.len()).unwrap_or(i64::MAX),
        filename: prompt.filename,
        sha256: prompt.sha256,
        duration_ms: prompt.duration_ms,
        updated_at: prompt.updated_at,
    }))
}

/// Sets (or replaces) the trunk's consent prompt: the request body is the audio file (WAV, MP3,
/// FLAC or Ogg Vorbis, at most 10 MB and 120 s). Callers on the trunk hear it before a recorded
/// call rings. Audited.
#[utoipa::path(put, path = "/trunks/{id}/consent-prompt", tag = "telephony",
    params(("id" = i64, Path, description = "trunk (channel account) id"), PromptUpload),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the audio file"),
    responses((status = 200, body = PromptInfo),
        (status = 404, body = ErrorBody, description = "no such trunk in the caller's company"),
        (status = 413, body = ErrorBody, description = "larger than 10 MB"),
        (status = 422, body = ErrorBody, description = "not audio masterz can decode, empty, or longer than 120 s")))]
async fn set_prompt(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiPath(id): ApiPath<i64>,
    Query(upload): Query<PromptUpload>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PromptInfo>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "a consent prompt is at most 10 MB",
        )
    };
    // An announced length over the limit is refused before a byte of the body is read.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_PROMPT_BYTES as u64) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, MAX_PROMPT_BYTES)
        .await
        .map_err(|_| too_large())?;
    let filename = upload
        .filename
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty() && f.chars().count() <= 200 && !f.chars().any(char::is_control))
        .unwrap_or_else(|| "prompt".to_owned());
    trunk_of(&state, auth.company(), id).await?;
    let (bytes, name) = (body.clone(), filename.clone());
    let samples = tokio::task::spawn_blocking(move || decode(&bytes, &name).map(|p| p.len()))
        .await
        .map_err(ApiError::internal)??;
    let sha = hex::encode(sha2::Sha256::digest(&body));
    let now = store::now_ms();
    let duration_ms = i64::try_from(samples / 8).unwrap_or(i64::MAX);
    let mut tx = state.db.begin().await?;
    let prompt = store::recordings::NewPrompt {
        filename: &filename,
        content: &body,
        sha256: &sha,
        duration_ms,
        at: now,
    };
    let stored = store::recordings::set_prompt(&mut tx.ex(), auth.company(), id, &prompt).await?;
    if !stored {
        return Err(ApiError::not_found("trunk"));
    }
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "set_consent_prompt",
        "channel_account",
        Some(id),
        &serde_json::json!({ "filename": filename, "sha256": sha, "bytes": body.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(PromptInfo {
        filename,
        bytes: i64::try_from(body.len()).unwrap_or(i64::MAX),
        sha256: sha,
        duration_ms,
        updated_at: Timestamp(now),
    }))
}

/// Removes the trunk's consent prompt. Audited.
#[utoipa::path(delete, path = "/trunks/{id}/consent-prompt", tag = "telephony",
    params(("id" = i64, Path, description = "trunk (channel account) id")),
    responses((status = 204, description = "removed"),
        (status = 404, body = ErrorBody, description = "no such trunk in the caller's company, or it has no prompt")))]
async fn delete_prompt(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    if !store::recordings::delete_prompt(&mut tx.ex(), auth.company(), id).await? {
        return Err(ApiError::not_found("consent prompt"));
    }
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "remove_consent_prompt",
        "channel_account",
        Some(id),
        &serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
