//! The media side of browser legs: a WebRTC leg connects (the leg answers), fails (the call
//! rings on), closes (the tab has a while to come back), and a reloaded tab's new WebRTC leg
//! takes over a connected call.

use std::time::Instant;

use masterz_media::codec::{Codec, Direction};
use masterz_media::sdp::Negotiated;
use masterz_sip::endpoint::Endpoint;

use super::answer::codecs_after;
use super::browser::{AgentRequest, owner};
use super::leg::LegId;
use super::{CallControl, CallKey};
use crate::agents::ServerFrame;
use crate::media_engine::{Side, WebRtcEvent, WebRtcNotice};

/// How long a call waits for the tab of a browser whose connection went away (a reload) to
/// come back with a new one before it ends.
const RESUME_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// What the media session is told about a browser leg: the WebRTC leg's loopback address,
/// the codec the browser chose, no telephone-event (the page sends DTMF as commands).
fn webrtc_media(codec: Codec, payload_type: u8, addr: std::net::SocketAddr) -> Negotiated {
    Negotiated {
        codec,
        payload_type,
        telephone_event: None,
        ptime_ms: 20,
        remote_rtp: Some(addr),
        remote_rtcp: Some(addr),
        remote_direction: Direction::SendRecv,
    }
}

impl CallControl {
    /// The tab that owns a connected call lost its WebRTC connection (a reload): a new WebRTC
    /// leg is offered; the old one carries the call until the new one connects.
    pub(super) fn resume(&mut self, key: CallKey, leg: LegId, req: &AgentRequest) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(l) = Self::leg_mut(call, leg) else {
            return;
        };
        let codec = l.remote.as_ref().map(|n| n.codec);
        let Some(b) = l.browser.as_mut() else {
            return;
        };
        if !b.connected {
            return self.refuse(req, "the call is not connected");
        }
        let generation = b
            .pending
            .as_ref()
            .map_or(b.generation, |p| p.0)
            .wrapping_add(1);
        let rtc = match self.media.webrtc(
            owner(leg, generation),
            &codecs_after(codec),
            self.webrtc_timeout,
            self.webrtc_events.clone(),
        ) {
            Ok(rtc) => rtc,
            Err(e) => return self.refuse(req, format!("media unavailable: {e}")),
        };
        let offer = rtc.offer().to_owned();
        let Some(b) = self.browser_mut(key, leg) else {
            return;
        };
        b.pending = Some((generation, rtc));
        self.hub.send_tab(
            req.user,
            &req.tab,
            ServerFrame::Offer {
                leg: leg.0.to_string(),
                sdp: offer,
            },
        );
    }

    /// A resumed WebRTC leg connected (it takes over the call's media) or failed (the old one
    /// goes on, if it still works).
    pub(super) fn resumed(&mut self, key: CallKey, leg: LegId, event: WebRtcEvent) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let side = Self::side_of(call, leg);
        let internal = side.and_then(|s| call.media.as_ref().map(|m| (s, m.internal_rtp(s))));
        let Some(l) = Self::leg_mut(call, leg) else {
            return;
        };
        let Some(b) = l.browser.as_mut() else {
            return;
        };
        let Some((generation, rtc)) = b.pending.take() else {
            return;
        };
        match event {
            WebRtcEvent::Connected {
                codec,
                payload_type,
            } => {
                let Some((side, internal)) = internal else {
                    return;
                };
                rtc.bridge(internal);
                rtc.hold(b.view.held);
                let addr = rtc.rtp_addr();
                b.rtc = Some(rtc);
                b.generation = generation;
                b.lost = false;
                b.publish();
                let negotiated = webrtc_media(codec, payload_type, addr);
                let params = super::answer::leg_params(&negotiated);
                l.remote = Some(negotiated);
                if let Some(m) = call.media.as_ref() {
                    m.configure(side, params);
                }
            }
            WebRtcEvent::Failed(reason) => {
                let (user, tab) = (b.user, b.tab.clone().unwrap_or_default());
                self.hub.send_tab(
                    user,
                    &tab,
                    ServerFrame::Error {
                        leg: Some(leg.0.to_string()),
                        message: format!("the audio could not be restored: {reason}"),
                    },
                );
            }
            WebRtcEvent::Closed => {}
        }
    }

    /// The grace after a lost browser connection is over: without a new one, the call ends.
    pub(super) fn browser_lost_expired(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
    ) {
        let Some(b) = self.browser_mut(key, leg) else {
            return;
        };
        if !b.lost {
            return;
        }
        b.set_reason("media_lost");
        self.peer_hung_up(ep, now, key, leg, "agent");
    }

    /// Media of a browser leg connected, failed or closed.
    pub(super) fn on_webrtc(&mut self, ep: &mut Endpoint, now: Instant, notice: WebRtcNotice) {
        let (leg, generation) = (LegId(notice.owner >> 8), (notice.owner & 0xff) as u8);
        let Some(&key) = self.browser_legs.get(&leg) else {
            return;
        };
        let (current, pending) = self.browser_mut(key, leg).map_or((None, None), |b| {
            (Some(b.generation), b.pending.as_ref().map(|p| p.0))
        });
        if pending == Some(generation) {
            return self.resumed(key, leg, notice.event);
        }
        if current != Some(generation) {
            // A WebRTC leg that was replaced: its end changes nothing.
            return;
        }
        if pending.is_some() && !matches!(notice.event, WebRtcEvent::Connected { .. }) {
            // The old connection died while its replacement connects (a reloaded tab).
            return;
        }
        match notice.event {
            WebRtcEvent::Connected {
                codec,
                payload_type,
            } => self.browser_connected(ep, now, key, leg, codec, payload_type),
            WebRtcEvent::Failed(reason) => {
                let reason = format!("media_failed: {reason}");
                tracing::info!(leg = leg.0, %reason, "browser leg failed");
                let ringing = self
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.ringing.iter().any(|l| l.id == leg));
                if ringing {
                    self.drop_ringing(ep, now, key, leg, &reason);
                } else {
                    if let Some(b) = self.browser_mut(key, leg) {
                        b.set_reason(&reason);
                    }
                    self.peer_hung_up(ep, now, key, leg, "agent");
                }
            }
            WebRtcEvent::Closed => {
                let ringing = self
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.ringing.iter().any(|l| l.id == leg));
                if ringing {
                    self.drop_ringing(ep, now, key, leg, "media_lost");
                } else if let Some(b) = self.browser_mut(key, leg) {
                    // A reload looks the same as a closed tab at first: the tab has a while to
                    // come back and claim the call again.
                    b.lost = true;
                    self.schedule(
                        now + RESUME_GRACE,
                        key,
                        super::timers::Timer::BrowserLost(leg),
                    );
                }
            }
        }
    }

    /// ICE and DTLS are up: the browser leg answers, as a 200 from a softphone would.
    pub(super) fn browser_connected(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        codec: Codec,
        payload_type: u8,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(pos) = call.ringing.iter().position(|l| l.id == leg) else {
            return;
        };
        let side = call.ringing_side;
        let Some(internal) = call.media.as_ref().map(|m| m.internal_rtp(side)) else {
            return;
        };
        let outgoing = side == Side::A && call.click_target.is_some();
        let mut l = call.ringing.remove(pos);
        let Some(b) = l.browser.as_mut() else {
            return;
        };
        let Some(rtc) = b.rtc.as_ref() else {
            return;
        };
        rtc.bridge(internal);
        let addr = rtc.rtp_addr();
        b.connected = true;
        if outgoing {
            b.view.state = "ringing";
        } else {
            b.view.state = "connected";
            b.view.answered_at = Some(super::unix_ms());
        }
        b.publish();
        l.remote = Some(webrtc_media(codec, payload_type, addr));
        if call.transfer.is_some() {
            self.transfer_answered(ep, now, key, l);
        } else if let Err(l) = self.click_agent_answered(ep, now, key, l) {
            self.call_answered(ep, now, key, *l);
        }
    }
}
