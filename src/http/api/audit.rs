//! The audit log, read-only (P13, P19).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageParams};
use crate::domain::{Timestamp, UserId};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::store::{
    self,
    audit::{AuditEntry, Filter},
};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_entries))
        .routes(routes!(get_entry))
}

/// Audit log filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only this action (`create`, `update`, `delete`, `merge`, `accept`).
    action: Option<String>,
    /// Only this entity type.
    entity_type: Option<String>,
    /// Only this entity.
    entity_id: Option<i64>,
    /// Only this user's actions.
    actor_id: Option<i64>,
    /// Only at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<Timestamp>,
    /// Only before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<Timestamp>,
    /// Items per page (1–200, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The company's audit log, newest first.
#[utoipa::path(get, path = "/audit-logs", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_entries(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AuditRead>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit();
    let filter = Filter {
        action: q.action,
        entity_type: q.entity_type,
        entity_id: q.entity_id,
        actor_id: q.actor_id.map(UserId),
        since: q.since.map(|t| t.0),
        until: q.until.map(|t| t.0),
        before_id: page.before_id()?,
    };
    let mut conn = state.db.conn().await?;
    let items = store::audit::list(&mut conn.ex(), auth.company(), &filter, page.fetch()).await?;
    Ok(Json(Page::by_id(items, limit, |e| e.id)))
}

/// One audit entry.
#[utoipa::path(get, path = "/audit-logs/{id}", tag = "audit", params(("id" = i64, Path, description = "audit entry id")),
    responses((status = 200, body = AuditEntry), (status = 404, body = ErrorBody)))]
async fn get_entry(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AuditRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AuditEntry>, ApiError> {
    let mut conn = state.db.conn().await?;
    store::audit::get(&mut conn.ex(), auth.company(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("audit entry"))
}
