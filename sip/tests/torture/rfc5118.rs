//! RFC 5118: IPv6 references in the Request-URI, Via, Contact, To and SDP.
//!
//! Three messages carry a Content-Length that does not match their body and two end without
//! the empty line after the headers — defects of the RFC's own archive (MANIFEST.md, "Known
//! quirks"). We keep to RFC 3261 §18.3 for them (a datagram shorter than its Content-Length is
//! refused, a longer one is cut), say so in the test, and check the IPv6 handling on the
//! message with the defect repaired.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use masterz_sip::headers::{Contact, NameAddr, To};
use masterz_sip::message::{InvalidMessage, Message, ParseError};
use masterz_sip::uri::{Host, Uri};

use crate::fixture::{fixture, validate, vias};

named_tests![
    rfc5118_ipv6_good,
    rfc5118_ipv6_bad,
    rfc5118_port_ambiguous,
    rfc5118_port_unambiguous,
    rfc5118_via_received_param_with_delim,
    rfc5118_via_received_param_no_delim,
    rfc5118_ipv6_in_sdp,
    rfc5118_mult_ip_in_header,
    rfc5118_mult_ip_in_sdp,
    rfc5118_ipv4_mapped_ipv6,
    rfc5118_ipv6_bug_abnf_3_colons,
    rfc5118_ipv6_correct_abnf_2_colons,
];

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 address")
}

fn request_uri(m: &Message) -> Uri<'_> {
    Uri::parse(m.request_uri().expect("a request")).expect("Request-URI parses")
}

fn contact(m: &Message) -> NameAddr<'_> {
    *m.require::<Contact>()
        .expect("Contact")
        .addr()
        .expect("not *")
}

/// The SDP lines of `body` that start with `prefix`.
fn sdp<'a>(body: &'a [u8], prefix: &str) -> Vec<&'a str> {
    std::str::from_utf8(body)
        .expect("SDP is text")
        .split("\r\n")
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// §4.1: IPv6 references in the Request-URI, Via and Contact.
#[test]
fn rfc5118_ipv6_good() {
    let m = fixture("rfc5118/ipv6-good.dat").accepted();
    let ruri = request_uri(&m);
    assert_eq!(ruri.host, Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(ruri.host.unwrap().to_string(), "[2001:db8::10]");
    assert_eq!(ruri.port, None);
    assert_eq!(vias(&m)[0].host, Host::V6(v6("2001:db8::9:1")));
    let c = contact(&m);
    assert_eq!(c.display_name().as_deref(), Some("Caller"));
    assert_eq!(c.uri().unwrap().host, Some(Host::V6(v6("2001:db8::1"))));
}

/// §4.2: `REGISTER sip:2001:db8::10` — no brackets: 400.
#[test]
fn rfc5118_ipv6_bad() {
    let (m, e) = fixture("rfc5118/ipv6-bad.dat").rejected_by_validation();
    assert_eq!(
        e,
        InvalidMessage::RequestUri("IPv6 address without brackets")
    );
    assert_eq!(e.status().as_u16(), 400);
    assert_eq!(
        e.to_string(),
        "Bad Request-URI (IPv6 address without brackets)"
    );
    // Only the Request-URI is wrong.
    assert_eq!(vias(&m)[0].host, Host::V6(v6("2001:db8::9:1")));
    assert_eq!(
        contact(&m).uri().unwrap().host,
        Some(Host::V6(v6("2001:db8::1")))
    );
}

/// §4.3: `sip:[2001:db8::10:5070]` is one address and no port.
#[test]
fn rfc5118_port_ambiguous() {
    let m = fixture("rfc5118/port-ambiguous.dat").accepted();
    let ruri = request_uri(&m);
    assert_eq!(ruri.host, Some(Host::V6(v6("2001:db8::10:5070"))));
    assert_eq!(ruri.port, None);
}

/// §4.4: `sip:[2001:db8::10]:5070`.
#[test]
fn rfc5118_port_unambiguous() {
    let m = fixture("rfc5118/port-unambiguous.dat").accepted();
    let ruri = request_uri(&m);
    assert_eq!(ruri.host, Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(ruri.port, Some(5070));
}

/// §4.5: `received=[2001:db8::9:255]`: not RFC 3261 grammar, but robust elements must read it.
#[test]
fn rfc5118_via_received_param_with_delim() {
    let m = fixture("rfc5118/via-received-param-with-delim.dat").accepted();
    let via = vias(&m)[0];
    assert_eq!(via.host, Host::V6(v6("2001:db8::9:1")));
    assert_eq!(via.received(), Some("[2001:db8::9:255]"));
    assert_eq!(
        via.received_ip(),
        Some(Ok(IpAddr::V6(v6("2001:db8::9:255"))))
    );
    assert_eq!(via.branch(), Some("z9hG4bKas3-111"));
    assert_eq!(m.require::<To>().unwrap().tag(), Some("bd76ya"));
}

/// §4.5: `received=2001:db8::9:255` (the RFC 3261 form): its colons do not end the parameter.
#[test]
fn rfc5118_via_received_param_no_delim() {
    let m = fixture("rfc5118/via-received-param-no-delim.dat").accepted();
    let via = vias(&m)[0];
    assert_eq!(via.received(), Some("2001:db8::9:255"));
    assert_eq!(
        via.received_ip(),
        Some(Ok(IpAddr::V6(v6("2001:db8::9:255"))))
    );
    assert_eq!(via.branch(), Some("z9hG4bKas3"));
    assert_eq!(
        contact(&m).uri().unwrap().host,
        Some(Host::V6(v6("2001:db8::9:1")))
    );
}

/// §4.6: IPv6 addresses in SDP, unbracketed. The published Content-Length (268) exceeds the
/// 251-octet body: as a datagram that is refused like rfc4475 clerr. With the length
/// corrected, the message is the valid one the RFC describes.
#[test]
fn rfc5118_ipv6_in_sdp() {
    let fx = fixture("rfc5118/ipv6-in-sdp.dat");
    assert_eq!(
        fx.parse().unwrap_err(),
        ParseError::BodyTooShort {
            declared: 268,
            actual: 251
        }
    );
    let m = fx.patched("Content-Length: 268", "Content-Length: 251");
    assert_eq!(validate(&m), Ok(()));
    assert_eq!(request_uri(&m).host, Some(Host::V6(v6("2001:db8::10"))));
    assert_eq!(vias(&m)[0].host, Host::V6(v6("2001:db8::20")));
    assert_eq!(
        sdp(&m.body, "o="),
        ["o=assistant 971731711378798081 0 IN IP6 2001:db8::20"]
    );
    assert_eq!(sdp(&m.body, "c="), ["c=IN IP6 2001:db8::20"]);
    assert_eq!(sdp(&m.body, "m=").len(), 2);
}

/// §4.7: Vias mixing IPv4 addresses and IPv6 references, with ports and `received`.
#[test]
fn rfc5118_mult_ip_in_header() {
    let m = fixture("rfc5118/mult-ip-in-header.dat").accepted();
    let summary: Vec<_> = vias(&m)
        .iter()
        .map(|v| (v.transport, v.host, v.port, v.branch()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "UDP",
                Host::V6(v6("2001:db8::9:1")),
                Some(6050),
                Some("z9hG4bKas3-111")
            ),
            (
                "UDP",
                Host::V4(Ipv4Addr::new(192, 0, 2, 1)),
                None,
                Some("z9hG4bKjhja8781hjuaij65144")
            ),
            (
                "TCP",
                Host::V6(v6("2001:db8::9:255")),
                None,
                Some("z9hG4bK451jj")
            ),
        ]
    );
    assert_eq!(
        vias(&m)[2].received_ip(),
        Some(Ok(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200))))
    );
}

/// §4.8: an IPv4 and an IPv6 connection address per media. The published Content-Length
/// (181) is 8 octets short of the body: §18.3 cuts the body there, so the last line loses
/// `/90000`. With the full length both media keep their addresses and the whole rtpmap.
#[test]
fn rfc5118_mult_ip_in_sdp() {
    let fx = fixture("rfc5118/mult-ip-in-sdp.dat");
    let cut = fx.accepted();
    assert_eq!(cut.body.len(), 181);
    assert!(cut.body.ends_with(b"a=rtpmap:107 H263-1998"));

    let m = fx.patched("Content-Length: 181", "Content-Length: 189");
    assert_eq!(validate(&m), Ok(()));
    assert_eq!(m.body.len(), 189);
    assert_eq!(
        sdp(&m.body, "c="),
        ["c=IN IP4 192.0.2.1", "c=IN IP6 2001:db8::1"]
    );
    assert_eq!(sdp(&m.body, "a="), ["a=rtpmap:107 H263-1998/90000"]);
    assert_eq!(request_uri(&m).host, Some(Host::V6(v6("2001:db8::10"))));
}

/// §4.9: IPv4-mapped IPv6 addresses in Via, Contact and SDP. The published Content-Length
/// (236) is the LF-only size; with CRLF the body is 245 octets, so §18.3 cuts 9 of them.
#[test]
fn rfc5118_ipv4_mapped_ipv6() {
    let fx = fixture("rfc5118/ipv4-mapped-ipv6.dat");
    let m = fx.accepted();
    assert_eq!(m.body.len(), 236);
    assert!(m.body.ends_with(b"a=rtpmap:107 H263-199"));

    let v = vias(&m);
    assert_eq!(v[0].host, Host::V6(v6("::ffff:192.0.2.10")));
    assert_eq!(v[0].port, Some(19823));
    assert_eq!(v[0].branch(), Some("z9hG4bKbh19"));
    assert_eq!(v[1].host, Host::V6(v6("::ffff:192.0.2.2")));
    assert_eq!((v[1].port, v[1].branch()), (None, Some("z9hG4bKas3-111")));

    let c = contact(&m);
    assert_eq!(c.display_name().as_deref(), Some("T. desk phone"));
    assert_eq!(c.uri, "sip:ted@[::ffff:192.0.2.2]");
    let host = c.uri().unwrap().host;
    assert_eq!(
        host,
        Some(Host::V6(Ipv4Addr::new(192, 0, 2, 2).to_ipv6_mapped()))
    );
    assert_eq!(sdp(&m.body, "c="), ["c=IN IP6 ::ffff:192.0.2.2"]);

    let whole = fx.patched("Content-Length: 236", "Content-Length: 245");
    assert!(whole.body.ends_with(b"a=rtpmap:107 H263-1998/90000\r\n"));
}

/// §4.10: `[2001:db8:::192.0.2.1]`, the extra colon RFC 3261's ABNF allows. The RFC invites
/// robustness and the manifest expects acceptance: we read it as `2001:db8::192.0.2.1`. The
/// archive member has no empty line after the headers, so as published it is truncated.
#[test]
fn rfc5118_ipv6_bug_abnf_3_colons() {
    let fx = fixture("rfc5118/ipv6-bug-abnf-3-colons.dat");
    assert_eq!(fx.parse().unwrap_err(), ParseError::Truncated);
    let m = fx.patched("Content-Length: 0\r\n", "Content-Length: 0\r\n\r\n");
    assert_eq!(validate(&m), Ok(()));
    let expected = Some(Host::V6(v6("2001:db8::192.0.2.1")));
    assert_eq!(
        fx.fact("tolerated_as_ipv6").as_str(),
        Some("2001:db8::192.0.2.1")
    );
    let ruri = request_uri(&m);
    assert_eq!(ruri.user, Some("user"));
    assert_eq!(ruri.host, expected);
    let to = m.require::<To>().unwrap();
    assert_eq!(
        to.uri, "sip:user@[2001:db8:::192.0.2.1]",
        "kept as received"
    );
    assert_eq!(to.uri().unwrap().host, expected);
}

/// §4.10: `[2001:db8::192.0.2.1]`, the correct form. Truncated as published, like the above.
#[test]
fn rfc5118_ipv6_correct_abnf_2_colons() {
    let fx = fixture("rfc5118/ipv6-correct-abnf-2-colons.dat");
    assert_eq!(fx.parse().unwrap_err(), ParseError::Truncated);
    let m = fx.patched("Content-Length: 0\r\n", "Content-Length: 0\r\n\r\n");
    assert_eq!(validate(&m), Ok(()));
    let expected = Some(Host::V6(v6("2001:db8::192.0.2.1")));
    assert_eq!(request_uri(&m).host, expected);
    assert_eq!(m.require::<To>().unwrap().uri().unwrap().host, expected);
}
