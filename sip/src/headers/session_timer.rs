//! Session timers (RFC 4028): `Session-Expires` / `x` (§4) and `Min-SE` (§5).
//!
//! ```text
//! Session-Expires = ("Session-Expires" / "x") HCOLON delta-seconds *(SEMI se-params)
//! se-params       = refresher-param / generic-param
//! refresher-param = "refresher" EQUAL ("uas" / "uac")
//! Min-SE          = "Min-SE" HCOLON delta-seconds *(SEMI generic-param)
//! ```

use std::fmt;

use super::params::Params;
use super::simple::delta_seconds;
use super::{HeaderError, TypedHeader, trim_lws};
use crate::message::StdHeader;

/// The smallest session interval any element may ask for: 90 seconds (RFC 4028 §4, §5).
pub const MIN_SESSION_INTERVAL: u32 = 90;

/// Who refreshes the session (RFC 4028 §4 `refresher`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refresher {
    /// The user agent client of the refreshing transaction.
    Uac,
    /// The user agent server.
    Uas,
}

impl Refresher {
    /// The parameter value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Uac => "uac",
            Self::Uas => "uas",
        }
    }
}

impl fmt::Display for Refresher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Session-Expires`: the session interval in seconds and who refreshes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    /// The interval in seconds (values beyond `u32` saturate).
    pub delta: u32,
    /// The `refresher` parameter, when present.
    pub refresher: Option<Refresher>,
    /// All parameters, `refresher` included, raw.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for SessionExpires<'a> {
    const NAME: StdHeader = StdHeader::SessionExpires;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let (delta, params) = delta_and_params(value)?;
        let refresher = match params.get("refresher") {
            None => None,
            Some(Some(v)) if v.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(Some(v)) if v.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            Some(_) => return Err(HeaderError::syntax("refresher is not uac or uas")),
        };
        Ok(Self {
            delta,
            refresher,
            params,
        })
    }
}

impl fmt::Display for SessionExpires<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_delta(f, self.delta, self.params)
    }
}

/// `Min-SE`: the smallest session interval the sender accepts, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinSe<'a> {
    /// The interval in seconds (values beyond `u32` saturate).
    pub delta: u32,
    /// Extension parameters, raw.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for MinSe<'a> {
    const NAME: StdHeader = StdHeader::MinSe;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let (delta, params) = delta_and_params(value)?;
        Ok(Self { delta, params })
    }
}

impl fmt::Display for MinSe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_delta(f, self.delta, self.params)
    }
}

fn delta_and_params(value: &str) -> Result<(u32, Params<'_>), HeaderError> {
    let (delta, params) = value.split_once(';').unwrap_or((value, ""));
    let delta = delta_seconds(delta)?;
    let params = Params::new(trim_lws(params));
    params.validate()?;
    Ok((delta, params))
}

fn write_delta(f: &mut fmt::Formatter<'_>, delta: u32, params: Params<'_>) -> fmt::Result {
    write!(f, "{delta}")?;
    if !params.as_str().is_empty() {
        write!(f, ";{}", params.as_str())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4028_examples() {
        // §4 and the §10 call flows.
        let s = SessionExpires::parse("4000;refresher=uac").unwrap();
        assert_eq!((s.delta, s.refresher), (4000, Some(Refresher::Uac)));
        let s = SessionExpires::parse("1800").unwrap();
        assert_eq!((s.delta, s.refresher), (1800, None));
        let s = SessionExpires::parse("  4000 ; refresher = UAS ; x-foo").unwrap();
        assert_eq!(s.refresher, Some(Refresher::Uas));
        assert_eq!(s.params.get("x-foo"), Some(None));
        assert_eq!(MinSe::parse("3600").unwrap().delta, 3600);
        assert_eq!(
            MinSe::parse(" 90 ;x=y").unwrap().params.get("x"),
            Some(Some("y"))
        );
        assert_eq!(MinSe::parse("99999999999").unwrap().delta, u32::MAX);
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "soon",
            "-1",
            "4000;refresher=both",
            "4000;refresher",
            "40 00",
            "4000;=x",
            "4000;a=b c",
        ] {
            assert!(SessionExpires::parse(bad).is_err(), "{bad}");
        }
        assert!(MinSe::parse("1.5").is_err());
    }

    #[test]
    fn print_parses_back() {
        for v in [
            "4000;refresher=uac",
            "90",
            " 1800 ; refresher=uas;x=\"a;b\"",
        ] {
            let s = SessionExpires::parse(v).unwrap();
            assert_eq!(SessionExpires::parse(&s.to_string()).unwrap(), s);
        }
        let m = MinSe::parse("120 ;  lr").unwrap();
        assert_eq!(m.to_string(), "120;lr");
        assert_eq!(MinSe::parse(&m.to_string()).unwrap(), m);
    }
}
