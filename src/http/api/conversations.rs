//! Conversations: status and assignee.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageParams, optional_text};
use crate::domain::{ChannelKind, CompanyId, ConversationStatus, UserId};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, double_option};
use crate::http::extract::{Authz, perm};
use crate::http::{AppState, created};
use crate::messaging::reply::{ReplyWindow, human_agent_enabled};
use crate::store::{
    self, Ex,
    conversations::{Conversation, Filter},
};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(get_conversation, update_conversation))
}

/// A conversation with its reply window.
#[derive(serde::Serialize, ToSchema)]
pub(super) struct ConversationView {
    #[serde(flatten)]
    conversation: Conversation,
    /// On a messaging channel: whether a free-form reply is allowed now and until when
    /// (24 hours after the customer's last message; Messenger/Instagram with the HUMAN_AGENT tag
    /// enabled: 7 days). `null` for conversations without a messaging channel.
    reply_window: Option<ReplyWindow>,
    /// The channel it runs on, with its connection status (`needs_reconnection` when replies
    /// cannot be sent until an admin updates its credentials).
    channel: Option<ChannelSummary>,
}

/// A conversation's channel, as agents see it (no settings, no credentials).
#[derive(serde::Serialize, ToSchema)]
pub(super) struct ChannelSummary {
    /// Channel account id.
    id: i64,
    /// Kind.
    kind: String,
    /// Label.
    name: String,
    /// `connected`, `needs_reconnection` or `disconnected`.
    status: String,
    /// Why it is not connected.
    status_reason: Option<String>,
}

/// Adds the reply windows, reading each channel account once.
async fn views(
    ex: &mut Ex<'_>,
    company: CompanyId,
    items: Vec<Conversation>,
) -> Result<Vec<ConversationView>, ApiError> {
    let accounts = store::channels::list(ex, company, None).await?;
    let now = store::now_ms();
    Ok(items
        .into_iter()
        .map(|conversation| {
            let account = conversation
                .channel_account_id
                .and_then(|id| accounts.iter().find(|a| a.id == id));
            let reply_window = account.and_then(|a| {
                ReplyWindow::compute(
                    ChannelKind::parse(&a.kind),
                    human_agent_enabled(a),
                    conversation.last_inbound_at.map(|t| t.0),
                    now,
                )
            });
            let channel = account.map(|a| ChannelSummary {
                id: a.id,
                kind: a.kind.clone(),
                name: a.name.clone(),
                status: a.status.clone(),
                status_reason: a.status_reason.clone(),
            });
            ConversationView {
                conversation,
                reply_window,
                channel,
            }
        })
        .collect())
}

/// Conversation list filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConversationQuery {
    /// Only this customer's.
    customer_id: Option<i64>,
    /// Only this status.
    status: Option<ConversationStatus>,
    /// Only assigned to this user; `me` for the caller.
    assignee: Option<String>,
    /// Only unassigned ones.
    #[serde(default)]
    unassigned: bool,
    /// Items per page (1–200, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A new conversation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConversationCreate {
    /// Customer.
    customer_id: i64,
    /// Channel account.
    channel_account_id: Option<i64>,
    /// Subject.
    subject: Option<String>,
    /// Assigned agent.
    assignee_id: Option<UserId>,
}

/// A change to a conversation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConversationUpdate {
    /// Status.
    status: Option<ConversationStatus>,
    /// Assigned agent (`null` unassigns).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    assignee_id: Option<Option<UserId>>,
    /// Subject (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    subject: Option<Option<String>>,
}

async fn check_assignee(
    ex: &mut Ex<'_>,
    company: CompanyId,
    user: Option<UserId>,
) -> Result<(), ApiError> {
    if let Some(u) = user
        && store::users::get_user(ex, company, u).await?.is_none()
    {
        return Err(ApiError::invalid("assignee_id", "no such user"));
    }
    Ok(())
}

/// The company's conversations, newest first.
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, body = Page<ConversationView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_conversations(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsRead>,
    ApiQuery(q): ApiQuery<ConversationQuery>,
) -> Result<Json<Page<ConversationView>>, ApiError> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit();
    let assignee_id = match q.assignee.as_deref() {
        None => None,
        Some("me") => Some(auth.principal.user_id),
        Some(id) => Some(UserId(id.parse().map_err(|_| {
            ApiError::bad_request("invalid_query", "assignee must be a user id or me")
        })?)),
    };
    let filter = Filter {
        customer_id: q.customer_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        assignee_id,
        unassigned: q.unassigned,
        before_id: page.before_id()?,
    };
    let mut conn = state.db.conn().await?;
    let items =
        store::conversations::list(&mut conn.ex(), auth.company(), &filter, page.fetch()).await?;
    let items = views(&mut conn.ex(), auth.company(), items).await?;
    Ok(Json(Page::by_id(items, limit, |c| c.conversation.id)))
}

/// Opens a conversation with a customer.
#[utoipa::path(post, path = "/conversations", tag = "conversations", request_body = ConversationCreate,
    responses((status = 201, body = Conversation), (status = 422, body = ErrorBody)))]
async fn create_conversation(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsWrite>,
    ApiJson(req): ApiJson<ConversationCreate>,
) -> Result<(StatusCode, Json<Conversation>), ApiError> {
    let subject = optional_text("subject", req.subject.as_deref(), 500)?;
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    if store::customers::get(&mut tx.ex(), company, req.customer_id)
        .await?
        .is_none()
    {
        return Err(ApiError::invalid("customer_id", "no such customer"));
    }
    if let Some(account) = req.channel_account_id
        && store::channels::get(&mut tx.ex(), company, account)
            .await?
            .is_none()
    {
        return Err(ApiError::invalid(
            "channel_account_id",
            "no such channel account",
        ));
    }
    check_assignee(&mut tx.ex(), company, req.assignee_id).await?;
    let conv = store::conversations::create(
        &mut tx.ex(),
        company,
        req.customer_id,
        req.channel_account_id,
        subject.as_deref(),
        req.assignee_id,
    )
    .await?;
    tx.commit().await?;
    Ok(created(conv))
}

/// One conversation.
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations", params(("id" = i64, Path, description = "conversation id")),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ConversationView>, ApiError> {
    let mut conn = state.db.conn().await?;
    let conv = store::conversations::get(&mut conn.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let mut views = views(&mut conn.ex(), auth.company(), vec![conv]).await?;
    views
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("conversation view"))
}

/// Changes status, assignee or subject.
#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations", params(("id" = i64, Path, description = "conversation id")),
    request_body = ConversationUpdate,
    responses((status = 200, body = Conversation), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_conversation(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ConversationUpdate>,
) -> Result<Json<Conversation>, ApiError> {
    let subject = req
        .subject
        .map(|s| optional_text("subject", s.as_deref(), 500))
        .transpose()?;
    let mut tx = state.db.begin().await?;
    check_assignee(&mut tx.ex(), auth.company(), req.assignee_id.flatten()).await?;
    let conv = store::conversations::update(
        &mut tx.ex(),
        auth.company(),
        id,
        req.status.map(|s| s.as_str()),
        req.assignee_id,
        subject,
    )
    .await?
    .ok_or_else(|| ApiError::not_found("conversation"))?;
    tx.commit().await?;
    Ok(Json(conv))
}
