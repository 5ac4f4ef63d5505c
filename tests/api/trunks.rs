//! SIP trunks: settings checked through the channels API, and the trunk list with its
//! registration state.

use masterz::store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestServer, seed_tenant};
use crate::sip::call;

both_backends!(
    trunk_settings_are_checked_on_the_way_in,
    trunks_list_with_registration_state,
);

async fn trunk_settings_are_checked_on_the_way_in(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let t = &a.admin_token;
    let create = |settings: Value, credentials: Option<Value>| {
        let s = &s;
        async move {
            let mut body = json!({"kind": "sip_trunk", "name": "Trunk", "settings": settings});
            if let Some(c) = credentials {
                body["credentials"] = c;
            }
            call(s, Method::POST, "/api/v1/channel-accounts", t, Some(body)).await
        }
    };
    let pw = Some(json!({"password": "trunk-PLAINTEXT"}));
    for (settings, creds, field) in [
        (json!({}), None, "settings.host"),
        (json!({"host": "bad host"}), None, "settings.host"),
        (
            json!({"host": "sip.example.com:5060"}),
            None,
            "settings.host",
        ),
        (
            json!({"host": "h.example", "port": 70000}),
            None,
            "settings.port",
        ),
        (
            json!({"host": "h.example", "transport": "ws"}),
            None,
            "settings.transport",
        ),
        (
            json!({"host": "h.example", "sources": ["10.0.0.0/8", "10.0.0.0/33"]}),
            None,
            "settings.sources[1]",
        ),
        (
            json!({"host": "h.example", "dids": ["030 1234567"]}),
            None,
            "settings.dids[0]",
        ),
        (
            json!({"host": "h.example", "regsiter": true}),
            None,
            "settings.regsiter",
        ),
        (
            json!({"host": "h.example", "register": true}),
            pw.clone(),
            "settings.username",
        ),
        (
            json!({"host": "h.example", "register": true, "username": "u"}),
            None,
            "credentials.password",
        ),
        (
            json!({"host": "h.example"}),
            Some(json!({"password": "p", "token": "x"})),
            "credentials.token",
        ),
        (
            json!({"host": "h.example"}),
            Some(json!({"password": ""})),
            "credentials.password",
        ),
    ] {
        let (st, err) = create(settings.clone(), creds).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{settings}: {err}");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(field),
            "{settings}: expected {field}, got {msg}"
        );
    }
    // Good settings are stored normalised.
    let (st, acct) = create(
        json!({"host": "SIP.Example.com.", "register": true, "username": "acct1",
               "dids": ["+49 30 1234567"], "sources": ["192.0.2.7/24"], "transport": "tls", "port": 5061}),
        pw.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{acct}");
    let id = acct["id"].as_i64().unwrap();
    assert_eq!(acct["settings"]["host"], "sip.example.com");
    assert_eq!(acct["settings"]["dids"], json!(["+49301234567"]));
    assert_eq!(acct["settings"]["sources"], json!(["192.0.2.0/24"]));
    assert_eq!(acct["credential_keys"], json!(["password"]));

    // Updates are checked against what is stored.
    let patch = |body: Value| {
        let s = &s;
        async move {
            call(
                s,
                Method::PATCH,
                &format!("/api/v1/channel-accounts/{id}"),
                t,
                Some(body),
            )
            .await
        }
    };
    let (st, _) = patch(json!({"name": "Renamed"})).await;
    assert_eq!(st, StatusCode::OK);
    let (st, err) = patch(json!({"credentials": {}})).await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "registering needs the password: {err}"
    );
    let (st, err) = patch(json!({"settings": {"host": "h.example", "expires": 10}})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("settings.expires")
    );
    // Settings with registration on, the password already stored: fine.
    let (st, body) =
        patch(json!({"settings": {"host": "192.0.2.10", "register": true, "username": "acct2"}}))
            .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["transport"], "udp");
    // Other kinds keep free-form settings.
    let (st, _) = call(
        &s,
        Method::POST,
        "/api/v1/channel-accounts",
        t,
        Some(json!({"kind": "waha", "name": "W", "settings": {"anything": [1, 2]}})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
}

// The trunk driver of the running server registers trunks with `register` on and writes their
// state; these assertions hold whether it has tried yet or not. The mapping of stored states is
// tested in the store suite.
async fn trunks_list_with_registration_state(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let b = seed_tenant(s.store(), "b").await;
    let new_trunk = |token: &str, name: &str, settings: Value, creds: Option<Value>| {
        let s = &s;
        let token = token.to_owned();
        let mut body = json!({"kind": "sip_trunk", "name": name, "settings": settings});
        if let Some(c) = creds {
            body["credentials"] = c;
        }
        async move {
            let (st, acct) = call(
                s,
                Method::POST,
                "/api/v1/channel-accounts",
                &token,
                Some(body),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED, "{acct}");
            acct["id"].as_i64().unwrap()
        }
    };
    let reg = new_trunk(&a.admin_token, "Provider", json!({"host": "sip.example.invalid", "register": true,
        "username": "acct1", "dids": ["+4930123456"], "sources": ["192.0.2.0/24", "2001:db8::/32"], "recording": true}),
        Some(json!({"password": "trunk-PLAINTEXT"}))).await;
    let plain = new_trunk(
        &a.admin_token,
        "Static",
        json!({"host": "[2001:db8::5]", "port": 5080}),
        None,
    )
    .await;
    let b_trunk = new_trunk(
        &b.admin_token,
        "B",
        json!({"host": "b.example.invalid"}),
        None,
    )
    .await;
    // A row from before settings were checked.
    let legacy = {
        let mut c = s.store().conn().await.unwrap();
        store::channels::create(
            &mut c.ex(),
            a.company,
            "sip_trunk",
            "Broken",
            None,
            &json!({"port": "x"}),
            None,
        )
        .await
        .unwrap()
        .id
    };

    let list = |token: String| {
        let s = &s;
        async move {
            let (st, v) = call(s, Method::GET, "/api/v1/trunks", &token, None).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            v
        }
    };
    // Agents have channels:read.
    let v = list(a.agent_token.clone()).await;
    assert!(!v.to_string().contains("PLAINTEXT"), "{v}");
    let trunks = v
        .as_array()
        .expect("a plain array, like the other unpaged lists");
    assert_eq!(trunks.len(), 3, "{v}");
    let t = &trunks[0];
    let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "dids",
            "expires",
            "host",
            "id",
            "name",
            "port",
            "recording",
            "register",
            "registration",
            "sources",
            "transport",
            "username"
        ]
    );
    assert_eq!(t["id"], reg);
    assert_eq!(
        (
            t["name"].as_str(),
            t["host"].as_str(),
            t["transport"].as_str()
        ),
        (Some("Provider"), Some("sip.example.invalid"), Some("udp"))
    );
    assert_eq!(
        (
            t["port"].clone(),
            t["register"].clone(),
            t["username"].clone()
        ),
        (Value::Null, json!(true), json!("acct1"))
    );
    assert_eq!(
        (
            t["dids"].clone(),
            t["recording"].clone(),
            t["expires"].clone()
        ),
        (json!(["+4930123456"]), json!(true), json!(3600))
    );
    assert_eq!(t["sources"], json!(["192.0.2.0/24", "2001:db8::/32"]));
    let mut reg_keys: Vec<&str> = t["registration"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    reg_keys.sort_unstable();
    assert_eq!(
        reg_keys,
        ["next_attempt_at", "reason", "registered_until", "state"]
    );
    let state = t["registration"]["state"].as_str().unwrap();
    assert!(
        ["registering", "failed"].contains(&state),
        "a host that does not resolve: {t}"
    );
    assert_eq!(
        (trunks[1]["host"].as_str(), trunks[1]["port"].as_u64()),
        (Some("[2001:db8::5]"), Some(5080))
    );
    assert_eq!(
        trunks[1]["registration"],
        json!({"state": "disabled", "reason": null, "registered_until": null, "next_attempt_at": null})
    );
    assert_eq!(trunks[2]["id"], legacy);
    assert_eq!(trunks[2]["registration"]["state"], "failed");
    let reason = trunks[2]["registration"]["reason"].as_str().unwrap();
    assert!(reason.contains("settings.host"), "{reason}");

    // Scoping: B sees only its own; no token is 401; no channels:read is 403.
    let v = list(b.admin_token.clone()).await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["id"], b_trunk);
    let r = s.http.get(s.url("/api/v1/trunks")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let no_channels = crate::sip::token_with(s.store(), a.company, &["users:read"]).await;
    let (st, _) = call(&s, Method::GET, "/api/v1/trunks", &no_channels, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Another company's trunk cannot be changed; a deleted trunk leaves the list.
    let (st, _) = call(
        &s,
        Method::PATCH,
        &format!("/api/v1/channel-accounts/{b_trunk}"),
        &a.admin_token,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(
        &s,
        Method::DELETE,
        &format!("/api/v1/channel-accounts/{reg}"),
        &a.admin_token,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let ids: Vec<i64> = list(a.admin_token.clone())
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [plain, legacy]);
}
