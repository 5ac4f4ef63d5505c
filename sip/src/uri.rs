//! URIs (RFC 3261 §19.1, §25.1; RFC 3966 `tel:`; RFC 5118 IPv6 references), borrowed from the
//! header or start line they appear in.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::headers::{HeaderError, Params};

/// The scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:`.
    Sip,
    /// `sips:`.
    Sips,
    /// `tel:` (RFC 3966).
    Tel,
    /// Any other absolute URI (kept opaque).
    Other(&'a str),
}

/// The host part of a SIP URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A DNS name.
    Name(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference (`[…]` on the wire).
    V6(Ipv6Addr),
}

impl Host<'_> {
    /// Parses a host: `[v6]`, dotted IPv4, or a hostname (§25.1, leniently allowing `_`).
    pub fn parse(s: &str) -> Result<Host<'_>, HeaderError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(HeaderError::syntax("unclosed IPv6 reference"))?;
            return inner
                .parse()
                .or_else(|e| three_colons_before_ipv4(inner).ok_or(e))
                .map(Host::V6)
                .map_err(|_| HeaderError::syntax("bad IPv6 reference"));
        }
        if s.is_empty() {
            return Err(HeaderError::syntax("empty host"));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s
                .parse()
                .map(Host::V4)
                .map_err(|_| HeaderError::syntax("bad IPv4 address"));
        }
        if s.contains(':') {
            return Err(HeaderError::syntax("IPv6 address without brackets"));
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(HeaderError::syntax("bad host name"));
        }
        Ok(Host::Name(s))
    }
}

/// RFC 3261's IPv6address ABNF (`hexpart [":" IPv4address]`) lets `2001:db8:::192.0.2.1`
/// through: `::` followed by the `:` before an embedded IPv4 address. RFC 5118 §4.10 invites
/// receivers to ignore the extra colon, so exactly that shape is read as `2001:db8::192.0.2.1`.
fn three_colons_before_ipv4(s: &str) -> Option<Ipv6Addr> {
    let (head, v4) = s.rsplit_once(":::")?;
    let v4: Ipv4Addr = v4.parse().ok()?;
    format!("{head}::{v4}").parse().ok()
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed URI. For `tel:` the number is in `user` and there is no host; for other schemes
/// only `raw` is meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The scheme.
    pub scheme: Scheme<'a>,
    /// The user part, still %-escaped (§19.1.1); the number of a `tel:` URI.
    pub user: Option<&'a str>,
    /// The password (deprecated, §19.1.1; parsed so that it can be refused).
    pub password: Option<&'a str>,
    /// The host (absent for `tel:` and opaque schemes).
    pub host: Option<Host<'a>>,
    /// The port.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params<'a>,
    /// URI headers after `?`, raw.
    pub headers: Option<&'a str>,
    /// The whole URI as given.
    pub raw: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses a URI.
    pub fn parse(raw: &'a str) -> Result<Self, HeaderError> {
        let colon = raw
            .find(':')
            .ok_or(HeaderError::syntax("URI without scheme"))?;
        let (scheme_str, rest) = (&raw[..colon], &raw[colon + 1..]);
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            let valid = scheme_str
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme_str
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
            if !valid || rest.is_empty() {
                return Err(HeaderError::syntax("bad URI scheme"));
            }
            Scheme::Other(scheme_str)
        };
        if rest
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(HeaderError::syntax("whitespace in URI"));
        }
        let mut uri = Uri {
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::default(),
            headers: None,
            raw,
        };
        match scheme {
            Scheme::Other(_) => Ok(uri),
            Scheme::Tel => {
                let (number, params) = rest.split_once(';').unwrap_or((rest, ""));
                let ok = !number.is_empty()
                    && number.bytes().all(|b| {
                        b.is_ascii_hexdigit()
                            || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
                    });
                if !ok {
                    return Err(HeaderError::syntax("bad telephone number"));
                }
                uri.user = Some(number);
                uri.params = Params::new(params);
                Ok(uri)
            }
            Scheme::Sip | Scheme::Sips => {
                // A '?' before '@' belongs to the user part (user-unreserved, §25.1): the
                // headers start at the first '?' after the userinfo.
                let host_start = rest.find('@').map_or(0, |at| at + 1);
                let (rest, headers) = match rest[host_start..].find('?') {
                    Some(q) => (&rest[..host_start + q], Some(&rest[host_start + q + 1..])),
                    None => (rest, None),
                };
                uri.headers = headers;
                let hostport_and_params = match rest.find('@') {
                    Some(at) => {
                        let userinfo = &rest[..at];
                        let (user, password) = match userinfo.split_once(':') {
                            Some((u, p)) => (u, Some(p)),
                            None => (userinfo, None),
                        };
                        check_escapes(user)?;
                        uri.user = Some(user);
                        uri.password = password;
                        &rest[at + 1..]
                    }
                    None => rest,
                };
                let (hostport, params) = hostport_and_params
                    .split_once(';')
                    .unwrap_or((hostport_and_params, ""));
                uri.params = Params::new(params);
                let (host, port) = split_host_port(hostport)?;
                uri.host = Some(Host::parse(host)?);
                uri.port = port;
                Ok(uri)
            }
        }
    }

    /// The user part with %-escapes decoded (lossy for invalid UTF-8).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.map(unescape)
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params
            .get("transport")
            .flatten()
            .map(str::to_ascii_lowercase)
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Splits `host[:port]`, honouring `[v6]:port` (RFC 5118 §4.10).
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), HeaderError> {
    let (host, port) = if s.starts_with('[') {
        let end = s
            .find(']')
            .ok_or(HeaderError::syntax("unclosed IPv6 reference"))?;
        match &s[end + 1..] {
            "" => (&s[..=end], None),
            p => (
                &s[..=end],
                Some(
                    p.strip_prefix(':')
                        .ok_or(HeaderError::syntax("junk after IPv6 reference"))?,
                ),
            ),
        }
    } else if s.matches(':').count() > 1 {
        return Err(HeaderError::syntax("IPv6 address without brackets"));
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|_| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(HeaderError::syntax("bad port"))
        })
        .transpose()?;
    Ok((host, port))
}

fn check_escapes(s: &str) -> Result<(), HeaderError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return Err(HeaderError::syntax("bad %-escape in URI"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Decodes %-escapes (§19.1.2); invalid escapes are kept literally.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uris_with_user_params_headers_and_ipv6() {
        let u = Uri::parse("sip:alice:secret@example.com:5061;transport=TCP;lr?subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Some(Host::Name("example.com")));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert_eq!(u.params.get("lr"), Some(None));
        assert_eq!(u.headers, Some("subject=x"));

        let u = Uri::parse("sips:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.host, Some(Host::V6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port, Some(5070));
        assert!(Uri::parse("sip:2001:db8::10").is_err());

        // RFC 5118 §4.10: the extra colon RFC 3261's ABNF allows before an IPv4 tail is ignored.
        let u = Uri::parse("sip:user@[2001:db8:::192.0.2.1]").unwrap();
        assert_eq!(
            u.host,
            Some(Host::V6("2001:db8::192.0.2.1".parse().unwrap()))
        );
        for bad in [
            "[2001:db8:::1]",
            "[2001:db8::::192.0.2.1]",
            "[:::192.0.2.300]",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
        assert!(Uri::parse("sip:[2001:db8::10").is_err());

        let u = Uri::parse("sip:a?b@example.com;lr?subject=x").unwrap();
        assert_eq!((u.user, u.headers), (Some("a?b"), Some("subject=x")));
        assert_eq!(u.host, Some(Host::Name("example.com")));

        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Some(Host::Name("example.com")));
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some("user;par=u@example.net")
        );

        let u = Uri::parse("SIP:%61lice@192.0.2.4").unwrap();
        assert_eq!(u.user_unescaped().as_deref(), Some("alice"));
        assert_eq!(u.host, Some(Host::V4(Ipv4Addr::new(192, 0, 2, 4))));
        assert!(Uri::parse("sip:a%zz@b").is_err());
        assert!(Uri::parse("sip:a@b:99999").is_err());
        assert!(Uri::parse("sip:a b@c").is_err());
    }

    #[test]
    fn tel_and_other_schemes() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.params.get("phone-context"), Some(Some("example.com")));
        let u = Uri::parse("http://example.com/x").unwrap();
        assert_eq!(u.scheme, Scheme::Other("http"));
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("9x:foo").is_err());
    }
}
