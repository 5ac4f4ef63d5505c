//! Billing (§4 of the policy): what each company uses is counted per month against its plan
//! (P15), and the server's operator sees counts across companies, never anyone's data (P16).
//! Messages come in as signed Messenger webhooks and go out through the reply API; calls and
//! recordings are ended through the store functions the telephony engine calls.

use masterz::billing;
use masterz::domain::CompanyId;
use masterz::messaging::signature::meta_header;
use masterz::secrets::Secret;
use masterz::store::{self, companies::CompanyPatch, usage};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, Tenant, TestServer, seed_tenant};
use crate::harness::APP_SECRET;
use crate::support::{call, expect, on_db};

both_backends!(
    p15_usage_is_counted_once_per_company_and_month_and_over_a_limit_only_ai_stops,
    p16_operator_statistics_carry_counts_only,
);

/// A small free plan, so that a test goes over every limit quickly.
const SMALL_FREE: &str = "free:messages_in=2,messages_out=1,ai_replies=3,call_seconds=60,recorded_seconds=2,active_users=1";
const OPERATOR_TOKEN: &str = "operator-token-for-tests-3c9e1";

/// A server whose Meta webhooks are signed with [`APP_SECRET`] and whose Graph API is a closed
/// port (replies are queued and counted; sending them fails, which billing does not care about).
async fn server(backend: Backend, operator_token: Option<&str>) -> Option<TestServer> {
    let token = operator_token.map(|t| Secret::new(t.to_owned()));
    TestServer::start_with(backend, |c| {
        c.meta_app_secret = Some(Secret::new(APP_SECRET.into()));
        c.meta_graph_url = "http://127.0.0.1:9".into();
        c.plans = billing::Plans::parse_env(SMALL_FREE).expect("a valid plan");
        c.operator_token = token;
    })
    .await
}

/// A Messenger channel account of `t`'s company for the page `page`.
async fn messenger(s: &TestServer, t: &Tenant, page: &str) -> i64 {
    let body = json!({"kind": "messenger", "name": "Page", "external_id": page,
        "credentials": {"access_token": "EAAB-page-token-billing"}});
    let v = expect(
        s,
        Method::POST,
        "/api/v1/channel-accounts",
        &t.admin_token,
        Some(body),
        StatusCode::CREATED,
    )
    .await;
    v["id"].as_i64().expect("an id")
}

/// A Messenger text from `psid` to `page`, sent now, with the provider id `mid`.
fn webhook(page: &str, psid: &str, mid: &str, text: &str) -> Vec<u8> {
    let now = store::now_ms();
    serde_json::to_vec(
        &json!({"object": "page", "entry": [{"id": page, "time": now,
        "messaging": [{"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": now,
            "message": {"mid": mid, "text": text}}]}]}),
    )
    .expect("JSON")
}

/// Posts a signed webhook and applies it.
async fn deliver(s: &TestServer, body: &[u8]) {
    let r = s
        .http
        .post(s.url("/webhooks/meta"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            meta_header(APP_SECRET.as_bytes(), body),
        )
        .body(body.to_vec())
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status(), StatusCode::OK);
    let state = &s.server.as_ref().expect("running").state;
    masterz::messaging::process::run_once(state)
        .await
        .expect("processing");
}

/// The company's newest conversation.
async fn conversation(s: &TestServer, t: &Tenant) -> i64 {
    let page = expect(
        s,
        Method::GET,
        "/api/v1/conversations?limit=1",
        &t.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    page["items"][0]["id"].as_i64().expect("a conversation")
}

/// How many messages of `direction` the company has stored.
async fn stored(s: &TestServer, company: CompanyId, direction: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM messages WHERE company_id = $1 AND direction = $2";
    on_db!(s.store(), |c| sqlx::query_scalar::<_, i64>(sql)
        .bind(company)
        .bind(direction)
        .fetch_one(&mut *c)
        .await)
    .expect("count")
}

async fn limit_reached(s: &TestServer, company: CompanyId, metric: &str) -> Option<String> {
    let state = &s.server.as_ref().expect("running").state;
    let mut conn = s.store().conn().await.expect("conn");
    billing::limit_reached(
        &mut conn.ex(),
        &state.config,
        company,
        metric,
        store::now_ms(),
    )
    .await
    .expect("limit_reached")
}

/// Ends an answered call of `talk_ms` and records `recorded_ms` of it, as telephony does.
async fn answered_call(s: &TestServer, company: CompanyId, talk_ms: i64, recorded_ms: i64) {
    let now = store::now_ms();
    let mut tx = s.store().begin().await.expect("tx");
    let new = store::calls::NewCall {
        customer_id: None,
        direction: "in",
        from_uri: "sip:+15550001111@trunk.example.com",
        to_uri: "sip:+15551230000@masterz",
        trunk_id: None,
        group_id: None,
        sip_call_id: &format!("billing-{now}-{talk_ms}"),
        agent_user_id: None,
        started_at: now - talk_ms - 5_000,
    };
    let id = store::calls::create(&mut tx.ex(), company, &new)
        .await
        .expect("call");
    store::calls::answered(&mut tx.ex(), company, id, None, now - talk_ms, "PCMU")
        .await
        .expect("answered");
    let rec = store::recordings::start(&mut tx.ex(), company, id, "billing.wav", now - talk_ms)
        .await
        .expect("recording");
    let end = store::calls::CallEnd {
        ended_at: now,
        status: "completed",
        end_reason: "bye",
        hangup_by: Some("caller"),
        sip_status: None,
        media: None,
    };
    // Ended twice (both sides hang up at once): counted once.
    for _ in 0..2 {
        store::calls::ended(&mut tx.ex(), company, id, &end)
            .await
            .expect("ended");
    }
    for _ in 0..2 {
        let finished = store::recordings::Finished {
            status: "complete",
            ended_at: now,
            duration_ms: recorded_ms,
            size_bytes: 44 + recorded_ms * 16,
            sha256: None,
            frames_dropped: 0,
        };
        store::recordings::finish(&mut tx.ex(), rec, &finished)
            .await
            .expect("finished");
    }
    tx.commit().await.expect("commit");
}

/// A call nobody answered: nothing to bill.
async fn missed_call(s: &TestServer, company: CompanyId) {
    let now = store::now_ms();
    let mut tx = s.store().begin().await.expect("tx");
    let new = store::calls::NewCall {
        customer_id: None,
        direction: "in",
        from_uri: "sip:+15550002222@trunk.example.com",
        to_uri: "sip:+15551230000@masterz",
        trunk_id: None,
        group_id: None,
        sip_call_id: &format!("billing-missed-{now}"),
        agent_user_id: None,
        started_at: now - 20_000,
    };
    let id = store::calls::create(&mut tx.ex(), company, &new)
        .await
        .expect("call");
    let end = store::calls::CallEnd {
        ended_at: now,
        status: "missed",
        end_reason: "timeout",
        hangup_by: Some("system"),
        sip_status: Some(480),
        media: None,
    };
    store::calls::ended(&mut tx.ex(), company, id, &end)
        .await
        .expect("ended");
    tx.commit().await.expect("commit");
}

/// `used`, `limit`, `over_limit` of one metric of a usage answer.
fn metric(usage: &Value, name: &str) -> (i64, Option<i64>, bool) {
    let m = &usage["metrics"][name];
    (
        m["used"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: {usage}")),
        m["limit"].as_i64(),
        m["over_limit"].as_bool().expect("over_limit"),
    )
}

// P15
async fn p15_usage_is_counted_once_per_company_and_month_and_over_a_limit_only_ai_stops(
    backend: Backend,
) {
    let Some(s) = server(backend, None).await else {
        return;
    };
    let month = usage::month_of(store::now_ms());
    let a = seed_tenant(s.store(), "billa").await;
    let b = seed_tenant(s.store(), "billb").await;
    {
        let mut conn = s.store().conn().await.unwrap();
        let patch = CompanyPatch {
            plan_tier: Some("pro".into()),
            ..CompanyPatch::default()
        };
        store::companies::update(&mut conn.ex(), b.company, &patch)
            .await
            .unwrap();
    }
    let (page_a, page_b) = ("104857600000111", "104857600000222");
    messenger(&s, &a, page_a).await;
    messenger(&s, &b, page_b).await;

    // In: the first delivered twice (at-least-once), then two more — one past the limit of 2.
    let first = webhook(page_a, "7254398170000001", "m_billing_a1", "Hallo");
    deliver(&s, &first).await;
    deliver(&s, &first).await;
    for mid in ["m_billing_a2", "m_billing_a3"] {
        deliver(&s, &webhook(page_a, "7254398170000001", mid, "Noch da?")).await;
    }
    deliver(
        &s,
        &webhook(page_b, "7254398170000002", "m_billing_b1", "Hi"),
    )
    .await;
    // Messages over the limit are taken all the same.
    assert_eq!(stored(&s, a.company, "in").await, 3);

    // Out through the reply API: the second reply is over the limit of 1 and still accepted.
    let conv = conversation(&s, &a).await;
    for text in ["Gern!", "Noch etwas?"] {
        expect(
            &s,
            Method::POST,
            &format!("/api/v1/conversations/{conv}/messages"),
            &a.agent_token,
            Some(json!({"text": text})),
            StatusCode::ACCEPTED,
        )
        .await;
    }
    assert_eq!(stored(&s, a.company, "out").await, 2);

    // Calls: 61.5 s of talk (62 s billed, over the cap of 60) and 2.5 s recorded (3 s, over 2);
    // a missed call adds nothing; the calls were taken over the limit all the same.
    answered_call(&s, a.company, 61_500, 2_500).await;
    missed_call(&s, a.company).await;
    answered_call(&s, b.company, 10_000, 1_000).await;

    let path = format!("/api/v1/usage?month={month}");
    let u = expect(&s, Method::GET, &path, &a.admin_token, None, StatusCode::OK).await;
    assert_eq!(u["month"], month, "{u}");
    assert_eq!(u["plan"], "free", "{u}");
    assert_eq!(metric(&u, "messages_in"), (3, Some(2), true), "{u}");
    assert_eq!(metric(&u, "messages_out"), (2, Some(1), true), "{u}");
    assert_eq!(metric(&u, "call_seconds"), (62, Some(60), true), "{u}");
    assert_eq!(u["metrics"]["call_seconds"]["used_minutes"], 2, "{u}");
    assert_eq!(u["metrics"]["call_seconds"]["limit_minutes"], 1, "{u}");
    assert_eq!(metric(&u, "recorded_seconds"), (3, Some(2), true), "{u}");
    assert_eq!(u["metrics"]["recorded_seconds"]["used_minutes"], 1, "{u}");
    // The admin (this request) and the agent (the replies) used their tokens this month.
    assert_eq!(metric(&u, "active_users"), (2, Some(1), true), "{u}");
    assert_eq!(metric(&u, "ai_replies"), (0, Some(3), false), "{u}");
    // The current month is the default.
    let now = expect(
        &s,
        Method::GET,
        "/api/v1/usage",
        &a.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(now, u);

    // AI suggestions stop at the cap, with the reason.
    assert_eq!(limit_reached(&s, a.company, usage::AI_REPLIES).await, None);
    {
        let mut conn = s.store().conn().await.unwrap();
        let now = store::now_ms();
        usage::add(&mut conn.ex(), a.company, usage::AI_REPLIES, 2, now)
            .await
            .unwrap();
        assert_eq!(limit_reached(&s, a.company, usage::AI_REPLIES).await, None);
        usage::add(&mut conn.ex(), a.company, usage::AI_REPLIES, 1, now)
            .await
            .unwrap();
    }
    assert_eq!(
        limit_reached(&s, a.company, usage::AI_REPLIES).await,
        Some(format!(
            "the free plan allows 3 AI replies a month; 3 used in {month}"
        ))
    );
    let u = expect(&s, Method::GET, &path, &a.admin_token, None, StatusCode::OK).await;
    assert_eq!(metric(&u, "ai_replies"), (3, Some(3), true), "{u}");
    assert!(
        limit_reached(&s, a.company, usage::ACTIVE_USERS)
            .await
            .is_some_and(|r| r.contains("1 active users")),
    );

    // The other company's counters are its own, against its own plan (the built-in pro).
    let ub = expect(&s, Method::GET, &path, &b.admin_token, None, StatusCode::OK).await;
    assert_eq!(ub["plan"], "pro", "{ub}");
    assert_eq!(
        metric(&ub, "messages_in"),
        (1, Some(100_000), false),
        "{ub}"
    );
    assert_eq!(metric(&ub, "messages_out").0, 0, "{ub}");
    assert_eq!(metric(&ub, "ai_replies"), (0, Some(10_000), false), "{ub}");
    assert_eq!(metric(&ub, "call_seconds").0, 10, "{ub}");
    assert_eq!(metric(&ub, "recorded_seconds").0, 1, "{ub}");
    assert_eq!(limit_reached(&s, b.company, usage::AI_REPLIES).await, None);

    // Another month is empty; a month that is not YYYY-MM is refused.
    let old = expect(
        &s,
        Method::GET,
        "/api/v1/usage?month=2001-02",
        &a.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    for name in usage::LIMITABLE {
        assert_eq!(metric(&old, name).0, 0, "{name}: {old}");
    }
    for bad in ["2026-13", "2026-1", "last", "2026-11-01"] {
        let r = call(
            &s,
            Method::GET,
            &format!("/api/v1/usage?month={bad}"),
            Some(&a.admin_token),
            None,
            &[],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
    }

    // An agent's role has no usage:read.
    let r = call(&s, Method::GET, &path, Some(&a.agent_token), None, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    // Without an operator token configured, the operator's endpoint does not exist.
    let r = call(
        &s,
        Method::GET,
        "/operator/stats",
        Some(&a.admin_token),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

/// Every object key of `v`, recursively.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

// P16
async fn p16_operator_statistics_carry_counts_only(backend: Backend) {
    let Some(s) = server(backend, Some(OPERATOR_TOKEN)).await else {
        return;
    };
    let month = usage::month_of(store::now_ms());
    // Two companies full of distinctive personal data, and a closed one.
    let planted_slugs = ["quokka-heron-7731", "marmot-ibis-2954"];
    let mut planted: Vec<String> = Vec::new();
    let mut tenants = Vec::new();
    for (i, slug) in planted_slugs.iter().enumerate() {
        let t = seed_tenant(s.store(), slug).await;
        let page = format!("10485760000{i}999");
        let psid = format!("72543981{i}7777777");
        let text = format!("Xylophon-Bananen {i} Kennwort Ozelot-{i}");
        let phone = format!("+49170998877{i}6");
        let name = format!("Zebulon Fairweather-{i}");
        messenger(&s, &t, &page).await;
        deliver(&s, &webhook(&page, &psid, &format!("m_p16_{i}"), &text)).await;
        expect(
            &s,
            Method::POST,
            "/api/v1/customers",
            &t.admin_token,
            Some(json!({"display_name": name,
                "identities": [{"kind": "phone", "external_id": phone}]})),
            StatusCode::CREATED,
        )
        .await;
        answered_call(&s, t.company, 30_000 + 1_000 * i as i64, 0).await;
        planted.extend([
            slug.to_string(),
            format!("Company {slug}"),
            t.admin_email.clone(),
            t.agent_email.clone(),
            page,
            psid,
            text,
            phone.clone(),
            phone.trim_start_matches('+').to_owned(),
            name,
        ]);
        tenants.push(t);
    }
    let closed = seed_tenant(s.store(), "walrus-closed-5120").await;
    let sql = "UPDATE companies SET status = 'closed' WHERE id = $1";
    on_db!(s.store(), |c| sqlx::query(sql)
        .bind(closed.company)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    planted.push("walrus-closed-5120".into());

    // Without the token, or with another: 401, and nothing of the counts.
    for auth in [None, Some("wrong-operator-token")] {
        let r = call(&s, Method::GET, "/operator/stats", auth, None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert!(!r.text.contains("companies"), "{}", r.text);
    }
    // A company's own admin is not the operator.
    let r = call(
        &s,
        Method::GET,
        "/operator/stats",
        Some(&tenants[0].admin_token),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);

    let r = call(
        &s,
        Method::GET,
        &format!("/operator/stats?month={month}"),
        Some(OPERATOR_TOKEN),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for p in &planted {
        assert!(!r.text.contains(p.as_str()), "{p:?} leaked: {}", r.text);
    }
    // Only counts: no key that could carry an id, a name or an address.
    let mut found = Vec::new();
    keys(&r.body, &mut found);
    let allowed = [
        "month",
        "companies",
        "total",
        "active",
        "closed",
        "plans",
        "metrics",
        "companies_using",
        "companies_over_limit",
        "histogram",
        "from",
        "to",
    ];
    let plans = ["free", "pro", "enterprise"];
    for k in &found {
        assert!(
            allowed.contains(&k.as_str())
                || plans.contains(&k.as_str())
                || usage::LIMITABLE.contains(&k.as_str()),
            "unexpected key {k:?}: {}",
            r.text
        );
    }

    // The counts add up: every company (the default one of the first start too) is there.
    let st = &r.body;
    let sql = "SELECT COUNT(*) FROM companies";
    let companies: i64 = on_db!(s.store(), |c| sqlx::query_scalar(sql)
        .fetch_one(&mut *c)
        .await)
    .unwrap();
    assert_eq!(st["month"], month);
    assert_eq!(st["companies"]["total"], companies, "{st}");
    assert_eq!(st["companies"]["closed"], 1, "{st}");
    assert_eq!(st["companies"]["active"], companies - 1, "{st}");
    let by_plan: i64 = st["plans"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(by_plan, companies, "{st}");
    for name in usage::LIMITABLE {
        let m = &st["metrics"][name];
        let in_buckets: i64 = m["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["companies"].as_i64().unwrap())
            .sum();
        assert_eq!(in_buckets, companies, "{name}: {st}");
    }
    // What the companies see of themselves sums to the operator's totals.
    let mut sums = std::collections::BTreeMap::<&str, i64>::new();
    for t in &tenants {
        let u = expect(
            &s,
            Method::GET,
            &format!("/api/v1/usage?month={month}"),
            &t.admin_token,
            None,
            StatusCode::OK,
        )
        .await;
        for name in [usage::MESSAGES_IN, usage::CALL_SECONDS] {
            *sums.entry(name).or_default() += metric(&u, name).0;
        }
    }
    // Refetched: the usage calls above made the admins active.
    let st = expect(
        &s,
        Method::GET,
        "/operator/stats",
        OPERATOR_TOKEN,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(sums[usage::MESSAGES_IN], 2);
    assert_eq!(sums[usage::CALL_SECONDS], 30 + 31);
    for (name, sum) in sums {
        assert_eq!(st["metrics"][name]["total"], sum, "{name}: {st}");
        assert_eq!(st["metrics"][name]["companies_using"], 2, "{name}: {st}");
    }
    // call_seconds is capped at 60 on the small free plan: neither company reached it.
    assert_eq!(
        st["metrics"]["call_seconds"]["companies_over_limit"], 0,
        "{st}"
    );
    assert!(
        st["metrics"]["active_users"]["total"].as_i64().unwrap() >= 2,
        "{st}"
    );

    // A server without an operator token has no such endpoint.
    drop(s);
    let Some(plain) = server(backend, None).await else {
        return;
    };
    let r = call(
        &plain,
        Method::GET,
        "/operator/stats",
        Some(OPERATOR_TOKEN),
        None,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}
