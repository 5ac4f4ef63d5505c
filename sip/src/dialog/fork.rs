//! The dialogs one INVITE creates when a proxy forks it (§12.1.2, §13.2.2.4, RFC 6026).
//!
//! Each 1xx or 2xx with a new To tag comes from another UAS and creates another dialog. The
//! first 2xx is the call. A later 2xx from another fork confirms its own dialog, which the UAC
//! must ACK and then end with BYE (§13.2.2.4); [`DialogSet::to_bye`] lists those. Early dialogs
//! that never get a 2xx live until a final failure, or until the INVITE transaction ends 64*T1
//! after the first 2xx (RFC 6026 Timer M), when [`DialogSet::on_transaction_terminated`] ends them.
//!
//! ```text
//!   INVITE ──► 180 tag=a ──► Early(a)            dialogs: a(early)
//!          ──► 180 tag=b ──► Early(b)            dialogs: a(early) b(early)
//!          ──► 200 tag=b ──► Answered(b)         dialogs: a(early) b(confirmed) — ACK b
//!          ──► 200 tag=a ──► ExtraAnswer(a)      to_bye = [a] — ACK a, then BYE a
//!          ──► 200 tag=b ──► Retransmission(b)   re-ACK b
//! ```

use super::{Dialog, DialogError, DialogId, DialogState, Dialogs};
use crate::headers::CSeq;
use crate::message::{Message, Method};

/// What a response to the INVITE did to its dialogs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForkEvent {
    /// Nothing for the dialog layer: 100 Trying, a 1xx without a To tag, a 1xx after the end.
    Ignored,
    /// A 1xx with a new To tag: a new early dialog, now in the [`Dialogs`].
    Early(DialogId),
    /// Another 1xx on a known early dialog.
    Progress(DialogId),
    /// The first 2xx: this dialog is the call. ACK it ([`Dialog::ack_for`]).
    Answered(DialogId),
    /// A 2xx from another fork after the call was answered: ACK it, then BYE it (§13.2.2.4).
    ExtraAnswer(DialogId),
    /// A retransmission of a 2xx already seen: ACK it again (§13.2.2.4).
    Retransmission(DialogId),
    /// A final failure: these early dialogs ended and were removed from the [`Dialogs`] (§12.3).
    Failed(Vec<DialogId>),
}

/// The dialogs of one INVITE we sent, tracked across forks.
#[derive(Clone, Debug)]
pub struct DialogSet {
    invite: Message,
    cseq: u32,
    id: DialogId,
    forks: Vec<DialogId>,
    answered: Vec<DialogId>,
    done: bool,
}

impl DialogSet {
    /// Tracks the dialogs of `invite`, an INVITE we are sending (with our From tag).
    pub fn new(invite: Message) -> Result<Self, DialogError> {
        match invite.method() {
            Some(Method::Invite) => {}
            Some(other) => return Err(DialogError::WrongMethod(other.clone())),
            None => {
                return Err(DialogError::WrongKind {
                    expected: "request",
                });
            }
        }
        let cseq = invite.require::<CSeq>()?.seq;
        let id = DialogId::as_uac(&invite)?;
        Ok(Self {
            invite,
            cseq,
            id,
            forks: Vec::new(),
            answered: Vec::new(),
            done: false,
        })
    }

    /// The INVITE.
    pub fn invite(&self) -> &Message {
        &self.invite
    }

    /// Every dialog the INVITE created, in the order the responses came.
    pub fn forks(&self) -> &[DialogId] {
        &self.forks
    }

    /// The dialog of the first 2xx: the call.
    pub fn answered(&self) -> Option<&DialogId> {
        self.answered.first()
    }

    /// Whether the INVITE got a final failure or its transaction ended: no new dialogs.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A response to the INVITE (from the client transaction, or a 2xx retransmission the
    /// transaction passes up). Creates or updates the fork's dialog in `dialogs`.
    ///
    /// A response to another request is [`DialogError::UnknownDialog`]; a 1xx or 2xx that cannot
    /// create a dialog (a 2xx without Contact, a malformed Record-Route) is its error.
    pub fn on_response(
        &mut self,
        dialogs: &mut Dialogs,
        response: &Message,
    ) -> Result<ForkEvent, DialogError> {
        let code = response.status().ok_or(DialogError::WrongKind {
            expected: "response",
        })?;
        let cseq = response.require::<CSeq>()?;
        let id = DialogId::as_uac(response)?;
        if cseq.method != Method::Invite
            || cseq.seq != self.cseq
            || id.call_id() != self.id.call_id()
            || id.local_tag() != self.id.local_tag()
        {
            return Err(DialogError::UnknownDialog);
        }
        let known = self.forks.contains(&id);
        if code.is_provisional() {
            if code.as_u16() == 100 || id.remote_tag().is_empty() {
                return Ok(ForkEvent::Ignored);
            }
            if known {
                if let Some(d) = dialogs.find_mut(&id) {
                    d.on_response(response)?;
                }
                return Ok(ForkEvent::Progress(id));
            }
            if self.done {
                return Ok(ForkEvent::Ignored);
            }
            dialogs.insert(Dialog::uac(&self.invite, response)?);
            self.forks.push(id.clone());
            return Ok(ForkEvent::Early(id));
        }
        if code.is_success() {
            if self.answered.contains(&id) {
                return Ok(ForkEvent::Retransmission(id));
            }
            match dialogs.find_mut(&id) {
                Some(d) if known => d.on_response(response)?,
                _ => {
                    dialogs.insert(Dialog::uac(&self.invite, response)?);
                    if !known {
                        self.forks.push(id.clone());
                    }
                }
            }
            self.answered.push(id.clone());
            return Ok(if self.answered.len() == 1 {
                ForkEvent::Answered(id)
            } else {
                ForkEvent::ExtraAnswer(id)
            });
        }
        self.done = true;
        Ok(ForkEvent::Failed(self.end_early(dialogs)))
    }

    /// The INVITE client transaction ended (RFC 6026: 64*T1 after the first 2xx, or a timeout):
    /// the early dialogs that never got a 2xx end and leave `dialogs` (§13.2.2.4). Returns their
    /// ids.
    pub fn on_transaction_terminated(&mut self, dialogs: &mut Dialogs) -> Vec<DialogId> {
        self.done = true;
        self.end_early(dialogs)
    }

    /// Confirmed dialogs other than the call, still alive: ACK them (done on
    /// [`ForkEvent::ExtraAnswer`]) and send BYE (§13.2.2.4). Once the BYE is built with
    /// [`Dialog::request`] the dialog is terminated and leaves this list.
    pub fn to_bye(&self, dialogs: &Dialogs) -> Vec<DialogId> {
        self.answered
            .iter()
            .skip(1)
            .filter(|id| {
                dialogs
                    .find(id)
                    .is_some_and(|d| d.state() == DialogState::Confirmed)
            })
            .cloned()
            .collect()
    }

    fn end_early(&self, dialogs: &mut Dialogs) -> Vec<DialogId> {
        self.forks
            .iter()
            .filter(|id| !self.answered.contains(id))
            .filter(|id| dialogs.remove(id).is_some())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::test_util::{invite, response_to};
    use crate::message::StdHeader;

    /// Alice's INVITE as she sends it (no proxies' Via yet; the tests only need its headers).
    fn set() -> (DialogSet, Dialogs) {
        (DialogSet::new(invite()).unwrap(), Dialogs::new())
    }

    #[test]
    fn two_early_forks_then_a_2xx_from_one() {
        let (mut set, mut dialogs) = set();
        let inv = invite();
        let a = DialogId::new("call-1@192.0.2.1", "alicetag", "a");
        let b = DialogId::new("call-1@192.0.2.1", "alicetag", "b");
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 100, None)),
            Ok(ForkEvent::Ignored)
        );
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 180, Some("a"))),
            Ok(ForkEvent::Early(a.clone()))
        );
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 180, Some("b"))),
            Ok(ForkEvent::Early(b.clone()))
        );
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 183, Some("a"))),
            Ok(ForkEvent::Progress(a.clone()))
        );
        assert_eq!(dialogs.len(), 2);
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 200, Some("b"))),
            Ok(ForkEvent::Answered(b.clone()))
        );
        assert_eq!(set.answered(), Some(&b));
        assert_eq!(dialogs.find(&b).unwrap().state(), DialogState::Confirmed);
        assert_eq!(dialogs.find(&a).unwrap().state(), DialogState::Early);
        assert!(set.to_bye(&dialogs).is_empty());
        // The other fork answers too: ACK and BYE it.
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 200, Some("a"))),
            Ok(ForkEvent::ExtraAnswer(a.clone()))
        );
        assert_eq!(set.to_bye(&dialogs), std::slice::from_ref(&a));
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 200, Some("b"))),
            Ok(ForkEvent::Retransmission(b.clone()))
        );
        dialogs.find_mut(&a).unwrap().request(Method::Bye).unwrap();
        assert!(set.to_bye(&dialogs).is_empty());
        assert_eq!(set.forks(), [a, b]);
    }

    #[test]
    fn a_failure_ends_every_early_dialog() {
        let (mut set, mut dialogs) = set();
        let inv = invite();
        set.on_response(&mut dialogs, &response_to(&inv, 180, Some("a")))
            .unwrap();
        set.on_response(&mut dialogs, &response_to(&inv, 180, Some("b")))
            .unwrap();
        let Ok(ForkEvent::Failed(mut gone)) =
            set.on_response(&mut dialogs, &response_to(&inv, 486, Some("b")))
        else {
            panic!("a failure")
        };
        gone.sort_by(|x, y| x.remote_tag().cmp(y.remote_tag()));
        assert_eq!(
            gone.iter().map(|d| d.remote_tag()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(dialogs.is_empty() && set.is_done());
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 180, Some("c"))),
            Ok(ForkEvent::Ignored)
        );
    }

    #[test]
    fn early_forks_end_with_the_transaction_after_the_answer() {
        let (mut set, mut dialogs) = set();
        let inv = invite();
        set.on_response(&mut dialogs, &response_to(&inv, 180, Some("a")))
            .unwrap();
        // A 2xx with no 1xx before it creates its dialog directly.
        let c = DialogId::new("call-1@192.0.2.1", "alicetag", "c");
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&inv, 200, Some("c"))),
            Ok(ForkEvent::Answered(c.clone()))
        );
        let gone = set.on_transaction_terminated(&mut dialogs);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].remote_tag(), "a");
        assert_eq!(dialogs.len(), 1);
        assert!(dialogs.find(&c).is_some());
    }

    #[test]
    fn responses_to_other_requests_are_not_ours() {
        let (mut set, mut dialogs) = set();
        let mut other = invite();
        other.headers.set(StdHeader::CSeq, "315 INVITE");
        assert_eq!(
            set.on_response(&mut dialogs, &response_to(&other, 180, Some("a"))),
            Err(DialogError::UnknownDialog)
        );
        let mut bye = invite();
        bye.start = crate::message::StartLine::Request {
            method: Method::Bye,
            uri: "sip:x@y".into(),
        };
        assert!(matches!(
            DialogSet::new(bye),
            Err(DialogError::WrongMethod(Method::Bye))
        ));
    }
}
