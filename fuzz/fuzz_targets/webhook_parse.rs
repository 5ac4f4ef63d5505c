//! Meta and WAHA webhook parsers: never panic on any bytes, and what they return keeps the
//! promises the event-applying code relies on (ids present, phones in E.164, WAHA events
//! unrouted).
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz::messaging::event::{AccountKey, Contact, EventKind, InboundEvent};
use masterz::messaging::{meta, waha};

fn check_contact(contact: &Contact) {
    assert!(!contact.external_id.is_empty());
    if let Some(phone) = &contact.phone {
        assert!(phone.starts_with('+'));
    }
}

fn check(events: &[InboundEvent]) {
    for event in events {
        match &event.kind {
            EventKind::Message(m) => {
                assert!(!m.external_id.is_empty());
                check_contact(&m.contact);
            }
            EventKind::Removed { external_id } => assert!(!external_id.is_empty()),
            EventKind::Status(s) => assert!(!s.message_id.is_empty()),
            EventKind::Watermark { contact, .. } => assert!(!contact.is_empty()),
            EventKind::Reaction {
                contact,
                message_id,
                ..
            } => {
                assert!(!message_id.is_empty());
                check_contact(contact);
            }
            EventKind::SessionStatus { .. }
            | EventKind::Ignored { .. }
            | EventKind::Unknown { .. } => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = meta::parse(data) {
        check(&events);
    }
    if let Ok(events) = waha::parse(data) {
        assert_eq!(events.len(), 1);
        assert!(events.iter().all(|e| e.account == AccountKey::default()));
        check(&events);
    }
});
