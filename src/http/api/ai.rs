//! AI reply suggestions: the company's model settings (the key write-only), each channel's
//! opt-in (off by default, audited), a conversation's suggestions, and an agent's decision on one.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::optional_text;
use crate::domain::ChannelKind;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorBody, double_option};
use crate::http::extract::{Authz, perm};
use crate::messaging::reply::{self, Reply, ReplyError};
use crate::store::ai::{KEY_AAD, SettingsPatch, Suggestion};
use crate::store::messages::Message;
use crate::store::{self, audit};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(put_channel_ai))
        .routes(routes!(list_suggestions))
        .routes(routes!(accept_suggestion))
        .routes(routes!(dismiss_suggestion))
}

/// The company's AI settings as the API shows them (the key only as set or not).
#[derive(Serialize, ToSchema)]
pub(super) struct AiSettings {
    /// The company's own base URL of an OpenAI-compatible API (`null`: the server's).
    base_url: Option<String>,
    /// The company's own model (`null`: the server's).
    model: Option<String>,
    /// Whether the company has its own key (never shown).
    api_key_set: bool,
    /// The base URL in effect.
    effective_base_url: String,
    /// The model in effect.
    effective_model: String,
    /// Whether any key is in effect (the company's or the server's).
    effective_api_key_set: bool,
}

async fn settings_view(
    state: &AppState,
    ex: &mut store::Ex<'_>,
    company: crate::domain::CompanyId,
) -> Result<AiSettings, ApiError> {
    let s = store::ai::settings(ex, company).await?;
    let api_key_set = s.ai_api_key.is_some();
    Ok(AiSettings {
        effective_base_url: s
            .ai_base_url
            .clone()
            .unwrap_or_else(|| state.config.openai_url.clone()),
        effective_model: s
            .ai_model
            .clone()
            .unwrap_or_else(|| state.config.openai_model.clone()),
        effective_api_key_set: api_key_set || state.config.openai_api_key.is_some(),
        base_url: s.ai_base_url,
        model: s.ai_model,
        api_key_set,
    })
}

/// The company's AI settings.
#[utoipa::path(get, path = "/ai/settings", tag = "ai",
    responses((status = 200, body = AiSettings)))]
async fn get_settings(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
) -> Result<Json<AiSettings>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        settings_view(&state, &mut conn.ex(), auth.company()).await?,
    ))
}

/// A change of AI settings: absent fields stay, `null` clears.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AiSettingsUpdate {
    /// Base URL of an OpenAI-compatible API, e.g. `https://api.openai.com/v1`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    base_url: Option<Option<String>>,
    /// Model name.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    model: Option<Option<String>>,
    /// API key (write-only: stored encrypted, never returned).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    api_key: Option<Option<String>>,
}

/// Changes the company's AI settings. Audited (the key as `[redacted]`).
#[utoipa::path(put, path = "/ai/settings", tag = "ai", request_body = AiSettingsUpdate,
    responses((status = 200, body = AiSettings), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_settings(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiJson(body): ApiJson<AiSettingsUpdate>,
) -> Result<Json<AiSettings>, ApiError> {
    let base_url = match body.base_url {
        None => None,
        Some(v) => {
            let v = optional_text("base_url", v.as_deref(), 2048)?;
            if let Some(url) = &v {
                let ok = (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains(char::is_whitespace)
                    && reqwest::Url::parse(url).is_ok();
                if !ok {
                    return Err(ApiError::invalid("base_url", "must be an http(s) URL"));
                }
            }
            Some(v.map(|u| u.trim_end_matches('/').to_owned()))
        }
    };
    let model = match body.model {
        None => None,
        Some(v) => Some(optional_text("model", v.as_deref(), 200)?),
    };
    let sealed_key = match body.api_key {
        None => None,
        Some(v) => match optional_text("api_key", v.as_deref(), 1024)? {
            None => Some(None),
            Some(key) => Some(Some(state.keyring.encrypt(key.as_bytes(), KEY_AAD)?)),
        },
    };
    let mut changes = serde_json::Map::new();
    if let Some(v) = &base_url {
        changes.insert("base_url".into(), json!(v));
    }
    if let Some(v) = &model {
        changes.insert("model".into(), json!(v));
    }
    if let Some(v) = &sealed_key {
        changes.insert("api_key".into(), json!(v.as_ref().map(|_| "[redacted]")));
    }
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let patch = SettingsPatch {
        base_url,
        model,
        sealed_key,
    };
    store::ai::update_settings(&mut tx.ex(), company, &patch).await?;
    audit::record(
        &mut tx.ex(),
        company,
        &auth.actor(),
        "update",
        "ai_settings",
        None,
        &serde_json::Value::Object(changes),
    )
    .await?;
    let view = settings_view(&state, &mut tx.ex(), company).await?;
    tx.commit().await?;
    Ok(Json(view))
}

/// A channel's AI switches.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChannelAi {
    /// Reply suggestions for this channel's conversations (P17: off by default).
    suggestions: bool,
    /// Send each suggestion as the reply without an agent (needs `suggestions`).
    #[serde(default)]
    auto_reply: bool,
}

/// Switches AI reply suggestions (and auto-reply) for a messaging channel. Audited.
#[utoipa::path(put, path = "/channel-accounts/{id}/ai", tag = "ai",
    params(("id" = i64, Path, description = "channel account id")), request_body = ChannelAi,
    responses((status = 200, body = ChannelAi), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn put_channel_ai(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ChannelAi>,
) -> Result<Json<ChannelAi>, ApiError> {
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let account = store::channels::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel account"))?;
    let messaging = matches!(
        ChannelKind::parse(&account.kind),
        Some(
            ChannelKind::Messenger
                | ChannelKind::Instagram
                | ChannelKind::WhatsappCloud
                | ChannelKind::Waha
        )
    );
    if !messaging {
        return Err(ApiError::invalid(
            "id",
            "AI suggestions are for messaging channels only",
        ));
    }
    if body.auto_reply && !body.suggestions {
        return Err(ApiError::invalid(
            "auto_reply",
            "needs suggestions switched on",
        ));
    }
    store::ai::set_channel(&mut tx.ex(), company, id, body.suggestions, body.auto_reply)
        .await?
        .ok_or_else(|| ApiError::not_found("channel account"))?;
    audit::record(
        &mut tx.ex(),
        company,
        &auth.actor(),
        "update",
        "channel_ai",
        Some(id),
        &json!({
            "suggestions": [account.ai_suggestions, body.suggestions],
            "auto_reply": [account.ai_auto_reply, body.auto_reply],
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// A conversation's AI suggestions, newest first (at most 50), each with the context it was made
/// from.
#[utoipa::path(get, path = "/conversations/{id}/suggestions", tag = "ai",
    params(("id" = i64, Path, description = "conversation id")),
    responses((status = 200, body = Vec<Suggestion>), (status = 404, body = ErrorBody)))]
async fn list_suggestions(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Suggestion>>, ApiError> {
    let company = auth.company();
    let mut conn = state.db.conn().await?;
    store::conversations::get(&mut conn.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(Json(
        store::ai::for_conversation(&mut conn.ex(), company, id, 50).await?,
    ))
}

/// An agent's use of a suggestion: as it is, or edited.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Accept {
    /// The text to send instead of the suggestion's own (the agent's edit).
    text: Option<String>,
}

/// Sends a ready suggestion (or the agent's edit of it) as the reply: queued like any reply
/// (202), the suggestion `accepted`.
#[utoipa::path(post, path = "/suggestions/{id}/accept", tag = "ai",
    params(("id" = i64, Path, description = "suggestion id")), request_body = Accept,
    responses((status = 202, body = Message), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn accept_suggestion(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Accept>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let suggestion = store::ai::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("suggestion"))?;
    if suggestion.state != "ready" {
        return Err(ApiError::conflict(format!(
            "the suggestion is {}, not ready",
            suggestion.state
        )));
    }
    let text = match body.text.as_deref() {
        Some(t) => super::required_text("text", t, 4096)?,
        None => suggestion.text.clone().unwrap_or_default(),
    };
    let conversation = store::conversations::get(&mut tx.ex(), company, suggestion.conversation_id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let user = auth.principal.user_id;
    let message = reply::queue_reply(
        &mut tx.ex(),
        company,
        &conversation,
        Some(user),
        &Reply::Text(text),
    )
    .await
    .map_err(|e| match e {
        ReplyError::Store(e) => e.into(),
        ReplyError::NeedsReconnection => ApiError::conflict(e.to_string()),
        other => ApiError::invalid("conversation", other),
    })?;
    store::ai::decide(
        &mut tx.ex(),
        company,
        id,
        "accepted",
        Some(user),
        Some(message),
    )
    .await?;
    let view = store::messages::get(&mut tx.ex(), company, message)
        .await?
        .ok_or_else(|| ApiError::internal("queued message vanished"))?;
    tx.commit().await?;
    state.messaging.outbound.notify_one();
    crate::ai::announce(&state, company, id).await;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Dismisses a ready suggestion.
#[utoipa::path(post, path = "/suggestions/{id}/dismiss", tag = "ai",
    params(("id" = i64, Path, description = "suggestion id")),
    responses((status = 200, body = Suggestion), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn dismiss_suggestion(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Suggestion>, ApiError> {
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    store::ai::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("suggestion"))?;
    store::ai::decide(
        &mut tx.ex(),
        company,
        id,
        "dismissed",
        Some(auth.principal.user_id),
        None,
    )
    .await?;
    let view = store::ai::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("suggestion"))?;
    tx.commit().await?;
    crate::ai::announce(&state, company, id).await;
    Ok(Json(view))
}
