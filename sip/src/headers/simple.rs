//! Single-valued headers with a trivial grammar: Call-ID (§20.8), Max-Forwards (§20.22),
//! Content-Length (§20.14), Expires (§20.19), Min-Expires (§20.23).

use std::fmt;

use super::{HeaderError, TypedHeader, trim_lws};
use crate::message::StdHeader;

/// `delta-seconds` (§25.1); values beyond `u32` saturate, as §20.19 suggests for Expires.
pub(crate) fn delta_seconds(v: &str) -> Result<u32, HeaderError> {
    let v = trim_lws(v);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::syntax("not a number of seconds"));
    }
    Ok(v.parse::<u32>().unwrap_or(u32::MAX))
}

/// `Call-ID`: `word ["@" word]` (§25.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallIdHeader<'a>(pub &'a str);

impl<'a> TypedHeader<'a> for CallIdHeader<'a> {
    const NAME: StdHeader = StdHeader::CallId;
    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let v = trim_lws(value);
        let word = |w: &str| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b))
        };
        let ok = match v.split_once('@') {
            Some((a, b)) => word(a) && word(b),
            None => word(v),
        };
        if !ok {
            return Err(HeaderError::syntax("not a word[@word]"));
        }
        Ok(Self(v))
    }
}

impl fmt::Display for CallIdHeader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

macro_rules! number_header {
    ($(#[$doc:meta])* $name:ident($ty:ty), $std:ident, $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name(pub $ty);

        impl TypedHeader<'_> for $name {
            const NAME: StdHeader = StdHeader::$std;
            fn parse(value: &str) -> Result<Self, HeaderError> {
                let f: fn(&str) -> Result<$ty, HeaderError> = $parse;
                f(value).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

number_header!(
    /// `Max-Forwards`: 0–255 (§20.22).
    MaxForwards(u8), MaxForwards, |v| {
        let v = trim_lws(v);
        v.parse::<u8>()
            .ok()
            .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(HeaderError::syntax("not 0-255"))
    }
);
number_header!(
    /// `Content-Length` in bytes.
    ContentLength(u32), ContentLength, delta_seconds
);
number_header!(
    /// `Expires` in seconds.
    Expires(u32), Expires, delta_seconds
);
number_header!(
    /// `Min-Expires` in seconds.
    MinExpires(u32), MinExpires, delta_seconds
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_call_ids() {
        assert_eq!(MaxForwards::parse(" 70 ").unwrap(), MaxForwards(70));
        assert!(MaxForwards::parse("256").is_err());
        assert!(MaxForwards::parse("+7").is_err());
        assert_eq!(Expires::parse("99999999999").unwrap(), Expires(u32::MAX));
        assert!(Expires::parse("1h").is_err());
        assert_eq!(
            CallIdHeader::parse("a84b4c76e66710@pc33.atlanta.com")
                .unwrap()
                .0,
            "a84b4c76e66710@pc33.atlanta.com"
        );
        assert!(CallIdHeader::parse("a b").is_err());
        assert!(CallIdHeader::parse("a@b@c").is_err());
        assert!(CallIdHeader::parse("").is_err());
    }
}
