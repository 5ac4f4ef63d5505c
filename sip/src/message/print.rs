//! Printing: a message goes out as its start line, its headers in order (standard names in
//! their long form) and its body. Content-Length is whatever the headers say — builders keep it
//! right with [`Message::set_body`].

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Message, StartLine};

impl Message {
    /// The bytes to send.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// Appends the message to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        match &self.start {
            StartLine::Request { method, uri } => {
                out.put_slice(method.as_str().as_bytes());
                out.put_u8(b' ');
                out.put_slice(uri.as_bytes());
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.put_slice(b"SIP/2.0 ");
                let c = code.as_u16();
                out.put_slice(&[
                    b'0' + (c / 100) as u8,
                    b'0' + (c / 10 % 10) as u8,
                    b'0' + (c % 10) as u8,
                    b' ',
                ]);
                out.put_slice(reason.as_bytes());
                out.put_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            out.put_slice(h.name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(h.value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }

    /// The exact size [`Message::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let start = match &self.start {
            StartLine::Request { method, uri } => method.as_str().len() + uri.len() + 11,
            StartLine::Response { reason, .. } => 12 + reason.len() + 2,
        };
        let headers: usize = self
            .headers
            .iter()
            .map(|h| h.name.as_str().len() + h.value.len() + 4)
            .sum();
        start + headers + 2 + self.body.len()
    }
}

impl fmt::Display for Message {
    /// The message as text; a body that is not UTF-8 is shown lossily.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}
