//! INVITE transactions (RFC 3261 §17.1.1, §17.2.1, RFC 6026): Timers A, B, D, G, H, I, L, M,
//! 100 Trying, 2xx retransmissions, loss and duplication.

use std::time::Duration;

use masterz_sip::endpoint::{Event, response_to};
use masterz_sip::message::{Message, Method, StdHeader};
use masterz_sip::transaction::TxState;
use masterz_sip::transport::Transport;

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The ACK a dialog layer sends for a 2xx (§13.2.2.4), without Via: the endpoint adds one.
fn ack_for_2xx(response: &Message) -> Message {
    let mut ack = Message::request(Method::Ack, "sip:bob@192.0.2.2");
    for name in [StdHeader::From, StdHeader::To, StdHeader::CallId] {
        if let Some(v) = response.headers.get(name) {
            ack.headers.push(name, v.clone());
        }
    }
    ack.headers.push(StdHeader::CSeq, "1 ACK");
    ack
}

/// A UAC TU whose dialog layer ACKs every 2xx it is given.
fn acking_uac(sim: &mut Sim) {
    let to = sim.peer(Who::Uas);
    sim.uac.tu(move |tu, event| {
        if let Event::Response { response, .. } = event
            && response.status().is_some_and(|s| s.is_success())
        {
            tu.endpoint.send_stateless(to, ack_for_2xx(response));
        }
    });
}

#[test]
fn timer_a_retransmits_invite_doubling_capped_only_by_timer_b() {
    let mut sim = Sim::with(Transport::Udp, true, false);
    sim.send_request(request(Method::Invite, 1));
    sim.run_until(Duration::from_secs(40));
    let expected: Vec<Duration> = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5].map(secs).to_vec();
    assert_eq!(sim.sent(Who::Uac, "INVITE"), expected);
}

#[test]
fn timer_b_invite_timeout_at_64_t1() {
    let mut sim = Sim::with(Transport::Udp, true, false);
    let tx = sim.send_request(request(Method::Invite, 1));
    sim.run_until(64 * T1 - ms(1));
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Calling));
    sim.run_until(Duration::from_secs(60));
    assert_eq!(sim.uac.events, [(64 * T1, Event::Timeout { tx })]);
    assert_eq!(sim.uac.ep().client_transactions(), 0);
}

#[test]
fn timer_d_absorbs_retransmitted_final_response_and_reacks() {
    let mut sim = Sim::new();
    sim.uas.tu(answer_with(486));
    sim.drop(Who::Uac, "ACK", 1);
    let tx = sim.send_request(request(Method::Invite, 1));
    sim.run_until(Duration::from_secs(1));
    // The lost ACK made the UAS retransmit its 486 (Timer G); the client transaction ACKed it
    // again from Completed and did not bother its TU.
    assert_eq!(sim.sent(Who::Uac, "ACK"), [ms(10), ms(510)]);
    assert_eq!(sim.uac.responses(), [100, 486]);
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Completed));
    let ack = sim.wire.iter().find(|w| w.line.starts_with("ACK")).unwrap();
    assert_eq!(ack.cseq, "1 ACK");
    let invite = &sim.wire[0];
    let branch = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes).into_owned();
        text.split("branch=")
            .nth(1)
            .unwrap()
            .split([';', '\r'])
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        branch(&ack.bytes),
        branch(&invite.bytes),
        "the ACK reuses the INVITE's branch"
    );
    // Timer D: 32 s after the 486 first arrived.
    sim.run_until(ms(10) + Duration::from_secs(32) - ms(1));
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Completed));
    sim.run_until(ms(10) + Duration::from_secs(32));
    assert_eq!(sim.uac.ep().client_state(tx), None);
}

#[test]
fn timer_g_retransmits_final_response_until_ack() {
    let mut sim = Sim::with(Transport::Udp, false, true);
    sim.uas.tu(answer_with(486));
    sim.send_raw(
        Who::Uac,
        raw_request("INVITE", "z9hG4bKg1", "1 INVITE", None).as_bytes(),
    );
    sim.run_until(Duration::from_secs(4));
    sim.send_raw(
        Who::Uac,
        raw_request("ACK", "z9hG4bKg1", "1 ACK", Some("bob1")).as_bytes(),
    );
    sim.run_until(Duration::from_secs(20));
    assert_eq!(
        sim.sent(Who::Uas, "SIP/2.0 486"),
        [ms(5), ms(505), ms(1505), ms(3505)]
    );
    assert_eq!(sim.uas.requests(), [Method::Invite]);
    assert_eq!(
        sim.uas.events.len(),
        1,
        "the ACK for a non-2xx stays in the transaction"
    );
}

#[test]
fn timer_g_is_capped_at_t2_and_timer_h_ends_without_ack() {
    let mut sim = Sim::with(Transport::Udp, false, true);
    sim.uas.tu(answer_with(486));
    sim.send_raw(
        Who::Uac,
        raw_request("INVITE", "z9hG4bKh1", "1 INVITE", None).as_bytes(),
    );
    sim.run_until(Duration::from_secs(60));
    let expected: Vec<Duration> = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        .map(|s| secs(s) + LATENCY)
        .to_vec();
    assert_eq!(sim.sent(Who::Uas, "SIP/2.0 486"), expected);
    let (at, event) = sim.uas.events.last().unwrap().clone();
    assert!(matches!(event, Event::AckTimeout { .. }), "{event:?}");
    assert_eq!(at, LATENCY + 64 * T1);
    assert_eq!(sim.uas.ep().server_transactions(), 0);
}

#[test]
fn timer_i_absorbs_acks_then_terminates() {
    let mut sim = Sim::with(Transport::Udp, false, true);
    sim.uas.tu(answer_with(603));
    sim.send_raw(
        Who::Uac,
        raw_request("INVITE", "z9hG4bKi1", "1 INVITE", None).as_bytes(),
    );
    sim.run_until(ms(100));
    let ack = raw_request("ACK", "z9hG4bKi1", "1 ACK", Some("bob1"));
    sim.send_raw(Who::Uac, ack.as_bytes());
    sim.run_until(Duration::from_secs(1));
    let Event::Request { tx, .. } = sim.uas.events[0].1.clone() else {
        panic!("first event is the INVITE")
    };
    assert_eq!(sim.uas.ep().server_state(tx), Some(TxState::Confirmed));
    sim.send_raw(Who::Uac, ack.as_bytes());
    sim.run_until(ms(105) + Duration::from_secs(5) - ms(1));
    assert_eq!(sim.uas.ep().server_state(tx), Some(TxState::Confirmed));
    assert_eq!(sim.uas.events.len(), 1, "ACKs absorbed in Confirmed");
    sim.run_until(ms(105) + Duration::from_secs(5));
    assert_eq!(sim.uas.ep().server_state(tx), None);
    // No 603 after the first ACK: Timer G stopped.
    assert_eq!(sim.sent(Who::Uas, "SIP/2.0 603"), [ms(5)]);
}

#[test]
fn two_xx_is_redelivered_in_accepted_and_stray_after_timer_m() {
    let mut sim = Sim::new();
    acking_uac(&mut sim);
    let uac_peer = sim.peer(Who::Uac);
    sim.uas.tu(move |tu, event| {
        if let Event::Request { tx, request, .. } = event {
            let tx = *tx;
            let ok = response_to(request, code(200), Some("bob1"));
            tu.endpoint.send_response(tu.now, tx, ok.clone()).unwrap();
            // The UAS core retransmits its 2xx (§13.3.1.4), through the transaction while it
            // lives (RFC 6026 Accepted) and statelessly after.
            let again = ok.clone();
            tu.after(T1, move |ep, now| ep.send_response(now, tx, again).unwrap());
            let late = ok.clone();
            tu.after(Duration::from_secs(40), move |ep, now| {
                assert!(ep.send_response(now, tx, late.clone()).is_err());
                ep.send_stateless(uac_peer, late);
            });
        }
    });
    let tx = sim.send_request(request(Method::Invite, 1));
    sim.run_until(Duration::from_secs(1));
    assert_eq!(sim.uac.responses(), [100, 200, 200]);
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Accepted));
    assert_eq!(sim.uas.count(|e| matches!(e, Event::Ack { .. })), 2);
    // Timers L and M: 64*T1 after the 2xx was sent / received.
    sim.run_until(ms(5) + 64 * T1);
    assert_eq!(sim.uas.ep().server_transactions(), 0);
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Accepted));
    sim.run_until(ms(10) + 64 * T1);
    assert_eq!(sim.uac.ep().client_state(tx), None);
    sim.run_until(Duration::from_secs(41));
    assert_eq!(
        sim.uac.count(|e| matches!(e, Event::StrayResponse { .. })),
        1
    );
}

#[test]
fn invite_100_trying_is_immediate_and_resent_for_retransmissions() {
    let mut sim = Sim::new();
    sim.drop(Who::Uas, "SIP/2.0 100", 1);
    sim.send_request(request(Method::Invite, 1));
    sim.run_until(Duration::from_secs(10));
    assert_eq!(sim.sent(Who::Uas, "SIP/2.0 100"), [ms(5), ms(505)]);
    assert_eq!(sim.sent(Who::Uac, "INVITE"), [ms(0), ms(500)]);
    assert_eq!(sim.uas.requests(), [Method::Invite]);
    assert_eq!(sim.uac.responses(), [100]);
}

#[test]
fn lost_packets_at_each_step_of_a_rejected_invite() {
    let steps = [
        (Who::Uac, "INVITE"),
        (Who::Uas, "SIP/2.0 100"),
        (Who::Uas, "SIP/2.0 486"),
        (Who::Uac, "ACK"),
    ];
    for (from, prefix) in steps {
        for times in 1..=3 {
            let mut sim = Sim::new();
            sim.uas.tu(answer_with(486));
            sim.drop(from, prefix, times);
            sim.send_request(request(Method::Invite, 1));
            sim.run_to_end();
            let what = format!("{times} x {prefix} lost");
            assert_eq!(sim.uas.requests(), [Method::Invite], "{what}");
            let responses = sim.uac.responses();
            assert_eq!(responses.iter().filter(|c| **c == 486).count(), 1, "{what}");
            assert!(
                responses.iter().filter(|c| **c == 100).count() <= 1,
                "{what}"
            );
            assert_eq!(
                sim.uas.count(|e| matches!(e, Event::AckTimeout { .. })),
                0,
                "{what}"
            );
            assert_eq!(sim.uac.ep().client_transactions(), 0, "{what}");
            assert_eq!(sim.uas.ep().server_transactions(), 0, "{what}");
        }
    }
}

#[test]
fn duplicated_packets_in_an_accepted_invite() {
    let mut sim = Sim::new();
    acking_uac(&mut sim);
    sim.uas.tu(|tu, event| {
        if let Event::Request { tx, request, .. } = event {
            let ringing = response_to(request, code(180), Some("bob1"));
            tu.endpoint.send_response(tu.now, *tx, ringing).unwrap();
            let ok = response_to(request, code(200), Some("bob1"));
            tu.endpoint.send_response(tu.now, *tx, ok).unwrap();
        }
    });
    sim.rule(Who::Uac, "", 0, usize::MAX, Fate::Duplicate);
    sim.rule(Who::Uas, "", 0, usize::MAX, Fate::Duplicate);
    sim.send_request(request(Method::Invite, 1));
    sim.run_to_end();
    assert_eq!(sim.uas.requests(), [Method::Invite]);
    // Provisional duplicates are absorbed; every 2xx copy reaches the dialog layer, which ACKs.
    assert_eq!(sim.uac.responses(), [100, 180, 200, 200]);
    assert_eq!(sim.uas.count(|e| matches!(e, Event::Ack { .. })), 4);
}

#[test]
fn reliable_invite_has_no_retransmissions_and_zero_timers_d_and_i() {
    for transport in [
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ] {
        // Unanswered: one INVITE on the wire (no Timer A), Timer B still ends it.
        let mut sim = Sim::with(transport, true, false);
        let tx = sim.send_request(request(Method::Invite, 1));
        sim.run_until(Duration::from_secs(40));
        assert_eq!(
            sim.sent(Who::Uac, "INVITE"),
            [Duration::ZERO],
            "{transport}"
        );
        assert_eq!(sim.uac.events, [(64 * T1, Event::Timeout { tx })]);

        // Rejected: the 486 goes out once (no Timer G), the client transaction ends as it sends
        // its ACK (Timer D = 0) and the server transaction as that ACK arrives (Timer I = 0).
        let mut sim = Sim::with(transport, true, true);
        sim.uas.tu(answer_with(486));
        let tx = sim.send_request(request(Method::Invite, 1));
        sim.run_until(ms(10));
        assert_eq!(sim.uac.ep().client_state(tx), None, "{transport}");
        assert_eq!(sim.uac.responses(), [100, 486]);
        sim.run_until(ms(15));
        assert_eq!(sim.uas.ep().server_transactions(), 0, "{transport}");
        sim.run_until(Duration::from_secs(60));
        assert_eq!(sim.sent(Who::Uas, "SIP/2.0 486"), [ms(5)], "{transport}");
        assert_eq!(sim.sent(Who::Uac, "ACK"), [ms(10)], "{transport}");
    }
}

#[test]
fn an_unreachable_destination_ends_its_client_transactions() {
    let mut sim = Sim::with(Transport::Udp, true, false);
    let invite = sim.send_request(request(Method::Invite, 1));
    let options = sim.send_request(request(Method::Options, 2));
    let uas = sim.peer(Who::Uas);
    sim.act(Who::Uac, |ep, now| ep.handle_unreachable(now, uas));
    assert_eq!(
        sim.uac.events,
        [
            (Duration::ZERO, Event::TransportError { tx: invite }),
            (Duration::ZERO, Event::TransportError { tx: options }),
        ]
    );
    assert_eq!(sim.uac.ep().client_transactions(), 0);
    sim.run_until(Duration::from_secs(60));
    assert_eq!(sim.wire.len(), 2, "no retransmission after the failure");
}
