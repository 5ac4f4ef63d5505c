//! A conversation's messages, agents' replies (queued, sent by the outbox worker), read receipts,
//! and the integration log.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageParams};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::messaging::reply::{self, Reply, ReplyError};
use crate::store::{self, integration_logs::LogEntry, messages::Message};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, send_message))
        .routes(routes!(mark_read))
        .routes(routes!(list_logs))
}

/// Longest text a reply may have (WhatsApp's limit; Messenger's is 2000 bytes, checked by Meta).
const MAX_TEXT: usize = 4096;

/// A reply: text, or a WhatsApp template (for replies outside the 24-hour window).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageCreate {
    /// The text.
    text: Option<String>,
    /// A WhatsApp template instead of text.
    template: Option<TemplateRef>,
}

/// A WhatsApp message template.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TemplateRef {
    /// Template name.
    name: String,
    /// Language code, e.g. `en_US`.
    language: String,
    /// Components with their parameters, as the Cloud API takes them.
    #[schema(value_type = Option<Vec<Object>>)]
    components: Option<serde_json::Value>,
}

fn reply_error(e: ReplyError) -> ApiError {
    match e {
        ReplyError::Store(e) => e.into(),
        ReplyError::NeedsReconnection => ApiError::conflict(e.to_string()),
        other => ApiError::invalid("conversation", other),
    }
}

/// A conversation's messages, newest first, with their delivery status.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "conversations",
    params(("id" = i64, Path, description = "conversation id"), PageParams),
    responses((status = 200, body = Page<Message>), (status = 404, body = ErrorBody)))]
async fn list_messages(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsRead>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Message>>, ApiError> {
    let mut conn = state.db.conn().await?;
    if store::conversations::get(&mut conn.ex(), auth.company(), id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("conversation"));
    }
    let items = store::messages::list(
        &mut conn.ex(),
        auth.company(),
        id,
        page.before_id()?,
        page.fetch(),
    )
    .await?;
    Ok(Json(Page::by_id(items, page.limit(), |m| m.id)))
}

/// Queues a reply to the customer on the conversation's channel: 202 with the `queued` message;
/// its status then moves to `sent`, `delivered`, `read` or `failed` (with the reason).
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "conversations",
    params(("id" = i64, Path, description = "conversation id")), request_body = MessageCreate,
    responses((status = 202, body = Message), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn send_message(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<MessageCreate>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let reply = match (req.text, req.template) {
        (Some(text), None) => {
            if text.trim().is_empty() {
                return Err(ApiError::invalid("text", "must not be empty"));
            }
            if text.chars().count() > MAX_TEXT {
                return Err(ApiError::invalid(
                    "text",
                    format!("must be at most {MAX_TEXT} characters"),
                ));
            }
            Reply::Text(text)
        }
        (None, Some(t)) => {
            let name = super::required_text("template.name", &t.name, 512)?;
            let language = super::required_text("template.language", &t.language, 20)?;
            if t.components.as_ref().is_some_and(|c| !c.is_array()) {
                return Err(ApiError::invalid("template.components", "must be an array"));
            }
            Reply::Template {
                name,
                language,
                components: t.components,
            }
        }
        _ => return Err(ApiError::invalid("text", "give either text or template")),
    };
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let conversation = store::conversations::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let message = reply::queue_reply(
        &mut tx.ex(),
        company,
        &conversation,
        Some(auth.principal.user_id),
        &reply,
    )
    .await
    .map_err(reply_error)?;
    let view = store::messages::get(&mut tx.ex(), company, message)
        .await?
        .ok_or_else(|| ApiError::internal("queued message vanished"))?;
    tx.commit().await?;
    state.messaging.outbound.notify_one();
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Whether a read receipt was queued.
#[derive(Serialize, ToSchema)]
pub(super) struct ReadQueued {
    /// False when the customer has no message to mark.
    queued: bool,
}

/// Marks the customer's messages in the conversation as read on the channel (WhatsApp blue
/// ticks, Messenger `mark_seen`, WAHA `sendSeen`).
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "conversations",
    params(("id" = i64, Path, description = "conversation id")),
    responses((status = 202, body = ReadQueued), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn mark_read(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<ReadQueued>), ApiError> {
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let conversation = store::conversations::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let queued = reply::queue_mark_read(&mut tx.ex(), company, &conversation)
        .await
        .map_err(reply_error)?;
    tx.commit().await?;
    if queued {
        state.messaging.outbound.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(ReadQueued { queued })))
}

/// Integration log filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LogQuery {
    /// `in` (webhooks) or `out` (calls to providers).
    direction: Option<LogDirection>,
    /// Items per page (1–200, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A log direction.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum LogDirection {
    /// Webhooks received.
    In,
    /// Calls made.
    Out,
}

/// The company's integration log (every webhook and provider call, secrets redacted), newest
/// first. Rows are pruned after `integration_log_retention_days`.
#[utoipa::path(get, path = "/integration-logs", tag = "channels", params(LogQuery),
    responses((status = 200, body = Page<LogEntry>), (status = 403, body = ErrorBody)))]
async fn list_logs(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AuditRead>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<Page<LogEntry>>, ApiError> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let direction = q.direction.map(|d| match d {
        LogDirection::In => "in",
        LogDirection::Out => "out",
    });
    let mut conn = state.db.conn().await?;
    let items = store::integration_logs::list(
        &mut conn.ex(),
        auth.company(),
        direction,
        page.before_id()?,
        page.fetch(),
    )
    .await?;
    Ok(Json(Page::by_id(items, page.limit(), |l| l.id)))
}
