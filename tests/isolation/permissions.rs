//! Every route checks a permission; lists page stably.

use crate::common::{Backend, TestServer, password_hash, seed_tenant};
use crate::{both_backends, get, id_of, ids, post, send};
use masterz::domain::{Permission, PermissionSet};
use masterz::store::{self, users::NewUser};
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

both_backends!(every_route_checks_a_permission, list_pagination_is_stable,);

// P3
async fn every_route_checks_a_permission(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let db = server.store();
    let t = seed_tenant(db, "p").await;
    // A user whose role allows nothing.
    let nobody_token = format!("mzt_test_nobody_{}", t.company);
    {
        let mut tx = db.begin().await.unwrap();
        let role = store::users::create_role(
            &mut tx.ex(),
            t.company,
            "nothing",
            &PermissionSet::new(Vec::<Permission>::new()),
        )
        .await
        .unwrap();
        let user = store::users::create_user(
            &mut tx.ex(),
            t.company,
            &NewUser {
                role_id: role.id,
                name: "Nobody",
                email: "nobody@p.example.com",
                password_hash: password_hash(),
                avatar_url: None,
            },
        )
        .await
        .unwrap();
        store::auth::create_token(
            &mut tx.ex(),
            t.company,
            user.id,
            "test",
            &masterz::secrets::token_hash(&nobody_token),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let me = get(&server, "/api/v1/auth/me", &nobody_token).await;
    assert_eq!(me["permissions"], json!([]), "{me}");

    let res = server
        .http
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = Vec::new();
    let mut public = Vec::new();
    let mut failures = Vec::new();
    for (template, item) in paths {
        for (verb, op) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(verb.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            if op.get("security") == Some(&json!([{}])) {
                public.push(format!("{method} {template}"));
                continue;
            }
            // Every path parameter (`{id}`, `{identity_id}`) becomes 1.
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
            let what = format!("{method} {path}");

            let anon = send(&server, method.clone(), &path, None, body.as_ref()).await;
            let anon_ok = anon.status == StatusCode::UNAUTHORIZED
                && anon.body["error"]["code"] == "unauthorized"
                && anon
                    .headers
                    .get(WWW_AUTHENTICATE)
                    .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer"));
            if !anon_ok {
                failures.push(format!(
                    "{what} without credentials: {} {:?} {}",
                    anon.status,
                    anon.headers.get(WWW_AUTHENTICATE),
                    anon.body
                ));
            }

            let r = send(
                &server,
                method.clone(),
                &path,
                Some(&nobody_token),
                body.as_ref(),
            )
            .await;
            if path == "/api/v1/auth/me" {
                if r.status != StatusCode::OK {
                    failures.push(format!(
                        "{what} needs only a login: {} {}",
                        r.status, r.body
                    ));
                }
            } else if r.status != StatusCode::FORBIDDEN || r.body["error"]["code"] != "forbidden" {
                failures.push(format!(
                    "{what} without permissions: {} {}",
                    r.status, r.body
                ));
            }
            checked.push(what);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} operations misbehave:\n{}",
        failures.len(),
        checked.len(),
        failures.join("\n")
    );
    assert!(
        checked.len() >= 25,
        "only {} operations checked: {checked:?}",
        checked.len()
    );
    assert!(
        checked.iter().any(|c| c == "GET /api/v1/auth/me"),
        "{checked:?}"
    );
    for p in [
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/logout",
        "POST /api/v1/invitations/accept",
        "GET /healthz",
        "GET /readyz",
    ] {
        assert!(
            public.iter().any(|x| x == p),
            "{p} should be documented as public: {public:?}"
        );
    }
    // The sweep touched nothing.
    let audit = store::audit::count(&mut db.conn().await.unwrap().ex(), t.company)
        .await
        .unwrap();
    assert_eq!(audit, 0);
}

async fn list_pagination_is_stable(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(server.store(), "a").await;
    let at = a.admin_token.as_str();

    let mut created = Vec::new();
    for i in 0..7 {
        created.push(id_of(
            &post(
                &server,
                "/api/v1/customers",
                at,
                json!({"display_name": format!("Customer {i}")}),
            )
            .await,
        ));
    }
    let newest_first: Vec<i64> = created.iter().rev().copied().collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/customers?limit=3&cursor={c}"),
            None => "/api/v1/customers?limit=3".to_owned(),
        };
        let page = get(&server, &path, at).await;
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        let items = ids(&page);
        assert!(items.len() <= 3, "{page}");
        seen.extend(items);
        match &page["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            Value::Null => break,
            other => panic!("next_cursor is {other}"),
        }
    }
    assert_eq!(seen, newest_first, "every customer once, newest first");
    assert_eq!(pages, 3);

    for bad in ["abc", "-", "1e3"] {
        let r = send(
            &server,
            Method::GET,
            &format!("/api/v1/customers?limit=3&cursor={bad}"),
            Some(at),
            None,
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "cursor {bad}: {}",
            r.body
        );
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }

    // The timeline of one customer: five notes, two at a time.
    let cust = created[0];
    let mut notes = Vec::new();
    for i in 0..5 {
        notes.push(id_of(
            &post(
                &server,
                &format!("/api/v1/customers/{cust}/notes"),
                at,
                json!({"body": format!("note {i}")}),
            )
            .await,
        ));
    }
    let newest_first: Vec<i64> = notes.iter().rev().copied().collect();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/customers/{cust}/timeline?limit=2");
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let page = get(&server, &path, at).await;
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        for item in items {
            assert_eq!(item["kind"], "note", "{item}");
        }
        seen.extend(ids(&page));
        match &page["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            Value::Null => break,
            other => panic!("next_cursor is {other}"),
        }
    }
    assert_eq!(seen, newest_first, "every note once, newest first");
    assert_eq!(pages, 3);
    for bad in ["abc", "1", "MTpib2d1czoy"] {
        let r = send(
            &server,
            Method::GET,
            &format!("/api/v1/customers/{cust}/timeline?cursor={bad}"),
            Some(at),
            None,
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "timeline cursor {bad}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "invalid_cursor", "{}", r.body);
    }
}
