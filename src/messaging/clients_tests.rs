//! Request bodies, response reading and error classification, without a network.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::*;
use crate::messaging::wire::{MAX_LOGGED_BODY, parse_retry_after};

const TOKEN: &str = "EAAB-planted-page-token";
const APP_SECRET: &str = "app-secret-planted";
const API_KEY: &str = "waha-key-planted";

fn creds() -> Credentials {
    Credentials {
        access_token: Some(Secret::new(TOKEN.into())),
        api_key: Some(Secret::new(API_KEY.into())),
        other_secrets: vec![Secret::new(APP_SECRET.into())],
    }
}

fn graph_error(code: i64, subcode: Option<i64>, message: &str) -> Vec<u8> {
    let mut e = json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "AbC"}});
    if let Some(s) = subcode {
        e["error"]["error_subcode"] = json!(s);
    }
    e.to_string().into_bytes()
}

fn meta(status: u16, body: &[u8]) -> Result<Sent, SendError> {
    interpret_response(Provider::Meta, status, None, body, &[TOKEN])
}

fn waha(status: u16, body: &[u8]) -> Result<Sent, SendError> {
    interpret_response(Provider::Waha, status, None, body, &[API_KEY])
}

// --- Request bodies and URLs -------------------------------------------------------------------

#[test]
fn messenger_and_instagram_bodies() {
    let req = Request::MessengerText {
        page_id: "111".into(),
        recipient: "psid-1".into(),
        text: "hello".into(),
        human_agent_tag: false,
    };
    assert_eq!(
        req.body(),
        json!({"recipient": {"id": "psid-1"}, "messaging_type": "RESPONSE",
            "message": {"text": "hello"}})
    );
    assert_eq!(
        req.url("https://g/v23.0/").unwrap(),
        "https://g/v23.0/111/messages"
    );
    assert_eq!(req.provider(), Provider::Meta);

    let req = Request::InstagramText {
        account_id: "1784".into(),
        recipient: "igsid".into(),
        text: "hi".into(),
        human_agent_tag: true,
    };
    assert_eq!(
        req.body(),
        json!({"recipient": {"id": "igsid"}, "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT", "message": {"text": "hi"}})
    );
    assert_eq!(req.url("https://g").unwrap(), "https://g/1784/messages");
}

#[test]
fn comment_bodies() {
    let req = Request::PrivateReply {
        account_id: "111".into(),
        comment_id: "222_333".into(),
        text: "dm".into(),
    };
    assert_eq!(
        req.body(),
        json!({"recipient": {"comment_id": "222_333"}, "message": {"text": "dm"}})
    );
    assert_eq!(req.url("https://g").unwrap(), "https://g/111/messages");

    let fb = Request::CommentReply {
        comment_id: "222_333".into(),
        text: "public".into(),
        instagram: false,
    };
    assert_eq!(fb.body(), json!({"message": "public"}));
    assert_eq!(fb.url("https://g").unwrap(), "https://g/222_333/comments");
    let ig = Request::CommentReply {
        comment_id: "1799".into(),
        text: "public".into(),
        instagram: true,
    };
    assert_eq!(ig.url("https://g").unwrap(), "https://g/1799/replies");

    let seen = Request::MarkSeen {
        account_id: "111".into(),
        recipient: "psid".into(),
    };
    assert_eq!(
        seen.body(),
        json!({"recipient": {"id": "psid"}, "sender_action": "mark_seen"})
    );
}

#[test]
fn whatsapp_bodies() {
    let text = Request::WhatsappText {
        phone_number_id: "106".into(),
        to: "+4915123456789".into(),
        text: "hallo".into(),
        reply_to: Some("wamid.in".into()),
    };
    assert_eq!(
        text.body(),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "4915123456789", "type": "text",
            "text": {"body": "hallo", "preview_url": false},
            "context": {"message_id": "wamid.in"}})
    );
    assert_eq!(text.url("https://g").unwrap(), "https://g/106/messages");

    let bsuid = Request::WhatsappText {
        phone_number_id: "106".into(),
        to: "BR.1502576394655843".into(),
        text: "x".into(),
        reply_to: None,
    };
    let body = bsuid.body();
    assert_eq!(body["to"], "BR.1502576394655843");
    assert!(body.get("context").is_none());

    let components = json!([{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}]);
    let template = Request::WhatsappTemplate {
        phone_number_id: "106".into(),
        to: "4915123456789".into(),
        name: "follow_up".into(),
        language: "de".into(),
        components: Some(components.clone()),
    };
    assert_eq!(
        template.body(),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "4915123456789", "type": "template",
            "template": {"name": "follow_up", "language": {"code": "de", "policy": "deterministic"},
                "components": components}})
    );
    let bare = Request::WhatsappTemplate {
        phone_number_id: "106".into(),
        to: "1".into(),
        name: "hello_world".into(),
        language: "en_US".into(),
        components: None,
    };
    assert!(bare.body()["template"].get("components").is_none());

    let read = Request::WhatsappRead {
        phone_number_id: "106".into(),
        message_id: "wamid.x".into(),
    };
    assert_eq!(
        read.body(),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x"})
    );
}

#[test]
fn waha_bodies() {
    let text = Request::WahaText {
        base_url: "http://waha:3000/".into(),
        session: "default".into(),
        chat_id: "4915123456789@c.us".into(),
        text: "hi".into(),
        reply_to: Some("false_4915123456789@c.us_AAA".into()),
    };
    assert_eq!(
        text.body(),
        json!({"session": "default", "chatId": "4915123456789@c.us", "text": "hi",
            "reply_to": "false_4915123456789@c.us_AAA"})
    );
    assert_eq!(
        text.url("ignored").unwrap(),
        "http://waha:3000/api/sendText"
    );
    assert_eq!(text.provider(), Provider::Waha);

    let seen = Request::WahaSeen {
        base_url: "http://waha:3000".into(),
        session: "default".into(),
        chat_id: "1@c.us".into(),
        message_id: None,
    };
    assert_eq!(
        seen.body(),
        json!({"session": "default", "chatId": "1@c.us"})
    );
    assert_eq!(seen.url("").unwrap(), "http://waha:3000/api/sendSeen");
    let seen = Request::WahaSeen {
        base_url: "http://waha:3000".into(),
        session: "default".into(),
        chat_id: "1@c.us".into(),
        message_id: Some("false_1@c.us_B".into()),
    };
    assert_eq!(seen.body()["messageId"], "false_1@c.us_B");
}

#[test]
fn ids_that_would_change_the_path_are_refused() {
    for bad in ["", "..", "1/../me", "me?fields=x", "a b", "x#y", "1%2F2"] {
        let req = Request::CommentReply {
            comment_id: bad.into(),
            text: "t".into(),
            instagram: false,
        };
        let err = req.url("https://g").unwrap_err();
        assert_eq!(err.provider_error().code, "invalid_id", "{bad:?}");
        assert!(!err.retryable());
    }
}

// --- Classification ----------------------------------------------------------------------------

#[test]
fn graph_codes_are_classified() {
    let auth = meta(
        400,
        &graph_error(190, Some(463), "Error validating access token"),
    );
    let Err(SendError::AuthExpired(e)) = auth else {
        panic!("{auth:?}")
    };
    assert_eq!(e.code, "190");
    assert_eq!(e.message, "Error validating access token (subcode 463)");
    assert!(matches!(
        meta(401, &graph_error(190, None, "x")),
        Err(SendError::AuthExpired(_))
    ));
    assert!(matches!(meta(401, b""), Err(SendError::AuthExpired(_))));

    assert!(matches!(
        meta(400, &graph_error(131047, None, "Re-engagement message")),
        Err(SendError::WindowClosed(_))
    ));
    assert!(matches!(
        meta(
            400,
            &graph_error(10, Some(2018278), "outside of allowed window")
        ),
        Err(SendError::WindowClosed(_))
    ));
    // Code 10 without that subcode is a permission problem.
    assert!(matches!(
        meta(403, &graph_error(10, None, "permission")),
        Err(SendError::Permanent(_))
    ));

    for code in [4, 17, 32, 613, 80007, 130429, 131056] {
        let r = meta(400, &graph_error(code, None, "throttled"));
        assert!(
            matches!(
                r,
                Err(SendError::RateLimited {
                    retry_after: None,
                    ..
                })
            ),
            "{code}: {r:?}"
        );
    }
    for code in [1, 2, 131000, 131016] {
        let r = meta(400, &graph_error(code, None, "try later"));
        assert!(matches!(r, Err(SendError::Transient(_))), "{code}: {r:?}");
    }
    for code in [100, 131009, 131026, 551, 200, 368] {
        let r = meta(400, &graph_error(code, Some(1), "no"));
        assert!(matches!(r, Err(SendError::Permanent(_))), "{code}: {r:?}");
    }
}

#[test]
fn http_statuses_are_classified() {
    let r = interpret_response(Provider::Meta, 429, Some(Duration::from_secs(7)), b"", &[]);
    let Err(SendError::RateLimited { retry_after, error }) = r else {
        panic!("{r:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    assert_eq!(error.code, "http_429");
    for status in [500, 502, 503, 504] {
        let r = meta(status, b"<html>Bad gateway</html>");
        let Err(SendError::Transient(e)) = r else {
            panic!("{status}: {r:?}")
        };
        assert_eq!(e.code, format!("http_{status}"));
        assert!(e.message.contains("Bad gateway"), "{}", e.message);
    }
    // A Graph error in a 500 (code 100) is still worth a retry; an error flagged transient too.
    assert!(matches!(
        meta(500, &graph_error(100, None, "x")),
        Err(SendError::Transient(_))
    ));
    let flagged = json!({"error": {"message": "x", "code": 100, "is_transient": true}});
    assert!(matches!(
        meta(400, flagged.to_string().as_bytes()),
        Err(SendError::Transient(_))
    ));
    assert!(matches!(
        meta(404, b"not found"),
        Err(SendError::Permanent(_))
    ));
    assert!(matches!(meta(301, b""), Err(SendError::Permanent(_))));
    // An error object in a 200 is still an error.
    assert!(matches!(
        meta(200, &graph_error(100, None, "x")),
        Err(SendError::Permanent(_))
    ));

    assert!(matches!(
        waha(401, br#"{"message":"Unauthorized","statusCode":401}"#),
        Err(SendError::AuthExpired(ref e)) if e.code == "401" && e.message == "Unauthorized"
    ));
    assert!(matches!(
        waha(429, b"slow down"),
        Err(SendError::RateLimited { .. })
    ));
    assert!(matches!(waha(500, b""), Err(SendError::Transient(_))));
    let r = waha(
        400,
        br#"{"message":["chatId must be a string","text should not be empty"],"error":"Bad Request","statusCode":400}"#,
    );
    let Err(SendError::Permanent(e)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(e.code, "400");
    assert_eq!(
        e.message,
        "chatId must be a string; text should not be empty"
    );
    let r = waha(422, b"Session status is not as expected");
    assert!(
        matches!(r, Err(SendError::Permanent(ref e)) if e.code == "422" && e.message.contains("Session status")),
        "{r:?}"
    );
}

#[test]
fn whatsapp_details_join_the_message() {
    let body = json!({"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException",
        "code": 131047, "error_data": {"messaging_product": "whatsapp",
        "details": "Message failed to send because more than 24 hours have passed"},
        "fbtrace_id": "A"}});
    let r = meta(400, body.to_string().as_bytes());
    let Err(SendError::WindowClosed(e)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        e.message,
        "(#131047) Re-engagement message: Message failed to send because more than 24 hours have passed"
    );
}

#[test]
fn retryable_and_accessors() {
    let e = ProviderError {
        code: "x".into(),
        message: "y".into(),
    };
    assert!(SendError::Transient(e.clone()).retryable());
    assert!(
        SendError::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
            error: e.clone()
        }
        .retryable()
    );
    assert!(!SendError::Permanent(e.clone()).retryable());
    assert!(!SendError::AuthExpired(e.clone()).retryable());
    assert!(!SendError::WindowClosed(e.clone()).retryable());
    assert_eq!(SendError::WindowClosed(e.clone()).provider_error(), &e);
    assert_eq!(
        SendError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
            error: e.clone()
        }
        .retry_after(),
        Some(Duration::from_secs(3))
    );
    assert_eq!(
        SendError::Transient(e).to_string(),
        "temporary failure (x): y"
    );
}

// --- Retry-After -------------------------------------------------------------------------------

#[test]
fn retry_after_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("1.5", now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO),
        "a date in the past means now"
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("", now), None);
}

#[test]
fn business_use_case_usage_gives_a_wait() {
    let h = r#"{"1234":[{"type":"pages","call_count":100,"total_cputime":30,"total_time":40,"estimated_time_to_regain_access":3},{"type":"messenger","estimated_time_to_regain_access":0}]}"#;
    assert_eq!(graph::buc_regain(h), Some(Duration::from_secs(180)));
    let idle = r#"{"1234":[{"type":"pages","call_count":1,"estimated_time_to_regain_access":0}]}"#;
    assert_eq!(graph::buc_regain(idle), None);
    assert_eq!(graph::buc_regain("garbage"), None);
}

// --- Response ids ------------------------------------------------------------------------------

#[test]
fn graph_response_ids() {
    let id = |v: Value| meta(200, v.to_string().as_bytes()).unwrap().message_id;
    assert_eq!(
        id(json!({"recipient_id": "psid", "message_id": "m_abc"})),
        Some("m_abc".into())
    );
    assert_eq!(
        id(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": "4915", "wa_id": "4915"}],
            "messages": [{"id": "wamid.HBg", "message_status": "accepted"}]})),
        Some("wamid.HBg".into())
    );
    assert_eq!(id(json!({"id": "222_444"})), Some("222_444".into()));
    assert_eq!(id(json!({"success": true})), None);
    assert_eq!(id(json!({"recipient_id": "psid"})), None);
    assert_eq!(meta(200, b"").unwrap(), Sent::default());
}

#[test]
fn waha_response_ids() {
    let id = |v: Value| waha(201, v.to_string().as_bytes()).unwrap().message_id;
    assert_eq!(
        id(json!({"id": "true_4915@c.us_3EB0"})),
        Some("true_4915@c.us_3EB0".into())
    );
    assert_eq!(
        id(
            json!({"id": {"fromMe": true, "remote": "4915@c.us", "id": "3EB0",
            "_serialized": "true_4915@c.us_3EB0"}, "body": "hi"})
        ),
        Some("true_4915@c.us_3EB0".into())
    );
    assert_eq!(
        id(
            json!({"key": {"remoteJid": "4915@s.whatsapp.net", "fromMe": true, "id": "BAE5"},
            "message": {}})
        ),
        Some("true_4915@c.us_BAE5".into())
    );
    assert_eq!(id(json!({"key": {"id": "BAE5"}})), Some("BAE5".into()));
    assert_eq!(
        id(json!({"_data": {"id": {"_serialized": "true_1@c.us_X"}}})),
        Some("true_1@c.us_X".into())
    );
    assert_eq!(id(json!({})), None);
    assert_eq!(waha(200, b"").unwrap(), Sent::default());
}

#[test]
fn profiles() {
    let p = graph::interpret_profile(
        200,
        None,
        br#"{"first_name":"Ann","last_name":"Lee","profile_pic":"https://cdn/p.jpg","locale":"de_DE","id":"1"}"#,
        &[],
    )
    .unwrap();
    assert_eq!(
        p,
        Profile {
            name: Some("Ann Lee".into()),
            username: None,
            avatar_url: Some("https://cdn/p.jpg".into()),
            locale: Some("de_DE".into()),
        }
    );
    let p = graph::interpret_profile(
        200,
        None,
        br#"{"name":"Ann","username":"ann.l","profile_pic":"https://cdn/q.jpg","id":"2"}"#,
        &[],
    )
    .unwrap();
    assert_eq!(p.name.as_deref(), Some("Ann"));
    assert_eq!(p.username.as_deref(), Some("ann.l"));
    assert_eq!(
        graph::interpret_profile(200, None, br#"{"first_name":"","id":"3"}"#, &[]).unwrap(),
        Profile::default()
    );
    assert!(matches!(
        graph::interpret_profile(400, None, &graph_error(190, None, "expired"), &[]),
        Err(SendError::AuthExpired(_))
    ));
}

// --- Redaction ---------------------------------------------------------------------------------

#[test]
fn error_messages_are_scrubbed() {
    let body = graph_error(190, None, &format!("Malformed access token {TOKEN}"));
    let Err(e) = interpret_response(Provider::Meta, 400, None, &body, &[TOKEN]) else {
        panic!()
    };
    assert!(!e.to_string().contains(TOKEN), "{e}");
    assert!(e.to_string().contains("[redacted]"), "{e}");
    let Err(e) = interpret_response(
        Provider::Waha,
        401,
        None,
        format!(r#"{{"message":"bad key {API_KEY}"}}"#).as_bytes(),
        &[API_KEY],
    ) else {
        panic!()
    };
    assert!(!e.to_string().contains(API_KEY), "{e}");
}

/// No network needed: a request refused before sending, and one to a closed port, still produce
/// exchanges, and neither holds a secret.
#[tokio::test]
async fn exchanges_hold_no_secret() {
    // Port 9 on localhost: nothing listens (discard), so the connection is refused at once.
    let clients = Clients::with_timeouts(
        &format!("http://u:{APP_SECRET}@127.0.0.1:9/v23.0"),
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .unwrap();
    let creds = creds();
    let requests = [
        Request::MessengerText {
            page_id: "111".into(),
            recipient: "psid".into(),
            text: format!("my token is {TOKEN}, the secret {APP_SECRET}"),
            human_agent_tag: false,
        },
        Request::CommentReply {
            comment_id: "../me".into(),
            text: "t".into(),
            instagram: false,
        },
        Request::WahaText {
            base_url: format!("http://127.0.0.1:9/{API_KEY}"),
            session: "default".into(),
            chat_id: "1@c.us".into(),
            text: API_KEY.into(),
            reply_to: None,
        },
    ];
    for req in &requests {
        let (result, exchange) = clients.send(req, &creds).await;
        let err = result.unwrap_err();
        let dump = format!(
            "{exchange:?} {} {err:?}",
            serde_json::to_string(&exchange).unwrap()
        );
        for secret in [TOKEN, APP_SECRET, API_KEY] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
        assert!(exchange.error.is_some());
    }
    let (result, exchange) = clients.send(&requests[0], &creds).await;
    assert_eq!(exchange.request_headers["authorization"], "[redacted]");
    assert_eq!(exchange.provider, "meta");
    assert_eq!(exchange.method, "POST");
    assert!(
        exchange.endpoint.ends_with("/v23.0/111/messages"),
        "{}",
        exchange.endpoint
    );
    let Err(SendError::Transient(e)) = result else {
        panic!("{result:?}")
    };
    assert_eq!(e.code, "network");

    let (result, exchange) = clients.fetch_profile("psid", false, &creds).await;
    assert!(matches!(result, Err(SendError::Transient(_))));
    assert_eq!(exchange.method, "GET");
    assert!(
        exchange
            .endpoint
            .ends_with("/psid?fields=first_name,last_name,profile_pic,locale"),
        "{}",
        exchange.endpoint
    );
}

#[tokio::test]
async fn missing_token_is_an_auth_problem() {
    let clients = Clients::new("http://127.0.0.1:9");
    let req = Request::MarkSeen {
        account_id: "1".into(),
        recipient: "2".into(),
    };
    let (result, exchange) = clients.send(&req, &Credentials::default()).await;
    assert!(matches!(result, Err(SendError::AuthExpired(ref e)) if e.code == "no_credentials"));
    assert_eq!(exchange.status, None);
    assert!(exchange.request_headers.get("authorization").is_none());
}

#[test]
fn long_bodies_are_cut_on_a_char_boundary() {
    let long = "é".repeat(MAX_LOGGED_BODY);
    let cut = truncate(long);
    assert!(cut.len() <= MAX_LOGGED_BODY + "…[truncated]".len());
    assert!(cut.ends_with("…[truncated]"));
    assert_eq!(truncate("short".into()), "short");
}
