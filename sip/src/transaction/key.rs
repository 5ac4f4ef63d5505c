//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3, §9.2).
//!
//! Keys are built from slices of the received message ([`Text`] shares its buffer), so matching
//! allocates nothing but the key's own small struct.

use std::hash::{Hash, Hasher};

use crate::headers::{CSeq, HeaderError, NameAddr, Params, TypedHeader, Via};
use crate::ident::Branch;
use crate::message::{Message, Method, StdHeader, Text, is_token_byte, split_list};
use crate::uri::{Host, split_host_port};

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

    /// One Via value. The common spelling (`SIP/2.0/UDP host:port;params`, no optional
    /// whitespace) is split directly; anything else goes through the [`Via`] parser. Requests
    /// reach this after `validate_request`, which parsed every Via already.
    pub(crate) fn parse(raw: &'a str) -> Result<Self, HeaderError> {
        let via = match canonical_via(raw) {
            Some(via) => via,
            None => Via::parse(raw).map_err(|e| e.in_header(StdHeader::Via))?,
        };
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
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            match name.as_bytes().first().map(u8::to_ascii_lowercase) {
                Some(b'b') if is("branch") => top.branch = top.branch.or(value),
                Some(b'r') if is("rport") => {
                    top.rport_flag = (!top.rport && value.is_none()).then_some(name);
                    top.rport = true;
                }
                Some(b'r') if is("received") => top.received = true,
                Some(b'm') if is("maddr") => top.maddr = top.maddr.or(value),
                _ => {}
            }
        });
        Ok(top)
    }
}

/// A Via value in its common spelling, split without the general parser; `None` for anything
/// else (whitespace around separators, a lower-case protocol, an odd host), which the parser
/// then reads.
fn canonical_via(raw: &str) -> Option<Via<'_>> {
    let rest = raw.strip_prefix("SIP/2.0/")?;
    let (transport, rest) = rest.split_once(' ')?;
    if transport.is_empty() || !transport.bytes().all(is_token_byte) {
        return None;
    }
    let (sent_by, params) = rest.split_once(';').unwrap_or((rest, ""));
    if sent_by.is_empty() || sent_by.contains([' ', '\t']) {
        return None;
    }
    let (host_raw, port) = split_host_port(sent_by).ok()?;
    Some(Via {
        transport,
        host: Host::parse(host_raw).ok()?,
        host_raw,
        port,
        params: Params::new(params),
    })
}

/// The `tag` parameter of a From or To value, found without parsing the whole name-addr: past a
/// quoted display name, the parameters follow the `>` of a name-addr, or the first `;` of an
/// addr-spec (which §20.10 forbids to hold a `;` of its own). A quoted string among the
/// parameters sends the value through the [`NameAddr`] parser.
pub(crate) fn tag_of(value: &str) -> Option<&str> {
    let mut rest = value.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut escaped = false;
        let end = quoted.bytes().position(|b| {
            let close = b == b'"' && !escaped;
            escaped = b == b'\\' && !escaped;
            close
        })?;
        rest = &quoted[end + 1..];
    }
    if rest.contains('"') {
        return NameAddr::parse(value).ok()?.tag();
    }
    let params = match rest.rfind('>') {
        Some(gt) => rest[gt + 1..].trim_start().strip_prefix(';')?,
        None => rest.split_once(';')?.1,
    };
    for param in params.split(';') {
        let (name, v) = param.split_once('=').unwrap_or((param, ""));
        if name.trim_ascii().eq_ignore_ascii_case("tag") {
            return Some(v.trim_ascii()).filter(|t| !t.is_empty());
        }
    }
    None
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
    let end = match memchr::memchr2(b',', b'"', header.as_bytes()) {
        Some(i) if header.as_bytes()[i] == b'"' => return split_list(header).next(),
        Some(i) => i,
        None => header.len(),
    };
    match header[..end].trim_ascii() {
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
    /// The keys of a request that passed [`crate::message::validate_request`] (mandatory
    /// headers present once and well formed, CSeq method equal to the request's); `via` is its
    /// top Via, read by the caller, who needs it for routing too. What validation already
    /// proved is not checked again: tags, Call-ID and the CSeq number are read straight from
    /// the raw values. A missing header is still an error naming it.
    pub(crate) fn of_request(request: &Message, via: &TopVia<'_>) -> Result<Self, HeaderError> {
        let Some(method) = request.method() else {
            return Err(HeaderError::syntax("not a request"));
        };
        let header = |name: StdHeader| {
            request
                .headers
                .get(name)
                .cloned()
                .ok_or(HeaderError::missing(name))
        };
        let via_header = header(StdHeader::Via)?;
        let from_header = header(StdHeader::From)?;
        let from_tag = tag_of(&from_header).map(|t| from_header.slice_ref(t));
        let to_header = header(StdHeader::To)?;
        let to_tag = tag_of(&to_header).map(|t| to_header.slice_ref(t));
        let call_id_header = header(StdHeader::CallId)?;
        let call_id = call_id_header.slice_ref(call_id_header.trim_ascii());
        let cseq_header = header(StdHeader::CSeq)?;
        let cseq = cseq_header
            .trim_ascii_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or(HeaderError::syntax("bad sequence number").in_header(StdHeader::CSeq))?;

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
                        cseq,
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
    fn a_missing_header_is_named() {
        let err = ids(&request(
            "OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
             From: <sip:a>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "Missing Header: To");
    }

    #[test]
    fn the_canonical_via_shortcut_agrees_with_the_parser() {
        for v in [
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport",
            "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKy",
            "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKz",
            "SIP/2.0/UDP host",
        ] {
            assert_eq!(canonical_via(v), Some(Via::parse(v).unwrap()), "{v}");
        }
        for v in [
            "SIP / 2.0 / UDP host;branch=z9hG4bK1",
            "sip/2.0/udp host",
            "SIP/2.0/UDP host : 5060;branch=z9hG4bK1",
            "SIP/2.0/UDP  host",
        ] {
            assert_eq!(canonical_via(v), None, "{v}");
            assert_eq!(TopVia::parse(v).is_ok(), Via::parse(v).is_ok(), "{v}");
        }
        assert!(TopVia::parse("SIP/2.0/UDP a:b").is_err());
    }
}
