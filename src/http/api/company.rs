//! The caller's company profile.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::required_text;
use crate::domain::valid_time_zone;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::store::{
    self, audit,
    companies::{Company, CompanyPatch},
};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_company, update_company))
}

/// The caller's company.
#[utoipa::path(get, path = "/company", tag = "company",
    responses((status = 200, body = Company), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_company(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CompanyRead>,
) -> Result<Json<Company>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        store::companies::get(&mut conn.ex(), auth.company()).await?,
    ))
}

/// A change to the company profile. The plan tier is set by the operator (`masterz admin`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CompanyUpdate {
    /// Name.
    name: Option<String>,
    /// IANA time zone, e.g. `Europe/Berlin`.
    time_zone: Option<String>,
    /// `light` or `dark`.
    theme: Option<String>,
}

/// Changes the company profile.
#[utoipa::path(patch, path = "/company", tag = "company", request_body = CompanyUpdate,
    responses((status = 200, body = Company), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_company(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CompanyWrite>,
    ApiJson(req): ApiJson<CompanyUpdate>,
) -> Result<Json<Company>, ApiError> {
    let mut patch = CompanyPatch::default();
    if let Some(name) = &req.name {
        patch.name = Some(required_text("name", name, 200)?);
    }
    if let Some(tz) = &req.time_zone {
        if !valid_time_zone(tz) {
            return Err(ApiError::invalid("time_zone", "not an IANA time zone"));
        }
        patch.time_zone = Some(tz.clone());
    }
    if let Some(theme) = &req.theme {
        if !matches!(theme.as_str(), "light" | "dark") {
            return Err(ApiError::invalid("theme", "must be light or dark"));
        }
        patch.theme = Some(theme.clone());
    }
    let mut tx = state.db.begin().await?;
    let company = store::companies::update(&mut tx.ex(), auth.company(), &patch).await?;
    let changes =
        serde_json::json!({"name": req.name, "time_zone": req.time_zone, "theme": req.theme});
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "update",
        "company",
        Some(company.id.0),
        &changes,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(company))
}
