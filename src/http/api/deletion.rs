//! Deletion: a customer's erasure with a confirmation code (P21), its status, and closing the
//! company (P20). The work is in [`crate::lifecycle`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::Timestamp;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::http::extract::{Auth, Authz, perm};
use crate::http::{AppState, created};
use crate::lifecycle::{self, closure, erase};
use crate::store::deletion::{AccessEnded, Counts, DeletionRequest};
use crate::store::{self};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(request_deletion))
        .routes(routes!(get_deletion_request))
        .routes(routes!(close_company))
}

/// A deletion request and what it deleted.
#[derive(Serialize, ToSchema)]
pub(super) struct DeletionStatus {
    /// The opaque confirmation code; give it to the person.
    confirmation_code: String,
    /// The public status page of the code (no login).
    url: String,
    /// `pending`, `completed` or `refused`.
    state: String,
    /// Why it was refused.
    reason: Option<String>,
    /// `api` or `meta` (the data-deletion callback).
    source: String,
    /// When it was asked for.
    requested_at: Timestamp,
    /// When it was carried out.
    completed_at: Option<Timestamp>,
    /// What was deleted (counts).
    deleted: Counts,
}

impl DeletionStatus {
    fn of(state: &AppState, r: DeletionRequest) -> Self {
        Self {
            url: lifecycle::status_url(&state.public_base, &r.code),
            deleted: r.counts(),
            confirmation_code: r.code,
            state: r.state,
            reason: r.reason,
            source: r.source,
            requested_at: r.requested_at,
            completed_at: r.completed_at,
        }
    }
}

/// Where erasure runs inside the server.
pub(crate) fn place(state: &AppState) -> erase::Place<'_> {
    erase::Place {
        db: &state.db,
        data_dir: &state.config.data_dir,
        gate: Some(&state.messaging.gate),
    }
}

/// Erases customer `id` of the caller's company (404 if there is none) and records the request.
pub(crate) async fn erase_customer(
    state: &AppState,
    auth: &Auth,
    id: i64,
) -> Result<DeletionRequest, ApiError> {
    {
        let mut conn = state.db.conn().await?;
        store::customers::get(&mut conn.ex(), auth.company(), id)
            .await?
            .ok_or_else(|| ApiError::not_found("customer"))?;
    }
    Ok(erase::erase(
        place(state),
        &[(auth.company(), id)],
        Some(auth.company()),
        erase::Source::Api,
        &auth.actor(),
    )
    .await?)
}

/// Deletes a customer and everything of theirs, at once: identities, conversations, messages,
/// calls with their recording files, notes, AI suggestions, and the integration-log rows that
/// name them (a merged customer's survivor and tombstones go together). Answers the deletion
/// request with its confirmation code and public status page. Audited.
#[utoipa::path(post, path = "/customers/{id}/deletion", tag = "customers",
    params(("id" = i64, Path, description = "customer id")),
    responses((status = 201, body = DeletionStatus), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn request_deletion(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersDelete>,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<DeletionStatus>), ApiError> {
    let r = erase_customer(&state, &auth, id).await?;
    Ok(created(DeletionStatus::of(&state, r)))
}

/// A deletion request of the company, by its confirmation code.
#[utoipa::path(get, path = "/deletion-requests/{code}", tag = "customers",
    params(("code" = String, Path, description = "confirmation code")),
    responses((status = 200, body = DeletionStatus), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_deletion_request(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersDelete>,
    ApiPath(code): ApiPath<String>,
) -> Result<Json<DeletionStatus>, ApiError> {
    if !erase::plausible_code(&code) {
        return Err(ApiError::not_found("deletion request"));
    }
    let mut conn = state.db.conn().await?;
    let r = store::deletion::company_request(&mut conn.ex(), auth.company(), &code)
        .await?
        .ok_or_else(|| ApiError::not_found("deletion request"))?;
    Ok(Json(DeletionStatus::of(&state, r)))
}

/// Closing the company: its slug, typed again.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CloseRequest {
    /// The company's slug, exactly, to confirm.
    confirm: String,
}

/// The company, closed.
#[derive(Serialize, ToSchema)]
pub(super) struct Closed {
    /// `closed`.
    status: &'static str,
    /// When it was closed.
    closed_at: Timestamp,
    /// When all its data will be deleted (the deletion job runs hourly).
    delete_after: Timestamp,
    /// The access that ended at once.
    access_ended: AccessEnded,
}

/// Closes the company: every login, session, API token and SIP registration ends at once, its
/// channels and trunks stop, and all its data — users, customers, conversations, channel
/// accounts, audit logs, recordings — is deleted after `company_deletion_days` (default 30).
/// `confirm` must be the company's slug. Audited.
#[utoipa::path(post, path = "/company/close", tag = "company", request_body = CloseRequest,
    responses((status = 200, body = Closed), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn close_company(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CompanyClose>,
    ApiJson(req): ApiJson<CloseRequest>,
) -> Result<Json<Closed>, ApiError> {
    let company = {
        let mut conn = state.db.conn().await?;
        store::companies::get(&mut conn.ex(), auth.company()).await?
    };
    if req.confirm != company.slug {
        return Err(ApiError::invalid(
            "confirm",
            "must be the company's slug, exactly",
        ));
    }
    let days = state.config.company_deletion_days;
    let closure = closure::close(&state.db, auth.company(), days, &auth.actor())
        .await?
        .ok_or_else(|| ApiError::conflict("the company is already closed"))?;
    closure::after_close(&state, auth.company(), &closure);
    Ok(Json(Closed {
        status: "closed",
        closed_at: Timestamp(closure.closed_at),
        delete_after: Timestamp(closure.delete_after),
        access_ended: closure.access_ended,
    }))
}
