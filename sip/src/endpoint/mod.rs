//! The sans-IO SIP endpoint: the transport and transaction layers of RFC 3261 (§17, §18, with
//! RFC 6026 and RFC 3581) behind one object that a driver feeds with bytes and drains.
//!
//! # Drive loop
//!
//! - **Inputs**: [`Endpoint::handle_input`] (one datagram, one WebSocket message, or one message
//!   cut from a stream by [`crate::message::frame`]), [`Endpoint::handle_timeout`] (when the
//!   instant from [`Endpoint::poll_timeout`] has come), [`Endpoint::connection_closed`],
//!   [`Endpoint::handle_unreachable`].
//! - **Commands** from the transaction user (call control, registrar, dialogs):
//!   [`Endpoint::send_request`], [`Endpoint::send_response`], [`Endpoint::cancel`],
//!   [`Endpoint::send_stateless`].
//! - **Outputs**, drained after every input and command until each returns `None`:
//!   [`Endpoint::poll_transmit`], [`Endpoint::poll_event`], [`Endpoint::poll_timeout`].
//!
//! The endpoint is deterministic: the same inputs at the same instants with the same random
//! source give the same outputs in the same order.

mod event;
mod inbound;
mod reply;
mod timers;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use bytes::Bytes;

pub use event::{ClientTx, EndpointConfig, EndpointError, Event, ServerTx};
pub use reply::response_to;

use crate::ident::{BRANCH_COOKIE, RandomSource, Tag};
use crate::message::{Message, Method, StdHeader, Text};
use crate::transaction::client_invite::{self, CancelPlan, CancelRefused, ClientInvite};
use crate::transaction::client_non_invite::ClientNonInvite;
use crate::transaction::key::{ClientKey, ServerKey};
use crate::transaction::server_invite::ServerInvite;
use crate::transaction::server_non_invite::ServerNonInvite;
use crate::transaction::{Timers, TxState};
use crate::transport::{ConnectionId, Peer, Transmit, Transport};

#[derive(Debug)]
enum ClientMachine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

#[derive(Debug)]
struct ClientTransaction {
    /// Where the request went.
    peer: Peer,
    /// The request as sent (for the ACK and the CANCEL, and for the TU's getters).
    request: Message,
    /// Its encoding, for retransmissions.
    bytes: Bytes,
    key: ClientKey,
    machine: ClientMachine,
    /// The deadline under which the transaction sits in the timer queue.
    scheduled: Option<Instant>,
}

#[derive(Debug)]
enum ServerMachine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

#[derive(Debug)]
struct ServerTransaction {
    /// Where responses go (§18.2.2).
    reply_to: Peer,
    /// Where they go if the connection the request came on closes.
    reconnect_to: Peer,
    /// The INVITE as received, top Via stamped: kept for INVITE transactions only, which the TU
    /// may answer long after the event (after a CANCEL, say). Other requests live in the
    /// [`Event::Request`] alone, so that a transaction costs one parse and no copy.
    request: Option<Message>,
    key: ServerKey,
    machine: ServerMachine,
    /// The To tag of the last response sent, reused for the 200 to a CANCEL (§9.2).
    to_tag: Option<Text>,
    scheduled: Option<Instant>,
}

/// A transaction in the timer queue; ordered so that equal deadlines fire in a fixed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TxRef {
    Client(u64),
    Server(u64),
}

/// The transport and transaction layers of a SIP element, without I/O. See the module docs for
/// the drive loop.
pub struct Endpoint {
    config: EndpointConfig,
    timers: Timers,
    rng: Box<dyn RandomSource + Send>,
    /// `SIP/2.0/<T> <sent-by>;branch=` for each transport, indexed by [`transport_index`].
    via_prefix: [String; 5],
    user_agent: Option<Text>,
    next_id: u64,
    // The maps are only looked up, never iterated into output, so their order cannot leak.
    // Keyed SipHash keeps attacker-chosen branches from colliding.
    clients: HashMap<u64, ClientTransaction, IdHash>,
    /// Only our own random branches are ever inserted here, so an unkeyed hash is safe: a
    /// response with a chosen branch costs one probe, it cannot fill the table with collisions.
    client_keys: HashMap<ClientKey, u64, IdHash>,
    servers: HashMap<u64, ServerTransaction, IdHash>,
    server_keys: HashMap<ServerKey, u64>,
    /// Every live transaction with a timer, once, under its earliest deadline.
    deadlines: BTreeSet<(Instant, TxRef)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// Hashing for keys nobody else chooses: transaction ids, which we hand out in sequence (a
/// multiply spreads them over the table), and our own branches (FNV-1a over their bytes).
#[derive(Clone, Copy, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdHash = BuildHasherDefault<IdHasher>;

fn transport_index(t: Transport) -> usize {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
        Transport::Ws => 3,
        Transport::Wss => 4,
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("clients", &self.clients.len())
            .field("servers", &self.servers.len())
            .field("next_deadline", &self.poll_timeout())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint with no transactions. `rng` makes branches and tags.
    pub fn new(config: EndpointConfig, rng: Box<dyn RandomSource + Send>) -> Self {
        let via_prefix = [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ]
        .map(|t| {
            let sent_by = config
                .local
                .iter()
                .find(|(lt, _)| *lt == t)
                .or(config.local.first())
                .map_or("masterz.invalid", |(_, s)| s.as_str());
            format!("SIP/2.0/{t} {sent_by};branch=")
        });
        Self {
            timers: Timers {
                t1: config.t1,
                t2: config.t2,
                t4: config.t4,
            },
            user_agent: config.user_agent.clone().map(Text::from),
            config,
            rng,
            via_prefix,
            next_id: 1,
            clients: HashMap::default(),
            client_keys: HashMap::default(),
            servers: HashMap::default(),
            server_keys: HashMap::new(),
            deadlines: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ---- getters ----

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Live client transactions (for metrics).
    pub fn client_transactions(&self) -> usize {
        self.clients.len()
    }

    /// Live server transactions (for metrics).
    pub fn server_transactions(&self) -> usize {
        self.servers.len()
    }

    /// The state of a client transaction, `None` once it ended.
    pub fn client_state(&self, tx: ClientTx) -> Option<TxState> {
        self.clients.get(&tx.0).map(|c| match &c.machine {
            ClientMachine::Invite(m) => m.state(),
            ClientMachine::NonInvite(m) => m.state(),
        })
    }

    /// The state of a server transaction, `None` once it ended.
    pub fn server_state(&self, tx: ServerTx) -> Option<TxState> {
        self.servers.get(&tx.0).map(|s| match &s.machine {
            ServerMachine::Invite(m) => m.state(),
            ServerMachine::NonInvite(m) => m.state(),
        })
    }

    /// The request a client transaction sent (with our Via), while it lives.
    pub fn client_request(&self, tx: ClientTx) -> Option<&Message> {
        self.clients.get(&tx.0).map(|c| &c.request)
    }

    /// The INVITE an INVITE server transaction answers (top Via stamped), while it lives;
    /// `None` for other methods, whose request the TU keeps from [`Event::Request`].
    pub fn server_request(&self, tx: ServerTx) -> Option<&Message> {
        self.servers.get(&tx.0).and_then(|s| s.request.as_ref())
    }

    /// Where a server transaction's responses go (§18.2.2): what the dialog layer needs to
    /// retransmit a 2xx with [`Endpoint::send_stateless`] after the transaction ended.
    pub fn response_destination(&self, tx: ServerTx) -> Option<Peer> {
        self.servers.get(&tx.0).map(|s| s.reply_to)
    }

    // ---- inputs ----

    /// One message from the network: a datagram, a WebSocket message, or one message framed
    /// off a stream. Requests and responses are matched to transactions; what the TU must see
    /// comes out of [`Endpoint::poll_event`].
    pub fn handle_input(&mut self, now: Instant, from: Peer, bytes: Bytes) {
        inbound::handle(self, now, from, bytes);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, tx)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            match tx {
                TxRef::Client(id) => self.fire_client(now, id),
                TxRef::Server(id) => self.fire_server(now, id),
            }
        }
    }

    /// A stream connection closed. Responses of server transactions whose request came on it
    /// will go over a new connection to the sent-by port (§18.2.2).
    pub fn connection_closed(&mut self, conn: ConnectionId) {
        // No output depends on the order of this walk.
        for s in self.servers.values_mut() {
            if s.reply_to.connection == Some(conn) {
                s.reply_to = s.reconnect_to;
            }
        }
        for c in self.clients.values_mut() {
            if c.peer.connection == Some(conn) {
                c.peer.connection = None;
            }
        }
    }

    /// The driver could not reach `to` (ICMP unreachable, connection refused, TLS failure):
    /// every client transaction waiting on it ends with [`Event::TransportError`] (§17.1.4).
    pub fn handle_unreachable(&mut self, _now: Instant, to: Peer) {
        let mut ids: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| c.peer.addr == to.addr && c.peer.transport == to.transport)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            let Some(c) = self.clients.get_mut(&id) else {
                continue;
            };
            let inform = match &mut c.machine {
                ClientMachine::Invite(m) => m.on_transport_error(),
                ClientMachine::NonInvite(m) => m.on_transport_error(),
            };
            if inform {
                self.events
                    .push_back(Event::TransportError { tx: ClientTx(id) });
            }
            self.settle_client(id);
        }
    }

    // ---- commands ----

    /// Sends a request in a new client transaction: adds our top Via (a fresh branch, `rport`),
    /// Max-Forwards 70 if absent, User-Agent if configured and absent, and Content-Length.
    ///
    /// An ACK (for a 2xx) gets the same treatment but no transaction; prefer
    /// [`Endpoint::send_stateless`] for it. A CANCEL must go through [`Endpoint::cancel`],
    /// which gives it the INVITE's branch.
    pub fn send_request(&mut self, now: Instant, mut request: Message, to: Peer) -> ClientTx {
        let id = self.next_id();
        let branch = self.prepare_request(&mut request, to.transport);
        if request.method() == Some(&Method::Ack) {
            self.transmit(to, request.to_bytes());
            return ClientTx(id);
        }
        let key = ClientKey {
            branch,
            method: request.method().cloned().unwrap_or(Method::Options),
        };
        self.start_client(now, id, request, to, key);
        ClientTx(id)
    }

    /// Sends a response on a server transaction; it goes where §18.2.2 says (the connection the
    /// request came on, or the `received`/`rport` address). Build it with [`response_to`].
    /// Adds Server if configured and absent, and Content-Length.
    pub fn send_response(
        &mut self,
        now: Instant,
        tx: ServerTx,
        mut response: Message,
    ) -> Result<(), EndpointError> {
        let code = response.status().ok_or(EndpointError::NotAResponse)?;
        if !self.servers.contains_key(&tx.0) {
            return Err(EndpointError::UnknownTransaction);
        }
        self.finish_response(&mut response);
        let bytes = response.to_bytes();
        let s = self
            .servers
            .get_mut(&tx.0)
            .ok_or(EndpointError::UnknownTransaction)?;
        match &mut s.machine {
            ServerMachine::Invite(m) => m.on_tu_response(now, code.as_u16(), &bytes),
            ServerMachine::NonInvite(m) => m.on_tu_response(now, code.as_u16(), &bytes),
        }
        .map_err(|_| EndpointError::FinalAlreadySent)?;
        // Only an INVITE can be cancelled, so only its To tag is worth remembering.
        if code.as_u16() > 100
            && matches!(s.machine, ServerMachine::Invite(_))
            && let Some(tag) = inbound::to_tag(&response)
        {
            s.to_tag = Some(tag);
        }
        let to = s.reply_to;
        self.transmit(to, bytes);
        self.settle_server(tx.0);
        Ok(())
    }

    /// Cancels an INVITE we sent (§9.1). The CANCEL is its own non-INVITE client transaction,
    /// returned here. Before any provisional response it is held back and sent when the first
    /// one arrives; if a final response comes first, it is never sent and its transaction
    /// produces no event.
    pub fn cancel(&mut self, now: Instant, invite: ClientTx) -> Result<ClientTx, EndpointError> {
        let id = self.next_id;
        let c = self
            .clients
            .get_mut(&invite.0)
            .ok_or(EndpointError::UnknownTransaction)?;
        let ClientMachine::Invite(m) = &mut c.machine else {
            return Err(EndpointError::NotInvite);
        };
        let plan = m.request_cancel(now, id).map_err(|e| match e {
            CancelRefused::AlreadyCancelled => EndpointError::AlreadyCancelled,
            CancelRefused::Final => EndpointError::FinalReceived,
        })?;
        self.next_id += 1;
        if plan == CancelPlan::Now {
            self.send_cancel(now, invite.0, id);
            self.settle_client(invite.0);
        }
        Ok(ClientTx(id))
    }

    /// Sends a message outside any transaction: the ACK for a 2xx, a 2xx retransmitted by the
    /// dialog layer. A request without a Via gets ours (as [`Endpoint::prepare_request`]);
    /// anything else goes out as is.
    pub fn send_stateless(&mut self, to: Peer, mut message: Message) {
        if message.is_request() && !message.headers.contains(StdHeader::Via) {
            self.prepare_request(&mut message, to.transport);
        }
        self.transmit(to, message.to_bytes());
    }

    /// Adds what [`Endpoint::send_request`] adds (our top Via with a fresh branch and `rport`,
    /// Max-Forwards, User-Agent, Content-Length) without sending; returns the branch. For a
    /// dialog layer that keeps the exact ACK it sends, to resend it for 2xx retransmissions.
    pub fn prepare_request(&mut self, request: &mut Message, transport: Transport) -> Text {
        // The branch has the shape of `ident::Branch::generate` (the magic cookie, then 100
        // random bits as 20 characters), written straight into the Via.
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut random = [0u8; 20];
        self.rng.fill(&mut random);
        let prefix = &self.via_prefix[transport_index(transport)];
        let branch_len = BRANCH_COOKIE.len() + random.len();
        let mut via = String::with_capacity(prefix.len() + branch_len + 6);
        via.push_str(prefix);
        via.push_str(BRANCH_COOKIE);
        via.extend(
            random
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)])),
        );
        via.push_str(";rport");
        let via = Text::from(via);
        let branch = via.slice_ref(&via[prefix.len()..prefix.len() + branch_len]);
        request.headers.push_front(StdHeader::Via, via);
        if !request.headers.contains(StdHeader::MaxForwards) {
            request
                .headers
                .push(StdHeader::MaxForwards, Text::from_static("70"));
        }
        if let Some(ua) = &self.user_agent
            && !request.headers.contains(StdHeader::UserAgent)
        {
            request.headers.push(StdHeader::UserAgent, ua.clone());
        }
        set_content_length(request);
        branch
    }

    // ---- outputs ----

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    // ---- internals shared with `inbound` ----

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn transmit(&mut self, to: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit { to, bytes });
    }

    fn tag(&mut self) -> Tag {
        Tag::generate(self.rng.as_mut())
    }

    /// Adds Server (if configured) and Content-Length to a response.
    fn finish_response(&self, response: &mut Message) {
        if let Some(ua) = &self.user_agent
            && !response.headers.contains(StdHeader::Server)
        {
            response.headers.push(StdHeader::Server, ua.clone());
        }
        set_content_length(response);
    }

    fn start_client(&mut self, now: Instant, id: u64, request: Message, to: Peer, key: ClientKey) {
        let bytes = request.to_bytes();
        let reliable = to.transport.is_reliable();
        let machine = if request.method() == Some(&Method::Invite) {
            ClientMachine::Invite(ClientInvite::new(now, self.timers, reliable))
        } else {
            ClientMachine::NonInvite(ClientNonInvite::new(now, self.timers, reliable))
        };
        self.transmit(to, bytes.clone());
        self.client_keys.insert(key.clone(), id);
        self.clients.insert(
            id,
            ClientTransaction {
                peer: to,
                request,
                bytes,
                key,
                machine,
                scheduled: None,
            },
        );
        self.settle_client(id);
    }

    /// Builds and sends the CANCEL for INVITE transaction `invite` as client transaction `id`.
    fn send_cancel(&mut self, now: Instant, invite: u64, id: u64) {
        let Some(c) = self.clients.get(&invite) else {
            return;
        };
        let mut cancel = client_invite::build_cancel(&c.request);
        if let Some(ua) = &self.user_agent {
            cancel.headers.push(StdHeader::UserAgent, ua.clone());
        }
        let key = ClientKey {
            branch: c.key.branch.clone(),
            method: Method::Cancel,
        };
        let peer = c.peer;
        self.start_client(now, id, cancel, peer, key);
    }
}

/// Sets Content-Length to the body's length (without allocating for an empty body).
fn set_content_length(message: &mut Message) {
    let len = message.body.len();
    let value = if len == 0 {
        Text::from_static("0")
    } else {
        Text::from(len.to_string())
    };
    message.headers.set(StdHeader::ContentLength, value);
}
