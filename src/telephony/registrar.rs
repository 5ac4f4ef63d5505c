//! The registrar (RFC 3261 §10.3) for softphones, and the answer to OPTIONS outside any dialog
//! (§11.2). Everything else goes to call control (`calls/`).
//!
//! Every REGISTER must carry digest credentials (RFC 3261 §22, RFC 7616/8760) for the SIP account
//! named in its To header; an unknown username and a wrong password get the same fresh challenge,
//! so the registrar does not reveal which usernames exist. Failures are counted per source IP and
//! per username; past the limit the answer is 403 until the window ends.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use masterz_sip::auth::{Algorithm, Credentials, VerifyError};
use masterz_sip::headers::{CallIdHeader, Contact, Expires, To};
use masterz_sip::message::{Message, Method, StdHeader};
use masterz_sip::transport::Transport;

use super::{Incoming, SipContext, status};
use crate::domain::sip::SipTransport;
use crate::store::{self, sip::NewBinding, sip::Upserted};

/// Methods this server answers, for Allow (§20.5).
pub(crate) const ALLOW: &str = super::calls::ALLOW;

/// Answers one request outside any dialog.
pub(crate) async fn handle(ctx: Arc<SipContext>, incoming: Incoming) {
    let response = match incoming.request.method() {
        Some(Method::Register) => register(&ctx, &incoming).await,
        Some(Method::Options) => options(&ctx, &incoming.request),
        _ => {
            let mut r = ctx.response(&incoming.request, status(501));
            r.headers.push(StdHeader::Allow, ALLOW);
            r
        }
    };
    ctx.respond(incoming.tx, response);
}

fn options(ctx: &SipContext, request: &Message) -> Message {
    let mut r = ctx.response(request, status(200));
    r.headers.push(StdHeader::Allow, ALLOW);
    r.headers.push(StdHeader::Accept, "application/sdp");
    r.headers.push(StdHeader::Supported, "path, outbound");
    r
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn register(ctx: &SipContext, inc: &Incoming) -> Message {
    let request = &inc.request;
    let ip = inc.from.addr.ip().to_string();
    let now = Instant::now();

    let to = match request.require::<To>() {
        Ok(to) => to,
        Err(e) => return ctx.bad_request(request, &e.to_string()),
    };
    let Ok(aor_uri) = to.uri() else {
        return ctx.bad_request(request, "Bad Header: To (bad URI)");
    };
    let Some(aor_user) = aor_uri.user_unescaped() else {
        return ctx.response(request, status(404));
    };

    if ctx.auth_failures_by_ip.blocked_for(&ip, now).is_some()
        || ctx
            .auth_failures_by_user
            .blocked_for(&aor_user, now)
            .is_some()
    {
        ctx.metrics
            .register_rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut r = ctx.response_with_reason(request, status(403), "Too Many Failed Attempts");
        r.headers
            .push(StdHeader::RetryAfter, ctx.window_secs().to_string());
        return r;
    }

    let credentials = request
        .headers
        .get_all(StdHeader::Authorization)
        .filter_map(|v| Credentials::parse(v).ok())
        .find(|c| c.realm == ctx.realm);
    let Some(credentials) = credentials else {
        // No answer yet: the normal first step. Count it, so that a source sending nothing but
        // unauthenticated requests is throttled too.
        ctx.unauthenticated_by_ip.fail(&ip, now);
        if ctx.unauthenticated_by_ip.blocked_for(&ip, now).is_some() {
            let mut r = ctx.response_with_reason(request, status(403), "Too Many Requests");
            r.headers
                .push(StdHeader::RetryAfter, ctx.window_secs().to_string());
            return r;
        }
        return ctx.challenge(request, false);
    };

    let login = if credentials.username == aor_user {
        let mut conn = match ctx.state.db.conn().await {
            Ok(c) => c,
            Err(e) => return ctx.server_error(request, &e),
        };
        match store::sip::account_by_username(&mut conn.ex(), &ctx.state.keyring, &aor_user).await {
            Ok(l) => l,
            Err(e) => return ctx.server_error(request, &e),
        }
    } else {
        // Registering someone else's address (third-party registration) is not allowed.
        None
    };
    let method = request.method().map_or("REGISTER", Method::as_str);
    let uri = request.request_uri().map_or("", |u| u.as_str());
    // An unknown user is checked against a throw-away password, so both paths do the same work.
    let password = login
        .as_ref()
        .map_or("\u{0}unknown", |l| l.password.expose().as_str());
    let verdict = ctx
        .nonces()
        .verify(&credentials, &ctx.realm, method, uri, password, unix_secs());
    let login = match (verdict, login) {
        (Ok(()), Some(login)) => login,
        // A stale nonce, or a nonce-count seen before with a correct answer (a client that does
        // not count, like SIPp, or a replay): a fresh nonce, not a failure.
        (Err(VerifyError::Stale | VerifyError::Replay), Some(_)) => {
            return ctx.challenge(request, true);
        }
        (verdict, _) => {
            ctx.auth_failures_by_ip.fail(&ip, now);
            ctx.auth_failures_by_user.fail(&aor_user, now);
            ctx.metrics
                .register_auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                source = %crate::pii::Pii(ip.as_str()),
                reason = ?verdict.err(),
                "SIP registration refused"
            );
            return ctx.challenge(request, false);
        }
    };

    match update_bindings(ctx, inc, &login, to.uri).await {
        Ok(response) => response,
        Err(BindingError::Reply(r)) => r,
        Err(BindingError::Store(e)) => ctx.server_error(request, &e),
    }
}

enum BindingError {
    Reply(Message),
    Store(store::StoreError),
}

impl From<store::StoreError> for BindingError {
    fn from(e: store::StoreError) -> Self {
        Self::Store(e)
    }
}

/// §10.3 steps 5–8: add, refresh or remove the bindings the Contact headers ask for, then answer
/// 200 with every current binding.
async fn update_bindings(
    ctx: &SipContext,
    inc: &Incoming,
    login: &store::sip::SipLogin,
    aor: &str,
) -> Result<Message, BindingError> {
    let request = &inc.request;
    let bad = |reason: &str| BindingError::Reply(ctx.bad_request(request, reason));
    let default_expires = match request.typed::<Expires>() {
        Ok(e) => e.map_or(ctx.config.default_expires, |e| e.0),
        Err(e) => return Err(bad(&e.to_string())),
    };
    let call_id = request
        .require::<CallIdHeader>()
        .map_err(|e| bad(&e.to_string()))?
        .0;
    let cseq = request
        .require::<masterz_sip::headers::CSeq>()
        .map_err(|e| bad(&e.to_string()))?
        .seq;
    let contacts = request
        .typed_all::<Contact>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e.to_string()))?;
    let user_agent = request
        .headers
        .get(StdHeader::UserAgent)
        .map(|t| t.as_str());
    let source = inc.from.addr.to_string();
    let transport = match inc.from.transport {
        Transport::Udp => SipTransport::Udp,
        Transport::Tcp => SipTransport::Tcp,
        Transport::Tls => SipTransport::Tls,
        Transport::Ws => SipTransport::Ws,
        Transport::Wss => SipTransport::Wss,
    };

    let mut conn = ctx.state.db.begin().await?;
    if contacts.contains(&Contact::Any) {
        // §10.3 step 6: `*` only alone and with Expires: 0.
        if contacts.len() != 1 || default_expires != 0 {
            return Err(bad(
                "Bad Header: Contact (* needs Expires: 0 and no other Contact)",
            ));
        }
        store::sip::remove_all_bindings(&mut conn.ex(), login.company_id, login.user_id).await?;
    }
    for contact in contacts.iter().filter_map(Contact::addr) {
        let expires = match (Contact::Addr(*contact)).expires() {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err(bad(&e.to_string())),
            None => default_expires,
        };
        if contact.uri().is_err() {
            return Err(bad("Bad Header: Contact (bad URI)"));
        }
        if expires == 0 {
            store::sip::remove_binding(
                &mut conn.ex(),
                login.company_id,
                login.user_id,
                contact.uri,
            )
            .await?;
            continue;
        }
        if expires < ctx.config.min_expires {
            let mut r = ctx.response(request, status(423));
            r.headers
                .push(StdHeader::MinExpires, ctx.config.min_expires.to_string());
            return Err(BindingError::Reply(r));
        }
        let expires = expires.min(ctx.config.max_expires);
        let instance = contact
            .params
            .get_unquoted("+sip.instance")
            .map(|c| c.into_owned());
        let reg_id = contact
            .params
            .get("reg-id")
            .flatten()
            .and_then(|v| v.parse().ok());
        let q = Contact::Addr(*contact).q().map(|q| f64::from(q) / 1000.0);
        let binding = NewBinding {
            company: login.company_id,
            user: login.user_id,
            aor,
            contact: contact.uri,
            source: &source,
            transport,
            user_agent,
            call_id,
            cseq: i64::from(cseq),
            expires_at: unix_ms() + i64::from(expires) * 1000,
            instance_id: instance.as_deref(),
            reg_id,
            q,
        };
        if let Upserted::OutOfOrder = store::sip::upsert_binding(&mut conn.ex(), &binding).await? {
            // §10.3 step 7: an older or repeated request must not undo a newer one.
            return Err(BindingError::Reply(ctx.response_with_reason(
                request,
                status(500),
                "Out Of Order Registration",
            )));
        }
    }
    let bindings =
        store::sip::bindings_for_user(&mut conn.ex(), login.company_id, login.user_id, unix_ms())
            .await?;
    conn.commit().await?;

    let mut r = ctx.response(request, status(200));
    let now = unix_ms();
    for b in &bindings {
        let left = ((b.expires_at.0 - now).max(0) + 999) / 1000;
        r.headers.push(
            StdHeader::Contact,
            format!("<{}>;expires={left}", b.contact),
        );
    }
    r.headers.push(StdHeader::Date, httpdate(SystemTime::now()));
    ctx.metrics
        .registrations
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(r)
}

/// An RFC 1123 date for the Date header (§20.17), which some phones use to set their clock.
fn httpdate(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The algorithms offered in a challenge, most preferred first (RFC 8760 §2.4), from
/// `sip_digest_algorithms` (see its documentation for why MD5 alone is the default).
pub(crate) fn parse_algorithms(s: &str) -> Result<Vec<Algorithm>, String> {
    let list: Result<Vec<Algorithm>, String> = s
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| match a.to_ascii_uppercase().as_str() {
            "MD5" => Ok(Algorithm::Md5),
            "SHA-256" => Ok(Algorithm::Sha256),
            other => Err(format!("unsupported digest algorithm {other:?}")),
        })
        .collect();
    let list = list?;
    if list.is_empty() {
        return Err("no digest algorithm".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_lists() {
        assert_eq!(
            parse_algorithms("MD5, sha-256").unwrap(),
            [Algorithm::Md5, Algorithm::Sha256]
        );
        assert!(parse_algorithms("").is_err());
        assert!(parse_algorithms("SHA-512").is_err());
    }

    #[test]
    fn dates_are_rfc1123() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(httpdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
