//! RFC 4475 §3.2 (transaction layer), §3.3 (application layer) and §3.4 (backward
//! compatibility): messages that parse, some of which validation or the application refuses.

use std::net::Ipv4Addr;

use masterz_sip::auth::{Credentials, DigestError};
use masterz_sip::headers::{CSeq, CallIdHeader, Contact, From, MaxForwards, RecordRoute, To};
use masterz_sip::message::{InvalidMessage, Method, StdHeader, split_list};
use masterz_sip::uri::{Host, Scheme, Uri, unescape};

use crate::fixture::{fixture, raw, vias};

named_tests![
    rfc4475_badbranch,
    rfc4475_insuf,
    rfc4475_unkscm,
    rfc4475_novelsc,
    rfc4475_unksm2,
    rfc4475_bext01,
    rfc4475_invut,
    rfc4475_regaut01,
    rfc4475_multi01,
    rfc4475_mcl01,
    rfc4475_bcast,
    rfc4475_zeromf,
    rfc4475_cparam01,
    rfc4475_cparam02,
    rfc4475_regescrt,
    rfc4475_sdp01,
    rfc4475_inv2543,
];

/// §3.2.1: `branch=z9hG4bK`, the magic cookie and nothing else. Syntactically fine, so
/// validation passes; whether to refuse it or fall back to RFC 2543 matching is the
/// transaction layer's choice.
#[test]
fn rfc4475_badbranch() {
    let m = fixture("rfc4475/badbranch.dat").tolerated();
    assert_eq!(vias(&m)[0].branch(), Some("z9hG4bK"));
    assert_eq!(m.require::<MaxForwards>(), Ok(MaxForwards(3)));
}

/// §3.3.1: no Call-ID, From, To (nor Max-Forwards). The first missing one is named.
#[test]
fn rfc4475_insuf() {
    let (m, e) = fixture("rfc4475/insuf.dat").rejected_by_validation();
    assert_eq!(e.to_string(), "Missing Header: To");
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!(m.typed::<To>(), Ok(None));
    assert_eq!(m.typed::<From>(), Ok(None));
    assert_eq!(m.typed::<CallIdHeader>(), Ok(None));
    assert!(!m.headers.contains(StdHeader::MaxForwards));
    assert_eq!(m.require::<CSeq>().unwrap().seq, 193942);
}

/// §3.3.2: `nobodyKnowsThisScheme:totallyopaquecontent` parses; the answer is 416.
#[test]
fn rfc4475_unkscm() {
    let fx = fixture("rfc4475/unkscm.dat");
    assert_eq!(fx.expected(), "accept_then_reject");
    assert_eq!(fx.fact("request_uri_scheme"), "nobodyKnowsThisScheme");
    let m = fx.message();
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.scheme, Scheme::Other("nobodyKnowsThisScheme"));
    let e = crate::fixture::validate(&m).unwrap_err();
    assert_eq!(
        e,
        InvalidMessage::UnsupportedScheme("nobodyKnowsThisScheme".into())
    );
    assert_eq!(e.status().as_u16(), 416);
    assert_eq!(
        e.to_string(),
        "Unsupported URI Scheme (nobodyKnowsThisScheme)"
    );
}

/// §3.3.3: `soap.beep://192.0.2.103:3002`: a scheme we never serve, so 416 (the RFC allows
/// 416 or 404).
#[test]
fn rfc4475_novelsc() {
    let fx = fixture("rfc4475/novelsc.dat");
    assert_eq!(fx.expected(), "accept_then_reject");
    let m = fx.message();
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.scheme, Scheme::Other("soap.beep"));
    let e = crate::fixture::validate(&m).unwrap_err();
    assert_eq!(e, InvalidMessage::UnsupportedScheme("soap.beep".into()));
    assert_eq!(e.status().as_u16(), 416);
}

/// §3.3.4: To `isbn:`, From `http:`, Contact `name:`. Valid for any element; a registrar
/// refuses it (400), since an AOR must be a SIP or SIPS URI.
#[test]
fn rfc4475_unksm2() {
    let m = fixture("rfc4475/unksm2.dat").accepted();
    let to = m.require::<To>().unwrap();
    let from = m.require::<From>().unwrap();
    let contact = m.require::<Contact>().unwrap();
    assert_eq!(to.uri().unwrap().scheme, Scheme::Other("isbn"));
    assert_eq!(to.uri, "isbn:2983792873");
    assert_eq!(from.uri().unwrap().scheme, Scheme::Other("http"));
    assert_eq!(from.tag(), Some("3234233"));
    let contact_uri = contact.addr().unwrap().uri().unwrap();
    assert_eq!(
        (contact_uri.scheme, contact_uri.raw),
        (Scheme::Other("name"), "name:John_Smith")
    );
}

/// §3.3.5: unknown option tags in Require and Proxy-Require: parsed, then 420.
#[test]
fn rfc4475_bext01() {
    let m = fixture("rfc4475/bext01.dat").accepted();
    let require: Vec<&str> = split_list(raw(&m, "Require").unwrap()).collect();
    assert_eq!(
        require,
        ["nothingSupportsThis", "nothingSupportsThisEither"]
    );
    let proxy: Vec<&str> = split_list(raw(&m, "Proxy-Require").unwrap()).collect();
    assert_eq!(
        proxy,
        ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    );
    assert_eq!(vias(&m)[0].transport, "TLS");
}

/// §3.3.6: a body of unknown type: parsed, then 415 from an endpoint.
#[test]
fn rfc4475_invut() {
    let m = fixture("rfc4475/invut.dat").accepted();
    assert_eq!(raw(&m, "Content-Type"), Some("application/unknownformat"));
    assert_eq!(m.body.len(), 40);
    assert!(m.body.starts_with(b"<audio>\r\n"));
}

/// §3.3.7: `Authorization: NoOneKnowsThisScheme opaque-data=here`: parsed and kept; the
/// digest reader says it is not Digest, so a registrar challenges (401).
#[test]
fn rfc4475_regaut01() {
    let m = fixture("rfc4475/regaut01.dat").accepted();
    let value = raw(&m, "Authorization").unwrap();
    assert_eq!(value, "NoOneKnowsThisScheme opaque-data=here");
    assert_eq!(Credentials::parse(value), Err(DigestError::NotDigest));
}

/// §3.3.8: two Call-ID, To, From, Max-Forwards and CSeq headers: 400. Two Contacts are fine.
#[test]
fn rfc4475_multi01() {
    let (m, e) = fixture("rfc4475/multi01.dat").rejected_by_validation();
    assert_eq!(e.to_string(), "Bad Header: To (appears more than once)");
    assert_eq!(e.status().as_u16(), 400);
    for h in [
        StdHeader::CallId,
        StdHeader::To,
        StdHeader::From,
        StdHeader::MaxForwards,
        StdHeader::CSeq,
        StdHeader::Contact,
    ] {
        assert_eq!(m.headers.get_all(h).count(), 2, "{h:?}");
    }
    assert_eq!(m.typed_all::<Contact>().filter(Result::is_ok).count(), 2);
}

/// §3.3.9: Content-Length 13 and 5: the framing cannot be trusted, the parser refuses it.
#[test]
fn rfc4475_mcl01() {
    let e = fixture("rfc4475/mcl01.dat").rejected_by_parser();
    assert_eq!(
        e.to_string(),
        "Bad Header: Content-Length (conflicting values)"
    );
    assert_eq!(e.status().as_u16(), 400);
}

/// §3.3.10: a 200 whose second Via is 255.255.255.255: parsed, then dropped by whoever would
/// otherwise forward it there.
#[test]
fn rfc4475_bcast() {
    let m = fixture("rfc4475/bcast.dat").accepted();
    let v = vias(&m);
    assert_eq!(v[1].host, Host::V4(Ipv4Addr::BROADCAST));
    assert!(matches!(v[1].host, Host::V4(a) if a.is_broadcast()));
}

/// §3.3.11: Max-Forwards 0: a proxy answers 483, a UAS processes it.
#[test]
fn rfc4475_zeromf() {
    let m = fixture("rfc4475/zeromf.dat").accepted();
    assert_eq!(m.require::<MaxForwards>(), Ok(MaxForwards(0)));
}

/// §3.3.12: `Contact: sip:…;unknownparam` (no `<>`): a contact parameter, not a URI one.
#[test]
fn rfc4475_cparam01() {
    let m = fixture("rfc4475/cparam01.dat").accepted();
    let contact = m.require::<Contact>().unwrap();
    let addr = contact.addr().unwrap();
    assert_eq!(addr.uri, "sip:+19725552222@gw1.example.net");
    assert!(addr.uri().unwrap().params.is_empty());
    assert_eq!(
        addr.params.iter().collect::<Vec<_>>(),
        [("unknownparam", None)]
    );
}

/// §3.3.13: `Contact: <sip:…;unknownparam>`: a URI parameter.
#[test]
fn rfc4475_cparam02() {
    let m = fixture("rfc4475/cparam02.dat").accepted();
    let contact = m.require::<Contact>().unwrap();
    let addr = contact.addr().unwrap();
    assert!(addr.params.is_empty());
    let uri = addr.uri().unwrap();
    assert_eq!(uri.user, Some("+19725552222"));
    assert_eq!(
        uri.params.iter().collect::<Vec<_>>(),
        [("unknownparam", None)]
    );
}

/// §3.3.14: `M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>`: the escaped header
/// belongs to the binding.
#[test]
fn rfc4475_regescrt() {
    let m = fixture("rfc4475/regescrt.dat").accepted();
    let contact = m.require::<Contact>().unwrap();
    let uri = contact.addr().unwrap().uri().unwrap();
    assert_eq!(uri.host, Some(Host::Name("example.com")));
    let (name, value) = uri.headers.unwrap().split_once('=').unwrap();
    assert_eq!(
        (name, unescape(value).as_str()),
        ("Route", "<sip:sip.example.com>")
    );
}

/// §3.3.15: `Accept: text/nobodyKnowsThis` with an SDP offer: parsed, then 406 or 400.
#[test]
fn rfc4475_sdp01() {
    let m = fixture("rfc4475/sdp01.dat").accepted();
    assert_eq!(raw(&m, "Accept"), Some("text/nobodyKnowsThis"));
    assert_eq!(raw(&m, "Content-Type"), Some("application/sdp"));
}

/// §3.4.1: RFC 2543 syntax: no branch, no From tag, no Max-Forwards, no Content-Length (the
/// body is the rest of the datagram). Accepted for backward compatibility.
#[test]
fn rfc4475_inv2543() {
    let fx = fixture("rfc4475/inv2543.dat");
    let m = fx.accepted();
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(vias(&m)[0].branch(), None);
    assert_eq!(vias(&m)[0].host, Host::Name("iftgw.example.com"));
    let from = m.require::<From>().unwrap();
    assert_eq!(from.tag(), None);
    assert_eq!(
        from.uri().unwrap().params.get("user"),
        Some(Some("phone")),
        "inside <>: a URI parameter"
    );
    let to = m.require::<To>().unwrap();
    assert_eq!(
        to.params.get("user"),
        Some(Some("phone")),
        "no <>: a header parameter"
    );
    assert!(!m.headers.contains(StdHeader::MaxForwards));
    assert!(!m.headers.contains(StdHeader::ContentLength));
    assert_eq!(
        Some(m.body.len() as u64),
        fx.fact("effective_body_len").as_u64()
    );
    let rr = m.require::<RecordRoute>().unwrap();
    assert_eq!(
        rr.uri().unwrap().params.get("maddr"),
        Some(Some("ss1.example.com"))
    );
}
