//! Headers whose value is a comma-separated list of tokens: `Allow` (RFC 3261 §20.5),
//! `Supported` (§20.37), `Require` (§20.32), `Proxy-Require` (§20.29), `Unsupported` (§20.40)
//! and `Allow-Events` (RFC 6665 §8.2.2).
//!
//! The view is one header line holding the whole list (`LIST = false`); a message may carry
//! several lines (`Supported: timer` then `Supported: 100rel`), which
//! [`crate::message::Message::typed_all`] yields one by one:
//! `m.typed_all::<Supported>().flatten().any(|s| s.contains("timer"))`.

use std::fmt;

use super::{HeaderError, TypedHeader, is_token, trim_lws};
use crate::message::{Method, StdHeader};

/// A list of tokens, borrowed raw; empty elements are skipped (RFC 3261 §7.3.1).
#[derive(Clone, Copy, Debug)]
pub struct TokenList<'a>(&'a str);

impl<'a> TokenList<'a> {
    /// Parses `[token *(COMMA token)]`, LWS allowed around the commas.
    pub fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let list = Self(trim_lws(value));
        if !list
            .0
            .split(',')
            .map(trim_lws)
            .all(|t| t.is_empty() || is_token(t))
        {
            return Err(HeaderError::syntax("not a list of tokens"));
        }
        Ok(list)
    }

    /// The tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.split(',').map(trim_lws).filter(|t| !t.is_empty())
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the list is empty (`Allow:` and `Supported:` may be, §20.5, §20.37).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Whether `token` is listed, ignoring ASCII case ("tokens are always case-insensitive",
    /// RFC 3261 §7.3.1): the comparison for option tags.
    pub fn contains(&self, token: &str) -> bool {
        self.iter().any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Whether `token` is listed byte for byte: the comparison for methods (§7.1) and event
    /// types (RFC 6665 §8.2.1).
    pub fn contains_exact(&self, token: &str) -> bool {
        self.iter().any(|t| t == token)
    }
}

impl PartialEq for TokenList<'_> {
    /// Equal when the same tokens are listed in the same order, however spaced.
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for TokenList<'_> {}

impl fmt::Display for TokenList<'_> {
    /// The tokens joined with `", "`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(t)?;
        }
        Ok(())
    }
}

/// Declares a token-list header; `$empty` says whether the grammar allows an empty list.
macro_rules! token_list_header {
    ($(#[$doc:meta])* $name:ident, $std:ident, empty: $empty:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a>(pub TokenList<'a>);

        impl<'a> TypedHeader<'a> for $name<'a> {
            const NAME: StdHeader = StdHeader::$std;
            fn parse(value: &'a str) -> Result<Self, HeaderError> {
                let list = TokenList::parse(value)?;
                if !$empty && list.is_empty() {
                    return Err(HeaderError::syntax("empty list"));
                }
                Ok(Self(list))
            }
        }

        impl<'a> std::ops::Deref for $name<'a> {
            type Target = TokenList<'a>;
            fn deref(&self) -> &TokenList<'a> {
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

token_list_header!(
    /// `Allow` (RFC 3261 §20.5): the methods a user agent supports; may be empty.
    Allow, Allow, empty: true
);
token_list_header!(
    /// `Supported` / `k` (RFC 3261 §20.37): option tags the sender understands; may be empty.
    Supported, Supported, empty: true
);
token_list_header!(
    /// `Require` (RFC 3261 §20.32): option tags the recipient must understand.
    Require, Require, empty: false
);
token_list_header!(
    /// `Proxy-Require` (RFC 3261 §20.29): option tags proxies must understand.
    ProxyRequire, ProxyRequire, empty: false
);
token_list_header!(
    /// `Unsupported` (RFC 3261 §20.40): the option tags of a 420 that were not understood.
    Unsupported, Unsupported, empty: false
);
token_list_header!(
    /// `Allow-Events` / `u` (RFC 6665 §8.2.2): event packages the sender accepts, compared byte
    /// for byte ([`TokenList::contains_exact`]).
    AllowEvents, AllowEvents, empty: false
);

impl Allow<'_> {
    /// Whether `method` is allowed; methods are case-sensitive (RFC 3261 §7.1).
    pub fn allows(&self, method: &Method) -> bool {
        self.contains_exact(method.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // RFC 3261 §20.5, §20.37, §20.32, §20.29, §20.40; RFC 6665 §8.2.2.
        let a = Allow::parse("INVITE, ACK, OPTIONS, CANCEL, BYE").unwrap();
        assert_eq!(a.len(), 5);
        assert!(a.allows(&Method::Bye));
        assert!(!a.allows(&Method::Refer));
        assert!(!a.contains_exact("invite"));
        assert!(a.contains("invite"));
        let s = Supported::parse("100rel").unwrap();
        assert!(s.contains("100REL"));
        assert!(Require::parse("100rel").unwrap().contains("100rel"));
        assert_eq!(
            ProxyRequire::parse("foo")
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            ["foo"]
        );
        assert!(Unsupported::parse("foo").unwrap().contains("foo"));
        let e = AllowEvents::parse("presence, dialog,message-summary").unwrap();
        assert!(e.contains_exact("message-summary"));
        assert!(!e.contains_exact("Dialog"));
    }

    #[test]
    fn whitespace_and_empty_elements() {
        let s = Supported::parse(" timer ,\t100rel,, replaces , ").unwrap();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            ["timer", "100rel", "replaces"]
        );
        assert_eq!(s.to_string(), "timer, 100rel, replaces");
        assert!(Allow::parse("").unwrap().is_empty());
        assert!(Supported::parse("  ").unwrap().is_empty());
        assert_eq!(Supported::parse("").unwrap().to_string(), "");
    }

    #[test]
    fn rejections() {
        for bad in ["a b", "timer;x=1", "\"timer\"", "a,b c", "a/b"] {
            assert!(Supported::parse(bad).is_err(), "{bad}");
        }
        for empty in ["", " , "] {
            assert!(Require::parse(empty).is_err());
            assert!(ProxyRequire::parse(empty).is_err());
            assert!(Unsupported::parse(empty).is_err());
            assert!(AllowEvents::parse(empty).is_err());
        }
    }

    #[test]
    fn print_parses_back() {
        for v in ["INVITE,ACK", " a , b ,c", "", "x"] {
            let a = Allow::parse(v).unwrap();
            assert_eq!(Allow::parse(&a.to_string()).unwrap(), a);
        }
        assert_ne!(
            Supported::parse("a, b").unwrap(),
            Supported::parse("b, a").unwrap()
        );
    }
}
