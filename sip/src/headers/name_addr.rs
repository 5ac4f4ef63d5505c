//! `name-addr` / `addr-spec` headers (§20.10, §20.20, §20.30, §20.34, §20.39, §25.1): From, To,
//! Contact, Route and Record-Route share the grammar
//! `[display-name] <URI> *(;param)` or `URI *(;param)`.

use std::borrow::Cow;
use std::fmt;

use super::params::{Params, unquote};
use super::{HeaderError, TypedHeader, is_token, trim_lws};
use crate::message::StdHeader;
use crate::uri::Uri;

/// A display name, a URI and header parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (a quoted string keeps its quotes).
    pub display: Option<&'a str>,
    /// The URI, raw.
    pub uri: &'a str,
    /// Header parameters (`tag`, `expires`, `q`…), after the URI.
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses `name-addr` or `addr-spec` followed by parameters.
    pub fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let s = trim_lws(value);
        let (display, rest) = if s.starts_with('"') {
            let end = closing_quote(s).ok_or(HeaderError::syntax("unterminated quoted string"))?;
            let rest = trim_lws(&s[end + 1..]);
            if !rest.starts_with('<') {
                return Err(HeaderError::syntax("display name without <URI>"));
            }
            (Some(&s[..=end]), rest)
        } else if let Some(lt) = s[..s.find(';').unwrap_or(s.len())].find('<') {
            // In the addr-spec form the first ';' starts the header parameters (§20.10), so a
            // '<' after it is inside a value: `sip:a@b;+sip.instance="<urn:uuid:…>"`.
            let display = trim_lws(&s[..lt]);
            if !display.is_empty()
                && !display
                    .split([' ', '\t'])
                    .all(|w| w.is_empty() || is_token(w))
            {
                return Err(HeaderError::syntax("bad display name"));
            }
            ((!display.is_empty()).then_some(display), &s[lt..])
        } else {
            // addr-spec: parameters after the URI belong to the header (§20.10).
            let (uri, params) = s.split_once(';').unwrap_or((s, ""));
            let uri = trim_lws(uri);
            // No URI character is a space, a control or '>': the printer brackets the URI, and
            // a '>' inside would end it early (found by fuzzing).
            if uri.is_empty()
                || uri
                    .bytes()
                    .any(|b| b == b'>' || b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(HeaderError::syntax("bad URI"));
            }
            let params = Params::new(params);
            params.validate()?;
            return Ok(Self {
                display: None,
                uri,
                params,
            });
        };
        let gt = rest.find('>').ok_or(HeaderError::syntax("missing '>'"))?;
        let uri = trim_lws(&rest[1..gt]);
        if uri.is_empty() {
            return Err(HeaderError::syntax("empty URI"));
        }
        let after = trim_lws(&rest[gt + 1..]);
        let params = match after {
            "" => Params::default(),
            p => Params::new(
                p.strip_prefix(';')
                    .ok_or(HeaderError::syntax("junk after '>'"))?,
            ),
        };
        params.validate()?;
        Ok(Self {
            display,
            uri,
            params,
        })
    }

    /// The URI, typed.
    pub fn uri(&self) -> Result<Uri<'a>, HeaderError> {
        Uri::parse(self.uri)
    }

    /// The display name without quotes and escapes.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        self.display.map(unquote)
    }

    /// The `tag` parameter (From and To, §19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

impl fmt::Display for NameAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>", self.uri)?;
        if !self.params.as_str().is_empty() {
            write!(f, ";{}", self.params.as_str())?;
        }
        Ok(())
    }
}

fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Declares a header whose value is a [`NameAddr`].
macro_rules! name_addr_header {
    ($(#[$doc:meta])* $name:ident, $std:ident, $list:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a>(pub NameAddr<'a>);

        impl<'a> TypedHeader<'a> for $name<'a> {
            const NAME: StdHeader = StdHeader::$std;
            const LIST: bool = $list;
            fn parse(value: &'a str) -> Result<Self, HeaderError> {
                NameAddr::parse(value).map(Self)
            }
        }

        impl<'a> std::ops::Deref for $name<'a> {
            type Target = NameAddr<'a>;
            fn deref(&self) -> &NameAddr<'a> {
                &self.0
            }
        }

        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
#[allow(unused_imports)] // for the headers still to come (Refer-To, P-Asserted-Identity…)
pub(crate) use name_addr_header;

name_addr_header!(
    /// `From` (§20.20).
    From, From, false
);
name_addr_header!(
    /// `To` (§20.39).
    To, To, false
);
name_addr_header!(
    /// One `Route` value (§20.34).
    Route, Route, true
);
name_addr_header!(
    /// One `Record-Route` value (§20.30).
    RecordRoute, RecordRoute, true
);

/// One `Contact` value (§20.10): an address, or `*` in a REGISTER that removes all bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `*`.
    Any,
    /// An address with its parameters.
    Addr(NameAddr<'a>),
}

impl<'a> TypedHeader<'a> for Contact<'a> {
    const NAME: StdHeader = StdHeader::Contact;
    const LIST: bool = true;
    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        if trim_lws(value) == "*" {
            return Ok(Self::Any);
        }
        NameAddr::parse(value).map(Self::Addr)
    }
}

impl<'a> Contact<'a> {
    /// The `expires` parameter in seconds (§10.2.1.1); a value too large saturates.
    pub fn expires(&self) -> Option<Result<u32, HeaderError>> {
        let Self::Addr(a) = self else { return None };
        a.params.get("expires").map(|v| {
            super::simple::delta_seconds(v.unwrap_or(""))
                .map_err(|e| e.in_header(StdHeader::Contact))
        })
    }

    /// The `q` parameter, 0–1000 in thousandths (§20.10).
    pub fn q(&self) -> Option<u16> {
        let Self::Addr(a) = self else { return None };
        let v = a.params.get("q").flatten()?;
        let f: f32 = v.parse().ok()?;
        (0.0..=1.0)
            .contains(&f)
            .then(|| (f * 1000.0).round() as u16)
    }

    /// The address, unless this is `*`.
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Self::Any => None,
            Self::Addr(a) => Some(a),
        }
    }
}

impl fmt::Display for Contact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Addr(a) => a.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_name_addr() {
        let a = NameAddr::parse(r#""Bob \"B\"" <sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf"#)
            .unwrap();
        assert_eq!(a.display_name().as_deref(), Some("Bob \"B\""));
        assert_eq!(a.uri, "sip:bob@biloxi.com;transport=tcp");
        assert_eq!(a.tag(), Some("a6c85cf"));

        let a = NameAddr::parse("Alice Smith <sip:alice@atlanta.com>").unwrap();
        assert_eq!(a.display, Some("Alice Smith"));

        let a = NameAddr::parse("sip:carol@chicago.com;tag=887s").unwrap();
        assert_eq!(a.uri, "sip:carol@chicago.com");
        assert_eq!(a.tag(), Some("887s"));

        let a = NameAddr::parse("sip:a@b;+sip.instance=\"<urn:uuid:1>\";reg-id=1").unwrap();
        assert_eq!(a.uri, "sip:a@b");
        assert_eq!(a.params.get("reg-id"), Some(Some("1")));

        let a = NameAddr::parse("<sip:x@y>  ;  tag = 1 ").unwrap();
        assert_eq!(a.tag(), Some("1"));

        for bad in [
            "\"open <sip:a@b>",
            "<sip:a@b",
            "<>",
            "<sip:a@b> junk",
            "Bad@Name <sip:a@b>",
            "sip:a@b>;tag=1",
            "sip:a\u{0}@b",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn print_parses_back() {
        for v in [
            r#""A, B" <sip:a@b>;tag=1"#,
            "<sip:a@b;lr>",
            "sip:a@b;tag=2",
            "Joe <tel:+15551234567>",
        ] {
            let a = NameAddr::parse(v).unwrap();
            let printed = a.to_string();
            assert_eq!(NameAddr::parse(&printed).unwrap(), a, "{printed}");
        }
    }

    #[test]
    fn contact_star_expires_and_q() {
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Any);
        let c = Contact::parse("<sip:a@192.0.2.1:5060>;expires=60;q=0.7").unwrap();
        assert_eq!(c.expires(), Some(Ok(60)));
        assert_eq!(c.q(), Some(700));
        assert!(
            Contact::parse("<sip:a@b>;expires=soon")
                .unwrap()
                .expires()
                .unwrap()
                .is_err()
        );
    }
}
