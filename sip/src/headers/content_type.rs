//! `Content-Type` / `c` (RFC 3261 §20.15) and `Content-Disposition` (§20.11).
//!
//! ```text
//! Content-Type        = ("Content-Type" / "c") HCOLON media-type
//! media-type          = m-type SLASH m-subtype *(SEMI m-parameter)
//! m-parameter         = m-attribute EQUAL m-value          ; m-value = token / quoted-string
//! Content-Disposition = "Content-Disposition" HCOLON disp-type *(SEMI disp-param)
//! disp-param          = handling-param / generic-param
//! handling-param      = "handling" EQUAL ("optional" / "required" / other-handling)
//! ```

use std::borrow::Cow;
use std::fmt;

use super::params::Params;
use super::{HeaderError, TypedHeader, is_token, trim_lws};
use crate::message::StdHeader;

/// `Content-Type`: a media type with parameters. Type, subtype and parameter names compare
/// ignoring case (RFC 2045 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentType<'a> {
    /// The type as written (`application`).
    pub mtype: &'a str,
    /// The subtype as written (`sdp`).
    pub subtype: &'a str,
    /// Parameters (`charset`, `boundary`…), raw.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for ContentType<'a> {
    const NAME: StdHeader = StdHeader::ContentType;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let (media, params) = value.split_once(';').unwrap_or((value, ""));
        let (mtype, subtype) = media
            .split_once('/')
            .ok_or(HeaderError::syntax("no '/' in media type"))?;
        // SLASH = SWS "/" SWS.
        let (mtype, subtype) = (trim_lws(mtype), trim_lws(subtype));
        if !is_token(mtype) || !is_token(subtype) {
            return Err(HeaderError::syntax("bad media type"));
        }
        let params = Params::new(trim_lws(params));
        params.validate()?;
        if params.iter().any(|(_, v)| v.is_none()) {
            return Err(HeaderError::syntax("media parameter without value"));
        }
        Ok(Self {
            mtype,
            subtype,
            params,
        })
    }
}

impl<'a> ContentType<'a> {
    /// Whether this is `mtype/subtype`, ignoring case: `is("application", "sdp")`.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// Whether the type is `multipart` (RFC 5621 bodies).
    pub fn is_multipart(&self) -> bool {
        self.mtype.eq_ignore_ascii_case("multipart")
    }

    /// A parameter's value without quotes (`charset`, `boundary`).
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params.get_unquoted(name)
    }
}

impl fmt::Display for ContentType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.mtype, self.subtype)?;
        if !self.params.as_str().is_empty() {
            write!(f, ";{}", self.params.as_str())?;
        }
        Ok(())
    }
}

/// `Content-Disposition`: how to treat the body (`session`, `render`, `icon`, `alert`…).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentDisposition<'a> {
    /// The disposition type as written.
    pub disposition: &'a str,
    /// Parameters (`handling`…), raw.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for ContentDisposition<'a> {
    const NAME: StdHeader = StdHeader::ContentDisposition;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let (disposition, params) = value.split_once(';').unwrap_or((value, ""));
        let disposition = trim_lws(disposition);
        if !is_token(disposition) {
            return Err(HeaderError::syntax("bad disposition type"));
        }
        let params = Params::new(trim_lws(params));
        params.validate()?;
        Ok(Self {
            disposition,
            params,
        })
    }
}

impl ContentDisposition<'_> {
    /// Whether the disposition type is `disposition`, ignoring case.
    pub fn is(&self, disposition: &str) -> bool {
        self.disposition.eq_ignore_ascii_case(disposition)
    }

    /// Whether a recipient that does not understand the body may ignore it:
    /// `handling=optional`; absent, `required` is assumed (§20.11).
    pub fn is_optional(&self) -> bool {
        self.params
            .get("handling")
            .flatten()
            .is_some_and(|h| h.eq_ignore_ascii_case("optional"))
    }
}

impl fmt::Display for ContentDisposition<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.disposition)?;
        if !self.params.as_str().is_empty() {
            write!(f, ";{}", self.params.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3261_examples() {
        // §20.15.
        let c = ContentType::parse("application/sdp").unwrap();
        assert!(c.is("APPLICATION", "SDP"));
        assert!(!c.is("application", "pidf+xml"));
        let c = ContentType::parse("text/html; charset=ISO-8859-4").unwrap();
        assert_eq!(c.param("CHARSET").as_deref(), Some("ISO-8859-4"));
        let c = ContentType::parse(" multipart / mixed ;boundary=\"unique-boundary-1\"").unwrap();
        assert!(c.is_multipart());
        assert_eq!(c.subtype, "mixed");
        assert_eq!(c.param("boundary").as_deref(), Some("unique-boundary-1"));
        // §20.11.
        let d = ContentDisposition::parse("session").unwrap();
        assert!(d.is("SESSION"));
        assert!(!d.is_optional());
        let d = ContentDisposition::parse("icon ; handling = optional").unwrap();
        assert!(d.is_optional());
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "application",
            "application/",
            "/sdp",
            "appli cation/sdp",
            "application/sdp;charset",
            "application/sdp;charset=\"x",
            "application/sdp/x",
            "application/sdp;=x",
        ] {
            assert!(ContentType::parse(bad).is_err(), "{bad}");
        }
        for bad in ["", "a b", "session;=x", "render;a=b c"] {
            assert!(ContentDisposition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn print_parses_back() {
        for v in [
            "application/sdp",
            " text / plain ; charset = \"utf-8\" ",
            "multipart/mixed;boundary=\"a;b\"",
        ] {
            let c = ContentType::parse(v).unwrap();
            assert_eq!(ContentType::parse(&c.to_string()).unwrap(), c);
        }
        let d = ContentDisposition::parse("render ;handling=required").unwrap();
        assert_eq!(d.to_string(), "render;handling=required");
        assert_eq!(ContentDisposition::parse(&d.to_string()).unwrap(), d);
    }
}
