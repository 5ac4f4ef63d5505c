//! Matching and rejecting (RFC 3261 §17.1.3, §17.2.3, §18.2, §8.2): RFC 2543 peers, malformed
//! requests, stray responses, received/rport, response routing, determinism.

use masterz_sip::endpoint::Event;
use masterz_sip::message::{Method, StdHeader};
use masterz_sip::transaction::TxState;
use masterz_sip::transport::{ConnectionId, Peer, Transport};

use super::*;

/// A scripted UAC facing a UAS endpoint whose TU answers every request with `status`.
fn scripted_uac(status: Option<u16>) -> Sim {
    let mut sim = Sim::with(Transport::Udp, false, true);
    if let Some(status) = status {
        sim.uas.tu(answer_with(status));
    }
    sim
}

fn malformed(side: &Side) -> Vec<String> {
    side.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Malformed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn rfc2543_fallback_matching() {
    let mut sim = scripted_uac(Some(486));
    // No magic cookie: matched by Request-URI, tags, Call-ID, CSeq and top Via.
    let invite = raw_request("INVITE", "2543a", "1 INVITE", None);
    sim.send_raw(Who::Uac, invite.as_bytes());
    sim.run_until(ms(100));
    sim.send_raw(Who::Uac, invite.as_bytes());
    sim.run_until(ms(200));
    assert_eq!(sim.uas.requests(), [Method::Invite]);
    let got: Vec<String> = lines(&sim.uac).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        got,
        [
            "SIP/2.0 100 Trying",
            "SIP/2.0 486 Busy Here",
            "SIP/2.0 486 Busy Here"
        ]
    );
    // The ACK (with the To tag of the 486) matches the INVITE transaction: Confirmed, no event.
    sim.send_raw(
        Who::Uac,
        raw_request("ACK", "2543a", "1 ACK", Some("bob1")).as_bytes(),
    );
    sim.run_until(ms(300));
    let Event::Request { tx, .. } = sim.uas.events[0].1.clone() else {
        panic!("the INVITE")
    };
    assert_eq!(sim.uas.ep().server_state(tx), Some(TxState::Confirmed));
    assert_eq!(sim.uas.events.len(), 1);
    // A different CSeq is a different transaction.
    sim.send_raw(
        Who::Uac,
        raw_request("INVITE", "2543a", "2 INVITE", None).as_bytes(),
    );
    sim.run_until(ms(400));
    assert_eq!(sim.uas.requests(), [Method::Invite, Method::Invite]);
}

#[test]
fn rfc2543_cancel_matches_its_invite() {
    let mut sim = scripted_uac(None);
    let invite = raw_request("INVITE", "2543c", "1 INVITE", None).replace(";branch=2543c", "");
    sim.send_raw(Who::Uac, invite.as_bytes());
    sim.run_until(ms(50));
    let cancel = raw_request("CANCEL", "2543c", "1 CANCEL", None).replace(";branch=2543c", "");
    sim.send_raw(Who::Uac, cancel.as_bytes());
    sim.run_until(ms(100));
    assert_eq!(sim.uas.count(|e| matches!(e, Event::Cancelled { .. })), 1);
    let got: Vec<String> = lines(&sim.uac).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]);
}

#[test]
fn malformed_request_gets_400_with_a_reason_phrase() {
    // Parses, but the CSeq method is not a token: the typed view names the header.
    let mut sim = scripted_uac(Some(200));
    sim.send_raw(
        Who::Uac,
        raw_request("INVITE", "z9hG4bKm1", "1 IN VITE", None).as_bytes(),
    );
    // Does not parse at all (Content-Length is not a number): read leniently and answered.
    let bad_length = raw_request("OPTIONS", "z9hG4bKm2", "1 OPTIONS", None)
        .replace("Content-Length: 0", "Content-Length: abc");
    sim.send_raw(Who::Uac, bad_length.as_bytes());
    sim.run_until(ms(100));
    let got: Vec<String> = lines(&sim.uac).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        got,
        [
            "SIP/2.0 400 Bad Header: CSeq (bad method)",
            "SIP/2.0 400 Bad Header: Content-Length (not a number)"
        ]
    );
    for (_, response) in &sim.uac.received {
        let text = response.to_string();
        assert!(text.contains("rport=5060;received=192.0.2.1"), "{text}");
        assert!(text.contains(";tag="), "a To tag: {text}");
        assert!(text.contains("Call-ID: raw-1@192.0.2.1\r\n"), "{text}");
    }
    assert_eq!(
        malformed(&sim.uas),
        [
            "Bad Header: CSeq (bad method)",
            "Bad Header: Content-Length (not a number)"
        ]
    );
    assert!(sim.uas.requests().is_empty());
}

#[test]
fn missing_or_inconsistent_mandatory_headers_get_400_naming_them() {
    let mut sim = scripted_uac(Some(200));
    let base = raw_request("OPTIONS", "z9hG4bKh1", "1 OPTIONS", None);
    for (i, header) in ["From", "To", "Call-ID", "CSeq"].into_iter().enumerate() {
        let without: String = base
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(&format!("{header}:")))
            .collect::<String>()
            .replace("z9hG4bKh1", &format!("z9hG4bKh1{i}"));
        sim.send_raw(Who::Uac, without.as_bytes());
    }
    sim.send_raw(
        Who::Uac,
        raw_request("INVITE", "z9hG4bKh2", "1 OPTIONS", None).as_bytes(),
    );
    // Max-Forwards is tolerated.
    let no_max_forwards = base.replace("Max-Forwards: 70\r\n", "");
    sim.send_raw(Who::Uac, no_max_forwards.as_bytes());
    sim.run_until(ms(100));
    let got: Vec<String> = lines(&sim.uac).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        got,
        [
            "SIP/2.0 400 Missing Header: From",
            "SIP/2.0 400 Missing Header: To",
            "SIP/2.0 400 Missing Header: Call-ID",
            "SIP/2.0 400 Missing Header: CSeq",
            "SIP/2.0 400 Bad Header: CSeq (method does not match the request)",
            "SIP/2.0 200 OK",
        ]
    );
    assert_eq!(sim.uas.requests(), [Method::Options]);
}

#[test]
fn unsupported_version_gets_505() {
    let mut sim = scripted_uac(Some(200));
    let v3 = raw_request("OPTIONS", "z9hG4bKv1", "1 OPTIONS", None).replacen(
        "SIP/2.0\r\n",
        "SIP/3.0\r\n",
        1,
    );
    sim.send_raw(Who::Uac, v3.as_bytes());
    sim.run_until(ms(100));
    assert_eq!(
        lines(&sim.uac),
        [(
            ms(10),
            "SIP/2.0 505 Version Not Supported: SIP/3.0".to_owned()
        )]
    );
    assert_eq!(malformed(&sim.uas), ["Version Not Supported: SIP/3.0"]);
}

#[test]
fn unanswerable_input_is_dropped_and_reported() {
    let mut sim = scripted_uac(Some(200));
    sim.send_raw(Who::Uac, b"\x00\xff\xfegarbage\r\n\r\n");
    // An ACK is never answered, even a broken one (§17).
    sim.send_raw(
        Who::Uac,
        raw_request("ACK", "z9hG4bKa1", "1 AC K", Some("x")).as_bytes(),
    );
    // Without a Via there is nowhere to answer.
    let no_via: String = raw_request("OPTIONS", "z9hG4bKa2", "1 OPTIONS", None)
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Via:"))
        .collect();
    sim.send_raw(Who::Uac, no_via.as_bytes());
    // A keep-alive is not even worth a log line.
    sim.send_raw(Who::Uac, b"\r\n\r\n");
    sim.run_until(ms(100));
    assert!(sim.uac.received.is_empty());
    assert_eq!(malformed(&sim.uas).len(), 3);
    assert_eq!(sim.uas.events.len(), 3);
}

#[test]
fn a_response_that_matches_nothing_is_stray() {
    let mut sim = Sim::with(Transport::Udp, true, false);
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnobody\r\n\
                 From: <sip:alice@192.0.2.1>;tag=a\r\nTo: <sip:bob@192.0.2.2>;tag=b\r\n\
                 Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    sim.send_raw(Who::Uas, stray.as_bytes());
    // Same branch as a live transaction but another method: also stray (§17.1.3).
    let tx = sim.send_request(request(Method::Options, 1));
    sim.run_until(ms(10));
    let sent = sim.uas.received[0].1.clone();
    let mut wrong_method = masterz_sip::endpoint::response_to(&sent, code(200), Some("b"));
    wrong_method.headers.set(StdHeader::CSeq, "1 INVITE");
    sim.send_raw(Who::Uas, &wrong_method.to_bytes());
    sim.run_until(ms(20));
    assert_eq!(
        sim.uac.count(|e| matches!(e, Event::StrayResponse { .. })),
        2
    );
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Trying));
}

#[test]
fn requests_carry_received_and_rport_and_responses_follow_them() {
    let mut sim = scripted_uac(Some(200));
    let natted = raw_request("OPTIONS", "z9hG4bKr1", "1 OPTIONS", None).replace(
        "Via: SIP/2.0/UDP 192.0.2.1:5060",
        "Via: SIP/2.0/UDP 10.0.0.9:5070",
    );
    sim.send_raw(Who::Uac, natted.as_bytes());
    sim.run_until(ms(100));
    let Event::Request { request, from, .. } = &sim.uas.events[0].1 else {
        panic!("a request")
    };
    assert_eq!(*from, sim.peer(Who::Uac));
    assert_eq!(
        request.headers.get(StdHeader::Via).map(|v| v.as_str()),
        Some("SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKr1;rport=5060;received=192.0.2.1")
    );
    // The harness checks the destination address: the response reached 192.0.2.1:5060.
    assert_eq!(lines(&sim.uac), [(ms(10), "SIP/2.0 200 OK".to_owned())]);
}

#[test]
fn stream_responses_use_the_request_connection_until_it_closes() {
    let mut sim = Sim::with(Transport::Tcp, true, true);
    let invite = sim.send_request(request(Method::Invite, 1));
    sim.run_until(ms(10));
    let Event::Request { tx, .. } = sim.uas.events[0].1.clone() else {
        panic!("a request")
    };
    assert_eq!(
        sim.uas.ep().response_destination(tx),
        Some(sim.peer(Who::Uac))
    );
    assert_eq!(sim.uac.responses(), [100]);
    sim.uas.ep().connection_closed(ConnectionId(1));
    assert_eq!(
        sim.uas.ep().response_destination(tx),
        Some(Peer::new(Transport::Tcp, "192.0.2.1:5060".parse().unwrap()))
    );
    assert_eq!(sim.uac.ep().client_state(invite), Some(TxState::Proceeding));
}

#[test]
fn the_same_inputs_give_the_same_wire() {
    let run = || {
        let mut sim = Sim::new();
        sim.uas.tu(answer_with(486));
        sim.random_loss(7, 300);
        for cseq in 1..=5 {
            sim.send_request(request(Method::Invite, cseq));
            sim.send_request(request(Method::Options, 100 + cseq));
        }
        sim.run_to_end();
        sim.wire
            .iter()
            .map(|w| (w.at, w.fate, w.bytes.clone()))
            .collect::<Vec<_>>()
    };
    let first = run();
    assert!(first.len() > 20);
    assert_eq!(first, run());
}

#[test]
fn mutated_input_never_panics() {
    use masterz_sip::endpoint::{Endpoint, EndpointConfig};
    #[allow(clippy::disallowed_methods)] // one base instant for a virtual clock
    let now = std::time::Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default(), Box::new(Seeded(9)));
    let mut rng = Seeded(42);
    let from = Peer::new(Transport::Udp, "192.0.2.1:5060".parse().unwrap());
    let seeds = [
        raw_request("INVITE", "z9hG4bKf1", "1 INVITE", None),
        raw_request("CANCEL", "2543f", "1 CANCEL", None),
        raw_request("ACK", "z9hG4bKf1", "1 ACK", Some("t")),
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKf1\r\nCSeq: 1 INVITE\r\n\r\n"
            .to_owned(),
    ];
    let alphabet = b";,=:<>\"\\ \t\r\nSIP/2.0branchrportz9hG4bK0123456789";
    for round in 0..5_000u64 {
        let mut bytes = seeds[(round % 4) as usize].clone().into_bytes();
        for _ in 0..=(rng.next() % 4) {
            let at = (rng.next() as usize) % bytes.len();
            match rng.next() % 3 {
                0 => bytes[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
            }
        }
        ep.handle_input(now, from, bytes::Bytes::from(bytes));
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
    }
}

#[test]
fn requests_are_validated_before_any_transaction() {
    let mut sim = scripted_uac(Some(200));
    let mailto = raw_request("OPTIONS", "z9hG4bKs1", "1 OPTIONS", None).replacen(
        "sip:bob@192.0.2.2",
        "mailto:bob@example.com",
        1,
    );
    sim.send_raw(Who::Uac, mailto.as_bytes());
    let two_call_ids = raw_request("OPTIONS", "z9hG4bKs2", "1 OPTIONS", None)
        .replace("Call-ID: raw-1@192.0.2.1\r\n", "Call-ID: a@x\r\ni: b@x\r\n");
    sim.send_raw(Who::Uac, two_call_ids.as_bytes());
    sim.run_until(ms(100));
    let got: Vec<String> = lines(&sim.uac).into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        got,
        [
            "SIP/2.0 416 Unsupported URI Scheme (mailto)",
            "SIP/2.0 400 Bad Header: Call-ID (appears more than once)",
        ]
    );
    assert!(sim.uas.requests().is_empty());
}
