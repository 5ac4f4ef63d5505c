//! AI reply suggestions against a fake OpenAI-compatible server: what the model is given (P17),
//! what is stored (P10), opt-in per channel, retries, quota, plan limits, redaction.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::ai_harness::{Ai, KEY_A, KEY_B, chat};
use crate::both_backends;
use crate::common::Backend;
use crate::fake_openai::FakeOpenAi;

// P17: OpenAI gets only the last N messages of the conversation and the relevant knowledge-base
// passages, and only for channels the business opted in; nothing of other conversations or
// companies; the company's own base URL wins over MASTERZ_OPENAI_URL; the key is redacted.
async fn p17_openai_gets_only_the_last_messages_and_relevant_passages_of_opted_in_channels(
    backend: Backend,
) {
    let fake = FakeOpenAi::start().await;
    let fake_b = FakeOpenAi::start().await;
    let Some(ai) = Ai::start(backend, &fake.base, |_| {}).await else {
        return;
    };
    let (a, b) = (&ai.a, &ai.b);
    let on = ai.page(a, "710000000000001").await;
    let off = ai.page(a, "710000000000002").await;
    let other = ai.page(b, "710000000000003").await;

    // Off by default, and the switch is for admins and audited.
    let ch = ai
        .ok(
            Method::GET,
            &format!("/api/v1/channel-accounts/{on}"),
            &a.admin_token,
            None,
        )
        .await;
    assert_eq!(ch["ai_suggestions"], false, "{ch:#}");
    let (status, _) = ai
        .call(
            Method::PUT,
            &format!("/api/v1/channel-accounts/{on}/ai"),
            &a.agent_token,
            Some(json!({"suggestions": true})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ai
        .call(
            Method::PUT,
            &format!("/api/v1/channel-accounts/{other}/ai"),
            &a.admin_token,
            Some(json!({"suggestions": true})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another company's channel");
    ai.opt_in(a, on, false).await;
    ai.opt_in(b, other, false).await;
    let audit = ai
        .ok(
            Method::GET,
            "/api/v1/audit-logs?limit=200",
            &a.admin_token,
            None,
        )
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["entity_type"] == "channel_ai" && r["entity_id"] == on),
        "the switch is not audited: {audit:#}"
    );

    // Keys (write-only) and, for B, its own endpoint.
    let settings = ai
        .ok(
            Method::PUT,
            "/api/v1/ai/settings",
            &a.admin_token,
            Some(json!({"api_key": KEY_A})),
        )
        .await;
    assert_eq!(settings["api_key_set"], true);
    assert_eq!(settings["effective_base_url"], fake.base.as_str());
    assert!(!settings.to_string().contains(KEY_A));
    ai.ok(
        Method::PUT,
        "/api/v1/ai/settings",
        &b.admin_token,
        Some(json!({"api_key": KEY_B, "base_url": fake_b.base, "model": "b-model"})),
    )
    .await;

    ai.knowledge(
        a,
        "Opening hours",
        "The shop opens at 9 on weekdays and at 10 on Saturday.\n\nOn Sunday it is closed.",
    )
    .await;
    ai.knowledge(
        a,
        "Refunds",
        "Refunds are paid within 14 days to the original card.",
    )
    .await;
    ai.knowledge(
        a,
        "Parking",
        "The garage behind the building has 40 spaces.",
    )
    .await;
    ai.knowledge(
        b,
        "Company B hours",
        "B-KB-MARKER: we open at 8 on Saturday.",
    )
    .await;
    let found = ai
        .ok(
            Method::GET,
            "/api/v1/knowledge/search?q=open+on+Saturday%3F",
            &a.admin_token,
            None,
        )
        .await;
    let found = found.as_array().unwrap();
    assert!(
        !found.is_empty()
            && found[0]["content"]
                .as_str()
                .unwrap()
                .contains("Opening hours"),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .all(|p| !p["content"].as_str().unwrap().contains("B-KB-MARKER"))
    );

    // A conversation on the opted-out channel first: no request at all.
    ai.inbound(
        "710000000000002",
        "psid-off",
        &["OFF-CHANNEL-MARKER are you open on Saturday?"],
    )
    .await;
    let off_conv = ai.conversation(a, off, "OFF-CHANNEL-MARKER", 1).await;
    // Another customer on the opted-in channel, and company B's customer.
    ai.inbound(
        "710000000000001",
        "psid-y",
        &["Y-MARKER my refund for order 17?"],
    )
    .await;
    ai.inbound(
        "710000000000003",
        "psid-b",
        &["B-CUSTOMER-MARKER open on Saturday?"],
    )
    .await;
    // The customer whose request is checked: four messages, so the oldest is left out (N = 3).
    ai.inbound(
        "710000000000001",
        "psid-x",
        &[
            "X-FIRST hello",
            "X-SECOND I bought a lamp",
            "X-THIRD it is broken",
            "X-FOURTH are you open on Saturday?",
        ],
    )
    .await;
    let x_conv = ai.conversation(a, on, "X-FOURTH", 4).await;
    let y_conv = ai.conversation(a, on, "Y-MARKER", 1).await;
    let x = ai.settled(a, x_conv, 4).await;
    ai.settled(a, y_conv, 1).await;
    let b_conv = ai.conversation(b, other, "B-CUSTOMER-MARKER", 1).await;
    ai.settled(b, b_conv, 1).await;

    let seen = fake.seen();
    assert_eq!(seen.len(), 5, "A: four suggestions for X, one for Y");
    assert!(seen.iter().all(|r| r.path == "/v1/chat/completions"
        && r.authorization.as_deref() == Some(&*format!("Bearer {KEY_A}"))));
    let request = seen
        .iter()
        .find(|r| r.raw.contains("X-FOURTH"))
        .expect("a request for the fourth message");
    let keys: Vec<&String> = request.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["messages", "model", "n", "store"],
        "{:#}",
        request.body
    );
    assert_eq!(request.body["model"], "gpt-4o-mini");
    assert_eq!(request.body["store"], false);
    let messages = chat(&request.body);
    assert_eq!(
        messages.len(),
        4,
        "instructions + the 3 newest messages: {messages:#?}"
    );
    assert_eq!(messages[0].0, "system");
    assert!(messages[0].1.starts_with(masterz::ai::INSTRUCTIONS));
    assert!(
        messages[0].1.contains("at 10 on Saturday"),
        "the opening-hours passage: {}",
        messages[0].1
    );
    assert!(
        !messages[0].1.contains("garage"),
        "an unrelated passage was sent: {}",
        messages[0].1
    );
    assert_eq!(
        messages[1..]
            .iter()
            .map(|(r, c)| (r.as_str(), c.as_str()))
            .collect::<Vec<_>>(),
        [
            ("user", "X-SECOND I bought a lamp"),
            ("user", "X-THIRD it is broken"),
            ("user", "X-FOURTH are you open on Saturday?")
        ]
    );
    for r in &seen {
        // One customer per request, and nothing of the other channel or company.
        assert!(
            !(r.raw.contains("X-") && r.raw.contains("Y-MARKER")),
            "two conversations in {}",
            r.raw
        );
        for marker in [
            "OFF-CHANNEL-MARKER",
            "B-CUSTOMER-MARKER",
            "B-KB-MARKER",
            KEY_A,
            KEY_B,
        ] {
            assert!(!r.raw.contains(marker), "{marker} leaked into {}", r.raw);
        }
    }
    // Company B's own endpoint, model and key.
    let b_seen = fake_b.seen();
    assert_eq!(b_seen.len(), 1);
    assert_eq!(
        b_seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {KEY_B}"))
    );
    assert_eq!(b_seen[0].body["model"], "b-model");
    assert!(!b_seen[0].raw.contains("X-") && !b_seen[0].raw.contains("at 10 on Saturday"));

    // The opted-out conversation has no suggestion.
    let none = ai
        .ok(
            Method::GET,
            &format!("/api/v1/conversations/{off_conv}/suggestions"),
            &a.agent_token,
            None,
        )
        .await;
    assert_eq!(none, json!([]));

    // P12/P25: every call logged with status and duration, the key redacted.
    let logs = ai.logs(a).await;
    let calls: Vec<&Value> = logs.iter().filter(|l| l["provider"] == "openai").collect();
    assert_eq!(calls.len(), 5, "{logs:#?}");
    for l in &calls {
        assert_eq!(l["status"], 200);
        assert!(l["duration_ms"].is_i64());
        assert!(
            l["request_headers"].to_string().contains("[redacted]"),
            "{l:#}"
        );
    }
    assert!(!serde_json::to_string(&logs).unwrap().contains(KEY_A));
    assert!(
        !serde_json::to_string(&ai.logs(b).await)
            .unwrap()
            .contains(KEY_B)
    );

    // P10: the suggestion keeps exactly the context that was sent.
    let fourth = x
        .iter()
        .find(|s| {
            s["context"].to_string().contains("X-FOURTH")
                && s["context"]["messages"].as_array().unwrap().len() == 3
        })
        .unwrap();
    assert_eq!(fourth["state"], "ready");
    let ctx_texts: Vec<&str> = fourth["context"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        ctx_texts,
        [
            "X-SECOND I bought a lamp",
            "X-THIRD it is broken",
            "X-FOURTH are you open on Saturday?"
        ]
    );
    assert!(
        fourth["context"]["chunks"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Opening hours")
    );
    drop(ai.s.stop().await);
}

// P10: suggestions are stored with their context; the agent accepts (edited) or dismisses them;
// auto-reply sends them; each AI reply is counted.
async fn p10_suggestions_are_stored_with_their_context_and_agents_decide(backend: Backend) {
    let fake = FakeOpenAi::start().await;
    let Some(ai) = Ai::start(backend, &fake.base, |c| {
        c.openai_api_key = Some(masterz::secrets::Secret::new(KEY_A.into()));
    })
    .await
    else {
        return;
    };
    let a = &ai.a;
    let page = ai.page(a, "720000000000001").await;
    ai.opt_in(a, page, false).await;
    ai.inbound(
        "720000000000001",
        "psid-p",
        &["P-ONE where is my parcel?", "P-TWO it was due Monday"],
    )
    .await;
    let conv = ai.conversation(a, page, "P-TWO", 2).await;
    let list = ai.settled(a, conv, 2).await;
    assert!(
        list.iter()
            .all(|s| s["state"] == "ready" && s["model"] == "fake-model-1"),
        "{list:#?}"
    );
    let (newest, older) = (&list[0], &list[1]);
    assert!(
        newest["text"]
            .as_str()
            .unwrap()
            .starts_with("Suggested reply")
    );

    // Accepting with an edit sends the edit; the suggestion cannot be used twice.
    let id = newest["id"].as_i64().unwrap();
    let sent = ai
        .ok(
            Method::POST,
            &format!("/api/v1/suggestions/{id}/accept"),
            &a.agent_token,
            Some(json!({"text": "Edited: it leaves today."})),
        )
        .await;
    assert_eq!(sent["body"], "Edited: it leaves today.");
    assert_eq!(sent["status"], "queued");
    assert_eq!(sent["sender_user_id"], a.agent.0);
    let (status, _) = ai
        .call(
            Method::POST,
            &format!("/api/v1/suggestions/{id}/accept"),
            &a.agent_token,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let older_id = older["id"].as_i64().unwrap();
    let dismissed = ai
        .ok(
            Method::POST,
            &format!("/api/v1/suggestions/{older_id}/dismiss"),
            &a.agent_token,
            None,
        )
        .await;
    assert_eq!(dismissed["state"], "dismissed");
    assert_eq!(dismissed["decided_by"], a.agent.0);
    // Another company sees none of it.
    let (status, _) = ai
        .call(
            Method::POST,
            &format!("/api/v1/suggestions/{older_id}/dismiss"),
            &ai.b.agent_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = ai
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{conv}/suggestions"),
            &ai.b.agent_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Auto-reply: the suggestion goes out as the reply without an agent.
    ai.opt_in(a, page, true).await;
    ai.inbound(
        "720000000000001",
        "psid-p",
        &["P-THREE thanks, and the invoice?"],
    )
    .await;
    let list = ai.settled(a, conv, 3).await;
    assert_eq!(list[0]["state"], "sent", "{:#}", list[0]);
    let reply = list[0]["reply_message_id"].as_i64().unwrap();
    let msgs = ai
        .ok(
            Method::GET,
            &format!("/api/v1/conversations/{conv}/messages?limit=50"),
            &a.admin_token,
            None,
        )
        .await;
    let m = msgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == reply)
        .unwrap();
    assert_eq!(m["body"], list[0]["text"]);
    assert_eq!(m["direction"], "out");
    assert!(m["sender_user_id"].is_null());
    drop(ai.s.stop().await);
}

// 429 with Retry-After is retried after it; `insufficient_quota` is not retried; over the plan's
// AI limit, no request is made and the suggestion says why.
async fn rate_limits_quota_and_plan_limits(backend: Backend) {
    let fake = FakeOpenAi::start().await;
    let Some(ai) = Ai::start(backend, &fake.base, |c| {
        c.openai_api_key = Some(masterz::secrets::Secret::new(KEY_A.into()));
        c.plans = masterz::billing::Plans::parse_env("free:ai_replies=2").unwrap();
    })
    .await
    else {
        return;
    };
    let a = &ai.a;
    let page = ai.page(a, "730000000000001").await;
    ai.opt_in(a, page, false).await;
    fake.push(429, &[("retry-after", "1")], json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}));
    ai.inbound("730000000000001", "psid-r", &["R-ONE hello?"])
        .await;
    let conv = ai.conversation(a, page, "R-ONE", 1).await;
    let started = std::time::Instant::now();
    let s = ai.settled(a, conv, 1).await;
    assert_eq!(s[0]["state"], "ready", "{:#}", s[0]);
    assert_eq!(s[0]["attempts"], 2);
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retried before Retry-After"
    );

    fake.push(429, &[("retry-after", "1")], json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}));
    ai.inbound("730000000000001", "psid-r", &["R-TWO hello again?"])
        .await;
    let s = ai.settled(a, conv, 2).await;
    assert_eq!(s[0]["state"], "failed", "{:#}", s[0]);
    assert!(
        s[0]["reason"]
            .as_str()
            .unwrap()
            .contains("insufficient_quota")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.seen().len(), 3, "insufficient_quota was retried");
    let logs = ai.logs(a).await;
    let statuses: Vec<i64> = logs
        .iter()
        .filter(|l| l["provider"] == "openai")
        .filter_map(|l| l["status"].as_i64())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );

    // P15: one more AI reply fits the plan (2 a month; the failed one did not count), then the
    // suggestions stop with the reason, without a request, while messages still come in.
    ai.inbound("730000000000001", "psid-r", &["R-THREE one more?"])
        .await;
    let s = ai.settled(a, conv, 3).await;
    assert_eq!(s[0]["state"], "ready", "{:#}", s[0]);
    ai.inbound("730000000000001", "psid-r", &["R-FOUR and another?"])
        .await;
    let s = ai.settled(a, conv, 4).await;
    assert_eq!(s[0]["state"], "skipped", "{:#}", s[0]);
    let reason = s[0]["reason"].as_str().unwrap();
    assert!(reason.contains("free") && reason.contains('2'), "{reason}");
    assert!(
        s[0]["context"].is_null(),
        "no context was built: {:#}",
        s[0]
    );
    assert_eq!(fake.seen().len(), 4, "a request over the plan's limit");
    ai.conversation(a, page, "R-FOUR", 4).await;
    drop(ai.s.stop().await);
}

both_backends!(
    p17_openai_gets_only_the_last_messages_and_relevant_passages_of_opted_in_channels,
    p10_suggestions_are_stored_with_their_context_and_agents_decide,
    rate_limits_quota_and_plan_limits,
);
