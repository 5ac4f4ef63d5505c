//! The message parser and the stream framer.
//!
//! Parsing walks the received bytes once: it finds line ends with `memchr`, slices the start
//! line and each header value out of the shared buffer (no copy, except for a value whose lines
//! were folded, which must be joined) and checks only what every element needs — the start line,
//! header-line shape, UTF-8 and Content-Length. Header semantics wait for the typed views.

use std::sync::LazyLock;

use bytes::Bytes;
use memchr::memchr;

use super::header::{Header, HeaderName, Headers, StdHeader};
use super::{Message, Method, StartLine, StatusCode, Text, is_token_byte};

/// Size limits applied before and while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest message, headers and body, in bytes.
    pub max_message_bytes: usize,
    /// The most header lines in one message.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 64 KiB (the most a UDP datagram carries) and 256 headers.
    fn default() -> Self {
        Self {
            max_message_bytes: 65_535,
            max_headers: 256,
        }
    }
}

/// Why a message was rejected. [`ParseError::status`] is the response to send (when the message
/// was a request and its Via can still be read), [`std::fmt::Display`] a reason phrase naming
/// the culprit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but line breaks (a keep-alive on a datagram transport).
    #[error("Empty Message")]
    Empty,
    /// Over [`Limits::max_message_bytes`].
    #[error("Message Too Large ({0} bytes max)")]
    TooLarge(usize),
    /// Over [`Limits::max_headers`].
    #[error("Too Many Headers ({0} max)")]
    TooManyHeaders(usize),
    /// The request or status line does not follow §7.1/§7.2.
    #[error("Bad Start Line: {0}")]
    StartLine(&'static str),
    /// A version other than SIP/2.0.
    #[error("Version Not Supported: {0}")]
    Version(String),
    /// A header line without a colon or with a name that is not a token.
    #[error("Bad Header Line {0}")]
    HeaderLine(usize),
    /// A header value that is not UTF-8 or, for Content-Length, not a number.
    #[error("Bad Header: {name} ({reason})")]
    Header {
        /// The header, as named in the message.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The header section does not end with an empty line.
    #[error("Truncated Headers")]
    Truncated,
    /// Content-Length promises more bytes than arrived.
    #[error("Bad Content-Length: {declared} declared, {actual} received")]
    BodyTooShort {
        /// The Content-Length value.
        declared: usize,
        /// The body bytes present.
        actual: usize,
    },
    /// A message on a stream without Content-Length (§18.3: mandatory there).
    #[error("Missing Content-Length")]
    MissingContentLength,
}

impl ParseError {
    /// The status code a server answers a request that failed this way with.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            Self::TooLarge(_) => 513,
            Self::Version(_) => 505,
            _ => 400,
        };
        StatusCode::new(code).unwrap_or_else(|| unreachable!("constant in range"))
    }
}

/// What [`frame`] found at the start of a stream buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes (leading line breaks included).
    Message(usize),
    /// An RFC 5626 keep-alive: `ping` is CRLFCRLF (answer with CRLF), otherwise a CRLF pong.
    KeepAlive {
        /// Bytes to consume.
        len: usize,
        /// Whether it asks for a pong.
        ping: bool,
    },
    /// More bytes are needed.
    Incomplete,
}

/// Finds the first message (or keep-alive) in a stream buffer by its header section and
/// Content-Length (§18.3). The caller then cuts `Frame::Message(n)` bytes and parses them with
/// [`Message::parse_framed`].
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Frame, ParseError> {
    if buf.starts_with(b"\r\n") {
        return Ok(if buf.starts_with(b"\r\n\r\n") {
            Frame::KeepAlive { len: 4, ping: true }
        } else if buf.len() > 3 || buf.get(2).is_some_and(|&b| b != b'\r') {
            // CRLF CR followed by anything but LF is a pong and junk: waiting for a ping that
            // cannot come would buffer the junk without limit (the fuzz/sip_stream oracle).
            Frame::KeepAlive {
                len: 2,
                ping: false,
            }
        } else {
            Frame::Incomplete
        });
    }
    let Some(head_end) = header_end(buf) else {
        if buf.len() > limits.max_message_bytes {
            return Err(ParseError::TooLarge(limits.max_message_bytes));
        }
        return Ok(Frame::Incomplete);
    };
    let mut length = None;
    // Skip the start line; a header line starting with whitespace is a continuation. Line ends
    // are found with memchr: a byte-by-byte split was most of the cost of framing.
    let head = &buf[..head_end];
    let mut line_start = 0;
    for lf in memchr::memchr_iter(b'\n', head) {
        let line = &head[line_start..lf];
        let start_line = line_start == 0;
        line_start = lf + 1;
        if start_line || matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        let Some(colon) = memchr(b':', line) else {
            continue;
        };
        let name = trim(&line[..colon]);
        // Compared directly rather than looked up among all standard names: this runs on every
        // header of every stream read, and the lookup made framing cost as much as parsing.
        if name.eq_ignore_ascii_case(b"Content-Length") || name.eq_ignore_ascii_case(b"l") {
            length = Some(parse_length(trim(&line[colon + 1..]), name)?);
            break;
        }
    }
    let length = length.ok_or(ParseError::MissingContentLength)?;
    let total = head_end.saturating_add(length);
    if total > limits.max_message_bytes {
        return Err(ParseError::TooLarge(limits.max_message_bytes));
    }
    Ok(if buf.len() < total {
        Frame::Incomplete
    } else {
        Frame::Message(total)
    })
}

/// Where the header section of `buf` ends: after its first empty line, by the parser's rule — a
/// line ends with LF, a CR before it optional (§7.5) — so that framer and parser agree on where
/// the body starts. (Looking for CRLF CRLF only, the framer put the body later than the parser
/// did after a bare-LF empty line, and the parser silently dropped the frame's tail; found by
/// fuzz/sip_message.) `None` while no empty line has arrived, or one is cut after its CR.
fn header_end(buf: &[u8]) -> Option<usize> {
    // Line breaks before the start line are skipped, as by the parser.
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    memchr::memchr_iter(b'\n', &buf[start..]).find_map(|lf| {
        let next = start + lf + 1;
        match &buf[next..] {
            [b'\n', ..] => Some(next + 1),
            [b'\r', b'\n', ..] => Some(next + 2),
            _ => None,
        }
    })
}

pub(super) fn parse(bytes: Bytes, limits: &Limits, stream: bool) -> Result<Message, ParseError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(ParseError::TooLarge(limits.max_message_bytes));
    }
    let buf: &[u8] = &bytes;
    let mut pos = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(ParseError::Empty)?;

    let (line_end, next) = line_at(buf, pos).ok_or(ParseError::Truncated)?;
    let start = start_line(&bytes, pos, line_end)?;
    pos = next;

    let mut headers = Headers::with_capacity(16);
    let mut content_length: Option<usize> = None;
    let mut line_no = 1;
    loop {
        // `let … else` rather than `ok_or(ParseError::…)?`, which builds and drops an error value
        // on every line (measurable: the error has `String` variants to check on drop).
        let Some((end, next)) = line_at(buf, pos) else {
            return Err(ParseError::Truncated);
        };
        line_no += 1;
        if end == pos {
            pos = next;
            break;
        }
        let header_start = pos;
        let mut header_end = end;
        let mut folded = false;
        pos = next;
        while matches!(buf.get(pos), Some(b' ' | b'\t')) {
            let Some((end, next)) = line_at(buf, pos) else {
                return Err(ParseError::Truncated);
            };
            line_no += 1;
            header_end = end;
            folded = true;
            pos = next;
        }
        if headers.len() == limits.max_headers {
            return Err(ParseError::TooManyHeaders(limits.max_headers));
        }
        let header = header_line(&bytes, header_start, header_end, folded, line_no)?;
        if header.name.is(StdHeader::ContentLength) {
            let n = parse_length(header.value.as_bytes(), header.name.as_str().as_bytes())?;
            match content_length {
                Some(m) if m != n => {
                    return Err(ParseError::Header {
                        name: "Content-Length".into(),
                        reason: "conflicting values",
                    });
                }
                _ => content_length = Some(n),
            }
        }
        headers.push(header.name, header.value);
    }

    let available = bytes.len() - pos;
    let body_len = match content_length {
        Some(n) if n > available => {
            return Err(ParseError::BodyTooShort {
                declared: n,
                actual: available,
            });
        }
        Some(n) => n,
        None if stream => return Err(ParseError::MissingContentLength),
        None => available,
    };
    Ok(Message {
        start,
        headers,
        body: bytes.slice(pos..pos + body_len),
    })
}

/// The line starting at `pos`: (end excluding CR LF, start of the next line). A line must end
/// with LF; a lone LF is accepted as robustness demands (§7.5 allows it on receipt).
fn line_at(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let rest = buf.get(pos..)?;
    let lf = memchr(b'\n', rest)?;
    let mut end = pos + lf;
    if end > pos && buf[end - 1] == b'\r' {
        end -= 1;
    }
    Some((end, pos + lf + 1))
}

fn start_line(bytes: &Bytes, from: usize, to: usize) -> Result<StartLine, ParseError> {
    let line = &bytes[from..to];
    let text = |a: usize, b: usize| {
        Text::from_utf8(bytes.slice(from + a..from + b))
            .map_err(|_| ParseError::StartLine("not UTF-8"))
    };
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        let sp = memchr(b' ', line).ok_or(ParseError::StartLine("no status code"))?;
        check_version(&line[..sp])?;
        let code = line
            .get(sp + 1..sp + 4)
            .filter(|c| c.iter().all(u8::is_ascii_digit))
            .map(|c| c.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
            .and_then(StatusCode::new)
            .ok_or(ParseError::StartLine("bad status code"))?;
        let reason = match line.get(sp + 4) {
            None => Text::default(),
            Some(b' ') => text(sp + 5, line.len())?,
            Some(_) => return Err(ParseError::StartLine("bad status code")),
        };
        return Ok(StartLine::Response { code, reason });
    }
    // Extra SP between the elements or after the version is tolerated (RFC 4475 §3.1.2.9 and
    // §3.1.2.10 allow a liberal element to ignore it): the printer writes single SPs, so a
    // forwarded request never carries them. SP inside the Request-URI is still an error.
    let end = line.len() - line.iter().rev().take_while(|&&b| b == b' ').count();
    let line = &line[..end];
    let sp1 = memchr(b' ', line).ok_or(ParseError::StartLine("no Request-URI"))?;
    let sp2 = memchr::memrchr(b' ', line).unwrap_or(sp1);
    if sp2 == sp1 {
        return Err(ParseError::StartLine("no SIP version"));
    }
    check_version(&line[sp2 + 1..])?;
    let uri_start = sp1 + line[sp1..].iter().take_while(|&&b| b == b' ').count();
    let uri_end = sp2 - line[..sp2].iter().rev().take_while(|&&b| b == b' ').count();
    let uri = line.get(uri_start..uri_end).unwrap_or_default();
    if uri.is_empty() {
        return Err(ParseError::StartLine("no Request-URI"));
    }
    if uri.iter().any(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::StartLine("whitespace in Request-URI"));
    }
    let method = std::str::from_utf8(&line[..sp1])
        .ok()
        .and_then(Method::parse)
        .ok_or(ParseError::StartLine("method is not a token"))?;
    Ok(StartLine::Request {
        method,
        uri: text(uri_start, uri_end)?,
    })
}

fn check_version(v: &[u8]) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    let looks_like_version = v.len() > 4
        && v[..4].eq_ignore_ascii_case(b"SIP/")
        && v[4..].iter().all(|b| b.is_ascii_digit() || *b == b'.');
    if looks_like_version {
        Err(ParseError::Version(String::from_utf8_lossy(v).into_owned()))
    } else {
        Err(ParseError::StartLine("bad SIP version"))
    }
}

fn header_line(
    bytes: &Bytes,
    from: usize,
    to: usize,
    folded: bool,
    line_no: usize,
) -> Result<Header, ParseError> {
    let line = &bytes[from..to];
    let Some(colon) = memchr(b':', line) else {
        return Err(ParseError::HeaderLine(line_no));
    };
    let name = trim(&line[..colon]);
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(ParseError::HeaderLine(line_no));
    }
    let name_start = from + (name.as_ptr() as usize - line.as_ptr() as usize);
    let name = match lookup(name) {
        Some(h) => HeaderName::Std(h),
        None => HeaderName::Other(
            Text::from_utf8(bytes.slice(name_start..name_start + name.len()))
                .map_err(|_| ParseError::HeaderLine(line_no))?,
        ),
    };
    let raw = trim(&line[colon + 1..]);
    let bad_utf8 = |name: &HeaderName| ParseError::Header {
        name: name.as_str().to_owned(),
        reason: "not UTF-8",
    };
    let value = if folded {
        let s = std::str::from_utf8(raw).map_err(|_| bad_utf8(&name))?;
        Text::from(unfold(s))
    } else {
        let start = from + (raw.as_ptr() as usize - line.as_ptr() as usize);
        Text::from_utf8(bytes.slice(start..start + raw.len())).map_err(|_| bad_utf8(&name))?
    };
    Ok(Header { name, value })
}

/// Joins folded lines: each line break with the whitespace around it becomes one space (§7.3.1).
fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for line in s.split('\n') {
        let line = line.trim_end_matches(['\r', ' ', '\t']);
        let trimmed = line.trim_start_matches([' ', '\t']);
        if pending_space && !trimmed.is_empty() {
            out.push(' ');
            out.push_str(trimmed);
        } else if !pending_space {
            out.push_str(line);
        }
        pending_space = true;
    }
    out
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

fn parse_length(v: &[u8], name: &[u8]) -> Result<usize, ParseError> {
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Header {
            name: String::from_utf8_lossy(name).into_owned(),
            reason: "not a number",
        });
    }
    Ok(v.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

/// Standard header lookup bucketed by the first letter, so a name is compared with two or three
/// candidates rather than all of them.
fn lookup(name: &[u8]) -> Option<StdHeader> {
    static BUCKETS: LazyLock<Vec<Vec<StdHeader>>> = LazyLock::new(|| {
        let mut buckets = vec![Vec::new(); 26];
        for h in StdHeader::ALL {
            let first = h.as_str().as_bytes()[0].to_ascii_lowercase();
            buckets[usize::from(first - b'a')].push(*h);
        }
        buckets
    });
    let first = name.first()?.to_ascii_lowercase();
    if !first.is_ascii_lowercase() {
        return None;
    }
    if name.len() == 1 {
        return StdHeader::from_name(name);
    }
    let bucket = &BUCKETS[usize::from(first - b'a')];
    // Most peers spell names as RFC 3261 does: an exact comparison (a memcmp) finds those, and
    // the byte-by-byte case-insensitive one is only the fallback.
    bucket
        .iter()
        .copied()
        .find(|h| h.as_str().as_bytes() == name)
        .or_else(|| {
            bucket
                .iter()
                .copied()
                .find(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name))
        })
}
