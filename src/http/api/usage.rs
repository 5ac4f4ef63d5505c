//! Billing usage (P15): what the caller's company used in a month against its plan; and, outside
//! `/api/v1`, the operator's statistics across companies (P16), counts only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::billing::{self, OperatorStats, UsageReport};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiQuery, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::store::{now_ms, usage};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_usage))
}

/// The operator's routes, outside `/api/v1` and outside the OpenAPI document (they belong to
/// whoever runs the server, not to any company): `GET /operator/stats`.
pub(crate) fn operator_routes() -> Router<Arc<AppState>> {
    Router::new().route("/operator/stats", axum::routing::get(operator_stats))
}

/// Which month.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct MonthQuery {
    /// The month, `YYYY-MM`: a calendar month in the company's time zone (the operator's
    /// statistics: UTC). Default: the current month.
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$", example = "2026-11")]
    month: Option<String>,
}

/// The month asked for (`None`: the current one); a malformed month is a 422.
fn month(q: &MonthQuery) -> Result<Option<String>, ApiError> {
    match q.month.as_deref() {
        None => Ok(None),
        Some(m) if usage::month_bounds(m).is_some() => Ok(Some(m.to_owned())),
        Some(_) => Err(ApiError::invalid(
            "month",
            "must be a month written YYYY-MM",
        )),
    }
}

/// The company's usage of a month against its plan: for every metric the amount used, the plan's
/// limit (`null`: unlimited) and whether the limit is reached. Over a limit, AI reply
/// suggestions stop; calls and messages go on.
#[utoipa::path(get, path = "/usage", tag = "billing", params(MonthQuery),
    responses((status = 200, body = UsageReport),
              (status = 403, body = ErrorBody),
              (status = 422, description = "month is not YYYY-MM", body = ErrorBody)))]
async fn get_usage(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::UsageRead>,
    ApiQuery(q): ApiQuery<MonthQuery>,
) -> Result<Json<UsageReport>, ApiError> {
    let mut conn = state.db.conn().await?;
    let month = match month(&q)? {
        Some(m) => m,
        // The current month where the company is (P2: its time zone is used for reports).
        None => usage::company_month(&mut conn.ex(), auth.company(), now_ms()).await?,
    };
    Ok(Json(
        billing::usage_report(&mut conn.ex(), &state.config, auth.company(), &month).await?,
    ))
}

/// `GET /operator/stats?month=YYYY-MM`: counts across every company (P16). Answers 404 when no
/// `operator_token` is configured (the route does not exist then), 401 without that token as
/// `Authorization: Bearer …`.
async fn operator_stats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    // Parsed after the token check: without the token, nothing is said about the request.
    query: Result<ApiQuery<MonthQuery>, ApiError>,
) -> Result<Json<OperatorStats>, ApiError> {
    let Some(expected) = state
        .config
        .operator_token
        .as_ref()
        .filter(|t| !t.expose().is_empty())
    else {
        return Err(ApiError::not_found("route"));
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same: bool =
        subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), expected.expose().as_bytes()).into();
    if !same {
        return Err(ApiError::unauthorized());
    }
    let ApiQuery(q) = query?;
    let month = month(&q)?.unwrap_or_else(|| usage::month_of(now_ms()));
    let mut conn = state.db.conn().await?;
    Ok(Json(
        billing::load_operator_stats(&mut conn.ex(), &state.config, &month).await?,
    ))
}
