//! The Messenger, Instagram and Page feed fixtures in `tests/fixtures/messaging/meta/` and what
//! they must produce (the list is in `tests/fixtures/messaging/README.md`; WhatsApp's are in
//! `meta_whatsapp_tests.rs`), the envelope errors, and a mutation sweep over every fixture.

use serde_json::{Value, json};

use super::{parse, parse_entry};
use crate::domain::IdentityKind;
use crate::messaging::event::{
    AccountKey, Attachment, CommentThread, Contact, DeliveryStatus, Direction, EventKind,
    InboundEvent, InboundMessage, MessageKind, StatusUpdate,
};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            "../../tests/fixtures/messaging/meta/",
            $name,
            ".json"
        ))
    };
}

const PAGE: &str = "104857600000001";
const PSID: &str = "7254398172639451";
const IG: &str = "17841400000000001";
const IGSID: &str = "6981243576120458";
const IG_MID_OUT: &str = "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDAwMDAwMDAwMDAxOjM0MDI4MjM2Njg0MTcxMDMwMDk0OTEyODE5MDcxOTU0NjU4NTk0ODozMTkzMDE1NjEyNzQ4OTMxMjU0Mzc2MTIwNDU2Nzg5MDEyMwZDZD";

pub(super) fn events(body: &str) -> Vec<InboundEvent> {
    parse(body.as_bytes()).expect("fixture parses")
}

pub(super) fn one(body: &str) -> InboundEvent {
    let mut all = events(body);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

pub(super) fn kind(body: &str) -> EventKind {
    one(body).kind
}

pub(super) fn message(body: &str) -> InboundMessage {
    match kind(body) {
        EventKind::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

pub(super) fn ignored(body: &str) -> String {
    match kind(body) {
        EventKind::Ignored { reason } => reason,
        other => panic!("expected Ignored, got {other:?}"),
    }
}

fn psid(id: &str) -> Contact {
    Contact {
        kind: Some(IdentityKind::Psid),
        external_id: id.into(),
        ..Contact::default()
    }
}

fn igsid(id: &str) -> Contact {
    Contact {
        kind: Some(IdentityKind::Igsid),
        ..psid(id)
    }
}

fn page_account() -> AccountKey {
    AccountKey {
        entry_id: Some(PAGE.into()),
        phone_number_id: None,
    }
}

// ---- Envelope ---------------------------------------------------------------------------------

#[test]
fn envelope_errors_name_what_is_missing() {
    let err = |body: &str| parse(body.as_bytes()).unwrap_err().0;
    assert!(err("not json").contains("not a JSON object"));
    assert!(err("").contains("not a JSON object"));
    assert!(err(r#"{"entry": []}"#).contains("`object`"));
    assert!(err(r#"{"object": 7, "entry": []}"#).contains("`object`"));
    assert!(err(r#"{"object": "page"}"#).contains("`entry`"));
    assert!(err(r#"{"object": "page", "entry": {}}"#).contains("`entry`"));
    assert!(err(r#"{"object": "page", "entry": [1]}"#).contains("not an object"));
    assert_eq!(parse(br#"{"object": "page", "entry": []}"#), Ok(vec![]));
}

#[test]
fn parse_entry_parses_one_entry_of_a_batch() {
    let body: Value = serde_json::from_str(fixture!("messenger_batch")).unwrap();
    let second = serde_json::to_string(&body["entry"][1]).unwrap();
    let raw = serde_json::value::RawValue::from_string(second).unwrap();
    let events = parse_entry("page", &raw).unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.account == page_account()));
    let Ok(bad) = serde_json::value::RawValue::from_string("\"x\"".into()) else {
        unreachable!()
    };
    assert!(parse_entry("page", &bad).is_err());
}

#[test]
fn unknown_object_is_unknown_per_entry() {
    let event = one(fixture!("unknown_object"));
    assert_eq!(
        event.kind,
        EventKind::Unknown {
            what: "permissions".into()
        }
    );
    assert_eq!(event.account.entry_id.as_deref(), Some("10163245798012345"));
}

// ---- Messenger --------------------------------------------------------------------------------

#[test]
fn messenger_text() {
    let event = one(fixture!("messenger_text"));
    assert_eq!(event.account, page_account());
    let EventKind::Message(m) = event.kind else {
        panic!()
    };
    assert_eq!(
        m.external_id,
        "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"
    );
    assert_eq!(m.contact, psid(PSID));
    assert_eq!(m.direction, Direction::In);
    assert_eq!(m.kind, MessageKind::Message);
    assert_eq!(
        m.text.as_deref(),
        Some("Hallo, ist mein Paket schon unterwegs? Bestellnummer 48213 – viele Grüße")
    );
    assert_eq!(m.at_ms, 1_770_031_204_871);
    assert!(m.attachments.is_empty() && m.reply_to.is_none() && m.thread.is_none() && !m.edited);
}

#[test]
fn messenger_attachments() {
    let m = message(fixture!("messenger_attachments"));
    assert_eq!(m.text, None);
    let kinds: Vec<&str> = m.attachments.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["image", "file"]);
    assert!(
        m.attachments[0]
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://scontent.xx.fbcdn.net/")
    );
    assert!(
        m.attachments[1]
            .url
            .as_deref()
            .unwrap()
            .contains("Rechnung_48213.pdf")
    );
    assert!(
        m.attachments
            .iter()
            .all(|a| a.data.is_none() && a.media_id.is_none())
    );
}

#[test]
fn messenger_echo_is_outbound_to_the_recipient() {
    let m = message(fixture!("messenger_echo"));
    assert_eq!(m.direction, Direction::Out);
    assert_eq!(m.contact, psid(PSID));
    assert!(m.external_id.starts_with("m_Pq9W"));
    assert_eq!(m.at_ms, 1_770_031_330_102);
}

#[test]
fn messenger_delivery_and_read_are_watermarks() {
    let out =
        "m_Pq9Wo8Ei7Ru6Ty5Yu4Ui3Io2Op1As0Sd9Df8Fg7Gh6Hj5Jk4Kl3Lz2Xc1Cv0Vb9Bn8Nm7Mq6Wn5Eb4Rv3Tc2Yx";
    let watermark = |status, mids: &[&str]| EventKind::Watermark {
        contact: PSID.into(),
        status,
        watermark_ms: 1_770_031_330_102,
        mids: mids.iter().map(|m| m.to_string()).collect(),
    };
    assert_eq!(
        kind(fixture!("messenger_delivery")),
        watermark(DeliveryStatus::Delivered, &[out])
    );
    assert_eq!(
        kind(fixture!("messenger_delivery_watermark")),
        watermark(DeliveryStatus::Delivered, &[])
    );
    assert_eq!(
        kind(fixture!("messenger_read")),
        watermark(DeliveryStatus::Read, &[])
    );
}

#[test]
fn messenger_postback_with_referral() {
    let m = message(fixture!("messenger_postback_referral"));
    assert_eq!(m.kind, MessageKind::Postback);
    assert_eq!(m.text.as_deref(), Some("Bestellung verfolgen"));
    assert!(m.external_id.starts_with("m_Wx2C"));
    assert_eq!(
        m.attachments,
        [Attachment {
            kind: "postback".into(),
            data: Some(json!({
                "payload": "TRACK_ORDER",
                "referral": {"ref": "fruehling_2026", "source": "SHORTLINK", "type": "OPEN_THREAD"}
            })),
            ..Attachment::default()
        }]
    );
}

#[test]
fn postback_without_mid_gets_a_stable_id() {
    let body = json!({"object": "page", "entry": [{"id": PAGE, "time": 1, "messaging": [{
        "sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1_770_031_500_412_i64,
        "postback": {"title": "Los", "payload": "GET_STARTED"}}]}]});
    let m = message(&body.to_string());
    assert_eq!(m.external_id, format!("postback:{PSID}:1770031500412"));
}

#[test]
fn messenger_standby_is_read_like_messaging() {
    let m = message(fixture!("messenger_standby"));
    assert_eq!(m.text.as_deref(), Some("Hallo? Ist da noch jemand?"));
    assert_eq!(m.contact, psid(PSID));
}

#[test]
fn messenger_batch_of_two_entries() {
    let all = events(fixture!("messenger_batch"));
    let summary: Vec<(String, String)> = all
        .iter()
        .map(|e| match &e.kind {
            EventKind::Message(m) => (m.contact.external_id.clone(), m.text.clone().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(summary.len(), 4);
    assert_eq!(summary[0], (PSID.into(), "Guten Morgen!".into()));
    assert_eq!(
        summary[3],
        ("6031987452210377".into(), "Und bis wann?".into())
    );
    assert!(all.iter().all(|e| e.account == page_account()));
}

#[test]
fn messenger_message_edit() {
    let m = message(fixture!("messenger_message_edit"));
    assert!(m.edited);
    assert!(m.external_id.starts_with("m_AG5Hz2"));
    assert_eq!(
        m.text.as_deref(),
        Some("Hallo, ist mein Paket schon unterwegs? Bestellnummer 48231")
    );
}

#[test]
fn messenger_unknown_messaging_event() {
    assert_eq!(
        kind(fixture!("messenger_optin")),
        EventKind::Unknown {
            what: "page/messaging.optin".into()
        }
    );
}

// ---- Instagram --------------------------------------------------------------------------------

#[test]
fn instagram_text_and_echo() {
    let event = one(fixture!("instagram_text"));
    assert_eq!(event.account.entry_id.as_deref(), Some(IG));
    let EventKind::Message(m) = event.kind else {
        panic!()
    };
    assert_eq!(m.contact, igsid(IGSID));
    assert_eq!(m.direction, Direction::In);
    assert_eq!(m.text.as_deref(), Some("Hi! Habt ihr die Jacke noch in M?"));

    let echo = message(fixture!("instagram_echo"));
    assert_eq!(
        (echo.direction, echo.contact),
        (Direction::Out, igsid(IGSID))
    );
    assert_eq!(echo.external_id, IG_MID_OUT);
}

#[test]
fn instagram_read_names_the_message() {
    assert_eq!(
        kind(fixture!("instagram_read")),
        EventKind::Status(StatusUpdate {
            message_id: IG_MID_OUT.into(),
            status: DeliveryStatus::Read,
            at_ms: 1_770_032_100_733,
            error: None,
            recipient: Some(IGSID.into()),
        })
    );
}

#[test]
fn instagram_reaction_and_unreact() {
    let reaction = |emoji: Option<&str>, at_ms| EventKind::Reaction {
        contact: igsid(IGSID),
        message_id: IG_MID_OUT.into(),
        emoji: emoji.map(str::to_owned),
        at_ms,
    };
    assert_eq!(
        kind(fixture!("instagram_reaction")),
        reaction(Some("❤️"), 1_770_032_120_118)
    );
    assert_eq!(
        kind(fixture!("instagram_unreact")),
        reaction(None, 1_770_032_140_502)
    );
}

#[test]
fn instagram_story_reply_deleted_unsupported() {
    let m = message(fixture!("instagram_story_reply"));
    assert_eq!(m.text.as_deref(), Some("Wow, wo gibt's die?"));
    assert_eq!(m.reply_to, None);
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].kind, "story_reply");
    assert!(
        m.attachments[0]
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://lookaside.fbsbx.com/")
    );
    assert_eq!(
        m.attachments[0].data,
        Some(json!({"id": "17912345678901234"}))
    );

    let EventKind::Removed { external_id } = kind(fixture!("instagram_deleted")) else {
        panic!()
    };
    assert!(external_id.ends_with("NTQzMjEwOTg3NjU0MwZDZD"));

    let m = message(fixture!("instagram_unsupported"));
    assert_eq!(m.text, None);
    assert_eq!(
        m.attachments,
        [Attachment {
            kind: "unsupported".into(),
            ..Attachment::default()
        }]
    );
}

#[test]
fn instagram_comments_in_both_shapes() {
    let m = message(fixture!("instagram_comment"));
    assert_eq!(m.kind, MessageKind::Comment);
    assert_eq!(m.external_id, "17865799348089039");
    assert_eq!(
        m.contact,
        Contact {
            username: Some("lena.schmidt.design".into()),
            ..igsid(IGSID)
        }
    );
    assert_eq!(m.text.as_deref(), Some("Gibt es das auch in Blau? 💙"));
    assert_eq!(
        m.thread,
        Some(CommentThread {
            post_id: Some("17895695668004550".into()),
            parent_id: None
        })
    );
    // No timestamp of its own: the entry's `time`, in seconds here.
    assert_eq!(m.at_ms, 1_770_032_400_000);

    let event = one(fixture!("instagram_comment_direct"));
    assert_eq!(event.account.entry_id.as_deref(), Some(IG));
    let EventKind::Message(reply) = event.kind else {
        panic!()
    };
    assert_eq!(reply.kind, MessageKind::Comment);
    assert_eq!(reply.external_id, "17912233445566778");
    assert_eq!(
        reply.thread.unwrap().parent_id.as_deref(),
        Some("17865799348089039")
    );
    assert_eq!(reply.at_ms, 1_770_032_460_000);
}

#[test]
fn instagram_live_comment_and_own_comment() {
    let m = message(fixture!("instagram_live_comment"));
    assert_eq!(m.kind, MessageKind::Comment);
    assert_eq!(m.contact.username.as_deref(), Some("tom.on.wheels"));
    assert_eq!(
        m.thread.unwrap().post_id.as_deref(),
        Some("18034567890123456")
    );
    assert!(ignored(fixture!("instagram_comment_by_account")).contains("itself"));
}

// ---- Facebook Page feed -----------------------------------------------------------------------

const POST: &str = "104857600000001_122145678901234567";
const COMMENT: &str = "122145678901234567_1098765432109876";

#[test]
fn feed_comment_add_and_reply() {
    let m = message(fixture!("page_feed_comment_add"));
    assert_eq!(m.kind, MessageKind::Comment);
    assert_eq!(m.external_id, COMMENT);
    assert_eq!(
        m.contact,
        Contact {
            name: Some("Jonas Weber".into()),
            ..psid("8142953760418825")
        }
    );
    assert_eq!(m.text.as_deref(), Some("Wann habt ihr wieder geöffnet?"));
    assert_eq!(
        m.thread,
        Some(CommentThread {
            post_id: Some(POST.into()),
            parent_id: None
        })
    );
    assert_eq!(m.at_ms, 1_770_032_798_000);
    assert!(!m.edited);

    let reply = message(fixture!("page_feed_comment_reply"));
    assert_eq!(
        reply.thread,
        Some(CommentThread {
            post_id: Some(POST.into()),
            parent_id: Some(COMMENT.into())
        })
    );
}

#[test]
fn feed_comment_edited_and_removed() {
    let m = message(fixture!("page_feed_comment_edited"));
    assert!(m.edited);
    assert_eq!(m.external_id, COMMENT);
    assert_eq!(
        m.text.as_deref(),
        Some("Wann habt ihr nach Ostern wieder geöffnet?")
    );
    assert_eq!(
        kind(fixture!("page_feed_comment_remove")),
        EventKind::Removed {
            external_id: COMMENT.into()
        }
    );
}

#[test]
fn feed_items_that_are_skipped() {
    assert_eq!(
        ignored(fixture!("page_feed_comment_by_page")),
        "comment by the Page itself"
    );
    assert!(ignored(fixture!("page_feed_post")).contains("`photo`"));
    assert!(ignored(fixture!("page_feed_reaction")).contains("`reaction`"));
    assert_eq!(ignored(fixture!("page_feed_comment_hide")), "comment hide");
}

// ---- Robustness -------------------------------------------------------------------------------

/// Every fixture file, read at run time so that a new one is covered without a list.
fn all_fixtures() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/messaging/meta");
    let mut all: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            (
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    all.sort();
    assert!(all.len() >= 58, "fixtures missing from {dir}");
    all
}

#[test]
fn every_fixture_parses_with_its_account() {
    for (name, body) in all_fixtures() {
        let all = parse(body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!all.is_empty(), "{name}");
        assert!(all.iter().all(|e| e.account.entry_id.is_some()), "{name}");
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
        json!("x"),
        json!([]),
        json!({}),
        json!([{}]),
    ];
    for (_, body) in all_fixtures() {
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
