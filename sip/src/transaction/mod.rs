//! Transactions (RFC 3261 §17, updated by RFC 6026): the four state machines and how messages
//! are matched to them.
//!
//! Each machine is an enum of states whose variants carry only that state's timers and
//! messages (`client_invite`, `client_non_invite`, `server_invite`,
//! `server_non_invite`). The machines neither send nor read clocks: they are told what arrived
//! and what time it is, and answer with what to do (`Reaction`, `TimerFired`). The
//! [`crate::endpoint::Endpoint`] owns them, matches messages to them (`key`), keeps one
//! deadline per transaction in its timer queue and turns their answers into transmissions and
//! events.

pub(crate) mod client_invite;
pub(crate) mod client_non_invite;
pub(crate) mod key;
pub(crate) mod server_invite;
pub(crate) mod server_non_invite;
mod timers;

use bytes::Bytes;

pub use timers::Timers;

use crate::message::Text;

/// The state a transaction is in, as named in RFC 3261 Figures 5–8 and RFC 6026 (for metrics,
/// logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxState {
    /// INVITE client: the INVITE is out, no response yet.
    Calling,
    /// Non-INVITE client and server: the request is out / in, no response yet.
    Trying,
    /// A provisional response was received or sent.
    Proceeding,
    /// A final response (non-2xx for INVITE) was received or sent; retransmissions are absorbed.
    Completed,
    /// INVITE server: the ACK for a non-2xx final response arrived.
    Confirmed,
    /// INVITE, RFC 6026: a 2xx was received or sent; 2xx retransmissions and ACKs go to the TU.
    Accepted,
    /// Finished; the endpoint forgets the transaction.
    Terminated,
}

/// What a client machine needs to know of a response.
#[derive(Clone, Debug)]
pub(crate) struct ResponseInfo {
    /// The status code.
    pub(crate) code: u16,
    /// The To tag (which fork of a forked request answered).
    pub(crate) to_tag: Option<Text>,
    /// The RSeq header of a reliable provisional response (RFC 3262).
    pub(crate) rseq: Option<Text>,
}

impl ResponseInfo {
    fn provisional_id(&self) -> ProvisionalId {
        ProvisionalId {
            code: self.code,
            to_tag: self.to_tag.clone(),
            rseq: self.rseq.clone(),
        }
    }
}

/// What tells provisional responses apart: the code, the fork (To tag) and, for reliable ones,
/// RSeq. Two with the same identity are a retransmission.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ProvisionalId {
    code: u16,
    to_tag: Option<Text>,
    rseq: Option<Text>,
}

/// The provisional responses a client transaction has passed to its TU, so that a retransmitted
/// one is not passed again. Bounded: a peer sending endless distinct 1xx only costs us repeats.
#[derive(Debug, Default)]
pub(crate) struct Provisionals(Vec<ProvisionalId>);

impl Provisionals {
    const MAX: usize = 16;

    /// Records `id`; whether it is new.
    fn insert(&mut self, id: ProvisionalId) -> bool {
        if self.0.contains(&id) {
            return false;
        }
        if self.0.len() == Self::MAX {
            self.0.remove(0);
        }
        self.0.push(id);
        true
    }
}

/// What a client transaction does with a response it matched.
#[derive(Debug, Default)]
pub(crate) struct Reaction {
    /// Pass the response to the TU.
    pub(crate) to_tu: bool,
    /// Send these bytes to the transaction's peer (the ACK for a non-2xx final response).
    pub(crate) send: Option<Bytes>,
    /// A CANCEL was waiting for a provisional response: send it now, as this client transaction.
    pub(crate) send_cancel: Option<u64>,
}

impl Reaction {
    fn to_tu() -> Self {
        Self {
            to_tu: true,
            ..Self::default()
        }
    }

    fn absorb() -> Self {
        Self::default()
    }
}

/// What a timer that fired asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TimerFired {
    /// Client: send the request again (Timers A, E).
    Retransmit,
    /// Server: send this response again (Timer G).
    Resend(Bytes),
    /// Client: no final response in time (Timers B, F; or no final response 64*T1 after a
    /// CANCEL, §9.1); the TU treats it as 408.
    Timeout,
    /// INVITE server: no ACK for the final response (Timer H).
    AckTimeout,
    /// The transaction ended quietly (Timers D, I, J, K, L, M).
    Terminated,
}
