//! Ringing: one new UAC leg per target (ring-all), each offered our RTP port of its side.

use std::time::Instant;

use masterz_media::codec::Direction;
use masterz_media::sdp;
use masterz_sip::endpoint::Endpoint;

use super::answer::codecs_after;
use super::build::{self, NewInvite};
use super::inbound::new_local_media;
use super::leg::{Leg, LegId, Party};
use super::route::Target;
use super::{CallControl, CallKey, Purpose};
use crate::media_engine::Side;

impl CallControl {
    /// Rings `targets` on `side`: one new UAC leg each, offering our port of that side.
    pub(super) fn ring_targets(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        key: CallKey,
        targets: Vec<Target>,
        side: Side,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let Some(media) = call.media.as_ref() else {
            return;
        };
        let local_addr = media.local_rtp(side);
        let other_codec = match side {
            Side::B => call.a.remote.as_ref().map(|n| n.codec),
            Side::A => call
                .b
                .as_ref()
                .and_then(|b| b.remote.as_ref())
                .map(|n| n.codec),
        };
        // The agent on side A is not rung on side B (its own call, a transfer to itself);
        // ringing side A (click-to-call) rings exactly that agent.
        let caller_agent = if side == Side::B { call.a.user() } else { None };
        let (caller_id, caller_name) = call
            .routed
            .as_ref()
            .map(|r| (r.caller_id.clone(), r.caller_name.clone()))
            .unwrap_or_default();
        let row = call.row;
        let company = call.company;
        let mut legs = Vec::new();
        let mut browsers = Vec::new();
        for target in targets {
            if let Target::Agent { user, .. } | Target::Browser { user } = &target
                && Some(*user) == caller_agent
            {
                continue;
            }
            if let Target::Browser { user } = target {
                if !browsers.contains(&user) {
                    browsers.push(user);
                }
                continue;
            }
            let mut local = new_local_media();
            local.addr = local_addr;
            let offer = sdp::offer(
                &local,
                &codecs_after(other_codec),
                true,
                20,
                Direction::SendRecv,
            );
            let (request_uri, peer, party, auth, from_user) = match &target {
                Target::Browser { .. } => continue,
                Target::Agent {
                    user,
                    contact,
                    peer,
                } => (
                    uri_in(contact).to_owned(),
                    *peer,
                    Party::Agent { user: *user },
                    None,
                    if caller_id.is_empty() {
                        "anonymous".to_owned()
                    } else {
                        caller_id.clone()
                    },
                ),
                Target::Trunk { trunk, number } => {
                    let Some(peer) = trunk.peer else {
                        continue;
                    };
                    let s = &trunk.config.settings;
                    let host = match s.port {
                        Some(p) => format!("{}:{p}", s.host),
                        None => s.host.clone(),
                    };
                    let auth = match (&s.username, &trunk.config.password) {
                        (Some(u), Some(p)) => Some(masterz_sip::auth::ClientAuth::new(
                            u.clone(),
                            p.expose().clone(),
                        )),
                        _ => None,
                    };
                    (
                        format!("sip:{number}@{host}"),
                        peer,
                        Party::Trunk {
                            trunk_id: trunk.config.id,
                        },
                        auth,
                        super::route::trunk_caller_id(trunk),
                    )
                }
            };
            let (invite, call_id) = build::invite(
                &self.ctx,
                &self.settings,
                &NewInvite {
                    request_uri: &request_uri,
                    to_uri: &request_uri,
                    from_user: &from_user,
                    from_name: caller_name.as_deref(),
                    transport: peer.transport,
                    sdp: &offer,
                },
            );
            let tx = ep.send_request(now, invite.clone(), peer);
            self.next_leg += 1;
            let id = LegId(self.next_leg);
            if let (Some(row), Some(company), Party::Agent { user }) = (row, company, &party) {
                self.db.event(company, row, "ringing", Some(*user), None);
            }
            self.by_call_id.insert(call_id.clone(), (key, id));
            self.client_txs.insert(tx, (key, id, Purpose::Invite));
            legs.push(Leg {
                id,
                party,
                peer,
                call_id,
                invite,
                server_tx: None,
                local_tag: String::new(),
                client_tx: Some(tx),
                dialog: None,
                local,
                our_sdp: Some(offer.clone()),
                offer: Some(offer),
                remote: None,
                auth,
                auth_attempts: 0,
                two_xx: None,
                last_ack: None,
                session: None,
                ringing: false,
                offered_direction: Direction::SendRecv,
                allows_update: false,
                browser: None,
            });
        }
        if let Some(call) = self.calls.get_mut(&key) {
            call.ringing_side = side;
        }
        for user in browsers {
            if let (Some(row), Some(company)) = (row, company) {
                self.db
                    .event(company, row, "ringing", Some(user), Some("browser".into()));
            }
            legs.push(self.browser_leg(key, user));
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.ringing_side = side;
        let none = legs.is_empty();
        call.ringing.extend(legs);
        if none && call.ringing.is_empty() {
            if call.transfer.is_some() {
                self.transfer_failed(ep, now, key, 480);
            } else {
                self.nobody_answered(ep, now, key, 480);
            }
        }
    }
}

fn uri_in(contact: &str) -> &str {
    let c = contact.trim();
    match (c.find('<'), c.find('>')) {
        (Some(a), Some(b)) if a < b => &c[a + 1..b],
        _ => c.split(';').next().unwrap_or(c),
    }
}
