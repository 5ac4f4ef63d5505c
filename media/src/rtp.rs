//! A zero-copy view of an RTP packet (RFC 3550 §5.1) over a byte slice, and the RTP/RTCP demux
//! of RFC 5761 §4.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`RtpPacket::parse`] validates once (version, CSRC list, extension and padding lengths); the
//! getters then read fixed offsets. [`RtpPacketMut`] rewrites header fields in place, which is
//! all the relay needs: no copy, no allocation.

use std::fmt;
use std::ops::Range;

/// Length of the fixed RTP header.
pub const HEADER_LEN: usize = 12;

/// Why bytes are not an RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the fixed header.
    TooShort,
    /// The version field is not 2.
    BadVersion(u8),
    /// The CSRC list runs past the end.
    CsrcOverrun,
    /// The header extension runs past the end.
    ExtensionOverrun,
    /// The padding count is zero or larger than the payload.
    BadPadding,
}

impl fmt::Display for RtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtpError::TooShort => f.write_str("RTP packet shorter than 12 bytes"),
            RtpError::BadVersion(v) => write!(f, "RTP version {v}, expected 2"),
            RtpError::CsrcOverrun => f.write_str("RTP CSRC list runs past the packet"),
            RtpError::ExtensionOverrun => f.write_str("RTP header extension runs past the packet"),
            RtpError::BadPadding => f.write_str("RTP padding count invalid"),
        }
    }
}

impl std::error::Error for RtpError {}

/// Whether a datagram that arrived on a shared port is RTCP rather than RTP (RFC 5761 §4: the
/// second byte, read as marker + payload type, falls in 192–223 for RTCP packet types 200–207
/// and the reserved range around them).
pub fn is_rtcp(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] >> 6 == 2 && (192..=223).contains(&bytes[1])
}

/// Validates `buf` and returns the byte range of the payload (after CSRCs and extension, before
/// padding).
fn validate(buf: &[u8]) -> Result<Range<usize>, RtpError> {
    if buf.len() < HEADER_LEN {
        return Err(RtpError::TooShort);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let csrc_count = usize::from(buf[0] & 0x0F);
    let mut start = HEADER_LEN + 4 * csrc_count;
    if start > buf.len() {
        return Err(RtpError::CsrcOverrun);
    }
    if buf[0] & 0x10 != 0 {
        // Extension header: 16-bit profile id, 16-bit length in 32-bit words.
        if start + 4 > buf.len() {
            return Err(RtpError::ExtensionOverrun);
        }
        let words = usize::from(u16::from_be_bytes([buf[start + 2], buf[start + 3]]));
        start += 4 + 4 * words;
        if start > buf.len() {
            return Err(RtpError::ExtensionOverrun);
        }
    }
    let mut end = buf.len();
    if buf[0] & 0x20 != 0 {
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || pad > end - start {
            return Err(RtpError::BadPadding);
        }
        end -= pad;
    }
    Ok(start..end)
}

/// A validated, read-only RTP packet.
#[derive(Clone, Copy, Debug)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
    payload_start: usize,
    payload_end: usize,
}

impl<'a> RtpPacket<'a> {
    /// Validates `buf` as one RTP packet.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let payload = validate(buf)?;
        Ok(Self {
            buf,
            payload_start: payload.start,
            payload_end: payload.end,
        })
    }

    /// The padding bit.
    pub fn padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }

    /// The extension bit.
    pub fn extension(&self) -> bool {
        self.buf[0] & 0x10 != 0
    }

    /// Number of CSRC identifiers.
    pub fn csrc_count(&self) -> u8 {
        self.buf[0] & 0x0F
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    /// The payload type.
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7F
    }

    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }

    /// The synchronization source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }

    /// The `i`-th contributing source, if present.
    pub fn csrc(&self, i: usize) -> Option<u32> {
        if i >= usize::from(self.csrc_count()) {
            return None;
        }
        let at = HEADER_LEN + 4 * i;
        Some(u32::from_be_bytes([
            self.buf[at],
            self.buf[at + 1],
            self.buf[at + 2],
            self.buf[at + 3],
        ]))
    }

    /// The byte range of the payload within the packet.
    pub fn payload_range(&self) -> Range<usize> {
        self.payload_start..self.payload_end
    }

    /// The payload (without padding).
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.payload_start..self.payload_end]
    }
}

/// A validated RTP packet whose header fields and payload can be rewritten in place.
#[derive(Debug)]
pub struct RtpPacketMut<'a> {
    buf: &'a mut [u8],
    payload: Range<usize>,
}

impl<'a> RtpPacketMut<'a> {
    /// Validates `buf` as one RTP packet.
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        let payload = validate(buf)?;
        Ok(Self { buf, payload })
    }

    /// A read-only view of the same packet.
    pub fn view(&self) -> RtpPacket<'_> {
        RtpPacket {
            buf: self.buf,
            payload_start: self.payload.start,
            payload_end: self.payload.end,
        }
    }

    /// Sets the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        self.buf[1] = (self.buf[1] & 0x7F) | if marker { 0x80 } else { 0 };
    }

    /// Sets the payload type (7 bits; the high bit of `pt` is ignored).
    pub fn set_payload_type(&mut self, pt: u8) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt & 0x7F);
    }

    /// Sets the sequence number.
    pub fn set_sequence(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the RTP timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }

    /// Sets the synchronization source.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }

    /// The payload, writable (without padding).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.payload.clone()]
    }
}

/// Writes a 12-byte RTP header (version 2, no padding, no extension, no CSRC) into `out`.
/// Returns the header length, or `None` when `out` is shorter than [`HEADER_LEN`].
pub fn write_header(
    out: &mut [u8],
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
) -> Option<usize> {
    let out = out.get_mut(..HEADER_LEN)?;
    out[0] = 0x80;
    out[1] = (pt & 0x7F) | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&seq.to_be_bytes());
    out[4..8].copy_from_slice(&ts.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    Some(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Vec<u8> {
        let mut p = vec![0u8; HEADER_LEN + 160];
        write_header(&mut p, true, 8, 0x1234, 0xDEAD_BEEF, 0x0102_0304).unwrap();
        p
    }

    #[test]
    fn parses_the_fixed_header() {
        let p = packet();
        let r = RtpPacket::parse(&p).unwrap();
        assert!(r.marker());
        assert_eq!(r.payload_type(), 8);
        assert_eq!(r.sequence(), 0x1234);
        assert_eq!(r.timestamp(), 0xDEAD_BEEF);
        assert_eq!(r.ssrc(), 0x0102_0304);
        assert_eq!(r.payload().len(), 160);
        assert_eq!(r.payload_range(), 12..172);
        assert!(!r.padding() && !r.extension());
        assert_eq!(r.csrc(0), None);
    }

    #[test]
    fn csrc_extension_and_padding() {
        // CC=1, X, P: header 12 + CSRC 4 + ext 4 + 8 + payload 3 + padding 5.
        let mut p = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[0, 0, 0, 9]);
        p.extend_from_slice(&[0xBE, 0xDE, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
        p.extend_from_slice(&[0xAA, 0xBB, 0xCC]);
        p.extend_from_slice(&[0, 0, 0, 0, 5]);
        let r = RtpPacket::parse(&p).unwrap();
        assert_eq!(r.csrc(0), Some(9));
        assert_eq!(r.payload(), &[0xAA, 0xBB, 0xCC]);
        assert!(r.padding() && r.extension());
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 5]).unwrap_err(),
            RtpError::TooShort
        );
        assert_eq!(
            RtpPacket::parse(&[0x40; 12]).unwrap_err(),
            RtpError::BadVersion(1)
        );
        let mut p = packet();
        p.truncate(12);
        p[0] = 0x82; // two CSRCs, none present
        assert_eq!(RtpPacket::parse(&p).unwrap_err(), RtpError::CsrcOverrun);
        p[0] = 0x90; // extension, absent
        assert_eq!(
            RtpPacket::parse(&p).unwrap_err(),
            RtpError::ExtensionOverrun
        );
        let mut p = packet();
        p[0] = 0xA0;
        *p.last_mut().unwrap() = 0;
        assert_eq!(RtpPacket::parse(&p).unwrap_err(), RtpError::BadPadding);
        *p.last_mut().unwrap() = 200;
        assert_eq!(RtpPacket::parse(&p).unwrap_err(), RtpError::BadPadding);
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut p = packet();
        let mut m = RtpPacketMut::parse(&mut p).unwrap();
        m.set_sequence(7);
        m.set_timestamp(8);
        m.set_ssrc(9);
        m.set_payload_type(0);
        m.set_marker(false);
        m.payload_mut()[0] = 0x55;
        let r = m.view();
        assert_eq!(
            (r.sequence(), r.timestamp(), r.ssrc(), r.payload_type()),
            (7, 8, 9, 0)
        );
        assert!(!r.marker());
        assert_eq!(p[12], 0x55);
    }

    #[test]
    fn demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 201]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x88])); // marker + PT 8
        assert!(!is_rtcp(&[0x80]));
    }
}
