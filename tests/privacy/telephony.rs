//! SIP calls (§1.2): call metadata always, recordings only when the company switched them on —
//! default off, a trunk's own setting winning, every switch audited — with real SIPp calls.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestServer, seed_tenant};
use crate::peers::{self, free_port, sipp::Sipp};
use crate::support::{call, expect, items};

both_backends!(p9_calls_are_logged_and_recorded_only_when_switched_on);

const DID: &str = "+15551230009";
const CALLER: &str = "+4915112340009";

/// A local port p with p+1..p+3 free too (SIPp's RTP and RTCP).
fn media_port() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p < 65000 && (1..=3).all(|i| std::net::UdpSocket::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
    panic!("no free media port quadruple on 127.0.0.1");
}

fn tone() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/media/pcmu_1khz_3s.pcap"
    )
    .to_owned()
}

/// The company's calls through the API, once `n` of them have ended (20 s at most).
async fn ended_calls(s: &TestServer, token: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let calls =
            items(&expect(s, Method::GET, "/api/v1/calls", token, None, StatusCode::OK).await);
        if calls.len() >= n && calls.iter().all(|c| !c["ended_at"].is_null()) {
            return calls;
        }
        assert!(Instant::now() < deadline, "{n} ended calls: {calls:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The company's recordings through the API.
async fn recordings(s: &TestServer, token: &str) -> Vec<Value> {
    items(
        &expect(
            s,
            Method::GET,
            "/api/v1/recordings",
            token,
            None,
            StatusCode::OK,
        )
        .await,
    )
}

// P9: every call is a row with from/to and start/end; a recording exists only when the company
// switched recording on (default off, shown by the API) and the trunk does not say otherwise;
// each switch — company or trunk — is an audit row.
async fn p9_calls_are_logged_and_recorded_only_when_switched_on(backend: Backend) {
    if !peers::require(peers::SIPP) {
        return;
    }
    // RTP ports of their own per backend: both variants run at once.
    let first = if backend == Backend::Sqlite {
        34000
    } else {
        34400
    };
    let Some(s) = TestServer::start_with(backend, |c| {
        c.rtp_ports = masterz::config::PortRange {
            first,
            last: first + 399,
        };
        c.sip_trunk_poll_secs = 1;
    })
    .await
    else {
        return;
    };
    let t = seed_tenant(s.store(), "p9").await;
    let tok = t.admin_token.clone();
    let company = expect(
        &s,
        Method::GET,
        "/api/v1/company",
        &tok,
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        company["recording_enabled"], false,
        "default off: {company}"
    );

    // A trunk for the DID, and the agent's phone (SIPp) registered and answering with echo.
    let trunk = expect(
        &s,
        Method::POST,
        "/api/v1/channel-accounts",
        &tok,
        Some(
            json!({"kind": "sip_trunk", "name": "Trunk", "settings": {"host": "127.0.0.1",
            "port": free_port(), "transport": "udp", "register": false,
            "sources": ["127.0.0.1/32"], "dids": [DID]}}),
        ),
        StatusCode::CREATED,
    )
    .await;
    let trunk_id = trunk["id"].as_i64().unwrap();
    assert!(
        trunk["settings"]["recording"].is_null(),
        "a trunk follows the company: {trunk}"
    );
    expect(
        &s,
        Method::PUT,
        &format!("/api/v1/users/{}/sip-credentials", t.agent),
        &tok,
        Some(json!({"username": "p9agent", "password": "p9-sip-secret-1"})),
        StatusCode::OK,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sip = s
        .server
        .as_ref()
        .and_then(|s| s.state.telephony.get())
        .expect("SIP")
        .sip_addr;
    let phone_port = free_port();
    Sipp::scenario("call_agent_register")
        .target(sip)
        .local_port(phone_port)
        .service("p9agent")
        .auth("p9agent", "p9-sip-secret-1")
        .calls(1)
        .timeout(Duration::from_secs(15))
        .run_async()
        .await
        .assert_success();
    let phone = Sipp::scenario("call_agent_uas")
        .local_port(phone_port)
        .service("p9agent")
        .media_port(media_port())
        .rtp_echo()
        .key("talk_ms", "600000")
        .timeout(Duration::from_secs(60))
        .spawn();
    let ring = || {
        Sipp::scenario("call_trunk_uac")
            .target(sip)
            .service(DID)
            .media_port(media_port())
            .key("caller", CALLER)
            .key("pcap", &tone())
            .key("talk_ms", "1500")
            .key("session_expires", "1800")
            .calls(1)
            .timeout(Duration::from_secs(40))
    };

    // Default: the call is logged, nothing is recorded.
    ring().run_async().await.assert_success();
    let calls = ended_calls(&s, &tok, 1).await;
    let c = &calls[0];
    // The caller is known by the number of the SIP From URI (P5), as an E.164 phone identity.
    let customer = c["customer_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no customer: {c}"));
    let who = expect(
        &s,
        Method::GET,
        &format!("/api/v1/customers/{customer}"),
        &tok,
        None,
        StatusCode::OK,
    )
    .await;
    assert!(
        who["identities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "phone" && i["external_id"] == CALLER),
        "{who}"
    );
    assert!(
        c["from_uri"]
            .as_str()
            .is_some_and(|f| f.contains("4915112340009")),
        "{c}"
    );
    assert!(
        c["to_uri"]
            .as_str()
            .is_some_and(|f| f.contains("15551230009")),
        "{c}"
    );
    assert!(
        c["started_at"].is_string() && c["ended_at"].is_string(),
        "{c}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        recordings(&s, &tok).await.is_empty(),
        "recorded without the switch"
    );
    assert!(
        !s.data_dir().join("recordings").exists(),
        "a recordings directory was written"
    );

    // Switched on for the company: the next call is recorded.
    let headers = [("user-agent", "privacy-suite/p9")];
    let r = call(
        &s,
        Method::PATCH,
        "/api/v1/company",
        Some(&tok),
        Some(&json!({"recording_enabled": true})),
        &headers,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["recording_enabled"], true);
    ring().run_async().await.assert_success();
    ended_calls(&s, &tok, 2).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let recs = loop {
        let recs = recordings(&s, &tok).await;
        if !recs.is_empty() && recs.iter().all(|r| r["status"] != "recording") {
            break recs;
        }
        assert!(
            Instant::now() < deadline,
            "no finished recording: {recs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["status"], "complete", "{recs:#?}");
    let _ = phone.stop();

    // The trunk may say no for itself; then the company switched off again. Each is audited.
    let r = call(
        &s,
        Method::PATCH,
        &format!("/api/v1/channel-accounts/{trunk_id}"),
        Some(&tok),
        Some(
            &json!({"settings": {"host": "127.0.0.1", "sources": ["127.0.0.1/32"],
            "dids": [DID], "recording": false}}),
        ),
        &headers,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["settings"]["recording"], false, "{}", r.text);
    let r = call(
        &s,
        Method::PATCH,
        "/api/v1/company",
        Some(&tok),
        Some(&json!({"recording_enabled": false})),
        &headers,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let audit = items(
        &expect(
            &s,
            Method::GET,
            "/api/v1/audit-logs?limit=200",
            &tok,
            None,
            StatusCode::OK,
        )
        .await,
    );
    let switches: Vec<(&str, &str)> = audit
        .iter()
        .filter(|a| {
            a["action"]
                .as_str()
                .is_some_and(|x| x.starts_with("recording_"))
        })
        .inspect(|a| assert_eq!(a["user_agent"], "privacy-suite/p9", "{a}"))
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["entity_type"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("recording_on", "company"),
        ("recording_off", "channel_account"),
        ("recording_off", "company"),
    ] {
        assert!(
            switches.contains(&want),
            "{want:?} not audited: {switches:?}"
        );
    }
}
