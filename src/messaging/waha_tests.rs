//! Every fixture in `tests/fixtures/messaging/waha/` and what it must produce (the same list is in
//! `tests/fixtures/messaging/README.md`), the envelope errors, and a structural mutation sweep.

use serde_json::{Value, json};

use super::parse;
use crate::domain::IdentityKind;
use crate::messaging::event::{
    AccountKey, Attachment, Contact, DeliveryStatus, Direction, EventKind, InboundMessage,
    ProviderError, StatusUpdate,
};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            "../../tests/fixtures/messaging/waha/",
            $name,
            ".json"
        ))
    };
}

const CHAT: &str = "4915112345678@c.us";
const IN_ID: &str = "false_4915112345678@c.us_3EB0C767D26A1D8E4A2B";
const OUT_ID: &str = "true_4915112345678@c.us_3EB0F1E2D3C4B5A69788";

fn kind(body: &str) -> EventKind {
    let mut all = parse(body.as_bytes()).expect("fixture parses");
    assert_eq!(all.len(), 1);
    let event = all.remove(0);
    assert_eq!(event.account, AccountKey::default());
    event.kind
}

fn message(body: &str) -> InboundMessage {
    match kind(body) {
        EventKind::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn ignored(body: &str) -> String {
    match kind(body) {
        EventKind::Ignored { reason } => reason,
        other => panic!("expected Ignored, got {other:?}"),
    }
}

fn anna() -> Contact {
    Contact {
        kind: Some(IdentityKind::WahaChatId),
        external_id: CHAT.into(),
        phone: Some("+4915112345678".into()),
        ..Contact::default()
    }
}

#[test]
fn envelope_errors_name_what_is_missing() {
    let err = |body: &str| parse(body.as_bytes()).unwrap_err().0;
    assert!(err("{").contains("not JSON"));
    assert!(err("[]").contains("not a JSON object"));
    assert!(err(r#"{"payload": {}}"#).contains("`event`"));
    assert!(err(r#"{"event": 1}"#).contains("`event`"));
}

#[test]
fn text_message_from_a_c_us_chat() {
    let m = message(fixture!("message_text"));
    assert_eq!(m.external_id, IN_ID);
    assert_eq!(
        m.contact,
        Contact {
            name: Some("Anna Müller".into()),
            ..anna()
        }
    );
    assert_eq!(m.direction, Direction::In);
    assert_eq!(m.text.as_deref(), Some("Hallo, ist mein Rad schon fertig?"));
    assert_eq!(m.at_ms, 1_770_040_004_000);
    assert!(m.attachments.is_empty() && m.reply_to.is_none() && !m.edited);
}

#[test]
fn media_message() {
    let m = message(fixture!("message_media"));
    assert_eq!(m.text.as_deref(), Some("Hier der Kostenvoranschlag"));
    assert_eq!(
        m.attachments,
        [Attachment {
            kind: "document".into(),
            url: Some(
                "http://waha:3000/api/files/default/false_4915112345678@c.us_3EB0A1B2C3D4E5F60718.pdf"
                    .into()
            ),
            mime_type: Some("application/pdf".into()),
            filename: Some("Kostenvoranschlag_2026-02.pdf".into()),
            ..Attachment::default()
        }]
    );
}

#[test]
fn location_message() {
    let m = message(fixture!("message_location"));
    assert_eq!(m.text, None, "the thumbnail in `body` is not text");
    assert_eq!(m.attachments[0].kind, "location");
    assert_eq!(
        m.attachments[0].data.as_ref().unwrap()["latitude"],
        52.4986321
    );
}

#[test]
fn echoes_from_me() {
    let m = message(fixture!("message_from_me"));
    assert_eq!(m.external_id, OUT_ID);
    assert_eq!(m.direction, Direction::Out);
    assert_eq!(
        m.contact,
        anna(),
        "the chat is `to`, and notifyName is not the customer's"
    );
    assert_eq!(
        m.text.as_deref(),
        Some("Ja, Sie können es ab 16 Uhr abholen.")
    );

    let any = message(fixture!("message_any_from_me"));
    assert_eq!((any.direction, any.contact), (Direction::Out, anna()));
    assert!(ignored(fixture!("message_any_inbound")).contains("duplicates `message`"));
}

#[test]
fn acks() {
    let status = |body: &str| match kind(body) {
        EventKind::Status(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        status(fixture!("message_ack_server")),
        StatusUpdate {
            message_id: OUT_ID.into(),
            status: DeliveryStatus::Sent,
            at_ms: 1_770_040_200_000,
            error: None,
            recipient: Some(CHAT.into()),
        }
    );
    assert_eq!(
        status(fixture!("message_ack_device")).status,
        DeliveryStatus::Delivered
    );
    assert_eq!(
        status(fixture!("message_ack_read")).status,
        DeliveryStatus::Read
    );
    assert_eq!(
        status(fixture!("message_ack_played")).status,
        DeliveryStatus::Read
    );
    let failed = status(fixture!("message_ack_error"));
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(
        failed.error,
        Some(ProviderError {
            code: "ack_error".into(),
            message: "ERROR".into()
        })
    );
    assert_eq!(ignored(fixture!("message_ack_pending")), "ack PENDING");
}

#[test]
fn session_status() {
    assert_eq!(
        kind(fixture!("session_status")),
        EventKind::SessionStatus {
            status: "WORKING".into()
        }
    );
}

#[test]
fn reactions() {
    let reaction = |emoji: Option<&str>, at_ms| EventKind::Reaction {
        contact: anna(),
        message_id: OUT_ID.into(),
        emoji: emoji.map(str::to_owned),
        at_ms,
    };
    assert_eq!(
        kind(fixture!("message_reaction")),
        reaction(Some("👍"), 1_770_040_400_000)
    );
    assert_eq!(
        kind(fixture!("message_reaction_removed")),
        reaction(None, 1_770_040_461_000)
    );
}

#[test]
fn revoked_and_edited_name_the_original() {
    assert_eq!(
        kind(fixture!("message_revoked")),
        EventKind::Removed {
            external_id: IN_ID.into()
        }
    );
    assert_eq!(
        kind(fixture!("message_revoked_noweb")),
        EventKind::Removed {
            external_id: "false_4915112345678@c.us_3EB0B7C8D9E0F1A2B3C4".into()
        }
    );
    let m = message(fixture!("message_edited"));
    assert!(m.edited);
    assert_eq!(m.external_id, IN_ID);
    assert_eq!(m.direction, Direction::In);
    assert_eq!(
        m.text.as_deref(),
        Some("Hallo, ist mein Rad (das blaue Gravelbike) schon fertig?")
    );
}

#[test]
fn chat_kinds() {
    assert_eq!(
        ignored(fixture!("message_group")),
        "group chats are not supported"
    );
    let lid = message(fixture!("message_lid"));
    assert_eq!(
        lid.contact,
        Contact {
            kind: Some(IdentityKind::WahaChatId),
            external_id: "183456789012345@lid".into(),
            name: Some("Kai".into()),
            ..Contact::default()
        }
    );
    let noweb = message(fixture!("message_s_whatsapp_net"));
    assert_eq!(
        noweb.contact,
        Contact {
            name: Some("Anna Müller".into()),
            ..anna()
        }
    );
}

#[test]
fn reply_to_is_completed_to_the_stored_id() {
    let m = message(fixture!("message_reply"));
    assert_eq!(m.reply_to.as_deref(), Some(OUT_ID));
}

#[test]
fn unknown_event() {
    assert_eq!(
        kind(fixture!("call_received")),
        EventKind::Unknown {
            what: "call.received".into()
        }
    );
}

#[test]
fn empty_message_keeps_a_trace_unless_it_is_a_notice() {
    let body = |kind: &str| {
        json!({"event": "message", "payload": {"id": IN_ID, "from": CHAT, "fromMe": false,
            "timestamp": 1, "body": "", "_data": {"type": kind}}})
        .to_string()
    };
    let m = message(&body("poll_creation"));
    assert_eq!(m.attachments[0].kind, "unsupported");
    assert_eq!(
        m.attachments[0].data,
        Some(json!({"type": "poll_creation"}))
    );
    assert!(ignored(&body("e2e_notification")).contains("notice"));
}

#[test]
fn reasons_keep_phone_numbers_out() {
    let body =
        json!({"event": "message", "payload": {"id": "x", "from": "4915112345678", "body": "hi"}});
    let reason = ignored(&body.to_string());
    assert!(!reason.contains("4915112345678"), "{reason}");
}

// ---- Robustness -------------------------------------------------------------------------------

/// Every fixture file, read at run time so that a new one is covered without a list.
fn all_fixtures() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/messaging/waha");
    let mut all: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    all.sort();
    assert!(all.len() >= 23, "fixtures missing from {dir}");
    all
}

#[test]
fn every_fixture_parses_into_one_unrouted_event() {
    for body in all_fixtures() {
        kind(&body);
    }
}

/// Every node of every fixture replaced, one at a time, by a value of each other JSON type, and
/// every seventh prefix of the bytes: parsing must never panic.
#[test]
fn mutated_and_truncated_fixtures_never_panic() {
    let replacements = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!(""),
        json!("x@g.us"),
        json!([]),
        json!({}),
        json!(true),
    ];
    for body in all_fixtures() {
        let value: Value = serde_json::from_str(&body).unwrap();
        let mut paths = Vec::new();
        collect_paths(&value, &mut Vec::new(), &mut paths);
        for path in &paths {
            let pointer: String = path.iter().map(|p| format!("/{p}")).collect();
            for replacement in &replacements {
                let mut mutated = value.clone();
                *mutated.pointer_mut(&pointer).unwrap() = replacement.clone();
                let _ = parse(mutated.to_string().as_bytes());
            }
        }
        for end in (0..body.len()).step_by(7) {
            let _ = parse(&body.as_bytes()[..end]);
        }
    }
}

fn collect_paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        at.push(key);
        collect_paths(child, at, out);
        at.pop();
    }
}
