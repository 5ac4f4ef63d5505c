//! CANCEL (RFC 3261 §9): deferred until a provisional response, 200 then 487, the ACK for the
//! 487 built by the client transaction, 481 for the unknown, misuse refused.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use masterz_sip::endpoint::{ClientTx, EndpointError, Event, response_to};
use masterz_sip::message::Method;
use masterz_sip::transaction::TxState;

use super::*;

/// A UAS TU that lets the INVITE ring (180) and answers a CANCEL's INVITE with 487.
fn ringing_uas(sim: &mut Sim) {
    sim.uas.tu(|tu, event| match event {
        Event::Request { tx, request, .. } if request.method() == Some(&Method::Invite) => {
            let ringing = response_to(request, code(180), Some("bob1"));
            tu.endpoint.send_response(tu.now, *tx, ringing).unwrap();
        }
        Event::Cancelled { tx, .. } => {
            let invite = tu.endpoint.server_request(*tx).unwrap().clone();
            let terminated = response_to(&invite, code(487), Some("bob1"));
            tu.endpoint.send_response(tu.now, *tx, terminated).unwrap();
        }
        _ => {}
    });
}

/// The Response events of one client transaction.
fn responses_of(side: &Side, of: ClientTx) -> Vec<u16> {
    side.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Response { tx, response } if *tx == of => response.status().map(|s| s.as_u16()),
            _ => None,
        })
        .collect()
}

#[test]
fn cancel_after_provisional_gets_200_then_487_and_the_client_acks() {
    let mut sim = Sim::new();
    ringing_uas(&mut sim);
    let invite = sim.send_request(request(Method::Invite, 1));
    sim.run_until(ms(50));
    let mut cancel = None;
    sim.act(Who::Uac, |ep, now| {
        cancel = Some(ep.cancel(now, invite).unwrap())
    });
    let cancel = cancel.unwrap();
    sim.run_to_end();
    assert_eq!(responses_of(&sim.uac, invite), [100, 180, 487]);
    assert_eq!(responses_of(&sim.uac, cancel), [200]);
    let uas: Vec<&str> = sim
        .uas
        .events
        .iter()
        .map(|(_, e)| match e {
            Event::Request { .. } => "request",
            Event::Cancelled { .. } => "cancelled",
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(uas, ["request", "cancelled"]);
    let ack = sim.wire.iter().find(|w| w.line.starts_with("ACK")).unwrap();
    assert_eq!(ack.cseq, "1 ACK");
    let cancel_wire = sim
        .wire
        .iter()
        .find(|w| w.line.starts_with("CANCEL"))
        .unwrap();
    assert_eq!(cancel_wire.cseq, "1 CANCEL");
    assert_eq!(cancel_wire.at, ms(50));
    // The 200 to the CANCEL carries the To tag of the 180 (§9.2).
    let ok = sim
        .wire
        .iter()
        .find(|w| w.cseq == "1 CANCEL" && w.line.starts_with("SIP/2.0 200"))
        .unwrap();
    assert!(String::from_utf8_lossy(&ok.bytes).contains("tag=bob1"));
    assert_eq!(sim.uac.ep().client_transactions(), 0);
    assert_eq!(sim.uas.ep().server_transactions(), 0);
}

#[test]
fn cancel_before_any_provisional_waits_for_the_first_one() {
    let mut sim = Sim::new();
    ringing_uas(&mut sim);
    // The 100 Trying and the 180 are lost: the CANCEL must wait for the 100 the INVITE's
    // retransmission (at T1) brings back.
    sim.drop(Who::Uas, "SIP/2.0 100", 1);
    sim.drop(Who::Uas, "SIP/2.0 180", 1);
    let invite = sim.send_request(request(Method::Invite, 1));
    let mut cancel = None;
    sim.act(Who::Uac, |ep, now| {
        cancel = Some(ep.cancel(now, invite).unwrap())
    });
    let cancel = cancel.unwrap();
    assert!(sim.sent(Who::Uac, "CANCEL").is_empty());
    sim.run_to_end();
    assert_eq!(sim.sent(Who::Uac, "CANCEL"), [T1 + 2 * LATENCY]);
    assert_eq!(responses_of(&sim.uac, cancel), [200]);
    // The retransmitted INVITE was answered with the last provisional response, the 180.
    assert_eq!(responses_of(&sim.uac, invite), [180, 487]);
    assert_eq!(sim.uas.count(|e| matches!(e, Event::Cancelled { .. })), 1);
}

#[test]
fn cancel_is_refused_when_it_cannot_apply() {
    let mut sim = Sim::new();
    sim.uas.tu(answer_with(486));
    let invite = sim.send_request(request(Method::Invite, 1));
    let options = sim.send_request(request(Method::Options, 2));
    sim.run_until(ms(50));
    let now = sim.now;
    let ep = sim.uac.ep();
    assert_eq!(ep.cancel(now, invite), Err(EndpointError::FinalReceived));
    assert_eq!(ep.cancel(now, options), Err(EndpointError::NotInvite));
    assert_eq!(
        ep.cancel(now, ClientTx(999)),
        Err(EndpointError::UnknownTransaction)
    );
    sim.run_to_end();
    let now = sim.now;
    assert_eq!(
        sim.uac.ep().cancel(now, invite),
        Err(EndpointError::UnknownTransaction)
    );

    let mut sim = Sim::with(masterz_sip::transport::Transport::Udp, true, false);
    let invite = sim.send_request(request(Method::Invite, 1));
    let options = sim.send_request(request(Method::Options, 2));
    let now = sim.now;
    let ep = sim.uac.ep();
    assert_eq!(ep.cancel(now, options), Err(EndpointError::NotInvite));
    assert!(ep.cancel(now, invite).is_ok());
    assert_eq!(ep.cancel(now, invite), Err(EndpointError::AlreadyCancelled));
}

#[test]
fn cancelled_invite_without_final_response_times_out() {
    // A UAS that rings but never answers the INVITE, even when cancelled.
    let mut sim = Sim::new();
    sim.uas.tu(|tu, event| {
        if let Event::Request { tx, request, .. } = event
            && request.method() == Some(&Method::Invite)
        {
            let ringing = response_to(request, code(180), Some("bob1"));
            tu.endpoint.send_response(tu.now, *tx, ringing).unwrap();
        }
    });
    let invite = sim.send_request(request(Method::Invite, 1));
    sim.run_until(Duration::from_secs(1));
    sim.act(Who::Uac, |ep, now| {
        ep.cancel(now, invite).unwrap();
    });
    sim.run_until(Duration::from_secs(1) + 64 * T1 - ms(1));
    assert_eq!(sim.uac.ep().client_state(invite), Some(TxState::Proceeding));
    sim.run_until(Duration::from_secs(1) + 64 * T1);
    assert_eq!(sim.uac.ep().client_state(invite), None);
    assert_eq!(
        sim.uac.events.last().map(|(_, e)| e.clone()),
        Some(Event::Timeout { tx: invite })
    );
}

#[test]
fn cancel_for_an_unknown_transaction_gets_481() {
    let mut sim = Sim::with(masterz_sip::transport::Transport::Udp, false, true);
    let cancel = raw_request("CANCEL", "z9hG4bKnone", "1 CANCEL", None);
    sim.send_raw(Who::Uac, cancel.as_bytes());
    sim.run_until(ms(100));
    // Retransmitted: answered again, from its transaction.
    sim.send_raw(Who::Uac, cancel.as_bytes());
    sim.run_until(ms(200));
    let got = lines(&sim.uac);
    assert_eq!(
        got,
        [
            (
                ms(10),
                "SIP/2.0 481 Call/Transaction Does Not Exist".to_owned()
            ),
            (
                ms(110),
                "SIP/2.0 481 Call/Transaction Does Not Exist".to_owned()
            ),
        ]
    );
    assert_eq!(
        sim.uac.received[0].1, sim.uac.received[1].1,
        "the same response"
    );
    assert!(sim.uas.events.is_empty(), "the TU never hears of it");
}

#[test]
fn retransmitted_cancel_is_answered_by_its_transaction_and_reported_once() {
    let mut sim = Sim::with(masterz_sip::transport::Transport::Udp, false, true);
    let seen = Rc::new(Cell::new(0));
    let seen_in_tu = seen.clone();
    sim.uas.tu(move |_, event| {
        if matches!(event, Event::Cancelled { .. }) {
            seen_in_tu.set(seen_in_tu.get() + 1);
        }
    });
    sim.send_raw(
        Who::Uac,
        raw_request("INVITE", "z9hG4bKc1", "1 INVITE", None).as_bytes(),
    );
    sim.run_until(ms(50));
    let cancel = raw_request("CANCEL", "z9hG4bKc1", "1 CANCEL", None);
    sim.send_raw(Who::Uac, cancel.as_bytes());
    sim.send_raw(Who::Uac, cancel.as_bytes());
    sim.run_until(ms(100));
    assert_eq!(seen.get(), 1);
    let oks = lines(&sim.uac)
        .into_iter()
        .filter(|(_, l)| l == "SIP/2.0 200 OK")
        .count();
    assert_eq!(oks, 2);
}
