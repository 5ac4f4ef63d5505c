//! Call groups: which agents ring together for which DIDs, for how long, and what happens when
//! nobody answers. Reading needs `channels:read` and changing `channels:write`, as for the trunks
//! whose numbers the groups route. Every change is audited.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::required_text;
use crate::domain::UserId;
use crate::domain::phone::normalize_e164;
use crate::http::error::{ApiError, ApiJson, ApiPath, ErrorBody, double_option};
use crate::http::extract::{Authz, perm};
use crate::http::{AppState, created};
use crate::store::routing::{
    self, DEFAULT_NO_ANSWER_STATUS, DEFAULT_RING_TIMEOUT_SECS, Group, GroupSettings, RoutingError,
};
use crate::store::{self, StoreError, Tx, audit};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
}

/// Most members and DIDs one group takes.
const MAX_MEMBERS: usize = 500;
const MAX_DIDS: usize = 200;

/// A new call group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupCreate {
    /// Name, unique in the company.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// How long the agents ring, seconds (default 30).
    #[schema(minimum = 5, maximum = 600)]
    ring_timeout_secs: Option<i64>,
    /// SIP status the caller gets when nobody answered and there is no overflow (default 480).
    #[schema(minimum = 400, maximum = 699)]
    no_answer_status: Option<i64>,
    /// The group rung next when nobody answered.
    overflow_group_id: Option<i64>,
    /// The agents (user ids of the company).
    #[schema(value_type = Option<Vec<i64>>, max_items = 500)]
    members: Option<Vec<UserId>>,
    /// Numbers that ring the group, each a DID of one of the company's trunks (normalised to
    /// E.164).
    #[schema(max_items = 200)]
    dids: Option<Vec<String>>,
}

/// A change to a call group; absent fields stay as they are, `members` and `dids` replace.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupUpdate {
    /// Name, unique in the company.
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// Seconds.
    #[schema(minimum = 5, maximum = 600)]
    ring_timeout_secs: Option<i64>,
    /// SIP status.
    #[schema(minimum = 400, maximum = 699)]
    no_answer_status: Option<i64>,
    /// Overflow group (`null`: none).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    overflow_group_id: Option<Option<i64>>,
    /// The agents (replace them).
    #[schema(value_type = Option<Vec<i64>>, max_items = 500)]
    members: Option<Vec<UserId>>,
    /// The numbers (replace them).
    #[schema(max_items = 200)]
    dids: Option<Vec<String>>,
}

fn check_members(members: Option<&Vec<UserId>>) -> Result<(), ApiError> {
    if members.is_some_and(|m| m.len() > MAX_MEMBERS) {
        return Err(ApiError::invalid(
            "members",
            format!("at most {MAX_MEMBERS}"),
        ));
    }
    Ok(())
}

/// The DIDs in E.164, or a 422 naming the first that is not a number.
fn normalized_dids(dids: Option<&Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(dids) = dids else {
        return Ok(None);
    };
    if dids.len() > MAX_DIDS {
        return Err(ApiError::invalid("dids", format!("at most {MAX_DIDS}")));
    }
    dids.iter()
        .enumerate()
        .map(|(i, d)| {
            normalize_e164(d).ok_or_else(|| {
                ApiError::invalid(&format!("dids[{i}]"), "must be a number in E.164")
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A refused change as an API error: fields 422, a taken name or DID 409.
fn refused(e: RoutingError) -> ApiError {
    match e {
        RoutingError::Invalid(field) => field.into(),
        RoutingError::Store(StoreError::Conflict(_)) => {
            ApiError::conflict("a call group with this name exists")
        }
        RoutingError::Store(other) => other.into(),
    }
}

/// Sets members and DIDs as asked, in `tx`.
async fn set_parts(
    tx: &mut Tx,
    auth: &crate::http::extract::Auth,
    id: i64,
    members: Option<&[UserId]>,
    dids: Option<&[String]>,
) -> Result<(), ApiError> {
    if let Some(m) = members {
        routing::set_members(&mut tx.ex(), auth.company(), id, m)
            .await
            .map_err(refused)?;
    }
    if let Some(d) = dids {
        match routing::set_dids(&mut tx.ex(), auth.company(), id, d).await {
            Ok(_) => {}
            // The store's message names the DID and nothing else.
            Err(RoutingError::Store(StoreError::Conflict(message))) => {
                return Err(ApiError::conflict(message));
            }
            Err(e) => return Err(refused(e)),
        }
    }
    Ok(())
}

/// The company's call groups, by name.
#[utoipa::path(get, path = "/call-groups", tag = "calls",
    responses((status = 200, body = Vec<Group>), (status = 403, body = ErrorBody)))]
async fn list_groups(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsRead>,
) -> Result<Json<Vec<Group>>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        routing::list_groups(&mut conn.ex(), auth.company()).await?,
    ))
}

/// Creates a call group with its members and DIDs. Audited.
#[utoipa::path(post, path = "/call-groups", tag = "calls", request_body = GroupCreate,
    responses((status = 201, body = Group), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the name, or a DID, is taken"), (status = 422, body = ErrorBody)))]
async fn create_group(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiJson(req): ApiJson<GroupCreate>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let name = required_text("name", &req.name, 200)?;
    check_members(req.members.as_ref())?;
    let dids = normalized_dids(req.dids.as_ref())?;
    let settings = GroupSettings {
        name: &name,
        ring_timeout_secs: req.ring_timeout_secs.unwrap_or(DEFAULT_RING_TIMEOUT_SECS),
        no_answer_status: req.no_answer_status.unwrap_or(DEFAULT_NO_ANSWER_STATUS),
        overflow_group_id: req.overflow_group_id,
    };
    let mut tx = state.db.begin().await?;
    let group = routing::create_group(&mut tx.ex(), auth.company(), &settings)
        .await
        .map_err(refused)?;
    set_parts(
        &mut tx,
        &auth,
        group.id,
        req.members.as_deref(),
        dids.as_deref(),
    )
    .await?;
    let group = routing::group(&mut tx.ex(), auth.company(), group.id)
        .await?
        .ok_or_else(|| ApiError::not_found("call group"))?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "create",
        "call_group",
        Some(group.id),
        &serde_json::to_value(&group).unwrap_or_default(),
    )
    .await?;
    tx.commit().await?;
    Ok(created(group))
}

/// One call group.
#[utoipa::path(get, path = "/call-groups/{id}", tag = "calls", params(("id" = i64, Path, description = "call group id")),
    responses((status = 200, body = Group), (status = 404, body = ErrorBody)))]
async fn get_group(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Group>, ApiError> {
    let mut conn = state.db.conn().await?;
    routing::group(&mut conn.ex(), auth.company(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("call group"))
}

/// Changes a call group; `members` and `dids`, when given, replace the current ones. Audited.
#[utoipa::path(patch, path = "/call-groups/{id}", tag = "calls", params(("id" = i64, Path, description = "call group id")),
    request_body = GroupUpdate,
    responses((status = 200, body = Group), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the name, or a DID, is taken"), (status = 422, body = ErrorBody)))]
async fn update_group(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<GroupUpdate>,
) -> Result<Json<Group>, ApiError> {
    let name = req
        .name
        .as_deref()
        .map(|n| required_text("name", n, 200))
        .transpose()?;
    check_members(req.members.as_ref())?;
    let dids = normalized_dids(req.dids.as_ref())?;
    let mut tx = state.db.begin().await?;
    let current = routing::group(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("call group"))?;
    let settings = GroupSettings {
        name: name.as_deref().unwrap_or(&current.name),
        ring_timeout_secs: req.ring_timeout_secs.unwrap_or(current.ring_timeout_secs),
        no_answer_status: req.no_answer_status.unwrap_or(current.no_answer_status),
        overflow_group_id: req.overflow_group_id.unwrap_or(current.overflow_group_id),
    };
    routing::update_group(&mut tx.ex(), auth.company(), id, &settings)
        .await
        .map_err(refused)?
        .ok_or_else(|| ApiError::not_found("call group"))?;
    set_parts(&mut tx, &auth, id, req.members.as_deref(), dids.as_deref()).await?;
    let group = routing::group(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("call group"))?;
    let changes = serde_json::json!({"name": name, "ring_timeout_secs": req.ring_timeout_secs,
        "no_answer_status": req.no_answer_status, "overflow_group_id": req.overflow_group_id,
        "members": req.members.as_ref().map(|_| &group.members),
        "dids": dids.as_ref().map(|_| &group.dids)});
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "update",
        "call_group",
        Some(id),
        &changes,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(group))
}

/// Deletes a call group: its DIDs then ring every available agent, and groups that overflowed
/// into it no longer overflow. Audited.
#[utoipa::path(delete, path = "/call-groups/{id}", tag = "calls", params(("id" = i64, Path, description = "call group id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
async fn delete_group(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ChannelsWrite>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let group = routing::group(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("call group"))?;
    store::routing::delete_group(&mut tx.ex(), auth.company(), id).await?;
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "delete",
        "call_group",
        Some(id),
        &serde_json::json!({"name": group.name, "dids": group.dids}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
