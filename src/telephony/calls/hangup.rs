//! Every way a call ends: the caller cancels, a side hangs up, nobody answers, a timer fires.
//! The row gets its end, status and reason; media ports are released.

use std::time::Instant;

use masterz_sip::endpoint::{ClientTx, Endpoint};

use super::build::{self, reply};
use super::leg::{Leg, LegId};
use super::persist::Write;
use super::route::CallDirection;
use super::{CallControl, CallKey, Phase, Purpose};
use crate::store::calls::MediaFigures;

impl CallControl {
    /// Ends a call that was never answered: the caller gets `status`.
    pub(super) fn fail_call(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        status: u16,
        reason: &str,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        if let Some(tx) = call.a.server_tx.take() {
            let tag = call.a.local_tag.clone();
            let r = build::reply_reason(
                &self.ctx,
                &call.a.invite,
                status,
                Some(&tag),
                &format!(
                    "{} ({reason})",
                    super::super::status(status).canonical_reason()
                ),
            );
            let _ = ep.send_response(now, tx, r);
        }
        let row_status = match (call.direction, status) {
            (CallDirection::In, 480 | 408 | 487) => "missed",
            (_, 500..=599) => "failed",
            _ => "rejected",
        };
        self.end_call(
            ep,
            now,
            key,
            row_status,
            reason.to_owned(),
            Some("system"),
            Some(status),
        );
    }

    /// The caller cancelled its INVITE (Event::Cancelled): 487, and every ringing leg gets CANCEL.
    pub(super) fn on_cancelled(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        tx: masterz_sip::endpoint::ServerTx,
    ) {
        let Some(key) = self.server_invites.remove(&tx) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.a.server_tx != Some(tx) {
            return;
        }
        call.a.server_tx = None;
        let tag = call.a.local_tag.clone();
        let r = reply(&self.ctx, &call.a.invite, 487, Some(&tag));
        let _ = ep.send_response(now, tx, r);
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        // CANCEL crossed the answer: the agent was connected already.
        if let Some(b) = call.b.as_mut() {
            send_bye(ep, now, b, &mut self.client_txs, key);
        }
        let (status, reason) = match call.direction {
            CallDirection::In => ("missed", "caller hung up while ringing"),
            _ => ("cancelled", "caller cancelled"),
        };
        let who = if call.a.is_agent() { "agent" } else { "caller" };
        self.end_call(
            ep,
            now,
            key,
            status,
            reason.to_owned(),
            Some(who),
            Some(487),
        );
    }

    /// A confirmed leg sent BYE: the other side gets BYE too, and the call ends.
    pub(super) fn peer_hung_up(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        who: &'static str,
    ) {
        if self.transferor_left(ep, now, key, leg) {
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        for l in [Some(&mut call.a), call.b.as_mut()].into_iter().flatten() {
            if l.id != leg {
                send_bye(ep, now, l, &mut self.client_txs, key);
            }
        }
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        if let Some(tx) = call.a.server_tx.take() {
            let tag = call.a.local_tag.clone();
            let r = reply(&self.ctx, &call.a.invite, 487, Some(&tag));
            let _ = ep.send_response(now, tx, r);
        }
        self.end_call(
            ep,
            now,
            key,
            "completed",
            format!("{who} hung up"),
            Some(who),
            None,
        );
    }

    /// Ends a call from our side (timeouts, errors): BYE to both sides.
    pub(super) fn hang_up(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        who: &'static str,
        reason: &str,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.phase == Phase::Ended {
            return;
        }
        for l in [Some(&mut call.a), call.b.as_mut()].into_iter().flatten() {
            send_bye(ep, now, l, &mut self.client_txs, key);
        }
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        if let Some(tx) = call.a.server_tx.take() {
            let tag = call.a.local_tag.clone();
            let r = reply(&self.ctx, &call.a.invite, 480, Some(&tag));
            let _ = ep.send_response(now, tx, r);
        }
        let answered = call.b.as_ref().is_some_and(Leg::confirmed);
        let status = if answered { "completed" } else { "failed" };
        self.end_call(ep, now, key, status, reason.to_owned(), Some(who), None);
    }

    /// Removes a call: its legs are forgotten, its media released, its row closed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn end_call(
        &mut self,
        _ep: &mut Endpoint,
        _now: Instant,
        key: CallKey,
        status: &'static str,
        reason: String,
        hangup_by: Option<&'static str>,
        sip_status: Option<u16>,
    ) {
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        call.phase = Phase::Ended;
        self.forget_leg(&call.a);
        if let Some(b) = &call.b {
            self.forget_leg(b);
        }
        for l in &call.ringing {
            self.forget_leg(l);
        }
        self.browser_legs.retain(|_, k| *k != key);
        self.browser_call_ended(key, &mut call, hangup_by, sip_status);
        let media = call.media.take().map(|m| media_figures(&m));
        self.metrics
            .ended
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let (Some(company), Some(row)) = (call.company, call.row) {
            self.db.write(Write::Ended {
                company,
                row,
                ended_at: super::unix_ms(),
                status,
                reason,
                hangup_by,
                sip_status,
                media,
            });
        }
    }
}

/// Sends BYE on a confirmed leg (once).
pub(super) fn send_bye(
    ep: &mut Endpoint,
    now: Instant,
    l: &mut Leg,
    client_txs: &mut std::collections::HashMap<ClientTx, (CallKey, LegId, Purpose)>,
    key: CallKey,
) {
    let Some(d) = l.dialog.as_mut() else {
        return;
    };
    if d.state() != masterz_sip::dialog::DialogState::Confirmed {
        return;
    }
    if let Ok(bye) = d.request(masterz_sip::message::Method::Bye) {
        let tx = ep.send_request(now, bye, l.peer);
        client_txs.insert(tx, (key, l.id, Purpose::Bye));
    }
    l.two_xx = None;
}

/// The media figures of a call, for its row.
pub(crate) fn media_figures(m: &crate::media_engine::MediaSession) -> MediaFigures {
    let s = m.stats();
    MediaFigures {
        packets_in: i64::try_from(s.a.packets_in + s.b.packets_in).unwrap_or(i64::MAX),
        packets_out: i64::try_from(s.a.packets_out + s.b.packets_out).unwrap_or(i64::MAX),
        packets_lost: i64::try_from(s.a.lost + s.b.lost).unwrap_or(i64::MAX),
        jitter_us: i64::try_from(s.a.jitter_us.max(s.b.jitter_us)).unwrap_or(i64::MAX),
        detail_json: serde_json::to_string(&s).unwrap_or_else(|_| "{}".to_owned()),
    }
}
