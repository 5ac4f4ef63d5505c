//! Parser and framer tests on hand-written messages (the RFC torture suites live in `tests/`).

use bytes::Bytes;

use super::*;
use crate::headers::{CSeq, CallIdHeader, Contact, From, MaxForwards, To, Via};

pub(crate) const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn parse(s: &str) -> Result<Message, ParseError> {
    Message::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
}

#[test]
fn a_typical_invite() {
    let m = parse(INVITE).unwrap();
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(
        m.request_uri().map(|u| u.as_str()),
        Some("sip:bob@biloxi.example.com")
    );
    assert_eq!(m.headers.len(), 9);
    assert_eq!(&m.body[..], b"v=0\n");
    let via = m.require::<Via>().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK776asdhds"));
    assert_eq!(m.require::<CSeq>().unwrap().seq, 314159);
    assert_eq!(m.require::<From>().unwrap().tag(), Some("1928301774"));
    assert_eq!(m.require::<To>().unwrap().tag(), None);
    assert_eq!(m.require::<MaxForwards>().unwrap(), MaxForwards(70));
    assert_eq!(
        m.require::<CallIdHeader>().unwrap().0,
        "a84b4c76e66710@pc33.atlanta.example.com"
    );
    assert_eq!(parse(&m.to_string()).unwrap(), m);
    assert_eq!(m.to_bytes().len(), m.encoded_len());
    assert_eq!(m.to_bytes(), Bytes::from_static(INVITE.as_bytes()));
}

#[test]
fn compact_forms_folding_and_space_before_colon() {
    let m = parse(
        "OPTIONS sip:x@y SIP/2.0\r\n\
v: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2\r\n\
Max-Forwards : 70\r\n\
i: abc\r\n\
f: <sip:a@b>;tag=1\r\n\
t: <sip:x@y>\r\n\
CSeq: 1\r\n  OPTIONS\r\n\
Subject: a\r\n\tfolded\r\n   line\r\n\
m: *\r\n\
l: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(m.typed_all::<Via>().count(), 2);
    assert_eq!(
        m.typed_all::<Via>().nth(1).unwrap().unwrap().transport,
        "TCP"
    );
    assert_eq!(m.require::<MaxForwards>().unwrap().0, 70);
    assert_eq!(m.require::<CSeq>().unwrap().method, Method::Options);
    assert_eq!(
        m.headers.get(StdHeader::Subject).map(|t| t.as_str()),
        Some("a folded line")
    );
    assert_eq!(m.require::<Contact>().unwrap(), Contact::Any);
    assert_eq!(m.headers.get("I").map(|t| t.as_str()), Some("abc"));
}

#[test]
fn responses_and_reason_phrases() {
    let m = parse("SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(m.status().map(StatusCode::as_u16), Some(180));
    let m = parse("SIP/2.0 200 \r\n\r\n").unwrap();
    assert!(matches!(m.start, StartLine::Response { ref reason, .. } if reason.is_empty()));
    let m = parse("SIP/2.0 420 Bad Extension — ünïcode\r\n\r\n").unwrap();
    assert_eq!(m.status().unwrap().as_u16(), 420);
}

#[test]
fn extra_spaces_around_request_line_elements_are_tolerated() {
    // RFC 4475 §3.1.2.9 (lwsstart) and §3.1.2.10 (trws): a liberal element may ignore them.
    for line in [
        "INVITE  sip:a@b  SIP/2.0",
        "INVITE sip:a@b SIP/2.0  ",
        "INVITE   sip:a@b SIP/2.0 ",
    ] {
        let m = parse(&format!("{line}\r\n\r\n")).unwrap();
        assert_eq!(
            m.request_uri().map(|u| u.as_str()),
            Some("sip:a@b"),
            "{line:?}"
        );
        assert!(m.to_string().starts_with("INVITE sip:a@b SIP/2.0\r\n"));
    }
    for (line, reason) in [
        ("INVITE sip:a@b; lr SIP/2.0", "whitespace in Request-URI"),
        ("INVITE   SIP/2.0", "no Request-URI"),
        ("INVITE    ", "no Request-URI"),
    ] {
        assert_eq!(
            parse(&format!("{line}\r\n\r\n")),
            Err(ParseError::StartLine(reason)),
            "{line:?}"
        );
    }
}

#[test]
fn rejections_name_the_culprit() {
    let cases: &[(&str, ParseError)] = &[
        ("\r\n\r\n", ParseError::Empty),
        (
            "INVITE sip:a@b SIP/7.0\r\n\r\n",
            ParseError::Version("SIP/7.0".into()),
        ),
        (
            "INVITE sip:a b SIP/2.0\r\n\r\n",
            ParseError::StartLine("whitespace in Request-URI"),
        ),
        (
            "INVITE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
            ParseError::HeaderLine(2),
        ),
        (
            "INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
            ParseError::HeaderLine(2),
        ),
        (
            "SIP/2.0 99 Low\r\n\r\n",
            ParseError::StartLine("bad status code"),
        ),
        (
            "SIP/2.0 2000 OK\r\n\r\n",
            ParseError::StartLine("bad status code"),
        ),
        (
            "INVITE sip:a@b SIP/2.0\r\nVia: x\r\n",
            ParseError::Truncated,
        ),
        (
            "INVITE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc",
            ParseError::BodyTooShort {
                declared: 10,
                actual: 3,
            },
        ),
        (
            "INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n",
            ParseError::Header {
                name: "Content-Length".into(),
                reason: "not a number",
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(&parse(input).unwrap_err(), expected, "{input:?}");
    }
    assert_eq!(ParseError::Version("SIP/7.0".into()).status().as_u16(), 505);
    let utf = Message::parse(
        Bytes::from_static(b"INVITE sip:a@b SIP/2.0\r\nX: \xff\r\n\r\n"),
        &Limits::default(),
    );
    assert!(matches!(utf, Err(ParseError::Header { .. })));
}

#[test]
fn datagram_body_is_cut_at_content_length_and_limits_hold() {
    let m = parse("MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nhello").unwrap();
    assert_eq!(&m.body[..], b"he");
    let limits = Limits {
        max_message_bytes: 10,
        max_headers: 1,
    };
    let big = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n");
    assert_eq!(Message::parse(big, &limits), Err(ParseError::TooLarge(10)));
    let limits = Limits {
        max_message_bytes: 1000,
        max_headers: 1,
    };
    let two = Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\n\r\n");
    assert_eq!(
        Message::parse(two, &limits),
        Err(ParseError::TooManyHeaders(1))
    );
}

#[test]
fn stream_framing() {
    let l = Limits::default();
    let msg = INVITE.as_bytes();
    for cut in 0..msg.len() {
        assert_eq!(
            frame(&msg[..cut], &l),
            Ok(Frame::Incomplete),
            "cut at {cut}"
        );
    }
    let mut two = msg.to_vec();
    two.extend_from_slice(msg);
    assert_eq!(frame(&two, &l), Ok(Frame::Message(msg.len())));
    assert_eq!(
        frame(b"\r\n\r\nINVITE", &l),
        Ok(Frame::KeepAlive { len: 4, ping: true })
    );
    assert_eq!(
        frame(b"\r\nINVITE", &l),
        Ok(Frame::KeepAlive {
            len: 2,
            ping: false
        })
    );
    assert_eq!(
        frame(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n", &l),
        Err(ParseError::MissingContentLength)
    );
    let m = Message::parse_framed(Bytes::copy_from_slice(&two[..msg.len()]), &l).unwrap();
    assert_eq!(&m.body[..], b"v=0\n");
    let huge = vec![b'a'; 70_000];
    assert_eq!(frame(&huge, &l), Err(ParseError::TooLarge(65_535)));
}

#[test]
fn crlf_cr_then_junk_is_a_pong_not_an_endless_wait() {
    let l = Limits {
        max_message_bytes: 128,
        ..Limits::default()
    };
    assert_eq!(frame(b"\r\n\r", &l), Ok(Frame::Incomplete));
    let mut junk = b"\r\n\rX".to_vec();
    junk.extend_from_slice(&[b'a'; 200]);
    let pong = Frame::KeepAlive {
        len: 2,
        ping: false,
    };
    assert_eq!(frame(&junk, &l), Ok(pong));
    // The rest then runs into the size limit instead of growing the buffer forever.
    assert_eq!(frame(&junk[2..], &l), Err(ParseError::TooLarge(128)));
}

#[test]
fn framer_and_parser_agree_on_where_a_bare_lf_header_section_ends() {
    let l = Limits::default();
    // The empty line after `l: 3` is a bare LF; CRLF CRLF only comes inside the body.
    let msg = b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\nx\r\n\r\nNEXT";
    assert_eq!(frame(msg, &l), Ok(Frame::Message(35)));
    let m = Message::parse_framed(Bytes::copy_from_slice(&msg[..35]), &l).unwrap();
    assert_eq!(&m.body[..], b"x\r\n");
    // Undecided until the byte after a CR arrives; leading line breaks are not the empty line.
    assert_eq!(
        frame(b"OPTIONS sip:a@b SIP/2.0\nl: 0\n\r", &l),
        Ok(Frame::Incomplete)
    );
    assert_eq!(
        frame(b"\nOPTIONS sip:a@b SIP/2.0\nl: 0\n\n", &l),
        Ok(Frame::Message(31))
    );
}
