//! What a dialog learns from the messages of its transactions: requests received (§12.2.2,
//! §14.2), responses received (§12.2.1.2, §13.2.2.4), responses sent (§13.3.1.4) and timeouts.

use super::create::{contact_uri, contact_value, route_set};
use super::{Dialog, DialogError, DialogId, DialogState, Role, is_target_refresh};
use crate::headers::{CSeq, HeaderError};
use crate::message::{Message, Method, StdHeader};

impl Dialog {
    /// A request received in this dialog (§12.2.2). `Ok` means the dialog accepts it and the TU
    /// goes on; `Err` is the response to send ([`DialogError::status`]), and the dialog is left as
    /// it was.
    ///
    /// - Another dialog's id, or a terminated dialog: [`DialogError::UnknownDialog`] (481).
    /// - A CSeq lower than the remote CSeq: [`DialogError::CSeqOutOfOrder`] (500). ACK and CANCEL
    ///   carry the INVITE's number and neither are checked nor move it.
    /// - A re-INVITE, or an UPDATE with a body (an offer, RFC 3311 §5.2), while ours is pending:
    ///   [`DialogError::Glare`] (491); while the peer's previous one is unanswered (or, for the
    ///   UAS, while the initial INVITE is): [`DialogError::InviteInProgress`] (500). Otherwise it
    ///   becomes the incoming pending request until [`Dialog::on_response_sent`] sees its final
    ///   response.
    /// - A target refresh (re-INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER) with a Contact replaces
    ///   the remote target.
    /// - BYE terminates the dialog.
    pub fn on_request(&mut self, request: &Message) -> Result<(), DialogError> {
        let method = request.method().ok_or(DialogError::WrongKind {
            expected: "request",
        })?;
        if DialogId::as_uas(request)?.as_ref() != Some(&self.id)
            || self.state == DialogState::Terminated
        {
            return Err(DialogError::UnknownDialog);
        }
        let cseq = request.require::<CSeq>()?;
        if cseq.method != *method {
            return Err(HeaderError::syntax("method differs from the request line")
                .in_header(StdHeader::CSeq)
                .into());
        }
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if let Some(last) = self.remote_seq
            && cseq.seq < last
        {
            return Err(DialogError::CSeqOutOfOrder {
                received: cseq.seq,
                last,
            });
        }
        let offer = match method {
            Method::Invite => true,
            Method::Update => !request.body.is_empty(),
            _ => false,
        };
        if offer {
            let early_invite = self.state == DialogState::Early && *method == Method::Invite;
            if self.outgoing.is_some() || (early_invite && self.role == Role::Uac) {
                return Err(DialogError::Glare);
            }
            if self.incoming.is_some() || (early_invite && self.role == Role::Uas) {
                return Err(DialogError::InviteInProgress);
            }
        }
        let target = if is_target_refresh(method) {
            contact_uri(request)?
        } else {
            None
        };
        // Accepted: nothing below can fail.
        self.remote_seq = Some(cseq.seq);
        if offer {
            self.incoming = Some(cseq.seq);
        }
        if let Some(uri) = target {
            self.remote_target = uri;
        }
        if *method == Method::Bye {
            self.terminate();
        }
        Ok(())
    }

    /// A response received to a request we sent in this dialog, or to the INVITE that created it.
    ///
    /// - 1xx to the initial INVITE: a Contact updates the remote target of the early dialog.
    /// - 2xx to the initial INVITE: the dialog is confirmed, the route set recomputed from this
    ///   response's Record-Route and the remote target taken from its Contact (§13.2.2.4,
    ///   §12.2.1.2). Without a Contact the dialog is confirmed all the same and
    ///   [`DialogError::MissingContact`] reports it.
    /// - 2xx to a target refresh: its Contact replaces the remote target (§12.2.1.2).
    /// - Non-2xx final to the initial INVITE: the early dialog ends (§12.3). 481 or 408 to any
    ///   request: the dialog ends (§12.2.1.2).
    /// - Any final response to our pending INVITE/UPDATE clears it; after a 491 the TU retries
    ///   after [`Dialog::retry_after`] (§14.1).
    ///
    /// A response for another dialog is [`DialogError::UnknownDialog`].
    pub fn on_response(&mut self, response: &Message) -> Result<(), DialogError> {
        let code = response.status().ok_or(DialogError::WrongKind {
            expected: "response",
        })?;
        if DialogId::as_uac(response)? != self.id {
            return Err(DialogError::UnknownDialog);
        }
        let cseq = response.require::<CSeq>()?;
        let initial_invite = self.state == DialogState::Early && cseq.method == Method::Invite;
        let contact = if code.is_success() || (initial_invite && code.is_provisional()) {
            contact_uri(response)?
        } else {
            None
        };
        let routes = if initial_invite && code.is_success() {
            Some(route_set(response, true)?)
        } else {
            None
        };
        // Everything fallible is done.
        if code.is_final() && self.outgoing == Some(cseq.seq) {
            self.outgoing = None;
        }
        if self.state == DialogState::Terminated {
            return Ok(());
        }
        match code.class() {
            1 => {
                if let (true, Some(uri)) = (initial_invite, contact) {
                    self.remote_target = uri;
                }
            }
            2 => {
                if let Some(routes) = routes {
                    self.state = DialogState::Confirmed;
                    self.route_set = routes;
                    match contact {
                        Some(uri) => self.remote_target = uri,
                        None => return Err(DialogError::MissingContact),
                    }
                } else if let (true, Some(uri)) = (is_target_refresh(&cseq.method), contact) {
                    self.remote_target = uri;
                }
            }
            _ => {
                if initial_invite || matches!(code.as_u16(), 408 | 481) {
                    self.terminate();
                }
            }
        }
        Ok(())
    }

    /// A response we are sending to a request received in this dialog, or to the INVITE that
    /// created it (UAS side).
    ///
    /// - To the initial INVITE: a 2xx confirms the early dialog, a non-2xx final ends it (§12.3).
    ///   Start a [`super::TwoXxRetransmitter`] for the 2xx (§13.3.1.4).
    /// - A final response to the peer's pending INVITE/UPDATE clears it (§14.2).
    /// - A 2xx to a target refresh with a Contact changes the Contact we advertise.
    pub fn on_response_sent(&mut self, response: &Message) -> Result<(), DialogError> {
        let code = response.status().ok_or(DialogError::WrongKind {
            expected: "response",
        })?;
        if DialogId::as_uas(response)?.as_ref() != Some(&self.id) {
            return Err(DialogError::UnknownDialog);
        }
        let cseq = response.require::<CSeq>()?;
        let contact = if code.is_success() && is_target_refresh(&cseq.method) {
            contact_value(response)?
        } else {
            None
        };
        if code.is_final() && self.incoming == Some(cseq.seq) {
            self.incoming = None;
        }
        if self.state == DialogState::Terminated {
            return Ok(());
        }
        if self.state == DialogState::Early && cseq.method == Method::Invite {
            if code.is_success() {
                self.state = DialogState::Confirmed;
            } else if code.is_final() {
                self.terminate();
            }
        }
        if let Some(c) = contact {
            self.local_contact = Some(c);
        }
        Ok(())
    }

    /// A request we sent in this dialog timed out (its client transaction reported a timeout):
    /// like a 408, this ends the dialog (§12.2.1.2).
    pub fn on_request_timeout(&mut self) {
        self.terminate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::test_util::{invite, msg, response_to};

    /// Bob's confirmed dialog (UAS) for Alice's INVITE, CSeq 314 from Alice.
    fn bob() -> Dialog {
        let inv = invite();
        Dialog::uas(&inv, &response_to(&inv, 200, Some("bobtag"))).unwrap()
    }

    /// A request from Alice in Bob's dialog.
    fn from_alice(method: &str, seq: u32, extra: &str) -> Message {
        msg(&format!(
            "{method} sip:bob@192.0.2.2 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{seq}
From: Alice <sip:alice@atlanta.example.com>;tag=alicetag
To: Bob <sip:bob@biloxi.example.com>;tag=bobtag
Call-ID: call-1@192.0.2.1
CSeq: {seq} {method}
{extra}
"
        ))
    }

    #[test]
    fn cseq_must_not_go_backwards() {
        let mut d = bob();
        d.on_request(&from_alice("INFO", 315, "")).unwrap();
        assert_eq!(d.remote_cseq(), Some(315));
        let err = d.on_request(&from_alice("INFO", 300, "")).unwrap_err();
        assert_eq!(
            err,
            DialogError::CSeqOutOfOrder {
                received: 300,
                last: 315
            }
        );
        assert_eq!(err.status().as_u16(), 500);
        assert_eq!(
            d.remote_cseq(),
            Some(315),
            "a refused request changes nothing"
        );
        // ACK carries the INVITE's (older) number and is fine.
        d.on_request(&from_alice("ACK", 314, "")).unwrap();
        // Gaps are allowed (§12.2.2: lower is the only error).
        d.on_request(&from_alice("INFO", 400, "")).unwrap();
        assert_eq!(d.remote_cseq(), Some(400));
    }

    #[test]
    fn a_uac_learns_the_remote_cseq_from_the_first_request() {
        let inv = invite();
        let mut alice = Dialog::uac(&inv, &response_to(&inv, 200, Some("bobtag"))).unwrap();
        assert_eq!(alice.remote_cseq(), None);
        let mut bye = msg("BYE sip:alice@192.0.2.1 SIP/2.0
From: Bob <sip:bob@biloxi.example.com>;tag=bobtag
To: Alice <sip:alice@atlanta.example.com>;tag=alicetag
Call-ID: call-1@192.0.2.1
CSeq: 9000 BYE

");
        alice.on_request(&bye).unwrap();
        assert_eq!(alice.remote_cseq(), Some(9000));
        assert_eq!(alice.state(), DialogState::Terminated);
        bye.headers.set(StdHeader::CSeq, "9001 BYE");
        assert_eq!(alice.on_request(&bye), Err(DialogError::UnknownDialog));
    }

    #[test]
    fn other_dialogs_and_malformed_requests() {
        let mut d = bob();
        let mut other = from_alice("INFO", 315, "");
        other
            .headers
            .set(StdHeader::To, "<sip:bob@biloxi.example.com>;tag=nope");
        assert_eq!(d.on_request(&other), Err(DialogError::UnknownDialog));
        let mut no_cseq = from_alice("INFO", 315, "");
        no_cseq.headers.remove(StdHeader::CSeq);
        assert_eq!(d.on_request(&no_cseq).unwrap_err().status().as_u16(), 400);
        let mut mismatch = from_alice("INFO", 315, "");
        mismatch.headers.set(StdHeader::CSeq, "315 BYE");
        assert_eq!(d.on_request(&mismatch).unwrap_err().status().as_u16(), 400);
        assert_eq!(d.state(), DialogState::Confirmed);
        assert!(matches!(
            d.on_request(&response_to(&invite(), 200, Some("bobtag"))),
            Err(DialogError::WrongKind {
                expected: "request"
            })
        ));
    }

    #[test]
    fn re_invite_refreshes_the_target_and_is_pending_until_answered() {
        let mut d = bob();
        let reinvite = from_alice("INVITE", 315, "Contact: <sip:alice@198.51.100.9>\n");
        d.on_request(&reinvite).unwrap();
        assert_eq!(d.remote_target(), "sip:alice@198.51.100.9");
        assert_eq!(d.incoming_pending(), Some(315));
        // A second re-INVITE before we answered the first: 500 (§14.2).
        let second = from_alice("INVITE", 316, "");
        assert_eq!(d.on_request(&second), Err(DialogError::InviteInProgress));
        // We cannot send one either (§14.1).
        assert_eq!(
            d.request(Method::Invite).err(),
            Some(DialogError::RequestPending)
        );
        let mut ok = response_to(&reinvite, 200, None);
        ok.headers.set(StdHeader::Contact, "<sip:bob@203.0.113.5>");
        d.on_response_sent(&ok).unwrap();
        assert_eq!(d.incoming_pending(), None);
        assert_eq!(d.local_contact(), Some("<sip:bob@203.0.113.5>"));
        d.on_request(&from_alice("ACK", 315, "")).unwrap();
        // A bad Contact is refused before anything changes.
        let bad = from_alice("UPDATE", 317, "Contact: *\n");
        assert_eq!(d.on_request(&bad).unwrap_err().status().as_u16(), 400);
        assert_eq!(d.remote_cseq(), Some(315));
    }

    #[test]
    fn glare_both_ways_and_update_without_offer() {
        let mut d = bob();
        let ours = d.request(Method::Invite).unwrap();
        assert_eq!(d.outgoing_pending(), Some(1));
        let theirs = from_alice("INVITE", 315, "");
        assert_eq!(d.on_request(&theirs), Err(DialogError::Glare));
        assert_eq!(DialogError::Glare.status().as_u16(), 491);
        // An UPDATE without a body carries no offer (RFC 3311 §5.2) and passes.
        d.on_request(&from_alice("UPDATE", 316, "")).unwrap();
        // Our 491 arrives.
        let pending = msg(&format!(
            "SIP/2.0 491 Request Pending
From: {}
To: {}
Call-ID: call-1@192.0.2.1
CSeq: 1 INVITE

",
            ours.headers.get(StdHeader::From).unwrap(),
            ours.headers.get(StdHeader::To).unwrap(),
        ));
        d.on_response(&pending).unwrap();
        assert_eq!(d.outgoing_pending(), None);
        assert_eq!(
            d.state(),
            DialogState::Confirmed,
            "491 does not end the dialog"
        );
    }

    #[test]
    fn the_uas_refuses_an_invite_on_its_early_dialog() {
        let inv = invite();
        let mut d = Dialog::uas(&inv, &response_to(&inv, 180, Some("bobtag"))).unwrap();
        assert_eq!(
            d.on_request(&from_alice("INVITE", 315, "")),
            Err(DialogError::InviteInProgress)
        );
        // PRACK and UPDATE are fine in an early dialog.
        d.on_request(&from_alice("PRACK", 315, "")).unwrap();
        d.on_response_sent(&response_to(&inv, 200, Some("bobtag")))
            .unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        let mut d = Dialog::uas(&inv, &response_to(&inv, 180, Some("bobtag"))).unwrap();
        d.on_response_sent(&response_to(&inv, 486, Some("bobtag")))
            .unwrap();
        assert_eq!(d.state(), DialogState::Terminated);
        assert_eq!(
            d.on_response_sent(&response_to(&inv, 200, Some("other"))),
            Err(DialogError::UnknownDialog)
        );
    }

    #[test]
    fn uac_early_dialog_is_confirmed_by_the_2xx_with_a_new_route_set() {
        let inv = invite();
        let mut ringing = response_to(&inv, 180, Some("bobtag"));
        ringing.headers.remove(StdHeader::Contact);
        let mut d = Dialog::uac(&inv, &ringing).unwrap();
        let mut progress = response_to(&inv, 183, Some("bobtag"));
        progress
            .headers
            .set(StdHeader::Contact, "<sip:bob@192.0.2.77>");
        d.on_response(&progress).unwrap();
        assert_eq!(d.remote_target(), "sip:bob@192.0.2.77");
        let mut ok = response_to(&inv, 200, Some("bobtag"));
        ok.headers.remove(StdHeader::RecordRoute);
        ok.headers
            .push(StdHeader::RecordRoute, "<sip:only.example.com;lr>");
        d.on_response(&ok).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.remote_target(), "sip:bob@192.0.2.2");
        assert_eq!(
            d.route_set().collect::<Vec<_>>(),
            ["sip:only.example.com;lr"]
        );

        // A 2xx without Contact confirms but is reported.
        let mut d = Dialog::uac(&inv, &ringing).unwrap();
        let mut bare = response_to(&inv, 200, Some("bobtag"));
        bare.headers.remove(StdHeader::Contact);
        assert_eq!(d.on_response(&bare), Err(DialogError::MissingContact));
        assert_eq!(d.state(), DialogState::Confirmed);
    }

    #[test]
    fn failures_end_early_dialogs_and_481_408_end_any() {
        let inv = invite();
        let mut d = Dialog::uac(&inv, &response_to(&inv, 180, Some("bobtag"))).unwrap();
        d.on_response(&response_to(&inv, 486, Some("bobtag")))
            .unwrap();
        assert_eq!(d.state(), DialogState::Terminated);

        for code in [481, 408] {
            let mut d = Dialog::uac(&inv, &response_to(&inv, 200, Some("bobtag"))).unwrap();
            let info = d.request(Method::Info).unwrap();
            d.on_response(&response_to(&info, code, None)).unwrap();
            assert_eq!(d.state(), DialogState::Terminated, "{code}");
        }
        // Other failures of in-dialog requests leave the dialog alone.
        let mut d = Dialog::uac(&inv, &response_to(&inv, 200, Some("bobtag"))).unwrap();
        let info = d.request(Method::Info).unwrap();
        d.on_response(&response_to(&info, 415, None)).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        d.on_request_timeout();
        assert_eq!(d.state(), DialogState::Terminated);
    }

    #[test]
    fn a_2xx_to_a_re_invite_refreshes_the_target() {
        let inv = invite();
        let mut d = Dialog::uac(&inv, &response_to(&inv, 200, Some("bobtag"))).unwrap();
        let reinvite = d.request(Method::Invite).unwrap();
        let mut ok = response_to(&reinvite, 200, None);
        ok.headers.set(StdHeader::Contact, "<sip:bob@203.0.113.20>");
        d.on_response(&ok).unwrap();
        assert_eq!(d.remote_target(), "sip:bob@203.0.113.20");
        assert_eq!(d.outgoing_pending(), None);
        // An INFO's 2xx is no target refresh.
        let info = d.request(Method::Info).unwrap();
        let mut ok = response_to(&info, 200, None);
        ok.headers.set(StdHeader::Contact, "<sip:bob@203.0.113.99>");
        d.on_response(&ok).unwrap();
        assert_eq!(d.remote_target(), "sip:bob@203.0.113.20");
    }
}
