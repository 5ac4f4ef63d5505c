//! Webhooks in: every fixture posted signed as Meta and WAHA send it, then the timeline checked;
//! forged and missing signatures, malformed bodies, duplicates, the verification handshake.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::Backend;
use crate::harness::*;

fn bodies(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i["kind"] == "message")
        .filter_map(|i| i["body"].as_str().map(str::to_owned))
        .collect()
}

async fn post_all(b: &Bridge, files: &[&str]) {
    for f in files {
        let body = fixture(f);
        let status = if f.starts_with("waha/") {
            b.waha(&body).await
        } else {
            b.meta(&body).await
        };
        assert_eq!(status, StatusCode::OK, "{f}");
    }
    b.settle().await;
}

async fn messenger_and_page_comments(backend: Backend) {
    let Some(b) = Bridge::start(backend, None).await else {
        return;
    };
    post_all(
        &b,
        &[
            "meta/messenger_text.json",
            "meta/messenger_attachments.json",
            "meta/messenger_echo.json",
            "meta/messenger_delivery.json",
            "meta/messenger_postback_referral.json",
            "meta/messenger_standby.json",
            "meta/messenger_optin.json",
        ],
    )
    .await;
    let c = b
        .customer("psid", Some(b.messenger), "7254398172639451")
        .await
        .expect("PSID customer");
    let items = b.timeline(c).await;
    let msgs: Vec<&Value> = items.iter().filter(|i| i["kind"] == "message").collect();
    assert!(msgs.len() >= 5, "{items:#?}");
    assert!(
        msgs.iter()
            .any(|m| m["body"].as_str().is_some_and(|t| t.contains('ü'))),
        "unicode text kept"
    );
    assert!(
        msgs.iter()
            .any(|m| m["attachments"].as_array().is_some_and(|a| a.len() == 2)),
        "two attachments"
    );
    assert!(msgs.iter().any(|m| m["message_kind"] == "postback"));
    // The echo is the Page's own message: outbound, and the delivery receipt moved it on.
    let echo = msgs
        .iter()
        .find(|m| m["direction"] == "out")
        .expect("echo stored as outbound");
    assert_eq!(echo["status"], "delivered", "{echo}");
    post_all(&b, &["meta/messenger_read.json"]).await;
    let items = b.timeline(c).await;
    let echo = items
        .iter()
        .find(|m| m["kind"] == "message" && m["direction"] == "out")
        .unwrap();
    assert_eq!(echo["status"], "read");
    // An edit replaces the text of the same message.
    let before = bodies(&items).len();
    post_all(&b, &["meta/messenger_message_edit.json"]).await;
    assert_eq!(
        bodies(&b.timeline(c).await).len(),
        before,
        "an edit adds nothing"
    );

    // Page comments: a comment, a reply, an edit, a removal; the Page's own and non-comments skipped.
    post_all(
        &b,
        &[
            "meta/page_feed_comment_add.json",
            "meta/page_feed_comment_reply.json",
            "meta/page_feed_comment_edited.json",
            "meta/page_feed_comment_by_page.json",
            "meta/page_feed_post.json",
            "meta/page_feed_reaction.json",
            "meta/page_feed_comment_hide.json",
        ],
    )
    .await;
    let commenter = b
        .customer("psid", Some(b.messenger), "8142953760418825")
        .await
        .expect("commenter");
    let items = b.timeline(commenter).await;
    let comments: Vec<&Value> = items
        .iter()
        .filter(|i| i["message_kind"] == "comment")
        .collect();
    assert_eq!(comments.len(), 2, "{items:#?}");
    let customer = b.get(&format!("/api/v1/customers/{commenter}")).await;
    assert_eq!(customer["display_name"], "Jonas Weber");
    post_all(&b, &["meta/page_feed_comment_remove.json"]).await;
    let items = b.timeline(commenter).await;
    assert_eq!(
        items
            .iter()
            .filter(|i| i["message_kind"] == "comment" && i["body"].is_null())
            .count(),
        1,
        "the removed comment lost its text"
    );
    // The batch: 2 entries × 2 messages, two customers, in order.
    post_all(&b, &["meta/messenger_batch.json"]).await;
    let second = b
        .customer("psid", Some(b.messenger), "6031987452210377")
        .await
        .expect("second customer");
    assert_eq!(bodies(&b.timeline(second).await).len(), 2);
    // Nothing went to the failed state; the opt-in was logged as ignored.
    let states = b.log_states().await;
    assert!(
        states.iter().all(|(s, ..)| s != "failed" && s != "pending"),
        "{states:?}"
    );
    assert!(
        states
            .iter()
            .any(|(s, _, e)| s == "ignored" && e.as_deref().is_some_and(|e| e.contains("optin"))),
        "{states:?}"
    );
}

async fn instagram(backend: Backend) {
    let Some(b) = Bridge::start(backend, None).await else {
        return;
    };
    post_all(
        &b,
        &[
            "meta/instagram_text.json",
            "meta/instagram_echo.json",
            "meta/instagram_read.json",
            "meta/instagram_reaction.json",
            "meta/instagram_story_reply.json",
            "meta/instagram_unsupported.json",
            "meta/instagram_comment.json",
            "meta/instagram_comment_direct.json",
            "meta/instagram_live_comment.json",
            "meta/instagram_comment_by_account.json",
        ],
    )
    .await;
    let c = b
        .customer("igsid", Some(b.instagram), "6981243576120458")
        .await
        .expect("IGSID customer");
    let items = b.timeline(c).await;
    let echo = items
        .iter()
        .find(|m| m["kind"] == "message" && m["direction"] == "out")
        .expect("echo");
    assert_eq!(echo["status"], "read", "read{{mid}} moved the echo");
    let msgs = b.messages().await;
    assert!(
        msgs.iter().any(|m| m.reaction.as_deref() == Some("❤️")),
        "reaction stored"
    );
    let comments = msgs.iter().filter(|m| m.kind == "comment").count();
    assert_eq!(
        comments, 3,
        "two comment shapes and a live comment; the account's own skipped"
    );
    post_all(
        &b,
        &["meta/instagram_unreact.json", "meta/instagram_deleted.json"],
    )
    .await;
    let msgs = b.messages().await;
    assert!(
        msgs.iter().all(|m| m.reaction.is_none()),
        "unreact cleared it"
    );
    assert!(
        msgs.iter()
            .any(|m| m.removed_at.is_some() && m.body.is_none()),
        "deleted DM lost its text"
    );
}

async fn whatsapp_cloud(backend: Backend) {
    let Some(b) = Bridge::start(backend, None).await else {
        return;
    };
    post_all(
        &b,
        &[
            "meta/whatsapp_text.json",
            "meta/whatsapp_image.json",
            "meta/whatsapp_document.json",
            "meta/whatsapp_audio.json",
            "meta/whatsapp_video.json",
            "meta/whatsapp_sticker.json",
            "meta/whatsapp_location.json",
            "meta/whatsapp_contacts.json",
            "meta/whatsapp_button_reply.json",
            "meta/whatsapp_list_reply.json",
            "meta/whatsapp_button.json",
            "meta/whatsapp_reply_context.json",
            "meta/whatsapp_unsupported.json",
            "meta/whatsapp_account_update.json",
            "meta/whatsapp_value_errors.json",
        ],
    )
    .await;
    // The number is an identity of its own, so a caller with it is the same customer.
    let c = b
        .customer("phone", None, WA_PHONE)
        .await
        .expect("phone identity");
    assert_eq!(
        b.customer("wa_id", Some(b.whatsapp), "4915112345678").await,
        Some(c)
    );
    let customer = b.get(&format!("/api/v1/customers/{c}")).await;
    assert_eq!(customer["display_name"], "Anna Müller");
    let items = b.timeline(c).await;
    let msgs: Vec<&Value> = items.iter().filter(|i| i["kind"] == "message").collect();
    assert_eq!(msgs.len(), 13, "{items:#?}");
    let kinds: Vec<String> = msgs
        .iter()
        .flat_map(|m| m["attachments"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["type"].as_str().map(str::to_owned))
        .collect();
    for k in [
        "image",
        "document",
        "audio",
        "video",
        "sticker",
        "location",
        "contacts",
        "unsupported",
    ] {
        assert!(kinds.iter().any(|x| x == k), "attachment {k} in {kinds:?}");
    }
    let image = msgs
        .iter()
        .find(|m| m["attachments"][0]["type"] == "image")
        .unwrap();
    assert!(
        image["attachments"][0]["media_id"].is_string(),
        "media is a reference"
    );
    assert_eq!(
        msgs.iter()
            .filter(|m| m["message_kind"] == "postback")
            .count(),
        3
    );

    // Receipts for a message the business sent; a reaction to it; the failure with its reason.
    let wamid = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQ2QjkxMEYzQzVENUI4RTYxOAA=";
    let sent = b.sent_message(b.whatsapp, c, wamid).await;
    post_all(
        &b,
        &[
            "meta/whatsapp_status_delivered.json",
            "meta/whatsapp_reaction.json",
        ],
    )
    .await;
    let m = b.message_by_external(b.whatsapp, wamid).await.unwrap();
    assert_eq!(
        (m.id, m.status.as_str(), m.reaction.as_deref()),
        (sent, "delivered", Some("👍"))
    );
    post_all(&b, &["meta/whatsapp_status_sent.json"]).await;
    assert_eq!(
        b.message_by_external(b.whatsapp, wamid)
            .await
            .unwrap()
            .status,
        "delivered",
        "never backwards"
    );
    post_all(&b, &["meta/whatsapp_status_failed.json"]).await;
    let m = b.message_by_external(b.whatsapp, wamid).await.unwrap();
    assert_eq!(m.status, "failed");
    assert!(
        m.error.as_deref().is_some_and(|e| e.starts_with("131047")),
        "{:?}",
        m.error
    );

    // Business-scoped user ids: keyed on the BSUID, the phone an alias when given.
    post_all(
        &b,
        &[
            "meta/whatsapp_bsuid_only.json",
            "meta/whatsapp_bsuid_with_phone.json",
        ],
    )
    .await;
    let lena = b
        .customer("whatsapp_bsuid", Some(b.whatsapp), "DE.1502576394655843")
        .await
        .expect("BSUID customer");
    assert_ne!(lena, c);
    assert_eq!(
        b.customer("whatsapp_bsuid", Some(b.whatsapp), "DE.1839475610293847")
            .await,
        Some(c),
        "phone alias joined Anna"
    );
}

async fn waha(backend: Backend) {
    let Some(b) = Bridge::start(backend, None).await else {
        return;
    };
    post_all(
        &b,
        &[
            "waha/message_text.json",
            "waha/message_media.json",
            "waha/message_location.json",
            "waha/message_from_me.json",
            "waha/message_any_inbound.json",
            "waha/message_group.json",
            "waha/call_received.json",
            "waha/session_status.json",
        ],
    )
    .await;
    let c = b
        .customer("waha_chat_id", Some(b.waha), "4915112345678@c.us")
        .await
        .expect("chat customer");
    assert_eq!(
        b.customer("phone", None, WA_PHONE).await,
        Some(c),
        "WAHA and calls meet on the number"
    );
    let items = b.timeline(c).await;
    let msgs: Vec<&Value> = items.iter().filter(|i| i["kind"] == "message").collect();
    assert_eq!(
        msgs.len(),
        4,
        "text, media, location, own message; group and message.any skipped: {items:#?}"
    );
    assert_eq!(msgs.iter().filter(|m| m["direction"] == "out").count(), 1);
    let out = "true_4915112345678@c.us_3EB0F1E2D3C4B5A69788";
    if b.message_by_external(b.waha, out).await.is_none() {
        b.sent_message(b.waha, c, out).await;
    }
    post_all(
        &b,
        &[
            "waha/message_ack_device.json",
            "waha/message_ack_read.json",
            "waha/message_ack_pending.json",
        ],
    )
    .await;
    assert_eq!(
        b.message_by_external(b.waha, out).await.unwrap().status,
        "read"
    );
    let account = b.get(&format!("/api/v1/channel-accounts/{}", b.waha)).await;
    assert_eq!(account["status"], "connected");
    assert!(
        account["webhook_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/webhooks/waha/{}", b.waha))
    );
    assert!(account.get("credentials").is_none() && !account.to_string().contains(WAHA_API_KEY));
}

crate::both_backends!(messenger_and_page_comments, instagram, whatsapp_cloud, waha);

#[tokio::test]
async fn forged_missing_and_malformed_are_refused_and_logged() {
    let Some(b) = Bridge::start(Backend::Sqlite, None).await else {
        return;
    };
    let body = fixture("meta/messenger_text.json");
    // Signed with another secret, a signature of other bytes, none at all.
    let forged = masterz::messaging::signature::meta_header(b"not-the-secret", &body);
    assert_eq!(b.meta_signed(&body, &forged).await, StatusCode::FORBIDDEN);
    let other = masterz::messaging::signature::meta_header(APP_SECRET.as_bytes(), b"{}");
    assert_eq!(b.meta_signed(&body, &other).await, StatusCode::FORBIDDEN);
    let r =
        b.s.http
            .post(b.s.url("/webhooks/meta"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Broken JSON, correctly signed.
    assert_eq!(
        b.meta(b"{\"object\":\"page\",\"entry\":[").await,
        StatusCode::BAD_REQUEST
    );
    // WAHA: wrong HMAC, no HMAC, wrong API key next to a right HMAC, an unknown channel.
    let waha = fixture("waha/message_text.json");
    let url = b.s.url(&format!("/webhooks/waha/{}", b.waha));
    let post = |h: Vec<(&'static str, String)>| {
        let mut r = b.s.http.post(&url).body(waha.clone());
        for (k, v) in h {
            r = r.header(k, v);
        }
        r.send()
    };
    let wrong = masterz::messaging::signature::waha_header(b"nope", &waha);
    assert_eq!(
        post(vec![("x-webhook-hmac", wrong)])
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(vec![]).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let right = masterz::messaging::signature::waha_header(WAHA_HMAC_KEY.as_bytes(), &waha);
    assert_eq!(
        post(vec![
            ("x-webhook-hmac", right.clone()),
            ("x-api-key", "wrong".into())
        ])
        .await
        .unwrap()
        .status(),
        StatusCode::FORBIDDEN
    );
    let r =
        b.s.http
            .post(b.s.url("/webhooks/waha/999999"))
            .body(waha.clone())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    b.settle().await;
    assert!(
        b.messages().await.is_empty(),
        "nothing from a rejected request is stored"
    );
    let states = b.log_states().await;
    let rejected: Vec<_> = states.iter().filter(|(s, ..)| s == "rejected").collect();
    assert_eq!(rejected.len(), 8, "every rejection logged: {states:?}");
    assert!(
        rejected.iter().any(|(_, st, _)| *st == Some(401))
            && rejected.iter().any(|(_, st, _)| *st == Some(403))
    );
    assert!(rejected.iter().any(|(_, st, _)| *st == Some(400)));
    // The genuine request still works afterwards.
    assert_eq!(
        post(vec![("x-webhook-hmac", right)])
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_same_event_twice_is_one_message() {
    let Some(b) = Bridge::start(Backend::Sqlite, None).await else {
        return;
    };
    let body = fixture("meta/whatsapp_text.json");
    assert_eq!(b.meta(&body).await, StatusCode::OK);
    b.settle().await;
    assert_eq!(b.meta(&body).await, StatusCode::OK);
    assert_eq!(b.meta(&body).await, StatusCode::OK);
    b.settle().await;
    assert_eq!(b.messages().await.len(), 1);
    // Each delivery is logged; the duplicates say so.
    let states = b.log_states().await;
    assert_eq!(
        states
            .iter()
            .filter(|(s, ..)| s == "processed" || s == "ignored")
            .count(),
        3,
        "{states:?}"
    );
    // Replaying the first row changes nothing either.
    let report = masterz::messaging::process::replay(b.state(), 1)
        .await
        .unwrap();
    assert_eq!(report.added, 0);
    assert_eq!(b.messages().await.len(), 1);
}

#[tokio::test]
async fn verification_handshake() {
    let Some(b) = Bridge::start(Backend::Sqlite, None).await else {
        return;
    };
    let q = |token: &str| {
        b.s.http
            .get(b.s.url("/webhooks/meta"))
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.challenge", "1158201444"),
                ("hub.verify_token", token),
            ])
            .send()
    };
    let r = q(VERIFY_TOKEN).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "1158201444");
    assert_eq!(q("wrong").await.unwrap().status(), StatusCode::FORBIDDEN);
    // A business's own verify token works for its own app.
    b.channel(serde_json::json!({"kind": "messenger", "name": "Own app", "external_id": "555000111",
        "credentials": {"access_token": "t0k3n-own", "app_secret": "own-secret-xyz", "verify_token": "own-verify-abc"}}))
        .await;
    assert_eq!(q("own-verify-abc").await.unwrap().status(), StatusCode::OK);
    // Its events are checked with its own secret.
    let body = br#"{"object":"page","entry":[{"id":"555000111","time":1770031204871,"messaging":[{"sender":{"id":"42"},"recipient":{"id":"555000111"},"timestamp":1770031204871,"message":{"mid":"m_own_1","text":"hi"}}]}]}"#;
    let own = masterz::messaging::signature::meta_header(b"own-secret-xyz", body);
    assert_eq!(b.meta_signed(body, &own).await, StatusCode::OK);
    let none =
        b.s.http
            .get(b.s.url("/webhooks/meta"))
            .send()
            .await
            .unwrap();
    assert_eq!(none.status(), StatusCode::FORBIDDEN);
}

/// P18: integration log rows older than the retention period are pruned, except webhooks not yet
/// processed; recent rows stay.
#[tokio::test]
async fn integration_logs_are_pruned_after_the_retention_period() {
    let Some(b) = Bridge::start(Backend::Sqlite, None).await else {
        return;
    };
    assert_eq!(
        b.meta(&fixture("meta/whatsapp_text.json")).await,
        StatusCode::OK
    );
    b.settle().await;
    let day = 86_400_000;
    let old = masterz::store::now_ms() - 31 * day;
    let row = |state: &'static str| masterz::store::integration_logs::NewLog {
        company_id: Some(b.company()),
        channel_account_id: Some(b.whatsapp),
        direction: "in",
        provider: "meta",
        method: "POST",
        endpoint: "/webhooks/meta".into(),
        status: Some(200),
        duration_ms: None,
        request_headers: None,
        request_body: Some(format!("{{\"old\":\"{state}\"}}")),
        response_body: None,
        error: None,
        state,
        message_id: None,
        created_at: old,
    };
    // The server's own processor would take the planted pending row at any moment (and mark it
    // failed, which is prunable): holding the write gate keeps it out until the checks are done.
    let state = b.state();
    let _gate = state.messaging.gate.turn(&state.db).await;
    {
        let mut tx = b.s.store().begin().await.unwrap();
        masterz::store::integration_logs::insert_many(
            &mut tx.ex(),
            &[row("processed"), row("done"), row("pending")],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(b.log_states().await.len(), 4);
    let pruned = masterz::messaging::prune_logs(b.state()).await.unwrap();
    assert_eq!(pruned, 2, "the two old finished rows");
    let left: Vec<String> = b.log_states().await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        left,
        ["processed", "pending"],
        "the recent row and the unprocessed one stay"
    );
}
