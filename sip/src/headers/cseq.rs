//! `CSeq` (§20.16).

use std::fmt;

use super::{HeaderError, TypedHeader, trim_lws};
use crate::message::{Method, StdHeader};

/// A sequence number (below 2^31, §8.1.1.5) and the method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method; must match the request's (§8.2, RFC 4475 §3.1.2.18).
    pub method: Method,
}

impl TypedHeader<'_> for CSeq {
    const NAME: StdHeader = StdHeader::CSeq;

    fn parse(value: &str) -> Result<Self, HeaderError> {
        let value = trim_lws(value);
        let (n, m) = value
            .split_once([' ', '\t'])
            .ok_or(HeaderError::syntax("no method"))?;
        let n = trim_lws(n);
        let seq = n
            .parse::<u32>()
            .ok()
            .filter(|s| *s < 1 << 31 && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(HeaderError::syntax("bad sequence number"))?;
        let method = Method::parse(trim_lws(m)).ok_or(HeaderError::syntax("bad method"))?;
        Ok(Self { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_print() {
        let c = CSeq::parse("314159 INVITE").unwrap();
        assert_eq!((c.seq, &c.method), (314159, &Method::Invite));
        assert_eq!(c.to_string(), "314159 INVITE");
        assert_eq!(CSeq::parse("  8\t  OPTIONS ").unwrap().seq, 8);
        for bad in [
            "INVITE",
            "x INVITE",
            "2147483648 INVITE",
            "-1 INVITE",
            "1 IN VITE",
            "1",
        ] {
            assert!(CSeq::parse(bad).is_err(), "{bad}");
        }
    }
}
