//! Within an established call: re-INVITE and UPDATE (hold, resume, new media address, session
//! refresh) propagated across the B2BUA, our own re-INVITEs, SIP INFO DTMF, media events.

use std::time::Instant;

use masterz_media::codec::{Codec, Direction};
use masterz_media::sdp::{self, SessionDescription};
use masterz_sip::dialog::TwoXxRetransmitter;
use masterz_sip::endpoint::{Endpoint, ServerTx};
use masterz_sip::headers::SessionExpires;
use masterz_sip::message::{Message, Method, StdHeader};
use masterz_sip::transport::Transport;

use super::answer::{codecs_after, leg_params};
use super::build::{self, reply, reply_reason, with_sdp};
use super::leg::{LegId, SessionTimer};
use super::timers::Timer;
use super::{CallControl, CallKey, Purpose};
use crate::media_engine::{MediaEvent, MediaNotice, Side};

impl CallControl {
    /// A re-INVITE or UPDATE from a connected leg: answered at once; a change of direction
    /// (hold, resume) is offered to the other side.
    pub(super) fn on_reoffer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        tx: ServerTx,
        request: &Message,
    ) {
        let is_invite = request.method() == Some(&Method::Invite);
        let ctx = self.ctx.clone();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(side) = Self::side_of(call, leg) else {
            let r = reply(&ctx, request, 491, None);
            let _ = ep.send_response(now, tx, r);
            return;
        };
        let media = call.media.as_ref().map(|m| m as *const _);
        let _ = media;
        let Some(l) = Self::side_leg(call, side) else {
            return;
        };
        let mut response = reply(&ctx, request, 200, None);
        let mut direction_change = None;
        if !request.body.is_empty() {
            let offer = std::str::from_utf8(&request.body)
                .ok()
                .and_then(|t| SessionDescription::parse(t).ok());
            let Some(offer) = offer else {
                let r = reply_reason(&ctx, request, 488, None, "Not Acceptable Here (bad SDP)");
                let _ = ep.send_response(now, tx, r);
                if let Some(d) = l.dialog.as_mut() {
                    let _ = d.on_response_sent(&reply(&ctx, request, 488, None));
                }
                return;
            };
            let current = l.remote.as_ref().map(|n| n.codec);
            let prefer: Vec<Codec> = codecs_after(current);
            let answered = sdp::answer(&offer, &l.local, &prefer[..1], Direction::SendRecv)
                .or_else(|_| sdp::answer(&offer, &l.local, &Codec::ALL, Direction::SendRecv));
            let Ok((mut answer, negotiated)) = answered else {
                let r = reply_reason(
                    &ctx,
                    request,
                    488,
                    None,
                    "Not Acceptable Here (no common codec)",
                );
                let _ = ep.send_response(now, tx, r);
                return;
            };
            // §8: the version moves only when our description changed.
            if l.our_sdp.as_ref().map(ToString::to_string) != Some(answer.to_string()) {
                l.local.version += 1;
                answer.origin.version = l.local.version;
            }
            let before = l.remote.as_ref().map(|n| n.remote_direction);
            if before != Some(negotiated.remote_direction) {
                direction_change = Some(negotiated.remote_direction);
            }
            if let Some(m) = call.media.as_ref() {
                m.configure(side, leg_params(&negotiated));
            }
            let Some(l) = Self::side_leg(call, side) else {
                return;
            };
            l.remote = Some(negotiated);
            l.our_sdp = Some(answer.clone());
            response = with_sdp(response, &answer);
        } else if is_invite && let Some(ours) = l.our_sdp.clone() {
            // An INVITE without an offer: ours goes in the 200, the answer in the ACK.
            response = with_sdp(response, &ours);
        }
        let Some(l) = Self::side_leg(call, side) else {
            return;
        };
        if is_invite {
            response
                .headers
                .push(StdHeader::Contact, build::contact(&ctx, l.peer.transport));
        }
        // Any re-INVITE or UPDATE that succeeds refreshes the session (RFC 4028 §10).
        if let Some(s) = l.session.as_ref() {
            let interval = request
                .typed::<SessionExpires>()
                .ok()
                .flatten()
                .map_or(s.interval, |se| se.delta.max(self.settings.min_se));
            let we_refresh = s.we_refresh;
            let who = if we_refresh { "uas" } else { "uac" };
            response.headers.push(
                StdHeader::SessionExpires,
                format!("{interval};refresher={who}"),
            );
            l.session = Some(SessionTimer::new(now, interval, we_refresh));
        }
        if let Some(d) = l.dialog.as_mut() {
            let _ = d.on_response_sent(&response);
        }
        if is_invite
            && l.peer.transport == Transport::Udp
            && let Ok(rtx) =
                TwoXxRetransmitter::new(now, response.clone(), self.settings.t1, self.settings.t2)
        {
            if let Some(at) = rtx.poll_timeout() {
                self.timers
                    .push(std::cmp::Reverse((at, key, Timer::Retransmit(leg))));
            }
            l.two_xx = Some(rtx);
        }
        let session = l.session.clone();
        let _ = ep.send_response(now, tx, response);
        if let Some(s) = session {
            self.schedule_session(key, leg, &s);
        }
        if let Some(dir) = direction_change {
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            if let (Some(company), Some(row)) = (call.company, call.row) {
                let kind = if dir == Direction::SendRecv {
                    "resumed"
                } else {
                    "held"
                };
                let user = Self::side_leg(call, side).and_then(|l| l.user());
                self.db
                    .event(company, row, kind, user, Some(dir.as_str().to_owned()));
            }
            // The other side hears of it: X sendonly (X holds) → Y is offered sendonly from us.
            self.send_reinvite(ep, now, key, side.other(), dir);
        }
    }

    /// Sends a re-INVITE to `side` offering our port for it with `direction`.
    pub(super) fn send_reinvite(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        side: Side,
        direction: Direction,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(l) = Self::side_leg(call, side) else {
            return;
        };
        if !l.confirmed() {
            return;
        }
        match reinvite(ep, now, l, direction) {
            Some(tx) => {
                let id = l.id;
                self.client_txs.insert(tx, (key, id, Purpose::ReInvite));
            }
            None => tracing::debug!("re-INVITE not sent: another offer is pending on the leg"),
        }
    }

    /// The response to one of our re-INVITEs: ACK a 2xx, take its answer.
    pub(super) fn reinvite_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        response: &Message,
        code: u16,
    ) {
        if code < 200 {
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(l) = Self::leg_mut(call, leg) else {
            return;
        };
        let Some(d) = l.dialog.as_mut() else {
            return;
        };
        let _ = d.on_response(response);
        if (200..300).contains(&code) {
            if let Ok(ack) = d.ack_for(response) {
                ep.send_stateless(l.peer, ack.clone());
                l.last_ack = Some(ack);
            }
            let answer = std::str::from_utf8(&response.body)
                .ok()
                .and_then(|t| SessionDescription::parse(t).ok());
            if let (Some(answer), Some(offer)) = (answer, l.our_sdp.as_ref())
                && let Ok(n) = sdp::accept_answer(offer, &answer)
            {
                l.remote = Some(n);
            }
            if let Some(s) = l.session.as_mut() {
                *s = SessionTimer::new(now, s.interval, s.we_refresh);
            }
            let params = l.remote.as_ref().map(leg_params);
            let side = Self::side_of(call, leg);
            if let (Some(side), Some(p), Some(m)) = (side, params, call.media.as_ref()) {
                m.configure(side, p);
            }
            self.attended_moved(ep, now, key, leg);
        } else if matches!(code, 481 | 408) {
            // §12.2.1.2: the dialog is gone.
            if let Some(d) = l.dialog.as_mut() {
                d.terminate();
            }
            self.hang_up(ep, now, key, "system", "a leg's dialog ended");
        } else {
            self.attended_failed(ep, now, key, leg, code);
        }
    }

    /// Our turn to refresh a leg's session (RFC 4028 §7.4, §9): UPDATE without SDP when the
    /// peer allows it, else a re-INVITE with our current description.
    pub(super) fn refresh_session(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(l) = Self::leg_mut(call, leg) else {
            return;
        };
        let Some(s) = l.session.as_mut() else {
            return;
        };
        let interval = s.interval;
        *s = SessionTimer::new(now, interval, true);
        let next = s.refresh_at;
        let use_update = l.allows_update;
        let ours = l.our_sdp.clone().or_else(|| l.offer.clone());
        let Some(d) = l.dialog.as_mut() else {
            return;
        };
        let method = if use_update {
            Method::Update
        } else {
            Method::Invite
        };
        match d.request(method.clone()) {
            Ok(mut req) => {
                req.headers.push(
                    StdHeader::SessionExpires,
                    format!("{interval};refresher=uac"),
                );
                req.headers.push(StdHeader::Supported, "timer");
                let req = match (&method, ours) {
                    (Method::Invite, Some(sdp)) => with_sdp(req, &sdp),
                    _ => req,
                };
                let tx = ep.send_request(now, req, l.peer);
                let purpose = if method == Method::Invite {
                    Purpose::ReInvite
                } else {
                    Purpose::Other
                };
                self.client_txs.insert(tx, (key, leg, purpose));
            }
            Err(e) => tracing::debug!(error = %e, "session refresh deferred"),
        }
        self.schedule(next, key, Timer::Refresh(leg));
    }

    /// SIP INFO: DTMF (application/dtmf-relay, application/dtmf) goes to the other side as
    /// RFC 4733 events.
    pub(super) fn on_info(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        tx: ServerTx,
        request: &Message,
    ) {
        let ctx = self.ctx.clone();
        let ctype = request
            .headers
            .get(StdHeader::ContentType)
            .map(|c| c.as_str().to_ascii_lowercase())
            .unwrap_or_default();
        let body = std::str::from_utf8(&request.body).unwrap_or("");
        let dtmf = if ctype.starts_with("application/dtmf-relay") {
            parse_dtmf_relay(body)
        } else if ctype.starts_with("application/dtmf") {
            body.trim().chars().next().map(|c| (c, 160))
        } else if request.body.is_empty() {
            // An empty INFO is a keep-alive probe: 200.
            let r = reply(&ctx, request, 200, None);
            let _ = ep.send_response(now, tx, r);
            return;
        } else {
            let mut r = reply(&ctx, request, 415, None);
            r.headers.push(
                StdHeader::Accept,
                "application/dtmf-relay, application/dtmf",
            );
            let _ = ep.send_response(now, tx, r);
            return;
        };
        let Some((digit, duration)) = dtmf.filter(|(d, _)| is_dtmf_digit(*d)) else {
            let r = reply_reason(&ctx, request, 400, None, "Bad Request (no DTMF digit)");
            let _ = ep.send_response(now, tx, r);
            return;
        };
        let r = reply(&ctx, request, 200, None);
        let _ = ep.send_response(now, tx, r);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(side) = Self::side_of(call, leg) else {
            return;
        };
        if let Some(m) = call.media.as_ref() {
            m.send_dtmf(side.other(), digit, duration);
        }
        if let (Some(company), Some(row)) = (call.company, call.row) {
            let user = Self::side_leg(call, side).and_then(|l| l.user());
            self.db.event(
                company,
                row,
                "dtmf",
                user,
                Some(format!("{digit} (SIP INFO)")),
            );
        }
    }

    /// What the media engine noticed.
    pub(super) fn on_media(&mut self, ep: &mut Endpoint, now: Instant, notice: MediaNotice) {
        let key = notice.owner;
        match notice.event {
            MediaEvent::Timeout { side } => {
                let who = match side {
                    Side::A => "A",
                    Side::B => "B",
                };
                self.hang_up(
                    ep,
                    now,
                    key,
                    "system",
                    &format!("media timeout (no RTP from side {who})"),
                );
            }
            MediaEvent::PlaybackDone { side } => self.on_prompt_done(ep, now, key, side),
            MediaEvent::Dtmf {
                from,
                digit,
                duration_ms,
            } => {
                let Some(call) = self.calls.get_mut(&key) else {
                    return;
                };
                if let (Some(company), Some(row)) = (call.company, call.row) {
                    let user = Self::side_leg(call, from).and_then(|l| l.user());
                    self.db.event(
                        company,
                        row,
                        "dtmf",
                        user,
                        Some(format!(
                            "{digit} ({duration_ms} ms, RFC 4733, from side {})",
                            if from == Side::A { "A" } else { "B" }
                        )),
                    );
                }
            }
        }
    }
}

/// Sends a re-INVITE on `l`'s dialog offering our address for it (a new SDP version) with
/// `direction`; `None` when the leg has no dialog or an offer is pending on it.
pub(super) fn reinvite(
    ep: &mut Endpoint,
    now: Instant,
    l: &mut super::leg::Leg,
    direction: Direction,
) -> Option<masterz_sip::endpoint::ClientTx> {
    let codec = l.remote.as_ref().map(|n| n.codec);
    let d = l.dialog.as_mut()?;
    let mut invite = d.request(Method::Invite).ok()?;
    l.local.version += 1;
    let offer = sdp::offer(&l.local, &codecs_after(codec), true, 20, direction);
    if let Some(s) = &l.session {
        invite.headers.push(
            StdHeader::SessionExpires,
            format!("{};refresher=uac", s.interval),
        );
    }
    invite.headers.push(StdHeader::Allow, build::ALLOW);
    let tx = ep.send_request(now, with_sdp(invite, &offer), l.peer);
    l.our_sdp = Some(offer);
    l.offered_direction = direction;
    Some(tx)
}

/// `Signal=5\r\nDuration=160` (application/dtmf-relay).
fn parse_dtmf_relay(body: &str) -> Option<(char, u32)> {
    let mut digit = None;
    let mut duration = 160;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = v.trim().chars().next(),
            "duration" => duration = v.trim().parse().unwrap_or(160),
            _ => {}
        }
    }
    digit.map(|d| (d.to_ascii_uppercase(), duration.clamp(40, 5000)))
}

/// A digit RFC 4733 has an event for: 0-9, *, #, A-D.
fn is_dtmf_digit(d: char) -> bool {
    matches!(d, '0'..='9' | '*' | '#' | 'A'..='D')
}

#[cfg(test)]
mod tests {
    use super::parse_dtmf_relay;

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            parse_dtmf_relay("Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            parse_dtmf_relay("Signal= #\nDuration= 250"),
            Some(('#', 250))
        );
        assert_eq!(parse_dtmf_relay("Duration=100"), None);
        assert_eq!(parse_dtmf_relay("signal=a\r\nduration=x"), Some(('A', 160)));
    }
}
