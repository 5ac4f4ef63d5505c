//! `Via` (§20.42, §18.2.2; RFC 3581 `rport`).

use std::fmt;
use std::net::IpAddr;

use super::params::Params;
use super::{HeaderError, TypedHeader, is_token, trim_lws};
use crate::message::StdHeader;
use crate::uri::Host;

/// One Via value: `SIP/2.0/UDP host[:port];branch=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// The transport token as written (`UDP`, `TCP`, `TLS`, `WS`, `WSS`…).
    pub transport: &'a str,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by host as written.
    pub host_raw: &'a str,
    /// The sent-by port.
    pub port: Option<u16>,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Via<'a> {
    const NAME: StdHeader = StdHeader::Via;
    const LIST: bool = true;

    fn parse(value: &'a str) -> Result<Self, HeaderError> {
        // sent-protocol = name SLASH version SLASH transport, with LWS allowed around SLASH.
        let mut parts = value.splitn(3, '/');
        let name = trim_lws(parts.next().unwrap_or(""));
        let version = trim_lws(
            parts
                .next()
                .ok_or(HeaderError::syntax("bad sent-protocol"))?,
        );
        let rest = trim_lws(
            parts
                .next()
                .ok_or(HeaderError::syntax("bad sent-protocol"))?,
        );
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(HeaderError::syntax("bad sent-protocol"));
        }
        let split = rest
            .find([' ', '\t'])
            .ok_or(HeaderError::syntax("no sent-by"))?;
        let transport = &rest[..split];
        if !is_token(transport) {
            return Err(HeaderError::syntax("bad transport"));
        }
        let rest = trim_lws(&rest[split..]);
        let (sent_by, params) = rest.split_once(';').unwrap_or((rest, ""));
        // COLON = SWS ":" SWS: whitespace may surround the port separator.
        let (host_raw, port) = sent_by_parts(trim_lws(sent_by))?;
        let host = Host::parse(host_raw)?;
        let params = Params::new(params);
        params.validate()?;
        Ok(Self {
            transport,
            host,
            host_raw,
            port,
            params,
        })
    }
}

/// Splits `host SWS ":" SWS port`, the host possibly an IPv6 reference.
fn sent_by_parts(raw: &str) -> Result<(&str, Option<u16>), HeaderError> {
    let (host, port) = if raw.starts_with('[') {
        let end = raw
            .find(']')
            .ok_or(HeaderError::syntax("unclosed IPv6 reference"))?;
        let after = trim_lws(&raw[end + 1..]);
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or(HeaderError::syntax("bad sent-by"))?,
            ),
        };
        (&raw[..=end], port)
    } else {
        match raw.split_once(':') {
            Some((h, p)) if !p.contains(':') => (trim_lws(h), Some(p)),
            Some(_) => return Err(HeaderError::syntax("IPv6 address without brackets")),
            None => (raw, None),
        }
    };
    if host.contains([' ', '\t']) {
        return Err(HeaderError::syntax("bad sent-by"));
    }
    let port = port
        .map(|p| {
            let p = trim_lws(p);
            p.parse::<u16>()
                .ok()
                .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(HeaderError::syntax("bad port"))
        })
        .transpose()?;
    Ok((host, port))
}

impl<'a> Via<'a> {
    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// The `received` parameter (§18.2.1).
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `received` parameter as an address. RFC 3261's grammar writes an IPv6 address there
    /// without brackets, RFC 5118 §4.5 asks receivers to accept it with brackets as well.
    pub fn received_ip(&self) -> Option<Result<IpAddr, HeaderError>> {
        let raw = self.received()?;
        let bare = raw
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(raw);
        let parsed = match bare.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) if bare.len() != raw.len() => None,
            other => other.ok(),
        };
        Some(parsed.ok_or(HeaderError::syntax("bad received address").in_header(StdHeader::Via)))
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when requested without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The transport, upper-cased for comparison.
    pub fn transport_upper(&self) -> String {
        self.transport.to_ascii_uppercase()
    }
}

impl fmt::Display for Via<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host_raw)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
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
    fn typical_and_spaced_vias() {
        let v =
            Via::parse("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Name("pc33.atlanta.com"));
        assert_eq!(v.port, Some(5066));
        assert_eq!(v.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(v.rport(), Some(None));

        let v = Via::parse("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.host, Host::V4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch(), Some("390skdjuw"));

        let v = Via::parse(
            "SIP/2.0/TCP [2001:db8::9:1] : 5070 ; branch = z9hG4bK1 ; received=[2001:db8::9:255]",
        )
        .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.host_raw, "[2001:db8::9:1]");
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        let v6: IpAddr = "2001:db8::9:255".parse().unwrap();
        assert_eq!(v.received_ip(), Some(Ok(v6)));
        for (received, ip) in [
            ("2001:db8::9:255", Some(v6)),
            ("192.0.2.1", "192.0.2.1".parse().ok()),
            ("[192.0.2.1]", None),
            ("host.example.com", None),
        ] {
            let value = format!("SIP/2.0/UDP a;received={received}");
            let v = Via::parse(&value).unwrap();
            assert_eq!(v.received_ip().unwrap().ok(), ip, "{received}");
        }
        assert_eq!(Via::parse("SIP/2.0/UDP a").unwrap().received_ip(), None);

        for bad in [
            "SIP/2.0 UDP a",
            "SIP/3.0/UDP a",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP a:b",
            "SIP/2.0/UDP a;=x",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn print_parses_back() {
        let v =
            Via::parse("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKasudf;rport=5060").unwrap();
        assert_eq!(
            v.to_string(),
            "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKasudf;rport=5060"
        );
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
        assert_eq!(v.rport(), Some(Some(5060)));
    }
}
