//! Calls and call groups through the API: the call log with its filters and pages, one call with
//! its events and media, and call groups checked on the way in, audited and kept per company.

use masterz::domain::trunk::TrunkSettings;
use masterz::store::{
    self,
    calls::{CallEnd, MediaFigures, NewCall},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestServer, seed_tenant};
use crate::sip::{call, token_with};

both_backends!(
    call_log_filters_pages_and_detail,
    call_groups_are_checked_audited_and_scoped,
    click_to_call_answers_as_call_control_decides,
);

async fn call_log_filters_pages_and_detail(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let b = seed_tenant(s.store(), "b").await;
    let mut tx = s.store().begin().await.unwrap();
    let customer =
        store::customers::find_or_create_by_phone(&mut tx.ex(), a.company, "+15551230001")
            .await
            .unwrap();
    let new = |direction, agent, at| NewCall {
        customer_id: Some(customer),
        direction,
        from_uri: "sip:+15551230001@provider.example",
        to_uri: "sip:+15559870000@masterz",
        trunk_id: None,
        group_id: None,
        sip_call_id: "call-1@provider",
        agent_user_id: agent,
        started_at: at,
    };
    let mut ids = Vec::new();
    for i in 0..5 {
        let dir = if i == 3 { "out" } else { "in" };
        let agent = (i == 3).then_some(a.agent);
        ids.push(
            store::calls::create(&mut tx.ex(), a.company, &new(dir, agent, 1_000 * i))
                .await
                .unwrap(),
        );
    }
    let answered = ids[4];
    let x = &mut tx.ex();
    store::calls::add_event(
        x,
        a.company,
        answered,
        4_001,
        "ringing",
        Some(a.agent),
        None,
    )
    .await
    .unwrap();
    store::calls::answered(x, a.company, answered, Some(a.agent), 4_500, "PCMU")
        .await
        .unwrap();
    store::calls::add_event(
        x,
        a.company,
        answered,
        4_500,
        "answered",
        Some(a.agent),
        None,
    )
    .await
    .unwrap();
    let media = MediaFigures {
        packets_in: 100,
        packets_out: 99,
        packets_lost: 1,
        jitter_us: 800,
        detail_json: json!({"customer": {"lost": 1, "codec": "PCMU"}}).to_string(),
    };
    let end = CallEnd {
        ended_at: 9_000,
        status: "completed",
        end_reason: "bye",
        hangup_by: Some("agent"),
        sip_status: None,
        media: Some(&media),
    };
    store::calls::ended(x, a.company, answered, &end)
        .await
        .unwrap();
    let missed = CallEnd {
        ended_at: 2_000,
        status: "missed",
        end_reason: "no_answer",
        hangup_by: Some("system"),
        sip_status: Some(480),
        media: None,
    };
    store::calls::ended(x, a.company, ids[1], &missed)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let t = &a.agent_token;
    let list = |query: String| {
        let s = &s;
        async move {
            let (status, body) =
                call(s, Method::GET, &format!("/api/v1/calls{query}"), t, None).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            let ids: Vec<i64> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap())
                .collect();
            (ids, body["next_cursor"].clone())
        }
    };
    let (all, next) = list("".into()).await;
    assert_eq!(all, [ids[4], ids[3], ids[2], ids[1], ids[0]]);
    assert!(next.is_null());
    let (first, next) = list("?limit=2".into()).await;
    assert_eq!(first, [ids[4], ids[3]]);
    let cursor = next.as_str().unwrap().to_owned();
    let (status, body) = call(
        &s,
        Method::GET,
        &format!("/api/v1/calls?limit=2&cursor={cursor}"),
        t,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["id"], ids[2]);
    assert_eq!(list("?status=missed".into()).await.0, [ids[1]]);
    assert_eq!(list("?direction=out".into()).await.0, [ids[3]]);
    assert_eq!(list("?agent=me".into()).await.0, [ids[4], ids[3]]);
    assert_eq!(
        list(format!("?customer_id={customer}&status=completed"))
            .await
            .0,
        [ids[4]]
    );
    for bad in [
        "?status=closed",
        "?direction=sideways",
        "?agent=you",
        "?cursor=abc",
    ] {
        let (status, body) = call(&s, Method::GET, &format!("/api/v1/calls{bad}"), t, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }

    let (status, detail) = call(
        &s,
        Method::GET,
        &format!("/api/v1/calls/{answered}"),
        t,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["status"], "completed");
    assert_eq!(detail["codec"], "PCMU");
    assert_eq!(detail["hangup_by"], "agent");
    assert_eq!(detail["rtp_packets_lost"], 1);
    assert_eq!(
        detail["media"]["customer"]["codec"], "PCMU",
        "media is an object: {detail}"
    );
    assert_eq!(detail["started_at"], "1970-01-01T00:00:04.000Z");
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ringing", "answered"]);
    assert_eq!(detail["events"][0]["user_id"], a.agent.0);
    let (_, m) = call(
        &s,
        Method::GET,
        &format!("/api/v1/calls/{}", ids[1]),
        t,
        None,
    )
    .await;
    assert_eq!(
        (m["sip_status"].clone(), m["media"].clone()),
        (json!(480), Value::Null)
    );

    // Another company sees none of them; a role without customers:read gets 403.
    let (status, body) = call(&s, Method::GET, "/api/v1/calls", &b.admin_token, None).await;
    assert_eq!((status, body["items"].clone()), (StatusCode::OK, json!([])));
    let (status, _) = call(
        &s,
        Method::GET,
        &format!("/api/v1/calls/{answered}"),
        &b.admin_token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let limited = token_with(s.store(), a.company, &["conversations:read"]).await;
    let (status, _) = call(&s, Method::GET, "/api/v1/calls", &limited, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn call_groups_are_checked_audited_and_scoped(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let b = seed_tenant(s.store(), "b").await;
    {
        let ring = &s.server.as_ref().unwrap().state.keyring;
        let mut tx = s.store().begin().await.unwrap();
        for (company, dids) in [
            (a.company, json!(["+15559870000", "+15559870001"])),
            (b.company, json!(["+15550000000"])),
        ] {
            let settings =
                TrunkSettings::from_json(&json!({"host": "sip.example.com", "dids": dids}))
                    .unwrap();
            store::trunks::create_trunk(&mut tx.ex(), ring, company, "Provider", &settings, None)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let t = &a.admin_token;
    let post = |body: Value| {
        let s = &s;
        async move { call(s, Method::POST, "/api/v1/call-groups", t, Some(body)).await }
    };
    let (status, support) = post(json!({"name": "Support"})).await;
    assert_eq!(status, StatusCode::CREATED, "{support}");
    assert_eq!(
        (
            support["ring_timeout_secs"].clone(),
            support["no_answer_status"].clone()
        ),
        (json!(30), json!(480))
    );
    let support_id = support["id"].as_i64().unwrap();
    let (status, sales) = post(json!({
        "name": "Sales", "ring_timeout_secs": 25, "no_answer_status": 486,
        "overflow_group_id": support_id, "members": [a.agent.0, a.admin.0, a.agent.0],
        "dids": ["+1 (555) 987-0000"],
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sales}");
    let sales_id = sales["id"].as_i64().unwrap();
    assert_eq!(
        sales["dids"],
        json!(["+15559870000"]),
        "normalised to E.164"
    );
    assert_eq!(sales["members"].as_array().unwrap().len(), 2);
    assert_eq!(sales["overflow_group_id"], support_id);

    // Checked on the way in: 422 naming the field, 409 for what is taken; nothing half-made.
    for (body, field) in [
        (json!({"name": " "}), "name"),
        (
            json!({"name": "X", "ring_timeout_secs": 4}),
            "ring_timeout_secs",
        ),
        (
            json!({"name": "X", "ring_timeout_secs": 601}),
            "ring_timeout_secs",
        ),
        (
            json!({"name": "X", "no_answer_status": 399}),
            "no_answer_status",
        ),
        (
            json!({"name": "X", "no_answer_status": 700}),
            "no_answer_status",
        ),
        (
            json!({"name": "X", "dids": ["+15559870001", "030 123"]}),
            "dids[1]",
        ),
        (json!({"name": "X", "dids": ["+15550000000"]}), "dids[0]"),
        (
            json!({"name": "X", "members": [a.agent.0, b.agent.0]}),
            "members[1]",
        ),
        (
            json!({"name": "X", "overflow_group_id": 999_999}),
            "overflow_group_id",
        ),
    ] {
        let (status, body) = post(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")),
            "{field}: {message}"
        );
    }
    let (status, _) = post(json!({"name": "X", "bogus": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = post(json!({"name": "Sales"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = post(json!({"name": "Y", "dids": ["+15559870000"]})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, list) = call(&s, Method::GET, "/api/v1/call-groups", t, None).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Sales", "Support"],
        "refused creations left nothing behind"
    );

    // PATCH: absent fields stay, members and DIDs replace, null clears the overflow.
    let path = format!("/api/v1/call-groups/{sales_id}");
    let (status, patched) = call(
        &s,
        Method::PATCH,
        &path,
        t,
        Some(json!({"members": [a.agent.0], "dids": ["+15559870001"], "overflow_group_id": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["members"], json!([a.agent.0]));
    assert_eq!(patched["dids"], json!(["+15559870001"]));
    assert_eq!(
        (
            patched["overflow_group_id"].clone(),
            patched["ring_timeout_secs"].clone()
        ),
        (Value::Null, json!(25))
    );
    let support_path = format!("/api/v1/call-groups/{support_id}");
    let (status, body) = call(
        &s,
        Method::PATCH,
        &support_path,
        t,
        Some(json!({"overflow_group_id": support_id})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = call(
        &s,
        Method::PATCH,
        &support_path,
        t,
        Some(json!({"name": "Sales"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = call(&s, Method::GET, &path, t, None).await;
    assert_eq!(
        (status, body["name"].clone()),
        (StatusCode::OK, json!("Sales"))
    );

    // Another company: 404 everywhere; an agent without channels:write: 403.
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"name": "Mine"}));
        let (status, _) = call(&s, method.clone(), &path, &b.admin_token, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
    }
    let (_, theirs) = call(&s, Method::GET, "/api/v1/call-groups", &b.admin_token, None).await;
    assert_eq!(theirs, json!([]));
    let (status, _) = call(&s, Method::GET, &path, &a.agent_token, None).await;
    assert_eq!(status, StatusCode::OK, "agents read groups (channels:read)");
    let (status, _) = call(&s, Method::DELETE, &path, &a.agent_token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = call(&s, Method::DELETE, &path, t, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&s, Method::GET, &path, t, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Audited: two creations, two changes (the refused ones are not), one deletion.
    let (_, audit) = call(
        &s,
        Method::GET,
        "/api/v1/audit-logs?entity_type=call_group&limit=50",
        t,
        None,
    )
    .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "update", "create", "create"], "{audit}");
}

async fn click_to_call_answers_as_call_control_decides(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let a = seed_tenant(s.store(), "a").await;
    let t = &a.agent_token;
    let click = |body: Value| {
        let s = &s;
        async move { call(s, Method::POST, "/api/v1/calls", t, Some(body)).await }
    };
    for body in [
        json!({}),
        json!({"to": "+15551234567", "extension": "1001"}),
        json!({"to": " "}),
        json!({"extension": "no spaces"}),
        json!({"number": "+15551234567"}),
    ] {
        let (status, answer) = click(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    // The agent's own softphone rings first: without one, 409.
    let (status, answer) = click(json!({"to": "+15551234567"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    // A softphone registered for the agent (a UDP socket of the test); the admin has an
    // extension but no softphone.
    let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let source = phone.local_addr().unwrap().to_string();
    {
        let ring = &s.server.as_ref().unwrap().state.keyring;
        let mut c = s.store().conn().await.unwrap();
        let x = &mut c.ex();
        for (user, name) in [(a.agent, "1001"), (a.admin, "1002")] {
            store::sip::set_credentials(x, ring, a.company, user, name, "long-enough")
                .await
                .unwrap();
        }
        let contact = format!("sip:1001@{source}");
        let binding = store::sip::NewBinding {
            company: a.company,
            user: a.agent,
            aor: "sip:1001@masterz",
            contact: &contact,
            source: &source,
            transport: masterz::domain::sip::SipTransport::Udp,
            user_agent: None,
            call_id: "reg-1",
            cseq: 1,
            expires_at: store::now_ms() + 600_000,
            instance_id: None,
            reg_id: None,
            q: None,
        };
        store::sip::upsert_binding(x, &binding).await.unwrap();
    }
    for (body, status_wanted, field) in [
        (
            json!({"to": "not a number"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "to",
        ),
        (
            json!({"to": "+15551234567"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "to",
        ),
        (
            json!({"extension": "9999"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "extension",
        ),
        (json!({"extension": "1002"}), StatusCode::CONFLICT, ""),
    ] {
        let (status, answer) = click(body.clone()).await;
        assert_eq!(status, status_wanted, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }

    // The admin registers too: calling extension 1002 places an internal call.
    {
        let mut c = s.store().conn().await.unwrap();
        let binding = store::sip::NewBinding {
            company: a.company,
            user: a.admin,
            aor: "sip:1002@masterz",
            contact: "sip:1002@127.0.0.1:9",
            source: "127.0.0.1:9",
            transport: masterz::domain::sip::SipTransport::Udp,
            user_agent: None,
            call_id: "reg-2",
            cseq: 1,
            expires_at: store::now_ms() + 600_000,
            instance_id: None,
            reg_id: None,
            q: None,
        };
        store::sip::upsert_binding(&mut c.ex(), &binding)
            .await
            .unwrap();
    }
    let (status, placed) = click(json!({"extension": "1002"})).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(
        (
            placed["direction"].clone(),
            placed["status"].clone(),
            placed["agent_user_id"].clone()
        ),
        (json!("internal"), json!("ringing"), json!(a.agent.0))
    );
    let id = placed["id"].as_i64().unwrap();
    let (status, _) = call(&s, Method::GET, &format!("/api/v1/calls/{id}"), t, None).await;
    assert_eq!(status, StatusCode::OK);
    // Reading calls does not let one place them.
    let reader = token_with(s.store(), a.company, &["customers:read"]).await;
    let (status, _) = call(
        &s,
        Method::POST,
        "/api/v1/calls",
        &reader,
        Some(json!({"extension": "1002"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
