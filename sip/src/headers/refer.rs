//! Call transfer: `Refer-To` / `r` (RFC 3515 §2.1), `Referred-By` / `b` (RFC 3892 §3) and
//! `Replaces` (RFC 3891 §6.1), which an attended transfer carries escaped inside the Refer-To
//! URI (`<sip:bob@example.com?Replaces=12345%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>`, §7.1).
//!
//! ```text
//! Refer-To    = ("Refer-To" / "r") HCOLON (name-addr / addr-spec) *(SEMI generic-param)
//! Referred-By = ("Referred-By" / "b") HCOLON referrer-uri *(SEMI (referredby-id-param / generic-param))
//! Replaces    = "Replaces" HCOLON callid *(SEMI replaces-param)
//! replaces-param = to-tag / from-tag / early-flag / generic-param
//! ```

use std::borrow::Cow;
use std::fmt;

use super::name_addr::{NameAddr, name_addr_header};
use super::params::Params;
use super::{CallIdHeader, HeaderError, TypedHeader, trim_lws};
use crate::message::StdHeader;
use crate::uri::{Uri, unescape};

name_addr_header!(
    /// `Refer-To` (RFC 3515 §2.1): where the recipient of a REFER should send its request.
    ReferTo, ReferTo, false
);
name_addr_header!(
    /// `Referred-By` (RFC 3892 §3): who asked for the transfer.
    ReferredBy, ReferredBy, false
);

impl ReferTo<'_> {
    /// The `Replaces` header embedded in the URI (`?Replaces=…`, RFC 3891 §7.1), unescaped and
    /// parsed; `Ok(None)` when there is none.
    pub fn replaces(&self) -> Result<Option<Replaces<'static>>, HeaderError> {
        let uri = Uri::parse(self.0.uri).map_err(|e| e.in_header(StdHeader::ReferTo))?;
        let Some(headers) = uri.headers else {
            return Ok(None);
        };
        let Some(raw) = headers.split('&').find_map(|h| {
            let (name, value) = h.split_once('=')?;
            unescape(name)
                .eq_ignore_ascii_case("Replaces")
                .then_some(value)
        }) else {
            return Ok(None);
        };
        let value = unescape(raw);
        Replaces::parse(&value)
            .map(|r| Some(r.into_owned()))
            .map_err(|e| e.in_header(StdHeader::Replaces))
    }
}

impl<'a> ReferredBy<'a> {
    /// The `cid` parameter (RFC 3892 §3): the Content-ID of the signed referral token, unquoted.
    pub fn cid(&self) -> Option<Cow<'a, str>> {
        self.0.params.get_unquoted("cid")
    }
}

/// `Replaces` (RFC 3891 §6.1): the dialog a new INVITE replaces, as seen from the sender —
/// `to-tag` is the tag of the peer the recipient talks to, `from-tag` the recipient's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaces<'a> {
    /// The Call-ID of the dialog.
    pub call_id: Cow<'a, str>,
    /// The `to-tag` parameter.
    pub to_tag: Cow<'a, str>,
    /// The `from-tag` parameter.
    pub from_tag: Cow<'a, str>,
    /// The `early-only` flag: replace only an early dialog (§3).
    pub early_only: bool,
    /// All parameters as written, the tags included.
    params: Cow<'a, str>,
}

impl<'a> TypedHeader<'a> for Replaces<'a> {
    const NAME: StdHeader = StdHeader::Replaces;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        // A callid has no ';' (word, §25.1), so the first one ends it.
        let (call_id, params) = value.split_once(';').unwrap_or((value, ""));
        let call_id = CallIdHeader::parse(call_id)?.0;
        let params = trim_lws(params);
        let p = Params::new(params);
        p.validate()?;
        // Exactly one of each tag (§6.1), so that the dialog is not ambiguous.
        let tag = |name: &str| {
            let mut values = p.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
            match (values.next(), values.next()) {
                (Some((_, Some(v))), None) => Ok(v),
                (None, _) => Err(HeaderError::syntax("missing to-tag or from-tag")),
                _ => Err(HeaderError::syntax("bad or repeated to-tag or from-tag")),
            }
        };
        Ok(Self {
            call_id: Cow::Borrowed(call_id),
            to_tag: Cow::Borrowed(tag("to-tag")?),
            from_tag: Cow::Borrowed(tag("from-tag")?),
            early_only: p.get("early-only").is_some(),
            params: Cow::Borrowed(params),
        })
    }
}

impl Replaces<'_> {
    /// All parameters (`to-tag`, `from-tag`, `early-only` and any extension).
    pub fn params(&self) -> Params<'_> {
        Params::new(&self.params)
    }

    /// A copy that owns its text, as [`ReferTo::replaces`] returns it.
    pub fn into_owned(self) -> Replaces<'static> {
        Replaces {
            call_id: Cow::Owned(self.call_id.into_owned()),
            to_tag: Cow::Owned(self.to_tag.into_owned()),
            from_tag: Cow::Owned(self.from_tag.into_owned()),
            early_only: self.early_only,
            params: Cow::Owned(self.params.into_owned()),
        }
    }

    /// The `Replaces=…` URI header for a Refer-To (RFC 3891 §7.1): the value %-escaped so that
    /// only `hnv-unreserved` and `unreserved` characters remain (RFC 3261 §25.1 `hvalue`).
    pub fn to_uri_header(&self) -> String {
        let value = self.to_string();
        let mut out = String::with_capacity(9 + value.len() * 3 / 2);
        out.push_str("Replaces=");
        for b in value.bytes() {
            let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&b);
            if keep {
                out.push(char::from(b));
            } else {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
        out
    }
}

impl fmt::Display for Replaces<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.call_id)?;
        if !self.params.is_empty() {
            write!(f, ";{}", self.params)?;
        }
        Ok(())
    }
}

/// A `Refer-To` value for `target` carrying `replaces` (attended transfer, RFC 3891 §7.1),
/// added to the URI headers `target` may already have.
pub fn refer_to_with_replaces(target: &NameAddr<'_>, replaces: &Replaces<'_>) -> String {
    let has_headers = Uri::parse(target.uri).is_ok_and(|u| u.headers.is_some());
    let sep = if has_headers { '&' } else { '?' };
    let uri = format!("{}{sep}{}", target.uri, replaces.to_uri_header());
    NameAddr {
        uri: &uri,
        ..*target
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3515_and_rfc3892_examples() {
        let r = ReferTo::parse("<sip:dave@denver.example.org?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>").unwrap();
        let rep = r.replaces().unwrap().unwrap();
        assert_eq!(rep.call_id, "12345@192.168.118.3");
        assert_eq!((&*rep.to_tag, &*rep.from_tag), ("12345", "5FFE-3994"));
        assert!(!rep.early_only);

        let r = ReferTo::parse("sip:bob@biloxi.example.net").unwrap();
        assert_eq!(r.uri, "sip:bob@biloxi.example.net");
        assert_eq!(r.replaces(), Ok(None));
        let r = ReferTo::parse("<sip:carol@cleveland.example.org;method=SUBSCRIBE>").unwrap();
        assert_eq!(r.replaces(), Ok(None));
        assert_eq!(
            ReferTo::parse("<http://example.com/a>").unwrap().replaces(),
            Ok(None)
        );
        assert!(
            ReferTo::parse("<sip:a@b:99999>")
                .unwrap()
                .replaces()
                .is_err()
        );

        let b = ReferredBy::parse(
            "<sip:referrer@referrer.example>;cid=\"20398823.2UWQFN309shb3@referrer.example\"",
        )
        .unwrap();
        assert_eq!(
            b.cid().as_deref(),
            Some("20398823.2UWQFN309shb3@referrer.example")
        );
        assert_eq!(b.uri, "sip:referrer@referrer.example");
    }

    #[test]
    fn rfc3891_replaces() {
        // §6.1 and §7.
        let r = Replaces::parse("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff").unwrap();
        assert_eq!(r.call_id, "98732@sip.example.com");
        assert_eq!((&*r.to_tag, &*r.from_tag), ("ff87ff", "r33th4x0r"));
        let r = Replaces::parse(
            " 425928@bobster.example.org ; to-tag = 7743 ; from-tag=6472 ; early-only ",
        )
        .unwrap();
        assert!(r.early_only);
        assert_eq!(r.to_tag, "7743");
        assert_eq!(r.params().get("early-only"), Some(None));
        for bad in [
            "",
            "a@b",
            "a@b;to-tag=1",
            "a@b;from-tag=1",
            "a b;to-tag=1;from-tag=2",
            "a@b;to-tag=1;from-tag=2;to-tag=3",
            "a@b;to-tag;from-tag=2",
            "a@b@c;to-tag=1;from-tag=2",
        ] {
            assert!(Replaces::parse(bad).is_err(), "{bad}");
        }
        assert!(
            ReferTo::parse("<sip:a@b?Replaces=x%3Bto-tag%3D1>")
                .unwrap()
                .replaces()
                .is_err()
        );
    }

    #[test]
    fn print_parses_back_and_replaces_survives_escaping() {
        for v in [
            "a84b4c76e66710@pc33.atlanta.com;to-tag=1;from-tag=2",
            "x;  to-tag=1 ;from-tag=\"a;b\";early-only",
        ] {
            let r = Replaces::parse(v).unwrap();
            assert_eq!(Replaces::parse(&r.to_string()).unwrap(), r);
            let target = NameAddr::parse("Bob <sip:bob@example.com;transport=tcp>").unwrap();
            let refer = refer_to_with_replaces(&target, &r);
            let parsed = ReferTo::parse(&refer).unwrap();
            assert_eq!(parsed.display, Some("Bob"));
            assert_eq!(
                parsed.replaces(),
                Ok(Some(r.clone().into_owned())),
                "{refer}"
            );
        }
        let target = NameAddr::parse("<sip:bob@example.com?Subject=hi>").unwrap();
        let r = Replaces::parse("c@h;to-tag=a;from-tag=b").unwrap();
        let refer = refer_to_with_replaces(&target, &r);
        assert_eq!(
            refer,
            "<sip:bob@example.com?Subject=hi&Replaces=c%40h%3Bto-tag%3Da%3Bfrom-tag%3Db>"
        );
        assert_eq!(
            ReferTo::parse(&refer).unwrap().replaces(),
            Ok(Some(r.into_owned()))
        );
    }
}
