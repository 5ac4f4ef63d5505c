//! A deterministic network simulation for the SIP endpoint (style habit 7, after quinn-proto's
//! `Pair::drive`): two sides on a virtual clock, a link with latency whose packets a test can
//! drop, duplicate or delay one by one, and transaction users written as closures.
//!
//! A side is either an [`Endpoint`] or a scripted peer (`endpoint: None`) that only records
//! what reaches it and sends what the test writes by hand.

mod cancel;
mod invite;
mod matching;
mod non_invite;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use masterz_sip::endpoint::{Endpoint, EndpointConfig, Event, response_to};
use masterz_sip::ident::RandomSource;
use masterz_sip::message::{Message, Method, StatusCode, StdHeader};
use masterz_sip::transport::{ConnectionId, Peer, Transport};

/// T1 as configured (the RFC default), for computing expected instants.
pub(crate) const T1: Duration = Duration::from_millis(500);
/// One-way latency of the simulated link.
pub(crate) const LATENCY: Duration = Duration::from_millis(5);

/// xorshift64*: the same seed gives the same branches, tags and losses.
pub(crate) struct Seeded(pub(crate) u64);

impl RandomSource for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = (self.next() >> 56) as u8;
        }
    }
}

impl Seeded {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Which side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Who {
    /// The client (192.0.2.1:5060).
    Uac,
    /// The server (192.0.2.2:5060).
    Uas,
}

impl Who {
    fn other(self) -> Self {
        match self {
            Who::Uac => Who::Uas,
            Who::Uas => Who::Uac,
        }
    }
}

/// What the link does to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Delivered after [`LATENCY`].
    Deliver,
    /// Lost.
    Drop,
    /// Delivered twice.
    Duplicate,
    /// Delivered after this extra delay.
    Delay(Duration),
}

/// A rule of the link: the next `times` packets from `from` whose start line begins with
/// `prefix` (e.g. `"INVITE "`, `"SIP/2.0 200"`), after skipping `skip` of them, meet `fate`.
struct Rule {
    from: Who,
    prefix: String,
    skip: usize,
    times: usize,
    fate: Fate,
}

/// One packet put on the wire.
#[derive(Clone, Debug)]
pub(crate) struct Wire {
    /// When it was sent, from the start.
    pub(crate) at: Duration,
    /// Who sent it.
    pub(crate) from: Who,
    /// Its start line.
    pub(crate) line: String,
    /// Its CSeq value.
    pub(crate) cseq: String,
    /// What the link did with it.
    pub(crate) fate: Fate,
    /// The bytes.
    pub(crate) bytes: Bytes,
}

/// An action a transaction user or a test schedules for later.
pub(crate) type Action = Box<dyn FnOnce(&mut Endpoint, Instant)>;

/// What a transaction user closure gets: its endpoint, the time, and a way to act later.
pub(crate) struct Tu<'a> {
    pub(crate) endpoint: &'a mut Endpoint,
    pub(crate) now: Instant,
    later: &'a mut Vec<(Instant, Who, Action)>,
    who: Who,
}

impl Tu<'_> {
    /// Runs `action` on this side's endpoint after `delay`.
    pub(crate) fn after(
        &mut self,
        delay: Duration,
        action: impl FnOnce(&mut Endpoint, Instant) + 'static,
    ) {
        self.later
            .push((self.now + delay, self.who, Box::new(action)));
    }
}

type Hook = Box<dyn FnMut(&mut Tu<'_>, &Event)>;

/// One side of the simulation.
pub(crate) struct Side {
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// Its endpoint, or `None` for a scripted peer.
    pub(crate) endpoint: Option<Endpoint>,
    /// Every event it produced, with its time from the start.
    pub(crate) events: Vec<(Duration, Event)>,
    /// For a scripted peer: what reached it, with its time from the start.
    pub(crate) received: Vec<(Duration, Message)>,
    tu: Option<Hook>,
}

impl Side {
    /// The endpoint (panics for a scripted peer: a test bug).
    pub(crate) fn ep(&mut self) -> &mut Endpoint {
        self.endpoint.as_mut().expect("this side is scripted")
    }

    /// Installs the transaction user.
    pub(crate) fn tu(&mut self, hook: impl FnMut(&mut Tu<'_>, &Event) + 'static) {
        self.tu = Some(Box::new(hook));
    }

    /// How many events match `pred`.
    pub(crate) fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }

    /// The status codes of the Response events, in order.
    pub(crate) fn responses(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Response { response, .. } => response.status().map(|s| s.as_u16()),
                _ => None,
            })
            .collect()
    }

    /// The methods of the Request events, in order.
    pub(crate) fn requests(&self) -> Vec<Method> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Request { request, .. } => request.method().cloned(),
                _ => None,
            })
            .collect()
    }
}

/// Two sides, a link and a virtual clock.
pub(crate) struct Sim {
    /// The virtual time now.
    pub(crate) now: Instant,
    start: Instant,
    /// The client side.
    pub(crate) uac: Side,
    /// The server side.
    pub(crate) uas: Side,
    transport: Transport,
    rules: Vec<Rule>,
    /// Random loss: (generator, probability in 1/1000) applied to packets no rule claims.
    loss: Option<(Seeded, u64)>,
    in_flight: BTreeMap<(Instant, u64), (Who, Bytes)>,
    seq: u64,
    later: Vec<(Instant, Who, Action)>,
    /// Everything sent, in order.
    pub(crate) wire: Vec<Wire>,
}

/// The endpoint configuration both sides use.
pub(crate) fn config(local: &str, transport: Transport) -> EndpointConfig {
    EndpointConfig {
        t1: T1,
        local: vec![(transport, local.to_owned())],
        user_agent: Some("masterz-sim".to_owned()),
        ..EndpointConfig::default()
    }
}

impl Sim {
    /// Two endpoints over UDP.
    pub(crate) fn new() -> Self {
        Self::with(Transport::Udp, true, true)
    }

    /// Two sides over `transport`; a side given `false` is a scripted peer.
    pub(crate) fn with(transport: Transport, uac: bool, uas: bool) -> Self {
        #[allow(clippy::disallowed_methods)] // the one real instant; everything after is virtual
        let start = Instant::now();
        let side = |addr: &str, endpoint: bool, seed: u64| Side {
            addr: addr.parse().expect("literal address"),
            endpoint: endpoint
                .then(|| Endpoint::new(config(addr, transport), Box::new(Seeded(seed)))),
            events: Vec::new(),
            received: Vec::new(),
            tu: None,
        };
        Self {
            now: start,
            start,
            uac: side("192.0.2.1:5060", uac, 0x5eed_0001),
            uas: side("192.0.2.2:5060", uas, 0x5eed_0002),
            transport,
            rules: Vec::new(),
            loss: None,
            in_flight: BTreeMap::new(),
            seq: 0,
            later: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// The time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// A side.
    pub(crate) fn side(&mut self, who: Who) -> &mut Side {
        match who {
            Who::Uac => &mut self.uac,
            Who::Uas => &mut self.uas,
        }
    }

    /// Where `who` is, as the other side sees it.
    pub(crate) fn peer(&self, who: Who) -> Peer {
        let addr = match who {
            Who::Uac => self.uac.addr,
            Who::Uas => self.uas.addr,
        };
        Peer {
            transport: self.transport,
            addr,
            connection: self.transport.is_reliable().then_some(ConnectionId(1)),
        }
    }

    /// The link does `fate` to the next `times` packets from `from` starting with `prefix`,
    /// after letting `skip` of them through.
    pub(crate) fn rule(&mut self, from: Who, prefix: &str, skip: usize, times: usize, fate: Fate) {
        self.rules.push(Rule {
            from,
            prefix: prefix.to_owned(),
            skip,
            times,
            fate,
        });
    }

    /// Drops the next `times` packets from `from` starting with `prefix`.
    pub(crate) fn drop(&mut self, from: Who, prefix: &str, times: usize) {
        self.rule(from, prefix, 0, times, Fate::Drop);
    }

    /// Loses each packet no rule claims with probability `per_mille`/1000.
    pub(crate) fn random_loss(&mut self, seed: u64, per_mille: u64) {
        self.loss = Some((Seeded(seed), per_mille));
    }

    /// The UAC sends `request` to the UAS through its endpoint.
    pub(crate) fn send_request(&mut self, request: Message) -> masterz_sip::endpoint::ClientTx {
        let to = self.peer(Who::Uas);
        let now = self.now;
        let tx = self.uac.ep().send_request(now, request, to);
        self.drain();
        tx
    }

    /// A scripted side sends raw bytes.
    pub(crate) fn send_raw(&mut self, from: Who, bytes: &[u8]) {
        self.put_on_wire(from, Bytes::copy_from_slice(bytes));
    }

    /// Runs an action on a side's endpoint now, then drains.
    pub(crate) fn act(&mut self, who: Who, action: impl FnOnce(&mut Endpoint, Instant)) {
        let now = self.now;
        action(self.side(who).ep(), now);
        self.drain();
    }

    /// The times (from the start) at which `from` put packets starting with `prefix` on the
    /// wire, whatever became of them.
    pub(crate) fn sent(&self, from: Who, prefix: &str) -> Vec<Duration> {
        self.wire
            .iter()
            .filter(|w| w.from == from && w.line.starts_with(prefix))
            .map(|w| w.at)
            .collect()
    }

    /// The earliest instant something happens.
    fn next_instant(&self) -> Option<Instant> {
        [
            self.in_flight.keys().next().map(|(at, _)| *at),
            self.uac.endpoint.as_ref().and_then(Endpoint::poll_timeout),
            self.uas.endpoint.as_ref().and_then(Endpoint::poll_timeout),
            self.later.iter().map(|(at, _, _)| *at).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances to the next instant something happens, if it is no later than `limit`.
    fn step(&mut self, limit: Instant) -> bool {
        let Some(next) = self.next_instant().filter(|n| *n <= limit) else {
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to, bytes) = entry.remove();
            self.deliver(to, bytes);
            self.drain();
        }
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.later.len() {
            if self.later[i].0 <= now {
                due.push(self.later.remove(i));
            } else {
                i += 1;
            }
        }
        for (_, who, action) in due {
            action(self.side(who).ep(), now);
            self.drain();
        }
        for who in [Who::Uac, Who::Uas] {
            if let Some(ep) = self.side(who).endpoint.as_mut()
                && ep.poll_timeout().is_some_and(|t| t <= now)
            {
                ep.handle_timeout(now);
                self.drain();
            }
        }
        true
    }

    /// Runs until `d` after the start (inclusive).
    pub(crate) fn run_until(&mut self, d: Duration) {
        let limit = self.start + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Runs until nothing is left to happen (every transaction ended), at most an hour.
    pub(crate) fn run_to_end(&mut self) {
        let limit = self.now + Duration::from_secs(3600);
        while self.step(limit) {}
    }

    fn deliver(&mut self, to: Who, bytes: Bytes) {
        let now = self.now;
        let at = self.elapsed();
        let from = self.peer(to.other());
        let side = self.side(to);
        match side.endpoint.as_mut() {
            Some(ep) => ep.handle_input(now, from, bytes),
            None => {
                let m = Message::parse(bytes, &Default::default())
                    .expect("endpoints send parseable messages");
                side.received.push((at, m));
            }
        }
    }

    /// Moves every transmission to the link and every event to the TU, until both sides are
    /// quiet.
    fn drain(&mut self) {
        loop {
            let mut busy = false;
            for who in [Who::Uac, Who::Uas] {
                let Some(ep) = self.side(who).endpoint.as_mut() else {
                    continue;
                };
                let mut out = Vec::new();
                while let Some(t) = ep.poll_transmit() {
                    out.push(t);
                }
                let mut events = Vec::new();
                while let Some(e) = ep.poll_event() {
                    events.push(e);
                }
                for t in out {
                    busy = true;
                    let expected = self.peer(who.other());
                    assert_eq!(t.to.addr, expected.addr, "sent to the wrong address");
                    assert_eq!(t.to.transport, expected.transport, "wrong transport");
                    if let Some(c) = t.to.connection {
                        assert_eq!(c, ConnectionId(1), "a connection that does not exist");
                    }
                    self.put_on_wire(who, t.bytes);
                }
                for e in events {
                    busy = true;
                    self.hand_to_tu(who, e);
                }
            }
            if !busy {
                break;
            }
        }
    }

    fn hand_to_tu(&mut self, who: Who, event: Event) {
        let now = self.now;
        let at = self.elapsed();
        let side = match who {
            Who::Uac => &mut self.uac,
            Who::Uas => &mut self.uas,
        };
        if let (Some(mut hook), Some(ep)) = (side.tu.take(), side.endpoint.as_mut()) {
            let mut tu = Tu {
                endpoint: ep,
                now,
                later: &mut self.later,
                who,
            };
            hook(&mut tu, &event);
            side.tu = Some(hook);
        }
        side.events.push((at, event));
    }

    fn put_on_wire(&mut self, from: Who, bytes: Bytes) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let line = text.lines().next().unwrap_or("").to_owned();
        let cseq = text
            .lines()
            .find_map(|l| l.strip_prefix("CSeq: "))
            .unwrap_or("")
            .to_owned();
        let mut fate = Fate::Deliver;
        if let Some(rule) = self
            .rules
            .iter_mut()
            .find(|r| r.from == from && r.times > 0 && line.starts_with(&r.prefix))
        {
            if rule.skip > 0 {
                rule.skip -= 1;
            } else {
                rule.times -= 1;
                fate = rule.fate;
            }
        } else if let Some((rng, per_mille)) = self.loss.as_mut()
            && rng.next() % 1000 < *per_mille
        {
            fate = Fate::Drop;
        }
        self.wire.push(Wire {
            at: self.now - self.start,
            from,
            line,
            cseq,
            fate,
            bytes: bytes.clone(),
        });
        let to = from.other();
        let now = self.now;
        let mut queue = |at: Instant, bytes: Bytes| {
            self.seq += 1;
            self.in_flight.insert((at, self.seq), (to, bytes));
        };
        match fate {
            Fate::Deliver => queue(now + LATENCY, bytes),
            Fate::Drop => {}
            Fate::Duplicate => {
                queue(now + LATENCY, bytes.clone());
                queue(now + LATENCY, bytes);
            }
            Fate::Delay(d) => queue(now + LATENCY + d, bytes),
        }
    }
}

/// A request from the UAC (`alice`) to the UAS (`bob`), without Via: the endpoint adds it.
pub(crate) fn request(method: Method, cseq: u32) -> Message {
    let mut m = Message::request(method.clone(), "sip:bob@192.0.2.2");
    m.headers
        .push(StdHeader::From, "<sip:alice@192.0.2.1>;tag=alice1");
    m.headers.push(StdHeader::To, "<sip:bob@192.0.2.2>");
    m.headers.push(StdHeader::CallId, "call-1@192.0.2.1");
    m.headers
        .push(StdHeader::CSeq, format!("{cseq} {method}").as_str());
    m.headers
        .push(StdHeader::Contact, "<sip:alice@192.0.2.1:5060>");
    m
}

/// A status code.
pub(crate) fn code(c: u16) -> StatusCode {
    StatusCode::new(c).expect("valid status code")
}

/// A TU that answers every request with `status` at once (To tag `bob1`).
pub(crate) fn answer_with(status: u16) -> impl FnMut(&mut Tu<'_>, &Event) + 'static {
    move |tu, event| {
        if let Event::Request { tx, request, .. } = event {
            let response = response_to(request, code(status), Some("bob1"));
            tu.endpoint
                .send_response(tu.now, *tx, response)
                .expect("a fresh transaction takes a final response");
        }
    }
}

/// A raw request from a scripted UAC: `branch` in its Via (from 192.0.2.1:5060), the given
/// CSeq, To tag and extra header lines.
pub(crate) fn raw_request(method: &str, branch: &str, cseq: &str, to_tag: Option<&str>) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:bob@192.0.2.2 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@192.0.2.1>;tag=alice1\r\n\
         To: <sip:bob@192.0.2.2>{to_tag}\r\n\
         Call-ID: raw-1@192.0.2.1\r\n\
         CSeq: {cseq}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The start lines of what a scripted side received, with their times.
pub(crate) fn lines(side: &Side) -> Vec<(Duration, String)> {
    side.received
        .iter()
        .map(|(at, m)| {
            let text = m.to_string();
            (*at, text.lines().next().unwrap_or("").to_owned())
        })
        .collect()
}

/// Milliseconds, for readable expectations.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
