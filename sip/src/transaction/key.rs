//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3, §9.2).
//!
//! Keys are built from slices of the received message ([`Text`] shares its buffer), so matching
//! allocates nothing but the key's own small struct.

use crate::headers::{CSeq, CallIdHeader, From, HeaderError, To, Via};
use crate::ident::Branch;
use crate::message::{Message, Method, StdHeader, Text, split_list};

/// The key of a client transaction (§17.1.3): the branch of the top Via and the CSeq method
/// (a CANCEL shares its INVITE's branch).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub(crate) branch: Text,
    pub(crate) method: Method,
}

impl ClientKey {
    /// The key a response matches: `Ok(None)` when its top Via has no branch (it cannot be
    /// ours), an error naming the header when its Via or CSeq cannot be read.
    pub(crate) fn of_response(response: &Message) -> Result<Option<Self>, HeaderError> {
        let via = response.require::<Via>()?;
        let method = response.require::<CSeq>()?.method;
        let header = response
            .headers
            .get(StdHeader::Via)
            .cloned()
            .unwrap_or_default();
        Ok(via.branch().map(|b| Self {
            branch: header.slice_ref(b),
            method,
        }))
    }
}

/// The key of a server transaction (§17.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    /// An RFC 3261 branch (with the magic cookie), the sent-by of the top Via and the method
    /// (ACK counted as INVITE).
    Branch {
        branch: Text,
        host: Text,
        port: Option<u16>,
        method: Method,
    },
    /// RFC 2543 peers: no usable branch, so the request's identity is its Request-URI, tags,
    /// Call-ID, CSeq and top Via.
    Legacy(Box<LegacyKey>),
}

/// The RFC 2543 identity of a request (§17.2.3, last paragraphs).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct LegacyKey {
    request_uri: Text,
    from_tag: Option<Text>,
    /// Left out (`None`) for INVITE and the ACK and CANCEL matched against it: the ACK carries
    /// the To tag of the response, not of the INVITE (§17.2.3), and RFC 2543 INVITEs carry none.
    to_tag: Option<Text>,
    call_id: Text,
    cseq: u32,
    method: Method,
    top_via: Text,
}

/// What the endpoint needs from a request: the checks of §8.2 that every element makes before
/// anything else (mandatory headers present and readable, CSeq method equal to the request
/// method), and the keys it is matched by.
#[derive(Debug)]
pub(crate) struct RequestIds {
    /// The transaction this request belongs to: its own, or for an ACK its INVITE's.
    pub(crate) key: ServerKey,
    /// For a CANCEL, the INVITE transaction it cancels (§9.2).
    pub(crate) cancels: Option<ServerKey>,
    /// The To tag, if any.
    pub(crate) to_tag: Option<Text>,
}

impl RequestIds {
    /// Checks the request's mandatory headers (Via, From, To, Call-ID, CSeq; Max-Forwards is
    /// tolerated) and builds its keys. The error names the culprit: it becomes the reason phrase
    /// of a 400.
    pub(crate) fn of_request(request: &Message) -> Result<Self, HeaderError> {
        let Some(method) = request.method() else {
            return Err(HeaderError::syntax("not a request"));
        };
        let text = |name: StdHeader| request.headers.get(name).cloned().unwrap_or_default();
        let via_header = text(StdHeader::Via);
        let via = request.require::<Via>()?;
        let top_via = via_header.slice_ref(split_list(&via_header).next().unwrap_or(""));
        let from_header = text(StdHeader::From);
        let from_tag = request
            .require::<From>()?
            .tag()
            .map(|t| from_header.slice_ref(t));
        let to_header = text(StdHeader::To);
        let to_tag = request
            .require::<To>()?
            .tag()
            .map(|t| to_header.slice_ref(t));
        let call_id_header = text(StdHeader::CallId);
        let call_id = call_id_header.slice_ref(request.require::<CallIdHeader>()?.0);
        let cseq = request.require::<CSeq>()?;
        if cseq.method != *method {
            return Err(
                HeaderError::syntax("method does not match the request").in_header(StdHeader::CSeq)
            );
        }

        let matched_method = |m: &Method| match m {
            Method::Ack => Method::Invite,
            other => other.clone(),
        };
        let (key, cancels) = match via.branch().filter(|b| Branch::is_rfc3261(b)) {
            Some(branch) => {
                let key = |method| ServerKey::Branch {
                    branch: via_header.slice_ref(branch),
                    host: via_header.slice_ref(via.host_raw),
                    port: via.port,
                    method,
                };
                let cancels = (*method == Method::Cancel).then(|| key(Method::Invite));
                (key(matched_method(method)), cancels)
            }
            None => {
                let key = |method: Method, to_tag: Option<Text>| {
                    ServerKey::Legacy(Box::new(LegacyKey {
                        request_uri: request.request_uri().cloned().unwrap_or_default(),
                        from_tag: from_tag.clone(),
                        to_tag,
                        call_id: call_id.clone(),
                        cseq: cseq.seq,
                        method,
                        top_via: top_via.clone(),
                    }))
                };
                match method {
                    Method::Invite | Method::Ack => (key(Method::Invite, None), None),
                    Method::Cancel => (
                        key(Method::Cancel, to_tag.clone()),
                        Some(key(Method::Invite, None)),
                    ),
                    other => (key(other.clone(), to_tag.clone()), None),
                }
            }
        };
        Ok(Self {
            key,
            cancels,
            to_tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::Limits;

    fn request(text: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default()).unwrap()
    }

    fn invite_like(method: &str, branch: &str, to: &str) -> Message {
        request(&format!(
            "{method} sip:bob@b SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch={branch}\r\n\
             From: <sip:alice@a>;tag=f\r\nTo: {to}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n"
        ))
    }

    #[test]
    fn ack_and_cancel_match_their_invite_by_branch() {
        let invite =
            RequestIds::of_request(&invite_like("INVITE", "z9hG4bKx", "<sip:bob@b>")).unwrap();
        let ack =
            RequestIds::of_request(&invite_like("ACK", "z9hG4bKx", "<sip:bob@b>;tag=t")).unwrap();
        let cancel =
            RequestIds::of_request(&invite_like("CANCEL", "z9hG4bKx", "<sip:bob@b>")).unwrap();
        assert_eq!(ack.key, invite.key);
        assert_ne!(cancel.key, invite.key);
        assert_eq!(cancel.cancels.as_ref(), Some(&invite.key));
        let other =
            RequestIds::of_request(&invite_like("INVITE", "z9hG4bKy", "<sip:bob@b>")).unwrap();
        assert_ne!(other.key, invite.key);
    }

    #[test]
    fn rfc2543_requests_match_by_their_identity() {
        let invite = RequestIds::of_request(&invite_like("INVITE", "1", "<sip:bob@b>")).unwrap();
        assert!(matches!(invite.key, ServerKey::Legacy(_)));
        let ack = RequestIds::of_request(&invite_like("ACK", "1", "<sip:bob@b>;tag=t")).unwrap();
        assert_eq!(ack.key, invite.key);
        let cancel = RequestIds::of_request(&invite_like("CANCEL", "1", "<sip:bob@b>")).unwrap();
        assert_eq!(cancel.cancels.as_ref(), Some(&invite.key));
        let bye1 = RequestIds::of_request(&invite_like("BYE", "1", "<sip:bob@b>;tag=t")).unwrap();
        let bye2 = RequestIds::of_request(&invite_like("BYE", "1", "<sip:bob@b>;tag=u")).unwrap();
        assert_ne!(bye1.key, bye2.key);
    }

    #[test]
    fn culprits_are_named() {
        let err = |text: &str| {
            RequestIds::of_request(&request(text))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(
                "OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
            ),
            "Missing Header: To"
        );
        assert_eq!(
            err(
                "OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
            ),
            "Bad Header: CSeq (method does not match the request)"
        );
        assert_eq!(
            err(
                "OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nFrom: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 IN VITE\r\n\r\n"
            ),
            "Bad Header: CSeq (bad method)"
        );
    }
}
