//! SIP credentials of users and the registrations the registrar stores, through the API and the
//! store functions the SIP driver calls.

use masterz::domain::UserId;
use masterz::domain::sip::SipTransport;
use masterz::store::{
    self, Db,
    sip::{NewBinding, Upserted},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, Tenant, TestServer, password_hash, seed_tenant};

both_backends!(
    sip_credentials_are_write_only_unique_and_scoped,
    registrations_show_the_companys_current_bindings,
);

/// Sends a request and returns the status and the JSON body (`null` when there is none).
pub(crate) async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = s.req(method, path, token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A token for a new user of `company` whose role has only `permissions`.
pub(crate) async fn token_with(
    db: &Db,
    company: masterz::domain::CompanyId,
    permissions: &[&str],
) -> String {
    use masterz::domain::{Permission, PermissionSet};
    let token = format!("mzt_test_limited_{company}_{}", permissions.join("_"));
    let mut tx = db.begin().await.unwrap();
    let perms = PermissionSet::new(permissions.iter().map(|p| Permission::parse(p).unwrap()));
    let role = store::users::create_role(
        &mut tx.ex(),
        company,
        &format!("only {permissions:?}"),
        &perms,
    )
    .await
    .unwrap();
    let email = format!("limited{}@{company}.example.com", role.id);
    let user = store::users::create_user(
        &mut tx.ex(),
        company,
        &store::users::NewUser {
            role_id: role.id,
            name: "Limited",
            email: &email,
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
        "t",
        &masterz::secrets::token_hash(&token),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    token
}

async fn sip_credentials_are_write_only_unique_and_scoped(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let b = seed_tenant(s.store(), "b").await;
    let secret = "sip-PLAINTEXT-pw-1";
    let path = format!("/api/v1/users/{}/sip-credentials", a.agent);
    let mut bodies = Vec::new();

    let (st, user) = call(
        &s,
        Method::PUT,
        &path,
        &a.admin_token,
        Some(json!({"username": "alice.1", "password": secret})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{user}");
    assert_eq!(user["sip_username"], "alice.1");
    assert_eq!(user["id"], a.agent.0);
    bodies.push(user.to_string());
    for p in [
        format!("/api/v1/users/{}", a.agent),
        "/api/v1/users".into(),
        "/api/v1/audit-logs".into(),
    ] {
        let (st, body) = call(&s, Method::GET, &p, &a.admin_token, None).await;
        assert_eq!(st, StatusCode::OK);
        bodies.push(body.to_string());
    }
    assert!(
        bodies[2].contains("alice.1"),
        "the user list shows the SIP username"
    );
    for body in &bodies {
        assert!(
            !body.contains("PLAINTEXT"),
            "SIP password in a response: {body}"
        );
    }
    let audit: Value = serde_json::from_str(&bodies[3]).unwrap();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["entity_type"] == "user" && e["changes"]["sip_username"] == "alice.1"),
        "audited: {audit}"
    );

    // The registrar's lookup: by username alone, password decrypted.
    let state = &s.server.as_ref().unwrap().state;
    let lookup = |name: &'static str| async move {
        let mut c = state.db.conn().await.unwrap();
        store::sip::account_by_username(&mut c.ex(), &state.keyring, name)
            .await
            .unwrap()
    };
    let login = lookup("alice.1").await.expect("account");
    assert_eq!(
        (login.company_id, login.company_slug.as_str(), login.user_id),
        (a.company, "a", a.agent)
    );
    assert_eq!(login.user_name, "agent");
    assert_eq!(login.password.expose(), secret);
    assert!(
        !format!("{login:?}").contains("PLAINTEXT"),
        "Debug redacts the password"
    );
    assert!(
        lookup("ALICE.1").await.is_none(),
        "usernames are case-sensitive"
    );

    // Usernames are unique across companies: 409, and B's user keeps none.
    let b_path = format!("/api/v1/users/{}/sip-credentials", b.agent);
    let (st, body) = call(
        &s,
        Method::PUT,
        &b_path,
        &b.admin_token,
        Some(json!({"username": "alice.1", "password": "another-password"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("taken"),
        "{body}"
    );
    let (_, b_user) = call(
        &s,
        Method::GET,
        &format!("/api/v1/users/{}", b.agent),
        &b.admin_token,
        None,
    )
    .await;
    assert_eq!(b_user["sip_username"], Value::Null);
    // Setting again replaces the password, same username or a new one.
    let (st, _) = call(
        &s,
        Method::PUT,
        &path,
        &a.admin_token,
        Some(json!({"username": "alice.1", "password": "sip-second-pw"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        lookup("alice.1").await.unwrap().password.expose(),
        "sip-second-pw"
    );

    // Bad input names the field.
    for (body, field) in [
        (
            json!({"username": "a b", "password": "long-enough"}),
            "username",
        ),
        (
            json!({"username": "", "password": "long-enough"}),
            "username",
        ),
        (
            json!({"username": "x".repeat(65), "password": "long-enough"}),
            "username",
        ),
        (json!({"username": "ok", "password": "short"}), "password"),
    ] {
        let (st, err) = call(&s, Method::PUT, &path, &a.admin_token, Some(body)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().starts_with(field),
            "{err}"
        );
    }
    let (st, _) = call(
        &s,
        Method::PUT,
        &path,
        &a.admin_token,
        Some(json!({"username": "ok"})),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // Scoping and permissions: another company's user is 404; agents cannot set; no token 401.
    let good = json!({"username": "bob.b", "password": "long-enough"});
    let (st, _) = call(&s, Method::PUT, &b_path, &a.admin_token, Some(good.clone())).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(&s, Method::DELETE, &b_path, &a.admin_token, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(&s, Method::PUT, &path, &a.agent_token, Some(good.clone())).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let r = s.http.put(s.url(&path)).json(&good).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (st, _) = call(
        &s,
        Method::PUT,
        "/api/v1/users/999999/sip-credentials",
        &a.admin_token,
        Some(good),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // At rest the password is a ciphertext.
    let stored: Vec<String> = match s.store() {
        Db::Sqlite(p) => sqlx::query_scalar("SELECT password FROM sip_accounts")
            .fetch_all(p)
            .await
            .unwrap(),
        Db::Postgres(p) => sqlx::query_scalar("SELECT password FROM sip_accounts")
            .fetch_all(p)
            .await
            .unwrap(),
    };
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].starts_with("v1.") && !stored[0].contains("sip-second-pw"),
        "{stored:?}"
    );

    // Clearing: 204, gone from the user view and the registrar, idempotent.
    let (st, _) = call(&s, Method::DELETE, &path, &a.admin_token, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, user) = call(
        &s,
        Method::GET,
        &format!("/api/v1/users/{}", a.agent),
        &a.admin_token,
        None,
    )
    .await;
    assert_eq!(user["sip_username"], Value::Null);
    assert!(lookup("alice.1").await.is_none());
    let (st, _) = call(&s, Method::DELETE, &path, &a.admin_token, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    // Now B may have the name.
    let (st, _) = call(
        &s,
        Method::PUT,
        &b_path,
        &b.admin_token,
        Some(json!({"username": "alice.1", "password": "b-password"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);

    if backend == Backend::Sqlite {
        let dir = s.data_dir();
        let db = s.stop().await;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("masterz.db")
            {
                let bytes = std::fs::read(&path).unwrap();
                for needle in [secret.as_bytes(), b"sip-second-pw", b"b-password"] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "plaintext in {}",
                        path.display()
                    );
                }
            }
        }
        drop(db);
    }
}

fn binding(
    t: &Tenant,
    user: UserId,
    contact: &'static str,
    expires_at: i64,
) -> NewBinding<'static> {
    NewBinding {
        company: t.company,
        user,
        aor: "sip:alice@masterz",
        contact,
        source: "198.51.100.7:5062",
        transport: SipTransport::Udp,
        user_agent: Some("Zoiper 5"),
        call_id: "reg-call-1",
        cseq: 1,
        expires_at,
        instance_id: None,
        reg_id: None,
        q: None,
    }
}

// The registrar writes bindings (the store functions are its interface); the API lists them.
async fn registrations_show_the_companys_current_bindings(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let db = s.store();
    let keyring = &s.server.as_ref().unwrap().state.keyring;
    let a = seed_tenant(db, "a").await;
    let b = seed_tenant(db, "b").await;
    let now = store::now_ms();
    let mut c = db.conn().await.unwrap();
    for (t, user, name) in [
        (&a, a.agent, "alice"),
        (&a, a.admin, "adam"),
        (&b, b.agent, "bert"),
    ] {
        store::sip::set_credentials(&mut c.ex(), keyring, t.company, user, name, "long-enough")
            .await
            .unwrap()
            .unwrap();
    }
    let ws = NewBinding {
        q: Some(0.5),
        transport: SipTransport::Wss,
        user_agent: None,
        ..binding(
            &a,
            a.agent,
            "sip:alice@ws.invalid;transport=ws",
            now + 60_000,
        )
    };
    for nb in [
        binding(&a, a.agent, "sip:alice@198.51.100.7:5062", now + 60_000),
        ws,
        binding(&a, a.admin, "sip:adam@203.0.113.1", now - 1_000), // expired
        binding(&b, b.agent, "sip:bert@192.0.2.1", now + 60_000),
    ] {
        let r = store::sip::upsert_binding(&mut c.ex(), &nb).await.unwrap();
        assert!(matches!(r, Upserted::Stored(_)));
    }
    drop(c);

    // A's unexpired bindings only, with the documented fields; agents (users:read) may list.
    let (st, list) = call(
        &s,
        Method::GET,
        "/api/v1/registrations",
        &a.agent_token,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let items = list
        .as_array()
        .expect("a plain array, like the other unpaged lists");
    assert_eq!(items.len(), 2, "{list}");
    let r = &items[0];
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "aor",
            "contact",
            "expires_at",
            "sip_username",
            "source",
            "transport",
            "updated_at",
            "user_agent",
            "user_id",
            "user_name"
        ]
    );
    assert_eq!(r["user_id"], a.agent.0);
    assert_eq!(
        (r["user_name"].as_str(), r["sip_username"].as_str()),
        (Some("agent"), Some("alice"))
    );
    assert_eq!(r["contact"], "sip:alice@198.51.100.7:5062");
    assert_eq!(
        (r["source"].as_str(), r["transport"].as_str()),
        (Some("198.51.100.7:5062"), Some("udp"))
    );
    assert_eq!(
        (r["aor"].as_str(), r["user_agent"].as_str()),
        (Some("sip:alice@masterz"), Some("Zoiper 5"))
    );
    assert_eq!(
        r["expires_at"],
        json!(masterz::domain::Timestamp(now + 60_000).to_rfc3339())
    );
    assert!(r["updated_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (
            items[1]["transport"].as_str(),
            items[1]["user_agent"].clone()
        ),
        (Some("wss"), Value::Null)
    );
    let text = list.to_string();
    assert!(
        !text.contains("bert") && !text.contains("adam"),
        "other companies and expired bindings: {text}"
    );

    let (_, b_list) = call(
        &s,
        Method::GET,
        "/api/v1/registrations",
        &b.admin_token,
        None,
    )
    .await;
    assert_eq!(b_list.as_array().unwrap().len(), 1, "{b_list}");
    assert_eq!(b_list[0]["sip_username"], "bert");
    let r = s
        .http
        .get(s.url("/api/v1/registrations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let no_users_read = token_with(db, a.company, &["customers:read"]).await;
    let (st, _) = call(
        &s,
        Method::GET,
        "/api/v1/registrations",
        &no_users_read,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Un-registering, and removing the credentials, empties the list.
    let mut c = db.conn().await.unwrap();
    assert!(
        store::sip::remove_binding(
            &mut c.ex(),
            a.company,
            a.agent,
            "sip:alice@ws.invalid;transport=ws"
        )
        .await
        .unwrap()
    );
    let (_, list) = call(
        &s,
        Method::GET,
        "/api/v1/registrations",
        &a.admin_token,
        None,
    )
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (st, _) = call(
        &s,
        Method::DELETE,
        &format!("/api/v1/users/{}/sip-credentials", a.agent),
        &a.admin_token,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, list) = call(
        &s,
        Method::GET,
        "/api/v1/registrations",
        &a.admin_token,
        None,
    )
    .await;
    assert_eq!(list, json!([]));
}
