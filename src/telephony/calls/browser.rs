//! Browser legs: agents in the web app. A browser leg rings over the agent WebSocket (every tab
//! of the agent sees it), is claimed by the tab that answers, and gets its media from a WebRTC
//! leg bridged to the call's media session side. It is answered when ICE and DTLS complete:
//! until then the other agents keep ringing, and a failure ends only this leg.
//!
//! To the rest of call control a browser leg is a [`Leg`] without a SIP dialog: hanging up,
//! cancelling and re-INVITEs skip it, and its view goes to the agent's tabs instead.

use std::sync::Arc;
use std::time::Instant;

use masterz_media::codec::{Codec, Direction};
use masterz_sip::endpoint::Endpoint;

use super::answer::codecs_after;
use super::leg::{Leg, LegId, Party};
use super::route::CallDirection;
use super::transfer::Transfer;
use super::{CallControl, CallInput, CallKey, ClickTarget, Phase};
use crate::agents::{AgentHub, CallView, ServerFrame};
use crate::domain::{CompanyId, UserId};
use crate::media_engine::Side;

/// Duration of each DTMF digit the agent sends from the keypad.
const KEYPAD_DIGIT_MS: u32 = 160;

/// The owner tag of a WebRTC leg: the browser leg and the leg's generation.
pub(super) fn owner(leg: LegId, generation: u8) -> u64 {
    (leg.0 << 8) | u64::from(generation)
}

/// What an agent's tab asks of call control (docs/agent-websocket.md).
#[derive(Clone, Debug)]
pub enum AgentCommand {
    /// Claim a ringing call for this tab.
    Answer {
        /// The leg.
        leg: u64,
    },
    /// The browser's SDP answer.
    Sdp {
        /// The leg.
        leg: u64,
        /// The SDP.
        sdp: String,
    },
    /// Not taking this call.
    Decline {
        /// The leg.
        leg: u64,
    },
    /// End the call.
    Hangup {
        /// The leg.
        leg: u64,
    },
    /// Hold or resume the other party.
    Hold {
        /// The leg.
        leg: u64,
        /// Hold (true) or resume.
        on: bool,
    },
    /// Send DTMF digits to the other party.
    Dtmf {
        /// The leg.
        leg: u64,
        /// The digits.
        digits: String,
    },
    /// Blind transfer to another agent.
    Transfer {
        /// The leg.
        leg: u64,
        /// An extension, or a user id.
        to: String,
    },
    /// Call a number (or an extension) from the browser.
    Dial {
        /// The number.
        number: String,
    },
}

impl AgentCommand {
    fn leg(&self) -> Option<u64> {
        match self {
            AgentCommand::Answer { leg }
            | AgentCommand::Sdp { leg, .. }
            | AgentCommand::Decline { leg }
            | AgentCommand::Hangup { leg }
            | AgentCommand::Hold { leg, .. }
            | AgentCommand::Dtmf { leg, .. }
            | AgentCommand::Transfer { leg, .. } => Some(*leg),
            AgentCommand::Dial { .. } => None,
        }
    }
}

/// A command with who sent it.
#[derive(Clone, Debug)]
pub struct AgentRequest {
    /// The agent's company.
    pub company: CompanyId,
    /// The agent.
    pub user: UserId,
    /// The tab it came from.
    pub tab: String,
    /// What to do.
    pub cmd: AgentCommand,
}

/// The browser side of a [`Leg`].
pub(crate) struct BrowserLeg {
    pub(crate) user: UserId,
    /// The tab that claimed the call.
    pub(crate) tab: Option<String>,
    pub(crate) rtc: Option<crate::media_engine::WebRtcLeg>,
    /// The generation of `rtc`: each WebRTC leg of this browser leg reports with its own.
    pub(super) generation: u8,
    /// A new WebRTC leg for a connected call (the tab was reloaded), until it connects.
    pub(super) pending: Option<(u8, crate::media_engine::WebRtcLeg)>,
    /// ICE and DTLS are up.
    pub(crate) connected: bool,
    /// The connection of a connected call went away, and no new one has connected since.
    pub(super) lost: bool,
    pub(crate) view: CallView,
    leg: u64,
    hub: Arc<AgentHub>,
}

impl BrowserLeg {
    /// Sends the current view to the agent's tabs.
    pub(crate) fn publish(&self) {
        self.hub.call(self.user, self.leg, self.view.clone());
    }

    /// Records why the leg ends, unless a reason is known already.
    pub(crate) fn set_reason(&mut self, reason: &str) {
        if self.view.reason.is_none() {
            self.view.reason = Some(reason.to_owned());
        }
    }
}

impl Drop for BrowserLeg {
    /// A leg that goes away tells the tabs: whatever removed it (answered elsewhere, the caller
    /// gave up, the call ended) set its reason first.
    fn drop(&mut self) {
        self.view.state = "ended";
        self.set_reason("cancelled");
        self.publish();
    }
}

impl CallControl {
    /// A new ringing browser leg of `user` for call `key` (not yet claimed by a tab).
    pub(super) fn browser_leg(&mut self, key: CallKey, user: UserId) -> Leg {
        let id = self.next_leg();
        self.browser_legs.insert(id, key);
        let view = self.calls.get(&key).map(|call| {
            let routed = call.routed.as_ref();
            CallView {
                leg: id.0.to_string(),
                call_id: call.row,
                direction: if call.direction == CallDirection::In {
                    "in"
                } else {
                    "out"
                },
                state: "ringing",
                number: routed.map(|r| r.caller_id.clone()).unwrap_or_default(),
                name: routed.and_then(|r| r.caller_name.clone()),
                customer_id: routed.and_then(|r| r.customer_id),
                tab: None,
                held: false,
                started_at: super::unix_ms(),
                answered_at: None,
                reason: None,
            }
        });
        let browser = view.map(|view| {
            let b = BrowserLeg {
                user,
                tab: None,
                rtc: None,
                generation: 0,
                pending: None,
                connected: false,
                lost: false,
                view,
                leg: id.0,
                hub: self.hub.clone(),
            };
            b.publish();
            Box::new(b)
        });
        let mut leg = Leg::without_dialog(id, Party::Agent { user });
        leg.call_id = format!("browser-leg-{}", id.0);
        leg.ringing = true;
        leg.browser = browser;
        leg
    }

    pub(super) fn refuse(&self, req: &AgentRequest, message: impl Into<String>) {
        self.hub.send_tab(
            req.user,
            &req.tab,
            ServerFrame::Error {
                leg: req.cmd.leg().map(|l| l.to_string()),
                message: message.into(),
            },
        );
    }

    /// A command from an agent's tab.
    pub(super) fn on_agent(&mut self, ep: &mut Endpoint, now: Instant, req: AgentRequest) {
        if let AgentCommand::Dial { number } = &req.cmd {
            // The same rule as routing: what reads as a phone number is one, anything else an
            // extension.
            let target = if crate::domain::phone::normalize_e164(number).is_some() {
                ClickTarget::Number(number.clone())
            } else {
                ClickTarget::Extension(number.clone())
            };
            return self.start_browser_dial(req, target);
        }
        let Some(leg) = req.cmd.leg().map(LegId) else {
            return;
        };
        let Some(&key) = self.browser_legs.get(&leg) else {
            return self.refuse(&req, "no such call");
        };
        let owned = self
            .calls
            .get_mut(&key)
            .and_then(|call| Self::leg_mut(call, leg))
            .and_then(|l| l.browser.as_ref())
            .filter(|b| b.user == req.user)
            .map(|b| b.tab.clone());
        let Some(owner) = owned else {
            return self.refuse(&req, "no such call");
        };
        // A call claimed by one tab is that tab's; any tab of the agent may still hang it up.
        let elsewhere = owner.as_ref().is_some_and(|t| *t != req.tab);
        if elsewhere && !matches!(req.cmd, AgentCommand::Hangup { .. }) {
            return self.refuse(&req, "the call is handled in another tab");
        }
        match req.cmd.clone() {
            AgentCommand::Answer { .. } => self.claim(key, leg, &req),
            AgentCommand::Sdp { sdp, .. } => {
                if let Some(b) = self.browser_mut(key, leg)
                    && let Some(rtc) = b.pending.as_ref().map(|p| &p.1).or(b.rtc.as_ref())
                {
                    rtc.accept_answer(sdp);
                } else {
                    self.refuse(&req, "no offer to answer: answer the call first");
                }
            }
            AgentCommand::Decline { .. } => self.decline(ep, now, key, leg, &req),
            AgentCommand::Hangup { .. } => self.browser_hangup(ep, now, key, leg),
            AgentCommand::Hold { on, .. } => self.browser_hold(ep, now, key, leg, on, &req),
            AgentCommand::Dtmf { digits, .. } => self.browser_dtmf(key, leg, &digits, &req),
            AgentCommand::Transfer { to, .. } => self.browser_transfer(key, leg, to, &req),
            AgentCommand::Dial { .. } => {}
        }
    }

    pub(super) fn browser_mut(&mut self, key: CallKey, leg: LegId) -> Option<&mut BrowserLeg> {
        let call = self.calls.get_mut(&key)?;
        Self::leg_mut(call, leg)?.browser.as_deref_mut()
    }

    /// A tab takes a ringing call: it gets our offer; the call is answered when media connects.
    pub(super) fn claim(&mut self, key: CallKey, leg: LegId, req: &AgentRequest) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if !call.ringing.iter().any(|l| l.id == leg) {
            if Self::side_of(call, leg).is_some() {
                return self.resume(key, leg, req);
            }
            return self.refuse(req, "the call is no longer ringing");
        }
        let other = match call.ringing_side {
            Side::B => call.a.remote.as_ref().map(|n| n.codec),
            Side::A => call
                .b
                .as_ref()
                .and_then(|b| b.remote.as_ref())
                .map(|n| n.codec),
        };
        let codecs: Vec<Codec> = codecs_after(other);
        let existing = self
            .browser_mut(key, leg)
            .and_then(|b| b.rtc.as_ref().map(|r| r.offer().to_owned()));
        let offer = match existing {
            Some(o) => o,
            None => {
                match self.media.webrtc(
                    owner(leg, 0),
                    &codecs,
                    self.webrtc_timeout,
                    self.webrtc_events.clone(),
                ) {
                    Ok(rtc) => {
                        let offer = rtc.offer().to_owned();
                        if let Some(b) = self.browser_mut(key, leg) {
                            b.rtc = Some(rtc);
                        }
                        offer
                    }
                    Err(e) => return self.refuse(req, format!("media unavailable: {e}")),
                }
            }
        };
        if let Some(b) = self.browser_mut(key, leg) {
            b.tab = Some(req.tab.clone());
            b.view.tab = Some(req.tab.clone());
            b.view.state = "connecting";
            b.publish();
        }
        self.hub.send_tab(
            req.user,
            &req.tab,
            ServerFrame::Offer {
                leg: leg.0.to_string(),
                sdp: offer,
            },
        );
    }

    /// Removes a ringing browser leg with `reason`; the call goes on with the others.
    pub(super) fn drop_ringing(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        reason: &str,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(pos) = call.ringing.iter().position(|l| l.id == leg) else {
            return;
        };
        let mut l = call.ringing.remove(pos);
        if let Some(b) = l.browser.as_mut() {
            b.set_reason(reason);
        }
        let outgoing = call.ringing_side == Side::A && call.click_target.is_some();
        self.browser_legs.remove(&leg);
        drop(l);
        if outgoing {
            self.fail_call(ep, now, key, 487, reason);
        } else {
            self.after_leg_failed(ep, now, key, 480);
        }
    }

    fn decline(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        req: &AgentRequest,
    ) {
        let ringing = self
            .calls
            .get(&key)
            .is_some_and(|c| c.ringing.iter().any(|l| l.id == leg));
        if !ringing {
            return self.refuse(req, "the call is no longer ringing");
        }
        if let (Some(call), Some(user)) = (self.calls.get(&key), Some(req.user))
            && let (Some(company), Some(row)) = (call.company, call.row)
        {
            self.db.event(company, row, "declined", Some(user), None);
        }
        self.drop_ringing(ep, now, key, leg, "declined");
    }

    pub(super) fn browser_hangup(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.ringing.iter().any(|l| l.id == leg) {
            return self.drop_ringing(ep, now, key, leg, "hangup");
        }
        if let Some(b) = Self::leg_mut(call, leg).and_then(|l| l.browser.as_mut()) {
            b.set_reason("hangup");
        }
        self.peer_hung_up(ep, now, key, leg, "agent");
    }

    fn browser_hold(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        on: bool,
        req: &AgentRequest,
    ) {
        let Some(side) = self.connected_side(key, leg, req) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(b) = Self::leg_mut(call, leg).and_then(|l| l.browser.as_mut()) else {
            return;
        };
        if b.view.held == on {
            return;
        }
        b.view.held = on;
        b.publish();
        if let Some(rtc) = b.rtc.as_ref() {
            rtc.hold(on);
        }
        if let (Some(company), Some(row)) = (call.company, call.row) {
            let kind = if on { "held" } else { "resumed" };
            self.db.event(company, row, kind, Some(req.user), None);
        }
        // The agent holds: the other party is offered `sendonly` from us (RFC 3264 §8.4).
        let direction = if on {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        self.send_reinvite(ep, now, key, side.other(), direction);
    }

    fn browser_dtmf(&mut self, key: CallKey, leg: LegId, digits: &str, req: &AgentRequest) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (Some(side), Some(media)) = (Self::side_of(call, leg), call.media.as_ref()) else {
            return self.refuse(req, "the call is not connected");
        };
        let valid: Vec<char> = digits
            .chars()
            .filter(|d| d.is_ascii_digit() || matches!(d, '*' | '#' | 'A'..='D'))
            .take(32)
            .collect();
        if valid.is_empty() {
            return self.refuse(req, "no DTMF digit (0-9, *, #, A-D)");
        }
        for d in valid {
            media.send_dtmf(side.other(), d, KEYPAD_DIGIT_MS);
        }
    }

    /// The side of `leg` when its call is connected; else the tab hears why not.
    fn connected_side(&self, key: CallKey, leg: LegId, req: &AgentRequest) -> Option<Side> {
        let side = self
            .calls
            .get(&key)
            .filter(|c| c.phase == Phase::Connected)
            .and_then(|c| Self::side_of(c, leg));
        if side.is_none() {
            self.refuse(req, "the call is not connected");
        }
        side
    }

    fn browser_transfer(&mut self, key: CallKey, leg: LegId, to: String, req: &AgentRequest) {
        let Some(side) = self.connected_side(key, leg, req) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.transfer.is_some() {
            return self.refuse(req, "the call cannot be transferred now");
        }
        let Some(company) = call.company else {
            return;
        };
        call.transfer = Some(Transfer {
            transferor: leg,
            side,
            transferor_gone: false,
            moving: None,
        });
        if let Some(row) = call.row {
            self.db.event(
                company,
                row,
                "transfer_requested",
                Some(req.user),
                Some(format!("blind to {to}")),
            );
        }
        let state = self.ctx.state.clone();
        let trunks = self.trunks.clone();
        let inputs = self.inputs.clone();
        let me = req.user;
        tokio::spawn(async move {
            let result = super::route::transfer_targets(&state, &trunks, company, me, &to).await;
            let _ = inputs.send(CallInput::TransferRouted {
                key,
                from: leg,
                result,
            });
        });
    }

    /// Every browser leg of a connected call shows it connected; agents are busy.
    pub(super) fn browser_call_connected(&mut self, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        for l in [Some(&mut call.a), call.b.as_mut()].into_iter().flatten() {
            if let Some(user) = l.user() {
                self.hub.set_busy(user, key, true);
                if !call.busy.contains(&user) {
                    call.busy.push(user);
                }
            }
            if let Some(b) = l.browser.as_mut()
                && b.view.state != "connected"
            {
                b.view.state = "connected";
                b.view.answered_at = Some(super::unix_ms());
                b.publish();
            }
        }
    }

    /// A call is over: its agents are free, its browser legs say why it ended.
    pub(super) fn browser_call_ended(
        &mut self,
        key: CallKey,
        call: &mut super::Call,
        hangup_by: Option<&str>,
        sip_status: Option<u16>,
    ) {
        for user in call.busy.drain(..) {
            self.hub.set_busy(user, key, false);
        }
        let reason = match (hangup_by, sip_status) {
            // An outgoing call the far end (or routing) refused.
            (Some("system"), Some(code)) => format!("failed: {code}"),
            (Some("agent"), _) => "hangup".to_owned(),
            (Some("system"), None) => "ended".to_owned(),
            _ => "remote_hangup".to_owned(),
        };
        for l in [Some(&mut call.a), call.b.as_mut()].into_iter().flatten() {
            if let Some(b) = l.browser.as_mut() {
                b.set_reason(&reason);
            }
        }
    }

    /// A browser click-to-call: the tab's leg is set up first (side A), then the number is
    /// called.
    fn start_browser_dial(&mut self, req: AgentRequest, target: ClickTarget) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let hub = self.hub.clone();
        let (user, tab) = (req.user, req.tab.clone());
        self.start_click_from(req.company, req.user, target, reply, Some(req.tab));
        tokio::spawn(async move {
            if let Ok(Err(e)) = rx.await {
                hub.send_tab(
                    user,
                    &tab,
                    ServerFrame::Error {
                        leg: None,
                        message: e.to_string(),
                    },
                );
            }
        });
    }

    /// After a browser click-to-call is routed: the tab's leg rings on side A and is claimed by
    /// that tab at once.
    pub(super) fn ring_browser_dialler(&mut self, key: CallKey, user: UserId, tab: String) {
        let l = self.browser_leg(key, user);
        let id = l.id;
        let company = self.calls.get(&key).and_then(|c| c.company);
        if let Some(call) = self.calls.get_mut(&key) {
            call.ringing.push(l);
        }
        let req = AgentRequest {
            company: company.unwrap_or(CompanyId(0)),
            user,
            tab,
            cmd: AgentCommand::Answer { leg: id.0 },
        };
        self.claim(key, id, &req);
    }
}
