//! P21: an end user's data is deleted on request — through the API (with a confirmation code and
//! a public status page) and through Meta's data-deletion callback (`signed_request` verified) —
//! and a tampered, wrong-algorithm or missing `signed_request` deletes nothing.

use masterz::lifecycle::signed_request::sign;
use masterz::store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    APP_SECRET, api, channel, customer_of, messenger_text, recorded_call, rows_naming, scalar,
    settle, start, whatsapp_text,
};
use crate::common::{Backend, TestServer, seed_tenant};

const PAGE: &str = "310000000000001";
const OWN_PAGE: &str = "320000000000001";
const PHONE_ID: &str = "310000000000002";
const OWN_SECRET: &str = "a-business-own-app-secret-8c2a";

/// `GET url` (a status page): status and HTML.
async fn page(s: &TestServer, url: &str) -> (StatusCode, String, Option<String>) {
    let r = s.http.get(url).send().await.unwrap();
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (r.status(), r.text().await.unwrap(), csp)
}

// P21
async fn p21_an_api_deletion_request_erases_the_customer_everywhere(backend: Backend) {
    let Some(s) = start(backend).await else {
        return;
    };
    let t = seed_tenant(s.store(), "shop").await;
    let other = seed_tenant(s.store(), "othershop").await;
    let tok = t.admin_token.as_str();
    let messenger = channel(
        &s,
        tok,
        json!({"kind": "messenger", "name": "Page", "external_id": PAGE,
            "credentials": {"access_token": "page-token-p21"}}),
    )
    .await;
    let whatsapp = channel(
        &s,
        tok,
        json!({"kind": "whatsapp_cloud", "name": "WA", "external_id": PHONE_ID,
            "credentials": {"access_token": "wa-token-p21"}}),
    )
    .await;
    // The person who asks: Messenger messages (a profile look-up is logged with their PSID in
    // the URL), a reply (an outbound log row by message id), a phone number, a recorded call, a
    // note, and a second record merged into theirs.
    let psid = "3725439810000077";
    messenger_text(&s, APP_SECRET, PAGE, psid, "m_victim_1", "victimtext one").await;
    messenger_text(&s, APP_SECRET, PAGE, psid, "m_victim_2", "victimtext two").await;
    // Someone else of the same company writes on WhatsApp.
    whatsapp_text(
        &s,
        PHONE_ID,
        "4915550707070",
        "Bystander",
        "wamid.by1",
        "bystandertext",
    )
    .await;
    settle(&s).await;
    let victim = customer_of(&s, t.company, "psid", Some(messenger), psid)
        .await
        .unwrap();
    let bystander = customer_of(&s, t.company, "wa_id", Some(whatsapp), "4915550707070")
        .await
        .expect("the bystander");
    let (st, _) = api(
        &s,
        Method::POST,
        &format!("/api/v1/customers/{victim}/identities"),
        tok,
        Some(json!({"kind": "phone", "external_id": "+4915550808080"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, alias) = api(
        &s,
        Method::POST,
        "/api/v1/customers",
        tok,
        Some(json!({"display_name": "victimalias"})),
    )
    .await;
    let alias = alias["id"].as_i64().unwrap();
    let (st, _) = api(
        &s,
        Method::POST,
        &format!("/api/v1/customers/{victim}/merge"),
        tok,
        Some(json!({"source_customer_id": alias})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api(
        &s,
        Method::POST,
        &format!("/api/v1/customers/{victim}/notes"),
        tok,
        Some(json!({"body": "victimnote"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, convs) = api(&s, Method::GET, "/api/v1/conversations", tok, None).await;
    let conv = convs["items"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["customer_id"] == victim))
        .and_then(|c| c["id"].as_i64())
        .expect("the victim's conversation");
    let (st, _) = api(
        &s,
        Method::POST,
        &format!("/api/v1/conversations/{conv}/messages"),
        tok,
        Some(json!({"text": "victimreply"})),
    )
    .await;
    assert!(st.is_success());
    settle(&s).await;
    let victim_file = recorded_call(&s, t.company, victim, "+4915550808080").await;
    let bystander_file = recorded_call(&s, t.company, bystander, "+4915550707070").await;
    let theirs = recorded_call(
        &s,
        other.company,
        {
            let mut tx = s.store().begin().await.unwrap();
            let c = store::customers::find_or_create_by_phone(
                &mut tx.ex(),
                other.company,
                "+4915550909090",
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            c
        },
        "+4915550909090",
    )
    .await;
    let other_customer = customer_of(&s, other.company, "phone", None, "+4915550909090")
        .await
        .unwrap();

    let victim_markers = [
        "victimtext",
        "victimnote",
        "victimreply",
        "victimalias",
        psid,
        "4915550808080",
    ];
    let before = rows_naming(s.store(), &victim_markers).await;
    assert!(
        before.iter().any(|(t, _)| t == "integration_logs"),
        "the victim's exchanges are logged: {before:?}"
    );

    // Another company cannot delete them, nor can this one delete another's customer.
    for (method, path) in [
        (Method::DELETE, format!("/api/v1/customers/{victim}")),
        (Method::POST, format!("/api/v1/customers/{victim}/deletion")),
    ] {
        let (st, _) = api(&s, method, &path, &other.admin_token, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    for (method, path) in [
        (
            Method::DELETE,
            format!("/api/v1/customers/{other_customer}"),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{other_customer}/deletion"),
        ),
    ] {
        let (st, _) = api(&s, method, &path, tok, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    // An agent lacks customers:delete.
    let (st, _) = api(
        &s,
        Method::POST,
        &format!("/api/v1/customers/{victim}/deletion"),
        &t.agent_token,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let (st, answer) = api(
        &s,
        Method::POST,
        &format!("/api/v1/customers/{victim}/deletion"),
        tok,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["state"], "completed");
    let code = answer["confirmation_code"].as_str().unwrap().to_owned();
    assert_eq!(answer["url"], format!("{}/data-deletion/{code}", s.base));
    let deleted = &answer["deleted"];
    assert_eq!(deleted["customers"], 2, "{answer}");
    assert!(deleted["messages"].as_u64().unwrap() >= 3, "{answer}");
    assert_eq!(deleted["recordings"], 1);
    assert_eq!(deleted["notes"], 1);
    assert!(
        deleted["integration_logs"].as_u64().unwrap() >= 3,
        "{answer}"
    );

    // Gone: the customer, its merged record, the recording file, every row naming them.
    for id in [victim, alias] {
        let (st, _) = api(
            &s,
            Method::GET,
            &format!("/api/v1/customers/{id}"),
            tok,
            None,
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
    assert!(
        !victim_file.exists(),
        "the recording file is removed at once"
    );
    let after = rows_naming(s.store(), &victim_markers).await;
    assert!(after.is_empty(), "rows still naming them: {after:?}");
    // Untouched: the bystander (customer, message, its log row, recording) and the other company.
    let (st, _) = api(
        &s,
        Method::GET,
        &format!("/api/v1/customers/{bystander}"),
        tok,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(bystander_file.exists() && theirs.exists());
    let kept = rows_naming(s.store(), &["bystandertext", "4915550707070"]).await;
    for table in ["messages", "integration_logs", "customer_identities"] {
        assert!(kept.iter().any(|(t, _)| t == table), "{table}: {kept:?}");
    }
    let (st, _) = api(
        &s,
        Method::GET,
        &format!("/api/v1/customers/{other_customer}"),
        &other.admin_token,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);

    // The status: for the company through the API, for anyone on the public page.
    let (st, status) = api(
        &s,
        Method::GET,
        &format!("/api/v1/deletion-requests/{code}"),
        tok,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(status["deleted"], answer["deleted"]);
    let (st, _) = api(
        &s,
        Method::GET,
        &format!("/api/v1/deletion-requests/{code}"),
        &other.admin_token,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, html, csp) = page(&s, answer["url"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("Completed") && html.contains(&code), "{html}");
    assert!(html.contains("Call recordings: 1"), "{html}");
    assert!(csp.is_some_and(|c| c.contains("default-src 'none'")));
    for m in victim_markers.iter().chain(["shop"].iter()) {
        assert!(!html.contains(m), "{m} on the public page");
    }
    let (st, html, _) = page(&s, &s.url("/data-deletion")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("<form") && html.contains("confirmation code"));
    let r = s
        .http
        .get(s.url(&format!("/data-deletion?code={code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the form's look-up lands on the status"
    );
    assert!(r.text().await.unwrap().contains("Completed"));
    let (st, _, _) = page(&s, &s.url("/data-deletion/00112233445566778899aabb")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // DELETE takes the same path: 204, and a completed request recorded.
    let requests = |db: &store::Db| {
        let db = db.clone();
        async move {
            scalar(
                &db,
                "SELECT COUNT(*) FROM deletion_requests WHERE state = $1",
                &["completed"],
            )
            .await
        }
    };
    let n = requests(s.store()).await;
    let (st, _) = api(
        &s,
        Method::DELETE,
        &format!("/api/v1/customers/{bystander}"),
        tok,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(!bystander_file.exists());
    assert_eq!(requests(s.store()).await, n + 1);
    let (st, _) = api(
        &s,
        Method::DELETE,
        &format!("/api/v1/customers/{bystander}"),
        tok,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

/// Posts a form to the callback: status and JSON.
async fn callback(s: &TestServer, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = s
        .http
        .post(s.url("/webhooks/meta/data-deletion"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// A company with one Messenger page on the server's app and one page with its own app secret,
/// the same person having written to both; returns (company, both customers).
async fn two_apps(s: &TestServer, user_id: &str) -> (masterz::domain::CompanyId, i64, i64) {
    let t = seed_tenant(s.store(), "metashop").await;
    let global = channel(
        s,
        &t.admin_token,
        json!({"kind": "messenger", "name": "Page", "external_id": PAGE,
            "credentials": {"access_token": "token-global-app"}}),
    )
    .await;
    let own = channel(
        s,
        &t.admin_token,
        json!({"kind": "messenger", "name": "Own", "external_id": OWN_PAGE,
            "credentials": {"access_token": "token-own-app", "app_secret": OWN_SECRET}}),
    )
    .await;
    messenger_text(s, APP_SECRET, PAGE, user_id, "m_meta_1", "metatext global").await;
    messenger_text(s, OWN_SECRET, OWN_PAGE, user_id, "m_meta_2", "metatext own").await;
    settle(s).await;
    let a = customer_of(s, t.company, "psid", Some(global), user_id)
        .await
        .unwrap();
    let b = customer_of(s, t.company, "psid", Some(own), user_id)
        .await
        .unwrap();
    assert_ne!(a, b);
    (t.company, a, b)
}

fn payload(user_id: &str) -> String {
    json!({"user_id": user_id, "algorithm": "HMAC-SHA256", "issued_at": 1_291_836_800_i64,
        "expires": 1_291_840_400_i64})
    .to_string()
}

async fn exists(s: &TestServer, company: masterz::domain::CompanyId, id: i64) -> bool {
    let mut conn = s.store().conn().await.unwrap();
    store::customers::get(&mut conn.ex(), company, id)
        .await
        .unwrap()
        .is_some()
}

// P21
async fn p21_meta_data_deletion_callback_erases_whom_the_verifying_secret_covers(backend: Backend) {
    let Some(s) = start(backend).await else {
        return;
    };
    let user_id = "3911223344556677";
    let (company, on_global, on_own) = two_apps(&s, user_id).await;

    // Signed with the server's secret: the page without its own secret is covered.
    let (st, answer) = callback(
        &s,
        &[(
            "signed_request",
            &sign(APP_SECRET.as_bytes(), &payload(user_id)),
        )],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{answer}");
    let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["confirmation_code", "url"]);
    let code = answer["confirmation_code"].as_str().unwrap();
    assert_eq!(answer["url"], format!("{}/data-deletion/{code}", s.base));
    assert!(!exists(&s, company, on_global).await);
    assert!(
        exists(&s, company, on_own).await,
        "not covered by the server's secret"
    );
    let (st, html, _) = page(&s, answer["url"].as_str().unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        html.contains("Completed") && html.contains("Customer records: 1"),
        "{html}"
    );
    assert!(!html.contains(user_id) && !html.contains("metatext"));

    // Signed with the business's own secret: its page is covered.
    let (st, answer) = callback(
        &s,
        &[(
            "signed_request",
            &sign(OWN_SECRET.as_bytes(), &payload(user_id)),
        )],
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{answer}");
    assert!(!exists(&s, company, on_own).await);
    let named = rows_naming(s.store(), &[user_id, "metatext"]).await;
    assert!(named.is_empty(), "{named:?}");

    // Nobody with that id: still a code, and the page says nothing was found.
    let (st, answer) = callback(
        &s,
        &[(
            "signed_request",
            &sign(APP_SECRET.as_bytes(), &payload("218471")),
        )],
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, html, _) = page(&s, answer["url"].as_str().unwrap()).await;
    assert!(html.contains("We found no data about you"), "{html}");
    // The deletion is audited in the company, with no personal data.
    let audited = scalar(
        s.store(),
        "SELECT COUNT(*) FROM audit_logs WHERE action = 'erase' AND entity_type = $1",
        &["customer"],
    )
    .await;
    assert_eq!(audited, 2);
}

// P21
async fn p21_a_tampered_wrong_algorithm_or_missing_signed_request_deletes_nothing(
    backend: Backend,
) {
    let Some(s) = start(backend).await else {
        return;
    };
    let user_id = "3911223344550000";
    let (company, on_global, on_own) = two_apps(&s, user_id).await;
    let good = sign(APP_SECRET.as_bytes(), &payload(user_id));
    let dot = good.find('.').unwrap();
    let flip = |at: usize| {
        let mut b = good.clone().into_bytes();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let md5 = sign(
        APP_SECRET.as_bytes(),
        &json!({"user_id": user_id, "algorithm": "HMAC-MD5", "issued_at": 1}).to_string(),
    );
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("a payload byte", vec![("signed_request", flip(dot + 5))]),
        ("a signature byte", vec![("signed_request", flip(3))]),
        (
            "the wrong secret",
            vec![("signed_request", sign(b"not-our-secret", &payload(user_id)))],
        ),
        ("another algorithm", vec![("signed_request", md5)]),
        ("no signed_request", vec![("user_id", user_id.to_owned())]),
        ("no dot", vec![("signed_request", "garbage".to_owned())]),
    ];
    let rejected = || async {
        scalar(
            s.store(),
            "SELECT COUNT(*) FROM integration_logs WHERE state = 'rejected' AND endpoint = $1",
            &["/webhooks/meta/data-deletion"],
        )
        .await
    };
    for (i, (what, form)) in cases.iter().enumerate() {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (st, body) = callback(&s, &form).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(
            body["error"]["code"].is_string(),
            "{what}: a JSON error: {body}"
        );
        assert!(
            exists(&s, company, on_global).await,
            "{what} deleted a customer"
        );
        assert!(
            exists(&s, company, on_own).await,
            "{what} deleted a customer"
        );
        assert_eq!(
            rejected().await,
            i as i64 + 1,
            "{what} is logged as rejected"
        );
    }
    // The rejection log keeps no signed_request (it names the person).
    let leaked = rows_naming(s.store(), &[&good[dot + 1..dot + 20]]).await;
    assert!(leaked.is_empty(), "{leaked:?}");
    assert_eq!(
        scalar(
            s.store(),
            "SELECT COUNT(*) FROM deletion_requests WHERE source = $1",
            &["meta"]
        )
        .await,
        0
    );
    // The untampered request still works afterwards.
    let (st, _) = callback(&s, &[("signed_request", &good)]).await;
    assert_eq!(st, StatusCode::OK);
    assert!(!exists(&s, company, on_global).await);
}

crate::both_backends!(
    p21_an_api_deletion_request_erases_the_customer_everywhere,
    p21_meta_data_deletion_callback_erases_whom_the_verifying_secret_covers,
    p21_a_tampered_wrong_algorithm_or_missing_signed_request_deletes_nothing,
);
