//! Requests within a dialog (§12.2.1.1) and the ACK for a 2xx (§13.2.2.4).

use super::{Dialog, DialogError, DialogId, DialogState, Role, is_target_refresh};
use crate::headers::CSeq;
use crate::message::{Message, Method, StdHeader, Text};
use crate::uri::Uri;

/// Max-Forwards on requests we originate (§8.1.1.6).
const MAX_FORWARDS: &str = "70";

impl Dialog {
    /// A request within the dialog (§12.2.1.1): Request-URI and Route from the remote target and
    /// the route set, From/To with the tags, the Call-ID, the next CSeq, Max-Forwards, our
    /// Contact on target refreshes, and `Content-Length: 0` ([`Message::set_body`] replaces it).
    /// The transaction layer adds the Via.
    ///
    /// The local CSeq advances. An INVITE or UPDATE becomes the dialog's pending offer until its
    /// final response ([`Dialog::on_response`]), so that a crossing re-INVITE is refused with 491
    /// (§14.1); a BYE terminates the dialog at once (§15.1.1).
    ///
    /// Refused: ACK and CANCEL ([`DialogError::WrongMethod`]: use [`Dialog::ack_for`], and the
    /// transaction layer's CANCEL); anything on a terminated dialog, a BYE from the callee on an
    /// early dialog (§15), a re-INVITE on an early dialog ([`DialogError::InvalidState`]); an
    /// INVITE or UPDATE while one is pending either way ([`DialogError::RequestPending`]).
    pub fn request(&mut self, method: Method) -> Result<Message, DialogError> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(DialogError::WrongMethod(method));
        }
        let refused = match (&method, self.state) {
            (_, DialogState::Terminated) => true,
            // §15: "the callee's UA … MUST NOT send a BYE on early dialogs".
            (Method::Bye, DialogState::Early) => self.role == Role::Uas,
            // §14.1: no new INVITE while the initial one is still in progress.
            (Method::Invite, DialogState::Early) => true,
            _ => false,
        };
        if refused {
            return Err(DialogError::InvalidState {
                method,
                state: self.state,
            });
        }
        let offer = matches!(method, Method::Invite | Method::Update);
        if offer && (self.outgoing.is_some() || self.incoming.is_some()) {
            return Err(DialogError::RequestPending);
        }
        let seq = self.next_local_cseq()?;
        let msg = self.build(method.clone(), seq);
        self.local_seq = Some(seq);
        if offer {
            self.outgoing = Some(seq);
        }
        if method == Method::Bye {
            self.terminate();
        }
        Ok(msg)
    }

    /// The ACK for a 2xx to an INVITE of this dialog — the initial one or a re-INVITE (§13.2.2.4):
    /// built like any in-dialog request, but with the INVITE's CSeq number and no Contact. The
    /// local CSeq does not move. Call it again for each retransmission of the 2xx.
    ///
    /// For the initial INVITE, pass the 2xx to [`Dialog::on_response`] (or
    /// [`super::DialogSet::on_response`]) first: it recomputes the route set. If the INVITE
    /// carried credentials, the TU copies them onto the ACK (§22.1).
    pub fn ack_for(&self, response: &Message) -> Result<Message, DialogError> {
        let code = response.status().ok_or(DialogError::WrongKind {
            expected: "response",
        })?;
        let cseq = response.require::<CSeq>()?;
        if !code.is_success() || cseq.method != Method::Invite {
            return Err(DialogError::NotInviteSuccess);
        }
        if DialogId::as_uac(response)? != self.id {
            return Err(DialogError::UnknownDialog);
        }
        Ok(self.build(Method::Ack, cseq.seq))
    }

    fn build(&self, method: Method, seq: u32) -> Message {
        let (uri, routes) = self.request_target();
        let contact = is_target_refresh(&method)
            .then_some(self.local_contact.as_ref())
            .flatten();
        let cseq = CSeq { seq, method };
        let mut m = Message::request(cseq.method.clone(), uri);
        for route in routes {
            m.headers.push(StdHeader::Route, route);
        }
        m.headers
            .push(StdHeader::MaxForwards, Text::from_static(MAX_FORWARDS));
        m.headers
            .push(StdHeader::From, self.local.header(self.id.local_tag()));
        m.headers
            .push(StdHeader::To, self.remote.header(self.id.remote_tag()));
        m.headers
            .push(StdHeader::CallId, Text::from(self.id.call_id()));
        m.headers
            .push(StdHeader::CSeq, Text::from(cseq.to_string()));
        if let Some(c) = contact {
            m.headers.push(StdHeader::Contact, c.clone());
        }
        m.headers
            .push(StdHeader::ContentLength, Text::from_static("0"));
        m
    }

    /// The Request-URI and the Route values (§12.2.1.1).
    ///
    /// - No route set: the remote target, no Route.
    /// - The first route is a loose router (`lr`): the remote target, and the whole route set.
    /// - Otherwise (a strict router, RFC 2543): the first route becomes the Request-URI, the
    ///   rest of the route set and then the remote target become the Route.
    fn request_target(&self) -> (Text, Vec<Text>) {
        let angle = |uri: &str| Text::from(format!("<{uri}>"));
        match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if first.loose => (
                self.remote_target.clone(),
                self.route_set.iter().map(|r| angle(&r.uri)).collect(),
            ),
            Some(first) => {
                let mut routes: Vec<Text> =
                    self.route_set[1..].iter().map(|r| angle(&r.uri)).collect();
                routes.push(angle(&self.remote_target));
                (strip_for_request_uri(&first.uri), routes)
            }
        }
    }
}

/// A route URI made fit for the Request-URI: URI headers (`?…`) are not allowed there
/// (§19.1.1, Table 1). The `method` parameter is not allowed either, but no router puts one in
/// a Record-Route, so it is left alone.
fn strip_for_request_uri(uri: &Text) -> Text {
    match Uri::parse(uri) {
        Ok(Uri {
            headers: Some(h), ..
        }) => {
            let keep = uri.len() - h.len() - 1;
            Text::from(&uri[..keep])
        }
        // Validated when the route set was built; anything else is kept as it is.
        _ => uri.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::test_util::{invite, msg, response_to};
    use crate::headers::{From, Route, To};

    fn confirmed_uac() -> Dialog {
        let inv = invite();
        Dialog::uac(&inv, &response_to(&inv, 200, Some("bobtag"))).unwrap()
    }

    fn routes(m: &Message) -> Vec<String> {
        m.typed_all::<Route>()
            .map(|r| r.unwrap().uri.to_string())
            .collect()
    }

    #[test]
    fn loose_routing_keeps_the_remote_target_and_lists_the_route_set() {
        let mut d = confirmed_uac();
        let bye = d.request(Method::Bye).unwrap();
        assert_eq!(bye.method(), Some(&Method::Bye));
        assert_eq!(bye.request_uri().unwrap(), "sip:bob@192.0.2.2");
        assert_eq!(
            routes(&bye),
            ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
        );
        let from = bye.require::<From>().unwrap();
        assert_eq!(
            (from.uri, from.tag()),
            ("sip:alice@atlanta.example.com", Some("alicetag"))
        );
        assert_eq!(from.display, Some("Alice"));
        let to = bye.require::<To>().unwrap();
        assert_eq!(
            (to.uri, to.tag()),
            ("sip:bob@biloxi.example.com", Some("bobtag"))
        );
        assert_eq!(
            bye.require::<CSeq>().unwrap(),
            CSeq {
                seq: 315,
                method: Method::Bye
            }
        );
        assert_eq!(
            bye.headers.get(StdHeader::CallId).unwrap(),
            "call-1@192.0.2.1"
        );
        assert_eq!(bye.headers.get(StdHeader::MaxForwards).unwrap(), "70");
        assert!(
            !bye.headers.contains(StdHeader::Contact),
            "BYE is no target refresh"
        );
        assert!(
            !bye.headers.contains(StdHeader::Via),
            "the transaction adds the Via"
        );
        assert_eq!(d.state(), DialogState::Terminated);
        // The message prints and parses back.
        let back = Message::parse(bye.to_bytes(), &Default::default()).unwrap();
        assert_eq!(back, bye);
    }

    #[test]
    fn strict_router_goes_into_the_request_uri_and_the_target_to_the_last_route() {
        let inv = msg("INVITE sip:bob@biloxi.example.com SIP/2.0
Record-Route: <sip:strict.example.com?X-Foo=1>, <sip:loose.example.com;lr>
From: <sip:alice@atlanta.example.com>;tag=a
To: <sip:bob@biloxi.example.com>
Call-ID: strict-1
CSeq: 1 INVITE
Contact: <sip:alice@192.0.2.1>

");
        let mut d = Dialog::uas(&inv, &response_to(&inv, 200, Some("b"))).unwrap();
        let info = d.request(Method::Info).unwrap();
        assert_eq!(info.request_uri().unwrap(), "sip:strict.example.com");
        assert_eq!(
            routes(&info),
            ["sip:loose.example.com;lr", "sip:alice@192.0.2.1"]
        );
        // The UAS's first request starts its CSeq space at 1.
        assert_eq!(info.require::<CSeq>().unwrap().seq, 1);
        assert_eq!(d.local_cseq(), Some(1));
    }

    #[test]
    fn no_route_set_no_route_header_and_2543_peers_get_no_to_tag() {
        let inv = msg("INVITE sip:bob@biloxi.example.com SIP/2.0
From: <sip:alice@atlanta.example.com>;tag=a
To: <sip:bob@biloxi.example.com>
Call-ID: direct-1
CSeq: 1 INVITE
Contact: <sip:alice@192.0.2.1>

");
        let mut d = Dialog::uac(&inv, &response_to(&inv, 200, None)).unwrap();
        let options = d.request(Method::Options).unwrap();
        assert!(!options.headers.contains(StdHeader::Route));
        assert_eq!(options.require::<To>().unwrap().tag(), None);
    }

    #[test]
    fn re_invite_carries_contact_and_becomes_the_pending_offer() {
        let mut d = confirmed_uac();
        let reinvite = d.request(Method::Invite).unwrap();
        assert_eq!(
            reinvite.headers.get(StdHeader::Contact).unwrap(),
            "<sip:alice@192.0.2.1>"
        );
        assert_eq!(d.outgoing_pending(), Some(315));
        assert_eq!(
            d.request(Method::Update).err(),
            Some(DialogError::RequestPending)
        );
        // Other requests go on meanwhile, each with the next number.
        let info = d.request(Method::Info).unwrap();
        assert_eq!(info.require::<CSeq>().unwrap().seq, 316);
        d.set_local_contact("<sip:alice@198.51.100.7>");
        d.outgoing = None;
        let update = d.request(Method::Update).unwrap();
        assert_eq!(
            update.headers.get(StdHeader::Contact).unwrap(),
            "<sip:alice@198.51.100.7>"
        );
    }

    #[test]
    fn requests_the_state_forbids() {
        let inv = invite();
        let mut early_uas = Dialog::uas(&inv, &response_to(&inv, 180, Some("b"))).unwrap();
        assert!(matches!(
            early_uas.request(Method::Bye),
            Err(DialogError::InvalidState {
                method: Method::Bye,
                state: DialogState::Early
            })
        ));
        let mut early_uac = Dialog::uac(&inv, &response_to(&inv, 180, Some("b"))).unwrap();
        assert!(matches!(
            early_uac.request(Method::Invite),
            Err(DialogError::InvalidState { .. })
        ));
        // The caller may BYE an early dialog (§15).
        assert!(early_uac.request(Method::Bye).is_ok());
        assert!(matches!(
            early_uac.request(Method::Info),
            Err(DialogError::InvalidState {
                state: DialogState::Terminated,
                ..
            })
        ));
        for m in [Method::Ack, Method::Cancel] {
            assert_eq!(
                confirmed_uac().request(m.clone()).err(),
                Some(DialogError::WrongMethod(m))
            );
        }
        let mut d = confirmed_uac();
        d.local_seq = Some((1 << 31) - 1);
        assert_eq!(
            d.request(Method::Info).err(),
            Some(DialogError::CSeqExhausted)
        );
    }

    #[test]
    fn ack_reuses_the_invite_number_and_the_route_set() {
        let inv = invite();
        let ok = response_to(&inv, 200, Some("bobtag"));
        let d = Dialog::uac(&inv, &ok).unwrap();
        let ack = d.ack_for(&ok).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.request_uri().unwrap(), "sip:bob@192.0.2.2");
        assert_eq!(
            ack.require::<CSeq>().unwrap(),
            CSeq {
                seq: 314,
                method: Method::Ack
            }
        );
        assert_eq!(routes(&ack).len(), 2);
        assert!(!ack.headers.contains(StdHeader::Contact));
        assert_eq!(d.local_cseq(), Some(314), "ACK does not advance the CSeq");
        // The same ACK again for a retransmitted 2xx.
        assert_eq!(d.ack_for(&ok).unwrap(), ack);

        assert_eq!(
            d.ack_for(&response_to(&inv, 486, Some("bobtag"))).err(),
            Some(DialogError::NotInviteSuccess)
        );
        assert_eq!(
            d.ack_for(&response_to(&inv, 200, Some("other"))).err(),
            Some(DialogError::UnknownDialog)
        );
        assert!(matches!(
            d.ack_for(&inv),
            Err(DialogError::WrongKind {
                expected: "response"
            })
        ));
    }
}
