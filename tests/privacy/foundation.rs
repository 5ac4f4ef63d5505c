//! The account side of the policy (§1.1, §5): profiles, roles and permissions, password hashing,
//! through the HTTP API (and the `masterz` binary) of a running server. Login metadata, the
//! audit log and rate limits are in `access.rs`.

use masterz::domain::{Permission, PermissionSet};
use masterz::store::{self, users::NewUser};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestServer, password_hash, seed_tenant};
use crate::support::{call, columns, expect, items, masterz, on_db};

both_backends!(
    p1_users_hold_only_the_profile_fields,
    p2_company_profile_with_a_unique_slug_and_a_valid_time_zone,
    p3_every_route_checks_a_permission,
    p24_passwords_are_bcrypt_cost_12,
);

/// A user of `company` whose role holds exactly `perms`, with an API token.
async fn user_with(s: &TestServer, company: masterz::domain::CompanyId, perms: &[&str]) -> String {
    let db = s.store();
    let suffix = perms.join("-").replace(':', "_");
    let token = format!("mzt_test_privacy_{}_{suffix}", company.0);
    let mut tx = db.begin().await.unwrap();
    let set = PermissionSet::new(
        perms
            .iter()
            .map(|p| Permission::parse(p).unwrap_or_else(|| panic!("{p}")))
            .collect::<Vec<_>>(),
    );
    let role = store::users::create_role(&mut tx.ex(), company, &format!("only {suffix}"), &set)
        .await
        .unwrap();
    let user = store::users::create_user(
        &mut tx.ex(),
        company,
        &NewUser {
            role_id: role.id,
            name: "Restricted",
            email: &format!("restricted-{suffix}@{}.example.com", company.0),
            password_hash: password_hash(),
            avatar_url: None,
        },
    )
    .await
    .unwrap();
    store::auth::create_token(
        &mut tx.ex(),
        company,
        user.id,
        "privacy",
        &masterz::secrets::token_hash(&token),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    token
}

/// The id of the company's built-in role `name`.
async fn role_id(s: &TestServer, token: &str, name: &str) -> i64 {
    let roles = expect(s, Method::GET, "/api/v1/roles", token, None, StatusCode::OK).await;
    items(&roles)
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("no role {name}: {roles}"))
}

/// Fails when a user object carries anything beyond the account profile, or a password hash.
fn assert_profile_only(user: &Value, what: &str) {
    const ALLOWED: &[&str] = &[
        "id",
        "company_id",
        "role_id",
        "name",
        "email",
        "avatar_url",
        "sip_username",
        "created_at",
        "updated_at",
    ];
    let obj = user
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not a user object: {user}"));
    for key in obj.keys() {
        assert!(
            ALLOWED.contains(&key.as_str()),
            "{what}: unexpected field {key:?} in {user}"
        );
    }
    let text = user.to_string();
    assert!(
        !text.contains("password") && !text.contains("$2b$") && !text.contains("$2y$"),
        "{what}: a password (hash) in {user}"
    );
}

// P1: the users table holds the account profile (name, email, password hash, avatar URL) plus
// ids, role and timestamps, nothing else; no API answer ever carries the hash.
async fn p1_users_hold_only_the_profile_fields(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "p1").await;
    assert_eq!(
        columns(s.store(), "users").await,
        [
            "avatar_url",
            "company_id",
            "created_at",
            "email",
            "id",
            "name",
            "password_hash",
            "role_id",
            "updated_at"
        ],
        "the users table holds the account profile and nothing else"
    );
    let agent_role = role_id(&s, &t.admin_token, "agent").await;
    let created = expect(
        &s,
        Method::POST,
        "/api/v1/users",
        &t.admin_token,
        Some(
            json!({"name": "Profile Person", "email": "profile@p1.example.com",
            "password": "profile-password-1", "role_id": agent_role,
            "avatar_url": "https://cdn.example/p.png"}),
        ),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["avatar_url"], "https://cdn.example/p.png");
    let id = created["id"].as_i64().unwrap();
    assert_profile_only(&created, "POST /users");
    let patched = expect(
        &s,
        Method::PATCH,
        &format!("/api/v1/users/{id}"),
        &t.admin_token,
        Some(json!({"name": "Renamed Person", "password": "profile-password-2"})),
        StatusCode::OK,
    )
    .await;
    assert_profile_only(&patched, "PATCH /users/{id}");
    let one = expect(
        &s,
        Method::GET,
        &format!("/api/v1/users/{id}"),
        &t.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    assert_profile_only(&one, "GET /users/{id}");
    let all = expect(
        &s,
        Method::GET,
        "/api/v1/users",
        &t.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    let all = items(&all);
    assert!(all.len() >= 3, "{all:?}");
    for u in &all {
        assert_profile_only(u, "GET /users");
    }
    let login = call(
        &s,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": "profile@p1.example.com", "password": "profile-password-2"})),
        &[],
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert_profile_only(&login.body["user"], "POST /auth/login");
    let me = expect(
        &s,
        Method::GET,
        "/api/v1/auth/me",
        &t.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    assert_profile_only(&me["user"], "GET /auth/me");
    // The hash is there, in its column, and only there.
    let hash: String = on_db!(s.store(), |c| {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *c)
            .await
            .unwrap()
    });
    assert!(hash.starts_with("$2"), "{hash}");
    for text in [&created, &patched, &one, &me, &login.body] {
        assert!(!text.to_string().contains(&hash));
    }
}

// P2: the company profile is name, slug, plan tier, time zone and theme (the other columns are
// status and settings, nothing personal); the slug is unique; the time zone must be IANA.
async fn p2_company_profile_with_a_unique_slug_and_a_valid_time_zone(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "p2").await;
    let cols = columns(s.store(), "companies").await;
    for profile in ["name", "slug", "plan_tier", "time_zone", "theme"] {
        assert!(cols.iter().any(|c| c == profile), "no {profile}: {cols:?}");
    }
    const OPERATIONAL: &[&str] = &[
        "id",
        "name",
        "slug",
        "plan_tier",
        "time_zone",
        "theme",
        "status",
        "closed_at",
        "delete_after",
        "recording_enabled",
        "recording_retention_days",
        "ai_base_url",
        "ai_model",
        "ai_api_key",
        "created_at",
        "updated_at",
    ];
    for c in &cols {
        assert!(
            OPERATIONAL.contains(&c.as_str()),
            "companies.{c} is neither profile nor a documented setting"
        );
    }
    let company = expect(
        &s,
        Method::GET,
        "/api/v1/company",
        &t.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            &company["name"],
            &company["slug"],
            &company["plan_tier"],
            &company["time_zone"],
            &company["theme"]
        ),
        (
            &json!("Company p2"),
            &json!("p2"),
            &json!("free"),
            &json!("UTC"),
            &json!("light")
        ),
        "{company}"
    );
    for bad in [
        json!({"time_zone": "Mars/Olympus"}),
        json!({"time_zone": "CEST"}),
        json!({"theme": "neon"}),
    ] {
        let r = call(
            &s,
            Method::PATCH,
            "/api/v1/company",
            Some(&t.admin_token),
            Some(&bad),
            &[],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["code"], "invalid_field", "{}", r.text);
    }
    let changed = expect(
        &s,
        Method::PATCH,
        "/api/v1/company",
        &t.admin_token,
        Some(json!({"time_zone": "Europe/Berlin", "theme": "dark"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&changed["time_zone"], &changed["theme"]),
        (&json!("Europe/Berlin"), &json!("dark"))
    );
    // The time zone is used for reports: a message at 23:30 UTC on 30 November is December's
    // in Berlin, and the usage report of December counts it.
    {
        let mut conn = s.store().conn().await.unwrap();
        store::usage::add(
            &mut conn.ex(),
            t.company,
            "messages_in",
            1,
            1_796_081_400_000,
        )
        .await
        .unwrap();
    }
    for (month, used) in [("2026-11", 0), ("2026-12", 1)] {
        let report = expect(
            &s,
            Method::GET,
            &format!("/api/v1/usage?month={month}"),
            &t.admin_token,
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            report["metrics"]["messages_in"]["used"], used,
            "{month}: {report}"
        );
    }
    // The plan tier is the operator's: an admin of the company cannot change it.
    let r = call(
        &s,
        Method::PATCH,
        "/api/v1/company",
        Some(&t.admin_token),
        Some(&json!({"plan_tier": "business"})),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    // Slugs are unique: the command line refuses a second "p2", and so does the database.
    let (ok, _, err) = masterz(
        &s.db,
        &["admin", "create-company", "--name", "Other", "--slug", "p2"],
    );
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, out, err) = masterz(
        &s.db,
        &[
            "admin",
            "create-company",
            "--name",
            "Other",
            "--slug",
            "p2-b",
        ],
    );
    assert!(ok, "{out}{err}");
    let mut c = s.store().conn().await.unwrap();
    let dup = store::companies::create(&mut c.ex(), "Third", "p2").await;
    assert!(
        matches!(dup, Err(store::StoreError::Conflict(_))),
        "{dup:?}"
    );
    let n = crate::support::scalar(
        s.store(),
        "SELECT COUNT(*) FROM companies WHERE slug = 'p2'",
    )
    .await;
    assert_eq!(n, 1);
}

// P3: roles carry permission sets, and every /api/v1 operation checks one: anonymous → 401, a
// role without permissions → 403 (only /auth/me needs no more than a login), and a role with
// one permission gets exactly that.
async fn p3_every_route_checks_a_permission(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "p3").await;
    let nobody = user_with(&s, t.company, &[]).await;
    let reader = user_with(&s, t.company, &["customers:read"]).await;

    let doc: Value = s
        .http
        .get(s.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if !template.starts_with("/api/v1/") {
            continue;
        }
        for (verb, op) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(verb.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) || op.get("security") == Some(&json!([{}]))
            {
                continue;
            }
            // Every path parameter becomes 1.
            let mut path = String::new();
            let mut rest = template.as_str();
            while let Some(open) = rest.find('{') {
                let close = rest[open..].find('}').expect("closing brace") + open;
                path.push_str(&rest[..open]);
                path.push('1');
                rest = &rest[close + 1..];
            }
            path.push_str(rest);
            let body =
                matches!(method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            let anon = call(&s, method.clone(), &path, None, body.as_ref(), &[]).await;
            if anon.status != StatusCode::UNAUTHORIZED
                || !anon.headers.contains_key(WWW_AUTHENTICATE)
            {
                failures.push(format!(
                    "{method} {path} anonymous: {} {}",
                    anon.status, anon.text
                ));
            }
            let r = call(&s, method.clone(), &path, Some(&nobody), body.as_ref(), &[]).await;
            let want = if path == "/api/v1/auth/me" {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            if r.status != want {
                failures.push(format!(
                    "{method} {path} without permissions: {} {}",
                    r.status, r.text
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 40,
        "only {checked} operations in the OpenAPI document"
    );

    // One permission opens exactly its door.
    for (method, path, body, want) in [
        (Method::GET, "/api/v1/customers", None, StatusCode::OK),
        (
            Method::POST,
            "/api/v1/customers",
            Some(json!({"display_name": "X"})),
            StatusCode::FORBIDDEN,
        ),
        (Method::GET, "/api/v1/users", None, StatusCode::FORBIDDEN),
        (
            Method::GET,
            "/api/v1/audit-logs",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            Method::GET,
            "/api/v1/channel-accounts",
            None,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let r = call(&s, method.clone(), path, Some(&reader), body.as_ref(), &[]).await;
        assert_eq!(
            r.status, want,
            "{method} {path} with customers:read: {}",
            r.text
        );
    }
    // Roles are permission sets, managed through the API; a role change takes effect at once.
    let role = expect(
        &s,
        Method::POST,
        "/api/v1/roles",
        &t.admin_token,
        Some(json!({"name": "auditor", "permissions": ["audit:read"]})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(role["permissions"], json!(["audit:read"]), "{role}");
    let me = expect(
        &s,
        Method::GET,
        "/api/v1/auth/me",
        &nobody,
        None,
        StatusCode::OK,
    )
    .await;
    let nobody_id = me["user"]["id"].as_i64().unwrap();
    expect(
        &s,
        Method::PATCH,
        &format!("/api/v1/users/{nobody_id}"),
        &t.admin_token,
        Some(json!({"role_id": role["id"]})),
        StatusCode::OK,
    )
    .await;
    let r = call(
        &s,
        Method::GET,
        "/api/v1/audit-logs",
        Some(&nobody),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The agent role may not read the audit log or manage users.
    for path in ["/api/v1/audit-logs", "/api/v1/users", "/api/v1/roles"] {
        let r = call(
            &s,
            Method::POST,
            path,
            Some(&t.agent_token),
            Some(&json!({})),
            &[],
        )
        .await;
        assert!(
            matches!(
                r.status,
                StatusCode::FORBIDDEN | StatusCode::METHOD_NOT_ALLOWED
            ),
            "agent POST {path}: {}",
            r.status
        );
    }
}

// P24: every password the server stores is a bcrypt hash of cost 12: the first admin, users
// made through the API, changed passwords and accepted invitations.
async fn p24_passwords_are_bcrypt_cost_12(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "p24").await;
    let agent_role = role_id(&s, &t.admin_token, "agent").await;
    let u = expect(
        &s,
        Method::POST,
        "/api/v1/users",
        &t.admin_token,
        Some(json!({"name": "Hash", "email": "hash@p24.example.com",
            "password": "p24-password-1", "role_id": agent_role})),
        StatusCode::CREATED,
    )
    .await;
    expect(
        &s,
        Method::PATCH,
        &format!("/api/v1/users/{}", t.agent),
        &t.admin_token,
        Some(json!({"password": "p24-password-2"})),
        StatusCode::OK,
    )
    .await;
    let inv = expect(
        &s,
        Method::POST,
        "/api/v1/invitations",
        &t.admin_token,
        Some(json!({"email": "invited@p24.example.com", "role_id": agent_role})),
        StatusCode::CREATED,
    )
    .await;
    let r = call(
        &s,
        Method::POST,
        "/api/v1/invitations/accept",
        None,
        Some(&json!({"token": inv["token"], "password": "p24-password-3"})),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let hashes: Vec<(String, String)> = on_db!(s.store(), |c| {
        sqlx::query_as("SELECT email, password_hash FROM users ORDER BY id")
            .fetch_all(&mut *c)
            .await
            .unwrap()
    });
    for email in [
        "admin@masterz.local",
        "hash@p24.example.com",
        "invited@p24.example.com",
        t.agent_email.as_str(),
    ] {
        assert!(
            hashes.iter().any(|(e, _)| e == email),
            "{email} not among {hashes:?}"
        );
    }
    for (email, hash) in &hashes {
        assert!(
            hash.starts_with("$2b$12$") || hash.starts_with("$2y$12$"),
            "{email}: {hash} is not bcrypt cost 12"
        );
        assert_eq!(hash.len(), 60, "{email}: {hash}");
    }
    assert!(u["id"].is_i64());
    // And they are real hashes of what was set: the new passwords log in.
    for (email, pw) in [
        ("hash@p24.example.com", "p24-password-1"),
        (t.agent_email.as_str(), "p24-password-2"),
        ("invited@p24.example.com", "p24-password-3"),
    ] {
        let r = call(
            &s,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": email, "password": pw})),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.text);
    }
}
