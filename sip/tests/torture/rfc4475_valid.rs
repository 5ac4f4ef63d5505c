//! RFC 4475 §3.1.1: valid messages. "Parsers must accept" each of them; the tests check the
//! values a parser must find.

use std::net::Ipv4Addr;

use masterz_sip::headers::{Contact, From, MaxForwards, NameAddr, Route, To};
use masterz_sip::message::{HeaderName, Method, StartLine, StdHeader, split_list};
use masterz_sip::uri::{Host, Scheme, Uri, unescape};

use crate::fixture::{fixture, raw, vias};

named_tests![
    rfc4475_wsinv,
    rfc4475_intmeth,
    rfc4475_esc01,
    rfc4475_escnull,
    rfc4475_esc02,
    rfc4475_lwsdisp,
    rfc4475_longreq,
    rfc4475_dblreq,
    rfc4475_semiuri,
    rfc4475_transports,
    rfc4475_mpart01,
    rfc4475_unreason,
    rfc4475_noreason,
];

fn contacts(m: &masterz_sip::message::Message) -> Vec<NameAddr<'_>> {
    m.typed_all::<Contact>()
        .map(|c| *c.expect("Contact parses").addr().expect("not *"))
        .collect()
}

/// URI parameters with their %-escapes decoded (§19.1.4: `%6C%72` is `lr`).
fn unescaped_params(uri: &Uri<'_>) -> Vec<(String, Option<String>)> {
    uri.params
        .iter()
        .map(|(n, v)| (unescape(n), v.map(unescape)))
        .collect()
}

/// §3.1.1.1: folding everywhere, LWS around every separator, compact and odd-case names,
/// leading zeros, an empty Subject, escapes in quoted strings.
#[test]
fn rfc4475_wsinv() {
    let m = fixture("rfc4475/wsinv.dat").accepted();
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.user, Some("vivekg"));
    assert_eq!(ruri.host, Some(Host::Name("chair-dnrc.example.com")));
    assert_eq!(ruri.port, None);
    assert_eq!(
        ruri.params.iter().collect::<Vec<_>>(),
        [("unknownparam", None)]
    );

    // One `Via` header folded over three lines, then `v` with two values.
    let v = vias(&m);
    let summary: Vec<_> = v
        .iter()
        .map(|v| (v.transport, v.host, v.port, v.branch()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "UDP",
                Host::V4(Ipv4Addr::new(192, 0, 2, 2)),
                None,
                Some("390skdjuw")
            ),
            (
                "TCP",
                Host::Name("spindle.example.com"),
                None,
                Some("z9hG4bK9ikj8")
            ),
            (
                "UDP",
                Host::V4(Ipv4Addr::new(192, 168, 255, 111)),
                None,
                Some("z9hG4bK30239")
            ),
        ]
    );

    let to = m.require::<To>().unwrap();
    assert_eq!(to.display, None);
    assert_eq!(to.uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));

    let from = m.require::<From>().unwrap();
    assert_eq!(from.display, Some(r#""J Rosenberg \\\"""#));
    assert_eq!(from.display_name().as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.uri, "sip:jdrosen@example.com");
    assert_eq!(from.tag(), Some("98asjd8"));

    assert_eq!(raw(&m, "Max-Forwards"), Some("0068"));
    assert_eq!(m.require::<MaxForwards>(), Ok(MaxForwards(68)));
    assert_eq!(raw(&m, "Subject"), Some(""), "`s :` is an empty Subject");
    assert_eq!(
        raw(&m, "NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    // "must parse it as a header value": kept raw, never split at its commas.
    assert_eq!(raw(&m, "UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert_eq!(raw(&m, "Content-Type"), Some("application/sdp"));

    let route = m.require::<Route>().unwrap();
    let route_uri = route.uri().unwrap();
    assert_eq!(route_uri.host, Some(Host::Name("services.example.com")));
    assert_eq!(
        route_uri.params.iter().collect::<Vec<_>>(),
        [
            ("lr", None),
            ("unknownwith", Some("value")),
            ("unknown-no-value", None)
        ]
    );

    let c = m
        .typed_all::<Contact>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(c.len(), 1);
    let contact = c[0].addr().unwrap();
    assert_eq!(
        contact.display_name().as_deref(),
        Some(r#"Quoted string """#)
    );
    assert_eq!(contact.uri, "sip:jdrosen@example.com");
    assert_eq!(
        contact.params.iter().collect::<Vec<_>>(),
        [
            ("newparam", Some("newvalue")),
            ("secondparam", None),
            ("q", Some("0.33"))
        ]
    );
    assert_eq!(c[0].q(), Some(330));
}

/// §3.1.1.2: every character a token, a quoted string or a URI user part may hold.
#[test]
fn rfc4475_intmeth() {
    let fx = fixture("rfc4475/intmeth.dat");
    // Well formed; an endpoint then answers 501 (unknown method), a proxy 404.
    let m = fx.accepted();
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(m.method(), Some(&Method::Other(method.into())));
    assert_eq!(m.cseq_method().as_ref(), m.method());

    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        ruri.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        ruri.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(ruri.host, Some(Host::Name("example.com")));
    assert!(ruri.params.is_empty() && ruri.headers.is_none());

    let via = &vias(&m)[0];
    assert_eq!(via.transport, "TCP");
    assert_eq!(via.host, Host::Name("host1.example.com"));
    assert_eq!(via.branch(), Some("z9hG4bK-.!%66*_+`'~"));

    // Quoted pairs escaping BEL, NUL and DEL.
    let to = m.require::<To>().unwrap();
    let name = to.display_name().unwrap();
    assert_eq!(name.as_bytes(), b"BEL:\x07 NUL:\x00 DEL:\x7f");
    assert_eq!(
        Some(hex(name.as_bytes()).as_str()),
        fx.fact("to_display_name_unquoted_hex").as_str()
    );
    assert_eq!(
        to.uri,
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"
    );
    assert_eq!(
        to.uri().unwrap().user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );

    let from = m.require::<From>().unwrap();
    assert_eq!(from.display, Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(from.uri, "sip:mundane@example.com");
    assert_eq!(
        from.params.get("fromParam''~+*_!.-%"),
        Some(Some("\"работающий\""))
    );
    assert_eq!(
        from.params.get_unquoted("fromParam''~+*_!.-%").as_deref(),
        Some("работающий")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));

    assert_eq!(m.require::<MaxForwards>(), Ok(MaxForwards(255)));
    let ext = raw(&m, "extensionHeader-!.%*+_`'~").unwrap();
    assert_eq!(
        hex(ext.as_bytes()),
        "efbbbfe5a4a7e5819ce99bbb",
        "BOM then UTF-8, kept"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// §3.1.1.3: % HEX HEX in the user part and URI parameters; unescaping is done once.
#[test]
fn rfc4475_esc01() {
    let m = fixture("rfc4475/esc01.dat").accepted();
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.scheme, Scheme::Sip, "the escaped sips: is user text");
    assert_eq!(ruri.user, Some("sips%3Auser%40example.com"));
    assert_eq!(
        ruri.user_unescaped().as_deref(),
        Some("sips:user@example.com")
    );
    assert_eq!(ruri.host, Some(Host::Name("example.net")));

    let to = m.require::<To>().unwrap();
    assert_eq!(to.uri, "sip:%75se%72@example.com");
    assert_eq!(to.uri().unwrap().user_unescaped().as_deref(), Some("user"));
    let from = m.require::<From>().unwrap();
    assert_eq!(
        from.uri().unwrap().user_unescaped().as_deref(),
        Some("I have spaces")
    );
    assert_eq!(from.tag(), Some("938"));
    assert_eq!(m.require::<MaxForwards>(), Ok(MaxForwards(87)));
    assert_eq!(
        m.headers.get(StdHeader::ContentType).map(|t| t.as_str()),
        Some("application/sdp"),
        "compact `C`"
    );

    let c = contacts(&m);
    assert_eq!(c.len(), 1);
    let uri = c[0].uri().unwrap();
    assert_eq!(uri.user_unescaped().as_deref(), Some("caller"));
    assert_eq!(uri.host, Some(Host::Name("host5.example.net")));
    // `%6C%72` is `lr`; `v%61lue%25%34%31` is `value%41`, NOT `valueA`.
    assert_eq!(
        unescaped_params(&uri),
        [
            ("lr".to_owned(), None),
            ("name".to_owned(), Some("value%41".to_owned()))
        ]
    );
}

/// §3.1.1.4: escaped NULs must not shorten a user part; two Contacts that differ only there.
#[test]
fn rfc4475_escnull() {
    let m = fixture("rfc4475/escnull.dat").accepted();
    let to = m.require::<To>().unwrap();
    assert_eq!(to.uri, "sip:null-%00-null@example.com");
    assert_eq!(
        to.uri().unwrap().user_unescaped().as_deref(),
        Some("null-\0-null")
    );
    assert_eq!(m.require::<From>().unwrap().tag(), Some("839923423"));

    let users: Vec<String> = contacts(&m)
        .iter()
        .map(|c| c.uri().unwrap().user_unescaped().unwrap())
        .collect();
    assert_eq!(users, ["\0", "\0\0"]);
    assert_ne!(users[0], users[1], "two distinct bindings");
}

/// §3.1.1.5: `%` is literal outside URIs: in the method, display names, a branch, a header name.
#[test]
fn rfc4475_esc02() {
    let m = fixture("rfc4475/esc02.dat").accepted();
    assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
    assert_ne!(m.method(), Some(&Method::Register), "not REGISTER: 501");
    let to = m.require::<To>().unwrap();
    let from = m.require::<From>().unwrap();
    assert_eq!(to.display_name().as_deref(), Some("%Z%45"));
    assert_eq!(from.display_name().as_deref(), Some("%Z%45"));
    assert_eq!(from.tag(), Some("f232jadfj23"));
    assert_eq!(vias(&m)[0].branch(), Some("z9hG4bK209%fzsnel234"));

    // Two Contact values, not three: `C%6Fntact` is an extension header.
    let uris: Vec<&str> = contacts(&m).iter().map(|c| c.uri).collect();
    assert_eq!(
        uris,
        [
            "sip:alias1@host1.example.com",
            "sip:alias3@host3.example.com"
        ]
    );
    let ext = m
        .headers
        .iter()
        .find(|h| h.name == HeaderName::from("C%6Fntact"))
        .unwrap();
    assert!(matches!(ext.name, HeaderName::Other(_)));
    assert_eq!(ext.value, "<sip:alias2@host2.example.com>");
}

/// §3.1.1.6: `caller<sip:…>`, no LWS before `<` (an RFC 3261 ABNF bug): accept.
#[test]
fn rfc4475_lwsdisp() {
    let m = fixture("rfc4475/lwsdisp.dat").accepted();
    let from = m.require::<From>().unwrap();
    assert_eq!(from.display, Some("caller"));
    assert_eq!(from.uri, "sip:caller@example.com");
    assert_eq!(from.tag(), Some("323"));
}

/// §3.1.1.7: long values, many parameters, 34 Via headers under many spellings of the name.
#[test]
fn rfc4475_longreq() {
    let m = fixture("rfc4475/longreq.dat").accepted();
    let to = m.require::<To>().unwrap();
    assert_eq!(
        to.display_name().as_deref(),
        Some(
            "I have a user name of extremeextremeextremeextremeextremeextremeextremeextremeextremeextreme proportion"
        )
    );
    let to_uri = to.uri().unwrap();
    assert_eq!(to_uri.port, Some(6000));
    assert_eq!(to_uri.params.iter().count(), 3);
    assert!(to.params.is_empty());

    let from = m.require::<From>().unwrap();
    let tag = from.tag().unwrap();
    assert_eq!(tag.len(), 155);
    assert!(tag.starts_with("1298298298") && tag.ends_with("2424"));
    assert_eq!(from.params.iter().filter(|(n, _)| *n != "tag").count(), 2);

    let v = vias(&m);
    assert_eq!(v.len(), 34);
    assert_eq!(v[0].host, Host::Name("sip33.example.com"));
    let bottom = v.last().unwrap();
    assert_eq!(bottom.host, Host::Name("host.example.com"));
    assert_eq!(bottom.received(), Some("192.0.2.5"));
    assert_eq!(bottom.branch().map(str::len), Some(215));
    // Every spelling (`Via`, `v`, `ViA`, `V  :` …) is one header: 34 lines, one value each.
    assert_eq!(m.headers.get_all(StdHeader::Via).count(), 34);

    assert_eq!(m.require::<MaxForwards>(), Ok(MaxForwards(70)));
    assert!(
        m.headers
            .iter()
            .any(|h| h.name.as_str().starts_with("Unknown-LongLong")
                && h.value.starts_with("unknown-longlong"))
    );
}

/// §3.1.1.8: over UDP, octets after Content-Length are noise to drop, not a second request.
#[test]
fn rfc4475_dblreq() {
    let fx = fixture("rfc4475/dblreq.dat");
    assert_eq!(fx.fact("trailing_octets_ignored").as_u64(), Some(450));
    let m = fx.accepted();
    assert!(m.body.is_empty());
    let printed = String::from_utf8(m.to_bytes().to_vec()).unwrap();
    assert!(
        !printed.contains("INVITE"),
        "a forwarded copy carries no noise"
    );
    assert!(printed.ends_with("\r\n\r\n"));
}

/// §3.1.1.9: `;par=` before the `@` belongs to the user part.
#[test]
fn rfc4475_semiuri() {
    let m = fixture("rfc4475/semiuri.dat").accepted();
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        ruri.user_unescaped().as_deref(),
        Some("user;par=u@example.net")
    );
    assert_eq!(ruri.host, Some(Host::Name("example.com")));
    assert!(ruri.params.is_empty());
    // The Accept header is folded over three lines.
    let accept: Vec<&str> = split_list(raw(&m, "Accept").unwrap()).collect();
    assert_eq!(
        accept,
        [
            "application/sdp",
            "application/pkcs7-mime",
            "multipart/mixed",
            "multipart/signed",
            "message/sip",
            "message/sipfrag"
        ]
    );
}

/// §3.1.1.10: SCTP, TLS and an unknown transport token in Via.
#[test]
fn rfc4475_transports() {
    let m = fixture("rfc4475/transports.dat").accepted();
    let v = vias(&m);
    let transports: Vec<&str> = v.iter().map(|v| v.transport).collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let hosts: Vec<&str> = v.iter().map(|v| v.host_raw).collect();
    assert_eq!(
        hosts,
        [
            "t1.example.com",
            "t2.example.com",
            "t3.example.com",
            "t4.example.com",
            "t5.example.com"
        ]
    );
}

/// §3.1.1.11: a binary multipart body with NULs and bare CR/LF, framed by Content-Length only.
#[test]
fn rfc4475_mpart01() {
    let m = fixture("rfc4475/mpart01.dat").accepted();
    assert_eq!(
        raw(&m, "Content-Type"),
        Some("multipart/mixed;boundary=7a9cbec02ceef655")
    );
    let body = &m.body[..];
    assert_eq!(body.len(), 553);
    assert_eq!(body.iter().filter(|&&b| b == 0).count(), 2);
    let bare_lf = (0..body.len())
        .filter(|&i| body[i] == b'\n' && (i == 0 || body[i - 1] != b'\r'))
        .count();
    let bare_cr = (0..body.len())
        .filter(|&i| body[i] == b'\r' && body.get(i + 1) != Some(&b'\n'))
        .count();
    assert_eq!((bare_lf, bare_cr), (3, 5));
    let text = String::from_utf8_lossy(body);
    assert_eq!(
        text.matches("--7a9cbec02ceef655").count(),
        3,
        "two parts and the end"
    );
    assert!(text.contains(
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nHello\r\n"
    ));
    assert!(text.contains("Content-Type: application/octet-stream"));
}

/// §3.1.1.12: a reason phrase in UTF-8 with unreserved punctuation.
#[test]
fn rfc4475_unreason() {
    let m = fixture("rfc4475/unreason.dat").accepted();
    let StartLine::Response { code, reason } = &m.start else {
        panic!("a response")
    };
    assert_eq!(code.as_u16(), 200);
    assert_eq!(reason, "= 2**3 * 5**2 но сто девяносто девять - простое");
}

/// §3.1.1.13: `SIP/2.0 100 ` — the SP before the empty reason phrase is required.
#[test]
fn rfc4475_noreason() {
    let m = fixture("rfc4475/noreason.dat").accepted();
    let StartLine::Response { code, reason } = &m.start else {
        panic!("a response")
    };
    assert_eq!((code.as_u16(), reason.as_str()), (100, ""));
    assert!(m.to_bytes().starts_with(b"SIP/2.0 100 \r\n"));
}
