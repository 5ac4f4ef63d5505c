//! SIP messages (RFC 3261 §7, §25): parsed from bytes without copying, printed back, framed on
//! streams by Content-Length.
//!
//! A [`Message`] keeps its headers raw and in order ([`Headers`]); typed views
//! ([`crate::headers`]) are parsed on demand from the raw values, so a B2BUA that only reads the
//! Via, CSeq and Call-ID of a message never pays for the rest.

mod header;
mod parse;
mod print;
mod text;
mod validate;

use std::fmt;

use bytes::Bytes;

pub use header::{Header, HeaderName, Headers, StdHeader};
pub use parse::{Frame, Limits, ParseError, frame};
pub use text::Text;
pub use validate::{InvalidMessage, validate_request, validate_response};

use crate::headers::{HeaderError, TypedHeader};

/// A SIP method. Methods are case-sensitive (§7.1); unknown ones are kept as received.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE.
    Invite,
    /// ACK.
    Ack,
    /// BYE.
    Bye,
    /// CANCEL.
    Cancel,
    /// REGISTER.
    Register,
    /// OPTIONS.
    Options,
    /// INFO (RFC 6086).
    Info,
    /// UPDATE (RFC 3311).
    Update,
    /// PRACK (RFC 3262).
    Prack,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// REFER (RFC 3515).
    Refer,
    /// MESSAGE (RFC 3428).
    Message,
    /// PUBLISH (RFC 3903).
    Publish,
    /// Any other extension method, as received.
    Other(Text),
}

impl Method {
    /// The method as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Register => "REGISTER",
            Self::Options => "OPTIONS",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Other(t) => t,
        }
    }

    /// Parses a method token; `None` when it is not a token.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "REGISTER" => Self::Register,
            "OPTIONS" => Self::Options,
            "INFO" => Self::Info,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other if !other.is_empty() && other.bytes().all(is_token_byte) => {
                Self::Other(Text::from(other))
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A response status code, 100–699 (§7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// The code if it lies in 100–699.
    pub const fn new(code: u16) -> Option<Self> {
        if code >= 100 && code <= 699 {
            Some(Self(code))
        } else {
            None
        }
    }

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub const fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    /// 200–699.
    pub const fn is_final(self) -> bool {
        self.0 >= 200
    }

    /// The class, 1–6.
    pub const fn class(self) -> u16 {
        self.0 / 100
    }

    /// The reason phrase RFC 3261 §21 (and common extensions) give this code.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            305 => "Use Proxy",
            380 => "Alternative Service",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            410 => "Gone",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            421 => "Extension Required",
            422 => "Session Interval Too Small",
            423 => "Interval Too Brief",
            429 => "Provide Referrer Identity",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            485 => "Ambiguous",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            489 => "Bad Event",
            491 => "Request Pending",
            493 => "Undecipherable",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            606 => "Not Acceptable",
            _ => "",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI, raw (typed on demand with [`crate::uri::Uri::parse`]).
        uri: Text,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`.
    Response {
        /// The status code.
        code: StatusCode,
        /// The reason phrase (may be empty).
        reason: Text,
    },
}

/// A SIP request or response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// Headers, raw and in order.
    pub headers: Headers,
    /// The body, exactly Content-Length bytes.
    pub body: Bytes,
}

impl Message {
    /// Parses one whole message received in a datagram (§18.3: bytes after Content-Length are
    /// dropped; fewer than Content-Length is an error). Leading CRLFs are skipped (§7.5).
    pub fn parse(datagram: Bytes, limits: &Limits) -> Result<Self, ParseError> {
        parse::parse(datagram, limits, false)
    }

    /// Parses a message cut out of a stream by [`frame`]: Content-Length is mandatory.
    pub fn parse_framed(message: Bytes, limits: &Limits) -> Result<Self, ParseError> {
        parse::parse(message, limits, true)
    }

    /// A request with no headers yet.
    pub fn request(method: Method, uri: impl Into<Text>) -> Self {
        Self {
            start: StartLine::Request {
                method,
                uri: uri.into(),
            },
            headers: Headers::with_capacity(12),
            body: Bytes::new(),
        }
    }

    /// A response with the canonical reason phrase and no headers yet.
    pub fn response(code: StatusCode) -> Self {
        Self {
            start: StartLine::Response {
                code,
                reason: Text::from_static(code.canonical_reason()),
            },
            headers: Headers::with_capacity(12),
            body: Bytes::new(),
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request, `None` for a response (use [`Message::cseq_method`] there).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&Text> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The first `H` header, typed. `Ok(None)` when absent.
    pub fn typed<'a, H: TypedHeader<'a>>(&'a self) -> Result<Option<H>, HeaderError> {
        self.headers
            .get(H::NAME)
            .map(|v| {
                let first = if H::LIST {
                    split_list(v).next().unwrap_or("")
                } else {
                    v
                };
                H::parse(first).map_err(|e| e.in_header(H::NAME))
            })
            .transpose()
    }

    /// The first `H` header, typed; absence is an error naming the header.
    pub fn require<'a, H: TypedHeader<'a>>(&'a self) -> Result<H, HeaderError> {
        self.typed::<H>()?.ok_or(HeaderError::missing(H::NAME))
    }

    /// Every element of every `H` header, in order, comma-joined lists split.
    pub fn typed_all<'a, H: TypedHeader<'a>>(
        &'a self,
    ) -> impl Iterator<Item = Result<H, HeaderError>> + 'a {
        self.headers
            .get_all(H::NAME)
            .flat_map(|v| {
                if H::LIST {
                    Elements::List(split_list(v))
                } else {
                    Elements::One(Some(v.as_str()))
                }
            })
            .map(|v| H::parse(v).map_err(|e| e.in_header(H::NAME)))
    }

    /// The CSeq method: the method of a request, or of the request a response answers.
    pub fn cseq_method(&self) -> Option<Method> {
        self.typed::<crate::headers::CSeq>()
            .ok()
            .flatten()
            .map(|c| c.method)
    }

    /// Replaces the body and sets Content-Length (and Content-Type when given).
    pub fn set_body(&mut self, body: impl Into<Bytes>, content_type: Option<&str>) {
        self.body = body.into();
        if let Some(ct) = content_type {
            self.headers.set(StdHeader::ContentType, Text::from(ct));
        }
        self.headers.set(
            StdHeader::ContentLength,
            Text::from(self.body.len().to_string()),
        );
    }
}

/// The elements of one header line: split at commas for list headers, whole otherwise (an
/// enum rather than a boxed iterator: no allocation per header line).
enum Elements<'a, I> {
    List(I),
    One(Option<&'a str>),
}

impl<'a, I: Iterator<Item = &'a str>> Iterator for Elements<'a, I> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        match self {
            Self::List(i) => i.next(),
            Self::One(v) => v.take(),
        }
    }
}

/// Whether `b` may appear in a `token` (§25.1).
pub(crate) const fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Splits a header value at top-level commas — not inside a quoted string or `<…>` — and trims
/// each element; empty elements are skipped (§7.3.1).
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0usize;
    let mut i = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
            let mut in_quote = false;
            let mut in_angle = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if in_quote => i += 1,
                    b'"' if !in_angle => in_quote = !in_quote,
                    b'<' if !in_quote => in_angle = true,
                    b'>' if !in_quote => in_angle = false,
                    b',' if !in_quote && !in_angle => break,
                    _ => {}
                }
                i += 1;
            }
            let end = i.min(bytes.len());
            let part = value
                .get(start..end)
                .unwrap_or("")
                .trim_matches([' ', '\t']);
            if i >= bytes.len() {
                done = true;
            } else {
                i += 1;
                start = i;
            }
            if !part.is_empty() {
                return Some(part);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_list_respects_quotes_and_angles() {
        let v = r#""Doe, John" <sip:a@b;x=1,2>;q=0.5 , <sip:c@d>,,sip:e@f"#;
        assert_eq!(
            split_list(v).collect::<Vec<_>>(),
            [
                r#""Doe, John" <sip:a@b;x=1,2>;q=0.5"#,
                "<sip:c@d>",
                "sip:e@f"
            ]
        );
        assert_eq!(split_list(r#""a\", b" <x>, y"#).count(), 2);
        assert_eq!(split_list("").count(), 0);
        assert_eq!(split_list(" , ").count(), 0);
    }

    #[test]
    fn methods_are_case_sensitive_tokens() {
        assert_eq!(Method::parse("INVITE"), Some(Method::Invite));
        assert_eq!(
            Method::parse("invite"),
            Some(Method::Other(Text::from("invite")))
        );
        assert_eq!(Method::parse("IN VITE"), None);
        assert_eq!(Method::parse(""), None);
    }
}

#[cfg(test)]
mod parse_tests;
