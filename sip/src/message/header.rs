//! Header names (with RFC 3261 §7.3.3 compact forms) and the ordered, raw header list.

use std::fmt;

use super::text::Text;

macro_rules! standard_headers {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal $(, $compact:literal)?; )*) => {
        /// A header name known to this crate: matched case-insensitively, compact forms included.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum StdHeader {
            $( $(#[$doc])* $variant, )*
        }

        impl StdHeader {
            /// Every standard header.
            pub const ALL: &'static [StdHeader] = &[$(Self::$variant),*];

            /// The canonical (long) spelling, as this crate prints it.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }

            /// The compact form (RFC 3261 §7.3.3 and later RFCs), if the header has one.
            pub const fn compact(self) -> Option<char> {
                match self { $( Self::$variant => standard_headers!(@compact $($compact)?), )* }
            }

            /// Looks a name up, ignoring ASCII case; single letters are compact forms.
            pub fn from_name(name: &[u8]) -> Option<Self> {
                if let [c] = name {
                    return match c.to_ascii_lowercase() {
                        $( $( x if u32::from(x) == u32::from($compact) => Some(Self::$variant), )? )*
                        _ => None,
                    };
                }
                $( if name.eq_ignore_ascii_case($name.as_bytes()) { return Some(Self::$variant); } )*
                None
            }
        }
    };
    (@compact $c:literal) => { Some($c) };
    (@compact) => { None };
}

standard_headers! {
    /// `Via` (`v`).
    Via = "Via", 'v';
    /// `From` (`f`).
    From = "From", 'f';
    /// `To` (`t`).
    To = "To", 't';
    /// `Call-ID` (`i`).
    CallId = "Call-ID", 'i';
    /// `CSeq`.
    CSeq = "CSeq";
    /// `Contact` (`m`).
    Contact = "Contact", 'm';
    /// `Max-Forwards`.
    MaxForwards = "Max-Forwards";
    /// `Content-Length` (`l`).
    ContentLength = "Content-Length", 'l';
    /// `Content-Type` (`c`).
    ContentType = "Content-Type", 'c';
    /// `Route`.
    Route = "Route";
    /// `Record-Route`.
    RecordRoute = "Record-Route";
    /// `Expires`.
    Expires = "Expires";
    /// `Min-Expires`.
    MinExpires = "Min-Expires";
    /// `Authorization`.
    Authorization = "Authorization";
    /// `Proxy-Authorization`.
    ProxyAuthorization = "Proxy-Authorization";
    /// `WWW-Authenticate`.
    WwwAuthenticate = "WWW-Authenticate";
    /// `Proxy-Authenticate`.
    ProxyAuthenticate = "Proxy-Authenticate";
    /// `Authentication-Info`.
    AuthenticationInfo = "Authentication-Info";
    /// `Allow`.
    Allow = "Allow";
    /// `Allow-Events` (`u`, RFC 6665).
    AllowEvents = "Allow-Events", 'u';
    /// `Accept`.
    Accept = "Accept";
    /// `Accept-Encoding`.
    AcceptEncoding = "Accept-Encoding";
    /// `Accept-Language`.
    AcceptLanguage = "Accept-Language";
    /// `Supported` (`k`).
    Supported = "Supported", 'k';
    /// `Require`.
    Require = "Require";
    /// `Proxy-Require`.
    ProxyRequire = "Proxy-Require";
    /// `Unsupported`.
    Unsupported = "Unsupported";
    /// `Session-Expires` (`x`, RFC 4028).
    SessionExpires = "Session-Expires", 'x';
    /// `Min-SE` (RFC 4028).
    MinSe = "Min-SE";
    /// `Refer-To` (`r`, RFC 3515).
    ReferTo = "Refer-To", 'r';
    /// `Referred-By` (`b`, RFC 3892).
    ReferredBy = "Referred-By", 'b';
    /// `Replaces` (RFC 3891).
    Replaces = "Replaces";
    /// `Event` (`o`, RFC 6665).
    Event = "Event", 'o';
    /// `Subscription-State` (RFC 6665).
    SubscriptionState = "Subscription-State";
    /// `P-Asserted-Identity` (RFC 3325).
    PAssertedIdentity = "P-Asserted-Identity";
    /// `P-Preferred-Identity` (RFC 3325).
    PPreferredIdentity = "P-Preferred-Identity";
    /// `Privacy` (RFC 3323).
    Privacy = "Privacy";
    /// `Content-Encoding` (`e`).
    ContentEncoding = "Content-Encoding", 'e';
    /// `Content-Disposition`.
    ContentDisposition = "Content-Disposition";
    /// `Content-Language`.
    ContentLanguage = "Content-Language";
    /// `MIME-Version`.
    MimeVersion = "MIME-Version";
    /// `Subject` (`s`).
    Subject = "Subject", 's';
    /// `User-Agent`.
    UserAgent = "User-Agent";
    /// `Server`.
    Server = "Server";
    /// `Date`.
    Date = "Date";
    /// `Timestamp`.
    Timestamp = "Timestamp";
    /// `Warning`.
    Warning = "Warning";
    /// `Retry-After`.
    RetryAfter = "Retry-After";
    /// `Reason` (RFC 3326).
    Reason = "Reason";
    /// `RSeq` (RFC 3262).
    RSeq = "RSeq";
    /// `RAck` (RFC 3262).
    RAck = "RAck";
    /// `Path` (RFC 3327).
    Path = "Path";
    /// `Organization`.
    Organization = "Organization";
    /// `Priority`.
    Priority = "Priority";
    /// `Call-Info`.
    CallInfo = "Call-Info";
    /// `Alert-Info`.
    AlertInfo = "Alert-Info";
    /// `Error-Info`.
    ErrorInfo = "Error-Info";
    /// `In-Reply-To`.
    InReplyTo = "In-Reply-To";
    /// `Reply-To`.
    ReplyTo = "Reply-To";
}

/// A header name: a [`StdHeader`] or any other token, compared ignoring ASCII case.
#[derive(Clone, Debug)]
pub enum HeaderName {
    /// A header this crate knows.
    Std(StdHeader),
    /// Any other header, spelled as received.
    Other(Text),
}

impl HeaderName {
    /// Parses a received name (a token, not empty).
    pub(crate) fn from_bytes(name: &[u8], text: Text) -> Self {
        match StdHeader::from_name(name) {
            Some(h) => Self::Std(h),
            None => Self::Other(text),
        }
    }

    /// The name as this crate prints it (canonical long form for standard headers).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Std(h) => h.as_str(),
            Self::Other(t) => t,
        }
    }

    /// Whether this is `std`.
    pub fn is(&self, std: StdHeader) -> bool {
        matches!(self, Self::Std(h) if *h == std)
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Std(a), Self::Std(b)) => a == b,
            (Self::Other(a), Self::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl Eq for HeaderName {}

impl From<StdHeader> for HeaderName {
    fn from(h: StdHeader) -> Self {
        Self::Std(h)
    }
}

impl From<&'static str> for HeaderName {
    /// A name from a string literal; standard names become [`StdHeader`]s.
    fn from(name: &'static str) -> Self {
        Self::from_bytes(name.as_bytes(), Text::from_static(name))
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line: its name and its value with surrounding whitespace removed and folded lines
/// joined (RFC 3261 §7.3.1). A comma-joined list stays one `Header`; typed views split it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The raw value.
    pub value: Text,
}

/// The headers of a message, in the order received (order matters for Via, Route and
/// Record-Route, §7.3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// No headers, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl Into<HeaderName>, value: impl Into<Text>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Inserts a header before all others of the list (a new top Via, a Route).
    pub fn push_front(&mut self, name: impl Into<HeaderName>, value: impl Into<Text>) {
        self.0.insert(
            0,
            Header {
                name: name.into(),
                value: value.into(),
            },
        );
    }

    /// The first value of `name`.
    pub fn get(&self, name: impl Into<HeaderName>) -> Option<&Text> {
        let name = name.into();
        self.0.iter().find(|h| h.name == name).map(|h| &h.value)
    }

    /// Every value of `name`, in order (each may still be a comma-joined list).
    pub fn get_all(&self, name: impl Into<HeaderName>) -> impl Iterator<Item = &Text> {
        let name = name.into();
        self.0
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| &h.value)
    }

    /// Whether `name` occurs.
    pub fn contains(&self, name: impl Into<HeaderName>) -> bool {
        self.get(name).is_some()
    }

    /// Replaces every `name` header with one holding `value` (placed where the first one was).
    pub fn set(&mut self, name: impl Into<HeaderName>, value: impl Into<Text>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter().position(|h| h.name == name) {
            Some(i) => {
                self.0[i].value = value;
                let mut seen = 0usize;
                self.0.retain(|h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.0.push(Header { name, value }),
        }
    }

    /// Removes every `name` header; returns how many there were.
    pub fn remove(&mut self, name: impl Into<HeaderName>) -> usize {
        let name = name.into();
        let before = self.0.len();
        self.0.retain(|h| h.name != name);
        before - self.0.len()
    }

    /// Removes the first value of a list header (the top Via of a response a proxy forwards,
    /// the first Route): if the first `name` header is comma-joined, only its first element goes.
    pub fn remove_first_value(&mut self, name: impl Into<HeaderName>) -> Option<Text> {
        let name = name.into();
        let i = self.0.iter().position(|h| h.name == name)?;
        let value = self.0[i].value.clone();
        let mut parts = super::split_list(&value);
        let first = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            self.0.remove(i);
        } else {
            self.0[i].value = Text::from(rest.join(", "));
        }
        Some(value.slice_ref(first))
    }

    /// All headers in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// The number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_long_forms_are_the_same_header() {
        for (name, std) in [
            ("v", StdHeader::Via),
            ("V", StdHeader::Via),
            ("via", StdHeader::Via),
            ("i", StdHeader::CallId),
            ("CALL-id", StdHeader::CallId),
            ("l", StdHeader::ContentLength),
            ("m", StdHeader::Contact),
            ("k", StdHeader::Supported),
            ("x", StdHeader::SessionExpires),
            ("o", StdHeader::Event),
        ] {
            assert_eq!(StdHeader::from_name(name.as_bytes()), Some(std), "{name}");
        }
        assert_eq!(StdHeader::from_name(b"z"), None);
        assert_eq!(StdHeader::Via.compact(), Some('v'));
        assert_eq!(StdHeader::CSeq.compact(), None);
        assert_eq!(HeaderName::from("X-Foo"), HeaderName::from("x-foo"));
    }

    #[test]
    fn set_replaces_all_and_remove_first_value_splits_lists() {
        let mut h = Headers::default();
        h.push(
            StdHeader::Via,
            "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b",
        );
        h.push(StdHeader::Via, "SIP/2.0/UDP c");
        h.push("X-A", "1");
        h.push("x-a", "2");
        assert_eq!(
            h.remove_first_value(StdHeader::Via).as_deref(),
            Some("SIP/2.0/UDP a;branch=z9hG4bK1")
        );
        assert_eq!(
            h.get_all(StdHeader::Via)
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
            ["SIP/2.0/UDP b", "SIP/2.0/UDP c"]
        );
        h.set("X-A", "3");
        assert_eq!(h.get_all("X-A").count(), 1);
        assert_eq!(h.get("x-a").map(|t| t.as_str()), Some("3"));
        assert_eq!(h.remove(StdHeader::Via), 2);
    }
}
