//! Customers, their identities, merge, notes, and the timeline.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageParams, optional_text, optional_url, required_text};
use crate::domain::{ChannelKind, CompanyId, IdentityKind, phone::normalize_e164};
use crate::http::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, double_option};
use crate::http::extract::{Authz, perm};
use crate::http::{AppState, created};
use crate::store::{
    self, Ex, audit,
    conversations::Note,
    customers::{Customer, Identity, MergeCounts, Profile},
    timeline::{Cursor, TimelineItem},
};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(get_customer, update_customer, delete_customer))
        .routes(routes!(timeline))
        .routes(routes!(add_identity))
        .routes(routes!(delete_identity))
        .routes(routes!(merge_customer))
        .routes(routes!(add_note))
}

/// Customer list filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CustomerQuery {
    /// Search in names and identities (phone numbers, ids).
    q: Option<String>,
    /// Items per page (1–200, default 50).
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A customer with the identities that reach them.
#[derive(Serialize, ToSchema)]
pub(super) struct CustomerDetail {
    #[serde(flatten)]
    customer: Customer,
    /// Identities.
    identities: Vec<Identity>,
}

/// An identity to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IdentityInput {
    /// Kind of id.
    kind: IdentityKind,
    /// The id on the channel; phone numbers are normalised to E.164.
    external_id: String,
    /// The channel account it belongs to (required for psid, igsid, wa_id, whatsapp_bsuid and
    /// waha_chat_id; none for phone).
    channel_account_id: Option<i64>,
    /// Name the channel shows.
    display_name: Option<String>,
    /// Picture the channel shows.
    avatar_url: Option<String>,
    /// Locale the channel reports.
    locale: Option<String>,
}

/// A new customer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomerCreate {
    /// Display name.
    display_name: Option<String>,
    /// Picture URL.
    avatar_url: Option<String>,
    /// Locale, e.g. `de_DE`.
    locale: Option<String>,
    /// Identities to attach.
    #[serde(default)]
    identities: Vec<IdentityInput>,
}

/// A change to a customer; `null` clears a field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CustomerUpdate {
    /// Display name.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    /// Picture URL.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    /// Locale.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    locale: Option<Option<String>>,
}

fn profile(
    display_name: Option<&str>,
    avatar_url: Option<&str>,
    locale: Option<&str>,
) -> Result<Profile, ApiError> {
    Ok(Profile {
        display_name: optional_text("display_name", display_name, 200)?,
        avatar_url: optional_url("avatar_url", avatar_url)?,
        locale: optional_text("locale", locale, 35)?,
    })
}

/// Which channel kinds an identity kind may belong to; `None`: none at all (phone numbers).
fn account_kinds(kind: IdentityKind) -> Option<&'static [ChannelKind]> {
    match kind {
        IdentityKind::Psid => Some(&[ChannelKind::Messenger]),
        IdentityKind::Igsid => Some(&[ChannelKind::Instagram]),
        IdentityKind::WaId | IdentityKind::WhatsappBsuid => Some(&[ChannelKind::WhatsappCloud]),
        IdentityKind::WahaChatId => Some(&[ChannelKind::Waha]),
        IdentityKind::SipUri => Some(&[ChannelKind::SipTrunk]),
        IdentityKind::Phone => None,
    }
}

/// Validates an identity: its account belongs to the company and fits the kind; phones are E.164.
async fn check_identity(
    ex: &mut Ex<'_>,
    company: CompanyId,
    input: &IdentityInput,
) -> Result<(String, Profile), ApiError> {
    let raw = required_text("external_id", &input.external_id, 512)?;
    let external_id = match input.kind {
        IdentityKind::Phone => normalize_e164(&raw).ok_or_else(|| {
            ApiError::invalid("external_id", "not an international phone number (E.164)")
        })?,
        _ => raw,
    };
    match (account_kinds(input.kind), input.channel_account_id) {
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "channel_account_id",
                "phone identities belong to no channel account",
            ));
        }
        (Some(kinds), Some(id)) => {
            let account = store::channels::get(ex, company, id)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid("channel_account_id", "no such channel account")
                })?;
            if !kinds.iter().any(|k| k.as_str() == account.kind) {
                return Err(ApiError::invalid(
                    "channel_account_id",
                    format!(
                        "a {} identity cannot belong to a {} account",
                        input.kind, account.kind
                    ),
                ));
            }
        }
        (Some(_), None) if input.kind != IdentityKind::SipUri => {
            return Err(ApiError::invalid(
                "channel_account_id",
                format!("required for {} identities", input.kind),
            ));
        }
        _ => {}
    }
    let p = profile(
        input.display_name.as_deref(),
        input.avatar_url.as_deref(),
        input.locale.as_deref(),
    )?;
    Ok((external_id, p))
}

/// A search that looks like a phone number (`+49 151…`, `0049151…`, `0151…`) becomes the digits
/// that its E.164 form contains; anything else is searched as written.
fn phone_fragment(q: &str) -> String {
    let international = q.starts_with('+') || q.starts_with("00");
    if let Some(e164) = normalize_e164(q).filter(|_| international) {
        return e164;
    }
    let phone_like = q
        .chars()
        .all(|c| c.is_ascii_digit() || " +-./()".contains(c));
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    if !phone_like || digits.len() < 3 {
        return q.to_owned();
    }
    // International prefix `00`, or the national trunk prefix `0`, is not part of E.164.
    let digits = digits
        .strip_prefix("00")
        .or_else(|| digits.strip_prefix('0'))
        .unwrap_or(&digits);
    digits.to_owned()
}

/// The company's customers, newest first; `q` searches names and identities.
#[utoipa::path(get, path = "/customers", tag = "customers", params(CustomerQuery),
    responses((status = 200, body = Page<Customer>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_customers(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersRead>,
    ApiQuery(query): ApiQuery<CustomerQuery>,
) -> Result<Json<Page<Customer>>, ApiError> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = page.limit();
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    // A phone number in any notation finds the E.164 identity.
    let search = search.map(phone_fragment);
    let mut conn = state.db.conn().await?;
    let items = store::customers::list(
        &mut conn.ex(),
        auth.company(),
        search.as_deref(),
        page.before_id()?,
        page.fetch(),
    )
    .await?;
    Ok(Json(Page::by_id(items, limit, |c| c.id)))
}

/// Creates a customer, with identities if given. Answers its `id`.
#[utoipa::path(post, path = "/customers", tag = "customers", request_body = CustomerCreate,
    responses((status = 201, body = CustomerDetail), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_customer(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersWrite>,
    ApiJson(req): ApiJson<CustomerCreate>,
) -> Result<(StatusCode, Json<CustomerDetail>), ApiError> {
    let p = profile(
        req.display_name.as_deref(),
        req.avatar_url.as_deref(),
        req.locale.as_deref(),
    )?;
    let mut tx = state.db.begin().await?;
    let customer = store::customers::create(&mut tx.ex(), auth.company(), &p).await?;
    for input in &req.identities {
        let (external_id, ip) = check_identity(&mut tx.ex(), auth.company(), input).await?;
        store::customers::add_identity(
            &mut tx.ex(),
            auth.company(),
            customer.id,
            input.kind.as_str(),
            input.channel_account_id,
            &external_id,
            &ip,
        )
        .await?;
    }
    let identities =
        store::customers::identities(&mut tx.ex(), auth.company(), customer.id).await?;
    tx.commit().await?;
    Ok(created(CustomerDetail {
        customer,
        identities,
    }))
}

/// One customer with identities. A merged customer shows `merged_into_id`.
#[utoipa::path(get, path = "/customers/{id}", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = CustomerDetail), (status = 404, body = ErrorBody)))]
async fn get_customer(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CustomerDetail>, ApiError> {
    let mut conn = state.db.conn().await?;
    let customer = store::customers::get(&mut conn.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let identities = store::customers::identities(&mut conn.ex(), auth.company(), id).await?;
    Ok(Json(CustomerDetail {
        customer,
        identities,
    }))
}

/// Changes a customer's profile.
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    request_body = CustomerUpdate,
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_customer(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CustomerUpdate>,
) -> Result<Json<Customer>, ApiError> {
    let display_name = req
        .display_name
        .map(|v| optional_text("display_name", v.as_deref(), 200))
        .transpose()?;
    let avatar_url = req
        .avatar_url
        .map(|v| optional_url("avatar_url", v.as_deref()))
        .transpose()?;
    let locale = req
        .locale
        .map(|v| optional_text("locale", v.as_deref(), 35))
        .transpose()?;
    let mut conn = state.db.conn().await?;
    store::customers::update(
        &mut conn.ex(),
        auth.company(),
        id,
        display_name,
        avatar_url,
        locale,
    )
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::not_found("customer"))
}

/// Deletes a customer and everything of theirs: identities, conversations, messages, calls with
/// their recording files, notes, AI suggestions and the integration-log rows that name them
/// (the same erasure as `POST /customers/{id}/deletion`, which also answers the confirmation
/// code). Audited.
#[utoipa::path(delete, path = "/customers/{id}", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
async fn delete_customer(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersDelete>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    super::deletion::erase_customer(&state, &auth, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The customer's timeline: messages, calls and notes, newest first.
#[utoipa::path(get, path = "/customers/{id}/timeline", tag = "customers",
    params(("id" = i64, Path, description = "customer id"), PageParams),
    responses((status = 200, body = Page<TimelineItem>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn timeline(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersRead>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<TimelineItem>>, ApiError> {
    let limit = page.limit();
    let cursor = page
        .cursor
        .as_deref()
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| {
                ApiError::bad_request("invalid_cursor", "cursor is not one this server made")
            })
        })
        .transpose()?;
    let mut conn = state.db.conn().await?;
    store::customers::get(&mut conn.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let items = store::timeline::page(
        &mut conn.ex(),
        auth.company(),
        id,
        cursor.as_ref(),
        page.fetch(),
    )
    .await?;
    Ok(Json(Page::new(items, limit, |i| Cursor::after(i).encode())))
}

/// Adds an identity to a customer. An identity already known (on any customer) is a conflict:
/// merge the customers instead.
#[utoipa::path(post, path = "/customers/{id}/identities", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    request_body = IdentityInput,
    responses((status = 201, body = Identity), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_identity(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<IdentityInput>,
) -> Result<(StatusCode, Json<Identity>), ApiError> {
    let mut tx = state.db.begin().await?;
    store::customers::get(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let (external_id, p) = check_identity(&mut tx.ex(), auth.company(), &req).await?;
    let identity = store::customers::add_identity(
        &mut tx.ex(),
        auth.company(),
        id,
        req.kind.as_str(),
        req.channel_account_id,
        &external_id,
        &p,
    )
    .await?;
    tx.commit().await?;
    Ok(created(identity))
}

/// Removes an identity from a customer.
#[utoipa::path(delete, path = "/customers/{id}/identities/{identity_id}", tag = "customers",
    params(("id" = i64, Path, description = "customer id"), ("identity_id" = i64, Path, description = "identity id")),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody)))]
async fn delete_identity(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersWrite>,
    ApiPath((id, identity)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.db.conn().await?;
    if !store::customers::delete_identity(&mut conn.ex(), auth.company(), id, identity).await? {
        return Err(ApiError::not_found("identity"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Which customer to merge into this one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MergeRequest {
    /// The customer that is merged away.
    source_customer_id: i64,
}

/// The result of a merge.
#[derive(Serialize, ToSchema)]
pub(super) struct MergeResult {
    /// The surviving customer.
    customer: CustomerDetail,
    /// What moved.
    moved: MergeCounts,
}

/// Merges another customer into this one: identities, conversations, messages, calls and notes
/// move here; the other customer is kept as a pointer (`merged_into_id`). Audited.
#[utoipa::path(post, path = "/customers/{id}/merge", tag = "customers", params(("id" = i64, Path, description = "surviving customer id")),
    request_body = MergeRequest,
    responses((status = 200, body = MergeResult), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn merge_customer(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<MergeRequest>,
) -> Result<Json<MergeResult>, ApiError> {
    if req.source_customer_id == id {
        return Err(ApiError::invalid(
            "source_customer_id",
            "cannot merge a customer into itself",
        ));
    }
    let company = auth.company();
    let mut tx = state.db.begin().await?;
    let target = store::customers::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let source = store::customers::get(&mut tx.ex(), company, req.source_customer_id)
        .await?
        .ok_or_else(|| ApiError::not_found("source customer"))?;
    if target.merged_into_id.is_some() || source.merged_into_id.is_some() {
        return Err(ApiError::conflict(
            "one of the customers was already merged",
        ));
    }
    let moved = store::customers::merge(
        &mut tx.ex(),
        company,
        id,
        source.id,
        Some(auth.principal.user_id),
    )
    .await?;
    audit::record(
        &mut tx.ex(),
        company,
        &auth.actor(),
        "merge",
        "customer",
        Some(id),
        &serde_json::json!({"source_customer_id": source.id, "moved": moved}),
    )
    .await?;
    let customer = store::customers::get(&mut tx.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let identities = store::customers::identities(&mut tx.ex(), company, id).await?;
    tx.commit().await?;
    Ok(Json(MergeResult {
        customer: CustomerDetail {
            customer,
            identities,
        },
        moved,
    }))
}

/// A new internal note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoteCreate {
    /// Text.
    body: String,
    /// The conversation it belongs to, if any (must be this customer's).
    conversation_id: Option<i64>,
}

/// Adds an internal note to the customer's timeline.
#[utoipa::path(post, path = "/customers/{id}/notes", tag = "customers", params(("id" = i64, Path, description = "customer id")),
    request_body = NoteCreate,
    responses((status = 201, body = Note), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_note(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::CustomersWrite>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NoteCreate>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let body = required_text("body", &req.body, 10_000)?;
    let mut tx = state.db.begin().await?;
    store::customers::get(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    if let Some(conv) = req.conversation_id {
        let c = store::conversations::get(&mut tx.ex(), auth.company(), conv).await?;
        if c.is_none_or(|c| c.customer_id != id) {
            return Err(ApiError::invalid(
                "conversation_id",
                "no such conversation of this customer",
            ));
        }
    }
    let note = store::conversations::add_note(
        &mut tx.ex(),
        auth.company(),
        id,
        req.conversation_id,
        Some(auth.principal.user_id),
        &body,
    )
    .await?;
    tx.commit().await?;
    Ok(created(note))
}
