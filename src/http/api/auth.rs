//! Login, logout, and who am I.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::normalize_email;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::http::extract::{Auth, ClientMeta, SESSION_COOKIE};
use crate::secrets::{new_token, token_hash};
use crate::store::{self, companies::Company, users::User};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// Credentials for a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    /// Email.
    email: String,
    /// Password.
    password: String,
}

/// Who is logged in.
#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    /// The user.
    user: User,
    /// The user's company.
    company: Company,
    /// What the user's role allows.
    permissions: Vec<String>,
}

/// Logs in with email and password and sets the session cookie (HttpOnly, SameSite=Lax, Secure
/// under TLS). Failed attempts are limited per IP and per account: past the limit, 429 with
/// Retry-After. Every attempt is recorded with IP and user agent.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<Arc<AppState>>,
    meta: ClientMeta,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = normalize_email(&req.email)
        .ok_or_else(|| ApiError::invalid("email", "not an email address"))?;
    let ip = meta.ip.to_string();
    let ua = meta.user_agent.as_deref();
    let now = Instant::now();
    let ip_key = format!("ip:{ip}");
    let account_key = format!("account:{email}");
    let mut conn = state.db.conn().await?;
    let blocked = [
        state.login_by_ip.blocked_for(&ip_key, now),
        state.login_by_account.blocked_for(&account_key, now),
    ]
    .into_iter()
    .flatten()
    .max();
    if let Some(wait) = blocked {
        state
            .metrics
            .login_rate_limited
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(ip = %crate::pii::Pii(&ip), "login rate limit reached");
        let known = store::users::login_user(&mut conn.ex(), &email).await?;
        let (company, user_id) = known.map_or((None, None), |u| (Some(u.company_id), Some(u.id)));
        store::auth::record_login(
            &mut conn.ex(),
            company,
            user_id,
            &email,
            &ip,
            ua,
            "rate_limited",
        )
        .await?;
        return Err(ApiError::too_many_requests(wait.as_secs().max(1)));
    }

    let user = store::users::login_user(&mut conn.ex(), &email).await?;
    let ok = crate::auth::verify_password(
        &req.password,
        user.as_ref().map(|u| u.password_hash.as_str()),
    )
    .await;
    let Some(user) = user.as_ref().filter(|_| ok) else {
        state.login_by_ip.fail(&ip_key, now);
        state.login_by_account.fail(&account_key, now);
        state.metrics.login_failures.fetch_add(1, Ordering::Relaxed);
        // The user's history shows failed attempts on their account too (P4).
        let (company, user_id) = user
            .as_ref()
            .map_or((None, None), |u| (Some(u.company_id), Some(u.id)));
        store::auth::record_login(
            &mut conn.ex(),
            company,
            user_id,
            &email,
            &ip,
            ua,
            "bad_credentials",
        )
        .await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "email or password is wrong",
        ));
    };
    if user.company_status != "active" {
        // A closed company is deleted by the purge job, maybe while this runs: its user is then
        // gone and the row cannot reference it. The answer is the same.
        let recorded = store::auth::record_login(
            &mut conn.ex(),
            Some(user.company_id),
            Some(user.id),
            &email,
            &ip,
            ua,
            "closed",
        )
        .await;
        if let Err(e) = recorded
            && !matches!(e, store::StoreError::Reference(_))
        {
            return Err(e.into());
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "company_closed",
            "this company's account is closed",
        ));
    }
    state.login_by_account.reset(&account_key);
    state
        .metrics
        .login_successes
        .fetch_add(1, Ordering::Relaxed);

    let token = new_token("")?;
    let ttl_ms = state.config.session_ttl_hours as i64 * 3_600_000;
    let expires_at = store::now_ms() + ttl_ms;
    let mut tx = state.db.begin().await?;
    store::auth::create_session(
        &mut tx.ex(),
        user.company_id,
        user.id,
        &token_hash(token.expose()),
        &ip,
        ua,
        expires_at,
    )
    .await?;
    store::auth::record_login(
        &mut tx.ex(),
        Some(user.company_id),
        Some(user.id),
        &email,
        &ip,
        ua,
        "success",
    )
    .await?;
    tx.commit().await?;

    let me = load_me(&mut conn, user.company_id, user.id).await?;
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        token.expose(),
        ttl_ms / 1000,
        if meta.https { "; Secure" } else { "" }
    );
    let mut response = Json(me).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn load_me(
    conn: &mut store::Conn,
    company: crate::domain::CompanyId,
    user: crate::domain::UserId,
) -> Result<Me, ApiError> {
    let user = store::users::get_user(&mut conn.ex(), company, user)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let role = store::users::get_role(&mut conn.ex(), company, user.role_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let company = store::companies::get(&mut conn.ex(), company).await?;
    Ok(Me {
        user,
        company,
        permissions: role
            .permission_set()
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
    })
}

/// Ends the session of the cookie (if any) and clears the cookie. Always 204.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(()),
    responses((status = 204, description = "logged out")))]
async fn logout(
    State(state): State<Arc<AppState>>,
    auth: Option<Auth>,
) -> Result<Response, ApiError> {
    if let Some(id) = auth.as_ref().and_then(|a| a.principal.session_id) {
        let mut conn = state.db.conn().await?;
        store::auth::delete_session(&mut conn.ex(), id).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// The logged-in user, their company and permissions.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Me>, ApiError> {
    let mut conn = state.db.conn().await?;
    Ok(Json(
        load_me(&mut conn, auth.company(), auth.principal.user_id).await?,
    ))
}
