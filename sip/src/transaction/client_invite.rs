//! The INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as updated by RFC 6026 §8.4),
//! and the two requests it builds itself: the ACK for a non-2xx final response (§17.1.1.3) and
//! the CANCEL (§9.1).

use std::time::Instant;

use bytes::Bytes;

use super::timers::{Retransmit, Timers, earliest};
use super::{Provisionals, Reaction, ResponseInfo, TimerFired, TxState};
use crate::message::{Message, Method, StdHeader, Text, split_list};

/// The state of an INVITE client transaction, each variant holding its own timers:
///
/// ```text
///                                |INVITE from TU
///              Timer A fires     |INVITE sent      Timer B fires
///              Reset A,          V                 or Transport Err.
///              INVITE sent +-----------+           inform TU
///                +---------|           |--------------------------+
///                |         |  Calling  |                          |
///                +-------->|           |-----------+              |
///   300-699                +-----------+ 2xx       |              |
///   ACK sent                  |  |       2xx to TU |              |
///   resp. to TU               |  |1xx              |              |
///   +-------------------------+  |1xx to TU        |              |
///   |                            |                 |              |
///   |                1xx         V                 |              |
///   |                1xx to TU +-----------+       |              |
///   |                +---------|           |       |              |
///   |                |         |Proceeding |       |              |
///   |                +-------->|           |       |              |
///   |                          +-----------+ 2xx   |              |
///   |         300-699             |    |     2xx to TU            |
///   |         ACK sent,           |    +--------+  |              |
///   |         resp. to TU         |             |  |              |
///   |                             |             V  V              |
///   |  300-699                    V        +-----------+          |
///   |  ACK sent              +-----------+ |           |          |
///   |  +---------------------|           | | Accepted  |--+ 2xx   |
///   |  |                     | Completed | |           |<-+ 2xx   |
///   |  +-------------------->|           | +-----------+    to TU |
///   |                        +-----------+       |                |
///   |                          ^   |             | Timer M fires  |
///   +--------------------------+   | Timer D     | -              |
///                                  | fires       |                |
///                                  V -           V                |
///                            +-----------------------+            |
///                            |      Terminated       |<-----------+
///                            +-----------------------+
///
///          Figure 5 (RFC 3261), with the Accepted state of RFC 6026
/// ```
///
/// Timer A (unreliable transports only) starts at T1 and doubles without a cap: only Timer B
/// (64*T1) stops it. Timer D is 32 s or more on an unreliable transport and zero on a reliable
/// one. Timer M is 64*T1. A CANCEL asked for in Calling waits there for the first provisional
/// response (§9.1); once sent, the INVITE gives up 64*T1 later if no final response comes.
#[derive(Debug)]
pub(crate) enum State {
    /// The INVITE is out; nothing has come back.
    Calling {
        /// Timer A.
        timer_a: Option<Retransmit>,
        /// Timer B.
        timer_b: Instant,
        /// The client transaction id reserved for a CANCEL the TU asked for before any
        /// provisional response (§9.1 forbids sending it yet).
        pending_cancel: Option<u64>,
    },
    /// A provisional response came; the INVITE is no longer retransmitted.
    Proceeding {
        /// Provisional responses already passed to the TU.
        seen: Provisionals,
        /// Set once a CANCEL went out: give up if no final response by then (§9.1).
        cancel_timeout: Option<Instant>,
    },
    /// A 300–699 response came; it was ACKed and passed to the TU. Retransmissions of it are
    /// ACKed again and absorbed.
    Completed {
        /// The ACK (§17.1.1.3), kept to answer retransmitted final responses.
        ack: Bytes,
        /// Timer D.
        timer_d: Instant,
    },
    /// RFC 6026: a 2xx came; further 2xx (retransmissions, other forks) go to the TU, whose
    /// dialog layer ACKs each.
    Accepted {
        /// Timer M.
        timer_m: Instant,
    },
    /// Done.
    Terminated,
}

/// Why a CANCEL cannot be sent for this INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelRefused {
    /// A CANCEL was already asked for.
    AlreadyCancelled,
    /// A final response came (§9.1: a CANCEL then has no effect and SHOULD NOT be sent).
    Final,
}

/// When the CANCEL goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelPlan {
    /// A provisional response came: send it now.
    Now,
    /// Not yet: the INVITE's first provisional response will release it ([`Reaction::send_cancel`]).
    Deferred,
}

/// An INVITE client transaction.
#[derive(Debug)]
pub(crate) struct ClientInvite {
    state: State,
    timers: Timers,
    reliable: bool,
}

impl ClientInvite {
    /// A transaction whose INVITE was just sent at `now`.
    pub(crate) fn new(now: Instant, timers: Timers, reliable: bool) -> Self {
        Self {
            state: State::Calling {
                timer_a: Retransmit::first(now, &timers, reliable),
                timer_b: now + timers.timeout(),
                pending_cancel: None,
            },
            timers,
            reliable,
        }
    }

    /// A response matched this transaction. `build_ack` makes the ACK for a non-2xx final
    /// response; it is called once, on entering Completed.
    pub(crate) fn on_response(
        &mut self,
        now: Instant,
        response: ResponseInfo,
        build_ack: impl FnOnce() -> Bytes,
    ) -> Reaction {
        let code = response.code;
        match &mut self.state {
            State::Calling { pending_cancel, .. } if code < 200 => {
                let cancel = pending_cancel.take();
                let mut seen = Provisionals::default();
                seen.insert(response.provisional_id());
                self.state = State::Proceeding {
                    seen,
                    cancel_timeout: cancel.map(|_| now + self.timers.timeout()),
                };
                Reaction {
                    to_tu: true,
                    send: None,
                    send_cancel: cancel,
                }
            }
            State::Proceeding { seen, .. } if code < 200 => {
                if seen.insert(response.provisional_id()) {
                    Reaction::to_tu()
                } else {
                    Reaction::absorb()
                }
            }
            State::Calling { .. } | State::Proceeding { .. } if code < 300 => {
                self.state = State::Accepted {
                    timer_m: now + self.timers.timeout(),
                };
                Reaction::to_tu()
            }
            State::Calling { .. } | State::Proceeding { .. } => {
                let ack = build_ack();
                self.state = if self.reliable {
                    State::Terminated
                } else {
                    State::Completed {
                        ack: ack.clone(),
                        timer_d: now + self.timers.d(false),
                    }
                };
                Reaction {
                    to_tu: true,
                    send: Some(ack),
                    send_cancel: None,
                }
            }
            State::Completed { ack, .. } if code >= 300 => Reaction {
                to_tu: false,
                send: Some(ack.clone()),
                send_cancel: None,
            },
            State::Accepted { .. } if (200..300).contains(&code) => Reaction::to_tu(),
            State::Completed { .. } | State::Accepted { .. } | State::Terminated => {
                Reaction::absorb()
            }
        }
    }

    /// Handles the earliest timer that is due, if any; call until `None`.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Option<TimerFired> {
        match &mut self.state {
            State::Calling {
                timer_a, timer_b, ..
            } => {
                if *timer_b <= now {
                    self.state = State::Terminated;
                    return Some(TimerFired::Timeout);
                }
                let a = timer_a.as_mut().filter(|a| a.at <= now)?;
                *a = a.next(now, None);
                Some(TimerFired::Retransmit)
            }
            State::Proceeding {
                cancel_timeout: Some(at),
                ..
            } if *at <= now => {
                self.state = State::Terminated;
                Some(TimerFired::Timeout)
            }
            State::Completed { timer_d: at, .. } | State::Accepted { timer_m: at }
                if *at <= now =>
            {
                self.state = State::Terminated;
                Some(TimerFired::Terminated)
            }
            State::Proceeding { .. }
            | State::Completed { .. }
            | State::Accepted { .. }
            | State::Terminated => None,
        }
    }

    /// The TU wants to cancel the INVITE; `id` is the client transaction the CANCEL will be.
    pub(crate) fn request_cancel(
        &mut self,
        now: Instant,
        id: u64,
    ) -> Result<CancelPlan, CancelRefused> {
        match &mut self.state {
            State::Calling {
                pending_cancel: pending @ None,
                ..
            } => {
                *pending = Some(id);
                Ok(CancelPlan::Deferred)
            }
            State::Proceeding {
                cancel_timeout: timeout @ None,
                ..
            } => {
                *timeout = Some(now + self.timers.timeout());
                Ok(CancelPlan::Now)
            }
            State::Calling { .. } | State::Proceeding { .. } => {
                Err(CancelRefused::AlreadyCancelled)
            }
            State::Completed { .. } | State::Accepted { .. } | State::Terminated => {
                Err(CancelRefused::Final)
            }
        }
    }

    /// The transport could not send the INVITE: inform the TU unless a final response came.
    pub(crate) fn on_transport_error(&mut self) -> bool {
        let inform = matches!(self.state, State::Calling { .. } | State::Proceeding { .. });
        self.state = State::Terminated;
        inform
    }

    /// The next timer to fire.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Calling {
                timer_a, timer_b, ..
            } => earliest([timer_a.map(|a| a.at), Some(*timer_b)]),
            State::Proceeding { cancel_timeout, .. } => *cancel_timeout,
            State::Completed { timer_d, .. } => Some(*timer_d),
            State::Accepted { timer_m } => Some(*timer_m),
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
            State::Calling { .. } => TxState::Calling,
            State::Proceeding { .. } => TxState::Proceeding,
            State::Completed { .. } => TxState::Completed,
            State::Accepted { .. } => TxState::Accepted,
            State::Terminated => TxState::Terminated,
        }
    }
}

/// The top Via value of a message (the first element of the first Via header).
pub(crate) fn top_via(message: &Message) -> Option<Text> {
    let first = message.headers.get(StdHeader::Via)?;
    let top = split_list(first).next()?;
    Some(first.slice_ref(top))
}

/// The CSeq number of a request we built; a TU that built a broken CSeq gets 0 rather than a
/// panic (the peer will reject the ACK or CANCEL, which is the TU's bug to see).
fn cseq_number(request: &Message) -> u32 {
    request
        .typed::<crate::headers::CSeq>()
        .ok()
        .flatten()
        .map_or(0, |c| c.seq)
}

/// The ACK for a non-2xx final response (§17.1.1.3): Request-URI, Call-ID, From and the CSeq
/// number of the INVITE; the To of the response (with its tag); the INVITE's top Via only; its
/// Route headers.
pub(crate) fn build_ack(invite: &Message, response: &Message) -> Message {
    let uri = invite.request_uri().cloned().unwrap_or_default();
    let mut ack = Message::request(Method::Ack, uri);
    if let Some(via) = top_via(invite) {
        ack.headers.push(StdHeader::Via, via);
    }
    ack.headers
        .push(StdHeader::MaxForwards, Text::from_static("70"));
    copy(invite, &mut ack, StdHeader::From);
    copy(response, &mut ack, StdHeader::To);
    copy(invite, &mut ack, StdHeader::CallId);
    ack.headers.push(
        StdHeader::CSeq,
        Text::from(format!("{} ACK", cseq_number(invite))),
    );
    copy_all(invite, &mut ack, StdHeader::Route);
    ack.headers
        .push(StdHeader::ContentLength, Text::from_static("0"));
    ack
}

/// The CANCEL for an INVITE (§9.1): the same Request-URI, Call-ID, From, To (tags included)
/// and CSeq number, the INVITE's top Via only (so the server matches it by branch), its Routes.
pub(crate) fn build_cancel(invite: &Message) -> Message {
    let uri = invite.request_uri().cloned().unwrap_or_default();
    let mut cancel = Message::request(Method::Cancel, uri);
    if let Some(via) = top_via(invite) {
        cancel.headers.push(StdHeader::Via, via);
    }
    cancel
        .headers
        .push(StdHeader::MaxForwards, Text::from_static("70"));
    copy(invite, &mut cancel, StdHeader::From);
    copy(invite, &mut cancel, StdHeader::To);
    copy(invite, &mut cancel, StdHeader::CallId);
    cancel.headers.push(
        StdHeader::CSeq,
        Text::from(format!("{} CANCEL", cseq_number(invite))),
    );
    copy_all(invite, &mut cancel, StdHeader::Route);
    cancel
        .headers
        .push(StdHeader::ContentLength, Text::from_static("0"));
    cancel
}

fn copy(from: &Message, to: &mut Message, name: StdHeader) {
    if let Some(v) = from.headers.get(name) {
        to.headers.push(name, v.clone());
    }
}

fn copy_all(from: &Message, to: &mut Message, name: StdHeader) {
    for v in from.headers.get_all(name) {
        to.headers.push(name, v.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::message::{Limits, StatusCode};

    fn info(code: u16) -> ResponseInfo {
        ResponseInfo {
            code,
            to_tag: None,
            rseq: None,
        }
    }

    #[test]
    fn timer_a_doubles_until_timer_b() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, Timers::default(), false);
        let mut sent = Vec::new();
        while let Some(at) = tx.deadline() {
            match tx.on_timer(at) {
                Some(TimerFired::Retransmit) => sent.push((at - t0).as_millis()),
                Some(TimerFired::Timeout) => {
                    assert_eq!(at - t0, Duration::from_secs(32));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sent, [500, 1500, 3500, 7500, 15500, 31500]);
    }

    #[test]
    fn non_2xx_is_acked_once_built_and_reacked_from_completed() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, Timers::default(), false);
        assert_eq!(tx.request_cancel(t0, 9), Ok(CancelPlan::Deferred));
        assert_eq!(
            tx.request_cancel(t0, 10),
            Err(CancelRefused::AlreadyCancelled)
        );
        let r = tx.on_response(t0, info(180), || unreachable!("no ACK for 1xx"));
        assert_eq!((r.to_tu, r.send_cancel), (true, Some(9)));
        let mut built = 0;
        let r = tx.on_response(t0, info(487), || {
            built += 1;
            Bytes::from_static(b"ACK")
        });
        assert!(r.to_tu && r.send.is_some());
        let r = tx.on_response(t0, info(487), || unreachable!("built once"));
        assert!(!r.to_tu && r.send.as_deref() == Some(&b"ACK"[..]));
        assert_eq!(built, 1);
        assert_eq!(tx.request_cancel(t0, 11), Err(CancelRefused::Final));
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn accepted_passes_every_2xx() {
        #[allow(clippy::disallowed_methods)] // tests need one base instant; time is virtual after
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, Timers::default(), true);
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        assert!(tx.on_response(t0, info(200), Bytes::new).to_tu);
        assert!(tx.on_response(t0, info(200), Bytes::new).to_tu);
        assert!(!tx.on_response(t0, info(486), Bytes::new).to_tu);
        assert_eq!(tx.state(), TxState::Accepted);
    }

    #[test]
    fn ack_and_cancel_follow_the_invite() {
        let invite = Message::parse(
            bytes::Bytes::from_static(
                b"INVITE sip:bob@b.example SIP/2.0\r\n\
                  Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP p.example;branch=z9hG4bK0\r\n\
                  Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n\
                  From: <sip:alice@a.example>;tag=a\r\nTo: <sip:bob@b.example>\r\n\
                  Call-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
            ),
            &Limits::default(),
        )
        .unwrap();
        let mut response = Message::response(StatusCode::new(486).unwrap());
        response
            .headers
            .push(StdHeader::To, "<sip:bob@b.example>;tag=b");
        let ack = build_ack(&invite, &response);
        let text = ack.to_string();
        assert!(
            text.starts_with("ACK sip:bob@b.example SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"));
        assert!(!text.contains("p.example"));
        assert!(text.contains("To: <sip:bob@b.example>;tag=b\r\n"));
        assert!(text.contains("CSeq: 7 ACK\r\n"));
        assert!(text.contains("Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n"));
        let cancel = build_cancel(&invite).to_string();
        assert!(cancel.contains("CSeq: 7 CANCEL\r\n"));
        assert!(cancel.contains("To: <sip:bob@b.example>\r\n"));
        assert!(cancel.contains("Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"));
    }
}
