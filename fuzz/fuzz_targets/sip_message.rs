//! Whole SIP messages as they arrive in a datagram: parsing never panics; what parses prints to
//! bytes that parse back to the same message (print ∘ parse is a fixed point); the stream framer
//! never panics on the same bytes, and agrees with `parse_framed` on where the message it cuts
//! out ends.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use masterz_sip::message::{Frame, Limits, Message, frame};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(message) = Message::parse(bytes.clone(), &limits) {
        let printed = message.to_bytes();
        assert_eq!(printed.len(), message.encoded_len());
        // Printing may lengthen a message (compact names print long), so the limits of the
        // second parse are not the point here.
        let unlimited = Limits {
            max_message_bytes: usize::MAX,
            max_headers: usize::MAX,
        };
        match Message::parse(printed.clone(), &unlimited) {
            Ok(again) => assert_eq!(again, message, "printed: {:?}", printed),
            Err(e) => panic!("printed message does not parse ({e}): {printed:?}"),
        }
    }
    match frame(data, &limits) {
        Ok(Frame::Message(n)) => {
            assert!(n > 0 && n <= data.len(), "frame {n} of {}", data.len());
            // Framing and parsing must agree on where the message ends and its body starts:
            // were the framer to read another Content-Length than the parser, bytes would be
            // smuggled into (or cut from) the next message on the connection.
            if let Ok(message) = Message::parse_framed(bytes.slice(..n), &limits) {
                assert_eq!(
                    header_end(&data[..n]).map(|end| end + message.body.len()),
                    Some(n),
                    "framer and parser disagree on the body of {:?}",
                    &data[..n]
                );
            }
        }
        Ok(Frame::KeepAlive { len, .. }) => assert!(len > 0 && len <= data.len()),
        Ok(Frame::Incomplete) | Err(_) => {}
    }
});

/// Where the header section ends, written from RFC 3261 §7 rather than from the parser: after
/// the first empty line following the start line, a line ending with LF (a CR before it optional,
/// as the parser tolerates), line breaks before the start line skipped.
fn header_end(message: &[u8]) -> Option<usize> {
    let start = message.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut line_start = start;
    for lf in memchr::memchr_iter(b'\n', &message[start..]).map(|i| start + i) {
        if matches!(&message[line_start..lf], b"" | b"\r") {
            return Some(lf + 1);
        }
        line_start = lf + 1;
    }
    None
}
