//! The INVITE server transaction (RFC 3261 §17.2.1, Figure 7, as updated by RFC 6026 §7.1).

use std::time::Instant;

use bytes::Bytes;

use super::timers::{Retransmit, Timers, earliest};
use super::{TimerFired, TxState};

/// The state of an INVITE server transaction, each variant holding its own timers and the
/// response it may have to send again:
///
/// ```text
///                                    |INVITE
///                                    |pass INV to TU
///                 INVITE             V send 100 Trying
///                 send response+-----------+
///                     +--------|           |--------+ 101-199 from TU
///                     |        |           |        | send response
///                     +------->|           |<-------+
///                              | Proceeding|
///                              |           |--------+ Transport Err.
///                              |           |        | Inform TU
///                              |           |<-------+
///                              +-----------+
///                 300-699 from TU |     | 2xx from TU
///                 send response   |     | send response
///                  +--------------+     +-------------------+
///                  |                                        |
///  INVITE          V          Timer G fires                 V   2xx from TU
///  send response+-----------+ send response            +-----------+ send response
///     +---------|           |--------+                 |           |--------+
///     |         | Completed |        |      INVITE -   | Accepted  |        |
///     +-------->|           |<-------+         +-------|           |<-------+
///               +-----------+                  |       |           |
///                  |     |                     +------>|           |--------+ ACK
///              ACK |     |                             +-----------+        | to TU
///              -   |     +-------------+                  |    ^            |
///                  |      Timer H fires|                  |    +------------+
///                  V      inform TU    |                  |
///               +-----------+          |                  | Timer L fires
///               |           |          |                  | -
///               | Confirmed |          |                  |
///               |           |          |                  |
///               +-----------+          |                  |
///                     |                |                  |
///                     |Timer I fires   |                  |
///                     |-               |                  |
///                     V                V                  V
///               +-----------------------------------------------+
///               |                  Terminated                   |
///               +-----------------------------------------------+
///
///          Figure 7 (RFC 3261), with the Accepted state of RFC 6026
/// ```
///
/// 100 Trying goes out as soon as the INVITE arrives (the endpoint sends it when it creates the
/// transaction, not after 200 ms: one extra message for calls the TU answers quickly, but no
/// timer and no retransmission of the INVITE by an impatient client). Timer G (unreliable only)
/// starts at T1 and doubles up to T2; Timer H is 64*T1; Timer I is T4, zero on a reliable
/// transport; Timer L is 64*T1.
#[derive(Debug)]
pub(crate) enum State {
    /// Waiting for the TU's final response.
    Proceeding {
        /// The last provisional response sent, resent on a retransmitted INVITE.
        last_provisional: Option<Bytes>,
    },
    /// A 300–699 response went out; retransmitted until the ACK comes.
    Completed {
        /// The final response.
        response: Bytes,
        /// Timer G.
        timer_g: Option<Retransmit>,
        /// Timer H.
        timer_h: Instant,
    },
    /// The ACK came; later ACKs are absorbed.
    Confirmed {
        /// Timer I.
        timer_i: Instant,
    },
    /// RFC 6026: a 2xx went out. Retransmitted INVITEs are absorbed; ACKs go to the TU; the
    /// TU's own 2xx retransmissions may still be sent through the transaction.
    Accepted {
        /// Timer L.
        timer_l: Instant,
    },
    /// Done.
    Terminated,
}

/// The TU tried to send a response the transaction cannot send any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AlreadyFinal;

/// An INVITE server transaction.
#[derive(Debug)]
pub(crate) struct ServerInvite {
    state: State,
    timers: Timers,
    reliable: bool,
}

impl ServerInvite {
    /// A transaction for an INVITE that just arrived; `trying` is the 100 Trying the endpoint
    /// sends at once.
    pub(crate) fn new(timers: Timers, reliable: bool, trying: Option<Bytes>) -> Self {
        Self {
            state: State::Proceeding {
                last_provisional: trying,
            },
            timers,
            reliable,
        }
    }

    /// The INVITE arrived again: the response to resend, if any.
    pub(crate) fn on_request(&self) -> Option<Bytes> {
        match &self.state {
            State::Proceeding { last_provisional } => last_provisional.clone(),
            State::Completed { response, .. } => Some(response.clone()),
            State::Confirmed { .. } | State::Accepted { .. } | State::Terminated => None,
        }
    }

    /// An ACK matched the transaction: whether the TU should see it (RFC 6026: in Accepted);
    /// in Completed it confirms the final response.
    pub(crate) fn on_ack(&mut self, now: Instant) -> bool {
        match &self.state {
            State::Completed { .. } => {
                self.state = if self.reliable {
                    State::Terminated
                } else {
                    State::Confirmed {
                        timer_i: now + self.timers.i(false),
                    }
                };
                false
            }
            State::Confirmed { .. } | State::Terminated => false,
            // An ACK before any final response is not ours to judge: the TU decides.
            State::Proceeding { .. } | State::Accepted { .. } => true,
        }
    }

    /// The TU sends a response with status `code`, already encoded as `bytes`; the caller
    /// transmits it when this returns `Ok`.
    pub(crate) fn on_tu_response(
        &mut self,
        now: Instant,
        code: u16,
        bytes: &Bytes,
    ) -> Result<(), AlreadyFinal> {
        match &mut self.state {
            State::Proceeding { last_provisional } if code < 200 => {
                *last_provisional = Some(bytes.clone());
            }
            State::Proceeding { .. } if code < 300 => {
                self.state = State::Accepted {
                    timer_l: now + self.timers.timeout(),
                };
            }
            State::Proceeding { .. } => {
                self.state = State::Completed {
                    response: bytes.clone(),
                    timer_g: Retransmit::first(now, &self.timers, self.reliable),
                    timer_h: now + self.timers.timeout(),
                };
            }
            State::Accepted { .. } if (200..300).contains(&code) => {}
            State::Completed { .. }
            | State::Confirmed { .. }
            | State::Accepted { .. }
            | State::Terminated => return Err(AlreadyFinal),
        }
        Ok(())
    }

    /// Handles the earliest timer that is due, if any; call until `None`.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Option<TimerFired> {
        match &mut self.state {
            State::Completed {
                response,
                timer_g,
                timer_h,
            } => {
                if *timer_h <= now {
                    self.state = State::Terminated;
                    return Some(TimerFired::AckTimeout);
                }
                let g = timer_g.as_mut().filter(|g| g.at <= now)?;
                *g = g.next(now, Some(self.timers.t2));
                Some(TimerFired::Resend(response.clone()))
            }
            State::Confirmed { timer_i: at } | State::Accepted { timer_l: at } if *at <= now => {
                self.state = State::Terminated;
                Some(TimerFired::Terminated)
            }
            State::Proceeding { .. }
            | State::Confirmed { .. }
            | State::Accepted { .. }
            | State::Terminated => None,
        }
    }

    /// Whether a CANCEL still has an effect (§9.2: only before the final response).
    pub(crate) fn is_proceeding(&self) -> bool {
        matches!(self.state, State::Proceeding { .. })
    }

    /// The next timer to fire.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Proceeding { .. } | State::Terminated => None,
            State::Completed {
                timer_g, timer_h, ..
            } => earliest([timer_g.map(|g| g.at), Some(*timer_h)]),
            State::Confirmed { timer_i } => Some(*timer_i),
            State::Accepted { timer_l } => Some(*timer_l),
        }
    }

    /// Whether the endpoint may forget it.
    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    /// The state's name.
    pub(crate) fn state(&self) -> TxState {
        match self.state {
            State::Proceeding { .. } => TxState::Proceeding,
            State::Completed { .. } => TxState::Completed,
            State::Confirmed { .. } => TxState::Confirmed,
            State::Accepted { .. } => TxState::Accepted,
            State::Terminated => TxState::Terminated,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timer_g_doubles_to_t2_until_ack_then_timer_i() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let trying = Bytes::from_static(b"100");
        let mut tx = ServerInvite::new(Timers::default(), false, Some(trying.clone()));
        assert_eq!(tx.on_request(), Some(trying));
        assert_eq!(tx.deadline(), None);
        let resp = Bytes::from_static(b"486");
        tx.on_tu_response(t0, 486, &resp).unwrap();
        assert_eq!(tx.on_tu_response(t0, 486, &resp), Err(AlreadyFinal));
        let mut resent = Vec::new();
        while let Some(at) = tx.deadline() {
            if at - t0 > Duration::from_secs(10) {
                break;
            }
            assert_eq!(tx.on_timer(at), Some(TimerFired::Resend(resp.clone())));
            resent.push((at - t0).as_millis());
        }
        assert_eq!(resent, [500, 1500, 3500, 7500]);
        assert!(!tx.on_ack(t0 + Duration::from_secs(10)));
        assert_eq!(tx.state(), TxState::Confirmed);
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(15)));
        assert!(!tx.on_ack(t0 + Duration::from_secs(11)));
        assert_eq!(
            tx.on_timer(t0 + Duration::from_secs(15)),
            Some(TimerFired::Terminated)
        );
    }

    #[test]
    fn timer_h_without_ack_and_accepted_passes_acks() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(Timers::default(), true, None);
        tx.on_tu_response(t0, 500, &Bytes::new()).unwrap();
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.on_timer(t0 + Duration::from_secs(32)),
            Some(TimerFired::AckTimeout)
        );

        let mut tx = ServerInvite::new(Timers::default(), false, None);
        tx.on_tu_response(t0, 200, &Bytes::new()).unwrap();
        assert_eq!(tx.state(), TxState::Accepted);
        assert!(tx.on_ack(t0));
        assert_eq!(tx.on_request(), None);
        assert!(tx.on_tu_response(t0, 200, &Bytes::new()).is_ok());
        assert!(tx.on_tu_response(t0, 404, &Bytes::new()).is_err());
    }
}
