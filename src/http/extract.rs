//! Request extractors: the client's address and user agent, and the authenticated principal.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{header, request::Parts};

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;
use crate::domain::Permission;
use crate::secrets::token_hash;
use crate::store::{self, audit::Actor};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "masterz_session";

/// Where a request came from (P4): the client IP (through trusted proxies) and user agent.
#[derive(Clone, Debug)]
pub struct ClientMeta {
    /// Client address.
    pub ip: IpAddr,
    /// `User-Agent`, cut to 512 bytes.
    pub user_agent: Option<String>,
    /// Whether the client reached us over HTTPS (directly or via a trusted proxy).
    pub https: bool,
}

impl FromRequestParts<Arc<AppState>> for ClientMeta {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        Ok(client_meta(parts, state))
    }
}

fn client_meta(parts: &Parts, state: &AppState) -> ClientMeta {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let trusted = state.config.trusted_proxies.0.contains(&peer);
    let forwarded_ip = trusted
        .then(|| parts.headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        // The right-most address is the one our trusted proxy saw.
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok());
    let forwarded_https = trusted
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| truncate(ua, 512).to_owned());
    ClientMeta {
        ip: forwarded_ip.unwrap_or(peer),
        user_agent,
        https: state.config.tls_enabled() || forwarded_https,
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// An authenticated request: who, and from where. Rejects with 401 when there are no valid
/// credentials (a bearer token, or the session cookie).
#[derive(Clone, Debug)]
pub struct Auth {
    /// The user and their company.
    pub principal: Principal,
    /// Where the request came from.
    pub meta: ClientMeta,
}

impl Auth {
    /// Requires a permission of the user's role: 403 otherwise.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.principal.can(p) {
            Ok(())
        } else {
            Err(ApiError::forbidden(p))
        }
    }

    /// The company scope of this request.
    pub fn company(&self) -> crate::domain::CompanyId {
        self.principal.company_id
    }

    /// The actor for audit entries.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: Some(self.principal.user_id),
            label: self.principal.email.clone(),
            ip: Some(self.meta.ip.to_string()),
            user_agent: self.meta.user_agent.clone(),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let meta = client_meta(parts, state);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let mut conn = state.db.conn().await?;
        let principal = if let Some(token) = bearer {
            store::auth::token_principal(&mut conn.ex(), &token_hash(token)).await?
        } else if let Some(token) = cookie(parts, SESSION_COOKIE) {
            store::auth::session_principal(&mut conn.ex(), &token_hash(token)).await?
        } else {
            None
        };
        let principal = principal.ok_or_else(ApiError::unauthorized)?;
        if principal.use_is_stale(store::now_ms()) {
            match (principal.session_id, principal.token_id) {
                (Some(id), _) => {
                    store::auth::touch_session(&mut conn.ex(), id, &meta.ip.to_string()).await?
                }
                (None, Some(id)) => store::auth::touch_token(&mut conn.ex(), id).await?,
                (None, None) => {}
            }
        }
        Ok(Self {
            principal: principal.into(),
            meta,
        })
    }
}

impl axum::extract::OptionalFromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Option<Self>, ApiError> {
        match <Auth as FromRequestParts<Arc<AppState>>>::from_request_parts(parts, state).await {
            Ok(auth) => Ok(Some(auth)),
            Err(e) if e.status() == axum::http::StatusCode::UNAUTHORIZED => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A permission a route requires, as a type, so the check runs as an extractor: before the path,
/// query and body are parsed, and an unauthorised caller learns nothing about the request format.
pub trait Requirement {
    /// The permission.
    const PERMISSION: Permission;
}

/// The permissions as types, for [`Authz`].
pub mod perm {
    use super::{Permission, Requirement};

    macro_rules! requirements {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Requires [`Permission::", stringify!($name), "`].")]
            pub struct $name;
            impl Requirement for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*};
    }

    requirements!(
        CompanyRead,
        CompanyWrite,
        UsersRead,
        UsersWrite,
        RolesRead,
        RolesWrite,
        CustomersRead,
        CustomersWrite,
        CustomersDelete,
        ConversationsRead,
        ConversationsWrite,
        ChannelsRead,
        ChannelsWrite,
        AuditRead,
        TokensWrite,
        RecordingsRead,
        RecordingsDelete,
        AiManage,
        UsageRead,
        DataExport,
        CompanyClose,
    );
}

/// An authenticated request whose role has `R`'s permission: 401 without credentials, 403
/// without the permission.
pub struct Authz<R>(pub Auth, std::marker::PhantomData<R>);

impl<R> std::ops::Deref for Authz<R> {
    type Target = Auth;
    fn deref(&self) -> &Auth {
        &self.0
    }
}

impl<R: Requirement + Send + Sync> FromRequestParts<Arc<AppState>> for Authz<R> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let auth =
            <Auth as FromRequestParts<Arc<AppState>>>::from_request_parts(parts, state).await?;
        auth.require(R::PERMISSION)?;
        Ok(Self(auth, std::marker::PhantomData))
    }
}
