//! Securing the service (§1.1, §1.3, §2): login metadata, the audit log of sensitive changes,
//! login and SIP registration rate limits — through the HTTP API and the SIP port.

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, PASSWORD, TestServer, seed_tenant};
use crate::support::{call, expect, items, on_db};

both_backends!(
    p4_logins_and_sessions_keep_ip_user_agent_and_time,
    p13_changes_to_roles_users_invitations_and_channels_are_audited,
    p14_login_and_sip_auth_floods_are_limited_and_counted,
);

// P4: every login (successful or not) is stored with IP, user agent and time; each session keeps
// its IP, user agent, start and last use.
async fn p4_logins_and_sessions_keep_ip_user_agent_and_time(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let t = seed_tenant(s.store(), "p4").await;
    let before = chrono::Utc::now().timestamp_millis() - 1000;
    let login = |password: &'static str| {
        let s = &s;
        let email = t.agent_email.clone();
        async move {
            call(
                s,
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&json!({"email": email, "password": password})),
                &[
                    ("user-agent", "privacy-suite/p4"),
                    ("x-forwarded-for", "198.51.100.4"),
                ],
            )
            .await
        }
    };
    assert_eq!(
        login("not-the-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let ok = login(PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let after = chrono::Utc::now().timestamp_millis() + 1000;
    let events = expect(
        &s,
        Method::GET,
        &format!("/api/v1/users/{}/logins", t.agent),
        &t.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    let events = items(&events);
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["success", "bad_credentials"], "{events:?}");
    for e in &events {
        assert_eq!(e["ip"], "198.51.100.4", "{e}");
        assert_eq!(e["user_agent"], "privacy-suite/p4", "{e}");
        let at = chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis();
        assert!(
            (before..=after).contains(&at),
            "login time {at} not in {before}..{after}"
        );
    }
    // The session: IP, user agent, start and last use.
    let cookie = ok.headers["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let r = s
        .http
        .get(s.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let rows: Vec<(String, Option<String>, i64, i64)> = on_db!(s.store(), |c| {
        sqlx::query_as(
            "SELECT ip, user_agent, created_at, last_seen_at FROM sessions WHERE user_id = $1",
        )
        .bind(t.agent)
        .fetch_all(&mut *c)
        .await
        .unwrap()
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (ip, ua, created, seen) = &rows[0];
    assert_eq!(ip, "198.51.100.4");
    assert_eq!(ua.as_deref(), Some("privacy-suite/p4"));
    assert!((before..=after).contains(created), "{created}");
    assert!(seen >= created, "{seen} < {created}");
}

// P13: creating, changing and deleting roles, users, invitations and channel connections each
// leaves an audit row with the actor, the client's IP and user agent.
async fn p13_changes_to_roles_users_invitations_and_channels_are_audited(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await
    else {
        return;
    };
    let t = seed_tenant(s.store(), "p13").await;
    let tok = t.admin_token.as_str();
    let headers = [
        ("user-agent", "privacy-suite/p13"),
        ("x-forwarded-for", "198.51.100.13"),
    ];
    let act = |method: Method, path: String, body: Value| {
        let s = &s;
        async move {
            let r = call(s, method.clone(), &path, Some(tok), Some(&body), &headers).await;
            assert!(r.status.is_success(), "{method} {path}: {}", r.text);
            r.body
        }
    };
    let role = act(
        Method::POST,
        "/api/v1/roles".into(),
        json!({"name": "p13 role", "permissions": ["customers:read"]}),
    )
    .await;
    let role_id = role["id"].as_i64().unwrap();
    act(
        Method::PATCH,
        format!("/api/v1/roles/{role_id}"),
        json!({"permissions": ["customers:read", "customers:write"]}),
    )
    .await;
    let user = act(
        Method::POST,
        "/api/v1/users".into(),
        json!({"name": "P13", "email": "p13@p13.example.com", "password": "p13-password-1", "role_id": role_id}),
    )
    .await;
    let user_id = user["id"].as_i64().unwrap();
    act(
        Method::PATCH,
        format!("/api/v1/users/{user_id}"),
        json!({"name": "P13 renamed"}),
    )
    .await;
    let inv = act(
        Method::POST,
        "/api/v1/invitations".into(),
        json!({"email": "invited@p13.example.com", "role_id": role_id}),
    )
    .await;
    act(
        Method::DELETE,
        format!("/api/v1/invitations/{}", inv["invitation"]["id"]),
        Value::Null,
    )
    .await;
    let acct = act(
        Method::POST,
        "/api/v1/channel-accounts".into(),
        json!({"kind": "waha", "name": "WAHA", "external_id": "default",
            "credentials": {"api_key": "p13-waha-key"}}),
    )
    .await;
    let acct_id = acct["id"].as_i64().unwrap();
    act(
        Method::PATCH,
        format!("/api/v1/channel-accounts/{acct_id}"),
        json!({"name": "WAHA 2"}),
    )
    .await;
    act(
        Method::DELETE,
        format!("/api/v1/channel-accounts/{acct_id}"),
        Value::Null,
    )
    .await;
    act(
        Method::DELETE,
        format!("/api/v1/users/{user_id}"),
        Value::Null,
    )
    .await;
    act(
        Method::DELETE,
        format!("/api/v1/roles/{role_id}"),
        Value::Null,
    )
    .await;

    let log = expect(
        &s,
        Method::GET,
        "/api/v1/audit-logs?limit=200",
        tok,
        None,
        StatusCode::OK,
    )
    .await;
    let rows = items(&log);
    let mut missing = Vec::new();
    for (action, entity, id) in [
        ("create", "role", role_id),
        ("update", "role", role_id),
        ("delete", "role", role_id),
        ("create", "user", user_id),
        ("update", "user", user_id),
        ("delete", "user", user_id),
        (
            "create",
            "invitation",
            inv["invitation"]["id"].as_i64().unwrap(),
        ),
        (
            "delete",
            "invitation",
            inv["invitation"]["id"].as_i64().unwrap(),
        ),
        ("create", "channel_account", acct_id),
        ("update", "channel_account", acct_id),
        ("delete", "channel_account", acct_id),
    ] {
        let row = rows
            .iter()
            .find(|r| r["action"] == action && r["entity_type"] == entity && r["entity_id"] == id);
        match row {
            None => missing.push(format!("{action} {entity} {id}")),
            Some(r) => {
                assert_eq!(r["ip"], "198.51.100.13", "{r}");
                assert_eq!(r["user_agent"], "privacy-suite/p13", "{r}");
                assert_eq!(r["actor_id"], t.admin.0, "{r}");
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no audit row for {missing:?} in {rows:#?}"
    );
    // A refused change leaves no row.
    let n = rows.len();
    let r = call(
        &s,
        Method::POST,
        "/api/v1/roles",
        Some(&t.agent_token),
        Some(&json!({"name": "x", "permissions": []})),
        &headers,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let again = expect(
        &s,
        Method::GET,
        "/api/v1/audit-logs?limit=200",
        tok,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(items(&again).len(), n);
}

// P14: past the failed-login limit, 429 with Retry-After even for the right password; failures
// and refusals are counted in /metrics. SIP registration floods: past the limit, 403 with
// Retry-After, counted too.
async fn p14_login_and_sip_auth_floods_are_limited_and_counted(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.login_max_failures_per_account = 3;
        c.login_max_failures_per_ip = 100;
        c.login_window_secs = 600;
        c.sip_max_auth_failures = 3;
    })
    .await
    else {
        return;
    };
    let t = seed_tenant(s.store(), "p14").await;
    let login = |password: &'static str| {
        let s = &s;
        let email = t.admin_email.clone();
        async move {
            call(
                s,
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&json!({"email": email, "password": password})),
                &[],
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            login("wrong-password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = login(PASSWORD).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    let retry: u64 = limited.headers[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("masterz_login_failures_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("masterz_login_rate_limited_total 1"),
        "{metrics}"
    );

    // SIP: wrong digest answers for a real SIP account, from one source.
    expect(
        &s,
        Method::PUT,
        &format!("/api/v1/users/{}/sip-credentials", t.agent),
        &t.admin_token,
        Some(json!({"username": "p14agent", "password": "p14-sip-secret"})),
        StatusCode::OK,
    )
    .await;
    let sip = s
        .server
        .as_ref()
        .and_then(|s| s.state.telephony.get())
        .expect("SIP is running")
        .sip_addr;
    let mut last = None;
    for _ in 0..8 {
        // A fresh UA per guess (the digest client gives up on a realm that refused it once).
        let mut ua = crate::raw::RawUa::new(sip, "p14agent", "guessed-wrong").await;
        let r = ua
            .register_authenticated(&["<sip:p14agent@127.0.0.1:5099>"], Some(600))
            .await;
        let code = crate::raw::code(&r);
        last = Some(r);
        if code == 403 {
            break;
        }
        assert_eq!(code, 401, "a wrong answer is challenged again");
    }
    let last = last.unwrap();
    assert_eq!(crate::raw::code(&last), 403, "{last}");
    assert_eq!(crate::raw::reason(&last), "Too Many Failed Attempts");
    assert!(last.headers.get("Retry-After").is_some(), "{last}");
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("masterz_sip_register_auth_failures_total 3"),
        "{metrics}"
    );
    let limited: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("masterz_sip_register_rate_limited_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no SIP rate-limit counter: {metrics}"));
    assert!(limited >= 1, "{metrics}");
}
