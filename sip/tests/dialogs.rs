//! Dialog flows (RFC 3261 §12–§14, RFC 6026) with hand-built messages: a call through two
//! record-routing proxies hung up from either side, forking, CSeq ordering, target refresh,
//! 481, re-INVITE glare and the 2xx retransmitter. Then a simulation: two endpoints on a
//! virtual clock run a call into re-INVITE glare and out of it (`dialogs/sim.rs`).

#[path = "dialogs/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use bytes::Bytes;
use masterz_sip::dialog::{
    Dialog, DialogError, DialogId, DialogSet, DialogState, Dialogs, ForkEvent, TwoXxAction,
    TwoXxRetransmitter, copy_record_route,
};
use masterz_sip::headers::{CSeq, Route};
use masterz_sip::ident::RandomSource;
use masterz_sip::message::{Limits, Message, Method, StatusCode, StdHeader};

/// xorshift64*: the same seed gives the same bytes.
struct Seeded(u64);

impl RandomSource for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// The origin of the virtual clock; only offsets from it matter. std has no other way to make
/// an `Instant`, hence the one allowed clock read.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

fn parse(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n")), &Limits::default())
        .expect("test message parses")
}

/// What a request looks like on the wire after a hop: printed and parsed again.
fn wire(m: &Message) -> Message {
    Message::parse(m.to_bytes(), &Limits::default()).expect("what we print parses")
}

/// A record-routing proxy forwarding a request: adds its Record-Route on top (§16.6) and, when
/// the request carries a Route to it, pops it (§16.4).
fn through_proxy(request: &Message, proxy: &str, record_route: bool) -> Message {
    let mut m = wire(request);
    if m.headers
        .get(StdHeader::Route)
        .is_some_and(|r| r.contains(proxy))
    {
        m.headers.remove_first_value(StdHeader::Route);
    }
    if record_route {
        m.headers
            .push_front(StdHeader::RecordRoute, format!("<sip:{proxy};lr>"));
    }
    m
}

/// Alice's INVITE to Bob, as Alice sends it.
fn alice_invite() -> Message {
    parse(
        "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKinv
Max-Forwards: 70
From: Alice <sip:alice@atlanta.example.com>;tag=alicetag
To: Bob <sip:bob@biloxi.example.com>
Call-ID: call-1@192.0.2.1
CSeq: 1 INVITE
Contact: <sip:alice@192.0.2.1>
Content-Length: 0

",
    )
}

/// The UAS's response: From, To (+ tag), Call-ID, CSeq, Via and Record-Route copied, Contact.
fn answer(request: &Message, code: u16, tag: Option<&str>, contact: Option<&str>) -> Message {
    let mut r = Message::response(StatusCode::new(code).expect("code"));
    for v in request.headers.get_all(StdHeader::Via) {
        r.headers.push(StdHeader::Via, v.clone());
    }
    copy_record_route(request, &mut r);
    for h in [StdHeader::From, StdHeader::CallId, StdHeader::CSeq] {
        r.headers
            .push(h, request.headers.get(h).expect("header").clone());
    }
    let to = request.headers.get(StdHeader::To).expect("To").to_string();
    let to = match tag {
        Some(t) if !to.contains("tag=") => format!("{to};tag={t}"),
        _ => to,
    };
    r.headers.push(StdHeader::To, to);
    if let Some(c) = contact {
        r.headers.push(StdHeader::Contact, format!("<{c}>"));
    }
    r.headers.push(StdHeader::ContentLength, "0");
    r
}

fn routes(m: &Message) -> Vec<String> {
    m.typed_all::<Route>()
        .map(|r| r.expect("Route parses").uri.to_string())
        .collect()
}

fn cseq(m: &Message) -> u32 {
    m.require::<CSeq>().expect("CSeq").seq
}

/// Alice calls Bob through p1 (hers) and p2 (his); both record-route. Returns both dialogs,
/// confirmed, and the 2xx.
fn call() -> (Dialog, Dialog, Message) {
    let sent = alice_invite();
    let at_bob = through_proxy(
        &through_proxy(&sent, "p1.example.com", true),
        "p2.example.com",
        true,
    );
    let ringing = answer(&at_bob, 180, Some("bobtag"), Some("sip:bob@192.0.2.2"));
    let mut bob = Dialog::uas(&at_bob, &ringing).expect("Bob's early dialog");
    let mut alice = Dialog::uac(&sent, &wire(&ringing)).expect("Alice's early dialog");
    assert_eq!(
        (alice.state(), bob.state()),
        (DialogState::Early, DialogState::Early)
    );

    let ok = answer(&at_bob, 200, Some("bobtag"), Some("sip:bob@192.0.2.2"));
    bob.on_response_sent(&ok).expect("Bob confirms");
    alice.on_response(&wire(&ok)).expect("Alice confirms");
    assert_eq!(
        (alice.state(), bob.state()),
        (DialogState::Confirmed, DialogState::Confirmed)
    );
    (alice, bob, ok)
}

#[test]
fn invite_180_200_ack_bye_from_the_caller() {
    let (mut alice, mut bob, ok) = call();
    // §12.1.2: the UAC reverses Record-Route; §12.1.1: the UAS keeps it as received.
    assert_eq!(
        alice.route_set().collect::<Vec<_>>(),
        ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    );
    assert_eq!(
        bob.route_set().collect::<Vec<_>>(),
        ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    );
    assert_eq!(alice.remote_target(), "sip:bob@192.0.2.2");
    assert_eq!(bob.remote_target(), "sip:alice@192.0.2.1");

    let start = epoch();
    let mut rt = TwoXxRetransmitter::new(start, ok.clone(), T1, T2).expect("2xx to INVITE");
    let ack = alice.ack_for(&wire(&ok)).expect("ACK");
    assert_eq!(
        ack.require::<CSeq>().unwrap(),
        CSeq {
            seq: 1,
            method: Method::Ack
        }
    );
    assert_eq!(ack.request_uri().unwrap(), "sip:bob@192.0.2.2");
    assert_eq!(
        routes(&ack),
        ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    );
    let ack_at_bob = through_proxy(
        &through_proxy(&ack, "p1.example.com", false),
        "p2.example.com",
        false,
    );
    assert!(
        routes(&ack_at_bob).is_empty(),
        "each proxy popped its Route"
    );
    bob.on_request(&ack_at_bob).expect("ACK in dialog");
    assert!(rt.on_ack(&ack_at_bob));
    assert_eq!(rt.poll_timeout(), None);

    let bye = alice.request(Method::Bye).expect("BYE");
    assert_eq!(cseq(&bye), 2);
    assert_eq!(alice.state(), DialogState::Terminated);
    bob.on_request(&through_proxy(
        &through_proxy(&bye, "p1.example.com", false),
        "p2.example.com",
        false,
    ))
    .expect("BYE in dialog");
    assert_eq!(bob.state(), DialogState::Terminated);
}

#[test]
fn the_callee_hangs_up_with_its_own_cseq_space_and_route_order() {
    let (mut alice, mut bob, _) = call();
    let bye = bob.request(Method::Bye).expect("BYE");
    // §12.1.1: the UAS's local sequence number starts empty; its first request picks one.
    assert_eq!(cseq(&bye), 1);
    assert_eq!(bye.request_uri().unwrap(), "sip:alice@192.0.2.1");
    assert_eq!(
        routes(&bye),
        ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    );
    assert_eq!(alice.remote_cseq(), None);
    alice.on_request(&wire(&bye)).expect("BYE in dialog");
    assert_eq!(alice.remote_cseq(), Some(1));
    assert_eq!(alice.state(), DialogState::Terminated);
    // The 200 to our BYE changes nothing more.
    bob.on_response(&answer(&wire(&bye), 200, None, None))
        .expect("200 to BYE");
    assert_eq!(bob.state(), DialogState::Terminated);
}

#[test]
fn forking_two_180s_then_a_200_from_one() {
    let invite = alice_invite();
    let mut set = DialogSet::new(invite.clone()).expect("INVITE");
    let mut dialogs = Dialogs::new();
    let from_fork = |code, tag: &str| {
        let at = through_proxy(&invite, "fork.example.com", true);
        wire(&answer(
            &at,
            code,
            Some(tag),
            Some(&format!("sip:{tag}@192.0.2.50")),
        ))
    };
    let a = DialogId::new("call-1@192.0.2.1", "alicetag", "desk");
    let b = DialogId::new("call-1@192.0.2.1", "alicetag", "mobile");
    assert_eq!(
        set.on_response(&mut dialogs, &from_fork(180, "desk")),
        Ok(ForkEvent::Early(a.clone()))
    );
    assert_eq!(
        set.on_response(&mut dialogs, &from_fork(180, "mobile")),
        Ok(ForkEvent::Early(b.clone()))
    );
    assert_eq!(dialogs.len(), 2);
    assert_eq!(
        dialogs.find(&a).unwrap().remote_target(),
        "sip:desk@192.0.2.50"
    );

    let ok = from_fork(200, "mobile");
    assert_eq!(
        set.on_response(&mut dialogs, &ok),
        Ok(ForkEvent::Answered(b.clone()))
    );
    let call = dialogs.find(&b).unwrap();
    assert_eq!(call.state(), DialogState::Confirmed);
    assert_eq!(
        call.ack_for(&ok).unwrap().request_uri().unwrap(),
        "sip:mobile@192.0.2.50"
    );
    // §13.2.2.4: the desk's early dialog lives on until its own 2xx or the transaction's end.
    assert_eq!(dialogs.find(&a).unwrap().state(), DialogState::Early);
    assert!(set.to_bye(&dialogs).is_empty());

    // The desk answers too: ACK it, then BYE it.
    let late = from_fork(200, "desk");
    assert_eq!(
        set.on_response(&mut dialogs, &late),
        Ok(ForkEvent::ExtraAnswer(a.clone()))
    );
    assert_eq!(set.to_bye(&dialogs), vec![a.clone()]);
    let desk = dialogs.find_mut(&a).unwrap();
    let ack = desk.ack_for(&late).unwrap();
    assert_eq!(ack.request_uri().unwrap(), "sip:desk@192.0.2.50");
    let bye = desk.request(Method::Bye).unwrap();
    assert_eq!((cseq(&ack), cseq(&bye)), (1, 2));
    assert!(set.to_bye(&dialogs).is_empty());
    assert_eq!(dialogs.remove_terminated(), vec![a]);
    assert_eq!(set.answered(), Some(&b));
}

#[test]
fn in_dialog_requests_must_not_go_back_in_cseq() {
    let (mut alice, mut bob, _) = call();
    let first = alice.request(Method::Info).unwrap();
    let second = alice.request(Method::Info).unwrap();
    assert_eq!((cseq(&first), cseq(&second)), (2, 3));
    bob.on_request(&wire(&second)).unwrap();
    // The earlier one arrives late: 500 (§12.2.2).
    let err = bob.on_request(&wire(&first)).unwrap_err();
    assert_eq!(
        err,
        DialogError::CSeqOutOfOrder {
            received: 2,
            last: 3
        }
    );
    assert_eq!(err.status().as_u16(), 500);
    assert_eq!(bob.remote_cseq(), Some(3));
}

#[test]
fn re_invite_refreshes_the_target_both_ways() {
    let (mut alice, mut bob, _) = call();
    alice.set_local_contact("<sip:alice@198.51.100.1>");
    let reinvite = alice.request(Method::Invite).unwrap();
    assert_eq!(
        reinvite.headers.get(StdHeader::Contact).unwrap(),
        "<sip:alice@198.51.100.1>"
    );
    let at_bob = wire(&reinvite);
    bob.on_request(&at_bob).unwrap();
    assert_eq!(bob.remote_target(), "sip:alice@198.51.100.1");
    assert_eq!(bob.incoming_pending(), Some(2));

    let ok = answer(&at_bob, 200, None, Some("sip:bob@203.0.113.2"));
    bob.on_response_sent(&ok).unwrap();
    assert_eq!(bob.local_contact(), Some("<sip:bob@203.0.113.2>"));
    alice.on_response(&wire(&ok)).unwrap();
    assert_eq!(alice.remote_target(), "sip:bob@203.0.113.2");
    assert_eq!(alice.outgoing_pending(), None);
    let ack = alice.ack_for(&ok).unwrap();
    assert_eq!(
        (cseq(&ack), ack.request_uri().unwrap().as_str()),
        (2, "sip:bob@203.0.113.2")
    );
    // The next request goes to the new target.
    let bye = bob.request(Method::Bye).unwrap();
    assert_eq!(bye.request_uri().unwrap(), "sip:alice@198.51.100.1");
}

#[test]
fn a_request_for_no_known_dialog_gets_481() {
    let (alice, bob, _) = call();
    let mut dialogs = Dialogs::new();
    dialogs.insert(bob);
    let mut alice = alice;
    let info = wire(&alice.request(Method::Info).unwrap());
    assert!(dialogs.for_request(&info).is_ok());
    let mut stranger = info.clone();
    stranger
        .headers
        .set(StdHeader::CallId, "never-seen@192.0.2.9");
    let err = dialogs.for_request(&stranger).unwrap_err();
    assert_eq!(
        (err.clone(), err.status().as_u16()),
        (DialogError::UnknownDialog, 481)
    );
    // After the BYE, the dialog is gone for later requests too.
    let bye = wire(&alice.request(Method::Bye).unwrap());
    dialogs.for_request(&bye).unwrap().on_request(&bye).unwrap();
    assert_eq!(
        dialogs.for_request(&info).unwrap_err().status().as_u16(),
        481
    );
    // An out-of-dialog request (no To tag) has no dialog id at all.
    assert_eq!(DialogId::as_uas(&alice_invite()), Ok(None));
}

#[test]
fn glare_both_get_491_and_back_off_by_call_id_ownership() {
    let (mut alice, mut bob, _) = call();
    let from_alice = wire(&alice.request(Method::Invite).unwrap());
    let from_bob = wire(&bob.request(Method::Invite).unwrap());
    // Each receives the other's re-INVITE while its own is pending (§14.2).
    let a_err = alice.on_request(&from_bob).unwrap_err();
    let b_err = bob.on_request(&from_alice).unwrap_err();
    assert_eq!(
        (a_err.clone(), b_err.status().as_u16()),
        (DialogError::Glare, 491)
    );
    assert_eq!(
        alice.incoming_pending(),
        None,
        "a refused request is not pending"
    );
    alice
        .on_response(&answer(&from_alice, 491, None, None))
        .unwrap();
    bob.on_response(&answer(&from_bob, 491, None, None))
        .unwrap();
    assert_eq!(
        (alice.outgoing_pending(), bob.outgoing_pending()),
        (None, None)
    );

    // §14.1: Alice generated the Call-ID: 2.1–4 s; Bob did not: 0–2 s; 10 ms units.
    assert!(alice.owns_call_id() && !bob.owns_call_id());
    for seed in 1..500 {
        let a = alice.retry_after(&mut Seeded(seed));
        let b = bob.retry_after(&mut Seeded(seed));
        assert!(
            (Duration::from_millis(2100)..=Duration::from_secs(4)).contains(&a),
            "{a:?}"
        );
        assert!(b <= Duration::from_secs(2), "{b:?}");
        assert_eq!((a.as_millis() % 10, b.as_millis() % 10), (0, 0));
        assert_eq!(a, alice.retry_after(&mut Seeded(seed)), "deterministic");
    }
    // Both may now retry.
    assert!(bob.request(Method::Invite).is_ok());
}

#[test]
fn the_uas_retransmits_its_2xx_t1_doubling_to_t2_and_gives_up_at_64_t1() {
    let (_, _, ok) = call();
    let start = epoch();
    let mut rt = TwoXxRetransmitter::new(start, ok, T1, T2).unwrap();
    let mut fired = Vec::new();
    while let Some(at) = rt.poll_timeout() {
        match rt.handle_timeout(at) {
            Some(TwoXxAction::Retransmit) => fired.push((at - start).as_millis()),
            Some(TwoXxAction::GiveUp) => {
                fired.push((at - start).as_millis());
                break;
            }
            None => panic!("a polled deadline fires"),
        }
    }
    // 500 ms, then 1, 2, 4, 4, … s apart; BYE at 32 s.
    assert_eq!(
        fired,
        [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500, 32000
        ]
    );
    assert!(!rt.is_active() && !rt.is_acknowledged());
}

#[test]
fn an_ack_stops_the_2xx_retransmissions_and_the_uac_re_acks_each_2xx() {
    let (alice, mut bob, ok) = call();
    let start = epoch();
    let mut rt = TwoXxRetransmitter::new(start, ok.clone(), T1, T2).unwrap();
    // The first ACK is lost: the 2xx goes out again at T1 and 3*T1.
    assert_eq!(rt.handle_timeout(start + T1), Some(TwoXxAction::Retransmit));
    assert_eq!(rt.poll_timeout(), Some(start + T1 * 3));
    assert_eq!(
        rt.handle_timeout(start + T1 * 3),
        Some(TwoXxAction::Retransmit)
    );
    // Alice answers each copy with the same ACK (§13.2.2.4).
    let ack = alice.ack_for(&wire(rt.response())).unwrap();
    assert_eq!(ack, alice.ack_for(&wire(&ok)).unwrap());
    bob.on_request(&wire(&ack)).unwrap();
    assert!(rt.on_ack(&wire(&ack)));
    assert_eq!(rt.handle_timeout(start + T1 * 64), None);
    assert!(rt.is_acknowledged());
}

#[test]
fn failures_and_timeouts_end_dialogs() {
    // A non-2xx final ends the early dialog (§12.3).
    let invite = alice_invite();
    let ringing = answer(&invite, 180, Some("b"), Some("sip:bob@192.0.2.2"));
    let mut early = Dialog::uac(&invite, &ringing).unwrap();
    early
        .on_response(&answer(&invite, 486, Some("b"), None))
        .unwrap();
    assert_eq!(early.state(), DialogState::Terminated);
    // 481 and 408 to an in-dialog request, and a transaction timeout, end it (§12.2.1.2).
    for code in [481, 408] {
        let (mut alice, _, _) = call();
        let info = alice.request(Method::Info).unwrap();
        alice.on_response(&answer(&info, code, None, None)).unwrap();
        assert_eq!(alice.state(), DialogState::Terminated, "{code}");
    }
    let (mut alice, _, _) = call();
    alice.request(Method::Options).unwrap();
    alice.on_request_timeout();
    assert_eq!(alice.state(), DialogState::Terminated);
    assert!(matches!(
        alice.request(Method::Info),
        Err(DialogError::InvalidState {
            state: DialogState::Terminated,
            ..
        })
    ));
}

#[test]
fn reinvite_glare_491_then_retry() {
    use sim::{LATENCY, Note, Sim};
    let mut sim = Sim::new(epoch());
    let bob_addr = sim.uas[1].addr;
    let now = sim.now;
    sim.uas[0].invite(now, "bob", bob_addr);
    sim.run_until(sim.at(Duration::from_secs(1)));
    let [alice, bob] = &sim.uas;
    assert_eq!(alice.when(&Note::Answered).len(), 1);
    assert_eq!(bob.when(&Note::Answered).len(), 1);
    assert_eq!(alice.dialog().state(), DialogState::Confirmed);
    assert_eq!(bob.dialog().state(), DialogState::Confirmed);
    assert_eq!(alice.dialog().id().call_id(), bob.dialog().id().call_id());
    assert!(alice.dialog().owns_call_id() && !bob.dialog().owns_call_id());
    assert!(alice.all_2xx_acked() && bob.all_2xx_acked());

    // Both re-INVITE at the same instant: each arrives while the other's is pending.
    let glare = sim.now;
    sim.uas[0].reinvite(glare);
    sim.uas[1].reinvite(glare);
    sim.run_until(sim.at(Duration::from_secs(10)));
    let [alice, bob] = &sim.uas;
    let trace = format!("alice: {:?}\nbob: {:?}", alice.notes, bob.notes);
    assert_eq!(alice.when(&Note::Sent491).len(), 1, "{trace}");
    assert_eq!(bob.when(&Note::Sent491).len(), 1, "{trace}");
    // §14.1: Alice generated the Call-ID and waits 2.1–4 s; Bob waits 0–2 s.
    let (a, b) = (alice.backoffs(), bob.backoffs());
    assert_eq!((a.len(), b.len()), (1, 1), "one 491 each: {trace}");
    assert!(
        (Duration::from_millis(2100)..=Duration::from_secs(4)).contains(&a[0]),
        "{trace}"
    );
    assert!(b[0] <= Duration::from_secs(2), "{trace}");
    // The 491s arrived one round trip after the glare; each retried after its own delay.
    let sent_491_back = glare - sim.at(Duration::ZERO) + LATENCY * 2;
    assert_eq!(
        alice.when(&Note::Retried),
        [sent_491_back + a[0]],
        "{trace}"
    );
    assert_eq!(bob.when(&Note::Retried), [sent_491_back + b[0]], "{trace}");
    // Bob's retry is accepted before Alice's timer fires: one re-INVITE accepted by then.
    let alice_retry = alice.when(&Note::Retried)[0];
    let accepted_by_then = alice
        .when(&Note::AcceptedReinvite)
        .into_iter()
        .chain(bob.when(&Note::AcceptedReinvite))
        .filter(|t| *t < alice_retry)
        .count();
    assert_eq!(accepted_by_then, 1, "{trace}");
    assert_eq!(
        bob.when(&Note::ReinviteAnswered)[0],
        sent_491_back + b[0] + LATENCY * 2
    );
    // Alice's retry then goes through without a second glare.
    assert_eq!(alice.when(&Note::AcceptedReinvite).len(), 1, "{trace}");
    assert_eq!(bob.when(&Note::AcceptedReinvite).len(), 1, "{trace}");
    assert_eq!(alice.when(&Note::ReinviteAnswered).len(), 1, "{trace}");
    assert!(alice.when(&Note::Timeout).is_empty() && bob.when(&Note::Timeout).is_empty());
    // CSeq: Alice 1 (INVITE), 2 (refused), 3 (retry); Bob 1 (refused), 2 (retry).
    assert_eq!(
        (alice.dialog().local_cseq(), alice.dialog().remote_cseq()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (bob.dialog().local_cseq(), bob.dialog().remote_cseq()),
        (Some(2), Some(3))
    );
    assert_eq!(alice.dialog().outgoing_pending(), None);
    assert_eq!(bob.dialog().incoming_pending(), None);

    // Hang up; every transaction and retransmitter winds down.
    let now = sim.now;
    sim.uas[0].bye(now);
    sim.run_until(sim.at(Duration::from_secs(60)));
    for ua in &sim.uas {
        assert_eq!(ua.dialog().state(), DialogState::Terminated, "{}", ua.user);
        assert!(ua.all_2xx_acked(), "{}", ua.user);
        assert!(ua.when(&Note::AckTimeout).is_empty(), "{}", ua.user);
        assert_eq!(
            (ua.ep.client_transactions(), ua.ep.server_transactions()),
            (0, 0),
            "{}",
            ua.user
        );
    }
}
