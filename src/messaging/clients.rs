//! Outbound calls to the providers: Meta's Graph API (Messenger and Instagram Send API, comment
//! replies, WhatsApp Cloud API, profiles) and WAHA.
//!
//! One [`Clients::send`] is one HTTP request. It returns the outcome, with provider errors sorted
//! into what the outbox does next ([`SendError`]: retry later, wait for the rate limit, ask for a
//! template, reconnect the channel, give up), and an [`Exchange`]: the record of the call for
//! `integration_logs`, already redacted. Retrying is the outbox's business, not this module's.
//!
//! Secrets travel only in headers (`Authorization: Bearer` for Graph, `X-Api-Key` for WAHA),
//! never in a URL, and every text that leaves this module (the [`Exchange`], the messages of
//! [`ProviderError`]s) has had every secret of the [`Credentials`] scrubbed out. Nothing here logs
//! a token, a URL, a recipient or message text.
//!
//! The request bodies ([`Request::body`]) and the reading of responses ([`interpret_response`])
//! are pure functions, tested without a network.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::event::ProviderError;
use super::redact;
use super::wire::{self, truncate};
use crate::secrets::Secret;

#[path = "graph.rs"]
mod graph;
#[path = "waha_api.rs"]
mod waha_api;

#[cfg(test)]
#[path = "clients_tests.rs"]
mod tests;

/// The Graph API base URL, with the API version pinned: a new version is a deliberate change,
/// tested against the contracts, not something Meta's default moves under us.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com/v23.0";

/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a whole call (connect, send, read the response) may take.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(20);

/// The HTTP client for all providers.
#[derive(Clone, Debug)]
pub struct Clients {
    http: reqwest::Client,
    graph_base: String,
}

/// The secrets a call may use, and the ones to scrub from what it records.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// The Graph access token (Page token, Instagram token, WhatsApp system-user token).
    pub access_token: Option<Secret<String>>,
    /// The WAHA API key (`X-Api-Key`); `None` when WAHA runs without one.
    pub api_key: Option<Secret<String>>,
    /// Further secrets that must not appear in any record, e.g. the app secret, an HMAC key.
    pub other_secrets: Vec<Secret<String>>,
}

impl Credentials {
    /// Credentials for Graph calls.
    pub fn graph(access_token: Secret<String>) -> Self {
        Self {
            access_token: Some(access_token),
            ..Self::default()
        }
    }

    /// Credentials for WAHA calls.
    pub fn waha(api_key: Option<Secret<String>>) -> Self {
        Self {
            api_key,
            ..Self::default()
        }
    }

    /// Every secret value, for the redaction helpers.
    pub fn secrets(&self) -> Vec<&str> {
        self.access_token
            .iter()
            .chain(self.api_key.iter())
            .chain(self.other_secrets.iter())
            .map(|s| s.expose().as_str())
            .collect()
    }
}

/// Which provider a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Meta's Graph API (Messenger, Instagram, Page comments, WhatsApp Cloud API).
    Meta,
    /// A WAHA server.
    Waha,
}

impl Provider {
    /// The name stored in `integration_logs`: `meta` or `waha`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::Waha => "waha",
        }
    }
}

/// One outbound call.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Messenger Send API: `POST {graph}/{page_id}/messages` with the Page token.
    MessengerText {
        /// The Page.
        page_id: String,
        /// The customer's PSID.
        recipient: String,
        /// The reply.
        text: String,
        /// Send with `messaging_type: MESSAGE_TAG, tag: HUMAN_AGENT` (a human reply within 7 days
        /// of the customer's last message) instead of `RESPONSE` (within 24 h).
        human_agent_tag: bool,
    },
    /// Instagram: `POST {graph}/{ig_id}/messages`, the same body as Messenger.
    InstagramText {
        /// The Instagram professional account.
        account_id: String,
        /// The customer's IGSID.
        recipient: String,
        /// The reply.
        text: String,
        /// As for [`Request::MessengerText`].
        human_agent_tag: bool,
    },
    /// A private (direct) reply to a comment: `POST {graph}/{page_or_ig_id}/messages` with
    /// `recipient{comment_id}`. Allowed once per comment, within 7 days.
    PrivateReply {
        /// The Page or Instagram account.
        account_id: String,
        /// The comment answered.
        comment_id: String,
        /// The reply.
        text: String,
    },
    /// A public reply to a comment: `POST {graph}/{comment_id}/comments` (Facebook) or
    /// `/{comment_id}/replies` (Instagram) with `{message}`.
    CommentReply {
        /// The comment answered.
        comment_id: String,
        /// The reply.
        text: String,
        /// Instagram rather than Facebook.
        instagram: bool,
    },
    /// Messenger/Instagram `sender_action: mark_seen`.
    MarkSeen {
        /// The Page or Instagram account.
        account_id: String,
        /// The customer's PSID or IGSID.
        recipient: String,
    },
    /// WhatsApp Cloud API text: `POST {graph}/{phone_number_id}/messages`.
    WhatsappText {
        /// The business phone number's id.
        phone_number_id: String,
        /// E.164 digits without `+` (a leading `+` is dropped), or a business-scoped user id.
        to: String,
        /// The reply (up to 4096 characters).
        text: String,
        /// The `wamid` of the message this one quotes.
        reply_to: Option<String>,
    },
    /// WhatsApp template message (the only kind allowed outside the 24 h window).
    WhatsappTemplate {
        /// The business phone number's id.
        phone_number_id: String,
        /// As for [`Request::WhatsappText`].
        to: String,
        /// The approved template's name.
        name: String,
        /// Its language code, e.g. `en_US`.
        language: String,
        /// `components[]` with the parameters, as the Cloud API takes them.
        components: Option<Value>,
    },
    /// WhatsApp mark as read (also marks every earlier message read).
    WhatsappRead {
        /// The business phone number's id.
        phone_number_id: String,
        /// The `wamid` of the customer's message.
        message_id: String,
    },
    /// WAHA `POST {base_url}/api/sendText`.
    WahaText {
        /// The WAHA server, e.g. `http://waha:3000`.
        base_url: String,
        /// The WAHA session.
        session: String,
        /// `<digits>@c.us`, `<id>@g.us`, `<n>@lid`.
        chat_id: String,
        /// The reply.
        text: String,
        /// The id of the message this one quotes.
        reply_to: Option<String>,
    },
    /// WAHA `POST {base_url}/api/sendSeen`.
    WahaSeen {
        /// The WAHA server.
        base_url: String,
        /// The WAHA session.
        session: String,
        /// The chat.
        chat_id: String,
        /// The message seen (WAHA marks the whole chat when absent).
        message_id: Option<String>,
    },
}

impl Request {
    /// The provider the request goes to.
    pub fn provider(&self) -> Provider {
        match self {
            Self::WahaText { .. } | Self::WahaSeen { .. } => Provider::Waha,
            _ => Provider::Meta,
        }
    }

    /// A short name of the kind of call, for logs and metrics (no ids, no text).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MessengerText { .. } => "messenger_text",
            Self::InstagramText { .. } => "instagram_text",
            Self::PrivateReply { .. } => "private_reply",
            Self::CommentReply { .. } => "comment_reply",
            Self::MarkSeen { .. } => "mark_seen",
            Self::WhatsappText { .. } => "whatsapp_text",
            Self::WhatsappTemplate { .. } => "whatsapp_template",
            Self::WhatsappRead { .. } => "whatsapp_read",
            Self::WahaText { .. } => "waha_text",
            Self::WahaSeen { .. } => "waha_seen",
        }
    }

    /// The JSON body, exactly as sent.
    pub fn body(&self) -> Value {
        match self.provider() {
            Provider::Meta => graph::body(self),
            Provider::Waha => waha_api::body(self),
        }
    }

    /// The URL the request goes to. Ids become path segments, so one that is not a plain
    /// provider id (letters, digits, `_`, `-`, `.`) is refused rather than allowed to reach
    /// another Graph endpoint with the channel's token.
    pub fn url(&self, graph_base: &str) -> Result<String, SendError> {
        let graph = graph_base.trim_end_matches('/');
        let waha = |base: &str, path: &str| format!("{}{path}", base.trim_end_matches('/'));
        Ok(match self {
            Self::MessengerText { page_id: id, .. }
            | Self::InstagramText { account_id: id, .. }
            | Self::PrivateReply { account_id: id, .. }
            | Self::MarkSeen { account_id: id, .. } => {
                format!("{graph}/{}/messages", segment(id, "account id")?)
            }
            Self::WhatsappText {
                phone_number_id: id,
                ..
            }
            | Self::WhatsappTemplate {
                phone_number_id: id,
                ..
            }
            | Self::WhatsappRead {
                phone_number_id: id,
                ..
            } => format!("{graph}/{}/messages", segment(id, "phone number id")?),
            Self::CommentReply {
                comment_id,
                instagram,
                ..
            } => format!(
                "{graph}/{}/{}",
                segment(comment_id, "comment id")?,
                if *instagram { "replies" } else { "comments" }
            ),
            Self::WahaText { base_url, .. } => waha(base_url, "/api/sendText"),
            Self::WahaSeen { base_url, .. } => waha(base_url, "/api/sendSeen"),
        })
    }
}

/// Checks that an id is safe as one URL path segment.
fn segment<'a>(id: &'a str, what: &str) -> Result<&'a str, SendError> {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if id.is_empty() || id.len() > 256 || !plain || id.bytes().all(|b| b == b'.') {
        return Err(SendError::Permanent(ProviderError {
            code: "invalid_id".into(),
            message: format!("the {what} is not a provider id"),
        }));
    }
    Ok(id)
}

/// A request the provider accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id of what was created: Messenger `message_id`, WhatsApp `messages[0].id`,
    /// a comment reply's `id`, WAHA's serialized message id. `None` for receipts.
    pub message_id: Option<String>,
}

/// A customer's public profile (Messenger: name and locale; Instagram: name and username).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Display name (Messenger: first and last name joined).
    pub name: Option<String>,
    /// Instagram username.
    pub username: Option<String>,
    /// Profile picture URL (expires after a while at Meta's CDN).
    pub avatar_url: Option<String>,
    /// Messenger locale, e.g. `en_US`.
    pub locale: Option<String>,
}

/// Why a call failed, sorted by what the caller should do next.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SendError {
    /// The token or API key is invalid or expired (Graph code 190, WAHA 401, no credentials):
    /// the channel must be reconnected; retrying will not help.
    #[error("credentials rejected ({}): {}", .0.code, .0.message)]
    AuthExpired(ProviderError),
    /// The customer-service window is closed (WhatsApp 131047, Messenger 10/2018278): only a
    /// template (WhatsApp) or a tagged message (Messenger) can go out now.
    #[error("messaging window closed ({}): {}", .0.code, .0.message)]
    WindowClosed(ProviderError),
    /// Throttled (Graph 4, 17, 32, 613, WhatsApp 80007, 130429, 131056, HTTP 429): retry after
    /// the given time, or with backoff when the provider did not say.
    #[error("rate limited ({}): {}", .error.code, .error.message)]
    RateLimited {
        /// From `Retry-After`, else Meta's `X-Business-Use-Case-Usage`.
        retry_after: Option<Duration>,
        /// The provider's error.
        error: ProviderError,
    },
    /// Worth retrying: 5xx, Graph 1, 2, WhatsApp 131000, 131016, `is_transient`, timeouts and
    /// connection failures (code `network`).
    #[error("temporary failure ({}): {}", .0.code, .0.message)]
    Transient(ProviderError),
    /// Anything else: a bad parameter, an undeliverable recipient, a missing permission.
    #[error("rejected ({}): {}", .0.code, .0.message)]
    Permanent(ProviderError),
}

impl SendError {
    /// Whether sending the same request again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    /// The provider's error code and message.
    pub fn provider_error(&self) -> &ProviderError {
        match self {
            Self::AuthExpired(e)
            | Self::WindowClosed(e)
            | Self::Transient(e)
            | Self::Permanent(e)
            | Self::RateLimited { error: e, .. } => e,
        }
    }

    /// How long the provider asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The record of one outbound call for `integration_logs`, with every secret already redacted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exchange {
    /// `meta` or `waha`.
    pub provider: &'static str,
    /// `POST` or `GET`.
    pub method: &'static str,
    /// The URL, redacted.
    pub endpoint: String,
    /// The headers sent, as an object, secret ones `[redacted]`.
    pub request_headers: Value,
    /// The body sent, redacted.
    pub request_body: Option<String>,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// The response body, redacted and cut to [`wire::MAX_LOGGED_BODY`] bytes.
    pub response_body: Option<String>,
    /// From sending the request to having read the response.
    pub duration_ms: i64,
    /// What went wrong, redacted.
    pub error: Option<String>,
}

/// A response as read from the wire, before interpretation.
struct RawResponse {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<Duration>,
}

impl Clients {
    /// A client for the given Graph base URL (normally [`DEFAULT_GRAPH_URL`]; a fake in tests)
    /// with the standard timeouts.
    ///
    /// # Panics
    /// When the TLS backend cannot be initialised, which [`Clients::try_new`] reports instead;
    /// the server cannot reach any provider then.
    pub fn new(graph_base: &str) -> Self {
        match Self::try_new(graph_base) {
            Ok(c) => c,
            Err(e) => panic!("cannot build the HTTP client: {e}"),
        }
    }

    /// Like [`Clients::new`], reporting a failure to build the HTTP client.
    pub fn try_new(graph_base: &str) -> Result<Self, reqwest::Error> {
        Self::with_timeouts(graph_base, CONNECT_TIMEOUT, TOTAL_TIMEOUT)
    }

    /// A client with other timeouts (tests use short ones).
    pub fn with_timeouts(
        graph_base: &str,
        connect: Duration,
        total: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(total)
            // A redirect would carry the request (and, to the same origin, the token) somewhere
            // nobody configured; the providers do not redirect API calls.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("masterz/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            graph_base: graph_base.trim_end_matches('/').to_owned(),
        })
    }

    /// The Graph base URL in use.
    pub fn graph_base(&self) -> &str {
        &self.graph_base
    }

    /// Performs one request and returns the outcome plus the redacted record of the exchange.
    pub async fn send(
        &self,
        req: &Request,
        creds: &Credentials,
    ) -> (Result<Sent, SendError>, Exchange) {
        let provider = req.provider();
        let secrets = creds.secrets();
        let url = req.url(&self.graph_base);
        let body = req.body();
        let (raw, mut exchange) = self
            .execute(provider, reqwest::Method::POST, url, Some(&body), creds)
            .await;
        let result = raw
            .and_then(|r| interpret_response(provider, r.status, r.retry_after, &r.body, &secrets));
        finish(req.kind(), &result, &mut exchange, &secrets);
        (result, exchange)
    }

    /// Fetches a Messenger or Instagram customer's profile:
    /// `GET {graph}/{id}?fields=first_name,last_name,profile_pic,locale` (Instagram:
    /// `fields=name,username,profile_pic`).
    pub async fn fetch_profile(
        &self,
        psid_or_igsid: &str,
        instagram: bool,
        creds: &Credentials,
    ) -> (Result<Profile, SendError>, Exchange) {
        let secrets = creds.secrets();
        let fields = if instagram {
            "name,username,profile_pic"
        } else {
            "first_name,last_name,profile_pic,locale"
        };
        let url = segment(psid_or_igsid, "customer id")
            .map(|id| format!("{}/{id}?fields={fields}", self.graph_base));
        let (raw, mut exchange) = self
            .execute(Provider::Meta, reqwest::Method::GET, url, None, creds)
            .await;
        let result =
            raw.and_then(|r| graph::interpret_profile(r.status, r.retry_after, &r.body, &secrets));
        finish("profile", &result, &mut exchange, &secrets);
        (result, exchange)
    }

    /// Sends one request and reads the response (up to [`wire::MAX_READ_BODY`]); never interprets it.
    async fn execute(
        &self,
        provider: Provider,
        method: reqwest::Method,
        url: Result<String, SendError>,
        body: Option<&Value>,
        creds: &Credentials,
    ) -> (Result<RawResponse, SendError>, Exchange) {
        let secrets = creds.secrets();
        let body = body.map(Value::to_string);
        let mut headers: Vec<(&'static str, String)> = vec![("accept", "application/json".into())];
        if body.is_some() {
            headers.push(("content-type", "application/json".into()));
        }
        let auth = match provider {
            Provider::Meta => match &creds.access_token {
                Some(token) => Ok(Some((
                    "authorization",
                    format!("Bearer {}", token.expose()),
                ))),
                None => Err(SendError::AuthExpired(ProviderError {
                    code: "no_credentials".into(),
                    message: "the channel has no access token".into(),
                })),
            },
            Provider::Waha => Ok(creds
                .api_key
                .as_ref()
                .map(|key| ("x-api-key", key.expose().clone()))),
        };
        let mut exchange = Exchange {
            provider: provider.as_str(),
            method: if method == reqwest::Method::GET {
                "GET"
            } else {
                "POST"
            },
            endpoint: match &url {
                Ok(u) => redact::url(u, &secrets),
                Err(_) => String::new(),
            },
            request_headers: Value::Null,
            request_body: body
                .as_deref()
                .map(|b| redact::body(b.as_bytes(), &secrets)),
            status: None,
            response_body: None,
            duration_ms: 0,
            error: None,
        };
        let (url, auth) = match (url, auth) {
            (Ok(url), Ok(auth)) => (url, auth),
            (Err(e), _) | (_, Err(e)) => {
                exchange.request_headers =
                    redact::headers(headers.iter().map(|(k, v)| (*k, v.as_str())), &secrets);
                return (Err(e), exchange);
            }
        };
        headers.extend(auth);
        exchange.request_headers =
            redact::headers(headers.iter().map(|(k, v)| (*k, v.as_str())), &secrets);

        let mut builder = self.http.request(method, &url);
        for (name, value) in &headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let started = Instant::now();
        let outcome = read(builder).await;
        exchange.duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        match outcome {
            Ok(raw) => {
                exchange.status = Some(raw.status);
                exchange.response_body = Some(truncate(redact::body(&raw.body, &secrets)));
                (Ok(raw), exchange)
            }
            Err((status, e)) => {
                exchange.status = status;
                (Err(network_error(&e, &secrets)), exchange)
            }
        }
    }
}

/// Sends and reads the response, with the status when one came before the failure.
async fn read(
    builder: reqwest::RequestBuilder,
) -> Result<RawResponse, (Option<u16>, reqwest::Error)> {
    let mut response = builder.send().await.map_err(|e| (None, e))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = wire::retry_after(&response)
        .or_else(|| header("x-business-use-case-usage").and_then(|v| graph::buc_regain(&v)));
    let body = wire::read_body(&mut response)
        .await
        .map_err(|e| (Some(status), e))?;
    Ok(RawResponse {
        status,
        body,
        retry_after,
    })
}

/// A failure below HTTP: no connection, a timeout, a broken response. Always worth a retry,
/// except a request reqwest could not even build (a malformed WAHA base URL).
fn network_error(e: &reqwest::Error, secrets: &[&str]) -> SendError {
    let mut text = if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    // The URL is in the exchange already; the error's own rendering would repeat it.
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        let piece = match err.downcast_ref::<reqwest::Error>() {
            Some(re) if re.url().is_some() => None,
            _ => Some(err.to_string()),
        };
        if let Some(piece) = piece.filter(|p| !text.contains(p.as_str())) {
            text.push_str(": ");
            text.push_str(&piece);
        }
        source = err.source();
    }
    let error = ProviderError {
        code: if e.is_builder() {
            "invalid_request"
        } else {
            "network"
        }
        .into(),
        message: redact::scrub(&text, secrets),
    };
    if e.is_builder() {
        SendError::Permanent(error)
    } else {
        SendError::Transient(error)
    }
}

/// Fills in the exchange's error and logs the outcome without ids, URLs or text.
fn finish<T>(
    kind: &'static str,
    result: &Result<T, SendError>,
    exchange: &mut Exchange,
    secrets: &[&str],
) {
    match result {
        Ok(_) => tracing::debug!(
            provider = exchange.provider,
            kind,
            status = exchange.status,
            duration_ms = exchange.duration_ms,
            "provider call succeeded"
        ),
        Err(e) => {
            exchange.error = Some(redact::scrub(&e.to_string(), secrets));
            // The provider's message can quote the recipient or the text; the code cannot.
            tracing::info!(
                provider = exchange.provider,
                kind,
                status = exchange.status,
                code = %e.provider_error().code,
                retryable = e.retryable(),
                "provider call failed"
            );
        }
    }
}

/// Reads a provider's response to a [`Request`]: the created id on success, a classified error
/// otherwise. `retry_after` is what the response headers said; every message is scrubbed of
/// `secrets`.
pub fn interpret_response(
    provider: Provider,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    secrets: &[&str],
) -> Result<Sent, SendError> {
    match provider {
        Provider::Meta => graph::interpret(status, retry_after, body, secrets),
        Provider::Waha => waha_api::interpret(status, retry_after, body, secrets),
    }
}
