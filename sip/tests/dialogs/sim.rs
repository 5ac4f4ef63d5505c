//! Two user agents, each a sans-IO [`Endpoint`] under a transaction user built on the dialog
//! layer, on a virtual clock over a link with a fixed latency (style habit 7). The driver is
//! the one every real driver runs: feed an input, then drain transmits and events; jump the
//! clock to the earliest deadline of any endpoint, TU timer or packet in flight.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use masterz_sip::dialog::{
    Dialog, DialogError, DialogId, DialogSet, Dialogs, ForkEvent, TwoXxAction, TwoXxRetransmitter,
    copy_record_route,
};
use masterz_sip::endpoint::{ClientTx, Endpoint, EndpointConfig, Event, ServerTx, response_to};
use masterz_sip::ident::{CallId, Tag};
use masterz_sip::message::{Message, Method, StatusCode, StdHeader};
use masterz_sip::transport::{Peer, Transmit, Transport};
use masterz_sip::uri::{Host, Uri};

use super::Seeded;

/// One-way latency of the link.
pub(crate) const LATENCY: Duration = Duration::from_millis(20);
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// What a TU did, for the test to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// The call is up (the 2xx to the initial INVITE was sent or received).
    Answered,
    /// We refused the peer's re-INVITE with 491.
    Sent491,
    /// Our re-INVITE got 491; we retry after this delay.
    Got491(Duration),
    /// We sent the re-INVITE again.
    Retried,
    /// We accepted the peer's re-INVITE (sent 200).
    AcceptedReinvite,
    /// Our re-INVITE got its 200 (and we ACKed it).
    ReinviteAnswered,
    /// A 2xx went unacknowledged for 64*T1.
    AckTimeout,
    /// A client transaction timed out.
    Timeout,
}

fn code(n: u16) -> StatusCode {
    StatusCode::new(n).expect("valid status code")
}

/// Where a SIP URI with an IPv4 host points.
fn peer_of(uri: &str) -> Peer {
    let uri = Uri::parse(uri).expect("remote target parses");
    let Some(Host::V4(ip)) = uri.host else {
        panic!("the simulation only has IPv4 hosts")
    };
    Peer::new(
        Transport::Udp,
        SocketAddr::from((ip, uri.port.unwrap_or(5060))),
    )
}

/// A user agent: an endpoint and the TU that runs its dialogs.
pub(crate) struct Ua {
    pub(crate) user: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) ep: Endpoint,
    rng: Seeded,
    pub(crate) dialogs: Dialogs,
    invite: Option<(ClientTx, DialogSet)>,
    pub(crate) call: Option<DialogId>,
    retransmitters: Vec<(TwoXxRetransmitter, Peer)>,
    retry_at: Option<Instant>,
    start: Instant,
    pub(crate) notes: Vec<(Duration, Note)>,
}

impl Ua {
    fn new(user: &'static str, addr: SocketAddr, seed: u64, start: Instant) -> Self {
        let config = EndpointConfig {
            local: vec![(Transport::Udp, addr.to_string())],
            ..EndpointConfig::default()
        };
        Self {
            user,
            addr,
            ep: Endpoint::new(config, Box::new(Seeded(seed))),
            rng: Seeded(seed ^ 0x5eed),
            dialogs: Dialogs::new(),
            invite: None,
            call: None,
            retransmitters: Vec::new(),
            retry_at: None,
            start,
            notes: Vec::new(),
        }
    }

    fn note(&mut self, now: Instant, note: Note) {
        self.notes.push((now - self.start, note));
    }

    /// The instants (from the start) of the notes equal to `note`.
    pub(crate) fn when(&self, note: &Note) -> Vec<Duration> {
        self.notes
            .iter()
            .filter(|(_, n)| n == note)
            .map(|(t, _)| *t)
            .collect()
    }

    /// The delays drawn after each 491.
    pub(crate) fn backoffs(&self) -> Vec<Duration> {
        self.notes
            .iter()
            .filter_map(|(_, n)| match n {
                Note::Got491(d) => Some(*d),
                _ => None,
            })
            .collect()
    }

    /// The call's dialog.
    pub(crate) fn dialog(&self) -> &Dialog {
        let id = self.call.as_ref().expect("a call");
        self.dialogs.find(id).expect("the call's dialog")
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.addr)
    }

    /// Calls `user` at `addr`.
    pub(crate) fn invite(&mut self, now: Instant, user: &str, addr: SocketAddr) {
        let host = self.addr.ip().to_string();
        let tag = Tag::generate(&mut self.rng);
        let call_id = CallId::generate(&mut self.rng, &host);
        let mut invite = Message::request(Method::Invite, format!("sip:{user}@{addr}"));
        let h = &mut invite.headers;
        h.push(
            StdHeader::From,
            format!("<sip:{}@{}>;tag={tag}", self.user, self.addr),
        );
        h.push(StdHeader::To, format!("<sip:{user}@{addr}>"));
        h.push(StdHeader::CallId, call_id.to_string());
        h.push(StdHeader::CSeq, "1 INVITE");
        h.push(StdHeader::Contact, self.contact());
        let set = DialogSet::new(invite.clone()).expect("an INVITE");
        let tx = self
            .ep
            .send_request(now, invite, Peer::new(Transport::Udp, addr));
        self.invite = Some((tx, set));
    }

    /// Sends a re-INVITE on the call.
    pub(crate) fn reinvite(&mut self, now: Instant) {
        let id = self.call.clone().expect("a call");
        let d = self.dialogs.find_mut(&id).expect("the call's dialog");
        let request = d.request(Method::Invite).expect("no INVITE pending");
        let to = peer_of(d.remote_target());
        self.ep.send_request(now, request, to);
    }

    /// Hangs up.
    pub(crate) fn bye(&mut self, now: Instant) {
        let id = self.call.clone().expect("a call");
        let d = self.dialogs.find_mut(&id).expect("the call's dialog");
        let request = d.request(Method::Bye).expect("BYE");
        let to = peer_of(d.remote_target());
        self.ep.send_request(now, request, to);
    }

    /// Whether every 2xx we sent was acknowledged.
    pub(crate) fn all_2xx_acked(&self) -> bool {
        self.retransmitters.iter().all(|(r, _)| r.is_acknowledged())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let tx = self
            .retransmitters
            .iter()
            .filter_map(|(r, _)| r.poll_timeout());
        [self.ep.poll_timeout(), self.retry_at]
            .into_iter()
            .flatten()
            .chain(tx)
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        let mut give_up = false;
        for (rt, to) in &mut self.retransmitters {
            match rt.handle_timeout(now) {
                Some(TwoXxAction::Retransmit) => self.ep.send_stateless(*to, rt.response().clone()),
                Some(TwoXxAction::GiveUp) => give_up = true,
                None => {}
            }
        }
        if give_up {
            self.note(now, Note::AckTimeout);
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.note(now, Note::Retried);
            self.reinvite(now);
        }
    }

    /// Drains the endpoint: every event goes to the TU, whose commands may queue more.
    fn drain(&mut self, now: Instant) -> Vec<Transmit> {
        while let Some(event) = self.ep.poll_event() {
            self.on_event(now, event);
        }
        std::iter::from_fn(|| self.ep.poll_transmit()).collect()
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Request { tx, request, .. } => self.on_request(now, tx, &request),
            Event::Response { tx, response } => self.on_response(now, tx, &response),
            Event::Ack { request, .. } => {
                if let Ok(d) = self.dialogs.for_request(&request) {
                    d.on_request(&request).expect("ACK in dialog");
                }
                for (rt, _) in &mut self.retransmitters {
                    rt.on_ack(&request);
                }
            }
            Event::StrayResponse { response, .. } => self.ack(&response),
            Event::Timeout { .. } => self.note(now, Note::Timeout),
            _ => {}
        }
    }

    /// ACKs a 2xx to one of our INVITEs (§13.2.2.4), again for each retransmission.
    fn ack(&mut self, response: &Message) {
        let Ok(id) = DialogId::as_uac(response) else {
            return;
        };
        let Some(d) = self.dialogs.find(&id) else {
            return;
        };
        let Ok(ack) = d.ack_for(response) else { return };
        let to = peer_of(d.remote_target());
        self.ep.send_stateless(to, ack);
    }

    /// Sends a 2xx to an INVITE and retransmits it until the ACK (§13.3.1.4).
    fn send_2xx(&mut self, now: Instant, tx: ServerTx, ok: Message) {
        let to = self
            .ep
            .response_destination(tx)
            .expect("a live transaction");
        self.ep
            .send_response(now, tx, ok.clone())
            .expect("2xx sent");
        let rt = TwoXxRetransmitter::new(now, ok, T1, T2).expect("a 2xx to INVITE");
        self.retransmitters.push((rt, to));
    }

    fn on_request(&mut self, now: Instant, tx: ServerTx, request: &Message) {
        let method = request.method().cloned();
        if method == Some(Method::Invite) && DialogId::as_uas(request) == Ok(None) {
            // A new call: ring, then answer at once.
            let tag = Tag::generate(&mut self.rng);
            let mut ringing = response_to(request, code(180), Some(tag.as_str()));
            copy_record_route(request, &mut ringing);
            ringing.headers.push(StdHeader::Contact, self.contact());
            let mut dialog = Dialog::uas(request, &ringing).expect("a dialog-creating INVITE");
            self.ep.send_response(now, tx, ringing).expect("180 sent");
            let mut ok = response_to(request, code(200), Some(tag.as_str()));
            copy_record_route(request, &mut ok);
            ok.headers.push(StdHeader::Contact, self.contact());
            dialog.on_response_sent(&ok).expect("our own 200");
            self.call = Some(dialog.id().clone());
            self.dialogs.insert(dialog);
            self.send_2xx(now, tx, ok);
            self.note(now, Note::Answered);
            return;
        }
        let verdict = self
            .dialogs
            .for_request(request)
            .and_then(|d| d.on_request(request));
        if let Err(e) = verdict {
            if e == DialogError::Glare {
                self.note(now, Note::Sent491);
            }
            let mut refusal = response_to(request, e.status(), None);
            if let Some(after) = e.retry_after(&mut self.rng) {
                refusal
                    .headers
                    .push(StdHeader::RetryAfter, after.as_secs().to_string());
            }
            self.ep
                .send_response(now, tx, refusal)
                .expect("refusal sent");
            return;
        }
        let mut ok = response_to(request, code(200), None);
        if method == Some(Method::Invite) {
            ok.headers.push(StdHeader::Contact, self.contact());
            self.dialogs
                .for_request(request)
                .and_then(|d| d.on_response_sent(&ok))
                .expect("our own 200");
            self.send_2xx(now, tx, ok);
            self.note(now, Note::AcceptedReinvite);
        } else {
            self.ep.send_response(now, tx, ok).expect("200 sent");
        }
    }

    fn on_response(&mut self, now: Instant, tx: ClientTx, response: &Message) {
        if let Some((invite_tx, set)) = &mut self.invite
            && *invite_tx == tx
        {
            match set.on_response(&mut self.dialogs, response) {
                Ok(ForkEvent::Answered(id)) => {
                    self.call = Some(id);
                    self.ack(response);
                    self.note(now, Note::Answered);
                }
                Ok(ForkEvent::Retransmission(_) | ForkEvent::ExtraAnswer(_)) => self.ack(response),
                Ok(_) => {}
                Err(e) => panic!("{}: bad response to the INVITE: {e}", self.user),
            }
            return;
        }
        let Ok(d) = self.dialogs.for_response(response) else {
            return; // the 200 to our BYE: the dialog already ended
        };
        d.on_response(response).expect("a response in dialog");
        let status = response.status().expect("a response");
        if response.cseq_method() != Some(Method::Invite) {
            return;
        }
        if status.is_success() {
            self.ack(response);
            self.note(now, Note::ReinviteAnswered);
        } else if status.as_u16() == 491 {
            let delay = d.retry_after(&mut self.rng);
            self.retry_at = Some(now + delay);
            self.note(now, Note::Got491(delay));
        }
    }
}

/// Alice (192.0.2.1, who will own the Call-ID) and Bob (192.0.2.2) on one link.
pub(crate) struct Sim {
    /// The virtual time.
    pub(crate) now: Instant,
    start: Instant,
    /// `[alice, bob]`.
    pub(crate) uas: [Ua; 2],
    in_flight: BTreeMap<(Instant, u64), (usize, Peer, Bytes)>,
    seq: u64,
}

impl Sim {
    pub(crate) fn new(start: Instant) -> Self {
        let alice = Ua::new("alice", SocketAddr::from(([192, 0, 2, 1], 5060)), 1, start);
        let bob = Ua::new("bob", SocketAddr::from(([192, 0, 2, 2], 5060)), 2, start);
        Self {
            now: start,
            start,
            uas: [alice, bob],
            in_flight: BTreeMap::new(),
            seq: 0,
        }
    }

    /// The instant `offset` after the start.
    pub(crate) fn at(&self, offset: Duration) -> Instant {
        self.start + offset
    }

    /// Puts everything both sides want to send on the link.
    pub(crate) fn flush(&mut self) {
        for i in 0..2 {
            let from = Peer::new(Transport::Udp, self.uas[i].addr);
            for t in self.uas[i].drain(self.now) {
                let to = self
                    .uas
                    .iter()
                    .position(|u| u.addr == t.to.addr)
                    .expect("sent to a simulated UA");
                self.seq += 1;
                self.in_flight
                    .insert((self.now + LATENCY, self.seq), (to, from, t.bytes));
            }
        }
    }

    /// Runs every packet and timer due up to `limit`, earliest first; the clock ends at `limit`.
    pub(crate) fn run_until(&mut self, limit: Instant) {
        loop {
            self.flush();
            let next = self
                .in_flight
                .keys()
                .next()
                .map(|(t, _)| *t)
                .into_iter()
                .chain(self.uas.iter().filter_map(Ua::poll_timeout))
                .min();
            let Some(at) = next.filter(|t| *t <= limit) else {
                self.now = limit;
                return;
            };
            self.now = at.max(self.now);
            while let Some(entry) = self.in_flight.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (to, from, bytes) = entry.remove();
                self.uas[to].ep.handle_input(self.now, from, bytes);
                self.flush();
            }
            for ua in &mut self.uas {
                ua.handle_timeout(self.now);
            }
        }
    }
}
