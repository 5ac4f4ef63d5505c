//! Provider webhooks: `/webhooks/meta` (Meta's handshake and events, for every business on this
//! server) and `/webhooks/waha/{channel_account_id}`. The bodies are checked and stored by
//! [`crate::messaging::ingest`]; these handlers only translate HTTP.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use crate::messaging::ingest::{self, Outcome, Received};
use crate::messaging::signature::{Rejection, same_secret};

pub(super) fn routes(max_body: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/webhooks/meta", get(meta_handshake).post(meta_event))
        .route("/webhooks/waha/{account}", post(waha_event))
        .route(
            crate::lifecycle::callback::PATH,
            post(crate::lifecycle::callback::meta_data_deletion),
        )
        .layer(DefaultBodyLimit::max(max_body))
}

/// Headers kept in the log of an inbound request (secret ones are redacted there).
const LOGGED: &[&str] = &[
    "content-type",
    "user-agent",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-webhook-request-id",
    "x-webhook-timestamp",
    "x-webhook-hmac",
    "x-webhook-hmac-algorithm",
    "x-api-key",
];

fn received<'a>(
    endpoint: String,
    headers: &'a HeaderMap,
    body: &'a [u8],
    signature: &str,
) -> Received<'a> {
    Received {
        body,
        endpoint,
        headers: LOGGED
            .iter()
            .filter_map(|name| {
                let v = headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), v.to_owned()))
            })
            .collect(),
        signature: headers.get(signature).map(|v| v.as_bytes()),
        api_key: headers.get("x-api-key").map(|v| v.as_bytes()),
    }
}

fn answer(outcome: Outcome) -> Response {
    let (status, text) = match outcome {
        Outcome::Stored => (StatusCode::OK, "EVENT_RECEIVED".to_owned()),
        Outcome::Malformed(why) => (StatusCode::BAD_REQUEST, why),
        Outcome::Rejected(Rejection::Missing) => {
            (StatusCode::UNAUTHORIZED, "missing signature".to_owned())
        }
        Outcome::Rejected(Rejection::Invalid) => {
            (StatusCode::FORBIDDEN, "invalid signature".to_owned())
        }
        Outcome::UnknownAccount => (StatusCode::NOT_FOUND, "no such channel account".to_owned()),
        Outcome::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "could not store the event; retry".to_owned(),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Meta's verification request.
#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /webhooks/meta`: answers the challenge when the verify token is the server's or a
/// channel account's; 403 otherwise.
async fn meta_handshake(
    State(state): State<Arc<AppState>>,
    Query(q): Query<Handshake>,
) -> Response {
    let (Some("subscribe"), Some(token), Some(challenge)) =
        (q.mode.as_deref(), q.verify_token.as_deref(), q.challenge)
    else {
        return (StatusCode::FORBIDDEN, "not a subscription request").into_response();
    };
    let global = state.config.meta_verify_token.as_ref().is_some_and(|t| {
        !t.expose().is_empty() && same_secret(t.expose().as_bytes(), token.as_bytes())
    });
    if global || state.messaging.directory.is_verify_token(token).await {
        tracing::info!("Meta webhook subscription verified");
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            challenge,
        )
            .into_response();
    }
    tracing::warn!("Meta webhook verification with a wrong verify token");
    (StatusCode::FORBIDDEN, "wrong verify token").into_response()
}

/// `POST /webhooks/meta`.
async fn meta_event(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let m = &state.messaging;
    let req = received(
        "/webhooks/meta".into(),
        &headers,
        &body,
        "x-hub-signature-256",
    );
    let secret = state
        .config
        .meta_app_secret
        .as_ref()
        .filter(|s| !s.expose().is_empty());
    answer(ingest::meta(&m.committer, &m.directory, secret, req).await)
}

/// `POST /webhooks/waha/{account}`.
async fn waha_event(
    State(state): State<Arc<AppState>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(id) = account.parse::<i64>() else {
        return answer(Outcome::UnknownAccount);
    };
    let m = &state.messaging;
    let req = received(
        format!("/webhooks/waha/{id}"),
        &headers,
        &body,
        "x-webhook-hmac",
    );
    answer(ingest::waha(&m.committer, &m.directory, id, req).await)
}
