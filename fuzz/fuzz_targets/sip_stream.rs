//! A stream transport (TCP, TLS) reading SIP: the bytes arrive in arbitrary pieces, and the reader
//! frames whatever it has after each piece. Framing never panics; every step either consumes
//! bytes or asks for more; a reader never buffers more than the message size limit while waiting;
//! and the messages and keep-alives found do not depend on how the stream was cut.
//!
//! Input: byte 0 picks the size limit (128 B to 16 KiB), bytes 1–8 are the piece sizes (used in
//! turn, 0 meaning 256), the rest is the stream.
#![no_main]

use bytes::{Buf, BytesMut};
use libfuzzer_sys::fuzz_target;
use masterz_sip::message::{Frame, Limits, Message, frame};

#[derive(Debug, PartialEq)]
enum Event {
    Message {
        len: usize,
        parsed: bool,
    },
    KeepAlive {
        len: usize,
        ping: bool,
    },
    /// A framing error: the reader closes the connection.
    Closed,
}

/// Frames everything `buf` holds; returns whether the connection is still open.
fn drain(buf: &mut BytesMut, limits: &Limits, events: &mut Vec<Event>) -> bool {
    loop {
        match frame(buf, limits) {
            Ok(Frame::Message(n)) => {
                assert!(n > 0 && n <= buf.len(), "frame {n} of {}", buf.len());
                assert!(n <= limits.max_message_bytes, "frame {n} over the limit");
                let message = buf.split_to(n).freeze();
                let parsed = Message::parse_framed(message, limits).is_ok();
                events.push(Event::Message { len: n, parsed });
            }
            Ok(Frame::KeepAlive { len, ping }) => {
                assert!(
                    len > 0 && len <= buf.len(),
                    "keep-alive {len} of {}",
                    buf.len()
                );
                buf.advance(len);
                events.push(Event::KeepAlive { len, ping });
            }
            Ok(Frame::Incomplete) => {
                // Waiting for more must not let a peer grow the buffer without bound.
                assert!(
                    buf.len() <= limits.max_message_bytes,
                    "Incomplete with {} bytes buffered, limit {}: {:?}",
                    buf.len(),
                    limits.max_message_bytes,
                    &buf[..buf.len().min(64)]
                );
                return true;
            }
            Err(_) => {
                events.push(Event::Closed);
                return false;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let limits = Limits {
        max_message_bytes: 128 << (data[0] % 8),
        ..Limits::default()
    };
    let sizes: Vec<usize> = data[1..9]
        .iter()
        .map(|&b| if b == 0 { 256 } else { usize::from(b) })
        .collect();
    let stream = &data[9..];

    let mut chunked = Vec::new();
    let mut buf = BytesMut::new();
    let mut rest = stream;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        buf.extend_from_slice(piece);
        if !drain(&mut buf, &limits, &mut chunked) {
            break;
        }
    }

    let mut whole = Vec::new();
    let mut all = BytesMut::from(stream);
    drain(&mut all, &limits, &mut whole);
    assert_eq!(chunked, whole, "framing depends on how the stream was cut");
});
