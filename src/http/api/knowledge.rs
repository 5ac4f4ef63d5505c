//! The company's knowledge base: documents (cut into passages on every write) and a search that
//! shows which passages a customer's message would bring into a suggestion.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageParams, required_text};
use crate::ai::knowledge::{chunk, query_terms};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::http::{AppState, created};
use crate::store::knowledge::{Document, Passage};
use crate::store::{self, audit};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_documents, create_document))
        .routes(routes!(get_document, update_document, delete_document))
        .routes(routes!(search))
}

/// Longest document text (about 100 pages).
const MAX_BODY: usize = 200_000;

/// A document to add or replace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DocumentWrite {
    /// Title (1–200 characters).
    title: String,
    /// Text (1–200 000 characters); paragraphs separated by blank lines.
    body: String,
}

fn validate(d: &DocumentWrite) -> Result<(String, String, Vec<String>), ApiError> {
    let title = required_text("title", &d.title, 200)?;
    let body = required_text("body", &d.body, MAX_BODY)?;
    let chunks = chunk(&title, &body);
    Ok((title, body, chunks))
}

/// The knowledge base's documents, newest first.
#[utoipa::path(get, path = "/knowledge", tag = "ai", params(PageParams),
    responses((status = 200, body = Page<Document>), (status = 400, body = ErrorBody)))]
async fn list_documents(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<Document>>, ApiError> {
    let before = page.before_id()?;
    let mut conn = state.db.conn().await?;
    let items =
        store::knowledge::list(&mut conn.ex(), auth.company(), before, page.fetch()).await?;
    Ok(Json(Page::by_id(items, page.limit(), |d| d.id)))
}

/// Adds a document. Audited.
#[utoipa::path(post, path = "/knowledge", tag = "ai", request_body = DocumentWrite,
    responses((status = 201, body = Document), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_document(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiJson(body): ApiJson<DocumentWrite>,
) -> Result<(StatusCode, Json<Document>), ApiError> {
    let (title, text, chunks) = validate(&body)?;
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let doc = store::knowledge::create(
        &mut tx.ex(),
        company,
        Some(auth.principal.user_id),
        &title,
        &text,
        &chunks,
    )
    .await?;
    audit::record(
        &mut tx.ex(),
        company,
        &auth.actor(),
        "create",
        "knowledge_document",
        Some(doc.id),
        &json!({"title": title, "chunks": chunks.len()}),
    )
    .await?;
    tx.commit().await?;
    Ok(created(doc))
}

/// One document.
#[utoipa::path(get, path = "/knowledge/{id}", tag = "ai", params(("id" = i64, Path, description = "document id")),
    responses((status = 200, body = Document), (status = 404, body = ErrorBody)))]
async fn get_document(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Document>, ApiError> {
    let mut conn = state.db.conn().await?;
    store::knowledge::get(&mut conn.ex(), auth.company(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("document"))
}

/// Replaces a document's title and text (and its passages). Audited.
#[utoipa::path(put, path = "/knowledge/{id}", tag = "ai", params(("id" = i64, Path, description = "document id")),
    request_body = DocumentWrite,
    responses((status = 200, body = Document), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn update_document(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DocumentWrite>,
) -> Result<Json<Document>, ApiError> {
    let (title, text, chunks) = validate(&body)?;
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let doc = store::knowledge::update(&mut tx.ex(), company, id, &title, &text, &chunks)
        .await?
        .ok_or_else(|| ApiError::not_found("document"))?;
    audit::record(
        &mut tx.ex(),
        company,
        &auth.actor(),
        "update",
        "knowledge_document",
        Some(id),
        &json!({"title": title, "chunks": chunks.len()}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(doc))
}

/// Deletes a document. Audited.
#[utoipa::path(delete, path = "/knowledge/{id}", tag = "ai", params(("id" = i64, Path, description = "document id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
async fn delete_document(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    if !store::knowledge::delete(&mut tx.ex(), company, id).await? {
        return Err(ApiError::not_found("document"));
    }
    audit::record(
        &mut tx.ex(),
        company,
        &auth.actor(),
        "delete",
        "knowledge_document",
        Some(id),
        &json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A search as a customer's message would make it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchParams {
    /// The text (e.g. a customer's message).
    q: String,
    /// Passages to return (1–20, default the server's `ai_knowledge_chunks`).
    limit: Option<i64>,
}

/// The passages a suggestion for this text would be given, best first.
#[utoipa::path(get, path = "/knowledge/search", tag = "ai", params(SearchParams),
    responses((status = 200, body = Vec<Passage>), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn search(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::AiManage>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Vec<Passage>>, ApiError> {
    let q = required_text("q", &params.q, 4096)?;
    let limit = params
        .limit
        .unwrap_or(i64::from(state.config.ai_knowledge_chunks));
    if !(1..=20).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 20"));
    }
    let mut conn = state.db.conn().await?;
    Ok(Json(
        store::knowledge::search(&mut conn.ex(), auth.company(), &query_terms(&q), limit).await?,
    ))
}
