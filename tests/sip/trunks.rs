//! Registration to a trunk: SIPp plays the provider's registrar, challenging with 401, granting
//! a short expiry so that masterz must refresh.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Backend, TestServer, seed_tenant};
use crate::peers::{self, free_port, sipp::Sipp};

async fn trunks(s: &TestServer, token: &str) -> Vec<Value> {
    let r = s
        .req(Method::GET, "/api/v1/trunks", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_to_a_sipp_registrar_answers_its_challenge_and_refreshes() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let s = TestServer::start_with(Backend::Sqlite, |c| c.sip_trunk_poll_secs = 1)
        .await
        .unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    let port = free_port();
    let provider = Sipp::scenario("trunk_registrar_uas")
        .local_port(port)
        .auth("acme-trunk", "trunk-pass-9")
        .key("grant_expires", "4")
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn();

    // Created with registration off: nothing is sent, the state says so.
    let r = s
        .req(Method::POST, "/api/v1/channel-accounts", &t.admin_token)
        .json(&json!({
            "kind": "sip_trunk",
            "name": "Provider",
            "settings": {"host": "127.0.0.1", "port": port, "register": false,
                         "username": "acme-trunk", "dids": ["+4930123456"]},
            "credentials": {"password": "trunk-pass-9"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        trunks(&s, &t.admin_token).await[0]["registration"]["state"],
        "disabled"
    );

    // Switching it on takes effect without a restart.
    let r = s
        .req(
            Method::PATCH,
            &format!("/api/v1/channel-accounts/{id}"),
            &t.admin_token,
        )
        .json(&json!({
            "settings": {"host": "127.0.0.1", "port": port, "register": true,
                         "username": "acme-trunk", "dids": ["+4930123456"]},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Registered (challenge answered), then refreshed before the 4 s expiry: the scenario ends
    // successfully only after the refresh was accepted.
    let run = provider.wait_async().await;
    run.assert_success();
    let logs = run.log_lines();
    assert!(logs.iter().any(|l| l.contains("refresh")), "{logs:?}");

    let list = trunks(&s, &t.admin_token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["registration"]["state"], "registered", "{list:?}");
    assert!(list[0].get("password").is_none());
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("masterz_trunk_registered{trunk="),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_trunk_fails_with_a_reason_and_a_next_attempt() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.sip_trunk_poll_secs = 1;
        c.sip_t1_ms = 10; // Timer F = 64*T1 = 640 ms
    })
    .await
    .unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    // Nothing listens there: the REGISTER times out (Timer F).
    let port = free_port();
    let r = s
        .req(Method::POST, "/api/v1/channel-accounts", &t.admin_token)
        .json(&json!({
            "kind": "sip_trunk",
            "name": "Nowhere",
            "settings": {"host": "127.0.0.1", "port": port, "register": true, "username": "u"},
            "credentials": {"password": "p-p-p-p-p"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut last = Value::Null;
    for _ in 0..100 {
        let list = trunks(&s, &t.admin_token).await;
        last = list[0]["registration"].clone();
        if last["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["state"], "failed", "{last}");
    assert!(
        last["reason"].as_str().unwrap().contains("timeout"),
        "{last}"
    );
    assert!(
        last["next_attempt_at"].is_string() || last["next_attempt_at"].is_number(),
        "{last}"
    );
}
