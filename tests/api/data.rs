//! Auditing, credentials, bad input, and customers through the API.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestServer, seed_tenant};

both_backends!(
    metrics_can_require_a_token,
    concurrent_writes_never_fail_on_locks,
    audited_actions_record_ip_and_user_agent,
    credentials_never_leave_in_responses,
    bad_input_gets_a_clear_error_never_500,
    customers_timeline_and_merge_through_the_api,
);

// P13, P25
async fn audited_actions_record_ip_and_user_agent(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let t = &a.admin_token;
    let call = |m: Method, path: String, body: Value| {
        let s = &s;
        async move {
            let r = s.req(m, &path, t).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            if r.status() == StatusCode::NO_CONTENT {
                Value::Null
            } else {
                r.json::<Value>().await.unwrap()
            }
        }
    };
    let role = call(
        Method::POST,
        "/api/v1/roles".into(),
        json!({"name": "viewer", "permissions": ["customers:read"]}),
    )
    .await;
    let role_id = role["id"].as_i64().unwrap();
    call(
        Method::PATCH,
        format!("/api/v1/roles/{role_id}"),
        json!({"permissions": ["customers:read", "audit:read"]}),
    )
    .await;
    let user = call(Method::POST, "/api/v1/users".into(), json!({"name": "Vic", "email": "vic@a.example.com", "password": "a-long-password", "role_id": role_id})).await;
    let user_id = user["id"].as_i64().unwrap();
    call(
        Method::PATCH,
        format!("/api/v1/users/{user_id}"),
        json!({"password": "another-long-password"}),
    )
    .await;
    call(
        Method::DELETE,
        format!("/api/v1/users/{user_id}"),
        Value::Null,
    )
    .await;
    call(
        Method::DELETE,
        format!("/api/v1/roles/{role_id}"),
        Value::Null,
    )
    .await;
    let inv = call(
        Method::POST,
        "/api/v1/invitations".into(),
        json!({"email": "new@a.example.com", "role_id": role_id - 1}),
    )
    .await;
    call(
        Method::DELETE,
        format!("/api/v1/invitations/{}", inv["invitation"]["id"]),
        Value::Null,
    )
    .await;
    let acct = call(
        Method::POST,
        "/api/v1/channel-accounts".into(),
        json!({"kind": "waha", "name": "WAHA", "credentials": {"api_key": "waha-key-PLAINTEXT"}}),
    )
    .await;
    let acct_id = acct["id"].as_i64().unwrap();
    call(
        Method::PATCH,
        format!("/api/v1/channel-accounts/{acct_id}"),
        json!({"credentials": {"api_key": "waha-key-PLAINTEXT-2"}}),
    )
    .await;
    call(
        Method::DELETE,
        format!("/api/v1/channel-accounts/{acct_id}"),
        Value::Null,
    )
    .await;
    call(
        Method::PATCH,
        "/api/v1/company".into(),
        json!({"time_zone": "Europe/Berlin"}),
    )
    .await;

    let log: Value = s
        .req(Method::GET, "/api/v1/audit-logs?limit=200", t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = log["items"].as_array().unwrap();
    let mut seen: Vec<(String, String)> = Vec::new();
    for item in items {
        assert_eq!(item["ip"], "127.0.0.1", "{item}");
        assert_eq!(item["user_agent"], "masterz-tests/1", "{item}");
        assert_eq!(item["actor_id"], a.admin.0, "{item}");
        assert!(
            !item.to_string().contains("PLAINTEXT"),
            "secret in audit log: {item}"
        );
        assert!(
            !item.to_string().contains("a-long-password"),
            "password in audit log: {item}"
        );
        seen.push((
            item["action"].as_str().unwrap().into(),
            item["entity_type"].as_str().unwrap().into(),
        ));
    }
    for (action, entity) in [
        ("create", "role"),
        ("update", "role"),
        ("delete", "role"),
        ("create", "user"),
        ("update", "user"),
        ("delete", "user"),
        ("create", "invitation"),
        ("delete", "invitation"),
        ("create", "channel_account"),
        ("update", "channel_account"),
        ("delete", "channel_account"),
        ("update", "company"),
    ] {
        assert!(
            seen.contains(&(action.into(), entity.into())),
            "no audit row for {action} {entity}: {seen:?}"
        );
    }
    // Filters.
    let only: Value = s
        .req(
            Method::GET,
            "/api/v1/audit-logs?entity_type=role&action=create",
            t,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let bad = s
        .req(Method::GET, "/api/v1/audit-logs?since=yesterday", t)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // Agents cannot read the audit log.
    let r = s
        .req(Method::GET, "/api/v1/audit-logs", &a.agent_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

// P23
async fn credentials_never_leave_in_responses(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let secret = "EAAG-page-token-PLAINTEXT-7c1d";
    let r = s.req(Method::POST, "/api/v1/channel-accounts", &a.admin_token)
        .json(&json!({"kind": "messenger", "name": "Page", "external_id": "10150", "settings": {"page_name": "Shop"},
                      "credentials": {"page_access_token": secret, "app_secret": "app-secret-PLAINTEXT"}}))
        .send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let created = r.text().await.unwrap();
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut bodies = vec![created];
    for path in [
        format!("/api/v1/channel-accounts/{id}"),
        "/api/v1/channel-accounts".into(),
        "/api/v1/audit-logs".into(),
    ] {
        bodies.push(
            s.req(Method::GET, &path, &a.admin_token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    bodies.push(
        s.req(
            Method::PATCH,
            &format!("/api/v1/channel-accounts/{id}"),
            &a.admin_token,
        )
        .json(&json!({"name": "Page 2"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap(),
    );
    for body in &bodies {
        assert!(
            !body.contains("PLAINTEXT"),
            "credential in an API response: {body}"
        );
    }
    assert!(
        bodies[1].contains("page_access_token"),
        "the names of the set fields are shown"
    );
    // The server can still read them (that is what it stores them for).
    let state = &s.server.as_ref().unwrap().state;
    let mut c = state.db.conn().await.unwrap();
    let creds = masterz::store::channels::credentials(&mut c.ex(), &state.keyring, a.company, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.expose()["page_access_token"], secret);
    drop(c);

    if backend == Backend::Sqlite {
        // Nothing of the plaintext is in the database files, the write-ahead log included.
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
                for needle in [secret.as_bytes(), b"PLAINTEXT".as_slice()] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "plaintext found in {}",
                        path.display()
                    );
                }
            }
        }
        drop(db);
    }
}

async fn bad_input_gets_a_clear_error_never_500(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| c.max_body_bytes = 4096).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let t = &a.admin_token;
    let raw = |method: Method, path: &'static str, ctype: Option<&'static str>, body: Vec<u8>| {
        let s = &s;
        async move {
            let mut rb = s.req(method, path, t).body(body);
            if let Some(ct) = ctype {
                rb = rb.header("content-type", ct);
            }
            let r = rb.send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (
                status,
                body["error"]["code"]
                    .as_str()
                    .unwrap_or("<no JSON error body>")
                    .to_owned(),
            )
        }
    };
    let json_ct = Some("application/json");
    type Case = (
        Method,
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        StatusCode,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (Method::POST, "/api/v1/customers", json_ct, b"{\"display_name\":".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (Method::POST, "/api/v1/customers", json_ct, b"\xff\xfe".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        (Method::POST, "/api/v1/customers", json_ct, b"{\"display_name\": 5}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/customers", json_ct, b"{\"nickname\": \"x\"}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/customers", json_ct, b"[]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/customers", None, b"{}".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (Method::POST, "/api/v1/customers", json_ct, format!("{{\"display_name\": \"{}\"}}", "x".repeat(8000)).into_bytes(), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (Method::POST, "/api/v1/roles", json_ct, b"{\"name\": \"r\"}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/roles", json_ct, b"{\"name\": \"r\", \"permissions\": [\"root\"]}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/users", json_ct, b"{\"name\": \"u\", \"email\": \"not-an-email\", \"password\": \"long-enough\", \"role_id\": 1}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/users", json_ct, b"{\"name\": \"u\", \"email\": \"u@x.example.com\", \"password\": \"short\", \"role_id\": 1}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/customers", json_ct, b"{\"identities\": [{\"kind\": \"phone\", \"external_id\": \"0151 123\"}]}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::POST, "/api/v1/customers", json_ct, b"{\"identities\": [{\"kind\": \"psid\", \"external_id\": \"123\"}]}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::PATCH, "/api/v1/company", json_ct, b"{\"time_zone\": \"Mars/Olympus\"}".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (Method::GET, "/api/v1/customers/abc", None, vec![], StatusCode::BAD_REQUEST, "invalid_path"),
        (Method::GET, "/api/v1/customers?limit=lots", None, vec![], StatusCode::BAD_REQUEST, "invalid_query"),
        (Method::GET, "/api/v1/customers/1/timeline?cursor=%%%", None, vec![], StatusCode::BAD_REQUEST, "invalid_cursor"),
        (Method::GET, "/api/v1/conversations?status=closed", None, vec![], StatusCode::BAD_REQUEST, "invalid_query"),
        (Method::GET, "/api/v1/no-such-route", None, vec![], StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/api/v1/customers/999999", None, vec![], StatusCode::NOT_FOUND, "not_found"),
    ];
    for (method, path, ctype, body, want_status, want_code) in cases {
        let (status, code) = raw(method.clone(), path, ctype, body).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{method} {path}"
        );
    }
    // A duplicate is a conflict, not a crash; and nothing was lost on the way.
    let body = json!({"identities": [{"kind": "phone", "external_id": "+49 151 0000 0001"}]});
    let first = s
        .req(Method::POST, "/api/v1/customers", t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = s
        .req(Method::POST, "/api/v1/customers", t)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let list: Value = s
        .req(Method::GET, "/api/v1/customers", t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "the failed create left nothing half-written"
    );
    let metrics = s.metrics().await;
    assert!(
        !metrics.contains("status=\"500\""),
        "a request ended in 500:\n{metrics}"
    );
}

async fn customers_timeline_and_merge_through_the_api(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let t = &a.agent_token;
    let r = s
        .req(Method::POST, "/api/v1/customers", t)
        .json(&json!({"display_name": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let ann: Value = r.json().await.unwrap();
    let ann_id = ann["id"].as_i64().unwrap();
    let caller: Value = s
        .req(Method::POST, "/api/v1/customers", t)
        .json(&json!({"identities": [{"kind": "phone", "external_id": "0049 151 2345 6789"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(caller["identities"][0]["external_id"], "+4915123456789");
    let caller_id = caller["id"].as_i64().unwrap();
    // Two customers, a page of two: the page is exactly full and is the last one.
    let page: Value = s
        .req(Method::GET, "/api/v1/customers?limit=2", t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_null(), "no empty extra page: {page}");
    // Search by the number as people type it.
    for q in ["+49 151 2345 6789", "0151 2345", "23456789"] {
        let found: Value = s
            .req(Method::GET, "/api/v1/customers", t)
            .query(&[("q", q)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(found["items"][0]["id"], caller_id, "search {q:?}");
    }
    let conv: Value = s
        .req(Method::POST, "/api/v1/conversations", t)
        .json(&json!({"customer_id": caller_id, "assignee_id": a.agent}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let note = s
        .req(
            Method::POST,
            &format!("/api/v1/customers/{caller_id}/notes"),
            t,
        )
        .json(&json!({"body": "called about invoice", "conversation_id": conv["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), StatusCode::CREATED);
    let mine: Value = s
        .req(Method::GET, "/api/v1/conversations?assignee=me", t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["items"][0]["id"], conv["id"]);
    let patched: Value = s
        .req(
            Method::PATCH,
            &format!("/api/v1/conversations/{}", conv["id"]),
            t,
        )
        .json(&json!({"status": "resolved", "assignee_id": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (patched["status"].as_str(), patched["assignee_id"].is_null()),
        (Some("resolved"), true)
    );

    // Merging is customers:write, which agents have.
    let merged = s
        .req(
            Method::POST,
            &format!("/api/v1/customers/{ann_id}/merge"),
            t,
        )
        .json(&json!({"source_customer_id": caller_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(merged.status(), StatusCode::OK);
    let merged: Value = merged.json().await.unwrap();
    assert_eq!(merged["moved"]["identities"], 1);
    assert_eq!(
        merged["customer"]["identities"][0]["external_id"],
        "+4915123456789"
    );
    let timeline: Value = s
        .req(
            Method::GET,
            &format!("/api/v1/customers/{ann_id}/timeline"),
            t,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(timeline["items"][0]["kind"], "note");
    assert_eq!(timeline["items"][0]["body"], "called about invoice");
    let old: Value = s
        .req(Method::GET, &format!("/api/v1/customers/{caller_id}"), t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(old["merged_into_id"], ann_id);
    let again = s
        .req(
            Method::POST,
            &format!("/api/v1/customers/{ann_id}/merge"),
            t,
        )
        .json(&json!({"source_customer_id": caller_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // Deleting needs customers:delete, which agents lack; admins have it.
    assert_eq!(
        s.req(Method::DELETE, &format!("/api/v1/customers/{ann_id}"), t)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.req(
            Method::DELETE,
            &format!("/api/v1/customers/{ann_id}"),
            &a.admin_token
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.req(
            Method::GET,
            &format!("/api/v1/customers/{ann_id}/timeline"),
            t
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.req(
            Method::GET,
            &format!("/api/v1/conversations/{}", conv["id"]),
            t
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::NOT_FOUND
    );
}

/// Transactions that read before they write, many at once: SQLite must queue them (BEGIN
/// IMMEDIATE), not fail them with "database is locked".
async fn concurrent_writes_never_fail_on_locks(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let t = a.admin_token.as_str();
    let customer: Value = s
        .req(Method::POST, "/api/v1/customers", t)
        .json(&json!({"display_name": "C"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let role: Value = s
        .req(Method::POST, "/api/v1/roles", t)
        .json(&json!({"name": "r", "permissions": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut requests = Vec::new();
    for i in 0..48 {
        let rb = match i % 3 {
            0 => s
                .req(
                    Method::POST,
                    &format!("/api/v1/customers/{}/notes", customer["id"]),
                    t,
                )
                .json(&json!({"body": format!("note {i}")})),
            1 => s
                .req(Method::PATCH, &format!("/api/v1/roles/{}", role["id"]), t)
                .json(&json!({"name": format!("r{i}")})),
            _ => s
                .req(Method::PATCH, &format!("/api/v1/users/{}", a.agent), t)
                .json(&json!({"name": format!("agent {i}")})),
        };
        requests.push(tokio::spawn(
            async move { rb.send().await.unwrap().status() },
        ));
    }
    for r in requests {
        let status = r.await.unwrap();
        assert!(
            status.is_success(),
            "a concurrent write failed with {status}"
        );
    }
    let timeline: Value = s
        .req(
            Method::GET,
            &format!("/api/v1/customers/{}/timeline?limit=200", customer["id"]),
            t,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        timeline["items"].as_array().unwrap().len(),
        16,
        "every note was stored"
    );
}

async fn metrics_can_require_a_token(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.metrics_token = Some(masterz::secrets::Secret::new("scrape-secret".into()));
    })
    .await
    else {
        return;
    };
    let get = |token: Option<&'static str>| {
        let mut rb = s.http.get(s.url("/metrics"));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        async move { rb.send().await.unwrap() }
    };
    assert_eq!(get(None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some("wrong")).await.status(), StatusCode::UNAUTHORIZED);
    let ok = get(Some("scrape-secret")).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("masterz_http_requests_total")
    );
}
