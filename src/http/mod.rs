//! HTTP: the JSON API under `/api/v1`, its OpenAPI document, and the operations endpoints.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::RateLimiter;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::secrets::Keyring;
use crate::store::Db;

pub mod api;
mod app;
pub mod error;
pub mod extract;
mod webhooks;

pub use error::ApiError;

/// What every request handler can reach.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The application keys.
    pub keyring: Keyring,
    /// The configuration.
    pub config: Config,
    /// Failed logins per client IP.
    pub login_by_ip: RateLimiter,
    /// Failed logins per account (email).
    pub login_by_account: RateLimiter,
    /// Metrics.
    pub metrics: Metrics,
    /// Base URL for links this server hands out (`public_url`, or the bound address).
    pub public_base: String,
    /// The SIP service, once started (absent in tests that run HTTP alone).
    pub telephony: OnceLock<Arc<crate::telephony::Telephony>>,
    /// Agents online: browser tabs, presence, their calls' views.
    pub agents: Arc<crate::agents::AgentHub>,
    /// The messaging bridge: webhook ingestion, routing, provider clients, worker wake-ups.
    pub messaging: Arc<crate::messaging::Messaging>,
    /// AI reply suggestions: the model client and the worker's wake-up.
    pub ai: Arc<crate::ai::Ai>,
    openapi: OnceLock<String>,
}

impl AppState {
    /// State for a server on `db` with `keyring` and `config`, reachable at `public_base`.
    pub fn new(db: Db, keyring: Keyring, config: Config, public_base: String) -> Self {
        let window = Duration::from_secs(config.login_window_secs);
        let messaging = Arc::new(crate::messaging::Messaging::new(&db, &keyring, &config));
        Self {
            login_by_ip: RateLimiter::new(config.login_max_failures_per_ip, window),
            login_by_account: RateLimiter::new(config.login_max_failures_per_account, window),
            db,
            keyring,
            config,
            metrics: Metrics::default(),
            public_base,
            telephony: OnceLock::new(),
            agents: Arc::default(),
            messaging,
            ai: Arc::default(),
            openapi: OnceLock::new(),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "masterz API",
        description = "Companies, users, roles, customers and their timeline, conversations, channel accounts and the audit log. Every route under /api/v1 is scoped to the caller's company; another company's resources answer 404.",
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = [])),
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(extract::SESSION_COOKIE))),
        );
    }
}

/// The whole HTTP application for `state`, with its OpenAPI document.
pub fn app(state: Arc<AppState>) -> Router {
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(accept_invitation_page))
        .nest("/api/v1", api::routes())
        .split_for_parts();
    let mut openapi = openapi;
    document_standard_errors(&mut openapi);
    let json = openapi.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot render the OpenAPI document");
        "{}".into()
    });
    let _ = state.openapi.set(json);
    let max_body = state.config.max_body_bytes;
    router
        .route("/sip", axum::routing::get(sip_websocket))
        .merge(app::routes())
        .merge(webhooks::routes(state.config.webhook_max_body_bytes))
        .merge(crate::lifecycle::page::routes())
        .merge(api::usage::operator_routes())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // The route template, not the URI: paths and queries can carry personal data.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |m| m.as_str());
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("request handler panicked").into_response()
        }))
        .with_state(state)
}

/// Adds to every operation the error answers that the shared extractors can give, so the document
/// names every status a client can see: 400 (path or query), 401/403 (authenticated routes),
/// 404 (routes with an id), 413/415/422 (routes with a JSON body), 500.
fn document_standard_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in openapi.paths.paths.iter_mut() {
        let has_id = path.contains('{');
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
            &mut item.put,
        ]
        .into_iter()
        .flatten()
        {
            // An empty requirement in the list marks a public route.
            let public = op.security.as_ref().is_some_and(|s| {
                s.iter()
                    .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
            });
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(description).into());
            };
            if path.starts_with("/api/v1") {
                add("400", "malformed path, query or body");
                add("500", "internal error (details are logged, not sent)");
            }
            if !public {
                add("401", "no valid session cookie or bearer token");
                add("403", "the role lacks the route's permission");
            }
            if has_id {
                add("404", "no such resource in the caller's company");
            }
            if op.request_body.is_some() {
                add("413", "body larger than max_body_bytes");
                add("415", "body is not application/json");
                add("422", "a field is missing, mistyped or invalid");
            }
        }
    }
}

async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(req).await;
    state
        .metrics
        .http_request(&method, &route, response.status().as_u16(), start.elapsed());
    response
}

async fn fallback() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "ready", body = String),
              (status = 503, description = "database unreachable", body = error::ErrorBody)))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => Ok("ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "database unreachable",
            ))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "database timed out",
        )),
    }
}

/// Metrics in Prometheus text format. With `metrics_token` configured, the scraper must send it
/// as `Authorization: Bearer …`.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 401, description = "metrics_token is set and was not sent", body = error::ErrorBody)))]
async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(expected) = state
        .config
        .metrics_token
        .as_ref()
        .filter(|t| !t.expose().is_empty())
    {
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
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = state.metrics.render();
            if let Some(t) = state.telephony.get() {
                t.render_metrics(&mut text);
            }
            text
        },
    ))
}

/// SIP over WebSocket (RFC 7118) on the HTTP listener: browsers and WebRTC softphones connect to
/// `ws(s)://host/sip` with the `sip` subprotocol.
async fn sip_websocket(
    State(state): State<Arc<AppState>>,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let Some(telephony) = state.telephony.get().cloned() else {
        return ApiError::unavailable("SIP is not running").into_response();
    };
    let secure = state.config.tls_enabled();
    upgrade
        .protocols(["sip"])
        .max_message_size(65_535)
        .on_upgrade(move |socket| telephony.websocket(socket, addr, secure))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.get().cloned().unwrap_or_default(),
    )
}

/// The page an invitation link opens: sets a name and password through
/// `POST /api/v1/invitations/accept`. Self-contained (no external assets), so it works on a LAN.
#[utoipa::path(get, path = "/accept-invitation", tag = "operations", security(()),
    responses((status = 200, description = "HTML form", body = String, content_type = "text/html")))]
async fn accept_invitation_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        include_str!("pages/accept-invitation.html"),
    )
}

/// Serializes JSON responses with 201 Created.
pub fn created<T: serde::Serialize>(value: T) -> (StatusCode, Json<T>) {
    (StatusCode::CREATED, Json(value))
}
