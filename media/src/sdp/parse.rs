//! The SDP reader: line by line, lenient where real peers are sloppy (line endings, blank lines,
//! line order, unparsable attribute values are kept as plain attributes), strict where a wrong
//! guess would send media to the wrong place (`o=`, `c=`, `m=`).

use std::net::IpAddr;

use super::{
    Attribute, Line, MAX_LINE_LEN, MAX_LINES, MAX_MEDIA, MAX_SDP_LEN, MediaDescription, Origin,
    RtpMap, SdpError, SessionDescription, line_rank,
};
use crate::codec::Direction;

pub(super) fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLarge { max: MAX_SDP_LEN });
    }
    let mut session = SessionBuilder::default();
    let mut media: Vec<MediaDescription> = Vec::new();
    let mut seen_version = false;
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        if index >= MAX_LINES {
            return Err(SdpError::TooMany {
                what: "lines",
                max: MAX_LINES,
            });
        }
        if raw.len() > MAX_LINE_LEN {
            return Err(malformed(line, "line too long"));
        }
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        // RFC 8866 §9: no NUL, CR or LF in a line; no other control character has a use either.
        if raw.chars().any(|c| c.is_control() && c != '\t') {
            return Err(malformed(line, "control character"));
        }
        let bytes = raw.as_bytes();
        if bytes.len() < 2 || !bytes[0].is_ascii_alphabetic() || bytes[1] != b'=' {
            return Err(malformed(line, "not a <type>=<value> line"));
        }
        let kind = char::from(bytes[0]);
        // Both leading bytes are ASCII, so index 2 is a character boundary.
        let value = &raw[2..];
        if !seen_version {
            if kind != 'v' || value != "0" {
                return Err(malformed(line, "the first line must be v=0"));
            }
            seen_version = true;
            continue;
        }
        if kind == 'm' {
            if media.len() >= MAX_MEDIA {
                return Err(SdpError::TooMany {
                    what: "m-lines",
                    max: MAX_MEDIA,
                });
            }
            media.push(parse_media_line(line, value)?);
            continue;
        }
        match media.last_mut() {
            Some(m) => media_line(m, line, kind, value)?,
            None => session.line(line, kind, value)?,
        }
    }
    if !seen_version {
        return Err(malformed(1, "empty SDP"));
    }
    for m in &mut media {
        m.other_lines.sort_by_key(|l| line_rank(l.kind));
    }
    session.finish(media)
}

fn malformed(line: usize, reason: &'static str) -> SdpError {
    SdpError::Malformed { line, reason }
}

#[derive(Default)]
struct SessionBuilder {
    origin: Option<Origin>,
    session_name: Option<String>,
    connection: Option<IpAddr>,
    bandwidths: Vec<String>,
    times: Vec<String>,
    direction: Option<Direction>,
    attributes: Vec<Attribute>,
    other_lines: Vec<Line>,
}

impl SessionBuilder {
    fn line(&mut self, line: usize, kind: char, value: &str) -> Result<(), SdpError> {
        match kind {
            'v' => return Err(malformed(line, "repeated v= line")),
            'o' => {
                if self.origin.is_some() {
                    return Err(malformed(line, "repeated o= line"));
                }
                self.origin = Some(parse_origin(line, value)?);
            }
            's' => {
                if self.session_name.is_some() {
                    return Err(malformed(line, "repeated s= line"));
                }
                self.session_name = Some(value.to_owned());
            }
            'c' => {
                if self.connection.is_some() {
                    return Err(malformed(line, "repeated c= line"));
                }
                self.connection = Some(parse_connection(line, value)?);
            }
            'b' => self.bandwidths.push(value.to_owned()),
            't' => self.times.push(value.to_owned()),
            'a' => {
                let (name, val) = split_attribute(line, value)?;
                match (Direction::parse(name), val) {
                    (Some(d), None) => self.direction = Some(d),
                    _ => self.attributes.push(attribute(name, val)),
                }
            }
            _ => self.other_lines.push(Line {
                kind,
                value: value.to_owned(),
            }),
        }
        Ok(())
    }

    fn finish(mut self, media: Vec<MediaDescription>) -> Result<SessionDescription, SdpError> {
        let origin = self.origin.ok_or_else(|| malformed(2, "no o= line"))?;
        self.other_lines.sort_by_key(|l| line_rank(l.kind));
        let session_name = match self.session_name {
            Some(s) if !s.is_empty() => s,
            _ => "-".to_owned(),
        };
        if self.times.is_empty() {
            self.times.push("0 0".to_owned());
        }
        Ok(SessionDescription {
            origin,
            session_name,
            connection: self.connection,
            bandwidths: self.bandwidths,
            times: self.times,
            direction: self.direction,
            attributes: self.attributes,
            other_lines: self.other_lines,
            media,
        })
    }
}

/// Reads a decimal number; digits beyond `u64` wrap (see [`Origin::session_id`]).
fn parse_wrapping_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
    }))
}

fn parse_origin(line: usize, value: &str) -> Result<Origin, SdpError> {
    let fields: Vec<&str> = fields_of(value).collect();
    let [username, id, version, _net_type, _addr_type, address] = fields[..] else {
        return Err(malformed(line, "o= needs six fields"));
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: parse_wrapping_u64(id).ok_or_else(|| malformed(line, "o= session id"))?,
        version: parse_wrapping_u64(version)
            .ok_or_else(|| malformed(line, "o= session version"))?,
        address: address.to_owned(),
    })
}

/// Reads an address as written in `c=` or `a=rtcp`, dropping a multicast `/ttl/count` suffix.
fn parse_address(net_type: &str, addr_type: &str, addr: &str) -> Option<IpAddr> {
    if !net_type.eq_ignore_ascii_case("IN")
        || !(addr_type.eq_ignore_ascii_case("IP4") || addr_type.eq_ignore_ascii_case("IP6"))
    {
        return None;
    }
    let addr = addr.split('/').next().unwrap_or(addr);
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    addr.parse().ok()
}

fn parse_connection(line: usize, value: &str) -> Result<IpAddr, SdpError> {
    let fields: Vec<&str> = fields_of(value).collect();
    let [net_type, addr_type, addr] = fields[..] else {
        return Err(malformed(line, "c= needs three fields"));
    };
    parse_address(net_type, addr_type, addr)
        .ok_or_else(|| malformed(line, "c= is not an IN IP4/IP6 address"))
}

fn parse_media_line(line: usize, value: &str) -> Result<MediaDescription, SdpError> {
    let mut fields = fields_of(value);
    let (Some(kind), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(line, "m= needs media, port and protocol"));
    };
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p, Some(n)),
        None => (port, None),
    };
    let port = port
        .parse()
        .map_err(|_| malformed(line, "m= port is not a number"))?;
    let port_count = port_count
        .map(|n| n.parse())
        .transpose()
        .map_err(|_| malformed(line, "m= port count is not a number"))?;
    Ok(MediaDescription {
        kind: kind.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats: fields.map(str::to_owned).collect(),
        connection: None,
        bandwidths: Vec::new(),
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        rtcp: None,
        attributes: Vec::new(),
        other_lines: Vec::new(),
    })
}

fn media_line(
    m: &mut MediaDescription,
    line: usize,
    kind: char,
    value: &str,
) -> Result<(), SdpError> {
    match kind {
        'c' => {
            if m.connection.is_some() {
                return Err(malformed(line, "repeated c= line in a media section"));
            }
            m.connection = Some(parse_connection(line, value)?);
        }
        'b' => m.bandwidths.push(value.to_owned()),
        'a' => {
            let (name, val) = split_attribute(line, value)?;
            media_attribute(m, name, val);
        }
        _ => m.other_lines.push(Line {
            kind,
            value: value.to_owned(),
        }),
    }
    Ok(())
}

fn split_attribute(line: usize, value: &str) -> Result<(&str, Option<&str>), SdpError> {
    let (name, val) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (value, None),
    };
    if name.is_empty() {
        return Err(malformed(line, "a= without a name"));
    }
    Ok((name, val))
}

fn attribute(name: &str, value: Option<&str>) -> Attribute {
    Attribute {
        name: name.to_owned(),
        value: value.map(str::to_owned),
    }
}

/// Stores a media-level attribute in its typed field when its value parses, else as written.
fn media_attribute(m: &mut MediaDescription, name: &str, value: Option<&str>) {
    let typed = match (name, value) {
        ("rtpmap", Some(v)) => parse_rtpmap(v).map(|r| m.rtpmaps.push(r)),
        ("fmtp", Some(v)) => parse_fmtp(v).map(|f| m.fmtps.push(f)),
        ("ptime", Some(v)) => v.trim().parse().ok().map(|p| m.ptime = Some(p)),
        ("rtcp", Some(v)) => parse_rtcp(v).map(|r| m.rtcp = Some(r)),
        (_, None) => Direction::parse(name).map(|d| m.direction = Some(d)),
        _ => None,
    };
    if typed.is_none() {
        m.attributes.push(attribute(name, value));
    }
}

fn parse_payload_type(s: &str) -> Option<u8> {
    s.parse().ok().filter(|&pt: &u8| pt < 128)
}

fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.trim().split_once(|c: char| c.is_ascii_whitespace())?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?;
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = parts.next().map(|c| c.parse()).transpose().ok()?;
    if encoding.is_empty() || encoding.contains(char::is_whitespace) || parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        payload_type: parse_payload_type(pt)?,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_fmtp(value: &str) -> Option<(u8, String)> {
    let (pt, params) = value.trim().split_once(|c: char| c.is_ascii_whitespace())?;
    let params = params.trim();
    if params.is_empty() {
        return None;
    }
    Some((parse_payload_type(pt)?, params.to_owned()))
}

fn parse_rtcp(value: &str) -> Option<(u16, Option<IpAddr>)> {
    let fields: Vec<&str> = fields_of(value).collect();
    match fields[..] {
        [port] => Some((port.parse().ok()?, None)),
        [port, net_type, addr_type, addr] => Some((
            port.parse().ok()?,
            Some(parse_address(net_type, addr_type, addr)?),
        )),
        _ => None,
    }
}

/// The space-separated fields of a line. Control characters separate fields too, as the printer
/// writes them (`Token`), so that a parsed description prints to text that parses the same.
fn fields_of(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_ids() {
        assert_eq!(parse_wrapping_u64("42"), Some(42));
        assert_eq!(parse_wrapping_u64("18446744073709551616"), Some(0));
        assert_eq!(parse_wrapping_u64("4x"), None);
        assert_eq!(parse_wrapping_u64(""), None);
    }

    #[test]
    fn attributes_that_do_not_parse_are_kept() {
        let m = &mut parse_media_line(1, "audio 1 RTP/AVP 0").expect("m-line");
        media_attribute(m, "rtpmap", Some("0 PCMU"));
        media_attribute(m, "ptime", Some("twenty"));
        media_attribute(m, "fmtp", Some("300 x=1"));
        assert!(m.rtpmaps.is_empty() && m.ptime.is_none() && m.fmtps.is_empty());
        assert_eq!(m.attributes.len(), 3);
    }
}
