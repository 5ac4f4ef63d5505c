//! Another company's resources answer 404 and lose nothing.

use crate::common::{Backend, PASSWORD, TestServer, seed_tenant};
use crate::{assert_error, both_backends, get, id_of, ids, post, send};
use masterz::store::{self, customers::Profile};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

both_backends!(other_companys_resources_answer_404,);

async fn other_companys_resources_answer_404(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let db = server.store();
    let a = seed_tenant(db, "a").await;
    let b = seed_tenant(db, "b").await;

    // A's data through the store.
    let (a_cust, a_ident, a_conv, a_note, b_cust, b_conv) = {
        let mut c = db.conn().await.unwrap();
        let named = |n: &str| Profile {
            display_name: Some(n.into()),
            ..Default::default()
        };
        let a_cust = store::customers::create(&mut c.ex(), a.company, &named("Ann of A"))
            .await
            .unwrap();
        let a_ident = store::customers::add_identity(
            &mut c.ex(),
            a.company,
            a_cust.id,
            "phone",
            None,
            "+4915111111111",
            &Profile::default(),
        )
        .await
        .unwrap();
        let a_conv = store::conversations::create(
            &mut c.ex(),
            a.company,
            a_cust.id,
            None,
            Some("A's subject"),
            Some(a.agent),
        )
        .await
        .unwrap();
        let a_note = store::conversations::add_note(
            &mut c.ex(),
            a.company,
            a_cust.id,
            Some(a_conv.id),
            Some(a.admin),
            "A's private note",
        )
        .await
        .unwrap();
        // B's own customer and conversation, for merges and references.
        let b_cust = store::customers::create(&mut c.ex(), b.company, &named("Bob of B"))
            .await
            .unwrap();
        let b_conv =
            store::conversations::create(&mut c.ex(), b.company, b_cust.id, None, None, None)
                .await
                .unwrap();
        (
            a_cust.id, a_ident.id, a_conv.id, a_note.id, b_cust.id, b_conv.id,
        )
    };

    // A's data through the API (each audited).
    let at = a.admin_token.as_str();
    let role = post(
        &server,
        "/api/v1/roles",
        at,
        json!({"name": "a-supervisors", "permissions": ["customers:read", "audit:read"]}),
    )
    .await;
    let a_role = id_of(&role);
    let chan = post(
        &server,
        "/api/v1/channel-accounts",
        at,
        json!({"kind": "messenger", "name": "A page", "external_id": "page-a", "settings": {"greeting": "hi"},
               "credentials": {"page_access_token": "EAAB-secret-of-a"}}),
    )
    .await;
    let a_chan = id_of(&chan);
    assert_eq!(chan["credential_keys"], json!(["page_access_token"]));
    let inv = post(
        &server,
        "/api/v1/invitations",
        at,
        json!({"email": "invitee@a.example.com", "name": "Invitee", "role_id": a_role}),
    )
    .await;
    let a_inv = id_of(&inv["invitation"]);
    let inv_token = inv["token"].as_str().unwrap().to_owned();
    let tok = post(
        &server,
        "/api/v1/api-tokens",
        at,
        json!({"name": "a-integration"}),
    )
    .await;
    let a_tok = id_of(&tok["api_token"]);
    let a_tok_secret = tok["token"].as_str().unwrap().to_owned();
    let audit = get(&server, "/api/v1/audit-logs", at).await;
    let a_audit_ids = ids(&audit);
    assert!(
        a_audit_ids.len() >= 4,
        "role, channel, invitation and token creation are audited: {audit}"
    );
    let a_audit = a_audit_ids[0];
    let a_audit_count = store::audit::count(&mut db.conn().await.unwrap().ex(), a.company)
        .await
        .unwrap();

    // What A sees before B tries anything.
    let snapshot_paths = [
        format!("/api/v1/customers/{a_cust}"),
        format!("/api/v1/customers/{a_cust}/timeline"),
        format!("/api/v1/conversations/{a_conv}"),
        format!("/api/v1/conversations?customer_id={a_cust}"),
        format!("/api/v1/users/{}", a.admin),
        format!("/api/v1/users/{}", a.agent),
        format!("/api/v1/users/{}/logins", a.admin),
        "/api/v1/users".to_owned(),
        format!("/api/v1/roles/{a_role}"),
        "/api/v1/roles".to_owned(),
        format!("/api/v1/channel-accounts/{a_chan}"),
        format!("/api/v1/audit-logs/{a_audit}"),
        "/api/v1/invitations".to_owned(),
        "/api/v1/customers".to_owned(),
    ];
    let mut before = Vec::new();
    for p in &snapshot_paths {
        before.push(get(&server, p, at).await);
    }
    let customer = &before[0];
    assert_eq!(ids(&customer["identities"]), [a_ident]);
    assert_eq!(ids(&before[1]), [a_note]);
    let token_names = |v: &Value| -> Vec<(i64, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| (id_of(t), t["name"].as_str().unwrap().to_owned()))
            .collect()
    };
    let a_tokens_before = token_names(&get(&server, "/api/v1/api-tokens", at).await);
    assert!(a_tokens_before.iter().any(|(id, _)| *id == a_tok));

    // B's admin holds every permission in B, and none of it reaches A.
    let bt = b.admin_token.as_str();
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/customers/{a_cust}"), None),
        (
            Method::PATCH,
            format!("/api/v1/customers/{a_cust}"),
            Some(json!({"display_name": "taken by B", "locale": null})),
        ),
        (Method::DELETE, format!("/api/v1/customers/{a_cust}"), None),
        (
            Method::GET,
            format!("/api/v1/customers/{a_cust}/timeline"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/customers/{a_cust}/timeline?limit=1"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{a_cust}/identities"),
            Some(json!({"kind": "phone", "external_id": "+4915122222222"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/customers/{a_cust}/identities/{a_ident}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/customers/{b_cust}/identities/{a_ident}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{a_cust}/merge"),
            Some(json!({"source_customer_id": b_cust})),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{b_cust}/merge"),
            Some(json!({"source_customer_id": a_cust})),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{a_cust}/notes"),
            Some(json!({"body": "B was here"})),
        ),
        (Method::GET, format!("/api/v1/conversations/{a_conv}"), None),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{a_conv}"),
            Some(json!({"status": "resolved", "subject": "B's now"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{a_conv}"),
            Some(json!({"assignee_id": null})),
        ),
        (Method::GET, format!("/api/v1/users/{}", a.admin), None),
        (
            Method::PATCH,
            format!("/api/v1/users/{}", a.admin),
            Some(json!({"name": "pwned", "avatar_url": null})),
        ),
        (Method::DELETE, format!("/api/v1/users/{}", a.agent), None),
        (Method::DELETE, format!("/api/v1/users/{}", a.admin), None),
        (
            Method::GET,
            format!("/api/v1/users/{}/logins", a.admin),
            None,
        ),
        (Method::GET, format!("/api/v1/roles/{a_role}"), None),
        (
            Method::PATCH,
            format!("/api/v1/roles/{a_role}"),
            Some(json!({"name": "b-owned", "permissions": []})),
        ),
        (Method::DELETE, format!("/api/v1/roles/{a_role}"), None),
        (
            Method::GET,
            format!("/api/v1/channel-accounts/{a_chan}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/channel-accounts/{a_chan}"),
            Some(json!({"name": "B's page", "credentials": {"page_access_token": "EAAB-of-b"}})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/channel-accounts/{a_chan}"),
            None,
        ),
        (Method::GET, format!("/api/v1/audit-logs/{a_audit}"), None),
        (Method::DELETE, format!("/api/v1/invitations/{a_inv}"), None),
        (Method::DELETE, format!("/api/v1/api-tokens/{a_tok}"), None),
    ];
    for (method, path, body) in &attempts {
        let r = send(&server, method.clone(), path, Some(bt), body.as_ref()).await;
        assert_error(
            &r,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("B: {method} {path}"),
        );
    }

    // References to A's rows inside B's bodies are "no such …" (422), never a link across companies.
    let b_agent_role = {
        let mut c = db.conn().await.unwrap();
        store::users::role_by_name(&mut c.ex(), b.company, "agent")
            .await
            .unwrap()
            .unwrap()
            .id
    };
    let references: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/v1/conversations".into(),
            json!({"customer_id": a_cust}),
        ),
        (
            Method::POST,
            "/api/v1/conversations".into(),
            json!({"customer_id": b_cust, "channel_account_id": a_chan}),
        ),
        (
            Method::POST,
            "/api/v1/conversations".into(),
            json!({"customer_id": b_cust, "assignee_id": a.agent}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{b_conv}"),
            json!({"assignee_id": a.agent}),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{b_cust}/notes"),
            json!({"body": "x", "conversation_id": a_conv}),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{b_cust}/identities"),
            json!({"kind": "psid", "external_id": "1234567890", "channel_account_id": a_chan}),
        ),
        (
            Method::POST,
            "/api/v1/customers".into(),
            json!({"identities": [{"kind": "psid", "external_id": "99", "channel_account_id": a_chan}]}),
        ),
        (
            Method::POST,
            "/api/v1/invitations".into(),
            json!({"email": "someone@b.example.com", "role_id": a_role}),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            json!({"name": "X", "email": "x@b.example.com", "password": PASSWORD, "role_id": a_role}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{}", b.agent),
            json!({"role_id": a_role}),
        ),
    ];
    for (method, path, body) in &references {
        let r = send(&server, method.clone(), path, Some(bt), Some(body)).await;
        assert_error(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            &format!("B: {method} {path} {body}"),
        );
    }
    // A failed create leaves nothing behind in B.
    let b_customers = get(&server, "/api/v1/customers", bt).await;
    assert_eq!(ids(&b_customers), [b_cust], "{b_customers}");
    let b_user = get(&server, &format!("/api/v1/users/{}", b.agent), bt).await;
    assert_eq!(b_user["role_id"], b_agent_role);

    // Lists show B only its own.
    let a_emails = [
        a.admin_email.as_str(),
        a.agent_email.as_str(),
        "invitee@a.example.com",
    ];
    let no_leak = |what: &str, v: &Value, a_ids: &[i64]| {
        let text = v.to_string();
        for id in ids(v) {
            assert!(!a_ids.contains(&id), "{what} shows A's {id}: {v}");
        }
        for email in a_emails {
            assert!(!text.contains(email), "{what} shows {email}: {v}");
        }
        for word in [
            "Ann of A",
            "A's",
            "a-supervisors",
            "A page",
            "page-a",
            "a-integration",
            "EAAB",
        ] {
            assert!(!text.contains(word), "{what} shows {word:?}: {v}");
        }
    };
    let lists: Vec<(String, Vec<i64>)> = vec![
        ("/api/v1/customers".into(), vec![a_cust]),
        ("/api/v1/customers?q=Ann".into(), vec![a_cust]),
        ("/api/v1/customers?q=%2B4915111111111".into(), vec![a_cust]),
        (
            format!("/api/v1/conversations?customer_id={a_cust}"),
            vec![a_conv],
        ),
        ("/api/v1/conversations".into(), vec![a_conv]),
        (
            format!("/api/v1/conversations?assignee={}", a.agent),
            vec![a_conv],
        ),
        ("/api/v1/users".into(), vec![a.admin.0, a.agent.0]),
        ("/api/v1/roles".into(), vec![a_role]),
        ("/api/v1/channel-accounts".into(), vec![a_chan]),
        (
            "/api/v1/channel-accounts?kind=messenger".into(),
            vec![a_chan],
        ),
        ("/api/v1/audit-logs".into(), a_audit_ids.clone()),
        (
            format!("/api/v1/audit-logs?entity_type=role&entity_id={a_role}"),
            a_audit_ids.clone(),
        ),
        ("/api/v1/invitations".into(), vec![a_inv]),
        ("/api/v1/api-tokens".into(), vec![a_tok]),
    ];
    for (path, a_ids) in &lists {
        let v = get(&server, path, bt).await;
        no_leak(path, &v, a_ids);
    }
    for path in [
        format!("/api/v1/conversations?customer_id={a_cust}"),
        "/api/v1/customers?q=%2B4915111111111".to_owned(),
    ] {
        let v = get(&server, &path, bt).await;
        assert_eq!(v["items"], json!([]), "{path}: {v}");
    }

    // A lost nothing: every read answers as before, and nothing was audited in A.
    for (p, old) in snapshot_paths.iter().zip(&before) {
        let now = get(&server, p, at).await;
        assert_eq!(&now, old, "A's {p} changed");
    }
    assert_eq!(
        token_names(&get(&server, "/api/v1/api-tokens", at).await),
        a_tokens_before
    );
    let count = store::audit::count(&mut db.conn().await.unwrap().ex(), a.company)
        .await
        .unwrap();
    assert_eq!(
        count, a_audit_count,
        "B's attempts must leave no audit entry in A"
    );
    let mut c = db.conn().await.unwrap();
    let creds = store::channels::credentials(
        &mut c.ex(),
        &server.server.as_ref().unwrap().state.keyring,
        a.company,
        a_chan,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(creds.expose()["page_access_token"], "EAAB-secret-of-a");
    drop(c);
    // A's API token and invitation still work.
    let me = get(&server, "/api/v1/auth/me", &a_tok_secret).await;
    assert_eq!(me["user"]["id"], a.admin.0);
    let accepted = send(
        &server,
        Method::POST,
        "/api/v1/invitations/accept",
        None,
        Some(&json!({"token": inv_token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    assert_eq!(accepted.body["email"], "invitee@a.example.com");
    assert_eq!(accepted.body["role_id"], a_role);
}
