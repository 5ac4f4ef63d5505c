//! Retransmission of a 2xx to INVITE by the UAS core (§13.3.1.4, RFC 6026 §7.1).
//!
//! Since RFC 6026 the INVITE server transaction hands a 2xx to the transport once and moves to
//! *Accepted*; it is the TU that retransmits the 2xx until the ACK comes:
//!
//! ```text
//!                  new(now, 2xx): the 2xx was just sent
//!                         │
//!                         ▼
//!   ┌──────────────► Retransmitting ──── ACK (on_ack) ───► Acknowledged
//!   │ Retransmit:           │
//!   │ interval doubles,     │ 64*T1 after the first send, no ACK:
//!   │ capped at T2          │ GiveUp — the dialog is confirmed but the
//!   └───────────────────────┤ session SHOULD end: send BYE
//!                           ▼
//!                        GaveUp
//! ```
//!
//! With T1 = 500 ms and T2 = 4 s the 2xx goes out again at 0.5, 1.5, 3.5, 7.5, 11.5, … 31.5 s,
//! and the UAS gives up at 32 s.

use std::time::{Duration, Instant};

use super::DialogError;
use crate::headers::CSeq;
use crate::message::{Message, Method};

/// What [`TwoXxRetransmitter::handle_timeout`] asks the TU to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwoXxAction {
    /// Send [`TwoXxRetransmitter::response`] again (statelessly, to the same peer).
    Retransmit,
    /// No ACK within 64*T1: send BYE on the dialog (§13.3.1.4).
    GiveUp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Retransmitting {
        next: Instant,
        interval: Duration,
        give_up: Instant,
    },
    Acknowledged,
    GaveUp,
}

/// Retransmits a 2xx to INVITE until its ACK arrives (§13.3.1.4), on the driver's clock:
/// [`poll_timeout`](Self::poll_timeout) says when to call
/// [`handle_timeout`](Self::handle_timeout).
#[derive(Clone, Debug)]
pub struct TwoXxRetransmitter {
    response: Message,
    cseq: u32,
    t2: Duration,
    state: State,
}

impl TwoXxRetransmitter {
    /// Starts after the first transmission of `response` at `now`. `t1` and `t2` are the
    /// transaction layer's timers (500 ms and 4 s by default, §17.1.1.1). The response must be a
    /// 2xx to INVITE ([`DialogError::NotInviteSuccess`]).
    pub fn new(
        now: Instant,
        response: Message,
        t1: Duration,
        t2: Duration,
    ) -> Result<Self, DialogError> {
        let code = response.status().ok_or(DialogError::WrongKind {
            expected: "response",
        })?;
        let cseq = response.require::<CSeq>()?;
        if !code.is_success() || cseq.method != Method::Invite {
            return Err(DialogError::NotInviteSuccess);
        }
        Ok(Self {
            cseq: cseq.seq,
            response,
            t2,
            state: State::Retransmitting {
                next: now + t1,
                interval: t1,
                give_up: now + t1 * 64,
            },
        })
    }

    /// The 2xx to send on [`TwoXxAction::Retransmit`].
    pub fn response(&self) -> &Message {
        &self.response
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` once the ACK
    /// came or the retransmitter gave up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Retransmitting { next, give_up, .. } => Some(next.min(give_up)),
            State::Acknowledged | State::GaveUp => None,
        }
    }

    /// Time passed: retransmit, give up, or nothing yet.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TwoXxAction> {
        let State::Retransmitting {
            next,
            interval,
            give_up,
        } = self.state
        else {
            return None;
        };
        if now >= give_up {
            self.state = State::GaveUp;
            return Some(TwoXxAction::GiveUp);
        }
        if now < next {
            return None;
        }
        let interval = (interval * 2).min(self.t2);
        self.state = State::Retransmitting {
            // From the time it actually went out, so a late driver does not send a burst.
            next: now + interval,
            interval,
            give_up,
        };
        Some(TwoXxAction::Retransmit)
    }

    /// An ACK arrived in the dialog: if it acknowledges this 2xx (same CSeq number,
    /// §13.2.2.4), retransmissions stop and this returns `true`.
    pub fn on_ack(&mut self, ack: &Message) -> bool {
        let ours = ack.method() == Some(&Method::Ack)
            && ack
                .typed::<CSeq>()
                .ok()
                .flatten()
                .is_some_and(|c| c.seq == self.cseq);
        let waiting = matches!(self.state, State::Retransmitting { .. });
        if ours && waiting {
            self.state = State::Acknowledged;
        }
        ours && waiting
    }

    /// Whether the ACK came.
    pub fn is_acknowledged(&self) -> bool {
        self.state == State::Acknowledged
    }

    /// Whether it is still retransmitting.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Retransmitting { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::test_util::{epoch, invite, msg, response_to};

    const T1: Duration = Duration::from_millis(500);
    const T2: Duration = Duration::from_secs(4);

    /// Runs the retransmitter to the end with the driver always on time; returns the offsets
    /// of each retransmission and of the give-up.
    fn run(rt: &mut TwoXxRetransmitter, start: Instant) -> (Vec<Duration>, Option<Duration>) {
        let mut sent = Vec::new();
        while let Some(at) = rt.poll_timeout() {
            match rt.handle_timeout(at) {
                Some(TwoXxAction::Retransmit) => sent.push(at - start),
                Some(TwoXxAction::GiveUp) => return (sent, Some(at - start)),
                None => unreachable!("polled deadline must fire"),
            }
        }
        (sent, None)
    }

    #[test]
    fn doubles_from_t1_to_t2_and_gives_up_at_64_t1() {
        let start = epoch();
        let ok = response_to(&invite(), 200, Some("b"));
        let mut rt = TwoXxRetransmitter::new(start, ok.clone(), T1, T2).unwrap();
        assert_eq!(rt.response(), &ok);
        let (sent, gave_up) = run(&mut rt, start);
        let ms: Vec<u128> = sent.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(gave_up, Some(T1 * 64));
        assert!(!rt.is_active() && !rt.is_acknowledged());
        assert_eq!(rt.handle_timeout(start + T1 * 100), None);
    }

    #[test]
    fn early_calls_do_nothing_and_the_ack_stops_it() {
        let start = epoch();
        let inv = invite();
        let mut rt =
            TwoXxRetransmitter::new(start, response_to(&inv, 200, Some("b")), T1, T2).unwrap();
        assert_eq!(rt.handle_timeout(start + T1 / 2), None);
        assert_eq!(rt.handle_timeout(start + T1), Some(TwoXxAction::Retransmit));
        let ack = |seq: u32| {
            msg(&format!(
                "ACK sip:bob@192.0.2.2 SIP/2.0
From: <sip:alice@atlanta.example.com>;tag=alicetag
To: <sip:bob@biloxi.example.com>;tag=b
Call-ID: call-1@192.0.2.1
CSeq: {seq} ACK

"
            ))
        };
        assert!(!rt.on_ack(&ack(313)), "the ACK of an older INVITE");
        assert!(rt.on_ack(&ack(314)));
        assert!(rt.is_acknowledged());
        assert_eq!(rt.poll_timeout(), None);
        assert!(!rt.on_ack(&ack(314)), "a retransmitted ACK changes nothing");
    }

    #[test]
    fn only_a_2xx_to_invite() {
        let start = epoch();
        let inv = invite();
        assert_eq!(
            TwoXxRetransmitter::new(start, response_to(&inv, 486, Some("b")), T1, T2).err(),
            Some(DialogError::NotInviteSuccess)
        );
        assert!(TwoXxRetransmitter::new(start, inv, T1, T2).is_err());
    }
}
