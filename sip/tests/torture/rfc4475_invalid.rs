//! RFC 4475 §3.1.2: invalid messages. Each is refused with an error naming the culprit, or —
//! where the RFC lets a liberal element repair it and the repair is unambiguous — tolerated,
//! and the test asserts what we make of it.

use bytes::Bytes;
use masterz_sip::headers::{CSeq, Contact, Expires, From, MaxForwards, To};
use masterz_sip::message::{
    Frame, InvalidMessage, Limits, Message, Method, ParseError, StdHeader, frame,
};
use masterz_sip::uri::{Host, Uri, unescape};

use crate::fixture::{fixture, raw, validate, vias};

named_tests![
    rfc4475_badinv01,
    rfc4475_clerr,
    rfc4475_ncl,
    rfc4475_scalar02,
    rfc4475_scalarlg,
    rfc4475_quotbal,
    rfc4475_ltgtruri,
    rfc4475_lwsruri,
    rfc4475_lwsstart,
    rfc4475_trws,
    rfc4475_escruri,
    rfc4475_baddate,
    rfc4475_regbadct,
    rfc4475_badaspec,
    rfc4475_baddn,
    rfc4475_badvers,
    rfc4475_mismatch01,
    rfc4475_mismatch02,
    rfc4475_bigcode,
];

/// The reason phrase and status of a validation failure.
fn answer(e: &InvalidMessage) -> (u16, String) {
    (e.status().as_u16(), e.to_string())
}

/// §3.1.2.1: `Via: SIP/2.0/UDP 192.0.2.15;;,;,,` and `Contact: "Joe" <…>;;;;`.
#[test]
fn rfc4475_badinv01() {
    let (m, e) = fixture("rfc4475/badinv01.dat").rejected_by_validation();
    // The stray `;` between the commas is a Via value without a sent-protocol.
    assert_eq!(
        answer(&e),
        (400, "Bad Header: Via (bad sent-protocol)".into())
    );
    let values: Vec<bool> = m
        .typed_all::<masterz_sip::headers::Via>()
        .map(|v| v.is_ok())
        .collect();
    assert_eq!(values, [true, false]);
    // Empty parameters (`;;`) are skipped rather than refused, so the Contact alone would pass:
    // the Via is what makes this message a 400.
    assert!(m.typed_all::<Contact>().all(|c| c.is_ok()));
}

/// §3.1.2.2: Content-Length 9999 with 154 octets: 400 on a datagram, wait on a stream.
#[test]
fn rfc4475_clerr() {
    let fx = fixture("rfc4475/clerr.dat");
    let e = fx.rejected_by_parser();
    assert_eq!(
        e,
        ParseError::BodyTooShort {
            declared: 9999,
            actual: 154
        }
    );
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!(frame(fx.bytes(), &Limits::default()), Ok(Frame::Incomplete));
}

/// §3.1.2.3: Content-Length -999, never used as a length; the stream framer refuses it too.
#[test]
fn rfc4475_ncl() {
    let fx = fixture("rfc4475/ncl.dat");
    let bad = ParseError::Header {
        name: "Content-Length".into(),
        reason: "not a number",
    };
    assert_eq!(fx.rejected_by_parser(), bad);
    assert_eq!(bad.to_string(), "Bad Header: Content-Length (not a number)");
    assert_eq!(frame(fx.bytes(), &Limits::default()), Err(bad));
}

/// §3.1.2.4: CSeq 2^65, Max-Forwards 300, Expires 10^100, Contact expires 2.8·10^14.
#[test]
fn rfc4475_scalar02() {
    let (m, e) = fixture("rfc4475/scalar02.dat").rejected_by_validation();
    // "respond with a 400 Bad Request due to the CSeq error".
    assert_eq!(
        answer(&e),
        (400, "Bad Header: CSeq (bad sequence number)".into())
    );
    assert_eq!(e.header(), Some(StdHeader::CSeq));
    assert_eq!(
        m.require::<MaxForwards>().unwrap_err().to_string(),
        "Bad Header: Max-Forwards (not 0-255)"
    );
    // Expiry values saturate instead of wrapping (a registrar clamps them to its maximum).
    assert_eq!(m.require::<Expires>(), Ok(Expires(u32::MAX)));
    let contact = m.require::<Contact>().unwrap();
    assert_eq!(contact.expires(), Some(Ok(u32::MAX)));
}

/// §3.1.2.5: a response with overlarge CSeq, Retry-After and a four-digit warn-code: dropped.
#[test]
fn rfc4475_scalarlg() {
    let (m, e) = fixture("rfc4475/scalarlg.dat").rejected_by_validation();
    assert_eq!(m.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(
        e.header(),
        Some(StdHeader::CSeq),
        "a response failing this is dropped"
    );
    assert_eq!(raw(&m, "Retry-After"), Some("949302838503028349304023988"));
    assert_eq!(raw(&m, "Warning"), Some("1812 overture \"In Progress\""));
}

/// §3.1.2.6: `To: "Mr. J. User <sip:j.user@example.com>` — the quote never closes. We refuse
/// rather than guess where the display name ends.
#[test]
fn rfc4475_quotbal() {
    let (_, e) = fixture("rfc4475/quotbal.dat").rejected_by_validation();
    assert_eq!(
        answer(&e),
        (400, "Bad Header: To (unterminated quoted string)".into())
    );
}

/// §3.1.2.7: `INVITE <sip:user@example.com> SIP/2.0`. Refused: `<sip` is not a scheme.
#[test]
fn rfc4475_ltgtruri() {
    let (m, e) = fixture("rfc4475/ltgtruri.dat").rejected_by_validation();
    assert_eq!(e, InvalidMessage::RequestUri("bad URI scheme"));
    assert_eq!(answer(&e), (400, "Bad Request-URI (bad URI scheme)".into()));
    assert_eq!(vias(&m)[0].branch(), None, "a 400 can still be routed back");
}

/// §3.1.2.8: `sip:user@example.com; lr` — SP inside the Request-URI.
#[test]
fn rfc4475_lwsruri() {
    let e = fixture("rfc4475/lwsruri.dat").rejected_by_parser();
    assert_eq!(e, ParseError::StartLine("whitespace in Request-URI"));
    assert_eq!(e.to_string(), "Bad Start Line: whitespace in Request-URI");
    assert_eq!(e.status().as_u16(), 400);
}

/// §3.1.2.9: `INVITE  sip:user@example.com  SIP/2.0`. Tolerated: the extra SP is unambiguous,
/// and a forwarded copy is printed with single SPs, as the RFC requires.
#[test]
fn rfc4475_lwsstart() {
    let m = fixture("rfc4475/lwsstart.dat").tolerated();
    assert_eq!(m.method(), Some(&Method::Invite));
    assert!(
        m.to_bytes()
            .starts_with(b"INVITE sip:user@example.com SIP/2.0\r\n")
    );
}

/// §3.1.2.10: two SP after `SIP/2.0`. Tolerated like lwsstart.
#[test]
fn rfc4475_trws() {
    let m = fixture("rfc4475/trws.dat").tolerated();
    assert_eq!(m.method(), Some(&Method::Options));
    assert!(
        m.to_bytes()
            .starts_with(b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n")
    );
}

/// §3.1.2.11: `?Route=%3Csip:example.com%3E` in a Request-URI. The URI parses; validation
/// refuses it (§19.1.1 forbids URI headers there), which the RFC calls acceptable — we would
/// otherwise have to strip them from every request we pass on.
#[test]
fn rfc4475_escruri() {
    let (m, e) = fixture("rfc4475/escruri.dat").rejected_by_validation();
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.headers, Some("Route=%3Csip:example.com%3E"));
    assert_eq!(
        answer(&e),
        (400, "Bad Request-URI (URI headers are not allowed)".into())
    );
}

/// §3.1.2.12: `Date: … EST`. Tolerated: nothing here depends on the Date, which stays raw.
#[test]
fn rfc4475_baddate() {
    let m = fixture("rfc4475/baddate.dat").tolerated();
    assert_eq!(raw(&m, "Date"), Some("Fri, 01 Jan 2010 16:00:00 EST"));
}

/// §3.1.2.13: a Contact URI with `?headers` outside `<>`. Tolerated: with no `;` after it,
/// the brackets can be inferred without ambiguity.
#[test]
fn rfc4475_regbadct() {
    let m = fixture("rfc4475/regbadct.dat").tolerated();
    let contact = m.require::<Contact>().unwrap();
    let addr = contact.addr().unwrap();
    assert!(addr.params.is_empty());
    let uri = addr.uri().unwrap();
    assert_eq!(
        uri.raw,
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
    assert_eq!(
        uri.headers.map(unescape).as_deref(),
        Some("Route=<sip:sip.example.com>")
    );
}

/// §3.1.2.14: `To: "Watson, Thomas" < sip:t.watson@example.org >`. Tolerated: the spaces
/// inside the brackets are ignored.
#[test]
fn rfc4475_badaspec() {
    let m = fixture("rfc4475/badaspec.dat").tolerated();
    let to = m.require::<To>().unwrap();
    assert_eq!(to.display_name().as_deref(), Some("Watson, Thomas"));
    assert_eq!(to.uri, "sip:t.watson@example.org");
    assert_eq!(to.uri().unwrap().host, Some(Host::Name("example.org")));
}

/// §3.1.2.15: unquoted display names with a comma. The archive member lacks the empty line
/// that ends the headers (see MANIFEST.md), so as published it is truncated — a datagram
/// error, an incomplete frame on a stream. With the empty line, validation names the To (checked before the From, which is as bad).
#[test]
fn rfc4475_baddn() {
    let fx = fixture("rfc4475/baddn.dat");
    assert_eq!(fx.rejected_by_parser(), ParseError::Truncated);
    assert_eq!(frame(fx.bytes(), &Limits::default()), Ok(Frame::Incomplete));

    let m = fx.patched("l: 0\r\n", "l: 0\r\n\r\n");
    let e = validate(&m).unwrap_err();
    assert_eq!(
        answer(&e),
        (400, "Bad Header: To (bad display name)".into())
    );
    assert_eq!(
        m.require::<From>().unwrap_err().to_string(),
        "Bad Header: From (bad display name)"
    );
}

/// §3.1.2.16: `SIP/7.0` — 505.
#[test]
fn rfc4475_badvers() {
    let e = fixture("rfc4475/badvers.dat").rejected_by_parser();
    assert_eq!(e, ParseError::Version("SIP/7.0".into()));
    assert_eq!(e.status().as_u16(), 505);
    assert_eq!(e.to_string(), "Version Not Supported: SIP/7.0");
}

/// §3.1.2.17: OPTIONS with `CSeq: 8 INVITE`.
#[test]
fn rfc4475_mismatch01() {
    let (m, e) = fixture("rfc4475/mismatch01.dat").rejected_by_validation();
    assert_eq!(m.require::<CSeq>().unwrap().method, Method::Invite);
    assert_eq!(
        answer(&e),
        (
            400,
            "Bad Header: CSeq (method does not match the request)".into()
        )
    );
}

/// §3.1.2.18: NEWMETHOD with `CSeq: 8 INVITE`. The RFC prefers 501 but accepts 400; syntax
/// validation cannot know which methods the element implements, so it answers 400.
#[test]
fn rfc4475_mismatch02() {
    let (m, e) = fixture("rfc4475/mismatch02.dat").rejected_by_validation();
    assert_eq!(m.method(), Some(&Method::Other("NEWMETHOD".into())));
    assert_eq!(e.header(), Some(StdHeader::CSeq));
    assert_eq!(e.status().as_u16(), 400);
}

/// §3.1.2.19: status 4294967301 in a response: refused by the parser, so the response is
/// dropped (responses are never answered).
#[test]
fn rfc4475_bigcode() {
    let fx = fixture("rfc4475/bigcode.dat");
    assert_eq!(fx.expected(), "discard");
    assert_eq!(
        fx.rejected_by_parser(),
        ParseError::StartLine("bad status code")
    );
    // The same response with a real code parses, so it is the code that is refused.
    let fixed = String::from_utf8_lossy(fx.bytes()).replacen("4294967301", "430", 1);
    let m = Message::parse(Bytes::from(fixed), &Limits::default()).unwrap();
    assert_eq!(m.status().map(|s| s.as_u16()), Some(430));
    assert_eq!(m.require::<From>().unwrap().tag(), Some("39ansfi3"));
}
