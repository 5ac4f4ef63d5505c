//! Click-to-call from the API: the agent's own phone rings first; when the agent answers, the
//! number is called through the trunk (which challenges), and the two are connected.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::pbx::{Pbx, event_kinds, free_media_port, text};
use crate::peers::{self, free_port, sipp::Sipp};

const NUMBER: &str = "+4930555123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_rings_the_agent_then_the_number() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let trunk_port = free_port();
    let provider = Sipp::scenario("call_trunk_uas_challenge")
        .local_port(trunk_port)
        .auth("click-trunk", "click-pass-3")
        .rtp_echo()
        .media_port(free_media_port())
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn();
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["10.9.9.9/32"],
        &["+15551238888"],
        Some(("click-trunk", "click-pass-3")),
    )
    .await;

    // The seeded agent gets a softphone; the call is started with the agent's own API token.
    let password = "click-agent-sip-1";
    let r = pbx
        .req(
            Method::PUT,
            &format!("/api/v1/users/{}/sip-credentials", pbx.t.agent.0),
        )
        .json(&json!({"username": "clicker", "password": password}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let agent = crate::pbx::Agent {
        user: pbx.t.agent,
        sip_user: "clicker".into(),
        password: password.into(),
    };
    // The company records its calls: a click-to-call through the trunk is recorded too.
    crate::recording::record_company(&pbx, true).await;
    let port = free_port();
    pbx.register(&agent, port).await;
    let phone = Sipp::scenario("call_agent_uas")
        .local_port(port)
        .service(&agent.sip_user)
        .rtp_echo()
        .media_port(free_media_port())
        .key("talk_ms", "3000")
        .calls(1)
        .timeout(Duration::from_secs(30))
        .spawn();

    let r = pbx
        .s
        .req(Method::POST, "/api/v1/calls", &pbx.t.agent_token)
        .json(&json!({ "to": NUMBER }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body:#}");
    let id = body["id"].as_i64().expect("the call's id");

    let phone = phone.wait_async().await;
    let provider = provider.wait_async().await;
    phone.assert_success();
    provider.assert_success();
    assert!(
        phone.logs.contains("invite"),
        "the agent's phone rang first\n{phone}"
    );
    assert!(
        provider.logs.contains(&format!("ruri=sip:{NUMBER}@")),
        "then the number, through the trunk\n{provider}"
    );
    assert!(provider.logs.contains("authorized"), "{provider}");

    let calls = pbx
        .wait_calls(Duration::from_secs(10), "one completed call", |c| {
            c.len() == 1 && c[0]["status"] == "completed"
        })
        .await;
    let c = &calls[0];
    assert_eq!(c["id"], id, "{c:#}");
    assert_eq!(text(c, "direction"), "out", "{c:#}");
    assert_eq!(c["agent_user_id"], pbx.t.agent.0, "{c:#}");
    assert!(c["trunk_id"].is_number(), "{c:#}");
    assert!(c["answered_at"].is_string(), "{c:#}");
    let kinds = event_kinds(c);
    assert!(kinds.iter().any(|k| k == "ringing"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "answered"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "recording_started"), "{kinds:?}");
    let recs = crate::recording::finished_recordings(&pbx, 1).await;
    assert_eq!(recs[0].call_id, id, "{recs:?}");
    assert_eq!(recs[0].status, "complete", "{recs:?}");
}
