//! One SIP leg of a call: its INVITE, its transaction while the INVITE is open, its dialog once
//! established, and what was agreed for its media.

use std::time::Instant;

use masterz_media::sdp::{LocalMedia, Negotiated, SessionDescription};
use masterz_sip::auth::ClientAuth;
use masterz_sip::dialog::{Dialog, TwoXxRetransmitter};
use masterz_sip::endpoint::{ClientTx, ServerTx};
use masterz_sip::message::Message;
use masterz_sip::transport::Peer;

use crate::domain::UserId;

/// Identifies a leg inside call control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LegId(pub(crate) u64);

/// Who is at the far end of a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Party {
    /// A trunk (the customer).
    Trunk { trunk_id: i64 },
    /// An agent's softphone.
    Agent { user: UserId },
}

/// RFC 4028 session timer state of a leg.
#[derive(Clone, Debug)]
pub(crate) struct SessionTimer {
    pub(crate) interval: u32,
    /// We refresh (re-INVITE at half the interval); else the peer must, before `expires_at`.
    pub(crate) we_refresh: bool,
    pub(crate) refresh_at: Instant,
    pub(crate) expires_at: Instant,
}

impl SessionTimer {
    pub(crate) fn new(now: Instant, interval: u32, we_refresh: bool) -> Self {
        let secs = u64::from(interval.max(1));
        // §10: refresh at half the interval; the peer's refresh is late after
        // interval - min(32, interval/3).
        let refresh_at = now + std::time::Duration::from_millis(secs * 500);
        let expires_at = now + std::time::Duration::from_secs(secs - (secs / 3).min(32));
        Self {
            interval,
            we_refresh,
            refresh_at,
            expires_at,
        }
    }
}

/// A leg: the A side (UAS for calls from a trunk or a softphone, UAC for click-to-call) or a B
/// side (UAC: agents, trunk).
pub(crate) struct Leg {
    pub(crate) id: LegId,
    pub(crate) party: Party,
    /// Where its requests and responses go.
    pub(crate) peer: Peer,
    pub(crate) call_id: String,
    /// The INVITE that created it: as received (UAS) or as last sent (UAC, without Via).
    pub(crate) invite: Message,
    /// UAS: the INVITE's transaction until the final response.
    pub(crate) server_tx: Option<ServerTx>,
    /// UAS: our To tag.
    pub(crate) local_tag: String,
    /// UAC: the INVITE's transaction until the final response.
    pub(crate) client_tx: Option<ClientTx>,
    pub(crate) dialog: Option<Dialog>,
    /// Our SDP origin toward this leg (the version moves on each change).
    pub(crate) local: LocalMedia,
    /// What we offered (UAC), to read the answer.
    pub(crate) offer: Option<SessionDescription>,
    /// The last description we sent this leg (offer or answer).
    pub(crate) our_sdp: Option<SessionDescription>,
    /// What this leg's SDP says: codec, address, direction.
    pub(crate) remote: Option<Negotiated>,
    /// Credentials for a trunk that challenges.
    pub(crate) auth: Option<ClientAuth>,
    pub(crate) auth_attempts: u8,
    /// UAS: our 2xx, retransmitted until the ACK.
    pub(crate) two_xx: Option<TwoXxRetransmitter>,
    /// UAC: the ACK we sent for the 2xx, resent for its retransmissions.
    pub(crate) last_ack: Option<Message>,
    pub(crate) session: Option<SessionTimer>,
    /// Sent 18x (UAC: received 18x).
    pub(crate) ringing: bool,
    /// The direction we last asked of this leg in an offer (hold propagation).
    pub(crate) offered_direction: masterz_media::codec::Direction,
    /// Whether the peer allows UPDATE.
    pub(crate) allows_update: bool,
    /// An agent in the web app: no SIP dialog, a WebRTC leg instead.
    pub(crate) browser: Option<Box<super::browser::BrowserLeg>>,
}

impl Leg {
    /// A leg with no SIP signalling of its own: the agent side of a click-to-call before its
    /// phone is rung, or a browser leg. The INVITE and peer are placeholders; no dialog.
    pub(crate) fn without_dialog(id: LegId, party: Party) -> Self {
        Self {
            id,
            party,
            peer: Peer::new(
                masterz_sip::transport::Transport::Udp,
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ),
            call_id: String::new(),
            invite: Message::request(masterz_sip::message::Method::Invite, "sip:agent.invalid"),
            server_tx: None,
            local_tag: String::new(),
            client_tx: None,
            dialog: None,
            local: super::inbound::new_local_media(),
            offer: None,
            our_sdp: None,
            remote: None,
            auth: None,
            auth_attempts: 0,
            two_xx: None,
            last_ack: None,
            session: None,
            ringing: false,
            offered_direction: masterz_media::codec::Direction::SendRecv,
            allows_update: false,
            browser: None,
        }
    }

    pub(crate) fn user(&self) -> Option<UserId> {
        match self.party {
            Party::Agent { user } => Some(user),
            Party::Trunk { .. } => None,
        }
    }

    pub(crate) fn is_agent(&self) -> bool {
        matches!(self.party, Party::Agent { .. })
    }

    /// Whether the dialog is confirmed (2xx sent or received).
    pub(crate) fn confirmed(&self) -> bool {
        if let Some(b) = &self.browser {
            return b.connected;
        }
        self.dialog
            .as_ref()
            .is_some_and(|d| d.state() == masterz_sip::dialog::DialogState::Confirmed)
    }
}
