//! Dialog identifiers (§12: Call-ID, local tag, remote tag) and the table of live dialogs that
//! in-dialog requests are matched against (§12.2.2).

use std::collections::HashMap;

use super::{Dialog, DialogError, DialogState};
use crate::headers::{CallIdHeader, NameAddr, TypedHeader};
use crate::message::{Message, StdHeader, Text};

/// A dialog id from one side's point of view (§12): the Call-ID, our tag and the peer's.
///
/// All three are compared byte for byte (§20.8 for the Call-ID; tags are opaque tokens). The
/// remote tag is empty when an RFC 2543 peer sent none (§12.1.1, §12.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    call_id: Text,
    local_tag: Text,
    remote_tag: Text,
}

impl DialogId {
    /// An id from its parts.
    pub fn new(
        call_id: impl Into<Text>,
        local_tag: impl Into<Text>,
        remote_tag: impl Into<Text>,
    ) -> Self {
        Self {
            call_id: call_id.into(),
            local_tag: local_tag.into(),
            remote_tag: remote_tag.into(),
        }
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Our tag.
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The peer's tag (empty for an RFC 2543 peer).
    pub fn remote_tag(&self) -> &str {
        &self.remote_tag
    }

    /// The id of a message on which we are the UAS: a request we received, or a response we
    /// send. Our tag is the To tag, the peer's the From tag (§12.2.2).
    ///
    /// `Ok(None)` when the To header has no tag: the request is outside any dialog.
    pub fn as_uas(message: &Message) -> Result<Option<Self>, DialogError> {
        let call_id = call_id(message)?;
        let Some(local_tag) = tag(message, StdHeader::To)? else {
            return Ok(None);
        };
        let remote_tag = tag(message, StdHeader::From)?.unwrap_or_default();
        Ok(Some(Self {
            call_id,
            local_tag,
            remote_tag,
        }))
    }

    /// The id of a message on which we are the UAC: a response we received, or a request we
    /// send. Our tag is the From tag, the peer's the To tag, empty when absent (§12.1.2: a 2xx
    /// from an RFC 2543 UAS).
    ///
    /// The From tag is mandatory here (§8.1.1.3: we always put one): without it the message is
    /// not ours and the error names the From header.
    pub fn as_uac(message: &Message) -> Result<Self, DialogError> {
        let call_id = call_id(message)?;
        let local_tag =
            tag(message, StdHeader::From)?.ok_or(DialogError::MissingTag(StdHeader::From))?;
        let remote_tag = tag(message, StdHeader::To)?.unwrap_or_default();
        Ok(Self {
            call_id,
            local_tag,
            remote_tag,
        })
    }
}

/// The Call-ID, sharing the message's buffer.
fn call_id(message: &Message) -> Result<Text, DialogError> {
    let raw = message
        .headers
        .get(StdHeader::CallId)
        .ok_or(crate::headers::HeaderError::missing(StdHeader::CallId))?;
    let parsed = CallIdHeader::parse(raw).map_err(|e| e.in_header(StdHeader::CallId))?;
    Ok(raw.slice_ref(parsed.0))
}

/// The `tag` parameter of From or To, sharing the message's buffer.
fn tag(message: &Message, header: StdHeader) -> Result<Option<Text>, DialogError> {
    let raw = message
        .headers
        .get(header)
        .ok_or(crate::headers::HeaderError::missing(header))?;
    let addr = NameAddr::parse(raw).map_err(|e| e.in_header(header))?;
    Ok(addr
        .tag()
        .filter(|t| !t.is_empty())
        .map(|t| raw.slice_ref(t)))
}

/// The live dialogs of a UA (or of both legs of a B2BUA), keyed by [`DialogId`], so that an
/// in-dialog request finds its dialog or gets 481 (§12.2.2).
#[derive(Clone, Debug, Default)]
pub struct Dialogs {
    map: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    /// No dialogs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dialog; returns the one it replaces (same id), if any.
    pub fn insert(&mut self, dialog: Dialog) -> Option<Dialog> {
        self.map.insert(dialog.id().clone(), dialog)
    }

    /// The dialog with this id, whatever its state.
    pub fn find(&self, id: &DialogId) -> Option<&Dialog> {
        self.map.get(id)
    }

    /// The dialog with this id, mutably.
    pub fn find_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.map.get_mut(id)
    }

    /// Removes a dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.map.remove(id)
    }

    /// The live dialog an incoming request belongs to (§12.2.2): a request with a To tag whose
    /// id matches nothing, or a terminated dialog, is [`DialogError::UnknownDialog`] (481).
    /// A request without a To tag is outside any dialog; this returns `UnknownDialog` for it
    /// too, so check [`DialogId::as_uas`] first when such requests are expected.
    pub fn for_request(&mut self, request: &Message) -> Result<&mut Dialog, DialogError> {
        let id = DialogId::as_uas(request)?.ok_or(DialogError::UnknownDialog)?;
        self.live(&id)
    }

    /// The live dialog a response to one of our in-dialog requests belongs to.
    pub fn for_response(&mut self, response: &Message) -> Result<&mut Dialog, DialogError> {
        let id = DialogId::as_uac(response)?;
        self.live(&id)
    }

    fn live(&mut self, id: &DialogId) -> Result<&mut Dialog, DialogError> {
        self.map
            .get_mut(id)
            .filter(|d| d.state() != DialogState::Terminated)
            .ok_or(DialogError::UnknownDialog)
    }

    /// Drops every terminated dialog; returns their ids.
    pub fn remove_terminated(&mut self) -> Vec<DialogId> {
        let gone: Vec<DialogId> = self
            .map
            .iter()
            .filter(|(_, d)| d.state() == DialogState::Terminated)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.map.remove(id);
        }
        gone
    }

    /// Every dialog, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Dialog> {
        self.map.values()
    }

    /// How many dialogs there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::test_util::{invite, msg, response_to};

    #[test]
    fn ids_from_both_perspectives_swap_the_tags() {
        let req = msg("BYE sip:alice@192.0.2.1 SIP/2.0
Call-ID: c1@example.com
From: <sip:bob@example.com>;tag=bob
To: <sip:alice@example.com>;tag=alice
CSeq: 2 BYE

");
        let uas = DialogId::as_uas(&req).unwrap().unwrap();
        assert_eq!(uas, DialogId::new("c1@example.com", "alice", "bob"));
        let uac = DialogId::as_uac(&req).unwrap();
        assert_eq!(uac, DialogId::new("c1@example.com", "bob", "alice"));
        assert_eq!(
            (uac.call_id(), uac.local_tag(), uac.remote_tag()),
            ("c1@example.com", "bob", "alice")
        );
    }

    #[test]
    fn no_to_tag_means_no_dialog_and_a_2543_peer_has_an_empty_tag() {
        let inv = invite();
        assert_eq!(DialogId::as_uas(&inv).unwrap(), None);
        let trying = response_to(&inv, 100, None);
        assert_eq!(DialogId::as_uac(&trying).unwrap().remote_tag(), "");
        let mut no_from_tag = inv.clone();
        no_from_tag
            .headers
            .set(StdHeader::From, "<sip:alice@atlanta.example.com>");
        assert_eq!(
            DialogId::as_uac(&no_from_tag),
            Err(DialogError::MissingTag(StdHeader::From))
        );
        let mut no_call_id = inv;
        no_call_id.headers.remove(StdHeader::CallId);
        assert!(matches!(
            DialogId::as_uac(&no_call_id),
            Err(DialogError::BadHeader(e)) if e.header() == Some(StdHeader::CallId)
        ));
    }

    #[test]
    fn unknown_and_terminated_dialogs_are_481() {
        let inv = invite();
        let ok = response_to(&inv, 200, Some("bobtag"));
        let mut dialogs = Dialogs::new();
        dialogs.insert(Dialog::uac(&inv, &ok).unwrap());
        assert_eq!(dialogs.len(), 1);
        assert!(dialogs.for_response(&ok).is_ok());
        let stray = response_to(&inv, 200, Some("other"));
        assert_eq!(
            dialogs.for_response(&stray).err(),
            Some(DialogError::UnknownDialog)
        );
        let id = DialogId::as_uac(&ok).unwrap();
        dialogs.find_mut(&id).unwrap().terminate();
        assert_eq!(
            dialogs.for_response(&ok).err().map(|e| e.status().as_u16()),
            Some(481)
        );
        assert_eq!(dialogs.remove_terminated(), vec![id]);
        assert!(dialogs.is_empty());
    }
}
