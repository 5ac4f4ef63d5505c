//! The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

use std::time::Instant;

use super::timers::{Retransmit, Timers, earliest};
use super::{Provisionals, Reaction, ResponseInfo, TimerFired, TxState};

/// The state of a non-INVITE client transaction, each variant holding its own timers:
///
/// ```text
///                                |Request from TU
///                                |send request
///            Timer E             V
///            send request  +-----------+
///                +---------|           |-------------------+
///                |         |  Trying   |  Timer F          |
///                +-------->|           |  or Transport Err.|
///                          +-----------+  inform TU        |
///             200-699         |  |                         |
///             resp. to TU     |  |1xx                      |
///             +---------------+  |resp. to TU              |
///             |                  |                         |
///             |   Timer E        V       Timer F           |
///             |   send req +-----------+ or Transport Err. |
///             |  +---------|           | inform TU         |
///             |  |         |Proceeding |------------------>|
///             |  +-------->|           |-----+             |
///             |            +-----------+     |1xx          |
///             |              |      ^        |resp to TU   |
///             | 200-699      |      +--------+             |
///             | resp. to TU  |                             |
///             |              |                             |
///             |              V                             |
///             |            +-----------+                   |
///             |            |           |                   |
///             |            | Completed |                   |
///             |            |           |                   |
///             |            +-----------+                   |
///             |              ^   |                         |
///             |              |   | Timer K                 |
///             +--------------+   | -                       |
///                                |                         |
///                                V                         |
///          NOTE:           +-----------+                   |
///                          |           |                   |
///      transitions         | Terminated|<------------------+
///      labeled with        |           |
///      the event           +-----------+
///      over the action
///      to take
///
///                  Figure 6: non-INVITE client transaction
/// ```
///
/// Timer E starts at T1 and doubles up to T2 in Trying; in Proceeding it fires every T2
/// (§17.1.2.2). On a reliable transport there is no Timer E and Timer K is zero, so a final
/// response terminates the transaction at once.
#[derive(Debug)]
pub(crate) enum State {
    /// The request is out, nothing has come back.
    Trying {
        /// Timer E (unreliable transports only).
        timer_e: Option<Retransmit>,
        /// Timer F: 64*T1, the transaction timeout.
        timer_f: Instant,
    },
    /// A provisional response came.
    Proceeding {
        /// Timer E, now at T2.
        timer_e: Option<Retransmit>,
        /// Timer F, still running.
        timer_f: Instant,
        /// The provisional responses already given to the TU.
        seen: Provisionals,
    },
    /// A final response came and went to the TU; retransmissions of it are absorbed.
    Completed {
        /// Timer K.
        timer_k: Instant,
    },
    /// Done: the endpoint forgets the transaction.
    Terminated,
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    state: State,
    timers: Timers,
    reliable: bool,
}

impl ClientNonInvite {
    /// A transaction whose request was just sent at `now`.
    pub(crate) fn new(now: Instant, timers: Timers, reliable: bool) -> Self {
        Self {
            state: State::Trying {
                timer_e: Retransmit::first(now, &timers, reliable),
                timer_f: now + timers.timeout(),
            },
            timers,
            reliable,
        }
    }

    /// A response matched this transaction.
    pub(crate) fn on_response(&mut self, now: Instant, response: ResponseInfo) -> Reaction {
        let final_ = response.code >= 200;
        match &mut self.state {
            State::Trying { timer_e, timer_f } if !final_ => {
                let mut seen = Provisionals::default();
                seen.insert(response.provisional_id());
                self.state = State::Proceeding {
                    // §17.1.2.2: the running Timer E is kept; once it fires, it is reset to T2.
                    timer_e: timer_e.map(|e| Retransmit {
                        at: e.at,
                        interval: self.timers.t2,
                    }),
                    timer_f: *timer_f,
                    seen,
                };
                Reaction::to_tu()
            }
            State::Proceeding { seen, .. } if !final_ => {
                if seen.insert(response.provisional_id()) {
                    Reaction::to_tu()
                } else {
                    Reaction::absorb()
                }
            }
            State::Trying { .. } | State::Proceeding { .. } => {
                self.state = if self.reliable {
                    State::Terminated
                } else {
                    State::Completed {
                        timer_k: now + self.timers.k(false),
                    }
                };
                Reaction::to_tu()
            }
            State::Completed { .. } | State::Terminated => Reaction::absorb(),
        }
    }

    /// Handles the earliest timer that is due, if any; call until `None`.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Option<TimerFired> {
        match &mut self.state {
            State::Trying { timer_e, timer_f }
            | State::Proceeding {
                timer_e, timer_f, ..
            } => {
                if *timer_f <= now {
                    self.state = State::Terminated;
                    return Some(TimerFired::Timeout);
                }
                let e = timer_e.as_mut().filter(|e| e.at <= now)?;
                *e = e.next(now, Some(self.timers.t2));
                Some(TimerFired::Retransmit)
            }
            State::Completed { timer_k } if *timer_k <= now => {
                self.state = State::Terminated;
                Some(TimerFired::Terminated)
            }
            State::Completed { .. } | State::Terminated => None,
        }
    }

    /// The transport could not send the request: inform the TU, unless a final response came.
    pub(crate) fn on_transport_error(&mut self) -> bool {
        let inform = matches!(self.state, State::Trying { .. } | State::Proceeding { .. });
        self.state = State::Terminated;
        inform
    }

    /// The next timer to fire.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Trying { timer_e, timer_f }
            | State::Proceeding {
                timer_e, timer_f, ..
            } => earliest([timer_e.map(|e| e.at), Some(*timer_f)]),
            State::Completed { timer_k } => Some(*timer_k),
            State::Terminated => None,
        }
    }

    /// Whether the endpoint may forget it.
    pub(crate) fn is_terminated(&self) -> bool {
        matches!(self.state, State::Terminated)
    }

    /// The state's name.
    pub(crate) fn state(&self) -> TxState {
        match self.state {
            State::Trying { .. } => TxState::Trying,
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

    fn info(code: u16) -> ResponseInfo {
        ResponseInfo {
            code,
            to_tag: None,
            rseq: None,
        }
    }

    #[test]
    fn timer_e_doubles_to_t2_then_f_times_out() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let timers = Timers::default();
        let mut tx = ClientNonInvite::new(t0, timers, false);
        let mut sent = Vec::new();
        while let Some(at) = tx.deadline() {
            match tx.on_timer(at) {
                Some(TimerFired::Retransmit) => sent.push((at - t0).as_millis()),
                Some(TimerFired::Timeout) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            sent,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.deadline(), None);
    }

    #[test]
    fn final_response_then_timer_k_or_at_once_when_reliable() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(t0, Timers::default(), false);
        assert!(tx.on_response(t0, info(100)).to_tu);
        assert!(!tx.on_response(t0, info(100)).to_tu);
        assert!(tx.on_response(t0, info(180)).to_tu);
        assert!(tx.on_response(t0, info(200)).to_tu);
        assert!(!tx.on_response(t0, info(200)).to_tu);
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(5)));

        let mut tx = ClientNonInvite::new(t0, Timers::default(), true);
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        assert!(tx.on_response(t0, info(404)).to_tu);
        assert!(tx.is_terminated());
    }
}
