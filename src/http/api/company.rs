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
    /// Record calls by default (a trunk's own `recording` setting wins). Audited.
    recording_enabled: Option<bool>,
    /// Days to keep recordings (1–36500); `null` keeps them until their call, customer or
    /// company is deleted. Absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    recording_retention_days: Option<Option<i64>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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
    if let Some(Some(days)) = req.recording_retention_days
        && !(1..=36_500).contains(&days)
    {
        return Err(ApiError::invalid(
            "recording_retention_days",
            "must be 1 to 36500, or null to keep recordings",
        ));
    }
    patch.recording_enabled = req.recording_enabled;
    patch.recording_retention_days = req.recording_retention_days;
    let mut tx = state.db.begin().await?;
    let before = store::companies::get(&mut tx.ex(), auth.company()).await?;
    let company = store::companies::update(&mut tx.ex(), auth.company(), &patch).await?;
    if before.recording_enabled != company.recording_enabled {
        let action = if company.recording_enabled {
            "recording_on"
        } else {
            "recording_off"
        };
        audit::record(
            &mut tx.ex(),
            auth.company(),
            &auth.actor(),
            action,
            "company",
            Some(company.id.0),
            &serde_json::json!({"recording_enabled": company.recording_enabled}),
        )
        .await?;
    }
    let changes = serde_json::json!({"name": req.name, "time_zone": req.time_zone,
        "theme": req.theme, "recording_enabled": req.recording_enabled,
        "recording_retention_days": req.recording_retention_days});
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
    // Usage is counted in the company's months: the next count reads the new zone.
    store::usage::forget_zone(company.id);
    Ok(Json(company))
}
