//! One customer, two channels: a trunk call from +4915112345678 answered by an agent, then a
//! WhatsApp message from the same number (the signed Cloud API fixture, `wa_id` 4915112345678).
//! Both land in the timeline of one customer, and there is no second customer for the number.

use std::time::Duration;

use masterz::secrets::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::pbx::{CALLER, Pbx, tone_3s};
use crate::peers;

const APP_SECRET: &str = "timeline-app-secret-3c9e";
/// The WhatsApp Business phone number id of the fixture.
const PHONE_NUMBER_ID: &str = "106540352242922";
/// Its WhatsApp Business Account.
const WABA_ID: &str = "102290129340398";

fn whatsapp_fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/messaging/meta/whatsapp_text.json"
    );
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn get(pbx: &Pbx, path: &str) -> Value {
    let r = pbx
        .req(Method::GET, path)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = r.status();
    let text = r.text().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_and_a_whatsapp_message_from_one_number_share_one_timeline() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let pbx = Pbx::start(|c| {
        c.meta_app_secret = Some(Secret::new(APP_SECRET.into()));
        // Nothing is sent here; nothing may reach the real Graph API either.
        c.meta_graph_url = "http://127.0.0.1:9".into();
    })
    .await;

    // A trunk call from CALLER, answered by an agent; the caller hangs up after 2 s.
    let agent = pbx.agent("wa_agent").await;
    let phone = pbx.phone(&agent, true, "call_agent_uas", &[]).await;
    pbx.local_trunk().await;
    let caller = pbx.caller(&tone_3s(), 2000, "1800").run_async().await;
    caller.assert_success();
    let phone = phone.wait_async().await;
    phone.assert_success();
    let calls = pbx
        .wait_calls(Duration::from_secs(15), "one completed call", |c| {
            c.len() == 1 && c[0]["status"] == "completed"
        })
        .await;
    let call = &calls[0];
    assert_eq!(call["agent_user_id"], agent.user.0, "{call:#}");
    let customer = call["customer_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the caller became a customer: {call:#}"));

    // A WhatsApp Cloud API number, then the customer writes from the same number.
    let r = pbx
        .req(Method::POST, "/api/v1/channel-accounts")
        .json(&json!({"kind": "whatsapp_cloud", "name": "WhatsApp", "external_id": PHONE_NUMBER_ID,
            "settings": {"waba_id": WABA_ID}, "credentials": {"access_token": "EAAB-timeline-token"}}))
        .send()
        .await
        .expect("POST /api/v1/channel-accounts");
    let status = r.status();
    let text = r.text().await.expect("channel account body");
    assert_eq!(status, 201, "create the WhatsApp channel: {text}");
    let body = whatsapp_fixture();
    let status = pbx.meta_webhook(APP_SECRET, body).await;
    assert_eq!(status, 200, "the signed webhook is taken");
    let state = &pbx.s.server.as_ref().expect("the server runs").state;
    masterz::messaging::process::run_once(state)
        .await
        .expect("process the stored webhook");

    // One timeline with the call and the message.
    let timeline = pbx.timeline(customer).await;
    assert!(
        timeline
            .iter()
            .any(|i| i["kind"] == "call" && i["id"] == call["id"]),
        "the call is in the timeline: {timeline:#?}"
    );
    let message = timeline
        .iter()
        .find(|i| i["kind"] == "message")
        .unwrap_or_else(|| {
            panic!("the WhatsApp message is in the caller's timeline: {timeline:#?}")
        });
    assert_eq!(message["direction"], "in", "{message:#}");
    assert!(
        message["body"]
            .as_str()
            .is_some_and(|b| b.contains("zurückrufen")),
        "{message:#}"
    );
    // Exactly one customer: the number did not make a second one.
    let all = get(&pbx, "/api/v1/customers?limit=200").await;
    let items = all["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "one customer in the company: {all:#}");
    assert_eq!(items[0]["id"], customer, "{all:#}");
    let found = get(&pbx, &format!("/api/v1/customers?q=%2B{}", &CALLER[1..])).await;
    let found: Vec<i64> = found["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_i64())
        .collect();
    assert_eq!(found, vec![customer], "searching {CALLER}");
    let mut conn = pbx.s.store().conn().await.expect("a connection");
    let phone_identity = masterz::store::customers::find_identity(
        &mut conn.ex(),
        pbx.t.company,
        "phone",
        None,
        CALLER,
    )
    .await
    .expect("read identities")
    .expect("the caller's phone identity");
    assert_eq!(phone_identity.customer_id, customer);
    let ids = masterz::store::customers::identities(&mut conn.ex(), pbx.t.company, customer)
        .await
        .expect("read identities");
    assert!(
        ids.iter()
            .any(|i| i.kind == "wa_id" && i.external_id == CALLER[1..]),
        "the WhatsApp id joined the caller: {ids:?}"
    );
}
