//! The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

use std::time::Instant;

use bytes::Bytes;

use super::server_invite::AlreadyFinal;
use super::timers::Timers;
use super::{TimerFired, TxState};

/// The state of a non-INVITE server transaction, each variant holding the response it resends:
///
/// ```text
///                                   |Request received
///                                   |pass to TU
///                                   V
///                             +-----------+
///                             |           |
///                             | Trying    |-------------+
///                             |           |             |
///                             +-----------+             |200-699 from TU
///                                   |                   |send response
///                                   |1xx from TU        |
///                                   |send response      |
///                                   |                   |
///                Request            V      1xx from TU  |
///                send response+-----------+send response|
///                    +--------|           |--------+    |
///                    |        | Proceeding|        |    |
///                    +------->|           |<-------+    |
///             +<--------------|           |             |
///             |Trnsprt Err    +-----------+             |
///             |Inform TU            |                   |
///             |                     |                   |
///             |                     |200-699 from TU    |
///             |                     |send response      |
///             |  Request            V                   |
///             |  send response+-----------+             |
///             |      +--------|           |             |
///             |      |        | Completed |<------------+
///             |      +------->|           |
///             +<--------------|           |
///             |Trnsprt Err    +-----------+
///             |Inform TU            |
///             |                     |Timer J fires
///             |                     |-
///             |                     |
///             |                     V
///             |               +-----------+
///             |               |           |
///             +-------------->| Terminated|
///                             |           |
///                             +-----------+
///
///                 Figure 8: non-INVITE server transaction
/// ```
///
/// A retransmitted request never reaches the TU: in Trying it is absorbed, later it is answered
/// with the last response. Timer J is 64*T1 on an unreliable transport and zero on a reliable
/// one (the transaction ends as the final response goes out).
#[derive(Debug)]
pub(crate) enum State {
    /// The TU has the request; nothing was sent.
    Trying,
    /// A provisional response went out.
    Proceeding {
        /// It, for retransmitted requests.
        last_provisional: Bytes,
    },
    /// The final response went out.
    Completed {
        /// It, for retransmitted requests.
        response: Bytes,
        /// Timer J.
        timer_j: Instant,
    },
    /// Done.
    Terminated,
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    state: State,
    timers: Timers,
    reliable: bool,
}

impl ServerNonInvite {
    /// A transaction for a request that just arrived.
    pub(crate) fn new(timers: Timers, reliable: bool) -> Self {
        Self {
            state: State::Trying,
            timers,
            reliable,
        }
    }

    /// The request arrived again: the response to resend, if any.
    pub(crate) fn on_request(&self) -> Option<Bytes> {
        match &self.state {
            State::Trying | State::Terminated => None,
            State::Proceeding { last_provisional } => Some(last_provisional.clone()),
            State::Completed { response, .. } => Some(response.clone()),
        }
    }

    /// The TU sends a response with status `code`, already encoded; the caller transmits it
    /// when this returns `Ok`.
    pub(crate) fn on_tu_response(
        &mut self,
        now: Instant,
        code: u16,
        bytes: &Bytes,
    ) -> Result<(), AlreadyFinal> {
        match self.state {
            State::Trying | State::Proceeding { .. } if code < 200 => {
                self.state = State::Proceeding {
                    last_provisional: bytes.clone(),
                };
            }
            State::Trying | State::Proceeding { .. } => {
                self.state = if self.reliable {
                    State::Terminated
                } else {
                    State::Completed {
                        response: bytes.clone(),
                        timer_j: now + self.timers.j(false),
                    }
                };
            }
            State::Completed { .. } | State::Terminated => return Err(AlreadyFinal),
        }
        Ok(())
    }

    /// Handles Timer J if it is due.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Option<TimerFired> {
        match self.state {
            State::Completed { timer_j, .. } if timer_j <= now => {
                self.state = State::Terminated;
                Some(TimerFired::Terminated)
            }
            _ => None,
        }
    }

    /// The next timer to fire.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Completed { timer_j, .. } => Some(timer_j),
            State::Trying | State::Proceeding { .. } | State::Terminated => None,
        }
    }

    /// Whether the endpoint may forget it.
    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    /// The state's name.
    pub(crate) fn state(&self) -> TxState {
        match self.state {
            State::Trying => TxState::Trying,
            State::Proceeding { .. } => TxState::Proceeding,
            State::Completed { .. } => TxState::Completed,
            State::Terminated => TxState::Terminated,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retransmissions_are_answered_from_the_transaction_until_timer_j() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let mut tx = ServerNonInvite::new(Timers::default(), false);
        assert_eq!(tx.on_request(), None);
        let trying = Bytes::from_static(b"100");
        tx.on_tu_response(t0, 100, &trying).unwrap();
        assert_eq!(tx.on_request(), Some(trying));
        let ok = Bytes::from_static(b"200");
        tx.on_tu_response(t0, 200, &ok).unwrap();
        assert_eq!(tx.on_request(), Some(ok.clone()));
        assert_eq!(tx.on_tu_response(t0, 200, &ok), Err(AlreadyFinal));
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(tx.on_timer(t0 + Duration::from_secs(31)), None);
        assert_eq!(
            tx.on_timer(t0 + Duration::from_secs(32)),
            Some(TimerFired::Terminated)
        );

        let mut tx = ServerNonInvite::new(Timers::default(), true);
        tx.on_tu_response(t0, 200, &ok).unwrap();
        assert!(tx.is_terminated());
    }
}
