//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3, §9.2).
//!
//! Keys are built from slices of the received message ([`Text`] shares its buffer), so matching
//! allocates nothing but the key's own small struct.

use std::hash::{Hash, Hasher};

use crate::headers::{CSeq, CallIdHeader, From, HeaderError, Params, To, TypedHeader, Via};
use crate::ident::Branch;
use crate::message::{Message, Method, StdHeader, Text, split_list};

/// The top Via of a request, read once: the typed view, and the parameters the transaction and
/// transport layers ask about, found in one pass over them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TopVia<'a> {
    /// The typed view.
    pub(crate) via: Via<'a>,
    /// The value as written (for RFC 2543 matching).
    pub(crate) raw: &'a str,
    /// `branch`.
    pub(crate) branch: Option<&'a str>,
    /// Whether `rport` is present (RFC 3581).
    pub(crate) rport: bool,
    /// The name of a valueless `rport`, as a slice of `raw`: where the endpoint writes the port.
    pub(crate) rport_flag: Option<&'a str>,
    /// Whether `received` is present already.
    pub(crate) received: bool,
    /// `maddr`.
    pub(crate) maddr: Option<&'a str>,
}

impl<'a> TopVia<'a> {
    /// The top Via of `message`; an error naming Via when it is missing or malformed.
    pub(crate) fn of(message: &'a Message) -> Result<Self, HeaderError> {
        let header = message
            .headers
            .get(StdHeader::Via)
            .ok_or(HeaderError::missing(StdHeader::Via))?;
        Self::parse(first_value(header).ok_or(HeaderError::missing(StdHeader::Via))?)
    }

    /// One Via value.
    pub(crate) fn parse(raw: &'a str) -> Result<Self, HeaderError> {
        let via = Via::parse(raw).map_err(|e| e.in_header(StdHeader::Via))?;
        let mut top = Self {
            via,
            raw,
            branch: None,
            rport: false,
            rport_flag: None,
            received: false,
            maddr: None,
        };
        each_param(via.params, |name, value| {
            if name.eq_ignore_ascii_case("branch") {
                top.branch = top.branch.or(value);
            } else if name.eq_ignore_ascii_case("rport") {
                top.rport_flag = (!top.rport && value.is_none()).then_some(name);
                top.rport = true;
            } else if name.eq_ignore_ascii_case("received") {
                top.received = true;
            } else if name.eq_ignore_ascii_case("maddr") {
                top.maddr = top.maddr.or(value);
            }
        });
        Ok(top)
    }
}

/// The key of a client transaction (§17.1.3): the branch of the top Via and the CSeq method
/// (a CANCEL shares its INVITE's branch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientKey {
    pub(crate) branch: Text,
    pub(crate) method: Method,
}

impl ClientKey {
    /// The key a response matches: `Ok(None)` when its top Via has no branch (it cannot be
    /// ours), an error naming the header when its Via or CSeq cannot be read.
    ///
    /// Only the branch is read, not the whole Via: a response that matches a key carries the
    /// Via we wrote, and one that does not is stray whatever else its Via says.
    pub(crate) fn of_response(response: &Message) -> Result<Option<Self>, HeaderError> {
        let header = response
            .headers
            .get(StdHeader::Via)
            .ok_or(HeaderError::missing(StdHeader::Via))?;
        let method = response.require::<CSeq>()?.method;
        Ok(response_branch(header).map(|b| Self {
            branch: header.slice_ref(b),
            method,
        }))
    }
}

/// The first value of a Via header line: up to the first comma, unless a quoted string (in a
/// generic parameter) could hide one, when the full list splitter decides.
fn first_value(header: &str) -> Option<&str> {
    if header.contains('"') {
        return split_list(header).next();
    }
    match header.split(',').next()?.trim_matches([' ', '\t']) {
        "" => split_list(header).next(),
        top => Some(top),
    }
}

/// The branch of the top Via value in a Via header line. We write `;branch=` ourselves, so it
/// is looked for first; other spellings (whitespace, case) go through the parameter parser.
fn response_branch(header: &str) -> Option<&str> {
    let top = first_value(header).unwrap_or("");
    let bytes = top.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr::memchr(b';', &bytes[from..]) {
        let at = from + i;
        if bytes[at..].starts_with(b";branch=") {
            let value = &top[at + 8..];
            let end = value
                .find([';', ',', ' ', '\t', '\r', '\n'])
                .unwrap_or(value.len());
            return Some(&value[..end]).filter(|b| !b.is_empty());
        }
        from = at + 1;
    }
    // The sent-protocol and sent-by hold no ';': parameters start at the first one.
    top.split_once(';')
        .and_then(|(_, params)| Params::new(params).get("branch").flatten())
}

/// Calls `f` with each parameter of a Via (name and value, trimmed). Without quoted strings
/// (the usual case) the text is split directly; otherwise [`Params`] does it.
fn each_param<'a>(params: Params<'a>, mut f: impl FnMut(&'a str, Option<&'a str>)) {
    let raw = params.as_str();
    if raw.contains('"') {
        params.iter().for_each(|(n, v)| f(n, v));
        return;
    }
    let trim = |s: &'a str| s.trim_ascii();
    for p in raw.split(';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (trim(n), Some(trim(v))),
            None => (trim(p), None),
        };
        if !name.is_empty() {
            f(name, value);
        }
    }
}

// Hashing the branch alone (its random part makes it unique) keeps lookups to one pass of the
// hasher; equality still compares every field.
impl Hash for ClientKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.branch.as_bytes());
    }
}

impl Hash for ServerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Self::Branch { branch, .. } => state.write(branch.as_bytes()),
            Self::Legacy(k) => {
                state.write(k.call_id.as_bytes());
                state.write_u32(k.cseq);
            }
        }
    }
}

/// The key of a server transaction (§17.2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// tolerated) and builds its keys. `via` is its top Via, read by the caller (who needs it for
    /// routing too). The error names the culprit: it becomes the reason phrase of a 400.
    pub(crate) fn of_request(request: &Message, via: &TopVia<'_>) -> Result<Self, HeaderError> {
        let Some(method) = request.method() else {
            return Err(HeaderError::syntax("not a request"));
        };
        let text = |name: StdHeader| request.headers.get(name).cloned().unwrap_or_default();
        let via_header = text(StdHeader::Via);
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
        let (key, cancels) = match via.branch.filter(|b| Branch::is_rfc3261(b)) {
            Some(branch) => {
                let key = |method| ServerKey::Branch {
                    branch: via_header.slice_ref(branch),
                    host: via_header.slice_ref(via.via.host_raw),
                    port: via.via.port,
                    method,
                };
                let cancels = (*method == Method::Cancel).then(|| key(Method::Invite));
                (key(matched_method(method)), cancels)
            }
            None => {
                let top_via = via_header.slice_ref(via.raw);
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

    fn ids(request: &Message) -> Result<RequestIds, HeaderError> {
        RequestIds::of_request(request, &TopVia::of(request)?)
    }

    fn invite_like(method: &str, branch: &str, to: &str) -> Message {
        request(&format!(
            "{method} sip:bob@b SIP/2.0\r\nVia: SIP/2.0/UDP a:5060;branch={branch}\r\n\
             From: <sip:alice@a>;tag=f\r\nTo: {to}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n"
        ))
    }

    #[test]
    fn ack_and_cancel_match_their_invite_by_branch() {
        let invite = ids(&invite_like("INVITE", "z9hG4bKx", "<sip:bob@b>")).unwrap();
        let ack = ids(&invite_like("ACK", "z9hG4bKx", "<sip:bob@b>;tag=t")).unwrap();
        let cancel = ids(&invite_like("CANCEL", "z9hG4bKx", "<sip:bob@b>")).unwrap();
        assert_eq!(ack.key, invite.key);
        assert_ne!(cancel.key, invite.key);
        assert_eq!(cancel.cancels.as_ref(), Some(&invite.key));
        let other = ids(&invite_like("INVITE", "z9hG4bKy", "<sip:bob@b>")).unwrap();
        assert_ne!(other.key, invite.key);
    }

    #[test]
    fn rfc2543_requests_match_by_their_identity() {
        let invite = ids(&invite_like("INVITE", "1", "<sip:bob@b>")).unwrap();
        assert!(matches!(invite.key, ServerKey::Legacy(_)));
        let ack = ids(&invite_like("ACK", "1", "<sip:bob@b>;tag=t")).unwrap();
        assert_eq!(ack.key, invite.key);
        let cancel = ids(&invite_like("CANCEL", "1", "<sip:bob@b>")).unwrap();
        assert_eq!(cancel.cancels.as_ref(), Some(&invite.key));
        let bye1 = ids(&invite_like("BYE", "1", "<sip:bob@b>;tag=t")).unwrap();
        let bye2 = ids(&invite_like("BYE", "1", "<sip:bob@b>;tag=u")).unwrap();
        assert_ne!(bye1.key, bye2.key);
    }

    #[test]
    fn response_branches_are_found_however_written() {
        assert_eq!(
            response_branch("SIP/2.0/UDP a:1;branch=z9hG4bKx;rport=5"),
            Some("z9hG4bKx")
        );
        assert_eq!(
            response_branch("SIP/2.0/UDP a;branch=z9hG4bKy"),
            Some("z9hG4bKy")
        );
        assert_eq!(
            response_branch("SIP/2.0/UDP a ; BRANCH = z9hG4bKz ;rport"),
            Some("z9hG4bKz")
        );
        assert_eq!(response_branch("SIP/2.0/UDP a;rport"), None);
        assert_eq!(
            response_branch("SIP/2.0/UDP a;rport, SIP/2.0/UDP b;branch=z9hG4bKb"),
            None
        );
        assert_eq!(response_branch("SIP/2.0/UDP a;branch="), None);
    }

    #[test]
    fn culprits_are_named() {
        let err = |text: &str| ids(&request(text)).unwrap_err().to_string();
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
