//! Dialogs (RFC 3261 §12–§14; RFC 6026 for the 2xx to INVITE): the peer-to-peer state a UA
//! keeps between an INVITE (or SUBSCRIBE, REFER) and the BYE, and the requests built from it.
//!
//! A [`Dialog`] is pure data plus small state machines: it never sends anything, reads no clock
//! and draws no randomness of its own. The TU (call control) drives it around the transaction
//! layer:
//!
//! | the TU…                                     | calls                                   |
//! |---------------------------------------------|-----------------------------------------|
//! | receives a 1xx/2xx to its INVITE            | [`DialogSet::on_response`] (forking), or [`Dialog::uac`] then [`Dialog::on_response`] |
//! | sends a 1xx/2xx with a To tag               | [`copy_record_route`], [`Dialog::uas`], then [`Dialog::on_response_sent`] |
//! | receives a request with a To tag            | [`Dialogs::for_request`] → [`Dialog::on_request`]; an `Err` is the response ([`DialogError::status`]) |
//! | sends a request in the dialog               | [`Dialog::request`] (adds a body if it likes), [`Dialog::ack_for`] for a 2xx |
//! | receives a response to an in-dialog request | [`Dialog::on_response`]; on 491, [`Dialog::retry_after`] |
//! | sent a 2xx to an INVITE                     | [`TwoXxRetransmitter`] until the ACK (§13.3.1.4) |
//! | sees an in-dialog transaction time out      | [`Dialog::on_request_timeout`]           |
//!
//! The top Via is not added here: the transaction layer owns branches.
//!
//! # States (§12.1, §12.3, §13.2.2.4, §15)
//!
//! ```text
//!   (none) ──── 1xx with To tag ────► Early
//!     │                                 │  │
//!     │ 2xx                         2xx │  │ non-2xx final (§12.3); 481, 408 or a
//!     ▼                                 │  │ timeout of a request in the dialog (§12.2.1.2)
//!   Confirmed ◄─────────────────────────┘  │
//!     │                                    │
//!     │ BYE sent or received (§15);        │
//!     │ 481, 408 or a timeout (§12.2.1.2)  │
//!     ▼                                    ▼
//!   Terminated ◄───────────────────────────┘
//! ```

mod create;
mod error;
mod fork;
mod glare;
mod id;
mod receive;
mod request;
mod retransmit;
#[cfg(test)]
mod test_util;

pub use error::DialogError;
pub use fork::{DialogSet, ForkEvent};
pub use id::{DialogId, Dialogs};
pub use retransmit::{TwoXxAction, TwoXxRetransmitter};

use crate::headers::NameAddr;
use crate::message::{Message, Method, StdHeader, Text};

/// Where a dialog is in its life (§12, §15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a 1xx with a To tag (or by sending one): the INVITE has no final answer yet.
    Early,
    /// A 2xx was received or sent.
    Confirmed,
    /// BYE, a failure of the initial INVITE, or a 481/408/timeout in the dialog ended it.
    Terminated,
}

/// Which side of the dialog-creating transaction we were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We sent the INVITE (the caller).
    Uac,
    /// We received it (the callee).
    Uas,
}

/// A display name and a URI: the local or remote party of the dialog (From/To without tag).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Party {
    display: Option<Text>,
    uri: Text,
}

impl Party {
    fn of(addr: &NameAddr<'_>) -> Self {
        Self {
            display: addr.display.map(Text::from),
            uri: Text::from(addr.uri),
        }
    }

    /// The From or To value for a request: `display <uri>;tag=…`.
    fn header(&self, tag: &str) -> Text {
        let mut v = String::with_capacity(self.uri.len() + tag.len() + 16);
        if let Some(d) = &self.display {
            v.push_str(d);
            v.push(' ');
        }
        v.push('<');
        v.push_str(&self.uri);
        v.push('>');
        if !tag.is_empty() {
            v.push_str(";tag=");
            v.push_str(tag);
        }
        Text::from(v)
    }
}

/// One element of the route set: a URI and whether it is a loose router (`lr`, §16.12.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
struct RouteEntry {
    uri: Text,
    loose: bool,
}

/// A dialog (§12): its id, the two parties, the remote target, the route set, both sequence
/// numbers and the offer/answer bookkeeping for re-INVITE glare (§14).
#[derive(Clone, Debug)]
pub struct Dialog {
    id: DialogId,
    role: Role,
    state: DialogState,
    local: Party,
    remote: Party,
    remote_target: Text,
    route_set: Vec<RouteEntry>,
    /// The last CSeq number we used; `None` for a UAS that has sent nothing yet (§12.1.1).
    local_seq: Option<u32>,
    /// The last CSeq number received; `None` for a UAC until the peer's first request.
    remote_seq: Option<u32>,
    secure: bool,
    owns_call_id: bool,
    local_contact: Option<Text>,
    /// CSeq number of our INVITE/UPDATE awaiting its final response (§14.1).
    outgoing: Option<u32>,
    /// CSeq number of the peer's INVITE/UPDATE we have not answered yet (§14.2).
    incoming: Option<u32>,
}

impl Dialog {
    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early, confirmed or terminated.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// Whether we were the UAC or the UAS of the dialog-creating request.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The local URI (our From in requests, §12.1).
    pub fn local_uri(&self) -> &str {
        &self.local.uri
    }

    /// The remote URI (our To in requests).
    pub fn remote_uri(&self) -> &str {
        &self.remote.uri
    }

    /// Where requests go: the peer's latest Contact (§12.1, §12.2).
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, in the order the Route header lists it.
    pub fn route_set(&self) -> impl Iterator<Item = &str> {
        self.route_set.iter().map(|r| r.uri.as_str())
    }

    /// The last CSeq number we used, `None` before our first request as UAS (§12.1.1).
    pub fn local_cseq(&self) -> Option<u32> {
        self.local_seq
    }

    /// The CSeq number our next request will carry (§12.2.1.1: one more than the last; 1 when
    /// the local sequence number is empty).
    pub fn next_local_cseq(&self) -> Result<u32, DialogError> {
        match self.local_seq {
            None => Ok(1),
            Some(n) if n + 1 < 1 << 31 => Ok(n + 1),
            Some(_) => Err(DialogError::CSeqExhausted),
        }
    }

    /// The CSeq number of the peer's last request, `None` before it sent one (UAC, §12.1.2).
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Whether the dialog was set up with a SIPS Request-URI (§12.1.1, §12.1.2).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Whether we generated the Call-ID (true for the UAC), which sets the glare back-off
    /// (§14.1).
    pub fn owns_call_id(&self) -> bool {
        self.owns_call_id
    }

    /// Overrides [`Dialog::owns_call_id`] — for a B2BUA that reused the peer's Call-ID on a
    /// leg it originated.
    pub fn set_owns_call_id(&mut self, owns: bool) {
        self.owns_call_id = owns;
    }

    /// The Contact we advertise (the dialog-creating request's or 2xx's), put on target
    /// refresh requests (§12.2.1.1).
    pub fn local_contact(&self) -> Option<&str> {
        self.local_contact.as_deref()
    }

    /// Changes the Contact we advertise; the next target refresh carries it.
    pub fn set_local_contact(&mut self, contact: impl Into<Text>) {
        self.local_contact = Some(contact.into());
    }

    /// The CSeq number of our re-INVITE/UPDATE awaiting a final response (§14.1).
    pub fn outgoing_pending(&self) -> Option<u32> {
        self.outgoing
    }

    /// The CSeq number of the peer's re-INVITE/UPDATE we have not answered (§14.2).
    pub fn incoming_pending(&self) -> Option<u32> {
        self.incoming
    }

    /// Ends the dialog (a BYE, a failure, or the TU's decision).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
        self.outgoing = None;
        self.incoming = None;
    }
}

/// Copies the Record-Route headers of a request into a response that may create a dialog, in
/// order (§12.1.1: the UAS MUST do so for every dialog-creating response; §16.6 lets the
/// proxies find themselves in the route set).
pub fn copy_record_route(request: &Message, response: &mut Message) {
    for value in request.headers.get_all(StdHeader::RecordRoute) {
        response.headers.push(StdHeader::RecordRoute, value.clone());
    }
}

/// Methods whose Contact replaces the remote target (§12.2: re-INVITE; RFC 3311 UPDATE;
/// RFC 6665 SUBSCRIBE and NOTIFY; RFC 3515 REFER).
fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}
