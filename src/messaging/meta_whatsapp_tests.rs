//! The WhatsApp fixtures in `tests/fixtures/messaging/meta/` and what they must produce (the same
//! list is in `tests/fixtures/messaging/README.md`).

use serde_json::{Value, json};

use super::super::tests::{events, ignored, kind, message, one};
use crate::domain::IdentityKind;
use crate::messaging::event::{
    AccountKey, Attachment, Contact, DeliveryStatus, Direction, EventKind, MessageKind,
    ProviderError, StatusUpdate,
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

const WABA: &str = "102290129340398";
const PHONE_NUMBER_ID: &str = "106540352242922";
const OUT_WAMID: &str = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjQ2QjkxMEYzQzVENUI4RTYxOAA=";

fn wa_account() -> AccountKey {
    AccountKey {
        entry_id: Some(WABA.into()),
        phone_number_id: Some(PHONE_NUMBER_ID.into()),
    }
}

fn anna() -> Contact {
    Contact {
        kind: Some(IdentityKind::WaId),
        external_id: "4915112345678".into(),
        phone: Some("+4915112345678".into()),
        name: Some("Anna Müller".into()),
        ..Contact::default()
    }
}

#[test]
fn whatsapp_text() {
    let event = one(fixture!("whatsapp_text"));
    assert_eq!(event.account, wa_account());
    let EventKind::Message(m) = event.kind else {
        panic!()
    };
    assert_eq!(
        m.external_id,
        "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFDNBNzRGQzk1QjFCODY3NUU2QjI2AA=="
    );
    assert_eq!(m.contact, anna());
    assert_eq!(m.direction, Direction::In);
    assert_eq!(
        m.text.as_deref(),
        Some("Hallo! Können Sie mich bitte zurückrufen?")
    );
    assert_eq!(m.at_ms, 1_770_033_204_000);
}

#[test]
fn whatsapp_media() {
    let m = message(fixture!("whatsapp_image"));
    assert_eq!(m.text.as_deref(), Some("Das ist der Schaden am Rahmen"));
    assert_eq!(
        m.attachments,
        [Attachment {
            kind: "image".into(),
            media_id: Some("1146275663485741".into()),
            mime_type: Some("image/jpeg".into()),
            sha256: Some("hU9lW5cDt0F4p3vS1pZbJ6mE2kYqN8xR7oT0aG3dC1w=".into()),
            ..Attachment::default()
        }]
    );
    let doc = message(fixture!("whatsapp_document"));
    assert_eq!(doc.text.as_deref(), Some("Rechnung vom März"));
    assert_eq!(doc.attachments[0].kind, "document");
    assert_eq!(
        doc.attachments[0].filename.as_deref(),
        Some("Rechnung_2026-03.pdf")
    );
    assert_eq!(
        doc.attachments[0].mime_type.as_deref(),
        Some("application/pdf")
    );

    let audio = message(fixture!("whatsapp_audio"));
    assert_eq!(audio.text, None);
    assert_eq!(audio.attachments[0].kind, "audio");
    assert_eq!(
        audio.attachments[0].media_id.as_deref(),
        Some("874512309876543")
    );
    assert_eq!(audio.attachments[0].data, Some(json!({"voice": true})));

    let video = message(fixture!("whatsapp_video"));
    assert_eq!(
        (video.attachments[0].kind.as_str(), video.text.as_deref()),
        ("video", Some("So klingt das Geräusch"))
    );
    let sticker = message(fixture!("whatsapp_sticker"));
    assert_eq!(sticker.attachments[0].kind, "sticker");
    assert_eq!(
        sticker.attachments[0].mime_type.as_deref(),
        Some("image/webp")
    );
    assert_eq!(sticker.attachments[0].data, None);
}

#[test]
fn whatsapp_location_and_contacts() {
    let m = message(fixture!("whatsapp_location"));
    assert_eq!(m.text, None);
    assert_eq!(m.attachments[0].kind, "location");
    assert_eq!(
        m.attachments[0].data,
        Some(json!({"latitude": 52.4986321, "longitude": 13.4189457,
            "name": "Fahrradladen Kreuzberg", "address": "Oranienstraße 25, 10999 Berlin"}))
    );
    let m = message(fixture!("whatsapp_contacts"));
    assert_eq!(m.contact, anna());
    assert_eq!(m.attachments[0].kind, "contacts");
    let data = m.attachments[0].data.as_ref().unwrap();
    assert_eq!(data[0]["name"]["formatted_name"], "Max Mustermann");
}

#[test]
fn whatsapp_replies_are_postbacks() {
    let check = |body: &str, kind: &str, title: &str, data: Value| {
        let m = message(body);
        assert_eq!(m.kind, MessageKind::Postback);
        assert_eq!(m.text.as_deref(), Some(title));
        assert_eq!(m.reply_to.as_deref(), Some(OUT_WAMID));
        assert_eq!(
            m.attachments,
            [Attachment {
                kind: kind.into(),
                data: Some(data),
                ..Attachment::default()
            }]
        );
    };
    check(
        fixture!("whatsapp_button_reply"),
        "button_reply",
        "Termin bestätigen",
        json!({"payload": "confirm_appointment"}),
    );
    check(
        fixture!("whatsapp_list_reply"),
        "list_reply",
        "Mi, 4. Feb, 10:00",
        json!({"payload": "slot_2026_02_04_10", "description": "Werkstatt Kreuzberg, ca. 45 Minuten"}),
    );
    check(
        fixture!("whatsapp_button"),
        "button",
        "Keine Werbung mehr",
        json!({"payload": "STOP_PROMOTIONS"}),
    );
}

#[test]
fn whatsapp_reaction_and_removal() {
    let reaction = |emoji: Option<&str>, at_ms| EventKind::Reaction {
        contact: anna(),
        message_id: OUT_WAMID.into(),
        emoji: emoji.map(str::to_owned),
        at_ms,
    };
    assert_eq!(
        kind(fixture!("whatsapp_reaction")),
        reaction(Some("👍"), 1_770_033_871_000)
    );
    assert_eq!(
        kind(fixture!("whatsapp_reaction_removed")),
        reaction(None, 1_770_033_932_000)
    );
}

#[test]
fn whatsapp_context_and_unsupported() {
    let m = message(fixture!("whatsapp_reply_context"));
    assert_eq!(m.reply_to.as_deref(), Some(OUT_WAMID));
    assert_eq!(m.text.as_deref(), Some("Ja, 10 Uhr passt mir."));

    let m = message(fixture!("whatsapp_unsupported"));
    assert_eq!(m.text, None);
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].kind, "unsupported");
    let data = m.attachments[0].data.as_ref().unwrap();
    assert_eq!(data["errors"][0]["code"], 131051);
    assert_eq!(data["unsupported"]["type"], "edit");
}

#[test]
fn whatsapp_business_scoped_user_ids() {
    let m = message(fixture!("whatsapp_bsuid_only"));
    assert_eq!(
        m.contact,
        Contact {
            kind: Some(IdentityKind::WhatsappBsuid),
            external_id: "DE.1502576394655843".into(),
            name: Some("Lena".into()),
            username: Some("@lena.rides".into()),
            ..Contact::default()
        }
    );
    let m = message(fixture!("whatsapp_bsuid_with_phone"));
    assert_eq!(
        m.contact,
        Contact {
            kind: Some(IdentityKind::WhatsappBsuid),
            external_id: "DE.1839475610293847".into(),
            aliases: vec![(IdentityKind::WaId, "4915112345678".into())],
            ..anna()
        }
    );
}

#[test]
fn whatsapp_statuses() {
    let status = |body: &str| match kind(body) {
        EventKind::Status(s) => s,
        other => panic!("{other:?}"),
    };
    let sent = status(fixture!("whatsapp_status_sent"));
    assert_eq!(
        sent,
        StatusUpdate {
            message_id: OUT_WAMID.into(),
            status: DeliveryStatus::Sent,
            at_ms: 1_770_034_237_000,
            error: None,
            recipient: Some("4915112345678".into()),
        }
    );
    assert_eq!(
        status(fixture!("whatsapp_status_delivered")).status,
        DeliveryStatus::Delivered
    );
    assert_eq!(
        status(fixture!("whatsapp_status_read")).status,
        DeliveryStatus::Read
    );
    assert_eq!(
        status(fixture!("whatsapp_status_played")).status,
        DeliveryStatus::Read
    );
    let failed = status(fixture!("whatsapp_status_failed"));
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(
        failed.error,
        Some(ProviderError {
            code: "131047".into(),
            message: "Re-engagement message: Message failed to send because more than 24 hours \
                      have passed since the customer last replied to this number."
                .into(),
        })
    );
}

#[test]
fn whatsapp_batch_of_messages_and_statuses() {
    let all = events(fixture!("whatsapp_batch"));
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|e| e.account == wa_account()));
    assert!(matches!(&all[0].kind, EventKind::Message(m) if m.contact == anna()));
    assert!(matches!(&all[1].kind, EventKind::Status(s) if s.status == DeliveryStatus::Read));
}

#[test]
fn whatsapp_unknown_field_errors_and_echoes() {
    let event = one(fixture!("whatsapp_account_update"));
    assert_eq!(
        event.kind,
        EventKind::Unknown {
            what: "whatsapp_business_account/account_update".into()
        }
    );
    assert_eq!(event.account.phone_number_id, None);
    assert_eq!(
        ignored(fixture!("whatsapp_value_errors")),
        "WhatsApp error 131000: Something went wrong: Unable to process the message. Please try again."
    );
    let echo = message(fixture!("whatsapp_smb_message_echo"));
    assert_eq!(echo.direction, Direction::Out);
    assert_eq!(echo.contact.external_id, "4915112345678");
    assert_eq!(echo.contact.phone.as_deref(), Some("+4915112345678"));
    assert_eq!(echo.text.as_deref(), Some("Bis morgen um 10!"));
}

#[test]
fn whatsapp_sender_is_matched_to_its_contact() {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{
        "field": "messages", "value": {
            "metadata": {"phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "A"}, "wa_id": "4915100000001"},
                         {"profile": {"name": "B"}, "wa_id": "4915100000002"}],
            "messages": [
                {"from": "4915100000002", "id": "wamid.b", "timestamp": "1", "type": "text", "text": {"body": "b"}},
                {"from": "4915100000003", "id": "wamid.c", "timestamp": "1", "type": "text", "text": {"body": "c"}},
                {"id": "wamid.d", "timestamp": "1", "type": "text", "text": {"body": "d"}},
                {"from": "4915100000001", "id": "wamid.e", "timestamp": "1", "type": "order", "order": {"catalog_id": "9"}}]}}]}]});
    let all = events(&body.to_string());
    let EventKind::Message(b) = &all[0].kind else {
        panic!()
    };
    assert_eq!(b.contact.name.as_deref(), Some("B"));
    let EventKind::Message(c) = &all[1].kind else {
        panic!()
    };
    assert_eq!(
        (c.contact.name.as_deref(), c.contact.phone.as_deref()),
        (None, Some("+4915100000003"))
    );
    assert!(matches!(&all[2].kind, EventKind::Ignored { .. }));
    let EventKind::Message(e) = &all[3].kind else {
        panic!()
    };
    assert_eq!(e.attachments[0].kind, "order");
    assert_eq!(e.attachments[0].data, Some(json!({"catalog_id": "9"})));
}
