//! Audio-only SDP (RFC 8866, formerly RFC 4566) and the offer/answer model (RFC 3264).
//!
//! [`SessionDescription::parse`] reads any SDP a SIP peer is likely to send — video, SRTP, ICE
//! and WebRTC lines included — and keeps every line it does not interpret, so that a description
//! prints back ([`fmt::Display`], CRLF line endings) as it came. Negotiation only ever agrees on
//! one audio stream with a G.711 codec ([`Codec`]) and, optionally, RFC 4733 telephone events:
//!
//! - [`offer`] builds our offer; [`accept_answer`] reads the answer to it;
//! - [`answer`] answers a peer's offer; [`inspect_offer`] reads a peer's offer without answering
//!   it yet (the B2BUA forwards it to the other leg first).
//!
//! Every other m-line of an offer is rejected in the answer with port 0, in its place.
//!
//! Hold: a peer holds us with `a=sendonly` or `a=inactive` (session or media level, media level
//! wins) or, in the RFC 2543 style, with `c=IN IP4 0.0.0.0`. [`Negotiated::on_hold`] covers all
//! three.
//!
//! Bounds: at most [`MAX_SDP_LEN`] bytes, [`MAX_LINES`] lines of at most [`MAX_LINE_LEN`] bytes and
//! [`MAX_MEDIA`] m-lines. Parsing never panics; `\n`-only line endings are accepted.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::codec::{Codec, Direction};

mod negotiate;
mod parse;

pub use negotiate::{accept_answer, answer, inspect_offer, offer};

/// The largest SDP body accepted, in bytes.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// The most lines accepted in one SDP body.
pub const MAX_LINES: usize = 1024;
/// The longest line accepted, in bytes.
pub const MAX_LINE_LEN: usize = 4096;
/// The most m-lines accepted in one SDP body.
pub const MAX_MEDIA: usize = 32;

/// The RTP packetisation time when an SDP says none (RFC 3551 §4.5 for G.711), in milliseconds.
pub const DEFAULT_PTIME_MS: u32 = 20;

/// The longest packetisation time taken from a peer, in milliseconds: 150 ms of G.711 (1200
/// bytes) still fits an Ethernet MTU. A longer (or zero) `a=ptime` counts as absent.
pub const MAX_PTIME_MS: u32 = 150;

/// The payload type [`offer`] gives to `telephone-event/8000`.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// A session description: the session-level lines and the media descriptions, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`; `-` when the SDP had none or an empty one.
    pub session_name: String,
    /// The session-level `c=` address (a multicast TTL or address count is dropped).
    pub connection: Option<IpAddr>,
    /// Session-level `b=` values, e.g. `AS:64`.
    pub bandwidths: Vec<String>,
    /// `t=` values; `["0 0"]` when the SDP had none (SIP always uses `0 0`).
    pub times: Vec<String>,
    /// Session-level `a=sendrecv|sendonly|recvonly|inactive`; a media-level one overrides it.
    pub direction: Option<Direction>,
    /// Other session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Session-level lines with no field of their own (`i= u= e= p= r= z= k=`, unknown letters),
    /// in order within their place in RFC 8866 §5.
    pub other_lines: Vec<Line>,
    /// The media descriptions (`m=` sections), in order.
    pub media: Vec<MediaDescription>,
}

/// The origin line, `o=<username> <sess-id> <sess-version> IN <IP4|IP6> <address>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `-` when the writer has no user name.
    pub username: String,
    /// Session id. Digits beyond `u64` wrap (some stacks send 20-digit ids); it is only ever
    /// compared for equality.
    pub session_id: u64,
    /// Session version: a re-offer with the same version repeats the previous one. Wraps like
    /// `session_id`.
    pub version: u64,
    /// The unicast address or host name. It prints as `IP6` when it contains `:`, else `IP4`.
    pub address: String,
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, `image`, …
    pub kind: String,
    /// The transport port; 0 rejects (in an answer) or disables the stream.
    pub port: u16,
    /// The `/<number of ports>` after the port, rarely used.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, `udptl`, …
    pub proto: String,
    /// The formats, in the writer's order of preference: RTP payload type numbers for RTP.
    pub formats: Vec<String>,
    /// The media-level `c=` address, which overrides the session-level one.
    pub connection: Option<IpAddr>,
    /// Media-level `b=` values.
    pub bandwidths: Vec<String>,
    /// `a=rtpmap` lines, in order.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp:<pt> <parameters>` lines, in order.
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime`, in milliseconds.
    pub ptime: Option<u32>,
    /// `a=sendrecv|sendonly|recvonly|inactive`.
    pub direction: Option<Direction>,
    /// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605).
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    /// Other `a=` lines, in order (including `rtpmap`/`fmtp`/`ptime`/`rtcp` lines whose value
    /// did not parse).
    pub attributes: Vec<Attribute>,
    /// Media-level lines with no field of their own (`i= k=`, unknown letters), in order.
    pub other_lines: Vec<Line>,
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    /// 0–127.
    pub payload_type: u8,
    /// As written, e.g. `PCMU`, `opus`, `telephone-event`.
    pub encoding: String,
    /// In Hz.
    pub clock_rate: u32,
    /// The encoding parameter; for audio, the number of channels (absent means one).
    pub channels: Option<u8>,
}

/// An `a=` line kept as written: `a=<name>` or `a=<name>:<value>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// The name, before the first `:`.
    pub name: String,
    /// The value after the first `:`; `None` for a property attribute such as `a=rtcp-mux`.
    pub value: Option<String>,
}

/// A line kept as written: `<kind>=<value>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The type letter.
    pub kind: char,
    /// Everything after `=`.
    pub value: String,
}

/// Our side's media: where we receive, and the `o=` values we keep per leg (the session id is
/// fixed, the version incremented on every change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address and RTP port we receive on, as the peer must see it; RTCP is on the next
    /// port. An unspecified IP (`0.0.0.0`) means hold to old peers.
    pub addr: SocketAddr,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version.
    pub version: u64,
}

/// What was agreed for one audio stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec.
    pub codec: Codec,
    /// The payload type to send it with (the one the peer declared).
    pub payload_type: u8,
    /// The `telephone-event/8000` payload type, if both sides use RFC 4733 events.
    pub telephone_event: Option<u8>,
    /// The packetisation time the peer asked for, [`DEFAULT_PTIME_MS`] when it said none or
    /// one outside 1..=[`MAX_PTIME_MS`].
    pub ptime_ms: u32,
    /// Where the peer receives RTP; `None` when it gave `c=0.0.0.0` (hold) or no address.
    pub remote_rtp: Option<SocketAddr>,
    /// Where the peer receives RTCP: `a=rtcp`, else the RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// The peer's direction, from its point of view. `c=0.0.0.0` counts as not receiving
    /// (RFC 3264 §8.4), so a `sendrecv` offer with it reads as `sendonly`.
    pub remote_direction: Direction,
}

impl Negotiated {
    /// Whether the peer holds us: it does not want our media (`sendonly`, `inactive`,
    /// `c=0.0.0.0`).
    pub fn on_hold(&self) -> bool {
        self.remote_rtp.is_none() || !self.remote_direction.receives()
    }
}

/// Why an SDP could not be read or negotiated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is not UTF-8.
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// The body is longer than [`MAX_SDP_LEN`].
    #[error("SDP is longer than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The body has more than [`MAX_LINES`] lines or more than [`MAX_MEDIA`] m-lines.
    #[error("SDP has more than {max} {what}")]
    TooMany {
        /// `lines` or `m-lines`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A line could not be read.
    #[error("SDP line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// There is no usable audio stream (none at all, or all with port 0).
    #[error("SDP has no audio stream")]
    NoAudio,
    /// Audio streams exist, but only over transports we do not speak (e.g. `RTP/SAVP`).
    #[error("audio transport {0} is not supported")]
    UnsupportedProtocol(String),
    /// No audio stream offers a codec we support.
    #[error("no common audio codec")]
    NoCommonCodec,
    /// An answer does not have one m-line per m-line of the offer (RFC 3264 §6).
    #[error("the answer has {answer} m-lines, the offer {offer}")]
    MediaCountMismatch {
        /// m-lines in the offer.
        offer: usize,
        /// m-lines in the answer.
        answer: usize,
    },
    /// The answer rejected our audio stream (port 0).
    #[error("the answer rejected the audio stream")]
    AudioRejected,
}

impl SdpError {
    /// The SIP status to refuse an offer with: 400 for SDP that cannot be read, 488 (Not
    /// Acceptable Here) for SDP that cannot be negotiated.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::NotUtf8
            | SdpError::TooLarge { .. }
            | SdpError::TooMany { .. }
            | SdpError::Malformed { .. } => 400,
            _ => 488,
        }
    }
}

impl SessionDescription {
    /// Parses an SDP body. CRLF or LF line endings; blank lines and whitespace around lines are
    /// ignored.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        parse::parse(text)
    }

    /// Parses an SDP body from bytes, which must be UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, SdpError> {
        if bytes.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge { max: MAX_SDP_LEN });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SdpError::NotUtf8)?;
        parse::parse(text)
    }

    /// The address `media` is sent to: its own `c=`, else the session's.
    pub fn connection_of(&self, media: &MediaDescription) -> Option<IpAddr> {
        media.connection.or(self.connection)
    }

    /// The direction of `media`: its own attribute, else the session's, else `sendrecv`.
    pub fn direction_of(&self, media: &MediaDescription) -> Direction {
        media.direction.or(self.direction).unwrap_or_default()
    }

    /// The session-level attribute `name`, if present: `Some(None)` for a property attribute.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }
}

impl std::str::FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, SdpError> {
        Self::parse(s)
    }
}

impl MediaDescription {
    /// The formats that are RTP payload type numbers, in order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|&pt| pt < 128)
    }

    /// The `a=rtpmap` of `payload_type`.
    pub fn rtpmap(&self, payload_type: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == payload_type)
    }

    /// The `a=fmtp` parameters of `payload_type`.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(pt, _)| *pt == payload_type)
            .map(|(_, p)| p.as_str())
    }

    /// The codec `payload_type` stands for here, if it is one we speak: by its `a=rtpmap`, else
    /// by the static payload type table.
    pub fn codec(&self, payload_type: u8) -> Option<Codec> {
        match self.rtpmap(payload_type) {
            Some(m) if m.channels.is_none_or(|c| c == 1) => {
                Codec::from_name(&m.encoding, m.clock_rate)
            }
            Some(_) => None,
            None => Codec::from_static_payload_type(payload_type),
        }
    }

    /// The first payload type in the format list mapped to `telephone-event/8000`.
    pub fn telephone_event(&self) -> Option<u8> {
        self.payload_types().find(|&pt| {
            self.rtpmap(pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
            })
        })
    }

    /// Whether this is an audio stream.
    pub fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// Whether this is an RTP profile without encryption that we speak: `RTP/AVP`, or
    /// `RTP/AVPF` (its feedback messages are optional, so plain RTP/RTCP satisfies it).
    pub fn is_plain_rtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// The media-level attribute `name`, if present: `Some(None)` for a property attribute.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }
}

fn find_attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<Option<&'a str>> {
    attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .map(|a| a.value.as_deref())
}

/// Where a kept line goes when printed: RFC 8866 §5 orders the session section as
/// `v o s i u e p c b t r z k a` and the media section as `m i c b k a`.
pub(crate) fn line_rank(kind: char) -> u8 {
    match kind {
        'i' => 0,
        'u' => 1,
        'e' => 2,
        'p' => 3,
        // c, b and t print here.
        'r' => 5,
        'z' => 6,
        'k' => 7,
        _ => 8,
    }
}

/// Prints free text with CR, LF and NUL replaced by spaces, so no value can start a new line.
struct Text<'a>(&'a str);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.split(['\r', '\n', '\0']).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

/// Prints a space-separated field: whitespace and control characters become `-`, and an empty
/// field prints as `-`, so the line keeps its field count.
struct Token<'a>(&'a str);

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for part in self.0.split(|c: char| c.is_whitespace() || c.is_control()) {
            if !first {
                f.write_str("-")?;
            }
            first = false;
            f.write_str(part)?;
        }
        Ok(())
    }
}

fn write_connection(f: &mut fmt::Formatter<'_>, addr: IpAddr) -> fmt::Result {
    match addr {
        IpAddr::V4(a) => write!(f, "c=IN IP4 {a}\r\n"),
        IpAddr::V6(a) => write!(f, "c=IN IP6 {a}\r\n"),
    }
}

fn write_lines<'a>(
    f: &mut fmt::Formatter<'_>,
    lines: impl Iterator<Item = &'a Line>,
) -> fmt::Result {
    for l in lines {
        let kind = if l.kind.is_ascii_alphabetic() {
            l.kind
        } else {
            'x'
        };
        write!(f, "{kind}={}\r\n", Text(&l.value))?;
    }
    Ok(())
}

fn write_attributes(f: &mut fmt::Formatter<'_>, attributes: &[Attribute]) -> fmt::Result {
    for a in attributes {
        // A `:` in the name would move the split point on reparse.
        let name = a.name.replace(':', "-");
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", Text(&name), Text(v))?,
            None => write!(f, "a={}\r\n", Text(&name))?,
        }
    }
    Ok(())
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        let addr_type = if o.address.contains(':') {
            "IP6"
        } else {
            "IP4"
        };
        write!(
            f,
            "v=0\r\no={} {} {} IN {addr_type} {}\r\ns={}\r\n",
            Token(&o.username),
            o.session_id,
            o.version,
            Token(&o.address),
            Text(if self.session_name.is_empty() {
                "-"
            } else {
                &self.session_name
            }),
        )?;
        write_lines(f, self.other_lines.iter().filter(|l| line_rank(l.kind) < 4))?;
        if let Some(c) = self.connection {
            write_connection(f, c)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}\r\n", Text(b))?;
        }
        if self.times.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        for t in &self.times {
            write!(f, "t={}\r\n", Text(t))?;
        }
        write_lines(f, self.other_lines.iter().filter(|l| line_rank(l.kind) > 4))?;
        write_attributes(f, &self.attributes)?;
        if let Some(d) = self.direction {
            write!(f, "a={d}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", Token(&self.kind), self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", Token(&self.proto))?;
        for fmt in &self.formats {
            write!(f, " {}", Token(fmt))?;
        }
        f.write_str("\r\n")?;
        write_lines(f, self.other_lines.iter().filter(|l| line_rank(l.kind) < 4))?;
        if let Some(c) = self.connection {
            write_connection(f, c)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}\r\n", Text(b))?;
        }
        write_lines(f, self.other_lines.iter().filter(|l| line_rank(l.kind) > 4))?;
        for m in &self.rtpmaps {
            write!(f, "{m}\r\n")?;
        }
        for (pt, params) in &self.fmtps {
            write!(f, "a=fmtp:{pt} {}\r\n", Text(params))?;
        }
        if let Some(p) = self.ptime {
            write!(f, "a=ptime:{p}\r\n")?;
        }
        if let Some((port, addr)) = self.rtcp {
            match addr {
                None => write!(f, "a=rtcp:{port}\r\n")?,
                Some(IpAddr::V4(a)) => write!(f, "a=rtcp:{port} IN IP4 {a}\r\n")?,
                Some(IpAddr::V6(a)) => write!(f, "a=rtcp:{port} IN IP6 {a}\r\n")?,
            }
        }
        write_attributes(f, &self.attributes)?;
        if let Some(d) = self.direction {
            write!(f, "a={d}\r\n")?;
        }
        Ok(())
    }
}

/// Prints the whole line, `a=rtpmap:…`, without the line ending.
impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a=rtpmap:{} {}/{}",
            self.payload_type,
            Token(&self.encoding.replace('/', "-")),
            self.clock_rate
        )?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}
