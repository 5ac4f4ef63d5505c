//! Call timers: ring timeout, maximum duration, session refresh and expiry (RFC 4028), and the
//! retransmission of our 2xx to an INVITE until its ACK (§13.3.1.4).
//!
//! Timers live in one heap; an entry that no longer matches its call (the call ended, the leg
//! went, the deadline moved) is ignored when it fires.

use std::cmp::Reverse;
use std::time::Instant;

use masterz_sip::dialog::TwoXxAction;
use masterz_sip::endpoint::Endpoint;

use super::{CallControl, CallKey, LegId, Phase};

/// A timer of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// Nobody answered in time.
    Ring,
    /// The call reached its maximum duration.
    MaxDuration,
    /// Time for us to refresh the session of a leg (we are its refresher).
    Refresh(LegId),
    /// The peer, refresher of a leg, did not refresh in time.
    Expire(LegId),
    /// Retransmit our 2xx on a leg whose ACK has not come.
    Retransmit(LegId),
    /// A browser's connection went away: the call ends unless its tab came back meanwhile.
    BrowserLost(LegId),
}

/// A heap entry: earliest first.
pub(crate) type TimerEntry = Reverse<(Instant, CallKey, Timer)>;

impl CallControl {
    pub(super) fn on_timer(&mut self, ep: &mut Endpoint, now: Instant, key: CallKey, timer: Timer) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        match timer {
            Timer::BrowserLost(leg) => self.browser_lost_expired(ep, now, key, leg),
            Timer::Ring => {
                if call.phase == Phase::Ringing && call.ring_deadline.is_some_and(|d| d <= now) {
                    call.ring_deadline = None;
                    self.ring_timeout(ep, now, key);
                }
            }
            Timer::MaxDuration => {
                if call.end_deadline.is_some_and(|d| d <= now) && call.phase != Phase::Ended {
                    self.hang_up(ep, now, key, "system", "maximum call duration reached");
                }
            }
            Timer::Refresh(leg) => {
                let due = Self::leg_mut(call, leg)
                    .and_then(|l| l.session.as_ref())
                    .is_some_and(|s| s.we_refresh && s.refresh_at <= now);
                if due {
                    self.refresh_session(ep, now, key, leg);
                }
            }
            Timer::Expire(leg) => {
                let expired = Self::leg_mut(call, leg)
                    .and_then(|l| l.session.as_ref())
                    .is_some_and(|s| !s.we_refresh && s.expires_at <= now);
                if expired {
                    self.hang_up(ep, now, key, "system", "session timer expired (no refresh)");
                }
            }
            Timer::Retransmit(leg) => {
                let Some(l) = Self::leg_mut(call, leg) else {
                    return;
                };
                let Some(rtx) = l.two_xx.as_mut() else {
                    return;
                };
                match rtx.handle_timeout(now) {
                    Some(TwoXxAction::Retransmit) => {
                        let response = rtx.response().clone();
                        let next = rtx.poll_timeout();
                        ep.send_stateless(l.peer, response);
                        if let Some(at) = next {
                            self.schedule(at, key, Timer::Retransmit(leg));
                        }
                    }
                    Some(TwoXxAction::GiveUp) => {
                        l.two_xx = None;
                        // §13.3.1.4: no ACK in 64*T1 → the session ends.
                        self.hang_up(ep, now, key, "system", "no ACK for the 200 OK");
                    }
                    None => {
                        if let Some(at) = rtx.poll_timeout() {
                            self.schedule(at, key, Timer::Retransmit(leg));
                        }
                    }
                }
            }
        }
    }
}
