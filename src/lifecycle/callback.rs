//! `POST /webhooks/meta/data-deletion`: Meta's data-deletion callback (P21).
//!
//! The form field `signed_request` is verified ([`super::signed_request`]) with the server's
//! `meta_app_secret` and with every Meta channel account's own `app_secret`. The secret that
//! verified it decides which channel accounts the request covers: the server's secret covers
//! every Meta account (Messenger, Instagram, WhatsApp Cloud API) without a secret of its own; an
//! account's own secret covers the accounts that hold that secret. Every customer with an
//! identity whose external id is the payload's `user_id` on a covered account is erased. The
//! answer is `{"url", "confirmation_code"}`, also when nobody matched (the status page then says
//! that nothing was found). A refused request answers 400 with a JSON error, deletes nothing, and
//! leaves a `rejected` row in `integration_logs` with the `signed_request` redacted.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::erase::{self, Place, Source};
use super::signed_request::{self, SignedRequestError};
use crate::domain::CompanyId;
use crate::http::{ApiError, AppState};
use crate::secrets::{REDACTED, Secret};
use crate::store::integration_logs::{self, NewLog};
use crate::store::{self, audit::Actor, channels, deletion};

/// The path of the callback.
pub const PATH: &str = "/webhooks/meta/data-deletion";

/// What Meta gets back.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallbackAnswer {
    /// The human-readable status page.
    pub url: String,
    /// The code the person can look up there.
    pub confirmation_code: String,
}

#[derive(Deserialize)]
struct Form {
    signed_request: Option<String>,
}

/// A secret that may have signed the request, and the accounts it covers.
struct Signer {
    secret: Secret<String>,
    accounts: Vec<i64>,
}

/// The server's secret (first, when set) and each distinct own secret of a Meta account.
async fn signers(state: &AppState) -> store::Result<Vec<Signer>> {
    let rows = {
        let mut conn = state.db.conn().await?;
        deletion::meta_accounts(&mut conn.ex()).await?
    };
    let mut global = state
        .config
        .meta_app_secret
        .as_ref()
        .filter(|s| !s.expose().is_empty())
        .map(|s| Signer {
            secret: s.clone(),
            accounts: Vec::new(),
        });
    let mut own: Vec<Signer> = Vec::new();
    for row in rows {
        let secret = match row.credentials.as_deref() {
            Some(c) => match channels::open(&state.keyring, c) {
                Ok(creds) => creds
                    .expose()
                    .get("app_secret")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                Err(e) => {
                    // Not covered by any secret: it can be neither verified nor matched.
                    tracing::error!(account = row.id, error = %e, "cannot decrypt channel credentials");
                    continue;
                }
            },
            None => None,
        };
        match secret {
            None => {
                if let Some(g) = global.as_mut() {
                    g.accounts.push(row.id);
                }
            }
            Some(s) => match own.iter_mut().find(|o| o.secret.expose() == &s) {
                Some(o) => o.accounts.push(row.id),
                None => own.push(Signer {
                    secret: Secret::new(s),
                    accounts: vec![row.id],
                }),
            },
        }
    }
    Ok(global.into_iter().chain(own).collect())
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// Writes the `rejected` log row (the request body is never kept: it is the person's id).
async fn log_rejection(state: &AppState, headers: &HeaderMap, why: &str) {
    let kept: Vec<(&str, &str)> = ["content-type", "user-agent"]
        .iter()
        .filter_map(|name| Some((*name, headers.get(*name)?.to_str().ok()?)))
        .collect();
    let row = NewLog {
        company_id: None,
        channel_account_id: None,
        direction: "in",
        provider: "meta",
        method: "POST",
        endpoint: PATH.to_owned(),
        status: Some(400),
        duration_ms: None,
        request_headers: Some(crate::messaging::redact::headers(kept, &[]).to_string()),
        request_body: Some(format!("signed_request={REDACTED}")),
        response_body: None,
        error: Some(why.to_owned()),
        state: "rejected",
        message_id: None,
        created_at: store::now_ms(),
    };
    let written = async {
        let mut conn = state.db.conn().await?;
        integration_logs::insert(&mut conn.ex(), &row).await
    }
    .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot log a rejected data-deletion callback");
    }
}

/// The handler.
pub async fn meta_data_deletion(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = match serde_urlencoded::from_bytes::<Form>(&body) {
        Ok(Form {
            signed_request: Some(s),
        }) if !s.trim().is_empty() => s,
        Ok(_) => {
            let why = "signed_request is required";
            log_rejection(&state, &headers, why).await;
            return refuse(StatusCode::BAD_REQUEST, "missing_field", why.into());
        }
        Err(_) => {
            let why = "body is not an application/x-www-form-urlencoded form";
            log_rejection(&state, &headers, why).await;
            return refuse(StatusCode::BAD_REQUEST, "malformed_body", why.into());
        }
    };
    let signers = match signers(&state).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let verified = signed_request::verify(
        signed.trim(),
        signers.iter().map(|s| s.secret.expose().as_bytes()),
    );
    let (index, payload) = match verified {
        Ok(v) => v,
        Err(e) => {
            let why = e.to_string();
            tracing::warn!(reason = %why, "data-deletion callback refused");
            log_rejection(&state, &headers, &why).await;
            let code = match e {
                SignedRequestError::Signature => "invalid_signature",
                SignedRequestError::Algorithm(_) => "unsupported_algorithm",
                _ => "malformed_signed_request",
            };
            return refuse(StatusCode::BAD_REQUEST, code, why);
        }
    };
    match erase_matching(&state, &signers[index].accounts, &payload.user_id).await {
        Ok(code) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            Json(CallbackAnswer {
                url: super::status_url(&state.public_base, &code),
                confirmation_code: code,
            }),
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Erases the customers with identity `user_id` on `accounts`; returns the confirmation code.
async fn erase_matching(
    state: &AppState,
    accounts: &[i64],
    user_id: &str,
) -> store::Result<String> {
    let matched = {
        let mut conn = state.db.conn().await?;
        deletion::customers_by_external_id(&mut conn.ex(), accounts, user_id).await?
    };
    let mut companies: Vec<CompanyId> = Vec::new();
    for (c, _) in &matched {
        if !companies.contains(c) {
            companies.push(*c);
        }
    }
    let request_company = match companies.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let actor = Actor {
        user_id: None,
        label: "meta-data-deletion-callback".into(),
        ip: None,
        user_agent: None,
    };
    let place = Place {
        db: &state.db,
        data_dir: &state.config.data_dir,
        gate: Some(&state.messaging.gate),
    };
    let request = erase::erase(place, &matched, request_company, Source::Meta, &actor).await?;
    Ok(request.code)
}
