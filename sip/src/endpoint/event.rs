//! The endpoint's vocabulary: its configuration, the transaction handles, the events it
//! reports and the commands it refuses.

use std::time::Duration;

use crate::message::{Limits, Message};
use crate::transaction::Timers;
use crate::transport::{Peer, Transport};

/// How the endpoint behaves: timers, limits and how it names itself.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// T1, the round-trip estimate (§17.1.1.1): 500 ms.
    pub t1: Duration,
    /// T2, the longest retransmission interval: 4 s.
    pub t2: Duration,
    /// T4, how long a message may linger in the network: 5 s.
    pub t4: Duration,
    /// Message size limits for the parser.
    pub limits: Limits,
    /// Added as `Server` to responses and `User-Agent` to requests that lack one.
    pub user_agent: Option<String>,
    /// For each transport we send on, the sent-by (`host:port`) of our Via. A transport without
    /// an entry uses the first entry, or `masterz.invalid` (the RFC 7118 convention for an
    /// address we cannot know; `rport` brings the responses back anyway).
    pub local: Vec<(Transport, String)>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        let timers = Timers::default();
        Self {
            t1: timers.t1,
            t2: timers.t2,
            t4: timers.t4,
            limits: Limits::default(),
            user_agent: None,
            local: Vec::new(),
        }
    }
}

/// A client transaction: the handle [`Event::Response`] and [`Event::Timeout`] refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTx(pub u64);

/// A server transaction: the handle the TU answers a request through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTx(pub u64);

/// What the endpoint tells its transaction user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new request (not an ACK, not a CANCEL, never a retransmission). Answer it with
    /// [`Endpoint::send_response`](super::Endpoint::send_response) on `tx`: a server transaction waits for its final response.
    Request {
        /// The transaction to answer on.
        tx: ServerTx,
        /// The request, its top Via carrying `received`/`rport` (§18.2.1, RFC 3581).
        request: Message,
        /// Where it came from.
        from: Peer,
    },
    /// A CANCEL matched this INVITE transaction before its final response (§9.2). The endpoint
    /// answered the CANCEL with 200; the TU should answer the INVITE with 487.
    Cancelled {
        /// The INVITE's transaction.
        tx: ServerTx,
        /// The CANCEL.
        cancel: Message,
    },
    /// An ACK that is not part of a transaction: the ACK for a 2xx (§13.2.2.4, §17), for the
    /// dialog layer.
    Ack {
        /// The ACK.
        request: Message,
        /// Where it came from.
        from: Peer,
    },
    /// A response to a request we sent: each provisional and final response once; in the
    /// Accepted state of an INVITE (RFC 6026) every 2xx, so the dialog layer ACKs each.
    Response {
        /// The client transaction.
        tx: ClientTx,
        /// The response.
        response: Message,
    },
    /// No final response in time (Timer B, Timer F, or 64*T1 after a CANCEL): treat as 408.
    Timeout {
        /// The client transaction, now ended.
        tx: ClientTx,
    },
    /// The driver reported the destination unreachable ([`Endpoint::handle_unreachable`](super::Endpoint::handle_unreachable))
    /// before a final response came; the transaction ended (§17.1.4).
    TransportError {
        /// The client transaction, now ended.
        tx: ClientTx,
    },
    /// Timer H fired: the ACK for our non-2xx final response never came (§17.2.1); the
    /// transaction ended.
    AckTimeout {
        /// The INVITE server transaction, now ended.
        tx: ServerTx,
    },
    /// A response that matched no transaction: a 2xx retransmitted after the INVITE
    /// transaction ended (the dialog layer ACKs it again), or one not meant for us.
    StrayResponse {
        /// The response.
        response: Message,
        /// Where it came from.
        from: Peer,
    },
    /// Input that is not a SIP message we can use, for logs and metrics. If it was a request
    /// whose Via could be read, a 400 (or 505, 513) with `error` as its reason phrase is queued.
    Malformed {
        /// Where it came from.
        from: Peer,
        /// Why it was rejected, naming the culprit.
        error: String,
    },
}

/// A command the endpoint refused: misuse of the API, not a network condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No live transaction has this id (it ended, or never existed).
    #[error("no such transaction")]
    UnknownTransaction,
    /// `send_response` was given a request.
    #[error("not a response")]
    NotAResponse,
    /// The transaction already sent its final response (only 2xx may follow a 2xx to INVITE).
    #[error("a final response was already sent")]
    FinalAlreadySent,
    /// `cancel` on a transaction that is not an INVITE.
    #[error("only an INVITE can be cancelled")]
    NotInvite,
    /// `cancel` twice on the same INVITE.
    #[error("the INVITE is already being cancelled")]
    AlreadyCancelled,
    /// `cancel` after a final response arrived (§9.1: the CANCEL would have no effect).
    #[error("the INVITE already has a final response")]
    FinalReceived,
}
