//! Typed views of headers, parsed on demand from the raw values kept by
//! [`crate::message::Message`] and borrowing from them. One file per header (or per family that
//! shares a grammar), each with its parse and print tests.
//!
//! Every view implements [`TypedHeader`]; printing is `Display`, producing a value that parses
//! back to the same view.

mod auth;
mod content_type;
mod cseq;
mod event;
mod identity;
mod name_addr;
mod params;
mod refer;
mod session_timer;
mod simple;
mod tokens;
mod via;

use std::fmt;

pub use auth::{AuthValue, Authorization, ProxyAuthenticate, ProxyAuthorization, WwwAuthenticate};
pub use content_type::{ContentDisposition, ContentType};
pub use cseq::CSeq;
pub use event::{Event, SubState, SubscriptionState};
pub use identity::{PAssertedIdentity, PPreferredIdentity};
pub use name_addr::{Contact, From, NameAddr, RecordRoute, Route, To};
pub use params::{Params, quote, unquote};
pub use refer::{ReferTo, ReferredBy, Replaces, refer_to_with_replaces};
pub use session_timer::{MIN_SESSION_INTERVAL, MinSe, Refresher, SessionExpires};
pub use simple::{CallIdHeader, ContentLength, Expires, MaxForwards, MinExpires};
pub use tokens::{Allow, AllowEvents, ProxyRequire, Require, Supported, TokenList, Unsupported};
pub use via::Via;

use crate::message::StdHeader;

/// A header with a typed view.
pub trait TypedHeader<'a>: Sized {
    /// The header's name.
    const NAME: StdHeader;
    /// Whether the header is a comma-separated list (Via, Contact, Route…), so that one header
    /// line may carry several values.
    const LIST: bool = false;
    /// Parses one value (one element of a list).
    fn parse(value: &'a str) -> Result<Self, HeaderError>;
}

/// A header that is missing or does not parse, naming the header: the reason phrase of the 400
/// a server answers with (`Bad Header: Via (no branch)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderError {
    header: Option<StdHeader>,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Missing,
    Syntax(&'static str),
}

impl HeaderError {
    /// A syntax error; the header name is added by [`HeaderError::in_header`].
    pub const fn syntax(reason: &'static str) -> Self {
        Self {
            header: None,
            kind: Kind::Syntax(reason),
        }
    }

    /// A missing mandatory header.
    pub const fn missing(header: StdHeader) -> Self {
        Self {
            header: Some(header),
            kind: Kind::Missing,
        }
    }

    /// Names the header the error is about (kept when already named).
    pub fn in_header(mut self, header: StdHeader) -> Self {
        self.header.get_or_insert(header);
        self
    }

    /// The header, when known.
    pub fn header(&self) -> Option<StdHeader> {
        self.header
    }

    /// Whether the header was missing rather than malformed.
    pub fn is_missing(&self) -> bool {
        self.kind == Kind::Missing
    }

    /// What is wrong with a malformed value (`None` when the header is missing): for reason
    /// phrases about something that is not a header, like the Request-URI.
    pub fn reason(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Missing => None,
            Kind::Syntax(reason) => Some(reason),
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.header.map_or("URI", StdHeader::as_str);
        match self.kind {
            Kind::Missing => write!(f, "Missing Header: {name}"),
            Kind::Syntax(reason) => write!(f, "Bad Header: {name} ({reason})"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Skips linear whitespace.
///
/// On bytes: `str::trim_matches` with a char array decodes and compares chars one by one, and was
/// a fifth of the cost of reading Via, CSeq, Call-ID, From and To.
pub(crate) fn trim_lws(s: &str) -> &str {
    let lws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let bytes = s.as_bytes();
    let start = bytes.iter().position(|b| !lws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !lws(b)).map_or(start, |i| i + 1);
    // Only ASCII bytes were skipped, so both ends are char boundaries.
    s.get(start..end).unwrap_or_default()
}

/// A token (§25.1): non-empty, token characters only.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(crate::message::is_token_byte)
}
