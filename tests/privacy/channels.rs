//! The end-user side of the policy (§1.2, §1.3): channel identifiers, public profiles, message
//! content and receipts, public comments, the inbound and outbound integration logs. Signed
//! webhooks go in as Meta and WAHA send them; replies go out to the fake Graph API.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::Backend;
use crate::fake_provider::{FakeProvider, graph_error};
use crate::harness::{Bridge, PAGE_ID, PHONE_NUMBER_ID, WABA_ID, fixture};
use crate::support::{call, eventually, expect, items, masterz, on_db, scalar};

both_backends!(
    p5_identities_are_keyed_by_kind_account_and_external_id,
    p6_public_profile_is_stored_and_refreshed,
    p7_messages_keep_content_attachments_and_receipts,
    p8_public_comments_are_ingested_and_the_pages_own_skipped,
    p11_every_inbound_event_is_logged_and_replays_idempotently,
    p12_every_outbound_call_is_logged_with_status_and_duration,
);

/// A Messenger text from `sender` to the Page `page`.
fn messenger(page: &str, sender: &str, mid: &str, text: &str) -> Vec<u8> {
    json!({"object": "page", "entry": [{"id": page, "time": 1770031204871_i64, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": page}, "timestamp": 1770031204871_i64,
        "message": {"mid": mid, "text": text}}]}]})
    .to_string()
    .into_bytes()
}

/// A WhatsApp Cloud webhook whose `value` holds `extra` (contacts, messages, statuses).
fn whatsapp(extra: Value) -> Vec<u8> {
    let mut value = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID}});
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    json!({"object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}]})
    .to_string()
    .into_bytes()
}

/// A WhatsApp text from `wa_id` with the profile name `name`, sent at `ts` (Unix seconds).
fn wa_text(wa_id: &str, name: &str, wamid: &str, ts: i64, text: &str) -> Vec<u8> {
    whatsapp(json!({
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": ts.to_string(), "type": "text",
            "text": {"body": text}}]}))
}

/// A status webhook for the business's message `wamid`; `failed` carries Meta's error.
fn wa_status(wamid: &str, status: &str, ts: i64) -> Vec<u8> {
    let mut st = json!({"id": wamid, "status": status, "timestamp": ts.to_string(),
        "recipient_id": "4915112345678"});
    if status == "failed" {
        st["errors"] = json!([{"code": 131047, "title": "Re-engagement message",
            "message": "Re-engagement message",
            "error_data": {"details": "More than 24 hours have passed since the customer last replied."}}]);
    }
    whatsapp(json!({ "statuses": [st] }))
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .timestamp_millis()
}

/// Posts each Meta body (signed), asserts 200, and applies them.
async fn meta_all(b: &Bridge, bodies: &[Vec<u8>]) {
    for body in bodies {
        assert_eq!(
            b.meta(body).await,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    b.settle().await;
}

/// The customer `id` through the API.
async fn customer(b: &Bridge, id: i64) -> Value {
    b.get(&format!("/api/v1/customers/{id}")).await
}

/// The identities of customer `id`: (kind, channel account, external id).
async fn identities(b: &Bridge, id: i64) -> Vec<(String, Option<i64>, String)> {
    let c = customer(b, id).await;
    let mut out: Vec<_> = c["identities"]
        .as_array()
        .unwrap_or_else(|| panic!("no identities: {c}"))
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["channel_account_id"].as_i64(),
                i["external_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Polls the conversation's messages until message `id` satisfies `done`.
async fn wait_message(b: &Bridge, conv: i64, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page = b
            .get(&format!("/api/v1/conversations/{conv}/messages?limit=200"))
            .await;
        if let Some(m) = items(&page).into_iter().find(|m| m["id"] == id)
            && done(&m)
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {id}: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replies in `conv` as the agent; returns the queued message's id.
async fn reply(b: &Bridge, conv: i64, text: &str) -> i64 {
    let r = expect(
        &b.s,
        Method::POST,
        &format!("/api/v1/conversations/{conv}/messages"),
        &b.t.agent_token,
        Some(json!({ "text": text })),
        StatusCode::ACCEPTED,
    )
    .await;
    r["id"].as_i64().unwrap()
}

/// How many comments the database holds.
async fn comments(b: &Bridge) -> i64 {
    scalar(
        b.s.store(),
        "SELECT COUNT(*) FROM messages WHERE kind = 'comment'",
    )
    .await
}

/// The newest conversation of the company.
async fn newest_conversation(b: &Bridge) -> i64 {
    let page = b.get("/api/v1/conversations?limit=1").await;
    page["items"][0]["id"].as_i64().expect("a conversation")
}

// P5: end users are known by their channel-side ids — PSID, IGSID, wa_id (with the E.164 phone),
// WhatsApp's business-scoped user id, WAHA chat id — each keyed by (kind, channel account,
// external id): the same PSID on another Page is another identity, the same one again is not.
async fn p5_identities_are_keyed_by_kind_account_and_external_id(backend: Backend) {
    let Some(b) = Bridge::start(backend, None).await else {
        return;
    };
    let other_page = "104857600000777";
    let other = b
        .channel(
            json!({"kind": "messenger", "name": "Second Page", "external_id": other_page,
            "credentials": {"access_token": "EAAB-second-page-token"}}),
        )
        .await;
    let psid = "5551000000000001";
    meta_all(
        &b,
        &[
            messenger(PAGE_ID, psid, "m_p5_1", "hallo"),
            messenger(PAGE_ID, psid, "m_p5_2", "noch einmal"),
            messenger(other_page, psid, "m_p5_3", "andere Seite"),
            fixture("meta/instagram_text.json"),
            fixture("meta/whatsapp_text.json"),
            fixture("meta/whatsapp_bsuid_only.json"),
        ],
    )
    .await;
    assert_eq!(
        b.waha(&fixture("waha/message_text.json")).await,
        StatusCode::OK
    );
    b.settle().await;

    let on_page = b
        .customer("psid", Some(b.messenger), psid)
        .await
        .expect("PSID on the Page");
    let on_other = b
        .customer("psid", Some(other), psid)
        .await
        .expect("PSID on the other Page");
    assert_ne!(on_page, on_other, "one PSID on two Pages is two identities");
    assert_eq!(
        identities(&b, on_page).await,
        [("psid".to_owned(), Some(b.messenger), psid.to_owned())],
        "the second message found the same identity"
    );
    assert_eq!(
        identities(&b, on_other).await,
        [("psid".to_owned(), Some(other), psid.to_owned())]
    );
    let ig = b
        .customer("igsid", Some(b.instagram), "6981243576120458")
        .await
        .expect("IGSID");
    assert_eq!(
        identities(&b, ig).await,
        [(
            "igsid".to_owned(),
            Some(b.instagram),
            "6981243576120458".to_owned()
        )]
    );
    // WhatsApp: the wa_id on its number, the phone (no account) it shares with calls and WAHA.
    let anna = b
        .customer("wa_id", Some(b.whatsapp), "4915112345678")
        .await
        .expect("wa_id");
    let ids = identities(&b, anna).await;
    for want in [
        (
            "wa_id".to_owned(),
            Some(b.whatsapp),
            "4915112345678".to_owned(),
        ),
        ("phone".to_owned(), None, "+4915112345678".to_owned()),
        (
            "waha_chat_id".to_owned(),
            Some(b.waha),
            "4915112345678@c.us".to_owned(),
        ),
    ] {
        assert!(ids.contains(&want), "{want:?} not in {ids:?}");
    }
    let lena = b
        .customer("whatsapp_bsuid", Some(b.whatsapp), "DE.1502576394655843")
        .await
        .expect("a BSUID-only contact");
    assert_eq!(
        identities(&b, lena).await,
        [(
            "whatsapp_bsuid".to_owned(),
            Some(b.whatsapp),
            "DE.1502576394655843".to_owned()
        )]
    );
    // No identity is stored twice.
    let n = scalar(
        b.s.store(),
        "SELECT COUNT(*) FROM customer_identities WHERE external_id = '5551000000000001'",
    )
    .await;
    assert_eq!(n, 2);
    // Through the API, too, a key is unique.
    let body = json!({"identities": [{"kind": "phone", "external_id": "+4915112345678"}]});
    let r = call(
        &b.s,
        Method::POST,
        "/api/v1/customers",
        Some(&b.t.admin_token),
        Some(&body),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

// P6: the display name, picture and locale the channel exposes are stored on the identity (and
// fill the customer's), and refreshed when the channel sends new ones.
async fn p6_public_profile_is_stored_and_refreshed(backend: Backend) {
    let fake = FakeProvider::start().await;
    let Some(b) = Bridge::start(backend, Some(fake.url())).await else {
        return;
    };
    // A new Messenger contact: its public profile is looked up once from the Graph API.
    meta_all(
        &b,
        &[messenger(PAGE_ID, "5551000000000006", "m_p6_1", "hi")],
    )
    .await;
    let c = b
        .customer("psid", Some(b.messenger), "5551000000000006")
        .await
        .unwrap();
    eventually(10, "the Messenger profile arrives", || async {
        customer(&b, c).await["locale"] == "en_US"
    })
    .await;
    let v = customer(&b, c).await;
    assert_eq!(
        (&v["display_name"], &v["avatar_url"], &v["locale"]),
        (
            &json!("Fake User"),
            &json!("https://cdn.example/fb.jpg"),
            &json!("en_US")
        ),
        "{v}"
    );
    let ident = &v["identities"][0];
    assert_eq!(
        (
            &ident["display_name"],
            &ident["avatar_url"],
            &ident["locale"]
        ),
        (
            &json!("Fake User"),
            &json!("https://cdn.example/fb.jpg"),
            &json!("en_US")
        ),
        "{v}"
    );
    // WhatsApp sends the profile name with every message: a new name refreshes the identity.
    meta_all(
        &b,
        &[wa_text(
            "4915100000006",
            "Mia Alt",
            "wamid.p6.1",
            1770033000,
            "eins",
        )],
    )
    .await;
    let mia = b
        .customer("wa_id", Some(b.whatsapp), "4915100000006")
        .await
        .unwrap();
    let name_of = |v: &Value| {
        v["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["kind"] == "wa_id")
            .map(|i| i["display_name"].clone())
            .unwrap()
    };
    let v = customer(&b, mia).await;
    assert_eq!(
        (&v["display_name"], name_of(&v)),
        (&json!("Mia Alt"), json!("Mia Alt"))
    );
    meta_all(
        &b,
        &[wa_text(
            "4915100000006",
            "Mia Neu",
            "wamid.p6.2",
            1770033100,
            "zwei",
        )],
    )
    .await;
    let v = customer(&b, mia).await;
    assert_eq!(name_of(&v), json!("Mia Neu"), "refreshed: {v}");
}

// P7: message text, attachment URLs and the provider's timestamps are stored; the business's
// messages move sent → delivered → read and never back, or to failed with the provider's reason.
async fn p7_messages_keep_content_attachments_and_receipts(backend: Backend) {
    let fake = FakeProvider::start().await;
    let Some(b) = Bridge::start(backend, Some(fake.url())).await else {
        return;
    };
    let ts = 1770033204;
    meta_all(
        &b,
        &[
            wa_text(
                "4915112345678",
                "Anna",
                "wamid.p7.in",
                ts,
                "Bitte um Rückruf 🙂",
            ),
            fixture("meta/messenger_attachments.json"),
        ],
    )
    .await;
    let anna = b
        .customer("wa_id", Some(b.whatsapp), "4915112345678")
        .await
        .unwrap();
    let timeline = b.timeline(anna).await;
    let inbound = timeline
        .iter()
        .find(|i| i["kind"] == "message" && i["direction"] == "in")
        .unwrap_or_else(|| panic!("{timeline:#?}"));
    assert_eq!(inbound["body"], "Bitte um Rückruf 🙂");
    assert_eq!(
        ms(&inbound["at"]),
        ts * 1000,
        "the provider's time: {inbound}"
    );
    let psid = b
        .customer("psid", Some(b.messenger), "7254398172639451")
        .await
        .unwrap();
    let with_files = b.timeline(psid).await;
    let att = with_files
        .iter()
        .find(|i| i["attachments"].as_array().is_some_and(|a| a.len() == 2))
        .unwrap_or_else(|| panic!("{with_files:#?}"));
    let att_text = att["attachments"].to_string();
    assert!(
        att_text.contains("https://scontent.xx.fbcdn.net/")
            && att_text.contains("https://cdn.fbsbx.com/"),
        "attachment URLs kept as references: {att}"
    );

    // A reply: queued, sent with the provider's id, then the receipts.
    let conv = inbound["conversation_id"].as_i64().unwrap();
    let id = reply(&b, conv, "Wir rufen heute an.").await;
    let sent = wait_message(&b, conv, id, |m| m["status"] == "sent").await;
    assert_eq!(sent["body"], "Wir rufen heute an.");
    let wamid = sent["external_id"].as_str().unwrap().to_owned();
    meta_all(&b, &[wa_status(&wamid, "delivered", ts + 10)]).await;
    wait_message(&b, conv, id, |m| m["status"] == "delivered").await;
    meta_all(&b, &[wa_status(&wamid, "read", ts + 20)]).await;
    wait_message(&b, conv, id, |m| m["status"] == "read").await;
    // A late "delivered" does not move it back.
    meta_all(&b, &[wa_status(&wamid, "delivered", ts + 30)]).await;
    let m = wait_message(&b, conv, id, |_| true).await;
    assert_eq!(m["status"], "read", "statuses only move forward");
    let receipts: Vec<(String, i64)> = on_db!(b.s.store(), |c| {
        sqlx::query_as("SELECT status, at FROM message_receipts WHERE external_id = $1 ORDER BY at")
            .bind(&wamid)
            .fetch_all(&mut *c)
            .await
            .unwrap()
    });
    assert_eq!(
        receipts,
        [
            ("delivered".to_owned(), (ts + 10) * 1000),
            ("read".to_owned(), (ts + 20) * 1000)
        ],
        "each receipt with the provider's time"
    );
    // Another reply that Meta later reports as failed: failed, with Meta's code and reason.
    let id2 = reply(&b, conv, "Noch eine Frage?").await;
    let sent2 = wait_message(&b, conv, id2, |m| m["status"] == "sent").await;
    meta_all(
        &b,
        &[wa_status(
            sent2["external_id"].as_str().unwrap(),
            "failed",
            ts + 40,
        )],
    )
    .await;
    let failed = wait_message(&b, conv, id2, |m| m["status"] == "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("131047") && error.contains("Re-engagement"),
        "the provider's reason: {failed}"
    );
}

// P8: public comments on the Page's posts and on Instagram media land in the commenter's
// timeline as comments; the Page's (or account's) own comments are skipped, so nothing loops.
async fn p8_public_comments_are_ingested_and_the_pages_own_skipped(backend: Backend) {
    let Some(b) = Bridge::start(backend, None).await else {
        return;
    };
    meta_all(
        &b,
        &[
            fixture("meta/page_feed_comment_add.json"),
            fixture("meta/instagram_comment.json"),
        ],
    )
    .await;
    assert_eq!(comments(&b).await, 2);
    let commenter = b
        .customer("psid", Some(b.messenger), "8142953760418825")
        .await
        .expect("the commenter");
    let items = b.timeline(commenter).await;
    let comment = items
        .iter()
        .find(|i| i["message_kind"] == "comment")
        .unwrap_or_else(|| panic!("{items:#?}"));
    assert_eq!(comment["body"], "Wann habt ihr wieder geöffnet?");
    assert_eq!(comment["direction"], "in");
    assert_eq!(customer(&b, commenter).await["display_name"], "Jonas Weber");
    // The Page's and the Instagram account's own comments: logged, not stored, no customer.
    let logged = scalar(b.s.store(), "SELECT COUNT(*) FROM integration_logs").await;
    meta_all(
        &b,
        &[
            fixture("meta/page_feed_comment_by_page.json"),
            fixture("meta/instagram_comment_by_account.json"),
        ],
    )
    .await;
    assert_eq!(comments(&b).await, 2, "own comments are not ingested");
    assert!(
        b.customer("psid", Some(b.messenger), PAGE_ID)
            .await
            .is_none()
    );
    let ignored = scalar(
        b.s.store(),
        &format!("SELECT COUNT(*) FROM integration_logs WHERE id > {logged} AND state = 'ignored'"),
    )
    .await;
    assert_eq!(ignored, 2, "both logged as ignored");
}

// P11: every inbound Meta and WAHA event — accepted or refused — is an integration_logs row
// with its body, and a row replays idempotently: a lost message comes back once, never twice.
async fn p11_every_inbound_event_is_logged_and_replays_idempotently(backend: Backend) {
    let Some(b) = Bridge::start(backend, None).await else {
        return;
    };
    let body = messenger(PAGE_ID, "5551000000000011", "m_p11_1", "bitte loggen");
    meta_all(&b, &[body.clone(), fixture("meta/whatsapp_text.json")]).await;
    assert_eq!(
        b.waha(&fixture("waha/message_text.json")).await,
        StatusCode::OK
    );
    // A forged one: refused, and logged too.
    let forged = masterz::messaging::signature::meta_header(b"not-the-secret", &body);
    assert_eq!(b.meta_signed(&body, &forged).await, StatusCode::FORBIDDEN);
    b.settle().await;
    let rows: Vec<(i64, String, Option<String>, String)> = on_db!(b.s.store(), |c| {
        sqlx::query_as(
            "SELECT id, provider, request_body, state FROM integration_logs \
             WHERE direction = 'in' ORDER BY id",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap()
    });
    let states: Vec<(&str, &str)> = rows.iter().map(|r| (r.1.as_str(), r.3.as_str())).collect();
    assert_eq!(
        states,
        [
            ("meta", "processed"),
            ("meta", "processed"),
            ("waha", "processed"),
            ("meta", "rejected")
        ],
        "{rows:?}"
    );
    assert!(
        rows[0]
            .2
            .as_deref()
            .is_some_and(|b| b.contains("bitte loggen")),
        "the event's body is kept for replay: {:?}",
        rows[0]
    );
    // The company sees its rows through the API.
    let logs = b.get("/api/v1/integration-logs?direction=in").await;
    assert!(items(&logs).len() >= 3, "{logs}");

    // The message is lost (say, by an operator's mistake); `masterz replay` brings it back.
    let gone = on_db!(b.s.store(), |c| {
        sqlx::query("DELETE FROM messages WHERE external_id = 'm_p11_1'")
            .execute(&mut *c)
            .await
            .unwrap()
            .rows_affected()
    });
    assert_eq!(gone, 1);
    let id = rows[0].0.to_string();
    let (ok, out, err) = masterz(&b.s.db, &["replay", &id]);
    assert!(ok, "masterz replay {id}: {out}{err}");
    let count = || {
        scalar(
            b.s.store(),
            "SELECT COUNT(*) FROM messages WHERE external_id = 'm_p11_1'",
        )
    };
    assert_eq!(count().await, 1, "replay restored it: {out}");
    let (ok, out, err) = masterz(&b.s.db, &["replay", &id]);
    assert!(ok, "{out}{err}");
    assert_eq!(count().await, 1, "a second replay adds nothing: {out}");
    // The same delivery twice (Meta retries) is one message too.
    meta_all(&b, &[fixture("meta/whatsapp_text.json")]).await;
    assert_eq!(scalar(b.s.store(), "SELECT COUNT(*) FROM messages WHERE channel_account_id IS NOT NULL AND direction = 'in' AND body LIKE 'Hallo!%'").await, 1);
}

// P12: every call to a provider — sends, read receipts, profile look-ups, a rate-limited try —
// is an integration_logs row with the HTTP status and its duration.
async fn p12_every_outbound_call_is_logged_with_status_and_duration(backend: Backend) {
    let fake = FakeProvider::start().await;
    let Some(b) = Bridge::start(backend, Some(fake.url())).await else {
        return;
    };
    meta_all(
        &b,
        &[messenger(PAGE_ID, "5551000000000012", "m_p12_1", "hallo")],
    )
    .await;
    let conv = newest_conversation(&b).await;
    fake.push_with_headers(
        "/messages",
        429,
        &[("retry-after", "1")],
        graph_error(613, None, "Calls to this api have exceeded the rate limit."),
    );
    let id = reply(&b, conv, "Antwort").await;
    wait_message(&b, conv, id, |m| m["status"] == "sent").await;
    let r = call(
        &b.s,
        Method::POST,
        &format!("/api/v1/conversations/{conv}/read"),
        Some(&b.t.agent_token),
        None,
        &[],
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
    // Profile GET, two sends (429, 200), the read receipt: each call the fake saw is a row.
    let seen = fake.wait_requests(4, Duration::from_secs(15)).await;
    eventually(10, "every call logged", || async {
        items(
            &b.get("/api/v1/integration-logs?direction=out&limit=200")
                .await,
        )
        .len()
            >= seen.len()
    })
    .await;
    let logs = items(
        &b.get("/api/v1/integration-logs?direction=out&limit=200")
            .await,
    );
    assert_eq!(
        logs.len(),
        fake.requests().len(),
        "one row per call: {logs:#?}"
    );
    for l in &logs {
        assert!(l["status"].is_i64(), "status: {l}");
        assert!(
            l["duration_ms"].as_i64().is_some_and(|d| d >= 0),
            "duration: {l}"
        );
        assert_eq!(l["provider"], "meta", "{l}");
    }
    let statuses: Vec<i64> = logs.iter().filter_map(|l| l["status"].as_i64()).collect();
    assert!(
        statuses.contains(&429) && statuses.contains(&200),
        "{statuses:?}"
    );
    assert!(
        logs.iter().any(|l| l["method"] == "GET"),
        "the profile look-up"
    );
    assert!(
        logs.iter()
            .filter(|l| l["method"] == "POST"
                && l["endpoint"]
                    .as_str()
                    .is_some_and(|e| e.ends_with("/messages")))
            .count()
            >= 3,
        "two sends and the read receipt: {logs:#?}"
    );
}
