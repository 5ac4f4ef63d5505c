//! Creating a dialog (§12.1): from the UAC's request and the response it received
//! (§12.1.2), or from the UAS's request and the response it sends (§12.1.1).

use super::{Dialog, DialogError, DialogId, DialogState, Party, Role, RouteEntry};
use crate::headers::{CSeq, CallIdHeader, Contact, From, HeaderError, NameAddr, RecordRoute, To};
use crate::message::{Message, Method, StatusCode, StdHeader, Text};
use crate::uri::{Scheme, Uri};

/// The state a dialog-creating response leads to (§12.1): 101–199 to INVITE → early,
/// 2xx to INVITE, SUBSCRIBE (RFC 6665 §4.1.2.1) or REFER (RFC 3515) → confirmed.
fn creating_state(method: &Method, code: StatusCode) -> Result<DialogState, DialogError> {
    match (method, code.as_u16()) {
        (Method::Invite, 101..=199) => Ok(DialogState::Early),
        (Method::Invite | Method::Subscribe | Method::Refer, 200..=299) => {
            Ok(DialogState::Confirmed)
        }
        _ => Err(DialogError::NotDialogCreating),
    }
}

/// The first Contact's URI, validated; `None` when there is no Contact.
pub(super) fn contact_uri(message: &Message) -> Result<Option<Text>, DialogError> {
    match message.typed::<Contact>()? {
        None => Ok(None),
        Some(Contact::Any) => Err(HeaderError::syntax("'*' outside REGISTER")
            .in_header(StdHeader::Contact)
            .into()),
        Some(Contact::Addr(a)) => {
            a.uri().map_err(|e| e.in_header(StdHeader::Contact))?;
            Ok(Some(Text::from(a.uri)))
        }
    }
}

/// The first Contact as a header value (our own Contact, repeated in target refreshes).
pub(super) fn contact_value(message: &Message) -> Result<Option<Text>, DialogError> {
    Ok(match message.typed::<Contact>()? {
        Some(Contact::Addr(a)) => Some(Text::from(a.to_string())),
        _ => None,
    })
}

/// The route set from Record-Route (§12.1.1: as received for the UAS; §12.1.2: reversed for
/// the UAC).
pub(super) fn route_set(message: &Message, reverse: bool) -> Result<Vec<RouteEntry>, DialogError> {
    let mut set = message
        .typed_all::<RecordRoute>()
        .map(|rr| {
            let rr = rr?;
            let uri = rr.uri().map_err(|e| e.in_header(StdHeader::RecordRoute))?;
            Ok(RouteEntry {
                uri: Text::from(rr.uri),
                loose: uri.params.get("lr").is_some(),
            })
        })
        .collect::<Result<Vec<_>, DialogError>>()?;
    if reverse {
        set.reverse();
    }
    Ok(set)
}

/// Whether the Request-URI is a SIPS URI (the secure flag, §12.1.1/§12.1.2; the transport
/// layer refuses a `sips:` request that did not arrive over TLS).
fn is_sips(request: &Message) -> Result<bool, DialogError> {
    let uri = request.request_uri().ok_or(DialogError::WrongKind {
        expected: "request",
    })?;
    Ok(Uri::parse(uri)?.scheme == Scheme::Sips)
}

/// The `tag` of a From or To value, if any.
fn tag_of<'a>(addr: &NameAddr<'a>) -> Option<&'a str> {
    addr.tag().filter(|t| !t.is_empty())
}

impl Dialog {
    /// The UAC's dialog (§12.1.2), from the request we sent and a response to it that creates a
    /// dialog: 101–199 with a To tag (early) or 2xx (confirmed) to INVITE, 2xx to SUBSCRIBE or
    /// REFER.
    ///
    /// The route set is the response's Record-Route reversed; the remote target is its Contact.
    /// A 2xx must have a Contact ([`DialogError::MissingContact`]); a 1xx without one — common
    /// in the field — leaves the Request-URI as the remote target until the 2xx. A 2xx without
    /// a To tag (RFC 2543) gives an empty remote tag.
    pub fn uac(request: &Message, response: &Message) -> Result<Self, DialogError> {
        let (Some(method), Some(code)) = (request.method(), response.status()) else {
            return Err(DialogError::NotDialogCreating);
        };
        let state = creating_state(method, code)?;
        let cseq = request.require::<CSeq>()?;
        let from = request.require::<From>()?;
        let local_tag = tag_of(&from).ok_or(DialogError::MissingTag(StdHeader::From))?;
        let to = response.require::<To>()?;
        let remote_tag = tag_of(&to);
        if remote_tag.is_none() && state == DialogState::Early {
            return Err(DialogError::MissingTag(StdHeader::To));
        }
        let call_id = request.require::<CallIdHeader>()?;
        let remote_target = match (contact_uri(response)?, state) {
            (Some(uri), _) => uri,
            (None, DialogState::Early) => request
                .request_uri()
                .cloned()
                .ok_or(DialogError::NotDialogCreating)?,
            (None, _) => return Err(DialogError::MissingContact),
        };
        Ok(Self {
            id: DialogId::new(call_id.0, local_tag, remote_tag.unwrap_or("")),
            role: Role::Uac,
            state,
            local: Party::of(&from),
            remote: Party::of(&request.require::<To>()?.0),
            remote_target,
            route_set: route_set(response, true)?,
            local_seq: Some(cseq.seq),
            remote_seq: None,
            secure: is_sips(request)?,
            owns_call_id: true,
            local_contact: contact_value(request)?,
            outgoing: None,
            incoming: None,
        })
    }

    /// The UAS's dialog (§12.1.1), from the request we received and the 101–199 or 2xx we are
    /// sending for it, which carries our To tag (and should carry our Contact).
    ///
    /// The route set is the request's Record-Route in order; the remote target is its Contact,
    /// which a dialog-creating request must have ([`DialogError::MissingContact`] → 400). A
    /// request without a From tag (RFC 2543) gives an empty remote tag.
    pub fn uas(request: &Message, response: &Message) -> Result<Self, DialogError> {
        let (Some(method), Some(code)) = (request.method(), response.status()) else {
            return Err(DialogError::NotDialogCreating);
        };
        let state = creating_state(method, code)?;
        let cseq = request.require::<CSeq>()?;
        let from = request.require::<From>()?;
        let to = response.require::<To>()?;
        let local_tag = tag_of(&to).ok_or(DialogError::MissingTag(StdHeader::To))?;
        let call_id = request.require::<CallIdHeader>()?;
        let remote_target = contact_uri(request)?.ok_or(DialogError::MissingContact)?;
        Ok(Self {
            id: DialogId::new(call_id.0, local_tag, tag_of(&from).unwrap_or("")),
            role: Role::Uas,
            state,
            local: Party::of(&request.require::<To>()?.0),
            remote: Party::of(&from),
            remote_target,
            route_set: route_set(request, false)?,
            local_seq: None,
            remote_seq: Some(cseq.seq),
            secure: is_sips(request)?,
            owns_call_id: false,
            local_contact: contact_value(response)?,
            outgoing: None,
            incoming: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::copy_record_route;
    use crate::dialog::test_util::{invite, msg, response_to};

    #[test]
    fn uac_dialog_from_180_is_early_with_the_route_set_reversed() {
        let inv = invite();
        let ringing = response_to(&inv, 180, Some("bobtag"));
        let d = Dialog::uac(&inv, &ringing).unwrap();
        assert_eq!(d.state(), DialogState::Early);
        assert_eq!(d.role(), Role::Uac);
        assert_eq!(
            d.id(),
            &DialogId::new("call-1@192.0.2.1", "alicetag", "bobtag")
        );
        assert_eq!(d.local_uri(), "sip:alice@atlanta.example.com");
        assert_eq!(d.remote_uri(), "sip:bob@biloxi.example.com");
        assert_eq!(d.remote_target(), "sip:bob@192.0.2.2");
        assert_eq!(
            d.route_set().collect::<Vec<_>>(),
            ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
        );
        assert_eq!((d.local_cseq(), d.remote_cseq()), (Some(314), None));
        assert_eq!(d.next_local_cseq(), Ok(315));
        assert!(d.owns_call_id());
        assert!(!d.is_secure());
        assert_eq!(d.local_contact(), Some("<sip:alice@192.0.2.1>"));
    }

    #[test]
    fn uas_dialog_keeps_the_route_set_in_order() {
        let inv = invite();
        let ok = response_to(&inv, 200, Some("bobtag"));
        let d = Dialog::uas(&inv, &ok).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.role(), Role::Uas);
        assert_eq!(
            d.id(),
            &DialogId::new("call-1@192.0.2.1", "bobtag", "alicetag")
        );
        assert_eq!(d.local_uri(), "sip:bob@biloxi.example.com");
        assert_eq!(d.remote_target(), "sip:alice@192.0.2.1");
        assert_eq!(
            d.route_set().collect::<Vec<_>>(),
            ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
        );
        assert_eq!((d.local_cseq(), d.remote_cseq()), (None, Some(314)));
        assert_eq!(d.next_local_cseq(), Ok(1));
        assert!(!d.owns_call_id());
        assert_eq!(d.local_contact(), Some("<sip:bob@192.0.2.2>"));
    }

    #[test]
    fn what_does_not_create_a_dialog() {
        let inv = invite();
        // 100 Trying, a final failure, a 1xx without a To tag.
        for (code, tag) in [(100, Some("t")), (486, Some("t"))] {
            assert_eq!(
                Dialog::uac(&inv, &response_to(&inv, code, tag)).err(),
                Some(DialogError::NotDialogCreating),
                "{code}"
            );
        }
        assert_eq!(
            Dialog::uac(&inv, &response_to(&inv, 180, None)).err(),
            Some(DialogError::MissingTag(StdHeader::To))
        );
        // A 2xx without a To tag: an RFC 2543 peer, empty remote tag.
        let d = Dialog::uac(&inv, &response_to(&inv, 200, None)).unwrap();
        assert_eq!(d.id().remote_tag(), "");
        // The UAS must tag its response.
        assert_eq!(
            Dialog::uas(&inv, &response_to(&inv, 180, None)).err(),
            Some(DialogError::MissingTag(StdHeader::To))
        );
        // OPTIONS does not create dialogs.
        let mut options = inv.clone();
        options.start = crate::message::StartLine::Request {
            method: Method::Options,
            uri: Text::from("sip:bob@biloxi.example.com"),
        };
        assert_eq!(
            Dialog::uas(&options, &response_to(&inv, 200, Some("t"))).err(),
            Some(DialogError::NotDialogCreating)
        );
    }

    #[test]
    fn contacts_are_required_where_the_rfc_says() {
        let mut inv = invite();
        inv.headers.remove(StdHeader::Contact);
        let ok = response_to(&inv, 200, Some("b"));
        let err = Dialog::uas(&inv, &ok).unwrap_err();
        assert_eq!(
            (err.clone(), err.status().as_u16()),
            (DialogError::MissingContact, 400)
        );

        let inv = invite();
        let mut ok = response_to(&inv, 200, Some("b"));
        ok.headers.remove(StdHeader::Contact);
        assert_eq!(
            Dialog::uac(&inv, &ok).err(),
            Some(DialogError::MissingContact)
        );
        // A 180 without Contact: the Request-URI stands in until the 2xx.
        let mut ringing = response_to(&inv, 180, Some("b"));
        ringing.headers.remove(StdHeader::Contact);
        let d = Dialog::uac(&inv, &ringing).unwrap();
        assert_eq!(d.remote_target(), "sip:bob@biloxi.example.com");

        let mut star = response_to(&inv, 200, Some("b"));
        star.headers.set(StdHeader::Contact, "*");
        assert!(matches!(
            Dialog::uac(&inv, &star),
            Err(DialogError::BadHeader(e)) if e.header() == Some(StdHeader::Contact)
        ));
    }

    #[test]
    fn sips_request_uri_sets_the_secure_flag_and_bad_record_route_is_400() {
        let inv = msg("INVITE sips:bob@biloxi.example.com SIP/2.0
Record-Route: <sips:p1.example.com;lr>, <sips:p2.example.com>
From: <sips:alice@atlanta.example.com>;tag=a
To: <sips:bob@biloxi.example.com>
Call-ID: s1
CSeq: 1 INVITE
Contact: <sips:alice@192.0.2.1>

");
        let ok = response_to(&inv, 200, Some("b"));
        let d = Dialog::uas(&inv, &ok).unwrap();
        assert!(d.is_secure());
        assert_eq!(
            d.route_set().collect::<Vec<_>>(),
            ["sips:p1.example.com;lr", "sips:p2.example.com"]
        );

        let mut bad = invite();
        bad.headers.push(StdHeader::RecordRoute, "<nocolon>");
        let err = Dialog::uas(&bad, &response_to(&bad, 200, Some("b"))).unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        assert!(err.to_string().contains("Record-Route"), "{err}");
    }

    #[test]
    fn record_route_is_copied_in_order() {
        let inv = invite();
        let mut ok = Message::response(StatusCode::new(200).unwrap());
        copy_record_route(&inv, &mut ok);
        assert_eq!(
            ok.headers
                .get_all(StdHeader::RecordRoute)
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
            ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
    }

    #[test]
    fn subscribe_and_refer_2xx_create_dialogs() {
        let sub = msg("SUBSCRIBE sip:bob@biloxi.example.com SIP/2.0
From: <sip:alice@atlanta.example.com>;tag=a
To: <sip:bob@biloxi.example.com>
Call-ID: sub-1
CSeq: 7 SUBSCRIBE
Event: presence
Contact: <sip:alice@192.0.2.1>

");
        let d = Dialog::uac(&sub, &response_to(&sub, 202, Some("b"))).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.local_cseq(), Some(7));
    }
}
