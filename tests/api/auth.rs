//! Sessions, the login limit, passwords, invitations and who may grant what.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, PASSWORD, TestServer, seed_tenant};
use crate::{error_code, login, session_cookie};

both_backends!(
    login_sets_a_safe_cookie_and_logout_ends_the_session,
    login_limit_answers_429_with_retry_after,
    invitations_set_a_password_once,
    passwords_use_cost_12_and_laravel_hashes_log_in,
    nobody_grants_more_than_they_have,
);

// P4 (login IP, user agent, time), P22 (Secure cookie behind a TLS proxy)
async fn login_sets_a_safe_cookie_and_logout_ends_the_session(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let resp = login(&s, &a.admin_email.to_uppercase(), PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "plain HTTP without a trusted proxy: no Secure flag"
    );
    let cookie = session_cookie(&resp);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["user"]["email"], a.admin_email);
    assert!(me["user"].get("password_hash").is_none());

    let get = |cookie: String| {
        let s = &s;
        async move {
            s.http
                .get(s.url("/api/v1/auth/me"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(get(cookie.clone()).await.status(), StatusCode::OK);
    // The login was recorded with IP and user agent (P4).
    let logins: Value = s
        .req(
            Method::GET,
            &format!("/api/v1/users/{}/logins", a.admin),
            &a.admin_token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logins[0]["outcome"], "success");
    assert_eq!(logins[0]["ip"], "127.0.0.1");
    assert_eq!(logins[0]["user_agent"], "masterz-tests/1");

    let out = s
        .http
        .post(s.url("/api/v1/auth/logout"))
        .header("cookie", cookie.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(get(cookie).await.status(), StatusCode::UNAUTHORIZED);
    // A forged cookie and a forged token get 401 too.
    assert_eq!(
        get(format!("{}=forged", "masterz_session")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let forged = s
        .req(Method::GET, "/api/v1/customers", "mzt_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(forged).await, "unauthorized");

    // Behind a trusted proxy that says https, the cookie is Secure and the client IP is forwarded.
    s.stop().await;
    let Some(s) = TestServer::start_with(backend, |c| {
        c.trusted_proxies = "127.0.0.1".parse().unwrap()
    })
    .await
    else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let resp = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .json(&json!({"email": a.agent_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    let logins: Value = s
        .req(
            Method::GET,
            &format!("/api/v1/users/{}/logins", a.agent),
            &a.admin_token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logins[0]["ip"], "203.0.113.9");
}

// P14
async fn login_limit_answers_429_with_retry_after(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.login_max_failures_per_account = 3;
        c.login_max_failures_per_ip = 6;
        c.login_window_secs = 600;
    })
    .await
    else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    for _ in 0..3 {
        let r = login(&s, &a.admin_email, "wrong-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(r).await, "invalid_credentials");
    }
    // The account is locked now, even with the right password.
    let r = login(&s, &a.admin_email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    assert_eq!(error_code(r).await, "rate_limited");
    // The account's history shows the failed and refused attempts (P4).
    let logins: Value = s
        .req(
            Method::GET,
            &format!("/api/v1/users/{}/logins", a.admin),
            &a.admin_token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<&str> = logins
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "rate_limited",
            "bad_credentials",
            "bad_credentials",
            "bad_credentials"
        ]
    );
    // Another account from the same IP still works, until the IP limit is reached.
    assert_eq!(
        login(&s, &a.agent_email, PASSWORD).await.status(),
        StatusCode::OK
    );
    for i in 0..3 {
        let r = login(&s, &format!("nobody{i}@example.com"), "x-wrong-x").await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "unknown users get the same answer as wrong passwords"
        );
    }
    let r = login(&s, &a.agent_email, PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "6 failures from one IP block it"
    );
    assert!(r.headers().contains_key("retry-after"));
    // Failures and refusals are visible to monitoring (P14).
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("masterz_login_failures_total 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("masterz_login_rate_limited_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "masterz_http_requests_total{method=\"POST\",route=\"/api/v1/auth/login\",status=\"429\"} 2"
    ));
}

async fn invitations_set_a_password_once(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let roles: Value = s
        .req(Method::GET, "/api/v1/roles", &a.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let agent_role = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "agent")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = s
        .req(Method::POST, "/api/v1/invitations", &a.admin_token)
        .json(&json!({"email": "Newbie@A.example.com", "name": "Newbie", "role_id": agent_role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let inv: Value = r.json().await.unwrap();
    let token = inv["token"].as_str().unwrap().to_owned();
    assert!(inv["accept_url"].as_str().unwrap().contains(&token));
    // Only the hash is stored.
    let listed = s
        .req(Method::GET, "/api/v1/invitations", &a.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&token));
    // The link opens a page of this server with the form.
    let url = inv["accept_url"].as_str().unwrap();
    assert!(url.starts_with(&s.base), "{url}");
    let page = s.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/api/v1/invitations/accept") && html.contains("<label for=\"password\">")
    );
    // Accepting needs no login; a short password is refused and uses nothing up.
    let accept = |password: &'static str| {
        let s = &s;
        let token = token.clone();
        async move {
            s.http
                .post(s.url("/api/v1/invitations/accept"))
                .json(&json!({"token": token, "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        accept("short").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let ok = accept("newbie-password").await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let user: Value = ok.json().await.unwrap();
    assert_eq!(user["email"], "newbie@a.example.com");
    assert_eq!(user["role_id"], agent_role);
    assert_eq!(
        accept("newbie-password").await.status(),
        StatusCode::NOT_FOUND,
        "a token works once"
    );
    assert_eq!(
        login(&s, "newbie@a.example.com", "newbie-password")
            .await
            .status(),
        StatusCode::OK
    );
    // Inviting an existing user is a conflict.
    let r = s
        .req(Method::POST, "/api/v1/invitations", &a.admin_token)
        .json(&json!({"email": a.agent_email, "role_id": agent_role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

// P24
async fn passwords_use_cost_12_and_laravel_hashes_log_in(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let mut c = s.store().conn().await.unwrap();
    let role = masterz::store::users::role_by_name(&mut c.ex(), a.company, "agent")
        .await
        .unwrap()
        .unwrap();
    drop(c);
    let r = s.req(Method::POST, "/api/v1/users", &a.admin_token)
        .json(&json!({"name": "Cost", "email": "cost@a.example.com", "password": "cost-twelve-pw", "role_id": role.id}))
        .send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut c = s.store().conn().await.unwrap();
    let stored = masterz::store::users::login_user(&mut c.ex(), "cost@a.example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.password_hash.starts_with("$2b$12$"),
        "{}",
        stored.password_hash
    );
    assert_eq!(masterz::auth::hash_cost(&stored.password_hash), Some(12));

    // A user imported from a Laravel install keeps their `$2y$` hash and logs in with it.
    let laravel = "$2y$12$5gvgLkK.57fvicP27wu9cuAbiNqBx70xf9Xb9UiPrNCyTrrDVOlqq"; // "password"
    masterz::store::users::create_user(
        &mut c.ex(),
        a.company,
        &masterz::store::users::NewUser {
            role_id: role.id,
            name: "Imported",
            email: "imported@a.example.com",
            password_hash: laravel,
            avatar_url: None,
        },
    )
    .await
    .unwrap();
    drop(c);
    assert_eq!(
        login(&s, "imported@a.example.com", "password")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        login(&s, "imported@a.example.com", "Password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

// P3
async fn nobody_grants_more_than_they_have(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    // A user manager (users:* and roles:*) who is not an admin.
    let mgr_role: Value = s.req(Method::POST, "/api/v1/roles", &a.admin_token)
        .json(&json!({"name": "manager", "permissions": ["users:read", "users:write", "roles:read", "roles:write", "tokens:write"]}))
        .send().await.unwrap().json().await.unwrap();
    let mgr: Value = s.req(Method::POST, "/api/v1/users", &a.admin_token)
        .json(&json!({"name": "M", "email": "m@a.example.com", "password": "manager-password", "role_id": mgr_role["id"]}))
        .send().await.unwrap().json().await.unwrap();
    let token: Value = {
        let resp = login(&s, "m@a.example.com", "manager-password").await;
        let cookie = session_cookie(&resp);
        s.http
            .post(s.url("/api/v1/api-tokens"))
            .header("cookie", cookie)
            .json(&json!({"name": "m"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let t = token["token"].as_str().unwrap();
    let roles: Value = s
        .req(Method::GET, "/api/v1/roles", t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_role = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // Cannot make themselves admin, create an admin, invite one, or widen their own role.
    let r = s
        .req(Method::PATCH, &format!("/api/v1/users/{}", mgr["id"]), t)
        .json(&json!({"role_id": admin_role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s.req(Method::POST, "/api/v1/users", t)
        .json(&json!({"name": "X", "email": "x@a.example.com", "password": "x-password-x", "role_id": admin_role})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .req(Method::POST, "/api/v1/invitations", t)
        .json(&json!({"email": "y@a.example.com", "role_id": admin_role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s.req(Method::PATCH, &format!("/api/v1/roles/{}", mgr_role["id"]), t)
        .json(&json!({"permissions": ["users:read", "users:write", "roles:read", "roles:write", "audit:read"]})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .req(Method::POST, "/api/v1/roles", t)
        .json(&json!({"name": "wide", "permissions": ["customers:delete"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Nor take over an admin's account by changing its password or email, or delete it.
    let r = s
        .req(Method::PATCH, &format!("/api/v1/users/{}", a.admin), t)
        .json(&json!({"password": "taken-over-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .req(Method::PATCH, &format!("/api/v1/users/{}", a.admin), t)
        .json(&json!({"email": "mine@a.example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .req(Method::DELETE, &format!("/api/v1/users/{}", a.admin), t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        login(&s, &a.admin_email, PASSWORD).await.status(),
        StatusCode::OK,
        "the admin's password is unchanged"
    );
    // What they do hold, they can hand out.
    let r = s
        .req(Method::POST, "/api/v1/roles", t)
        .json(&json!({"name": "reader", "permissions": ["users:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // …and manage the users who hold no more than they do.
    let reader: Value = r.json().await.unwrap();
    let r = s.req(Method::POST, "/api/v1/users", t)
        .json(&json!({"name": "R", "email": "r@a.example.com", "password": "reader-password", "role_id": reader["id"]}))
        .send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let rid = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = s
        .req(Method::PATCH, &format!("/api/v1/users/{rid}"), t)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .req(Method::PATCH, &format!("/api/v1/users/{}", a.agent), t)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "agents hold customer permissions the manager lacks"
    );

    // The last admin cannot be demoted or deleted; with a second admin, they can.
    let agent_role = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "agent")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = s
        .req(
            Method::PATCH,
            &format!("/api/v1/users/{}", a.admin),
            &a.admin_token,
        )
        .json(&json!({"role_id": agent_role}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let second: Value = s.req(Method::POST, "/api/v1/users", &a.admin_token)
        .json(&json!({"name": "A2", "email": "a2@a.example.com", "password": "second-admin-pw", "role_id": admin_role})).send().await.unwrap().json().await.unwrap();
    let r = s
        .req(
            Method::DELETE,
            &format!("/api/v1/users/{}", second["id"]),
            &a.admin_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The admin role keeps every permission.
    let r = s
        .req(
            Method::PATCH,
            &format!("/api/v1/roles/{admin_role}"),
            &a.admin_token,
        )
        .json(&json!({"permissions": ["users:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // A wrong method answers 405 with a JSON body.
    let r = s
        .req(Method::PUT, "/api/v1/customers", &a.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "method_not_allowed");
}
