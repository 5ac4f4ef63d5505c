//! [`DialogError`]: what the dialog layer refuses, and the response a UAS answers with.

use std::time::Duration;

use super::DialogState;
use crate::headers::HeaderError;
use crate::ident::RandomSource;
use crate::message::{Method, StatusCode};

/// Why the dialog layer refused a message or a command; each variant names the culprit.
///
/// Peer misbehaviour maps to the status RFC 3261 prescribes ([`DialogError::status`]); misuse of
/// this API has its own variants (the TU has a bug; `status` then says 500).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog layer needs is missing or malformed → 400.
    #[error("{0}")]
    BadHeader(#[from] HeaderError),
    /// A message that must carry a tag does not (the From tag of a request, the To tag of a
    /// 1xx that would create an early dialog, §12.1) → 400.
    #[error("Missing Tag: {}", .0.as_str())]
    MissingTag(crate::message::StdHeader),
    /// No Contact where §12.1.1/§12.1.2 require one (a dialog-creating request, a 2xx) → 400.
    #[error("Missing Header: Contact")]
    MissingContact,
    /// The dialog id of an in-dialog request matches no live dialog → 481 (§12.2.2).
    #[error("Call/Transaction Does Not Exist")]
    UnknownDialog,
    /// The request's CSeq is lower than the last one received on the dialog → 500 (§12.2.2).
    #[error("CSeq Out Of Order: {received} after {last}")]
    CSeqOutOfOrder {
        /// The sequence number of the request.
        received: u32,
        /// The remote sequence number of the dialog.
        last: u32,
    },
    /// A re-INVITE (or an UPDATE with an offer) arrived while ours is pending → 491 Request
    /// Pending (§14.2, RFC 3311 §5.2). The peer retries after [`Dialog::retry_after`].
    ///
    /// [`Dialog::retry_after`]: super::Dialog::retry_after
    #[error("Request Pending")]
    Glare,
    /// A re-INVITE (or an UPDATE with an offer) arrived before we answered the previous one →
    /// 500 with a Retry-After of 0–10 s (§14.2, RFC 3311 §5.2; see [`DialogError::retry_after`]).
    #[error("Previous INVITE Still In Progress")]
    InviteInProgress,
    /// The response or request cannot create a dialog: not a 101–299 answer to INVITE, nor a 2xx
    /// to SUBSCRIBE or REFER (§12.1). API misuse.
    #[error("not a dialog-creating message")]
    NotDialogCreating,
    /// A request where a response was expected, or the reverse. API misuse.
    #[error("expected a {expected}")]
    WrongKind {
        /// `"request"` or `"response"`.
        expected: &'static str,
    },
    /// `ack_for` was given something other than a 2xx to an INVITE (§13.2.2.4). API misuse.
    #[error("ACK is built for a 2xx to INVITE only")]
    NotInviteSuccess,
    /// ACK and CANCEL are not built by [`Dialog::request`]: ACK for a 2xx by
    /// [`Dialog::ack_for`], CANCEL by the transaction layer from the INVITE (§9.1). API misuse.
    ///
    /// [`Dialog::request`]: super::Dialog::request
    /// [`Dialog::ack_for`]: super::Dialog::ack_for
    #[error("{0} is not sent with Dialog::request")]
    WrongMethod(Method),
    /// A request the dialog's state forbids: any request on a terminated dialog, a BYE from the
    /// callee on an early dialog (§15), a re-INVITE before the dialog is confirmed (§14.1).
    /// API misuse.
    #[error("{method} not allowed in state {state:?}")]
    InvalidState {
        /// The method refused.
        method: Method,
        /// The dialog's state.
        state: DialogState,
    },
    /// A re-INVITE or UPDATE while an INVITE or UPDATE is pending in either direction: §14.1
    /// forbids it (wait for the final response, or for [`Dialog::retry_after`] after a 491).
    /// API misuse.
    ///
    /// [`Dialog::retry_after`]: super::Dialog::retry_after
    #[error("an INVITE or UPDATE is already pending on this dialog")]
    RequestPending,
    /// The local sequence number would reach 2^31 (§8.1.1.5). API misuse (or a very long call).
    #[error("CSeq space exhausted")]
    CSeqExhausted,
}

impl DialogError {
    /// The status code a UAS answers the offending request with.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            Self::BadHeader(_) | Self::MissingTag(_) | Self::MissingContact => 400,
            Self::UnknownDialog => 481,
            Self::Glare => 491,
            Self::CSeqOutOfOrder { .. } | Self::InviteInProgress => 500,
            // Our own bug: the peer is not at fault, but it gets an answer.
            Self::NotDialogCreating
            | Self::WrongKind { .. }
            | Self::NotInviteSuccess
            | Self::WrongMethod(_)
            | Self::InvalidState { .. }
            | Self::RequestPending
            | Self::CSeqExhausted => 500,
        };
        StatusCode::new(code).unwrap_or_else(|| unreachable!("constant in range"))
    }

    /// The Retry-After (whole seconds) to put on the response, where the RFC asks for one:
    /// 0–10 s, uniformly chosen, for [`DialogError::InviteInProgress`] (§14.2).
    pub fn retry_after(&self, rng: &mut dyn RandomSource) -> Option<Duration> {
        match self {
            Self::InviteInProgress => Some(Duration::from_secs(u64::from(super::glare::uniform(
                rng, 10,
            )))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::test_util::Seeded;
    use crate::message::StdHeader;

    #[test]
    fn statuses_follow_the_rfc() {
        let cases = [
            (
                DialogError::from(HeaderError::missing(StdHeader::CSeq)),
                400,
            ),
            (DialogError::MissingTag(StdHeader::From), 400),
            (DialogError::MissingContact, 400),
            (DialogError::UnknownDialog, 481),
            (
                DialogError::CSeqOutOfOrder {
                    received: 1,
                    last: 2,
                },
                500,
            ),
            (DialogError::Glare, 491),
            (DialogError::InviteInProgress, 500),
            (DialogError::RequestPending, 500),
        ];
        for (err, code) in cases {
            assert_eq!(err.status().as_u16(), code, "{err}");
        }
        assert_eq!(
            DialogError::from(HeaderError::missing(StdHeader::CSeq)).to_string(),
            "Missing Header: CSeq"
        );
        assert_eq!(
            DialogError::MissingTag(StdHeader::From).to_string(),
            "Missing Tag: From"
        );
    }

    #[test]
    fn only_invite_in_progress_carries_a_retry_after_of_at_most_ten_seconds() {
        let mut rng = Seeded(3);
        for _ in 0..200 {
            let d = DialogError::InviteInProgress.retry_after(&mut rng).unwrap();
            assert!(d <= Duration::from_secs(10));
        }
        assert_eq!(DialogError::Glare.retry_after(&mut rng), None);
    }
}
