//! SDP parsing, printing and offer/answer against samples shaped like what real peers send
//! (`tests/fixtures/sdp/`) (property tests: `sdp_props.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use masterz_media::codec::{Codec, Direction};
use masterz_media::sdp::{
    Attribute, LocalMedia, MAX_SDP_LEN, Negotiated, Origin, RtpMap, SdpError, SessionDescription,
    accept_answer, answer, inspect_offer, offer,
};

fn fixture(name: &str) -> SessionDescription {
    let path = format!("{}/tests/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    SessionDescription::parse_bytes(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const FIXTURES: &[&str] = &[
    "sipp-uac.sdp",
    "baresip.sdp",
    "linphone.sdp",
    "zoiper.sdp",
    "video-audio.sdp",
    "savp.sdp",
    "savp-then-avp.sdp",
    "g729-only.sdp",
    "ipv6.sdp",
    "hold-rfc2543.sdp",
    "hold-session-sendonly.sdp",
    "hold-media-inactive.sdp",
];

fn local() -> LocalMedia {
    LocalMedia {
        addr: "10.1.2.3:40000".parse().expect("address"),
        session_id: 777,
        version: 1,
    }
}

fn sock(s: &str) -> Option<SocketAddr> {
    Some(s.parse().expect("socket address"))
}

fn answer_text(offer_name: &str) -> (String, Negotiated) {
    let (a, n) = answer(
        &fixture(offer_name),
        &local(),
        &Codec::ALL,
        Direction::SendRecv,
    )
    .expect("answer");
    (a.to_string(), n)
}

#[test]
fn every_fixture_prints_back_to_itself() {
    for name in FIXTURES {
        let sdp = fixture(name);
        let printed = sdp.to_string();
        assert!(printed.ends_with("\r\n") && !printed.replace("\r\n", "").contains('\n'));
        assert_eq!(
            SessionDescription::parse(&printed).as_ref(),
            Ok(&sdp),
            "{name}"
        );
    }
}

#[test]
fn sipp_offer_with_lf_line_endings() {
    let sdp = fixture("sipp-uac.sdp");
    assert_eq!(
        sdp.origin,
        Origin {
            username: "user1".into(),
            session_id: 53655765,
            version: 2353687637,
            address: "127.0.0.1".into()
        }
    );
    let (text, n) = answer_text("sipp-uac.sdp");
    assert_eq!(
        n,
        Negotiated {
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event: None,
            ptime_ms: 20,
            remote_rtp: sock("127.0.0.1:6000"),
            remote_rtcp: sock("127.0.0.1:6001"),
            remote_direction: Direction::SendRecv,
        }
    );
    assert_eq!(
        text,
        "v=0\r\no=- 777 1 IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    );
}

#[test]
fn baresip_offer_with_telephone_events() {
    let (text, n) = answer_text("baresip.sdp");
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event),
        (Codec::Pcmu, 0, Some(101))
    );
    assert!(text.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"));
    // Only the answer's own lines: none of the offer's ssrc/label attributes.
    assert!(!text.contains("ssrc") && !text.contains("label"));

    // The offerer's preference wins over ours.
    let (_, n) = answer(
        &fixture("baresip.sdp"),
        &local(),
        &[Codec::Pcma, Codec::Pcmu],
        Direction::SendRecv,
    )
    .expect("answer");
    assert_eq!(n.codec, Codec::Pcmu);
    let (_, n) = answer(
        &fixture("baresip.sdp"),
        &local(),
        &[Codec::Pcma],
        Direction::SendRecv,
    )
    .expect("answer");
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
}

#[test]
fn linphone_offer_with_dynamic_types_and_three_telephone_events() {
    let sdp = fixture("linphone.sdp");
    let m = &sdp.media[0];
    assert_eq!(
        m.rtpmap(96),
        Some(&RtpMap {
            payload_type: 96,
            encoding: "opus".into(),
            clock_rate: 48000,
            channels: Some(2)
        })
    );
    assert_eq!(m.fmtp(18), Some("annexb=yes"));
    assert_eq!(sdp.attribute("record"), Some(Some("off")));
    let n = inspect_offer(&sdp, &Codec::ALL).expect("offer");
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event),
        (Codec::Pcmu, 0, Some(100))
    );
    let (text, _) = answer_text("linphone.sdp");
    assert!(text.contains("m=audio 40000 RTP/AVP 0 100\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:100 telephone-event/8000\r\n"));
    assert!(
        !text.contains("fmtp"),
        "no fmtp was offered for 100: {text}"
    );
}

#[test]
fn zoiper_offer_prefers_its_own_order_and_does_not_get_rtcp_mux() {
    let (text, n) = answer_text("zoiper.sdp");
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event),
        (Codec::Pcma, 8, Some(101))
    );
    assert!(text.contains("m=audio 40000 RTP/AVP 8 101\r\n"), "{text}");
    assert!(text.contains("a=fmtp:101 0-16\r\n"));
    assert!(!text.contains("rtcp-mux"));
    assert_eq!(n.remote_rtcp, sock("10.0.0.5:8001"));
}

#[test]
fn video_is_rejected_in_place_and_audio_answered() {
    let offer = fixture("video-audio.sdp");
    let (a, n) = answer(&offer, &local(), &Codec::ALL, Direction::SendRecv).expect("answer");
    assert_eq!(a.media.len(), 2);
    assert_eq!((a.media[0].kind.as_str(), a.media[0].port), ("video", 0));
    assert_eq!(a.media[0].formats, ["96", "97"]);
    assert_eq!(a.media[1].port, 40000);
    assert!(
        a.to_string()
            .contains("m=video 0 RTP/AVP 96 97\r\nm=audio 40000 RTP/AVP 8 101\r\n")
    );
    assert_eq!(
        n,
        Negotiated {
            codec: Codec::Pcma,
            payload_type: 8,
            telephone_event: Some(101),
            ptime_ms: 30,
            // Media-level c= wins; a=rtcp names its own address.
            remote_rtp: sock("203.0.113.8:7078"),
            remote_rtcp: sock("203.0.113.9:7080"),
            remote_direction: Direction::SendRecv,
        }
    );
    assert_eq!(a.media[1].ptime, Some(30));
    // The offerer reads our answer back.
    let ours = accept_answer(&offer, &a).expect("accept");
    assert_eq!(ours.remote_rtp, sock("10.1.2.3:40000"));
    assert_eq!((ours.codec, ours.telephone_event), (Codec::Pcma, Some(101)));
}

#[test]
fn srtp_only_is_refused_and_best_effort_srtp_falls_back_to_rtp() {
    let err = answer(
        &fixture("savp.sdp"),
        &local(),
        &Codec::ALL,
        Direction::SendRecv,
    )
    .expect_err("no SRTP");
    assert_eq!(err, SdpError::UnsupportedProtocol("RTP/SAVP".into()));
    assert_eq!(err.sip_status(), 488);

    let (a, n) = answer(
        &fixture("savp-then-avp.sdp"),
        &local(),
        &Codec::ALL,
        Direction::SendRecv,
    )
    .expect("answer");
    assert_eq!(
        (a.media[0].port, a.media[0].proto.as_str()),
        (0, "RTP/SAVP")
    );
    assert_eq!((a.media[1].port, n.codec), (40000, Codec::Pcma));
    assert_eq!(n.remote_rtp, sock("198.51.100.2:5006"));
}

#[test]
fn g729_only_has_no_common_codec() {
    let sdp = fixture("g729-only.sdp");
    let err = answer(&sdp, &local(), &Codec::ALL, Direction::SendRecv).expect_err("488");
    assert_eq!(err, SdpError::NoCommonCodec);
    assert_eq!(
        inspect_offer(&sdp, &Codec::ALL),
        Err(SdpError::NoCommonCodec)
    );
    assert_eq!(err.sip_status(), 488);
}

#[test]
fn ipv6_offer() {
    let n = inspect_offer(&fixture("ipv6.sdp"), &Codec::ALL).expect("offer");
    assert_eq!(n.remote_rtp, sock("[2001:db8::1]:5000"));
    let local6 = LocalMedia {
        addr: "[2001:db8::2]:40000".parse().expect("address"),
        ..local()
    };
    let (a, _) = answer(
        &fixture("ipv6.sdp"),
        &local6,
        &Codec::ALL,
        Direction::SendRecv,
    )
    .expect("answer");
    let text = a.to_string();
    assert!(text.contains("o=- 777 1 IN IP6 2001:db8::2\r\n"), "{text}");
    assert!(text.contains("c=IN IP6 2001:db8::2\r\n"));
    assert_eq!(
        a.connection,
        Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)))
    );
}

#[test]
fn hold_offers() {
    // RFC 2543: c=0.0.0.0.
    let (text, n) = answer_text("hold-rfc2543.sdp");
    assert_eq!((n.remote_rtp, n.remote_rtcp), (None, None));
    assert_eq!(n.remote_direction, Direction::SendOnly);
    assert!(n.on_hold());
    assert!(text.contains("a=recvonly\r\n"), "{text}");

    // Session-level sendonly.
    let (text, n) = answer_text("hold-session-sendonly.sdp");
    assert_eq!(n.remote_direction, Direction::SendOnly);
    assert!(n.on_hold() && n.remote_rtp.is_some());
    assert!(text.contains("a=recvonly\r\n"));

    // Media-level inactive overrides session-level sendonly.
    let (text, n) = answer_text("hold-media-inactive.sdp");
    assert_eq!(n.remote_direction, Direction::Inactive);
    assert!(text.contains("a=inactive\r\n"));

    // We hold a peer that offers sendrecv.
    let (a, n) = answer(
        &fixture("baresip.sdp"),
        &local(),
        &Codec::ALL,
        Direction::SendOnly,
    )
    .expect("answer");
    assert!(!n.on_hold());
    assert_eq!(a.media[0].direction, Some(Direction::SendOnly));
}

#[test]
fn our_offer_and_its_answers() {
    let ours = offer(
        &local(),
        &[Codec::Pcmu, Codec::Pcma, Codec::Pcmu],
        true,
        20,
        Direction::SendRecv,
    );
    assert_eq!(
        ours.to_string(),
        "v=0\r\no=- 777 1 IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    assert_eq!(
        SessionDescription::parse(&ours.to_string()),
        Ok(ours.clone())
    );

    // A peer answering with our own answer() agrees on our first codec.
    let peer = LocalMedia {
        addr: "192.0.2.9:3000".parse().expect("address"),
        session_id: 5,
        version: 5,
    };
    let (their_answer, theirs) =
        answer(&ours, &peer, &Codec::ALL, Direction::SendRecv).expect("answer");
    assert_eq!(
        (theirs.codec, theirs.telephone_event),
        (Codec::Pcmu, Some(101))
    );
    assert_eq!(theirs.remote_rtp, sock("10.1.2.3:40000"));
    let n = accept_answer(&ours, &their_answer).expect("accept");
    assert_eq!(
        n,
        Negotiated {
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event: Some(101),
            ptime_ms: 20,
            remote_rtp: sock("192.0.2.9:3000"),
            remote_rtcp: sock("192.0.2.9:3001"),
            remote_direction: Direction::SendRecv,
        }
    );

    // An answer with other payload type numbers, its own order, and a different telephone-event
    // type: we send with its numbers.
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                m=audio 3000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=ptime:40\r\n\
                a=recvonly\r\n";
    let n = accept_answer(&ours, &SessionDescription::parse(text).expect("parse")).expect("accept");
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event, n.ptime_ms),
        (Codec::Pcma, 8, Some(96), 40)
    );
    assert_eq!(n.remote_direction, Direction::RecvOnly);

    // Without telephone-event in our offer, an answer's is ignored.
    let plain = offer(&local(), &[Codec::Pcma], false, 0, Direction::SendRecv);
    assert!(!plain.to_string().contains("ptime"));
    let n =
        accept_answer(&plain, &SessionDescription::parse(text).expect("parse")).expect("accept");
    assert_eq!((n.codec, n.telephone_event), (Codec::Pcma, None));
}

#[test]
fn answers_we_cannot_use() {
    let ours = offer(&local(), &[Codec::Pcmu], true, 20, Direction::SendRecv);
    let parse = |s: &str| SessionDescription::parse(s).expect("parse");
    let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n";
    let rejected = parse(&format!("{head}m=audio 0 RTP/AVP 0\r\n"));
    assert_eq!(
        accept_answer(&ours, &rejected),
        Err(SdpError::AudioRejected)
    );
    let g729 = parse(&format!("{head}m=audio 3000 RTP/AVP 18\r\n"));
    assert_eq!(accept_answer(&ours, &g729), Err(SdpError::NoCommonCodec));
    let two = parse(&format!(
        "{head}m=audio 3000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n"
    ));
    assert_eq!(
        accept_answer(&ours, &two),
        Err(SdpError::MediaCountMismatch {
            offer: 1,
            answer: 2
        })
    );
    // Mismatched PCMU announced under a dynamic type is still PCMU.
    let dynamic = parse(&format!(
        "{head}m=audio 3000 RTP/AVP 97\r\na=rtpmap:97 pcmu/8000\r\n"
    ));
    let n = accept_answer(&ours, &dynamic).expect("accept");
    assert_eq!(
        (n.codec, n.payload_type, n.telephone_event),
        (Codec::Pcmu, 97, None)
    );
}

#[test]
fn no_audio() {
    let text = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nt=0 0\r\nm=video 3000 RTP/AVP 96\r\n\
                m=audio 0 RTP/AVP 0\r\n";
    let sdp = SessionDescription::parse(text).expect("parse");
    assert_eq!(inspect_offer(&sdp, &Codec::ALL), Err(SdpError::NoAudio));
}

#[test]
fn malformed_input_names_the_line() {
    let bad = |text: &str| SessionDescription::parse(text).expect_err(text);
    assert_eq!(
        bad(""),
        SdpError::Malformed {
            line: 1,
            reason: "empty SDP"
        }
    );
    assert!(matches!(
        bad("o=- 1 1 IN IP4 1.2.3.4\r\n"),
        SdpError::Malformed { line: 1, .. }
    ));
    assert!(matches!(bad("v=0\r\ns=-\r\n"), SdpError::Malformed { .. }));
    assert!(matches!(
        bad("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n"),
        SdpError::Malformed { line: 2, .. }
    ));
    assert!(matches!(
        bad("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 host.example\r\n"),
        SdpError::Malformed { line: 3, .. }
    ));
    assert!(matches!(
        bad("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n"),
        SdpError::Malformed { line: 3, .. }
    ));
    assert!(matches!(
        bad("v=0\r\nhello\r\n"),
        SdpError::Malformed { line: 2, .. }
    ));
    let err = bad("v=0\r\nx");
    assert_eq!(err.sip_status(), 400);
    assert_eq!(err.to_string(), "SDP line 2: not a <type>=<value> line");

    let huge = "a=x\r\n".repeat(MAX_SDP_LEN / 5 + 1);
    assert_eq!(
        bad(&format!("v=0\r\n{huge}")),
        SdpError::TooLarge { max: MAX_SDP_LEN }
    );
    assert!(matches!(
        bad(&format!("v=0\r\n{}", "\n".repeat(2000))),
        SdpError::TooMany { .. }
    ));
    let media = "m=audio 1 RTP/AVP 0\r\n".repeat(40);
    assert!(matches!(
        bad(&format!("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n{media}")),
        SdpError::TooMany { .. }
    ));
    assert!(matches!(
        bad(&format!("v=0\r\ni={}\r\n", "x".repeat(5000))),
        SdpError::Malformed { line: 2, .. }
    ));
    assert_eq!(
        SessionDescription::parse_bytes(b"v=0\r\ns=\xff\r\n"),
        Err(SdpError::NotUtf8)
    );
}

#[test]
fn lenient_where_peers_are_sloppy() {
    // No s=, no t=, blank lines, trailing spaces, a 20-digit session id, multicast TTL.
    let text = "\r\nv=0\r\no=- 18446744073709551617 2 IN IP4 1.2.3.4  \r\n\r\n\
                c=IN IP4 224.2.1.1/127\r\nm=audio 49170/2 RTP/AVP 0\r\na=ptime:abc\r\n";
    let sdp = SessionDescription::parse(text).expect("parse");
    assert_eq!(sdp.origin.session_id, 1);
    assert_eq!(sdp.session_name, "-");
    assert_eq!(sdp.times, ["0 0"]);
    assert_eq!(
        sdp.connection,
        Some(IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1)))
    );
    assert_eq!(sdp.media[0].port_count, Some(2));
    assert_eq!(sdp.media[0].ptime, None);
    assert_eq!(sdp.media[0].attribute("ptime"), Some(Some("abc")));
    assert_eq!(
        inspect_offer(&sdp, &Codec::ALL).expect("offer").ptime_ms,
        20
    );
    // Absurd packetisation times fall back to the default, in the answer too.
    for ptime in ["0", "151", "4294967295"] {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 8\r\na=ptime:{ptime}\r\n"
        );
        let sdp = SessionDescription::parse(&text).expect("parse");
        let (a, n) = answer(&sdp, &local(), &Codec::ALL, Direction::SendRecv).expect("answer");
        assert_eq!((n.ptime_ms, a.media[0].ptime), (20, Some(20)), "{ptime}");
    }
}

#[test]
fn printing_cannot_inject_lines() {
    let mut sdp = offer(&local(), &[Codec::Pcmu], false, 20, Direction::SendRecv);
    sdp.session_name = "evil\r\nm=video 1 RTP/AVP 96".into();
    sdp.origin.username = "a b".into();
    sdp.attributes.push(Attribute {
        name: "x:y".into(),
        value: Some("1\n2".into()),
    });
    let text = sdp.to_string();
    let back = SessionDescription::parse(&text).expect("parse");
    assert_eq!(back.media.len(), 1);
    assert_eq!(back.origin.username, "a-b");
    assert_eq!(back.attributes[0].name, "x-y");
}

// ---- property tests ----
