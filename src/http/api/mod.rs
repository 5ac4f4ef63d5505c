//! The JSON API under `/api/v1`. Every handler checks a permission first and scopes every query
//! to the caller's company, so another company's resources answer 404.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;

mod agents;
mod ai;
mod audit;
mod auth;
mod call_groups;
mod calls;
mod channels;
mod company;
mod conversations;
mod customers;
mod deletion;
mod export;
mod knowledge;
mod messages;
mod prompts;
mod recordings;
mod roles;
mod telephony;
pub(crate) mod tokens;
pub(crate) mod usage;
mod users;
pub(crate) use tokens::TOKEN_PREFIX;

/// The `/api/v1` routes with their documentation.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .merge(auth::routes())
        .merge(company::routes())
        .merge(users::routes())
        .merge(roles::routes())
        .merge(tokens::routes())
        .merge(customers::routes())
        .merge(deletion::routes())
        .merge(conversations::routes())
        .merge(messages::routes())
        .merge(channels::routes())
        .merge(telephony::routes())
        .merge(calls::routes())
        .merge(call_groups::routes())
        .merge(audit::routes())
        .merge(recordings::routes())
        .merge(prompts::routes())
        .merge(agents::routes())
        .merge(export::routes())
        .merge(usage::routes())
        .merge(ai::routes())
        .merge(knowledge::routes())
}

/// Default and largest page size.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

/// Cursor pagination parameters shared by the list routes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// How many rows to fetch: one more than the page, to know whether another page follows.
    fn fetch(&self) -> i64 {
        self.limit() + 1
    }

    /// The cursor as an id (for id-ordered lists).
    fn before_id(&self) -> Result<Option<i64>, super::ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    super::ApiError::bad_request(
                        "invalid_cursor",
                        "cursor is not one this server made",
                    )
                })
            })
            .transpose()
    }
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `items` fetched with [`PageParams::fetch`]: the extra row, if present, is
    /// dropped and tells that a next page exists; the cursor is made from the last item kept.
    fn new(mut items: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more {
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }

    /// Like [`Page::new`] for id-ordered lists, whose cursor is the last id.
    fn by_id(items: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        Self::new(items, limit, |i| id(i).to_string())
    }
}

/// A trimmed, non-empty string of at most `max` characters, or a 422 naming `field`.
fn required_text(field: &str, value: &str, max: usize) -> Result<String, super::ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(super::ApiError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(super::ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

/// Like [`required_text`] for optional values; empty becomes `None`.
fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, super::ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => required_text(field, v, max).map(Some),
    }
}

/// An `http(s)` URL for avatars and pictures.
fn optional_url(field: &str, value: Option<&str>) -> Result<Option<String>, super::ApiError> {
    let v = optional_text(field, value, 2048)?;
    if let Some(url) = &v
        && (!(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(char::is_whitespace))
    {
        return Err(super::ApiError::invalid(field, "must be an http(s) URL"));
    }
    Ok(v)
}
