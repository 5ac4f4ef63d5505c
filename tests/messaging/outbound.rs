//! Replies out, against the fake Graph API and WAHA: success, a rate limit then success, an
//! expired token, a 131047 failure that arrives later in a status webhook, WAHA, templates,
//! read receipts, and another company's conversation.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, seed_tenant};
use crate::fake_provider::{FakeProvider, graph_error};
use crate::harness::*;

/// The conversation the customer of `fixture_file` wrote in (after posting it).
async fn conversation_after(b: &Bridge, fixture_file: &str) -> i64 {
    let body = fixture(fixture_file);
    let status = if fixture_file.starts_with("waha/") {
        b.waha(&body).await
    } else {
        b.meta(&body).await
    };
    assert_eq!(status, StatusCode::OK);
    b.settle().await;
    let page = b.get("/api/v1/conversations?limit=1").await;
    page["items"][0]["id"].as_i64().expect("a conversation")
}

async fn reply(b: &Bridge, conversation: i64, body: Value) -> reqwest::Response {
    b.s.req(
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/messages"),
        &b.t.agent_token,
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

/// Polls the message until `done` says so (the outbox worker runs in the background).
async fn wait_message(
    b: &Bridge,
    conversation: i64,
    id: i64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = b
            .get(&format!("/api/v1/conversations/{conversation}/messages"))
            .await;
        if let Some(m) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            && done(m)
        {
            return m.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {id} never got there: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sends the fake received (profile look-ups are GETs).
fn posts(fake: &FakeProvider) -> Vec<crate::fake_provider::Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

async fn out_logs(b: &Bridge) -> Vec<Value> {
    let v = b.get("/api/v1/integration-logs?direction=out").await;
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn messenger_reply_then_rate_limit_then_expired_token(backend: Backend) {
    let fake = FakeProvider::start().await;
    let Some(b) = Bridge::start(backend, Some(fake.url())).await else {
        return;
    };
    let conv = conversation_after(&b, "meta/messenger_text.json").await;
    let view = b.get(&format!("/api/v1/conversations/{conv}")).await;
    assert!(view["reply_window"]["open"].is_boolean(), "{view}");

    // Success: queued at once, then sent with the provider's id.
    let r = reply(&b, conv, json!({"text": "Danke, wir melden uns!"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let queued: Value = r.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    let id = queued["id"].as_i64().unwrap();
    let sent = wait_message(&b, conv, id, |m| m["status"] == "sent").await;
    assert!(sent["external_id"].as_str().unwrap().starts_with("m_"));
    let sends = posts(&fake);
    let req = &sends[0];
    assert!(
        req.path.ends_with(&format!("/{PAGE_ID}/messages")),
        "{}",
        req.path
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {PAGE_TOKEN}").as_str())
    );
    assert_eq!(req.body["recipient"]["id"], "7254398172639451");
    assert_eq!(req.body["message"]["text"], "Danke, wir melden uns!");
    let logs = out_logs(&b).await;
    assert_eq!(logs.iter().filter(|l| l["method"] == "POST").count(), 1);
    assert!(logs.iter().all(|l| l["status"] == 200), "{logs:#?}");
    assert!(
        !format!("{logs:?}").contains(PAGE_TOKEN),
        "token redacted in the log"
    );
    // The new Messenger contact's profile was looked up once (P6), the token in the header only.
    let gets: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert!(gets[0].path.ends_with("/7254398172639451"));
    assert!(
        gets[0]
            .query
            .as_deref()
            .is_some_and(|q| !q.contains("access_token"))
    );
    assert_eq!(
        gets[0].header("authorization"),
        Some(format!("Bearer {PAGE_TOKEN}").as_str())
    );
    let customer = b
        .customer("psid", Some(b.messenger), "7254398172639451")
        .await
        .unwrap();
    let profile = b.get(&format!("/api/v1/customers/{customer}")).await;
    assert_eq!(profile["display_name"], "Fake User");
    assert_eq!(profile["locale"], "en_US");

    // 429 with Retry-After, then success: one message, two calls, both logged.
    fake.push_with_headers(
        "/messages",
        429,
        &[("retry-after", "1")],
        graph_error(613, None, "Calls to this api have exceeded the rate limit."),
    );
    let r = reply(&b, conv, json!({"text": "Noch eine Frage?"})).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = wait_message(&b, conv, id, |_| true).await;
    assert_eq!(
        m["status"], "queued",
        "still queued while it waits out Retry-After"
    );
    wait_message(&b, conv, id, |m| m["status"] == "sent").await;
    assert_eq!(posts(&fake).len(), 3);
    let logs = out_logs(&b).await;
    assert_eq!(logs.iter().filter(|l| l["status"] == 429).count(), 1);

    // An expired token: the message fails and the channel needs reconnection.
    fake.push(
        "/messages",
        401,
        graph_error(
            190,
            Some(463),
            "Error validating access token: Session has expired",
        ),
    );
    let r = reply(&b, conv, json!({"text": "Hallo?"})).await;
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let failed = wait_message(&b, conv, id, |m| m["status"] == "failed").await;
    assert!(
        failed["error"].as_str().unwrap().contains("190"),
        "{failed}"
    );
    let account = b
        .get(&format!("/api/v1/channel-accounts/{}", b.messenger))
        .await;
    assert_eq!(account["status"], "needs_reconnection", "{account}");
    // Further replies are refused until the credentials are replaced.
    assert_eq!(
        reply(&b, conv, json!({"text": "x"})).await.status(),
        StatusCode::CONFLICT
    );
    let r =
        b.s.req(
            Method::PATCH,
            &format!("/api/v1/channel-accounts/{}", b.messenger),
            &b.t.admin_token,
        )
        .json(&json!({"credentials": {"access_token": "EAAB-fresh-token"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "connected");
    assert_eq!(
        reply(&b, conv, json!({"text": "Wieder da"})).await.status(),
        StatusCode::ACCEPTED
    );
}

async fn whatsapp_131047_arrives_later(backend: Backend) {
    let fake = FakeProvider::start().await;
    let Some(b) = Bridge::start(backend, Some(fake.url())).await else {
        return;
    };
    let conv = conversation_after(&b, "meta/whatsapp_text.json").await;
    let r = reply(&b, conv, json!({"text": "Ihr Paket ist unterwegs."})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let sent = wait_message(&b, conv, id, |m| m["status"] == "sent").await;
    let wamid = sent["external_id"].as_str().unwrap().to_owned();
    let req = &fake.requests()[0];
    assert!(req.path.ends_with(&format!("/{PHONE_NUMBER_ID}/messages")));
    assert_eq!(req.body["to"], "4915112345678");
    assert_eq!(req.body["type"], "text");
    // Meta reports the failure later, in a status webhook naming our wamid.
    let status = String::from_utf8(fixture("meta/whatsapp_status_failed.json")).unwrap();
    let original = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQ2QjkxMEYzQzVENUI4RTYxOAA=";
    assert!(status.contains(original));
    assert_eq!(
        b.meta(status.replace(original, &wamid).as_bytes()).await,
        StatusCode::OK
    );
    b.settle().await;
    let failed = wait_message(&b, conv, id, |m| m["status"] == "failed").await;
    assert!(
        failed["error"].as_str().unwrap().starts_with("131047"),
        "{failed}"
    );

    // A template is the way to write outside the window.
    let r = reply(
        &b,
        conv,
        json!({"template": {"name": "order_update", "language": "de",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "4711"}]}]}}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    wait_message(&b, conv, id, |m| m["status"] == "sent").await;
    let req = fake.requests().last().cloned().unwrap();
    assert_eq!(req.body["type"], "template");
    assert_eq!(req.body["template"]["name"], "order_update");
    // Mark as read: the customer's last message.
    let r =
        b.s.req(
            Method::POST,
            &format!("/api/v1/conversations/{conv}/read"),
            &b.t.agent_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let reqs = fake.wait_requests(3, Duration::from_secs(10)).await;
    assert_eq!(reqs[2].body["status"], "read", "{:?}", reqs[2].body);
    assert!(
        reqs[2].body["message_id"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );
}

async fn waha_reply(backend: Backend) {
    let fake = FakeProvider::start().await;
    let Some(b) = Bridge::start(backend, Some(fake.url())).await else {
        return;
    };
    let conv = conversation_after(&b, "waha/message_text.json").await;
    let r = reply(&b, conv, json!({"text": "Guten Tag!"})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let sent = wait_message(&b, conv, id, |m| m["status"] == "sent").await;
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/api/sendText");
    assert_eq!(req.header("x-api-key"), Some(WAHA_API_KEY));
    assert_eq!(req.body["chatId"], "4915112345678@c.us");
    assert_eq!(req.body["session"], "default");
    // WAHA acks move it on.
    let ack = String::from_utf8(fixture("waha/message_ack_read.json")).unwrap();
    let original = "true_4915112345678@c.us_3EB0F1E2D3C4B5A69788";
    assert!(ack.contains(original));
    let ack = ack.replace(original, sent["external_id"].as_str().unwrap());
    assert_eq!(b.waha(ack.as_bytes()).await, StatusCode::OK);
    b.settle().await;
    wait_message(&b, conv, id, |m| m["status"] == "read").await;
    // Templates are a Cloud API feature.
    let r = reply(
        &b,
        conv,
        json!({"template": {"name": "x", "language": "de"}}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

crate::both_backends!(
    messenger_reply_then_rate_limit_then_expired_token,
    whatsapp_131047_arrives_later,
    waha_reply
);

#[tokio::test]
async fn bad_replies_and_other_companies() {
    let fake = FakeProvider::start().await;
    let Some(b) = Bridge::start(Backend::Sqlite, Some(fake.url())).await else {
        return;
    };
    let conv = conversation_after(&b, "meta/messenger_text.json").await;
    for body in [
        json!({"text": "  "}),
        json!({}),
        json!({"text": "a", "template": {"name": "n", "language": "de"}}),
        json!({"text": "x".repeat(4097)}),
    ] {
        assert_eq!(
            reply(&b, conv, body).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    let r =
        b.s.req(
            Method::POST,
            &format!("/api/v1/conversations/{conv}/messages"),
            &b.t.agent_token,
        )
        .header("content-type", "application/json")
        .body("{\"text\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Another company sees nothing and sends nothing.
    let other = seed_tenant(b.s.store(), "other").await;
    for (method, path) in [
        (
            Method::POST,
            format!("/api/v1/conversations/{conv}/messages"),
        ),
        (
            Method::GET,
            format!("/api/v1/conversations/{conv}/messages"),
        ),
        (Method::POST, format!("/api/v1/conversations/{conv}/read")),
    ] {
        let r =
            b.s.req(method, &path, &other.admin_token)
                .json(&json!({"text": "hi"}))
                .send()
                .await
                .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let logs =
        b.s.req(Method::GET, "/api/v1/integration-logs", &other.admin_token)
            .send()
            .await
            .unwrap();
    assert_eq!(logs.json::<Value>().await.unwrap()["items"], json!([]));
    // An agent may not read the integration log.
    let r =
        b.s.req(Method::GET, "/api/v1/integration-logs", &b.t.agent_token)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A conversation without a messaging channel cannot be replied to.
    let customer = b
        .customer("psid", Some(b.messenger), "7254398172639451")
        .await
        .unwrap();
    let r =
        b.s.req(Method::POST, "/api/v1/conversations", &b.t.agent_token)
            .json(&json!({"customer_id": customer}))
            .send()
            .await
            .unwrap();
    let plain = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    assert_eq!(
        reply(&b, plain, json!({"text": "hi"})).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(posts(&fake).is_empty(), "nothing was sent");
}
