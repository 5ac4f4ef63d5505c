//! Webhook ingestion: signature check on the raw bytes, routing, and the rows handed to the group
//! [`Committer`], which makes every acknowledged event durable.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

pub use super::committer::{Committer, MAX_BATCH};
use super::directory::{Directory, Route};
pub use super::gate::WriteGate;
use super::redact;
use super::signature::{self, Rejection};
use crate::domain::ChannelKind;
use crate::secrets::Secret;
use crate::store::integration_logs::NewLog;
use crate::store::now_ms;

/// Longest body kept in the log of a rejected request.
const REJECTED_BODY_MAX: usize = 2048;

/// What a webhook request gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200: stored.
    Stored,
    /// 400: the body is not the provider's JSON.
    Malformed(String),
    /// 401 (missing signature) or 403 (wrong signature).
    Rejected(Rejection),
    /// 404: no such channel account (WAHA).
    UnknownAccount,
    /// 503: could not be stored; the provider should retry.
    Unavailable,
}

/// A received request, as the handler saw it.
#[derive(Debug)]
pub struct Received<'a> {
    /// The exact body bytes.
    pub body: &'a [u8],
    /// The path (`/webhooks/meta`, `/webhooks/waha/7`).
    pub endpoint: String,
    /// Headers worth logging (secret ones are redacted here).
    pub headers: Vec<(String, String)>,
    /// The signature header (`X-Hub-Signature-256` or `X-Webhook-Hmac`).
    pub signature: Option<&'a [u8]>,
    /// `X-Api-Key` (WAHA).
    pub api_key: Option<&'a [u8]>,
}

fn header_json(received: &Received<'_>, secrets: &[&str]) -> String {
    redact::headers(
        received
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        secrets,
    )
    .to_string()
}

/// What became of a request: its log state, the HTTP status answered, why.
struct Disposition {
    state: &'static str,
    status: i32,
    error: Option<String>,
}

fn log_row(
    received: &Received<'_>,
    provider: &'static str,
    route: Option<&Route>,
    body: String,
    d: Disposition,
    secrets: &[&str],
) -> NewLog {
    let Disposition {
        state,
        status,
        error,
    } = d;
    NewLog {
        company_id: route.map(|r| r.company),
        channel_account_id: route.map(|r| r.account_id),
        direction: "in",
        provider,
        method: "POST",
        endpoint: received.endpoint.clone(),
        status: Some(status),
        duration_ms: None,
        request_headers: Some(header_json(received, secrets)),
        request_body: Some(body),
        response_body: None,
        error,
        state,
        message_id: None,
        created_at: now_ms(),
    }
}

fn truncated(body: &[u8], secrets: &[&str]) -> String {
    let end = body.len().min(REJECTED_BODY_MAX);
    redact::body(&body[..end], secrets)
}

/// Logs a rejected request (company unknown: nothing else is stored) and says so.
async fn reject(
    committer: &Committer,
    received: &Received<'_>,
    provider: &'static str,
    route: Option<&Route>,
    outcome: Outcome,
    secrets: &[&str],
) -> Outcome {
    let (status, why) = match &outcome {
        Outcome::Rejected(Rejection::Missing) => (401, "missing signature".to_owned()),
        Outcome::Rejected(Rejection::Invalid) => (403, "invalid signature".to_owned()),
        Outcome::Malformed(why) => (400, why.clone()),
        _ => (404, "unknown channel account".to_owned()),
    };
    tracing::warn!(provider, endpoint = %received.endpoint, status, reason = %why, "webhook rejected");
    let row = log_row(
        received,
        provider,
        route,
        truncated(received.body, secrets),
        Disposition {
            state: "rejected",
            status,
            error: Some(why),
        },
        secrets,
    );
    // The rejection is logged best-effort: its answer does not depend on the log.
    let _ = committer.commit(vec![row]).await;
    outcome
}

#[derive(Deserialize)]
struct Envelope<'a> {
    object: String,
    #[serde(borrow)]
    entry: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct EntryKey {
    #[serde(default, deserialize_with = "id_text")]
    id: Option<String>,
    #[serde(default)]
    changes: Vec<ChangeKey>,
}

#[derive(Deserialize)]
struct ChangeKey {
    #[serde(default)]
    value: Option<ValueKey>,
}

#[derive(Deserialize)]
struct ValueKey {
    #[serde(default)]
    metadata: Option<MetadataKey>,
}

#[derive(Deserialize)]
struct MetadataKey {
    #[serde(default, deserialize_with = "id_text")]
    phone_number_id: Option<String>,
}

/// An id that Meta documents as a string but that some tools send as a number.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Text(t) => t,
        Id::Number(n) => n.to_string(),
    }))
}

/// The route of one entry: its id, else (WhatsApp) the phone number id of its first change.
async fn route_entry(directory: &Directory, entry: &RawValue) -> (Option<Arc<Route>>, String) {
    let Ok(key) = serde_json::from_str::<EntryKey>(entry.get()) else {
        return (None, "entry without an id".into());
    };
    let phone = key
        .changes
        .iter()
        .filter_map(|c| c.value.as_ref()?.metadata.as_ref()?.phone_number_id.clone())
        .next();
    // A WhatsApp number is its own channel account: prefer it over the WABA id.
    for candidate in phone.iter().chain(key.id.iter()) {
        if let Some(r) = directory.meta(candidate).await {
            return (Some(r), candidate.clone());
        }
    }
    (None, phone.or(key.id).unwrap_or_default())
}

/// Handles a POST to `/webhooks/meta`.
pub async fn meta(
    committer: &Committer,
    directory: &Directory,
    app_secret: Option<&Secret<String>>,
    received: Received<'_>,
) -> Outcome {
    let global: Vec<&str> = app_secret.iter().map(|s| s.expose().as_str()).collect();
    let digest = match signature::parse_meta_header(received.signature) {
        Ok(d) => d,
        Err(r) => {
            return reject(
                committer,
                &received,
                "meta",
                None,
                Outcome::Rejected(r),
                &global,
            )
            .await;
        }
    };
    let global_ok = app_secret
        .is_some_and(|s| signature::meta_matches(s.expose().as_bytes(), received.body, &digest));
    let envelope: Envelope<'_> = match serde_json::from_slice(received.body) {
        Ok(e) => e,
        Err(e) => {
            let outcome = if global_ok {
                Outcome::Malformed(format!("body is not a Meta webhook: {e}"))
            } else {
                Outcome::Rejected(Rejection::Invalid)
            };
            return reject(committer, &received, "meta", None, outcome, &global).await;
        }
    };
    // Group the entries by channel account, keeping their order.
    let mut groups: Vec<(Arc<Route>, Vec<&RawValue>)> = Vec::new();
    let mut unrouted: Vec<String> = Vec::new();
    for entry in &envelope.entry {
        match route_entry(directory, entry).await {
            (Some(route), _) => match groups
                .iter_mut()
                .find(|(r, _)| r.account_id == route.account_id)
            {
                Some((_, list)) => list.push(entry),
                None => groups.push((route, vec![*entry])),
            },
            (None, key) => unrouted.push(key),
        }
    }
    let mut secrets = global.clone();
    for (r, _) in &groups {
        secrets.extend(r.secrets());
    }
    if !global_ok {
        // Without the app's secret, every account in the batch must be a business's own app
        // whose secret signed it.
        let own_ok = !groups.is_empty()
            && unrouted.is_empty()
            && groups.iter().all(|(r, _)| {
                r.app_secret.as_ref().is_some_and(|s| {
                    signature::meta_matches(s.expose().as_bytes(), received.body, &digest)
                })
            });
        if !own_ok {
            return reject(
                committer,
                &received,
                "meta",
                None,
                Outcome::Rejected(Rejection::Invalid),
                &secrets,
            )
            .await;
        }
    }
    let mut rows = Vec::with_capacity(groups.len() + 1);
    let whole = groups.len() == 1 && unrouted.is_empty();
    for (route, entries) in &groups {
        let body = if whole {
            redact::body(received.body, &secrets)
        } else {
            let joined: Vec<&str> = entries.iter().map(|e| e.get()).collect();
            let object = serde_json::to_string(&envelope.object).unwrap_or_default();
            redact::body(
                format!("{{\"object\":{object},\"entry\":[{}]}}", joined.join(",")).as_bytes(),
                &secrets,
            )
        };
        rows.push(log_row(
            &received,
            "meta",
            Some(route),
            body,
            Disposition {
                state: "pending",
                status: 200,
                error: None,
            },
            &secrets,
        ));
    }
    if !unrouted.is_empty() {
        tracing::warn!(
            entries = unrouted.len(),
            "Meta webhook entries for no known channel account"
        );
        rows.push(log_row(
            &received,
            "meta",
            None,
            truncated(received.body, &secrets),
            Disposition {
                state: "ignored",
                status: 200,
                error: Some(format!(
                    "no channel account for entry id {}",
                    unrouted.join(", ")
                )),
            },
            &secrets,
        ));
    }
    if committer.commit(rows).await {
        Outcome::Stored
    } else {
        Outcome::Unavailable
    }
}

/// Handles a POST to `/webhooks/waha/{account}`.
pub async fn waha(
    committer: &Committer,
    directory: &Directory,
    account: i64,
    received: Received<'_>,
) -> Outcome {
    let route = match directory.by_id(account).await {
        Some(r) if r.kind == ChannelKind::Waha => r,
        _ => {
            return reject(
                committer,
                &received,
                "waha",
                None,
                Outcome::UnknownAccount,
                &[],
            )
            .await;
        }
    };
    let secrets = route.secrets();
    let verdict = match (&route.hmac_key, &route.api_key) {
        (Some(key), api_key) => {
            signature::waha_check(key.expose().as_bytes(), received.body, received.signature)
                .and_then(|()| match (api_key, received.api_key) {
                    // A key that is sent must be right, even where the HMAC is what counts.
                    (Some(k), Some(given))
                        if !signature::same_secret(k.expose().as_bytes(), given) =>
                    {
                        Err(Rejection::Invalid)
                    }
                    _ => Ok(()),
                })
        }
        (None, Some(k)) => match received.api_key {
            None => Err(Rejection::Missing),
            Some(given) if signature::same_secret(k.expose().as_bytes(), given) => Ok(()),
            Some(_) => Err(Rejection::Invalid),
        },
        // No credential to check the sender with: accepting would let anyone write into the
        // timeline.
        (None, None) => Err(Rejection::Invalid),
    };
    if let Err(r) = verdict {
        return reject(
            committer,
            &received,
            "waha",
            None,
            Outcome::Rejected(r),
            &secrets,
        )
        .await;
    }
    #[derive(Deserialize)]
    struct WahaEnvelope {
        #[allow(dead_code)]
        event: String,
    }
    if let Err(e) = serde_json::from_slice::<WahaEnvelope>(received.body) {
        let outcome = Outcome::Malformed(format!("body is not a WAHA webhook: {e}"));
        return reject(
            committer,
            &received,
            "waha",
            Some(&route),
            outcome,
            &secrets,
        )
        .await;
    }
    let row = log_row(
        &received,
        "waha",
        Some(&route),
        redact::body(received.body, &secrets),
        Disposition {
            state: "pending",
            status: 200,
            error: None,
        },
        &secrets,
    );
    if committer.commit(vec![row]).await {
        Outcome::Stored
    } else {
        Outcome::Unavailable
    }
}
