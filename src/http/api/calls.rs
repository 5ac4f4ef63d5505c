//! Calls: the company's call log, one call with its progress, and click-to-call. Calls are
//! written by call control. They are customer data, so reading needs `customers:read` (the
//! permission that shows calls in a customer's timeline); placing one needs `customers:write`,
//! as writing to a customer does.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageParams};
use crate::domain::UserId;
use crate::domain::sip::valid_sip_username;
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::http::{AppState, created};
use crate::store::{
    self,
    calls::{Call, CallEvent, CallFilter},
};
use crate::telephony::{CallStartError, ClickTarget};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_calls, click_to_call))
        .routes(routes!(get_call))
}

/// Where a call stands.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum CallStatus {
    /// Agents are being rung.
    Ringing,
    /// In progress.
    Answered,
    /// Answered, then hung up.
    Completed,
    /// Nobody answered.
    Missed,
    /// An error ended it.
    Failed,
    /// Refused (busy, declined, no agent).
    Rejected,
    /// The caller gave up while it rang.
    Cancelled,
}

impl CallStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Completed => "completed",
            Self::Missed => "missed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Which way a call went.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum CallDirection {
    /// From a customer.
    In,
    /// To a customer.
    Out,
    /// Between two agents.
    Internal,
}

impl CallDirection {
    fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Internal => "internal",
        }
    }
}

/// Call list filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CallQuery {
    /// Only this customer's.
    customer_id: Option<i64>,
    /// Only this status.
    #[param(inline)]
    status: Option<CallStatus>,
    /// Only this direction.
    #[param(inline)]
    direction: Option<CallDirection>,
    /// Only calls this agent has (or had last, after a transfer): a user id, or `me`.
    agent: Option<String>,
    /// Items per page (1–200, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A call with its progress.
#[derive(Serialize, ToSchema)]
pub(super) struct CallDetail {
    /// The call.
    #[serde(flatten)]
    call: Call,
    /// What happened, in order: `ringing` (one per agent rung), `answered`, `held`, `resumed`,
    /// `transferred`, `dtmf`, `no_answer`, `overflow`, `ended`.
    events: Vec<CallEvent>,
}

/// The company's calls, newest first.
#[utoipa::path(get, path = "/calls", tag = "calls", params(CallQuery),
    responses((status = 200, body = Page<Call>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_calls(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersRead>,
    ApiQuery(q): ApiQuery<CallQuery>,
) -> Result<Json<Page<Call>>, ApiError> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit();
    let agent = match q.agent.as_deref() {
        None => None,
        Some("me") => Some(auth.principal.user_id),
        Some(id) => Some(UserId(id.parse().map_err(|_| {
            ApiError::bad_request("invalid_query", "agent must be a user id or me")
        })?)),
    };
    let filter = CallFilter {
        customer_id: q.customer_id,
        status: q.status.map(|s| s.as_str().to_owned()),
        direction: q.direction.map(|d| d.as_str().to_owned()),
        agent,
        before_id: page.before_id()?,
        limit: page.fetch(),
    };
    let mut conn = state.db.conn().await?;
    let items = store::calls::list(&mut conn.ex(), auth.company(), &filter).await?;
    Ok(Json(Page::by_id(items, limit, |c| c.id)))
}

/// A click-to-call: exactly one of `to` and `extension`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ClickToCall {
    /// A phone number, called through the company's trunk: E.164, or a form that normalises to
    /// it (`+1 (555) 123-4567`, `0015551234567`).
    #[schema(min_length = 1, max_length = 64, example = "+15551234567")]
    to: Option<String>,
    /// Another agent, by extension (SIP username).
    #[schema(min_length = 1, max_length = 64, example = "1001")]
    extension: Option<String>,
}

/// Click-to-call: rings the caller's own softphone, and when they answer, calls the number or
/// the extension. Answers as soon as the call is placed (the call is `ringing`); follow it with
/// `GET /calls/{id}`.
#[utoipa::path(post, path = "/calls", tag = "calls", request_body = ClickToCall,
    responses((status = 201, body = Call, description = "placed: the caller's softphone rings"),
        (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the caller (or the extension called) has no registered softphone"),
        (status = 422, body = ErrorBody, description = "not a phone number, no such extension, or no trunk to call out through"),
        (status = 503, body = ErrorBody, description = "telephony is not running")))]
async fn click_to_call(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersWrite>,
    ApiJson(req): ApiJson<ClickToCall>,
) -> Result<(StatusCode, Json<Call>), ApiError> {
    let target = match (req.to, req.extension) {
        (Some(to), None) => {
            if to.trim().is_empty() || to.chars().count() > 64 {
                return Err(ApiError::invalid("to", "must be a phone number"));
            }
            ClickTarget::Number(to)
        }
        (None, Some(ext)) => {
            if !valid_sip_username(&ext) {
                return Err(ApiError::invalid(
                    "extension",
                    "no agent with this extension",
                ));
            }
            ClickTarget::Extension(ext)
        }
        _ => {
            return Err(ApiError::invalid(
                "to",
                "give exactly one of to and extension",
            ));
        }
    };
    let telephony = state
        .telephony
        .get()
        .ok_or_else(|| ApiError::unavailable("telephony is not running"))?;
    let id = telephony
        .click_to_call(auth.company(), auth.principal.user_id, target)
        .await
        .map_err(|e| match e {
            CallStartError::AgentNotRegistered => ApiError::conflict(e.to_string()),
            CallStartError::BadNumber(_) => {
                ApiError::invalid("to", "not a phone number in international format")
            }
            CallStartError::UnknownExtension(_) => {
                ApiError::invalid("extension", "no agent with this extension")
            }
            CallStartError::NoTrunk => ApiError::invalid("to", e),
            CallStartError::Unavailable(reason) => {
                tracing::warn!(%reason, "click-to-call could not start");
                ApiError::unavailable("the call could not be started")
            }
        })?;
    let mut conn = state.db.conn().await?;
    let call = store::calls::get(&mut conn.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("call {id} placed but not stored")))?;
    Ok(created(call))
}

/// One call with its events and media figures (`media`: per-leg detail as a JSON object).
#[utoipa::path(get, path = "/calls/{id}", tag = "calls", params(("id" = i64, Path, description = "call id")),
    responses((status = 200, body = CallDetail), (status = 404, body = ErrorBody)))]
async fn get_call(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CallDetail>, ApiError> {
    let mut conn = state.db.conn().await?;
    let call = store::calls::get(&mut conn.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("call"))?;
    let events = store::calls::events(&mut conn.ex(), auth.company(), id).await?;
    Ok(Json(CallDetail { call, events }))
}

#[cfg(test)]
mod tests {
    use super::{CallDirection, CallStatus};
    use crate::store::calls::{DIRECTIONS, STATUSES};

    #[test]
    fn query_enums_name_the_stored_values() {
        let statuses = [
            CallStatus::Ringing,
            CallStatus::Answered,
            CallStatus::Completed,
            CallStatus::Missed,
            CallStatus::Failed,
            CallStatus::Rejected,
            CallStatus::Cancelled,
        ];
        let names: Vec<_> = statuses.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, STATUSES);
        for s in statuses {
            let parsed: CallStatus = serde_json::from_value(s.as_str().into()).unwrap();
            assert_eq!(parsed.as_str(), s.as_str());
        }
        let directions = [
            CallDirection::In,
            CallDirection::Out,
            CallDirection::Internal,
        ];
        let names: Vec<_> = directions.iter().map(|d| d.as_str()).collect();
        assert_eq!(names, DIRECTIONS);
    }
}
