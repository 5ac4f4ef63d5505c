//! What a message needs beyond what the parser checks before a transaction may be built on it
//! (RFC 3261 §8.1.1, §8.2.2, §16.3; RFC 4475 §3.1.2 and §3.3): the mandatory headers, present
//! once and well formed, and a Request-URI we can route. The parser stays liberal so that a
//! broken message can still be answered; this step decides whether it is answered with 400.
//!
//! Pure functions of the message: the endpoint calls them, answers a request that fails with
//! [`InvalidMessage::status`] and the reason phrase from `Display`, and drops a response that
//! fails (§18.1.2).

use std::fmt;

use super::{HeaderName, Message, StatusCode, StdHeader, split_list};
use crate::headers::{
    CSeq, CallIdHeader, From as FromHeader, HeaderError, MaxForwards, To, TypedHeader, Via,
};
use crate::uri::{Scheme, Uri};

/// Why a parsed message cannot be processed. Each variant names the culprit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidMessage {
    /// A header is missing, malformed, repeated although single-valued (§7.3), or — for CSeq —
    /// names another method than the request line (§8.2, RFC 4475 §3.1.2.17).
    Header(HeaderError),
    /// The Request-URI does not parse, or carries URI headers, which §19.1.1 forbids there
    /// (RFC 4475 §3.1.2.11 lets us refuse rather than silently drop them).
    RequestUri(&'static str),
    /// The Request-URI scheme is neither `sip`, `sips` nor `tel`: 416 (§8.2.2.1, §16.3).
    UnsupportedScheme(String),
    /// API misuse: a response given to [`validate_request`] or a request to
    /// [`validate_response`].
    WrongKind {
        /// What the function expected: `"request"` or `"response"`.
        expected: &'static str,
    },
}

impl InvalidMessage {
    /// The status a server answers such a request with: 416 for an unknown scheme, 500 for
    /// [`InvalidMessage::WrongKind`] (our bug, not the peer's), else 400.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            Self::UnsupportedScheme(_) => 416,
            Self::WrongKind { .. } => 500,
            _ => 400,
        };
        StatusCode::new(code).unwrap_or_else(|| unreachable!("constant in range"))
    }

    /// The header at fault, if the fault is in a header.
    pub fn header(&self) -> Option<StdHeader> {
        match self {
            Self::Header(e) => e.header(),
            _ => None,
        }
    }
}

impl fmt::Display for InvalidMessage {
    /// A reason phrase naming the culprit (`Bad Header: CSeq (method does not match …)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(e) => e.fmt(f),
            Self::RequestUri(reason) => write!(f, "Bad Request-URI ({reason})"),
            Self::UnsupportedScheme(scheme) => write!(f, "Unsupported URI Scheme ({scheme})"),
            Self::WrongKind { expected } => write!(f, "Not a {expected}"),
        }
    }
}

impl std::error::Error for InvalidMessage {}

impl From<HeaderError> for InvalidMessage {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

/// Checks a request: Via (every value), To, From, Call-ID and CSeq present, single-valued ones
/// once, each parsing; the CSeq method equal to the request method; Max-Forwards parsing when
/// present (it is optional on receipt: RFC 2543 peers omit it, RFC 4475 §3.4.1); a Request-URI
/// that parses, without URI headers, in a scheme we serve; Content-Type present with a body.
///
/// Checks run in that order and the first failure is returned, so a message without a usable
/// Via — to which no response can be routed — is reported as such first.
pub fn validate_request(m: &Message) -> Result<(), InvalidMessage> {
    let Some(method) = m.method() else {
        return Err(InvalidMessage::WrongKind {
            expected: "request",
        });
    };
    let cseq = common(m)?;
    if cseq.method != *method {
        return Err(HeaderError::syntax("method does not match the request")
            .in_header(StdHeader::CSeq)
            .into());
    }
    let mut max_forwards = m.headers.get_all(StdHeader::MaxForwards);
    if let Some(first) = max_forwards.next() {
        single::<MaxForwards>((Some(first.as_str()), max_forwards.next().is_some()))?;
    }
    let raw = m.request_uri().map_or("", |u| u.as_str());
    let uri = Uri::parse(raw)
        .map_err(|e| InvalidMessage::RequestUri(e.reason().unwrap_or("does not parse")))?;
    match uri.scheme {
        Scheme::Sip | Scheme::Sips if uri.headers.is_some() => {
            return Err(InvalidMessage::RequestUri("URI headers are not allowed"));
        }
        Scheme::Sip | Scheme::Sips | Scheme::Tel => {}
        Scheme::Other(s) => return Err(InvalidMessage::UnsupportedScheme(s.to_owned())),
    }
    content_type(m)
}

/// Checks a response: Via, To, From, Call-ID and CSeq as for a request (without the method
/// comparison, which is the client transaction's business), and Content-Type with a body.
pub fn validate_response(m: &Message) -> Result<(), InvalidMessage> {
    if m.is_request() {
        return Err(InvalidMessage::WrongKind {
            expected: "response",
        });
    }
    common(m)?;
    content_type(m)
}

/// The headers every request and response carries (§8.1.1, §8.2.6.2); returns the CSeq.
///
/// One pass over the headers finds them all (the validation runs on every message received,
/// so it should not scan the header list once per header it checks).
fn common(m: &Message) -> Result<CSeq, InvalidMessage> {
    let mut vias = 0usize;
    // Each slot: the first value, and whether another one followed.
    let (mut to, mut from, mut call_id, mut cseq) =
        ((None, false), (None, false), (None, false), (None, false));
    for h in &m.headers {
        let HeaderName::Std(std) = h.name else {
            continue;
        };
        let slot = match std {
            StdHeader::Via => {
                for value in split_list(&h.value) {
                    Via::parse(value).map_err(|e| e.in_header(StdHeader::Via))?;
                    vias += 1;
                }
                continue;
            }
            StdHeader::To => &mut to,
            StdHeader::From => &mut from,
            StdHeader::CallId => &mut call_id,
            StdHeader::CSeq => &mut cseq,
            _ => continue,
        };
        match slot.0 {
            None => slot.0 = Some(h.value.as_str()),
            Some(_) => slot.1 = true,
        }
    }
    if vias == 0 {
        return Err(HeaderError::missing(StdHeader::Via).into());
    }
    single::<To>(to)?;
    single::<FromHeader>(from)?;
    single::<CallIdHeader>(call_id)?;
    single::<CSeq>(cseq)
}

/// A single-valued header found by [`common`]: present exactly once (§7.3: only list headers
/// may repeat) and parsing.
fn single<'a, H: TypedHeader<'a>>(
    (value, repeated): (Option<&'a str>, bool),
) -> Result<H, InvalidMessage> {
    if repeated {
        return Err(HeaderError::syntax("appears more than once")
            .in_header(H::NAME)
            .into());
    }
    let value = value.ok_or(HeaderError::missing(H::NAME))?;
    Ok(H::parse(value).map_err(|e| e.in_header(H::NAME))?)
}

/// §20.15: "The Content-Type header field MUST be present if the body is not empty."
fn content_type(m: &Message) -> Result<(), InvalidMessage> {
    if !m.body.is_empty() && !m.headers.contains(StdHeader::ContentType) {
        return Err(HeaderError::missing(StdHeader::ContentType).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::Limits;

    const OK: &str = "OPTIONS sip:a@b SIP/2.0\r\n\
Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
To: <sip:a@b>\r\n\
From: <sip:c@d>;tag=1\r\n\
Call-ID: x@y\r\n\
CSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    fn request(text: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default()).unwrap()
    }

    fn error(text: &str) -> String {
        validate_request(&request(text)).unwrap_err().to_string()
    }

    #[test]
    fn a_good_request_passes_and_each_defect_is_named() {
        assert_eq!(validate_request(&request(OK)), Ok(()));
        let without_mf = OK.replace("Max-Forwards: 70\r\n", "");
        assert_eq!(validate_request(&request(&without_mf)), Ok(()));
        let tel = OK.replace("OPTIONS sip:a@b", "OPTIONS tel:+15551234567");
        assert_eq!(validate_request(&request(&tel)), Ok(()));

        let cases = [
            ("Call-ID: x@y\r\n", "", "Missing Header: Call-ID"),
            (
                "Call-ID: x@y\r\n",
                "Call-ID: x@y\r\ni: z@y\r\n",
                "Bad Header: Call-ID (appears more than once)",
            ),
            (
                "CSeq: 1 OPTIONS",
                "CSeq: 1 INVITE",
                "Bad Header: CSeq (method does not match the request)",
            ),
            (
                "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
                "Via: SIP/2.0/UDP h;branch=z9hG4bK1, ;",
                "Bad Header: Via (bad sent-protocol)",
            ),
            (
                "Max-Forwards: 70",
                "Max-Forwards: 300",
                "Bad Header: Max-Forwards (not 0-255)",
            ),
            (
                "OPTIONS sip:a@b",
                "OPTIONS sip:a@b?Route=x",
                "Bad Request-URI (URI headers are not allowed)",
            ),
            (
                "OPTIONS sip:a@b",
                "OPTIONS <sip:a@b>",
                "Bad Request-URI (bad URI scheme)",
            ),
            (
                "Content-Length: 0\r\n\r\n",
                "Content-Length: 2\r\n\r\nhi",
                "Missing Header: Content-Type",
            ),
        ];
        for (from, to, reason) in cases {
            assert_eq!(error(&OK.replace(from, to)), reason, "{to:?}");
        }

        let unknown = request(&OK.replace("OPTIONS sip:a@b", "OPTIONS urn:x"));
        let e = validate_request(&unknown).unwrap_err();
        assert_eq!(e, InvalidMessage::UnsupportedScheme("urn".into()));
        assert_eq!(e.status().as_u16(), 416);
        let dup = request(&OK.replace(
            "CSeq: 1 OPTIONS\r\n",
            "CSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS\r\n",
        ));
        let e = validate_request(&dup).unwrap_err();
        assert_eq!(
            (e.header(), e.status().as_u16()),
            (Some(StdHeader::CSeq), 400)
        );
    }

    #[test]
    fn responses_need_the_same_headers_but_no_method_match() {
        let ok = OK
            .replace("OPTIONS sip:a@b SIP/2.0", "SIP/2.0 200 OK")
            .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        assert_eq!(validate_response(&request(&ok)), Ok(()));
        let no_via = ok.replace("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", "");
        assert_eq!(
            validate_response(&request(&no_via))
                .unwrap_err()
                .to_string(),
            "Missing Header: Via"
        );
        assert_eq!(
            validate_response(&request(OK))
                .unwrap_err()
                .status()
                .as_u16(),
            500
        );
        assert_eq!(
            validate_request(&request(&ok)),
            Err(InvalidMessage::WrongKind {
                expected: "request"
            })
        );
    }
}
