//! The authentication headers (RFC 3261 §20.7, §20.27, §20.28, §20.44, §22; RFC 7235 §2.1):
//! `Authorization` and `Proxy-Authorization` carry credentials, `WWW-Authenticate` and
//! `Proxy-Authenticate` a challenge. Each is `auth-scheme LWS auth-param *(COMMA auth-param)`.
//!
//! The views keep the scheme and the auth-params raw; the `Digest` semantics (hashes, nonces,
//! qop) live in [`crate::auth`], reached through `digest_challenge()` / `digest_credentials()`.
//!
//! These headers are **not** comma-separated lists: the commas separate auth-params. A 401 may
//! carry several `WWW-Authenticate` headers, one per algorithm (RFC 8760 §2.4), so a client reads
//! them all with [`crate::message::Message::typed_all`] (one view per header line).

use std::borrow::Cow;
use std::fmt;

use super::params::{split_unquoted, unquote};
use super::{HeaderError, TypedHeader, is_token, trim_lws};
use crate::auth::{Challenge, Credentials, DigestError};
use crate::message::StdHeader;

/// A scheme and its auth-params (or token68), borrowed from the header value.
#[derive(Clone, Copy, Debug)]
pub struct AuthValue<'a> {
    scheme: &'a str,
    params: &'a str,
    /// The whole value, trimmed: what [`crate::auth`] parses, so its error offsets match.
    value: &'a str,
}

impl<'a> AuthValue<'a> {
    /// Parses `auth-scheme [LWS (auth-param *(COMMA auth-param) / token68)]`.
    ///
    /// An auth-param value is a quoted string or, leniently as [`crate::auth`] reads it, any
    /// visible ASCII but `,` and `"` (some peers send a base64 nonce unquoted). Empty list
    /// elements are skipped (RFC 7230 §7).
    pub fn parse(value: &'a str) -> Result<Self, HeaderError> {
        let value = trim_lws(value);
        let end = value.find([' ', '\t', '\r', '\n']).unwrap_or(value.len());
        let scheme = &value[..end];
        if !is_token(scheme) {
            return Err(HeaderError::syntax("bad auth-scheme"));
        }
        let params = trim_lws(&value[end..]);
        if !is_token68(scheme, params) {
            for element in split_unquoted(params, b',') {
                let element = trim_lws(element);
                if !element.is_empty() {
                    auth_param(element)?;
                }
            }
        }
        Ok(Self {
            scheme,
            params,
            value,
        })
    }

    /// The scheme as written (`Digest`).
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// Whether the scheme is `Digest` (compared ignoring case, RFC 7235 §2.1).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// Everything after the scheme, raw.
    pub fn params_str(&self) -> &'a str {
        self.params
    }

    /// The auth-params in order: name and raw value (a quoted value keeps its quotes). Empty for
    /// a token68 value.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let list = if is_token68(self.scheme, self.params) {
            ""
        } else {
            self.params
        };
        split_unquoted(list, b',').filter_map(|e| auth_param(trim_lws(e)).ok())
    }

    /// The value of the auth-param `name` (ignoring case), quotes and escapes removed.
    pub fn param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unquote(v))
    }

    /// The token68 form (`Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`), when that is what follows the
    /// scheme.
    pub fn token68(&self) -> Option<&'a str> {
        is_token68(self.scheme, self.params).then_some(self.params)
    }
}

impl PartialEq for AuthValue<'_> {
    /// Equal when the scheme and the auth-params are written the same; the whitespace between
    /// them does not count.
    fn eq(&self, other: &Self) -> bool {
        self.scheme == other.scheme && self.params == other.params
    }
}

impl Eq for AuthValue<'_> {}

impl fmt::Display for AuthValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme)?;
        if !self.params.is_empty() {
            write!(f, " {}", self.params)?;
        }
        Ok(())
    }
}

/// Whether `s` is a `token68` (RFC 7235 §2.1:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`) — never for `Digest`, whose
/// grammar has auth-params only (RFC 7616 §3.3), so that `Digest realm` is an error.
fn is_token68(scheme: &str, s: &str) -> bool {
    if scheme.eq_ignore_ascii_case("Digest") {
        return false;
    }
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// One `name LWS? = LWS? value` element.
fn auth_param(element: &str) -> Result<(&str, &str), HeaderError> {
    let (name, value) = element
        .split_once('=')
        .ok_or(HeaderError::syntax("auth-param without '='"))?;
    let (name, value) = (trim_lws(name), trim_lws(value));
    if !is_token(name) {
        return Err(HeaderError::syntax("bad auth-param name"));
    }
    let ok = if let Some(inner) = value.strip_prefix('"') {
        closes_at_end(inner)
    } else {
        !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"')
    };
    if !ok {
        return Err(HeaderError::syntax("bad auth-param value"));
    }
    Ok((name, value))
}

/// Whether `inner` (after an opening quote) is a quoted string's content and closing quote with
/// nothing after it, and no control character but tab (which could smuggle a line break).
fn closes_at_end(inner: &str) -> bool {
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if b.get(i + 1)
                    .is_none_or(|&c| (c < 0x20 && c != b'\t') || c == 0x7f)
                {
                    return false;
                }
                i += 2;
            }
            b'"' => return i + 1 == b.len(),
            c if (c < 0x20 && c != b'\t') || c == 0x7f => return false,
            _ => i += 1,
        }
    }
    false
}

/// Declares an authentication header over [`AuthValue`], with its conversion to the digest type.
macro_rules! auth_header {
    ($(#[$doc:meta])* $name:ident, $std:ident, $digest:ident -> $ty:ty) => {
        $(#[$doc])*
        ///
        /// Not a comma-separated list (`LIST = false`): read every header line with
        /// [`crate::message::Message::typed_all`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name<'a>(pub AuthValue<'a>);

        impl<'a> TypedHeader<'a> for $name<'a> {
            const NAME: StdHeader = StdHeader::$std;
            fn parse(value: &'a str) -> Result<Self, HeaderError> {
                AuthValue::parse(value).map(Self)
            }
        }

        impl $name<'_> {
            /// The `Digest` parameters, typed by [`crate::auth`]
            /// ([`DigestError::NotDigest`] for another scheme).
            pub fn $digest(&self) -> Result<$ty, DigestError> {
                <$ty>::parse(self.0.value)
            }
        }

        impl<'a> std::ops::Deref for $name<'a> {
            type Target = AuthValue<'a>;
            fn deref(&self) -> &AuthValue<'a> {
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

auth_header!(
    /// `Authorization` (RFC 3261 §20.7, §22.2): a user agent's credentials.
    Authorization, Authorization, digest_credentials -> Credentials
);
auth_header!(
    /// `Proxy-Authorization` (RFC 3261 §20.28, §22.3): credentials for a proxy.
    ProxyAuthorization, ProxyAuthorization, digest_credentials -> Credentials
);
auth_header!(
    /// `WWW-Authenticate` (RFC 3261 §20.44, §22.2): a registrar's or user agent's challenge in a
    /// 401; one header per algorithm offered (RFC 8760 §2.4).
    WwwAuthenticate, WwwAuthenticate, digest_challenge -> Challenge
);
auth_header!(
    /// `Proxy-Authenticate` (RFC 3261 §20.27, §22.3): a proxy's challenge in a 407.
    ProxyAuthenticate, ProxyAuthenticate, digest_challenge -> Challenge
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Algorithm, Qop};

    /// RFC 3261 §20.44 / §25 example, and RFC 8760 §2.4's SHA-256 variant.
    const CHALLENGE: &str = r#"Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5"#;

    #[test]
    fn rfc3261_challenge_and_credentials() {
        let w = WwwAuthenticate::parse(CHALLENGE).unwrap();
        assert_eq!(w.scheme(), "Digest");
        assert!(w.is_digest());
        assert_eq!(w.param("REALM").as_deref(), Some("atlanta.com"));
        assert_eq!(w.param("opaque").as_deref(), Some(""));
        assert_eq!(w.param("stale").as_deref(), Some("FALSE"));
        assert_eq!(w.params().count(), 7);
        let c = w.digest_challenge().unwrap();
        assert_eq!(c.realm, "atlanta.com");
        assert_eq!(
            (c.algorithm, c.qop.as_slice()),
            (Algorithm::Md5, &[Qop::Auth][..])
        );

        // RFC 3261 §20.7.
        let a = Authorization::parse(
            "Digest username=\"Alice\", realm=\"atlanta.com\",\r\n  nonce=\"84a4cc6f3082121f32b42a2187831a9e\",\r\n  response=\"7587245234b3434cc3412213e5f113a5432\"",
        )
        .unwrap();
        assert_eq!(a.param("username").as_deref(), Some("Alice"));
        // The response of the RFC's example is 35 hex digits, so crate::auth refuses it.
        assert_eq!(
            a.digest_credentials(),
            Err(DigestError::BadParam("response"))
        );

        let p = ProxyAuthorization::parse(
            "Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"n\", uri=\"sip:bob@biloxi.com\", response=\"0123456789abcdef0123456789abcdef\"",
        )
        .unwrap();
        let cred = p.digest_credentials().unwrap();
        assert_eq!(cred.uri, "sip:bob@biloxi.com");

        let pa = ProxyAuthenticate::parse(
            "Digest realm=\"atlanta.com\", nonce=\"wf84f1ceczx41ae6cbe5aea9c8e88d359\", algorithm=SHA-256, qop=\"auth\"",
        )
        .unwrap();
        assert_eq!(pa.digest_challenge().unwrap().algorithm, Algorithm::Sha256);
    }

    #[test]
    fn whitespace_other_schemes_and_token68() {
        let a = AuthValue::parse("  dIgEsT\t  realm = \"a,b\" ,, nonce=abc/+== ,").unwrap();
        assert_eq!(a.scheme(), "dIgEsT");
        assert!(a.is_digest());
        assert_eq!(
            a.params().collect::<Vec<_>>(),
            [("realm", "\"a,b\""), ("nonce", "abc/+==")]
        );
        assert_eq!(a.param("realm").as_deref(), Some("a,b"));

        let b = AuthValue::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert!(!b.is_digest());
        assert_eq!(b.token68(), Some("QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert_eq!(b.params().count(), 0);
        assert_eq!(
            Authorization(b).digest_credentials(),
            Err(DigestError::NotDigest)
        );

        let bare = AuthValue::parse("Negotiate").unwrap();
        assert_eq!(
            (bare.params_str(), bare.to_string().as_str()),
            ("", "Negotiate")
        );
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "Digest,realm=x",
            "Dig@st realm=x",
            "Digest realm",
            "Digest =x",
            "Digest realm=\"x",
            "Digest realm=\"x\"y",
            "Digest realm=\"a\\",
            "Digest realm=\"a\u{1}\"",
            "Digest realm=a b",
            "Digest realm=",
        ] {
            assert!(AuthValue::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn print_parses_back() {
        for v in [
            CHALLENGE,
            "Digest   realm=\"x\\\"y\",nonce=1",
            "Basic abc=",
            "Negotiate",
        ] {
            let a = WwwAuthenticate::parse(v).unwrap();
            let printed = a.to_string();
            assert_eq!(WwwAuthenticate::parse(&printed).unwrap(), a, "{printed}");
            assert_eq!(
                a.digest_challenge().ok(),
                WwwAuthenticate::parse(&printed)
                    .unwrap()
                    .digest_challenge()
                    .ok()
            );
        }
        let c = Challenge::parse(CHALLENGE).unwrap().to_string();
        assert_eq!(
            ProxyAuthenticate::parse(&c).unwrap().digest_challenge(),
            Challenge::parse(CHALLENGE)
        );
    }
}
