//! Asserted identity within a trust domain (RFC 3325 §9.1): `P-Asserted-Identity` and
//! `P-Preferred-Identity`, each a comma-separated list of at most one SIP or SIPS URI and one
//! `tel:` URI.
//!
//! ```text
//! PAssertedID       = "P-Asserted-Identity" HCOLON PAssertedID-value *(COMMA PAssertedID-value)
//! PAssertedID-value = name-addr / addr-spec
//! ```
//!
//! Unlike From or Contact (RFC 3261 §20.10), these headers have no header parameters, so in the
//! addr-spec form everything after the scheme belongs to the URI:
//! `P-Asserted-Identity: sip:+15551234567@example.com;user=phone` keeps `;user=phone` on the
//! URI. That is why the views are written out here rather than with `name_addr_header!`, whose
//! parser gives such parameters to the header. In the name-addr form, parameters after `>` are
//! tolerated and kept in [`NameAddr::params`].

use std::fmt;

use super::name_addr::NameAddr;
use super::params::Params;
use super::{HeaderError, TypedHeader, trim_lws};
use crate::message::StdHeader;

/// Parses a name-addr, or an addr-spec whose parameters all belong to the URI.
fn identity(value: &str) -> Result<NameAddr<'_>, HeaderError> {
    let v = trim_lws(value);
    if v.starts_with('"') || v.contains('<') {
        return NameAddr::parse(v);
    }
    // As in `NameAddr::parse`: a '>' would end the URI early once printed in brackets (found by
    // fuzz/sip_headers), and no URI character is a space or a control.
    if v.is_empty()
        || v.bytes()
            .any(|b| b == b'>' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(HeaderError::syntax("bad URI"));
    }
    Ok(NameAddr {
        display: None,
        uri: v,
        params: Params::default(),
    })
}

macro_rules! identity_header {
    ($(#[$doc:meta])* $name:ident, $std:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a>(pub NameAddr<'a>);

        impl<'a> TypedHeader<'a> for $name<'a> {
            const NAME: StdHeader = StdHeader::$std;
            const LIST: bool = true;
            fn parse(value: &'a str) -> Result<Self, HeaderError> {
                identity(value).map(Self)
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

identity_header!(
    /// One `P-Asserted-Identity` value (RFC 3325 §9.1): the identity a trusted element vouches
    /// for. Trust it only from a peer inside the trust domain (§5).
    PAssertedIdentity, PAssertedIdentity
);
identity_header!(
    /// One `P-Preferred-Identity` value (RFC 3325 §9.2): the identity a user agent would like
    /// asserted.
    PPreferredIdentity, PPreferredIdentity
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::split_list;
    use crate::uri::Scheme;

    #[test]
    fn rfc3325_examples() {
        // §10 call flows.
        let v = "\"Cullen Jennings\" <sip:fluffy@cisco.com>, tel:+14085264000";
        let ids: Vec<_> = split_list(v)
            .map(|e| PAssertedIdentity::parse(e).unwrap())
            .collect();
        assert_eq!(ids[0].display_name().as_deref(), Some("Cullen Jennings"));
        assert_eq!(ids[0].uri, "sip:fluffy@cisco.com");
        assert_eq!(ids[1].uri().unwrap().scheme, Scheme::Tel);
        let p = PPreferredIdentity::parse("\"Cullen Jennings\" <sip:fluffy@cisco.com>").unwrap();
        assert_eq!(p.uri, "sip:fluffy@cisco.com");
    }

    #[test]
    fn addr_spec_parameters_stay_on_the_uri() {
        let p = PAssertedIdentity::parse(" sip:+15551234567@example.com;user=phone ").unwrap();
        assert_eq!(p.uri, "sip:+15551234567@example.com;user=phone");
        assert_eq!(p.uri().unwrap().params.get("user"), Some(Some("phone")));
        assert!(p.params.is_empty());
        let p = PAssertedIdentity::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(
            p.uri().unwrap().params.get("phone-context"),
            Some(Some("example.com"))
        );
        let p = PAssertedIdentity::parse("<sip:a@b;user=phone>;x=1").unwrap();
        assert_eq!(
            (p.uri, p.params.get("x")),
            ("sip:a@b;user=phone", Some(Some("1")))
        );
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "sip:a@b c",
            "\"open <sip:a@b>",
            "<sip:a@b",
            "Bad@Name <sip:a@b>",
            "<>",
            "sip:a@b>;x",
            "sip:a\u{c}@b",
        ] {
            assert!(PAssertedIdentity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn print_parses_back() {
        for v in [
            "sip:+15551234567@example.com;user=phone",
            "\"A \\\"B\\\"\" <sip:a@b>",
            "tel:+1555",
            "Alice <sips:alice@example.com>",
        ] {
            let p = PAssertedIdentity::parse(v).unwrap();
            let printed = p.to_string();
            assert_eq!(PAssertedIdentity::parse(&printed).unwrap(), p, "{printed}");
        }
    }
}
