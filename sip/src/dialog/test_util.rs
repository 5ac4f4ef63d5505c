//! Hand-built messages and a seeded [`RandomSource`] for the unit tests of this module.

use bytes::Bytes;

use crate::ident::RandomSource;
use crate::message::{Limits, Message, StatusCode, StdHeader};

/// xorshift64*, as in the `ident` tests: the same seed gives the same bytes.
pub(super) struct Seeded(pub(super) u64);

impl RandomSource for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// The origin of the virtual clock. Only offsets from it matter; std offers no other way to
/// make an `Instant`, hence the one allowed clock read, in tests only.
#[allow(clippy::disallowed_methods)]
pub(super) fn epoch() -> std::time::Instant {
    std::time::Instant::now()
}

/// Parses a message written with bare `\n` line ends.
pub(super) fn msg(text: &str) -> Message {
    let wire = text.replace('\n', "\r\n");
    Message::parse(Bytes::from(wire), &Limits::default()).expect("test message parses")
}

/// Alice's INVITE to Bob through two record-routing proxies, as Bob receives it.
pub(super) fn invite() -> Message {
    msg("INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2
Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa
Record-Route: <sip:p2.example.com;lr>
Record-Route: <sip:p1.example.com;lr>
Max-Forwards: 68
From: Alice <sip:alice@atlanta.example.com>;tag=alicetag
To: Bob <sip:bob@biloxi.example.com>
Call-ID: call-1@192.0.2.1
CSeq: 314 INVITE
Contact: <sip:alice@192.0.2.1>
Content-Length: 0

")
}

/// A response to `request` as the UAS sends it: Via, From, To (with `to_tag`), Call-ID, CSeq
/// and Record-Route copied (§8.2.6.2, §12.1.1), Bob's Contact on 101–299.
pub(super) fn response_to(request: &Message, code: u16, to_tag: Option<&str>) -> Message {
    let mut r = Message::response(StatusCode::new(code).expect("valid code"));
    for name in [StdHeader::Via, StdHeader::RecordRoute] {
        for v in request.headers.get_all(name) {
            r.headers.push(name, v.clone());
        }
    }
    for name in [StdHeader::From, StdHeader::CallId, StdHeader::CSeq] {
        if let Some(v) = request.headers.get(name) {
            r.headers.push(name, v.clone());
        }
    }
    let to = request.headers.get(StdHeader::To).expect("To").to_string();
    let to = match to_tag {
        Some(t) if !to.contains(";tag=") => format!("{to};tag={t}"),
        _ => to,
    };
    r.headers.push(StdHeader::To, to);
    if (101..300).contains(&code) {
        r.headers.push(StdHeader::Contact, "<sip:bob@192.0.2.2>");
    }
    r.headers.push(StdHeader::ContentLength, "0");
    r
}
