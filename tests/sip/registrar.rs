//! The registrar: SIPp and a raw UA against a running server.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Backend, TestServer, seed_tenant};
use crate::peers::{self, sipp::Sipp};
use crate::raw::{RawUa, code, reason};

pub(crate) fn sip_addr(s: &TestServer) -> SocketAddr {
    s.server
        .as_ref()
        .and_then(|s| s.state.telephony.get())
        .expect("SIP is running")
        .sip_addr
}

/// Gives the tenant's agent SIP credentials through the API.
pub(crate) async fn give_sip_account(
    s: &TestServer,
    admin_token: &str,
    user: i64,
    name: &str,
    pw: &str,
) {
    let r = s
        .req(
            Method::PUT,
            &format!("/api/v1/users/{user}/sip-credentials"),
            admin_token,
        )
        .json(&json!({"username": name, "password": pw}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

pub(crate) async fn registrations(s: &TestServer, token: &str) -> Vec<Value> {
    let r = s
        .req(Method::GET, "/api/v1/registrations", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_with_digest_and_the_binding_shows_in_the_api() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    give_sip_account(&s, &t.admin_token, t.agent.0, "alice", "alice-secret-1").await;
    assert!(registrations(&s, &t.admin_token).await.is_empty());

    let sipp = Sipp::scenario("register_pause")
        .target(sip_addr(&s))
        .service("alice")
        .calls(1)
        .auth("alice", "alice-secret-1")
        .timeout(Duration::from_secs(20))
        .spawn();
    let mut seen = None;
    for _ in 0..60 {
        let regs = registrations(&s, &t.admin_token).await;
        if let Some(r) = regs.first() {
            seen = Some(r.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = sipp.wait_async().await;
    run.assert_success();
    let reg = seen.expect("the binding appears in the API while SIPp is registered");
    assert_eq!(reg["sip_username"], "alice");
    assert_eq!(reg["user_id"], t.agent.0);
    assert_eq!(reg["transport"], "udp");
    assert_eq!(reg["user_agent"], "SIPp register_auth");
    assert!(
        reg["contact"]
            .as_str()
            .unwrap()
            .starts_with("sip:alice@127.0.0.1:")
    );
    assert!(reg["source"].as_str().unwrap().starts_with("127.0.0.1:"));
    // The scenario unregistered at its end.
    assert!(registrations(&s, &t.admin_token).await.is_empty());
    // Another company sees nothing of it.
    let other = seed_tenant(s.store(), "other").await;
    assert!(registrations(&s, &other.admin_token).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_challenged_again_then_rate_limited() {
    if !peers::require(peers::SIPP) {
        return;
    }
    let s = TestServer::start_with(Backend::Sqlite, |c| c.sip_max_auth_failures = 4)
        .await
        .unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    give_sip_account(&s, &t.admin_token, t.agent.0, "bob", "bob-secret-12").await;

    let run = Sipp::scenario("register_wrong_password")
        .target(sip_addr(&s))
        .service("bob")
        .calls(1)
        .auth("bob", "not-his-password")
        .key("max_attempts", "10")
        .timeout(Duration::from_secs(20))
        .run_async()
        .await;
    run.assert_success();
    let logs = run.log_lines();
    let challenged = logs.iter().filter(|l| l.contains("status=401")).count();
    assert_eq!(
        challenged, 4,
        "four wrong answers are challenged again: {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("limited") && l.contains("status=403")),
        "then 403: {logs:?}"
    );

    // The right password from the same address is refused too until the window ends: the limit
    // is per source and per username, not per guess.
    let mut ua = RawUa::new(sip_addr(&s), "bob", "bob-secret-12").await;
    let r = ua
        .register_authenticated(&["<sip:bob@127.0.0.1:5099>"], Some(600))
        .await;
    assert_eq!(code(&r), 403, "{r}");
    assert_eq!(reason(&r), "Too Many Failed Attempts");
    assert!(r.headers.get("Retry-After").is_some());
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("masterz_sip_register_auth_failures_total 4"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_and_a_wrong_password_look_the_same() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    give_sip_account(&s, &t.admin_token, t.agent.0, "carol", "carol-secret-1").await;
    let mut wrong = RawUa::new(sip_addr(&s), "carol", "nope-nope-nope").await;
    let mut unknown = RawUa::new(sip_addr(&s), "nobody", "nope-nope-nope").await;
    let a = wrong
        .register_authenticated(&["<sip:carol@127.0.0.1:5098>"], Some(600))
        .await;
    let b = unknown
        .register_authenticated(&["<sip:nobody@127.0.0.1:5097>"], Some(600))
        .await;
    assert_eq!((code(&a), code(&b)), (401, 401));
    let shape = |m: &masterz_sip::message::Message| {
        let mut names: Vec<String> = m.headers.iter().map(|h| h.name.to_string()).collect();
        names.sort();
        let challenges: Vec<String> = m
            .headers
            .get_all("WWW-Authenticate")
            .map(|v| v.split("nonce=").next().unwrap().to_owned())
            .collect();
        (reason(m), names, challenges)
    };
    assert_eq!(shape(&a), shape(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_rules_contact_star_and_bindings_survive_a_restart() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    give_sip_account(&s, &t.admin_token, t.agent.0, "dave", "dave-secret-1").await;
    let mut ua = RawUa::new(sip_addr(&s), "dave", "dave-secret-1").await;

    // Too short: 423 with Min-Expires (§10.3 step 7).
    let r = ua
        .register_authenticated(&["<sip:dave@127.0.0.1:5001>"], Some(5))
        .await;
    assert_eq!(code(&r), 423, "{r}");
    assert_eq!(r.headers.get("Min-Expires").map(|v| v.as_str()), Some("60"));

    // Two contacts, one with its own expires; too long is shortened to the maximum.
    let r = ua
        .register_authenticated(
            &[
                "<sip:dave@127.0.0.1:5001>;expires=120",
                "<sip:dave@127.0.0.1:5002>",
            ],
            Some(999_999),
        )
        .await;
    assert_eq!(code(&r), 200, "{r}");
    let contacts: Vec<&str> = r.headers.get_all("Contact").map(|v| v.as_str()).collect();
    assert_eq!(contacts.len(), 2, "{r}");
    assert!(
        contacts.iter().any(|c| c.contains(":5001>;expires=12")),
        "{contacts:?}"
    );
    assert!(
        contacts.iter().any(|c| c.contains(":5002>;expires=3600")),
        "{contacts:?}"
    );
    assert_eq!(registrations(&s, &t.admin_token).await.len(), 2);

    // A restart keeps the bindings (they are in the database).
    let db = s.stop().await;
    let s = TestServer::on(db).await;
    let t_token = t.admin_token.clone();
    assert_eq!(registrations(&s, &t_token).await.len(), 2);

    // Contact: * with Expires: 0 removes them all; with another Expires it is a 400.
    let mut ua = RawUa::new(sip_addr(&s), "dave", "dave-secret-1").await;
    let r = ua.register_authenticated(&["*"], Some(60)).await;
    assert_eq!(code(&r), 400, "{r}");
    assert!(reason(&r).contains("Contact"), "{}", reason(&r));
    let r = ua.register_authenticated(&["*"], Some(0)).await;
    assert_eq!(code(&r), 200, "{r}");
    assert!(r.headers.get("Contact").is_none());
    assert!(registrations(&s, &t_token).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_gets_allow_and_malformed_requests_get_400_with_a_reason() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let ua = RawUa::new(sip_addr(&s), "x", "y").await;
    let local = ua.local();
    let request = |cseq: &str| {
        format!(
            "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-opt-{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:{server}>\r\n\
             Call-ID: opt-{n}@127.0.0.1\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n",
            server = sip_addr(&s),
            n = cseq.len(),
        )
    };
    let ok = ua
        .exchange_raw(request("1 OPTIONS").as_bytes())
        .await
        .expect("200");
    assert_eq!(code(&ok), 200);
    let allow = ok.headers.get("Allow").unwrap().to_string();
    for m in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"] {
        assert!(allow.contains(m), "{allow}");
    }
    assert!(ok.headers.get("Accept").is_some() && ok.headers.get("Supported").is_some());

    let bad = ua
        .exchange_raw(request("x OPTIONS").as_bytes())
        .await
        .expect("a 400");
    assert_eq!(code(&bad), 400);
    assert!(reason(&bad).contains("CSeq"), "{}", reason(&bad));

    let mismatch = ua
        .exchange_raw(request("2 INVITE").as_bytes())
        .await
        .expect("a 400");
    assert_eq!(code(&mismatch), 400);
    assert!(reason(&mismatch).contains("CSeq"), "{}", reason(&mismatch));

    // Garbage without a readable Via gets no answer, and the server keeps serving.
    ua.socket
        .send_to(b"\x00\x01garbage\r\n\r\n", sip_addr(&s))
        .await
        .unwrap();
    let again = ua
        .exchange_raw(request("3 OPTIONS").as_bytes())
        .await
        .expect("still serving");
    assert_eq!(code(&again), 200);
    let metrics = s.metrics().await;
    assert!(
        !metrics.contains("masterz_sip_malformed_total 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_digest_when_configured_first() {
    let s = TestServer::start_with(Backend::Sqlite, |c| {
        c.sip_digest_algorithms = "SHA-256,MD5".into();
    })
    .await
    .unwrap();
    let t = seed_tenant(s.store(), "acme").await;
    give_sip_account(&s, &t.admin_token, t.agent.0, "erin", "erin-secret-1").await;
    let mut ua = RawUa::new(sip_addr(&s), "erin", "erin-secret-1").await;
    let first = ua.register(&["<sip:erin@127.0.0.1:5003>"], Some(600));
    let challenge = ua.exchange_raw(&first.to_bytes()).await.unwrap();
    let offered: Vec<&str> = challenge
        .headers
        .get_all("WWW-Authenticate")
        .map(|v| v.as_str())
        .collect();
    assert_eq!(offered.len(), 2, "{challenge}");
    assert!(offered[0].contains("algorithm=SHA-256") && offered[1].contains("algorithm=MD5"));
    // The client answers the first challenge it supports: SHA-256.
    let r = ua
        .register_authenticated(&["<sip:erin@127.0.0.1:5003>"], Some(600))
        .await;
    assert_eq!(code(&r), 200, "{r}");
    let sent = ua.register(&["<sip:erin@127.0.0.1:5003>"], Some(600));
    let auth = sent.headers.get("Authorization").unwrap().to_string();
    assert!(auth.contains("algorithm=SHA-256"), "{auth}");
    // A nonce-count that goes up is accepted on the same nonce (no new challenge).
    let r = ua.exchange_raw(&sent.to_bytes()).await.unwrap();
    assert_eq!(code(&r), 200, "{r}");
}
