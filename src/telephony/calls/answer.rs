//! Ringing and answering: B legs are created for the targets (ring-all), their responses are
//! read, the first 2xx wins and the others get CANCEL; the caller gets 180/183, then its 200
//! once the answer is on disk. Also every way a call ends.

use std::time::Instant;

use masterz_media::codec::{Codec, Direction};
use masterz_media::sdp::{self, Negotiated, SessionDescription};
use masterz_sip::auth::ChallengeKind;
use masterz_sip::dialog::{Dialog, TwoXxRetransmitter};
use masterz_sip::endpoint::{ClientTx, Endpoint};
use masterz_sip::headers::SessionExpires;
use masterz_sip::message::{Message, StdHeader};
use masterz_sip::transport::{Peer, Transport};

use super::build::{self, reply, with_sdp};
use super::leg::{Leg, LegId, SessionTimer};
use super::persist::Write;
use super::route::CallDirection;
use super::timers::Timer;
use super::{Call, CallControl, CallKey, Phase, Purpose};
use crate::media_engine::{LegParams, Side};

/// The relay parameters of a leg's negotiated media.
pub(crate) fn leg_params(n: &Negotiated) -> LegParams {
    LegParams {
        remote_rtp: n.remote_rtp,
        remote_rtcp: n.remote_rtcp,
        codec: n.codec,
        payload_type: n.payload_type,
        telephone_event: n.telephone_event,
        ptime_ms: n.ptime_ms,
        direction: n.remote_direction,
    }
}

/// Our codec preference toward a new leg: the other side's codec first (no transcoding), then
/// the rest.
pub(crate) fn codecs_after(first: Option<Codec>) -> Vec<Codec> {
    let mut v: Vec<Codec> = first.into_iter().collect();
    v.extend(Codec::ALL.into_iter().filter(|c| Some(*c) != first));
    v
}

impl CallControl {
    /// A response on one of our client transactions.
    pub(super) fn on_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: ClientTx,
        response: Message,
    ) {
        let Some(&(key, leg, purpose)) = self.client_txs.get(&tx) else {
            return;
        };
        let code = response.status().map_or(500, |s| s.as_u16());
        if code >= 200 {
            self.client_txs.remove(&tx);
        }
        match purpose {
            Purpose::Invite => self.invite_response(ep, now, key, leg, tx, &response, code),
            Purpose::ReInvite => self.reinvite_response(ep, now, key, leg, &response, code),
            Purpose::Bye | Purpose::Notify | Purpose::Other => {}
        }
    }

    /// A transaction of ours failed without a response (timeout, transport error).
    pub(super) fn on_client_failure(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: ClientTx,
        code: u16,
    ) {
        let Some((key, leg, purpose)) = self.client_txs.remove(&tx) else {
            return;
        };
        match purpose {
            Purpose::Invite => {
                let r = Message::response(super::super::status(code));
                self.invite_response(ep, now, key, leg, tx, &r, code);
            }
            Purpose::ReInvite => {
                // §12.2.1.2: a timeout of a request within a dialog ends the session.
                self.hang_up(ep, now, key, "system", "a leg stopped answering");
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invite_response(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        tx: ClientTx,
        response: &Message,
        code: u16,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            if (200..300).contains(&code) {
                self.ack_and_bye(ep, now, tx, response);
            }
            return;
        };
        let Some(pos) = call.ringing.iter().position(|l| l.id == leg) else {
            // Not ringing any more: a leg we cancelled that answered anyway, or a 2xx again.
            if (200..300).contains(&code) {
                let again = call
                    .b
                    .as_ref()
                    .filter(|b| b.id == leg)
                    .or((call.a.id == leg).then_some(&call.a))
                    .and_then(|l| l.last_ack.clone().map(|a| (a, l.peer)));
                match again {
                    Some((ack, peer)) => ep.send_stateless(peer, ack),
                    None => self.ack_and_bye(ep, now, tx, response),
                }
            }
            return;
        };
        match code {
            100 => {}
            101..=199 => self.leg_ringing(ep, now, key, pos, response),
            200..=299 => {
                let mut l = call.ringing.remove(pos);
                if !self.leg_answered(ep, now, &mut l, response) {
                    self.forget_leg(&l);
                    return self.after_leg_failed(ep, now, key, 500);
                }
                if let Some(call) = self.calls.get_mut(&key) {
                    if call.transfer.is_some() {
                        self.transfer_answered(ep, now, key, l);
                    } else if let Err(l) = self.click_agent_answered(ep, now, key, l) {
                        self.call_answered(ep, now, key, *l);
                    }
                }
            }
            401 | 407 => {
                let retried = self.retry_with_auth(ep, now, key, pos, response, code);
                if !retried {
                    if let Some(call) = self.calls.get_mut(&key) {
                        let l = call.ringing.remove(pos);
                        self.forget_leg(&l);
                    }
                    // The trunk refused our credentials: the caller hears 403 rather than a
                    // challenge it cannot answer.
                    self.after_leg_failed(ep, now, key, 403);
                }
            }
            _ => {
                let l = call.ringing.remove(pos);
                self.forget_leg(&l);
                self.after_leg_failed(ep, now, key, code);
            }
        }
    }

    /// ACKs and ends a 2xx nobody wants (a second answer of ring-all, or a late one).
    fn ack_and_bye(&mut self, ep: &mut Endpoint, now: Instant, tx: ClientTx, response: &Message) {
        let Some(invite) = ep.client_request(tx).cloned() else {
            return;
        };
        let Ok(mut dialog) = Dialog::uac(&invite, response) else {
            return;
        };
        let Some(peer) = response_peer(&dialog, response) else {
            return;
        };
        if let Ok(ack) = dialog.ack_for(response) {
            ep.send_stateless(peer, ack);
        }
        if let Ok(bye) = dialog.request(masterz_sip::message::Method::Bye) {
            ep.send_request(now, bye, peer);
        }
    }

    fn leg_ringing(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        pos: usize,
        response: &Message,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let has_sdp = !response.body.is_empty();
        let Some(l) = call.ringing.get_mut(pos) else {
            return;
        };
        l.ringing = true;
        if call.transfer.is_some() || call.ringing_side != Side::B || call.a.server_tx.is_none() {
            return;
        }
        // Early media (RFC 3960): the first leg with SDP in a 18x is heard by the caller.
        if has_sdp && call.a_answer.is_none() {
            let answer = std::str::from_utf8(&response.body)
                .ok()
                .and_then(|t| SessionDescription::parse(t).ok());
            if let (Some(answer), Some(offer)) = (answer, l.offer.as_ref())
                && let Ok(n) = sdp::accept_answer(offer, &answer)
            {
                if let Some(m) = call.media.as_ref() {
                    m.configure(Side::B, leg_params(&n));
                }
                l.remote = Some(n);
                let b_codec = l.remote.as_ref().map(|n| n.codec);
                if let Some(sdp_a) = answer_a(call, b_codec) {
                    let tag = call.a.local_tag.clone();
                    let r = with_sdp(reply(&self.ctx, &call.a.invite, 183, Some(&tag)), &sdp_a);
                    call.a.ringing = true;
                    if let Some(tx) = call.a.server_tx {
                        let _ = ep.send_response(now, tx, r);
                    }
                    return;
                }
            }
        }
        if !call.a.ringing {
            call.a.ringing = true;
            let tag = call.a.local_tag.clone();
            let r = reply(&self.ctx, &call.a.invite, 180, Some(&tag));
            if let Some(tx) = call.a.server_tx {
                let _ = ep.send_response(now, tx, r);
            }
        }
    }

    /// Takes a leg's 2xx: dialog, ACK, its SDP answer, its session timer. False when the 2xx is
    /// unusable (the leg is then ended).
    fn leg_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        l: &mut Leg,
        response: &Message,
    ) -> bool {
        let Ok(mut dialog) = Dialog::uac(&l.invite, response) else {
            return false;
        };
        dialog.set_local_contact(build::contact(&self.ctx, l.peer.transport));
        if let Ok(mut ack) = dialog.ack_for(response) {
            for name in [StdHeader::ProxyAuthorization, StdHeader::Authorization] {
                for v in l.invite.headers.get_all(name) {
                    ack.headers.push(name, v.clone());
                }
            }
            ep.send_stateless(l.peer, ack.clone());
            l.last_ack = Some(ack);
        }
        l.client_tx = None;
        let answer = std::str::from_utf8(&response.body)
            .ok()
            .and_then(|t| SessionDescription::parse(t).ok());
        let negotiated = match (answer, l.offer.as_ref()) {
            (Some(a), Some(o)) => sdp::accept_answer(o, &a).ok(),
            _ => None,
        };
        l.allows_update = response
            .headers
            .get_all(StdHeader::Allow)
            .any(|v| v.as_str().to_ascii_uppercase().contains("UPDATE"));
        let se = response.typed::<SessionExpires>().ok().flatten();
        let interval = se.map_or(self.settings.session_expires, |s| s.delta);
        let peer_refreshes =
            se.is_some_and(|s| s.refresher == Some(masterz_sip::headers::Refresher::Uas));
        l.session = Some(SessionTimer::new(now, interval, !peer_refreshes));
        l.dialog = Some(dialog);
        match negotiated {
            Some(n) => {
                l.remote = Some(n);
                true
            }
            // Early media already gave the answer.
            None => l.remote.is_some(),
        }
    }

    /// The first answer of a new call: cancel the others, connect the media, write the answer,
    /// then (in [`CallControl::on_persisted`]) answer the caller.
    pub(super) fn call_answered(&mut self, ep: &mut Endpoint, now: Instant, key: CallKey, l: Leg) {
        if let Some(s) = &l.session {
            self.schedule_session(key, l.id, s);
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        for r in &mut call.ringing {
            if let Some(b) = r.browser.as_mut() {
                b.set_reason("answered_elsewhere");
            }
        }
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        let user = l.user();
        if let (Some(m), Some(n)) = (call.media.as_ref(), l.remote.as_ref()) {
            m.configure(Side::B, leg_params(n));
        }
        let b_codec = l.remote.as_ref().map(|n| n.codec);
        // Busy from the answer on: routing rings no agent who just took a call.
        for u in [user, call.a.user()].into_iter().flatten() {
            if !call.busy.contains(&u) {
                self.hub.set_busy(u, key, true);
                call.busy.push(u);
            }
        }
        call.b = Some(l);
        call.ring_deadline = None;
        if call.a.server_tx.is_some()
            && call.a_answer.is_none()
            && answer_a(call, b_codec).is_none()
        {
            return self.hang_up(ep, now, key, "system", "no codec for the caller");
        }
        if let (Some(m), Some(n)) = (call.media.as_ref(), call.a.remote.as_ref()) {
            m.configure(Side::A, leg_params(n));
        }
        let agent = match call.direction {
            CallDirection::In => user,
            _ => call.agent,
        };
        call.agent = agent;
        call.phase = Phase::Connecting;
        self.metrics
            .answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let codec = b_codec.map_or("PCMU", |c| c.name()).to_owned();
        match (call.company, call.row) {
            (Some(company), Some(row)) => self.db.write(Write::Answered {
                company,
                row,
                agent,
                at: super::unix_ms(),
                codec,
                notify: Some(key),
            }),
            _ => self.on_persisted(ep, now, key),
        }
    }

    /// The answer is on disk: the caller gets its 200.
    pub(super) fn on_persisted(&mut self, ep: &mut Endpoint, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.phase != Phase::Connecting {
            return;
        }
        call.phase = Phase::Connected;
        self.browser_call_connected(key);
        self.start_recording(key);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(tx) = call.a.server_tx.take() else {
            return;
        };
        let Some(answer) = call.a_answer.clone() else {
            return;
        };
        let tag = call.a.local_tag.clone();
        let mut r = with_sdp(reply(&self.ctx, &call.a.invite, 200, Some(&tag)), &answer);
        r.headers.push(
            StdHeader::Contact,
            build::contact(&self.ctx, call.a.peer.transport),
        );
        r.headers.push(StdHeader::Allow, build::ALLOW);
        r.headers.push(StdHeader::Supported, "timer, replaces");
        // Session timer (RFC 4028 §9): granted as asked; the caller refreshes when it can.
        if let Some(se) = call.a.invite.typed::<SessionExpires>().ok().flatten() {
            let supports_timer = call
                .a
                .invite
                .headers
                .get_all(StdHeader::Supported)
                .any(|v| v.as_str().to_ascii_lowercase().contains("timer"));
            let we_refresh = match se.refresher {
                Some(masterz_sip::headers::Refresher::Uas) => true,
                Some(masterz_sip::headers::Refresher::Uac) => false,
                None => !supports_timer,
            };
            let who = if we_refresh { "uas" } else { "uac" };
            r.headers.push(
                StdHeader::SessionExpires,
                format!("{};refresher={who}", se.delta),
            );
            if !we_refresh {
                r.headers.push(StdHeader::Require, "timer");
            }
            call.a.session = Some(SessionTimer::new(now, se.delta, we_refresh));
        }
        call.a.allows_update = call
            .a
            .invite
            .headers
            .get_all(StdHeader::Allow)
            .any(|v| v.as_str().to_ascii_uppercase().contains("UPDATE"));
        if let Ok(mut d) = Dialog::uas(&call.a.invite, &r) {
            d.set_local_contact(build::contact(&self.ctx, call.a.peer.transport));
            call.a.dialog = Some(d);
        }
        if call.a.peer.transport == Transport::Udp
            && let Ok(rtx) =
                TwoXxRetransmitter::new(now, r.clone(), self.settings.t1, self.settings.t2)
        {
            if let Some(at) = rtx.poll_timeout() {
                let leg = call.a.id;
                self.timers
                    .push(std::cmp::Reverse((at, key, Timer::Retransmit(leg))));
            }
            call.a.two_xx = Some(rtx);
        }
        let _ = ep.send_response(now, tx, r);
        self.server_invites.remove(&tx);
        let a_snapshot_id = call.a.id;
        let session = call.a.session.clone();
        if let Some(s) = session {
            self.schedule_session(key, a_snapshot_id, &s);
        }
    }

    /// A ringing leg failed with `code`; when none is left, the call fails or overflows.
    pub(super) fn after_leg_failed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        code: u16,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let rank = |c: u16| match c {
            600 | 603 | 486 => 3,
            404 | 403 | 484 | 488 => 2,
            _ => 1,
        };
        if call.best_failure.is_none_or(|b| rank(code) > rank(b)) {
            call.best_failure = Some(code);
        }
        if !call.ringing.is_empty() {
            return;
        }
        if call.transfer.is_some() {
            return self.transfer_failed(ep, now, key, code);
        }
        if call.phase == Phase::Ringing {
            let best = call.best_failure.unwrap_or(480);
            self.nobody_answered(ep, now, key, best);
        }
    }

    /// Every leg failed or nobody answered in time: overflow, or the caller gets the final
    /// response.
    pub(super) fn nobody_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        code: u16,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.direction == CallDirection::In {
            let overflow = call.routed.as_mut().and_then(|r| r.overflow_group.take());
            if let (Some(group), Some(company)) = (overflow, call.company) {
                if let Some(row) = call.row {
                    self.db.event(
                        company,
                        row,
                        "overflow",
                        None,
                        Some(format!("group {group}")),
                    );
                }
                let state = self.ctx.state.clone();
                let inputs = self.inputs.clone();
                tokio::spawn(async move {
                    let result = super::route::overflow(state, company, group).await;
                    let _ = inputs.send(super::CallInput::Overflow { key, result });
                });
                return;
            }
            let status = call.routed.as_ref().map_or(480, |r| r.no_answer_status);
            let status = if code == 480 || code == 408 {
                status
            } else {
                code.min(699)
            };
            return self.fail_call(ep, now, key, status, "no answer");
        }
        // An agent's own call: the far end's answer is passed on (mapped for the phone).
        let status = match code {
            401 | 407 => 403,
            c => c,
        };
        self.fail_call(ep, now, key, status, "not answered");
    }

    /// Ring timeout: cancel everything that rings.
    pub(super) fn ring_timeout(&mut self, ep: &mut Endpoint, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        for r in &mut call.ringing {
            if let Some(b) = r.browser.as_mut() {
                b.set_reason("no_answer");
            }
        }
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        if let Some(row) = call.row
            && let Some(company) = call.company
        {
            self.db.event(company, row, "no_answer", None, None);
        }
        self.nobody_answered(ep, now, key, 480);
    }

    /// Answers a 401/407 from a trunk: the INVITE again, with credentials. False when there is
    /// nothing (more) to answer with.
    fn retry_with_auth(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        pos: usize,
        response: &Message,
        code: u16,
    ) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let Some(l) = call.ringing.get_mut(pos) else {
            return false;
        };
        let Some(auth) = l.auth.as_mut() else {
            return false;
        };
        if l.auth_attempts >= 2 {
            return false;
        }
        l.auth_attempts += 1;
        let (kind, header) = if code == 407 {
            (ChallengeKind::Proxy, StdHeader::ProxyAuthenticate)
        } else {
            (ChallengeKind::Www, StdHeader::WwwAuthenticate)
        };
        let values: Vec<String> = response
            .headers
            .get_all(header)
            .map(|v| v.as_str().to_owned())
            .collect();
        if auth
            .handle_challenges(kind, values.iter().map(String::as_str))
            .is_err()
        {
            return false;
        }
        let uri = l
            .invite
            .request_uri()
            .map(|u| u.as_str().to_owned())
            .unwrap_or_default();
        let mut invite = l.invite.clone();
        invite.headers.remove(StdHeader::Via);
        invite.headers.remove(StdHeader::Authorization);
        invite.headers.remove(StdHeader::ProxyAuthorization);
        let seq = l.auth_attempts as u32 + 1;
        invite.headers.set(StdHeader::CSeq, format!("{seq} INVITE"));
        for (kind, creds) in auth.authorize(&mut super::super::OsRandom, "INVITE", &uri) {
            invite.headers.push(kind.answer_header(), creds.to_string());
        }
        let tx = ep.send_request(now, invite.clone(), l.peer);
        l.invite = invite;
        l.client_tx = Some(tx);
        let id = l.id;
        self.client_txs.insert(tx, (key, id, Purpose::Invite));
        true
    }
}

/// Our answer to the A leg's offer, made once (183 and 200 carry the same): the B leg's codec
/// when the caller offered it, else the caller's first (the relay transcodes).
pub(super) fn answer_a(call: &mut Call, b_codec: Option<Codec>) -> Option<SessionDescription> {
    if let Some(a) = &call.a_answer {
        return Some(a.clone());
    }
    let offer = call.a.offer.as_ref()?;
    let first = sdp::answer(
        offer,
        &call.a.local,
        &codecs_after(b_codec)[..1],
        Direction::SendRecv,
    )
    .or_else(|_| sdp::answer(offer, &call.a.local, &Codec::ALL, Direction::SendRecv))
    .ok()?;
    let (answer, negotiated) = first;
    call.a.remote = Some(negotiated);
    call.a.our_sdp = Some(answer.clone());
    call.a_answer = Some(answer.clone());
    Some(answer)
}

/// Where requests of a dialog built from a response go: the transport of the response's top
/// Via and the address of the remote target.
fn response_peer(dialog: &Dialog, response: &Message) -> Option<Peer> {
    let _ = response;
    let uri = masterz_sip::uri::Uri::parse(dialog.remote_target()).ok()?;
    let host = uri.host?.to_string();
    let port = uri.port.unwrap_or(5060);
    let ip: std::net::IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(Peer::new(
        Transport::Udp,
        std::net::SocketAddr::new(ip, port),
    ))
}
