//! Non-INVITE transactions (RFC 3261 §17.1.2, §17.2.2): Timers E, F, J, K, reliable
//! transports, loss and duplication.

use std::time::Duration;

use masterz_sip::endpoint::{Event, response_to};
use masterz_sip::message::Method;
use masterz_sip::transaction::TxState;
use masterz_sip::transport::Transport;

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn timer_e_doubles_capped_at_t2() {
    let mut sim = Sim::with(Transport::Udp, true, false);
    sim.send_request(request(Method::Options, 1));
    sim.run_until(Duration::from_secs(40));
    let expected: Vec<Duration> = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        .map(secs)
        .to_vec();
    assert_eq!(sim.sent(Who::Uac, "OPTIONS"), expected);
    // Every copy is the same request.
    let copies: Vec<_> = sim.wire.iter().map(|w| w.bytes.clone()).collect();
    assert!(copies.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn timer_e_in_proceeding_fires_every_t2() {
    let mut sim = Sim::with(Transport::Udp, true, false);
    sim.send_request(request(Method::Register, 1));
    sim.run_until(ms(10));
    let (_, register) = sim.uas.received[0].clone();
    sim.send_raw(
        Who::Uas,
        &response_to(&register, code(100), None).to_bytes(),
    );
    sim.run_until(Duration::from_secs(20));
    // The running Timer E (due at 0.5 s) still fires, then every T2.
    let expected: Vec<Duration> = [0.0, 0.5, 4.5, 8.5, 12.5, 16.5].map(secs).to_vec();
    assert_eq!(sim.sent(Who::Uac, "REGISTER"), expected);
    assert_eq!(sim.uac.responses(), [100]);
}

#[test]
fn timer_f_non_invite_timeout() {
    let mut sim = Sim::with(Transport::Udp, true, false);
    let tx = sim.send_request(request(Method::Options, 1));
    sim.run_until(64 * T1 - ms(1));
    assert!(sim.uac.events.is_empty());
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Trying));
    sim.run_until(Duration::from_secs(100));
    assert_eq!(sim.uac.events.len(), 1);
    assert_eq!(sim.uac.events[0], (64 * T1, Event::Timeout { tx }));
    assert_eq!(sim.uac.ep().client_transactions(), 0);
    assert_eq!(sim.uac.ep().poll_timeout(), None);
}

#[test]
fn timer_k_absorbs_retransmitted_final_response() {
    let mut sim = Sim::new();
    sim.uas.tu(answer_with(200));
    // The 200 arrives twice at once; a third copy (sent by hand below, as a stray
    // retransmission) arrives 3 s late.
    sim.rule(Who::Uas, "SIP/2.0 200", 0, 1, Fate::Duplicate);
    sim.rule(
        Who::Uas,
        "SIP/2.0 200",
        0,
        1,
        Fate::Delay(Duration::from_secs(3)),
    );
    let tx = sim.send_request(request(Method::Options, 1));
    sim.run_until(ms(20));
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Completed));
    let copy = sim
        .wire
        .iter()
        .find(|w| w.line.starts_with("SIP/2.0 200"))
        .unwrap()
        .bytes
        .clone();
    sim.send_raw(Who::Uas, &copy);
    // Timer K: T4 after the 200 arrived (at 2 * LATENCY).
    sim.run_until(2 * LATENCY + Duration::from_secs(5) - ms(1));
    assert_eq!(sim.uac.ep().client_state(tx), Some(TxState::Completed));
    sim.run_until(2 * LATENCY + Duration::from_secs(5));
    assert_eq!(sim.uac.ep().client_state(tx), None);
    assert_eq!(sim.uac.responses(), [200]);
    assert_eq!(sim.uac.events.len(), 1);
}

#[test]
fn timer_j_answers_retransmitted_request_from_the_transaction() {
    let mut sim = Sim::new();
    sim.uas.tu(answer_with(404));
    sim.drop(Who::Uas, "SIP/2.0 404", 1);
    sim.send_request(request(Method::Options, 1));
    sim.run_until(Duration::from_secs(2));
    // The UAC retransmitted at T1; the server transaction answered, the TU saw one request.
    assert_eq!(sim.sent(Who::Uac, "OPTIONS"), [secs(0.0), secs(0.5)]);
    assert_eq!(
        sim.sent(Who::Uas, "SIP/2.0 404"),
        [LATENCY, secs(0.5) + LATENCY]
    );
    assert_eq!(sim.uas.requests(), [Method::Options]);
    assert_eq!(sim.uac.responses(), [404]);
    // Timer J: 64*T1 after the 404 was first sent.
    sim.run_until(LATENCY + 64 * T1 - ms(1));
    assert_eq!(sim.uas.ep().server_transactions(), 1);
    sim.run_until(LATENCY + 64 * T1);
    assert_eq!(sim.uas.ep().server_transactions(), 0);
}

#[test]
fn provisional_then_final_and_retransmitted_provisional_absorbed() {
    let mut sim = Sim::new();
    sim.uas.tu(|tu, event| {
        if let Event::Request { tx, request, .. } = event {
            let tx = *tx;
            let trying = response_to(request, code(100), None);
            tu.endpoint.send_response(tu.now, tx, trying).unwrap();
            let ok = response_to(request, code(200), Some("bob1"));
            tu.after(Duration::from_secs(1), move |ep, now| {
                ep.send_response(now, tx, ok).unwrap();
            });
        }
    });
    sim.rule(Who::Uas, "SIP/2.0 100", 0, 1, Fate::Duplicate);
    sim.send_request(request(Method::Subscribe, 1));
    sim.run_until(Duration::from_secs(2));
    assert_eq!(sim.uac.responses(), [100, 200]);
    assert_eq!(sim.uas.requests(), [Method::Subscribe]);
    // In Proceeding the request is retransmitted at 0.5 s; the server resends its 100.
    assert_eq!(sim.sent(Who::Uac, "SUBSCRIBE"), [secs(0.0), secs(0.5)]);
    assert_eq!(sim.sent(Who::Uas, "SIP/2.0 100").len(), 2);
}

#[test]
fn reliable_transports_have_no_retransmissions_and_zero_timers() {
    for transport in [
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ] {
        // Nobody answers: one request on the wire, Timer F still ends it.
        let mut sim = Sim::with(transport, true, false);
        let tx = sim.send_request(request(Method::Options, 1));
        sim.run_until(Duration::from_secs(40));
        assert_eq!(
            sim.sent(Who::Uac, "OPTIONS"),
            [Duration::ZERO],
            "{transport}"
        );
        assert_eq!(sim.uac.events, [(64 * T1, Event::Timeout { tx })]);

        // Answered: Timers J and K are zero, so both transactions end with the response.
        let mut sim = Sim::with(transport, true, true);
        sim.uas.tu(answer_with(200));
        sim.send_request(request(Method::Options, 1));
        sim.run_until(ms(5));
        assert_eq!(sim.uas.ep().server_transactions(), 0, "{transport}");
        sim.run_until(ms(10));
        assert_eq!(sim.uac.responses(), [200]);
        assert_eq!(sim.uac.ep().client_transactions(), 0, "{transport}");
        assert_eq!(sim.uac.ep().poll_timeout(), None);
        assert_eq!(sim.uas.ep().poll_timeout(), None);
    }
}

#[test]
fn lost_and_duplicated_packets_never_confuse_a_non_invite_transaction() {
    for seed in 1..200 {
        let mut sim = Sim::new();
        sim.uas.tu(answer_with(200));
        sim.random_loss(seed, 400);
        sim.rule(Who::Uac, "OPTIONS", (seed % 3) as usize, 1, Fate::Duplicate);
        let tx = sim.send_request(request(Method::Options, 1));
        sim.run_to_end();
        let requests = sim.uas.requests().len();
        let responses = sim.uac.responses();
        let timeouts = sim.uac.count(|e| matches!(e, Event::Timeout { .. }));
        assert!(requests <= 1, "seed {seed}: the TU saw a retransmission");
        assert_eq!(
            responses.len() + timeouts,
            1,
            "seed {seed}: one final outcome"
        );
        if requests == 0 {
            assert_eq!(
                sim.uac.events,
                [(64 * T1, Event::Timeout { tx })],
                "seed {seed}"
            );
        }
        assert_eq!(sim.uac.ep().client_transactions(), 0);
        assert_eq!(sim.uas.ep().server_transactions(), 0);
    }
}
