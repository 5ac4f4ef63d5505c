//! Answering requests: building a response from a request (§8.2.6), marking where a request
//! really came from (§18.2.1, RFC 3581), deciding where its responses go (§18.2.2), and reading
//! enough of an unparseable request to tell its sender why (a 400 naming the culprit).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::message::{HeaderName, Message, StatusCode, StdHeader, Text, split_list};
use crate::transaction::key::{TopVia, tag_of};
use crate::transport::{Peer, Transport};
use crate::uri::Host;

/// A response to `request` (§8.2.6): every Via in order (with the `received`/`rport` the
/// endpoint stamped on the top one), From, To, Call-ID and CSeq copied; a To tag added when the
/// request's To has none and `code` is above 100; Content-Length 0. The TU adds Contact,
/// Record-Route, a body and whatever else the response needs.
pub fn response_to(request: &Message, code: StatusCode, to_tag: Option<&str>) -> Message {
    let mut response = Message::response(code);
    for h in &request.headers {
        let HeaderName::Std(name) = h.name else {
            continue;
        };
        match name {
            StdHeader::Via | StdHeader::From | StdHeader::CallId | StdHeader::CSeq => {
                response.headers.push(name, h.value.clone());
            }
            StdHeader::To => {
                let value = match to_tag {
                    Some(tag) if code.as_u16() > 100 && tag_of(&h.value).is_none() => {
                        let mut v = String::with_capacity(h.value.len() + 5 + tag.len());
                        v.push_str(&h.value);
                        v.push_str(";tag=");
                        v.push_str(tag);
                        Text::from(v)
                    }
                    _ => h.value.clone(),
                };
                response.headers.push(name, value);
            }
            _ => {}
        }
    }
    response
        .headers
        .push(StdHeader::ContentLength, Text::from_static("0"));
    response
}

/// The top Via of a request from `from`, rewritten per §18.2.1 and RFC 3581: `received` when the
/// sent-by host is not the source address (always, when `rport` was asked for) and `rport`
/// filled with the source port. `None` when nothing needs adding.
pub(crate) fn stamped_via(top: &TopVia<'_>, from: &Peer) -> Option<String> {
    let via = &top.via;
    let rport = top.rport;
    let ip = from.addr.ip();
    let same_host = match via.host {
        Host::V4(a) => IpAddr::V4(a) == ip,
        Host::V6(a) => IpAddr::V6(a) == ip,
        Host::Name(_) => false,
    };
    if same_host && !rport {
        return None;
    }
    let mut out = String::with_capacity(top.raw.len() + 48);
    // The usual case keeps the value as written: `=port` after a valueless rport, received at
    // the end. Otherwise (an rport with a value, a received already there) it is rebuilt.
    let raw = top.raw;
    let flag_end = top.rport_flag.and_then(|name| {
        let end = (name.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)? + name.len();
        raw.is_char_boundary(end).then_some(end)
    });
    if !top.received && (flag_end.is_some() || !rport) {
        match flag_end {
            Some(end) => {
                out.push_str(&raw[..end]);
                out.push('=');
                push_decimal(&mut out, from.addr.port());
                out.push_str(&raw[end..]);
            }
            None => out.push_str(raw),
        }
        push_received(&mut out, ip);
        return Some(out);
    }
    out.push_str("SIP/2.0/");
    out.push_str(via.transport);
    out.push(' ');
    out.push_str(via.host_raw);
    if let Some(port) = via.port {
        out.push(':');
        push_decimal(&mut out, port);
    }
    for (name, value) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        out.push(';');
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(v);
        }
    }
    push_received(&mut out, ip);
    if rport {
        out.push_str(";rport=");
        push_decimal(&mut out, from.addr.port());
    }
    Some(out)
}

/// Appends `;received=<ip>`; RFC 3261's via-received is a bare IPv6address (no brackets).
fn push_received(out: &mut String, ip: IpAddr) {
    out.push_str(";received=");
    match ip {
        IpAddr::V4(a) => {
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, u16::from(octet));
            }
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// Appends `n` in decimal (without the formatting machinery: this runs for every request).
fn push_decimal(out: &mut String, mut n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out.push(char::from(*d));
    }
}

/// Replaces the top Via value of `message` with `value` (keeping the others in order).
pub(crate) fn replace_top_via(message: &mut Message, value: String) {
    let single = {
        let mut vias = message.headers.get_all(StdHeader::Via);
        vias.next().is_some_and(|v| !v.contains(',')) && vias.next().is_none()
    };
    if single {
        // One Via line with one value, the usual request from a UA: replaced where it stands.
        message.headers.set(StdHeader::Via, value);
    } else {
        message.headers.remove_first_value(StdHeader::Via);
        message.headers.push_front(StdHeader::Via, value);
    }
}

/// Where the responses to a request go (§18.2.2, RFC 3581 §4): back over the connection it
/// came on for a stream; for a datagram, to `maddr` if given, else to the source address at the
/// source port (`rport`) or the sent-by port.
pub(crate) fn reply_destination(top: &TopVia<'_>, from: &Peer) -> Peer {
    if from.connection.is_some() {
        return *from;
    }
    let via = &top.via;
    let transport = Transport::from_token(via.transport).unwrap_or(from.transport);
    let sent_by_port = via.port.unwrap_or(transport.default_port());
    if let Some(maddr) = top.maddr.and_then(|m| Host::parse(m).ok()) {
        let ip = match maddr {
            Host::V4(a) => Some(IpAddr::V4(a)),
            Host::V6(a) => Some(IpAddr::V6(a)),
            // Resolving a name is the driver's business; the source address will do.
            Host::Name(_) => None,
        };
        if let Some(ip) = ip {
            return Peer::new(from.transport, SocketAddr::new(ip, sent_by_port));
        }
    }
    let port = if top.rport || from.transport.is_reliable() {
        from.addr.port()
    } else {
        sent_by_port
    };
    Peer::new(from.transport, SocketAddr::new(from.addr.ip(), port))
}

/// Where responses go when the connection a request came on is gone (§18.2.2): a new connection
/// to the source address at the sent-by port.
pub(crate) fn reconnect_destination(top: &TopVia<'_>, from: &Peer) -> Peer {
    let via = &top.via;
    let transport = Transport::from_token(via.transport).unwrap_or(from.transport);
    let port = via.port.unwrap_or(transport.default_port());
    Peer::new(from.transport, SocketAddr::new(from.addr.ip(), port))
}

/// What could be read of a request that did not parse: enough to answer it, or nothing.
#[derive(Debug)]
pub(crate) struct Salvaged {
    /// Via, From, To, Call-ID and CSeq, in order as received (Via values possibly several).
    headers: Vec<(StdHeader, String)>,
}

impl Salvaged {
    /// Reads a request's start line and headers leniently (§7.3.3 compact forms, folded lines).
    /// `None` unless the start line is a request other than ACK (never answered, §17) and Via,
    /// From, To, Call-ID and CSeq are all present.
    pub(crate) fn read(bytes: &[u8]) -> Option<Self> {
        let head_end = memchr::memmem::find(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
        let text = String::from_utf8_lossy(&bytes[..head_end.min(65_535)]);
        let mut lines = text
            .trim_start_matches(['\r', '\n'])
            .split('\n')
            .map(|l| l.trim_end_matches('\r'));
        let start = lines.next()?;
        let method = start.split(' ').next()?;
        if method.is_empty()
            || method.len() > 32
            || method.eq_ignore_ascii_case("ACK")
            || start
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        {
            return None;
        }
        let mut headers: Vec<(StdHeader, String)> = Vec::new();
        let mut current: Option<usize> = None;
        for line in lines {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(i) = current {
                    headers[i].1.push(' ');
                    headers[i].1.push_str(line.trim());
                }
                continue;
            }
            current = None;
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let Some(name) = StdHeader::from_name(name.trim().as_bytes()) else {
                continue;
            };
            if matches!(
                name,
                StdHeader::Via
                    | StdHeader::From
                    | StdHeader::To
                    | StdHeader::CallId
                    | StdHeader::CSeq
            ) && headers.len() < 64
                && !value.contains(|c: char| c.is_control() && c != '\t')
            {
                current = Some(headers.len());
                headers.push((name, value.trim().to_owned()));
            }
        }
        let has = |n: StdHeader| headers.iter().any(|(h, _)| *h == n);
        let complete = [
            StdHeader::Via,
            StdHeader::From,
            StdHeader::To,
            StdHeader::CallId,
            StdHeader::CSeq,
        ]
        .into_iter()
        .all(has);
        complete.then_some(Self { headers })
    }

    /// The top Via, if it parses.
    pub(crate) fn top_via(&self) -> Option<TopVia<'_>> {
        let (_, value) = self.headers.iter().find(|(h, _)| *h == StdHeader::Via)?;
        TopVia::parse(split_list(value).next()?).ok()
    }

    /// A response to the salvaged request: its Via (the top one stamped), From, To with a tag,
    /// Call-ID and CSeq; `reason` as the reason phrase.
    pub(crate) fn response(
        &self,
        code: StatusCode,
        reason: &str,
        from: &Peer,
        to_tag: &str,
    ) -> Message {
        let mut request = Message::request(crate::message::Method::Options, "sip:invalid");
        for (name, value) in &self.headers {
            request.headers.push(*name, Text::from(value.as_str()));
        }
        if let Some(top) = self.top_via()
            && let Some(stamped) = stamped_via(&top, from)
        {
            replace_top_via(&mut request, stamped);
        }
        let mut response = response_to(&request, code, Some(to_tag));
        response.start = crate::message::StartLine::Response {
            code,
            reason: Text::from(reason_phrase(reason)),
        };
        response
    }
}

/// A reason phrase from an error message: no line breaks, bounded length.
pub(crate) fn reason_phrase(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Limits;

    fn peer(addr: &str) -> Peer {
        Peer::new(Transport::Udp, addr.parse().unwrap())
    }

    #[test]
    fn received_and_rport_are_stamped() {
        let via = TopVia::parse("SIP/2.0/UDP a.example:5062;branch=z9hG4bK1;rport").unwrap();
        let stamped = stamped_via(&via, &peer("192.0.2.9:40000")).unwrap();
        assert_eq!(
            stamped,
            "SIP/2.0/UDP a.example:5062;branch=z9hG4bK1;rport=40000;received=192.0.2.9"
        );
        let via = TopVia::parse("SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1").unwrap();
        assert_eq!(stamped_via(&via, &peer("192.0.2.9:5060")), None);
        let via = TopVia::parse("SIP/2.0/UDP h ; rport ; branch=z9hG4bK1").unwrap();
        assert_eq!(
            stamped_via(&via, &peer("192.0.2.9:7")).unwrap(),
            "SIP/2.0/UDP h ; rport=7 ; branch=z9hG4bK1;received=192.0.2.9"
        );
        let via = TopVia::parse("SIP/2.0/UDP h;received=10.0.0.1;rport=9;branch=z9hG4bK1").unwrap();
        assert_eq!(
            stamped_via(&via, &peer("192.0.2.9:7")).unwrap(),
            "SIP/2.0/UDP h;branch=z9hG4bK1;received=192.0.2.9;rport=7"
        );
        let via = TopVia::parse("SIP/2.0/UDP 192.0.2.8;branch=z9hG4bK1").unwrap();
        assert_eq!(
            reply_destination(&via, &peer("192.0.2.9:7000")),
            peer("192.0.2.9:5060")
        );
        let via = TopVia::parse("SIP/2.0/UDP 192.0.2.8;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(
            reply_destination(&via, &peer("192.0.2.9:7000")),
            peer("192.0.2.9:7000")
        );
    }

    #[test]
    fn tags_are_found_with_and_without_quotes() {
        assert_eq!(tag_of("<sip:b@x>;tag=1"), Some("1"));
        assert_eq!(tag_of("<sip:b@x> ; tag = 2 ;x"), Some("2"));
        assert_eq!(tag_of("<sip:b@x;tag=no>"), None);
        assert_eq!(tag_of("sip:b@x;tag=3"), Some("3"));
        assert_eq!(tag_of("sip:b@x"), None);
        assert_eq!(tag_of(r#""a>;tag=no" <sip:b@x>;tag=4"#), Some("4"));
        assert_eq!(tag_of(r#""a" <sip:b@x>"#), None);
        assert_eq!(tag_of(r#""a \"b\" ;tag=no" <sip:b@x>;tag=5"#), Some("5"));
        assert_eq!(tag_of(r#"<sip:b@x>;x="q;tag=no";tag=6"#), Some("6"));
        assert_eq!(tag_of(r#""unterminated <sip:b@x>;tag=7"#), None);
        assert_eq!(
            stamped_via(
                &TopVia::parse("SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1;rport").unwrap(),
                &Peer::new(Transport::Tcp, "[2001:db8::2]:40000".parse().unwrap())
            )
            .unwrap(),
            "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1;rport=40000;received=2001:db8::2"
        );
    }

    #[test]
    fn response_to_copies_in_order_and_tags_to() {
        let request = Message::parse(
            bytes::Bytes::from_static(
                b"OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP p;branch=z9hG4bK2\r\n\
                  v: SIP/2.0/UDP a;branch=z9hG4bK1\r\nTo: <sip:b>\r\nf: <sip:a>;tag=1\r\n\
                  i: c\r\nCSeq: 1 OPTIONS\r\nContact: <sip:a>\r\nContent-Length: 0\r\n\r\n",
            ),
            &Limits::default(),
        )
        .unwrap();
        let r = response_to(&request, StatusCode::new(200).unwrap(), Some("x"));
        assert_eq!(
            r.to_string(),
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
             To: <sip:b>;tag=x\r\nFrom: <sip:a>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let trying = response_to(&request, StatusCode::new(100).unwrap(), Some("x"));
        assert!(trying.to_string().contains("To: <sip:b>\r\n"));
    }

    #[test]
    fn salvage_needs_the_five_headers_and_skips_acks() {
        let bad = b"INVITE sip:b SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1;rport\r\nf: <sip:a>;tag=1\r\n\
                    t: <sip:b>\r\ni: c\r\nCSeq: 1 IN VITE\r\nContent-Length: x\r\n\r\n";
        let s = Salvaged::read(bad).unwrap();
        let r = s.response(
            StatusCode::new(400).unwrap(),
            "Bad Header: Content-Length (not a number)",
            &peer("192.0.2.9:7000"),
            "t1",
        );
        let text = r.to_string();
        assert!(
            text.starts_with("SIP/2.0 400 Bad Header: Content-Length (not a number)\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Via: SIP/2.0/UDP a;branch=z9hG4bK1;rport=7000;received=192.0.2.9\r\n")
        );
        assert!(text.contains("To: <sip:b>;tag=t1\r\n"));
        assert!(Salvaged::read(&bad.replace_first(b"INVITE", b"ACK")).is_none());
        assert!(Salvaged::read(b"INVITE sip:b SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n\r\n").is_none());
        assert!(Salvaged::read(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n").is_none());
        assert!(Salvaged::read(b"").is_none());
    }

    trait ReplaceFirst {
        fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
    }

    impl ReplaceFirst for [u8] {
        fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
            let i = memchr::memmem::find(self, from).unwrap();
            [&self[..i], to, &self[i + from.len()..]].concat()
        }
    }
}
