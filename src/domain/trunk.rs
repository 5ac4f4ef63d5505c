//! The settings of a SIP trunk: where the provider is, whether masterz registers there, which
//! addresses may send calls in, and which numbers (DIDs) ring here.
//!
//! They are stored as the JSON `settings` of a `sip_trunk` channel account. Every way in (the
//! channels API, `masterz admin create-trunk`) goes through [`TrunkSettings::from_json`], which
//! normalises and names the field at fault; what is stored therefore always reads back. The
//! password is not here: it is the encrypted credential `{"password": "…"}` of the account.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::phone::normalize_e164;
use super::sip::TrunkTransport;

/// A setting that is not acceptable, with its name (`settings.port`, `settings.dids[1]`, …).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An IPv4 or IPv6 network, `ADDR/PREFIX`; a bare address is a /32 or /128. Host bits below
/// the prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network of `addr` with `prefix` bits; `None` if the prefix is too long for the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let network = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
            _ => return None,
        };
        Some(Self { network, prefix })
    }

    /// Whether `addr` is in this network. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what
    /// a dual-stack socket reports) counts as the IPv4 address it maps.
    pub fn contains(&self, addr: IpAddr) -> bool {
        Self::new(addr.to_canonical(), self.prefix).is_some_and(|n| n.network == self.network)
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not an IP address or CIDR range");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix = match prefix {
            None if addr.is_ipv4() => 32,
            None => 128,
            // `u8::from_str` takes a leading `+`; a prefix is digits only.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        Self::new(addr, prefix).ok_or_else(|| format!("{text:?}: prefix too long"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Normalises a trunk host: an IPv4 address, an IPv6 address (stored in brackets, as it goes
/// into a SIP URI), or a DNS name (lower case, without a trailing dot).
pub fn normalize_host(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    if let Some(v6) = inner
        .or(Some(text))
        .and_then(|t| t.parse::<Ipv6Addr>().ok())
    {
        return Ok(format!("[{v6}]"));
    }
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Ok(v4.to_string());
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = name.split('.').collect();
    // A last label of digits only is a mistyped IPv4 address, never a top-level domain.
    let numeric_tld = labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if name.len() > 253 || !labels.iter().all(|l| label_ok(l)) || numeric_tld {
        let hint = if text.contains(':') && inner.is_none() {
            " (give the port separately)"
        } else {
            ""
        };
        return Err(format!("{text:?} is not an IP address or host name{hint}"));
    }
    Ok(name)
}

/// Splits `HOST[:PORT]` as the command line takes it: `sip.example.com:5061`, `192.0.2.1`,
/// `[2001:db8::1]:5060`, or a bare IPv6 address (several colons, so no port).
pub fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: missing ']'"))?;
        match after {
            "" => (&text[..inside.len() + 2], None),
            _ => match after.strip_prefix(':') {
                Some(p) => (&text[..inside.len() + 2], Some(p)),
                None => return Err(format!("{text:?}: expected :PORT after ']'")),
            },
        }
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').unwrap_or((text, ""));
        (h, Some(p))
    } else {
        (text, None)
    };
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(format!("{p:?} is not a port (1–65535)")),
        })
        .transpose()?;
    Ok((normalize_host(host)?, port))
}

/// Default registration interval asked of the provider, in seconds.
pub const DEFAULT_EXPIRES: u32 = 3600;

/// The settings of a `sip_trunk` channel account. New optional fields (a caller id to present,
/// codecs…) extend it with defaults, so stored settings keep reading back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TrunkSettings {
    /// The provider's registrar and proxy: DNS name (SRV, then A/AAAA) or IP address; IPv6 in
    /// brackets.
    pub host: String,
    /// Port; none: from DNS SRV, else 5060 (5061 for TLS).
    pub port: Option<u16>,
    /// Transport towards the provider.
    pub transport: TrunkTransport,
    /// Whether masterz registers to `host` (needs `username` and the `password` credential).
    pub register: bool,
    /// Digest username (and REGISTER user part) at the provider.
    pub username: Option<String>,
    /// Addresses that may send calls in on this trunk, as CIDR ranges.
    #[schema(value_type = Vec<String>, example = json!(["192.0.2.0/24"]))]
    pub sources: Vec<Cidr>,
    /// Numbers that ring on this trunk, in E.164.
    pub dids: Vec<String>,
    /// Whether calls on this trunk are recorded: `true` or `false` override the company's
    /// `recording_enabled`; `None` (absent or `null`) follows it.
    pub recording: Option<bool>,
    /// Registration interval asked of the provider, in seconds (60–86400).
    pub expires: u32,
}

const KNOWN: &[&str] = &[
    "host",
    "port",
    "transport",
    "register",
    "username",
    "sources",
    "dids",
    "recording",
    "expires",
];

type Object = serde_json::Map<String, serde_json::Value>;

/// Reads `settings.<key>` as `T`; absent or `null` is `None`.
fn read<T: serde::de::DeserializeOwned>(
    obj: &Object,
    key: &str,
    what: &str,
) -> Result<Option<T>, FieldError> {
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|_| FieldError::new(format!("settings.{key}"), format!("must be {what}"))),
    }
}

impl TrunkSettings {
    /// Parses and normalises settings given as JSON, naming the field at fault. Unknown keys
    /// are refused, so that a misspelt `regsiter` does not silently mean "off".
    pub fn from_json(value: &serde_json::Value) -> Result<Self, FieldError> {
        let obj = value
            .as_object()
            .ok_or_else(|| FieldError::new("settings", "must be an object"))?;
        if let Some(key) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(FieldError::new(
                format!("settings.{key}"),
                format!("unknown setting; a sip_trunk takes {}", KNOWN.join(", ")),
            ));
        }
        let host: String = read(obj, "host", "a string")?
            .ok_or_else(|| FieldError::new("settings.host", "is required"))?;
        let host = normalize_host(&host).map_err(|m| FieldError::new("settings.host", m))?;
        let port = read::<u16>(obj, "port", "a port number (1–65535)")?;
        if port == Some(0) {
            return Err(FieldError::new(
                "settings.port",
                "must be a port number (1–65535)",
            ));
        }
        let transport = match read::<String>(obj, "transport", "a string")? {
            None => TrunkTransport::default(),
            Some(t) => TrunkTransport::parse(t.trim())
                .ok_or_else(|| FieldError::new("settings.transport", "must be udp, tcp or tls"))?,
        };
        let register = read(obj, "register", "true or false")?.unwrap_or(false);
        let username = match read::<String>(obj, "username", "a string")? {
            Some(u) if u.trim().is_empty() => None,
            Some(u) => {
                let u = u.trim().to_owned();
                if u.chars().count() > 128 || u.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(FieldError::new(
                        "settings.username",
                        "must be at most 128 characters, without spaces",
                    ));
                }
                Some(u)
            }
            None => None,
        };
        let mut sources = Vec::new();
        for (i, s) in read::<Vec<String>>(obj, "sources", "a list of strings")?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let cidr = s
                .parse::<Cidr>()
                .map_err(|m| FieldError::new(format!("settings.sources[{i}]"), m))?;
            if !sources.contains(&cidr) {
                sources.push(cidr);
            }
        }
        let mut dids = Vec::new();
        for (i, d) in read::<Vec<String>>(obj, "dids", "a list of strings")?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let did = normalize_e164(d).ok_or_else(|| {
                FieldError::new(
                    format!("settings.dids[{i}]"),
                    format!("{d:?} is not an international number (E.164, e.g. +4930123456)"),
                )
            })?;
            if !dids.contains(&did) {
                dids.push(did);
            }
        }
        let recording = read(obj, "recording", "true, false or null")?;
        let expires =
            read::<u32>(obj, "expires", "a number of seconds")?.unwrap_or(DEFAULT_EXPIRES);
        if !(60..=86_400).contains(&expires) {
            return Err(FieldError::new(
                "settings.expires",
                "must be 60 to 86400 seconds",
            ));
        }
        if register && username.is_none() {
            return Err(FieldError::new(
                "settings.username",
                "is required when register is true",
            ));
        }
        Ok(Self {
            host,
            port,
            transport,
            register,
            username,
            sources,
            dids,
            recording,
            expires,
        })
    }

    /// The settings as stored.
    pub fn to_json(&self) -> serde_json::Value {
        // Serialising plain strings, numbers and booleans cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Checks the settings against the credentials: registering needs a password.
    pub fn check_password(&self, has_password: bool) -> Result<(), FieldError> {
        if self.register && !has_password {
            return Err(FieldError::new(
                "credentials.password",
                "is required when register is true",
            ));
        }
        Ok(())
    }

    /// Whether `addr` may send calls in on this trunk.
    pub fn allows_source(&self, addr: IpAddr) -> bool {
        self.sources.iter().any(|c| c.contains(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cidrs() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert_eq!(
            "192.0.2.7".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.7/32"
        );
        let v6: Cidr = "[2001:db8::1]/32".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert_eq!("::1".parse::<Cidr>().unwrap().prefix(), 128);
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().prefix(), 0);
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "x/8",
            "1.2.3.4/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(
            normalize_host("SIP.Example.com.").unwrap(),
            "sip.example.com"
        );
        assert_eq!(normalize_host("2001:DB8::1").unwrap(), "[2001:db8::1]");
        assert_eq!(normalize_host("[2001:db8::1]").unwrap(), "[2001:db8::1]");
        assert_eq!(normalize_host("192.0.2.1").unwrap(), "192.0.2.1");
        for bad in [
            "",
            "999.1.1.1",
            "a b",
            "-a.com",
            "sip.example.com:5060",
            "[1.2.3.4]",
            "a..b",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
        assert!(
            normalize_host("sip.example.com:5060")
                .unwrap_err()
                .contains("port")
        );
    }

    #[test]
    fn host_and_port() {
        let ok = |t: &str| split_host_port(t).unwrap();
        assert_eq!(ok("sip.example.com"), ("sip.example.com".into(), None));
        assert_eq!(
            ok("sip.example.com:5061"),
            ("sip.example.com".into(), Some(5061))
        );
        assert_eq!(
            ok("[2001:db8::1]:5060"),
            ("[2001:db8::1]".into(), Some(5060))
        );
        assert_eq!(ok("[2001:db8::1]"), ("[2001:db8::1]".into(), None));
        assert_eq!(ok("2001:db8::1"), ("[2001:db8::1]".into(), None));
        for bad in [
            "host:0",
            "host:70000",
            "host:",
            "host:+5",
            "[::1]x",
            "[::1",
            ":5060",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_normalise_and_default() {
        let s = TrunkSettings::from_json(&json!({
            "host": "Sip.Example.com", "dids": ["+49 30 1234567", "0049301234567"],
            "sources": ["192.0.2.0/24", "2001:db8::/32"], "register": true, "username": "acct1",
        }))
        .unwrap();
        assert_eq!(s.host, "sip.example.com");
        assert_eq!(s.dids, ["+49301234567"]);
        assert_eq!(s.transport, TrunkTransport::Udp);
        assert_eq!((s.expires, s.recording, s.port), (3600, None, None));
        assert!(s.allows_source("192.0.2.9".parse().unwrap()));
        assert!(!s.allows_source("198.51.100.1".parse().unwrap()));
        // What is stored reads back as the same settings.
        assert_eq!(TrunkSettings::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn settings_errors_name_the_field() {
        let field = |v: serde_json::Value| TrunkSettings::from_json(&v).unwrap_err().field;
        assert_eq!(field(json!({})), "settings.host");
        assert_eq!(
            field(json!({"host": "h.example", "port": 0})),
            "settings.port"
        );
        assert_eq!(
            field(json!({"host": "h.example", "port": "x"})),
            "settings.port"
        );
        assert_eq!(
            field(json!({"host": "h.example", "transport": "ws"})),
            "settings.transport"
        );
        assert_eq!(
            field(json!({"host": "h.example", "register": true})),
            "settings.username"
        );
        assert_eq!(
            field(json!({"host": "h.example", "sources": ["10.0.0.0/8", "nope"]})),
            "settings.sources[1]"
        );
        assert_eq!(
            field(json!({"host": "h.example", "dids": ["0301234"]})),
            "settings.dids[0]"
        );
        assert_eq!(
            field(json!({"host": "h.example", "expires": 5})),
            "settings.expires"
        );
        assert_eq!(
            field(json!({"host": "h.example", "regsiter": true})),
            "settings.regsiter"
        );
        assert_eq!(field(json!([])), "settings");
    }
}
