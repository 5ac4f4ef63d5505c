//! The outbound clients against the fake Graph/WAHA server: ids, error classes, headers, and that
//! no secret reaches an exchange.

use std::time::Duration;

use masterz::messaging::clients::{Clients, Credentials, Profile, Request, SendError};
use masterz::secrets::Secret;
use serde_json::json;

use crate::fake_provider::{FakeProvider, graph_error};

const TOKEN: &str = "EAAB-planted-token-0123456789";
const APP_SECRET: &str = "planted-app-secret-abcdef";
const API_KEY: &str = "planted-waha-key-98765";

fn creds() -> Credentials {
    Credentials {
        access_token: Some(Secret::new(TOKEN.into())),
        api_key: Some(Secret::new(API_KEY.into())),
        other_secrets: vec![Secret::new(APP_SECRET.into())],
    }
}

fn messenger(text: &str) -> Request {
    Request::MessengerText {
        page_id: "111".into(),
        recipient: "psid-9".into(),
        text: text.into(),
        human_agent_tag: false,
    }
}

fn whatsapp(text: &str) -> Request {
    Request::WhatsappText {
        phone_number_id: "106".into(),
        to: "4915123456789".into(),
        text: text.into(),
        reply_to: None,
    }
}

fn waha_text(fake: &FakeProvider) -> Request {
    Request::WahaText {
        base_url: fake.url(),
        session: "default".into(),
        chat_id: "4915123456789@c.us".into(),
        text: "hallo".into(),
        reply_to: None,
    }
}

/// Asserts that no planted secret appears anywhere in an exchange.
fn assert_clean(exchange: &masterz::messaging::clients::Exchange) {
    let dump = format!("{exchange:?} {}", serde_json::to_string(exchange).unwrap());
    for secret in [TOKEN, APP_SECRET, API_KEY] {
        assert!(!dump.contains(secret), "{secret} leaked: {dump}");
    }
}

#[tokio::test]
async fn success_ids_for_each_provider() {
    let fake = FakeProvider::start().await;
    let clients = Clients::new(&format!("{}/v23.0", fake.url()));
    let creds = creds();

    let (sent, ex) = clients.send(&messenger("hi"), &creds).await;
    assert_eq!(sent.unwrap().message_id.as_deref(), Some("m_1"));
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.provider, "meta");
    assert!(ex.response_body.as_deref().unwrap().contains("m_1"));

    let (sent, _) = clients.send(&whatsapp("hallo"), &creds).await;
    assert_eq!(sent.unwrap().message_id.as_deref(), Some("wamid.2"));

    let (sent, _) = clients
        .send(
            &Request::CommentReply {
                comment_id: "222_333".into(),
                text: "thanks".into(),
                instagram: false,
            },
            &creds,
        )
        .await;
    assert_eq!(sent.unwrap().message_id.as_deref(), Some("222_333_3"));

    let (sent, _) = clients
        .send(
            &Request::WhatsappRead {
                phone_number_id: "106".into(),
                message_id: "wamid.in".into(),
            },
            &creds,
        )
        .await;
    assert_eq!(sent.unwrap().message_id, None);

    let (sent, ex) = clients.send(&waha_text(&fake), &creds).await;
    assert_eq!(
        sent.unwrap().message_id.as_deref(),
        Some("true_4915123456789@c.us_5")
    );
    assert_eq!(ex.provider, "waha");
    assert_eq!(ex.status, Some(201));

    let (profile, ex) = clients.fetch_profile("psid-9", false, &creds).await;
    assert_eq!(
        profile.unwrap(),
        Profile {
            name: Some("Fake User".into()),
            username: None,
            avatar_url: Some("https://cdn.example/fb.jpg".into()),
            locale: Some("en_US".into()),
        }
    );
    assert_eq!(ex.method, "GET");
    let (profile, _) = clients.fetch_profile("1784", true, &creds).await;
    assert_eq!(profile.unwrap().username.as_deref(), Some("fake.user"));

    let requests = fake.requests();
    let paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v23.0/111/messages",
            "/v23.0/106/messages",
            "/v23.0/222_333/comments",
            "/v23.0/106/messages",
            "/api/sendText",
            "/v23.0/psid-9",
            "/v23.0/1784",
        ]
    );
    assert_eq!(requests[0].body["recipient"]["id"], "psid-9");
    assert_eq!(requests[1].body["text"]["body"], "hallo");
    assert_eq!(requests[4].body["chatId"], "4915123456789@c.us");
    assert_eq!(
        requests[5].query.as_deref(),
        Some("fields=first_name,last_name,profile_pic,locale")
    );
    assert_eq!(
        requests[6].query.as_deref(),
        Some("fields=name,username,profile_pic")
    );
}

#[tokio::test]
async fn credentials_reach_the_provider_but_not_the_exchange() {
    let fake = FakeProvider::start().await;
    let clients = Clients::new(&fake.url());
    let creds = creds();
    let text = format!("leaking {TOKEN} and {APP_SECRET} and {API_KEY}");
    // The provider echoes a secret back in an error, as Graph does with a malformed token.
    fake.push(
        "/messages",
        400,
        graph_error(100, None, &format!("Invalid parameter near {TOKEN}")),
    );
    let (result, ex) = clients.send(&messenger(&text), &creds).await;
    let err = result.unwrap_err();
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert_clean(&ex);
    assert_eq!(ex.request_headers["authorization"], "[redacted]");
    assert!(
        ex.request_body
            .as_deref()
            .unwrap()
            .contains("leaking [redacted]")
    );
    assert!(
        ex.response_body
            .as_deref()
            .unwrap()
            .contains("near [redacted]")
    );

    let (result, ex) = clients
        .send(
            &Request::WahaSeen {
                base_url: fake.url(),
                session: "default".into(),
                chat_id: "1@c.us".into(),
                message_id: Some("false_1@c.us_A".into()),
            },
            &creds,
        )
        .await;
    result.unwrap();
    assert_clean(&ex);
    assert_eq!(ex.request_headers["x-api-key"], "[redacted]");

    let (result, ex) = clients.fetch_profile("psid-1", false, &creds).await;
    result.unwrap();
    assert_clean(&ex);

    let requests = fake.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(requests[0].header("x-api-key"), None);
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests[1].header("x-api-key"), Some(API_KEY));
    assert_eq!(requests[1].header("authorization"), None);
    assert_eq!(requests[1].body["messageId"], "false_1@c.us_A");
    assert_eq!(
        requests[2].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    for r in &requests {
        let url = format!("{}?{}", r.path, r.query.as_deref().unwrap_or(""));
        assert!(
            !url.contains(TOKEN),
            "the token must never be in a URL: {url}"
        );
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let fake = FakeProvider::start().await;
    let clients = Clients::new(&fake.url());
    fake.push_with_headers(
        "/messages",
        429,
        &[("Retry-After", "30")],
        graph_error(130429, None, "(#130429) Rate limit hit"),
    );
    let (result, ex) = clients.send(&whatsapp("x"), &creds()).await;
    let Err(SendError::RateLimited { retry_after, error }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(30)));
    assert_eq!(error.code, "130429");
    assert_eq!(ex.status, Some(429));
    assert!(ex.error.as_deref().unwrap().contains("rate limited"));

    // An HTTP date far ahead: some wait, never more than the distance to it.
    fake.push_with_headers(
        "/messages",
        429,
        &[("Retry-After", "Fri, 31 Dec 2100 23:59:59 GMT")],
        json!({}),
    );
    let (result, _) = clients.send(&messenger("x"), &creds()).await;
    let wait = result.unwrap_err().retry_after().expect("a wait");
    assert!(wait > Duration::from_secs(3600), "{wait:?}");

    // Throttled without Retry-After: Meta's usage header says how many minutes.
    fake.push_with_headers(
        "/messages",
        400,
        &[(
            "X-Business-Use-Case-Usage",
            r#"{"111":[{"type":"messenger","call_count":100,"estimated_time_to_regain_access":2}]}"#,
        )],
        graph_error(32, None, "Page request limit reached"),
    );
    let (result, _) = clients.send(&messenger("x"), &creds()).await;
    assert!(
        matches!(result, Err(SendError::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(120)),
        "{result:?}"
    );

    fake.push_text("/api/sendText", 429, "Too Many Requests");
    let (result, _) = clients.send(&waha_text(&fake), &creds()).await;
    assert!(matches!(
        result,
        Err(SendError::RateLimited {
            retry_after: None,
            ..
        })
    ));
}

#[tokio::test]
async fn graph_and_waha_errors_are_classified() {
    let fake = FakeProvider::start().await;
    let clients = Clients::new(&fake.url());
    let creds = creds();

    fake.push(
        "/messages",
        400,
        graph_error(
            190,
            Some(463),
            "Error validating access token: Session has expired",
        ),
    );
    let (result, _) = clients.send(&messenger("x"), &creds).await;
    let Err(SendError::AuthExpired(e)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(e.code, "190");
    assert!(e.message.ends_with("(subcode 463)"), "{}", e.message);

    fake.push(
        "/106/messages",
        400,
        graph_error(131047, None, "(#131047) Re-engagement message"),
    );
    let (result, _) = clients.send(&whatsapp("x"), &creds).await;
    assert!(
        matches!(result, Err(SendError::WindowClosed(_))),
        "{result:?}"
    );

    fake.push(
        "/messages",
        400,
        graph_error(
            10,
            Some(2018278),
            "This message is sent outside of allowed window.",
        ),
    );
    let (result, _) = clients.send(&messenger("x"), &creds).await;
    assert!(
        matches!(result, Err(SendError::WindowClosed(_))),
        "{result:?}"
    );

    fake.push(
        "/messages",
        500,
        json!({"error": {"message": "boom", "code": 2}}),
    );
    let (result, ex) = clients.send(&messenger("x"), &creds).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    assert!(err.retryable());
    assert_eq!(ex.status, Some(500));

    fake.push_text("/messages", 502, "<html>bad gateway</html>");
    let (result, _) = clients.send(&messenger("x"), &creds).await;
    assert!(
        matches!(result, Err(SendError::Transient(ref e)) if e.code == "http_502"),
        "{result:?}"
    );

    fake.push(
        "/messages",
        400,
        graph_error(131026, None, "(#131026) Message undeliverable"),
    );
    let (result, _) = clients.send(&whatsapp("x"), &creds).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert!(!err.retryable());

    fake.push(
        "/api/sendText",
        401,
        json!({"message": "Unauthorized", "statusCode": 401}),
    );
    let (result, _) = clients.send(&waha_text(&fake), &creds).await;
    assert!(matches!(result, Err(SendError::AuthExpired(ref e)) if e.code == "401"));

    fake.push("/api/sendText", 503, json!({"message": "down"}));
    let (result, _) = clients.send(&waha_text(&fake), &creds).await;
    assert!(matches!(result, Err(SendError::Transient(_))));

    // The script is consumed: the next call gets the default success again.
    let (result, _) = clients.send(&messenger("x"), &creds).await;
    assert!(result.unwrap().message_id.unwrap().starts_with("m_"));
    fake.wait_requests(9, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn connection_refused_and_timeouts_are_transient() {
    // A port that was free a moment ago: nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let clients = Clients::new(&format!("http://127.0.0.1:{port}"));
    let (result, ex) = clients.send(&messenger("x"), &creds()).await;
    let Err(SendError::Transient(e)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(e.code, "network");
    assert_eq!(ex.status, None);
    assert!(ex.error.is_some());
    assert_clean(&ex);

    let fake = FakeProvider::start().await;
    let clients = Clients::with_timeouts(
        &fake.url(),
        Duration::from_secs(1),
        Duration::from_millis(200),
    )
    .unwrap();
    fake.push_delayed(
        "/messages",
        Duration::from_secs(2),
        200,
        json!({"message_id": "late"}),
    );
    let (result, ex) = clients.send(&messenger("x"), &creds()).await;
    let Err(SendError::Transient(e)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(e.code, "network");
    assert!(e.message.starts_with("timeout"), "{}", e.message);
    assert!(ex.duration_ms >= 150, "{}", ex.duration_ms);
}
