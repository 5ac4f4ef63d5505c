//! Transfers (RFC 3515, RFC 5589). Blind: a leg sends REFER to a number or an extension; the
//! target is rung on the transferor's side, the transferor hears the progress in NOTIFYs
//! (sipfrag) and is released when the target answers. Attended: REFER with Replaces naming
//! the transferor's other call; the party of that call moves into this one (a re-INVITE gives
//! it this call's media port) and both of the transferor's legs end.

use std::time::Instant;

use masterz_media::codec::Direction;
use masterz_sip::endpoint::{Endpoint, ServerTx};
use masterz_sip::headers::ReferTo;
use masterz_sip::message::{Message, Method, StdHeader};

use super::answer::leg_params;
use super::build::{self, reply, reply_reason};
use super::hangup::send_bye;
use super::leg::{Leg, LegId};
use super::persist::Write;
use super::{CallControl, CallInput, CallKey, Purpose};
use crate::media_engine::Side;

/// A transfer in progress.
pub(crate) struct Transfer {
    /// The leg that sent REFER.
    pub(crate) transferor: LegId,
    /// The side the target takes.
    pub(crate) side: Side,
    /// The transferor hung up before the end (it may; the transfer goes on).
    pub(crate) transferor_gone: bool,
    /// Attended: the leg moving in from the other call, and that call.
    pub(crate) moving: Option<(LegId, CallKey)>,
}

impl CallControl {
    pub(super) fn on_refer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        tx: ServerTx,
        request: &Message,
    ) {
        let ctx = self.ctx.clone();
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(side) = Self::side_of(call, leg) else {
            let r = reply(&ctx, request, 481, None);
            let _ = ep.send_response(now, tx, r);
            return;
        };
        if call.transfer.is_some() || call.phase != super::Phase::Connected {
            let r = reply_reason(
                &ctx,
                request,
                491,
                None,
                "Request Pending (a transfer is in progress)",
            );
            let _ = ep.send_response(now, tx, r);
            return;
        }
        let Ok(Some(refer_to)) = request.typed::<ReferTo>() else {
            let r = reply_reason(&ctx, request, 400, None, "Bad Request (Refer-To missing)");
            let _ = ep.send_response(now, tx, r);
            return;
        };
        if refer_to.uri().is_err() {
            let r = reply_reason(&ctx, request, 400, None, "Bad Request (bad Refer-To URI)");
            let _ = ep.send_response(now, tx, r);
            return;
        }
        let replaces = match refer_to.replaces() {
            Ok(r) => r,
            Err(_) => {
                let r = reply_reason(&ctx, request, 400, None, "Bad Request (bad Replaces)");
                let _ = ep.send_response(now, tx, r);
                return;
            }
        };
        let target_user = refer_to
            .uri()
            .ok()
            .and_then(|u| u.user_unescaped())
            .unwrap_or_default();
        let company = call.company;
        let r = reply(&ctx, request, 202, None);
        let _ = ep.send_response(now, tx, r);
        call.transfer = Some(Transfer {
            transferor: leg,
            side,
            transferor_gone: false,
            moving: None,
        });
        self.notify(ep, now, key, leg, 100, false);
        if let (Some(company), Some(row)) = (company, self.calls.get(&key).and_then(|c| c.row)) {
            let kind = if replaces.is_some() {
                "attended"
            } else {
                "blind"
            };
            self.db.event(
                company,
                row,
                "transfer_requested",
                None,
                Some(format!("{kind} to {target_user}")),
            );
        }

        if let Some(replaces) = replaces {
            return self.attended(ep, now, key, side, &replaces.call_id);
        }
        let Some(company) = company else {
            return self.transfer_failed(ep, now, key, 500);
        };
        let state = self.ctx.state.clone();
        let trunks = self.trunks.clone();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let result = super::route::resolve_dialled(&state, &trunks, company, &target_user)
                .await
                .map(|(_, targets, _)| targets)
                .map_err(|r| r.status);
            let _ = inputs.send(CallInput::TransferRouted {
                key,
                from: leg,
                result,
            });
        });
    }

    /// The blind transfer's target is known: ring it on the transferor's side.
    pub(super) fn on_transfer_routed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        from: LegId,
        result: Result<Vec<super::route::Target>, u16>,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(t) = call.transfer.as_ref().filter(|t| t.transferor == from) else {
            return;
        };
        let side = t.side;
        match result {
            Ok(targets) => self.ring_targets(ep, now, key, targets, side),
            Err(code) => self.transfer_failed(ep, now, key, code),
        }
    }

    /// The transfer target answered (its 2xx is ACKed): it takes the transferor's side.
    pub(super) fn transfer_answered(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        new: Leg,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(t) = call.transfer.take() else {
            return;
        };
        Self::cancel_ringing(ep, now, call, &mut self.by_call_id);
        if let (Some(m), Some(n)) = (call.media.as_ref(), new.remote.as_ref()) {
            m.configure(t.side, leg_params(n));
        }
        self.complete_transfer(ep, now, key, t, new);
    }

    /// Swaps the transferor for the new leg; NOTIFY 200 and BYE to the transferor; the other
    /// side is resumed if the transferor had held it.
    fn complete_transfer(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        t: Transfer,
        new: Leg,
    ) {
        let new_user = new.user();
        let new_id = new.id;
        let new_call_id = new.call_id.clone();
        let session = new.session.clone();
        {
            let Some(call) = self.calls.get_mut(&key) else {
                return;
            };
            let slot = match t.side {
                Side::A => Some(&mut call.a),
                Side::B => call.b.as_mut(),
            };
            let Some(slot) = slot else {
                return;
            };
            let old = std::mem::replace(slot, new);
            self.by_call_id.insert(new_call_id, (key, new_id));
            let mut old = old;
            if !t.transferor_gone {
                notify_leg(ep, now, &mut old, &mut self.client_txs, key, 200, true);
            }
            send_bye(ep, now, &mut old, &mut self.client_txs, key);
            self.by_call_id.remove(&old.call_id);
            if let Some(b) = old.browser.as_mut() {
                b.set_reason("transferred");
            }
            let old_user = old.user();
            if let Some(u) = old_user {
                self.hub.set_busy(u, key, false);
                call.busy.retain(|b| *b != u);
            }
            if let Some(u) = new_user {
                self.hub.set_busy(u, key, true);
                call.busy.push(u);
            }
            if t.side == Side::B || call.agent == old_user {
                call.agent = new_user.or(call.agent);
            }
            if let (Some(company), Some(row)) = (call.company, call.row) {
                self.db.write(Write::SetAgent {
                    company,
                    row,
                    agent: call.agent,
                });
                self.db.event(company, row, "transferred", new_user, None);
            }
        }
        if let Some(s) = session {
            self.schedule_session(key, new_id, &s);
        }
        // The transferor usually held the other side first; the new party talks to it now.
        let other_held = self
            .calls
            .get(&key)
            .and_then(|c| match t.side.other() {
                Side::A => Some(&c.a),
                Side::B => c.b.as_ref(),
            })
            .is_some_and(|l| l.offered_direction != Direction::SendRecv);
        if other_held {
            self.send_reinvite(ep, now, key, t.side.other(), Direction::SendRecv);
        }
    }

    /// The transfer failed with `code`: the transferor hears so and keeps its call (or, gone,
    /// the call ends).
    pub(super) fn transfer_failed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        code: u16,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(t) = call.transfer.take() else {
            return;
        };
        if let (Some(company), Some(row)) = (call.company, call.row) {
            self.db.event(
                company,
                row,
                "transfer_failed",
                None,
                Some(code.to_string()),
            );
        }
        if t.transferor_gone {
            return self.hang_up(
                ep,
                now,
                key,
                "system",
                "transfer failed after the transferor left",
            );
        }
        self.notify(ep, now, key, t.transferor, code, true);
    }

    /// The transferor hung up during its transfer: keep the call for the target. True when the
    /// BYE was taken that way.
    pub(super) fn transferor_left(
        &mut self,
        _ep: &mut Endpoint,
        _now: Instant,
        key: CallKey,
        leg: LegId,
    ) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        match call.transfer.as_mut() {
            Some(t) if t.transferor == leg && (!call.ringing.is_empty() || t.moving.is_some()) => {
                t.transferor_gone = true;
                true
            }
            _ => false,
        }
    }

    /// Sends the transferor a NOTIFY with the sipfrag of `code`.
    fn notify(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        code: u16,
        last: bool,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(l) = Self::leg_mut(call, leg) else {
            return;
        };
        notify_leg(ep, now, l, &mut self.client_txs, key, code, last);
    }

    /// Attended transfer: the leg of another call whose dialog `replaced_call_id` names (the
    /// transferor's leg there) is replaced; the party on that call's other side moves here.
    fn attended(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        side: Side,
        replaced_call_id: &str,
    ) {
        let Some(&(key2, replaced)) = self.by_call_id.get(replaced_call_id) else {
            return self.transfer_failed(ep, now, key, 481);
        };
        if key2 == key {
            return self.transfer_failed(ep, now, key, 403);
        }
        let Some(call2) = self.calls.get_mut(&key2) else {
            return self.transfer_failed(ep, now, key, 481);
        };
        let Some(side2) = Self::side_of(call2, replaced) else {
            return self.transfer_failed(ep, now, key, 481);
        };
        // The party that stays: the other side of the other call.
        let moving = match side2.other() {
            Side::A => None,
            Side::B => call2.b.take(),
        };
        let moving = match moving {
            Some(m) => m,
            None if side2 == Side::B => {
                // The replaced leg is call2's B: the mover is call2's A. Take it by swapping in
                // the replaced leg, which is ended anyway.
                let Some(b) = call2.b.take() else {
                    return self.transfer_failed(ep, now, key, 481);
                };
                std::mem::replace(&mut call2.a, b)
            }
            None => return self.transfer_failed(ep, now, key, 481),
        };
        if !moving.confirmed() {
            return self.transfer_failed(ep, now, key, 481);
        }
        let mover = moving.id;
        // Call 2 ends: the replaced leg (the transferor's) gets BYE.
        self.hang_up(ep, now, key2, "agent", "transferred (attended)");
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(media) = call.media.as_ref() else {
            return;
        };
        let mut moving = moving;
        moving.local.addr = media.local_rtp(side);
        self.by_call_id
            .insert(moving.call_id.clone(), (key, moving.id));
        if let Some(t) = call.transfer.as_mut() {
            t.moving = Some((mover, key2));
        }
        call.ringing.push(moving);
        // Offer it this call's port; its answer completes the move (`attended_moved`).
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(l) = call.ringing.iter_mut().find(|l| l.id == mover) else {
            return;
        };
        match super::midcall::reinvite(ep, now, l, Direction::SendRecv) {
            Some(tx) => {
                self.client_txs.insert(tx, (key, mover, Purpose::ReInvite));
            }
            None => self.transfer_failed(ep, now, key, 491),
        }
    }

    /// A 2xx to the re-INVITE that moved a leg in (attended transfer). True when it was one.
    pub(super) fn attended_moved(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
    ) -> bool {
        let Some(call) = self.calls.get_mut(&key) else {
            return false;
        };
        let is_move = call
            .transfer
            .as_ref()
            .and_then(|t| t.moving)
            .is_some_and(|(m, _)| m == leg);
        if !is_move {
            return false;
        }
        let Some(pos) = call.ringing.iter().position(|l| l.id == leg) else {
            return false;
        };
        let new = call.ringing.remove(pos);
        let Some(t) = call.transfer.take() else {
            return false;
        };
        if let (Some(m), Some(n)) = (call.media.as_ref(), new.remote.as_ref()) {
            m.configure(t.side, leg_params(n));
        }
        self.complete_transfer(ep, now, key, t, new);
        true
    }

    /// The moving leg refused its new media: it is hung up, the transferor hears the failure.
    pub(super) fn attended_failed(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        leg: LegId,
        code: u16,
    ) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(pos) = call.ringing.iter().position(|l| l.id == leg) else {
            return;
        };
        let mut l = call.ringing.remove(pos);
        send_bye(ep, now, &mut l, &mut self.client_txs, key);
        self.by_call_id.remove(&l.call_id);
        self.transfer_failed(ep, now, key, code);
    }
}

/// Sends a NOTIFY for a REFER subscription on `l` (RFC 3515 §2.4.4).
fn notify_leg(
    ep: &mut Endpoint,
    now: Instant,
    l: &mut Leg,
    client_txs: &mut std::collections::HashMap<
        masterz_sip::endpoint::ClientTx,
        (CallKey, LegId, Purpose),
    >,
    key: CallKey,
    code: u16,
    last: bool,
) {
    if !l.confirmed() {
        return;
    }
    let Some(d) = l.dialog.as_mut() else {
        return;
    };
    let Ok(mut n) = d.request(Method::Notify) else {
        return;
    };
    n.headers.push(StdHeader::Event, "refer");
    let state = if last {
        "terminated;reason=noresource"
    } else {
        "active;expires=60"
    };
    n.headers.push(StdHeader::SubscriptionState, state);
    n.set_body(
        build::sipfrag(code).into_bytes(),
        Some("message/sipfrag;version=2.0"),
    );
    let tx = ep.send_request(now, n, l.peer);
    client_txs.insert(tx, (key, l.id, Purpose::Notify));
}
