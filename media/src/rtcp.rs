//! RTCP (RFC 3550 §6): reading a compound packet — sender and receiver reports with their
//! report blocks, SDES CNAME, BYE — and writing SR, RR and SDES CNAME into a caller's buffer.
//! Nothing here allocates: parsing yields views over the input, writing fills the output slice.
//!
//! Every RTCP packet starts with the same header:
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|   RC    |      PT       |   length (32-bit words - 1)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::fmt;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of source description.
pub const PT_SDES: u8 = 202;
/// Packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// Length of one report block.
pub const REPORT_BLOCK_LEN: usize = 24;
const SDES_CNAME: u8 = 1;

/// Why an RTCP packet could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpError {
    /// Shorter than its header or its declared length.
    Truncated,
    /// The version field is not 2.
    BadVersion(u8),
    /// The report count does not fit the packet length.
    BadCount,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for RtcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtcpError::Truncated => f.write_str("RTCP packet truncated"),
            RtcpError::BadVersion(v) => write!(f, "RTCP version {v}, expected 2"),
            RtcpError::BadCount => f.write_str("RTCP report count exceeds the packet"),
            RtcpError::BufferTooSmall => f.write_str("RTCP output buffer too small"),
        }
    }
}

impl std::error::Error for RtcpError {}

/// One reception report block: what a receiver saw of one source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (signed 24 bits).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source (0: none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

impl ReportBlock {
    fn read(b: &[u8]) -> Self {
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        // Sign-extend 24 bits.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Self {
            ssrc: be32(&b[0..4]),
            fraction_lost: b[4],
            cumulative_lost,
            highest_seq: be32(&b[8..12]),
            jitter: be32(&b[12..16]),
            lsr: be32(&b[16..20]),
            dlsr: be32(&b[20..24]),
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32).to_be_bytes();
        out[4] = self.fraction_lost;
        out[5..8].copy_from_slice(&lost[1..4]);
        out[8..12].copy_from_slice(&self.highest_seq.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.lsr.to_be_bytes());
        out[20..24].copy_from_slice(&self.dlsr.to_be_bytes());
    }
}

/// The sender information of an SR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (seconds since 1900 in the high 32 bits, fraction in the low 32).
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_ts: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// The middle 32 bits of an NTP timestamp, as LSR and DLSR use them.
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Report blocks of an SR or RR, read on demand.
#[derive(Clone, Copy, Debug)]
pub struct ReportBlocks<'a> {
    bytes: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let (block, rest) = self.bytes.split_at_checked(REPORT_BLOCK_LEN)?;
        self.bytes = rest;
        Some(ReportBlock::read(block))
    }
}

/// One packet of a compound RTCP packet.
#[derive(Clone, Copy, Debug)]
pub enum RtcpPacket<'a> {
    /// A sender report.
    SenderReport {
        /// The sender.
        ssrc: u32,
        /// What it has sent.
        info: SenderInfo,
        /// What it has received.
        blocks: ReportBlocks<'a>,
    },
    /// A receiver report.
    ReceiverReport {
        /// The reporter.
        ssrc: u32,
        /// What it has received.
        blocks: ReportBlocks<'a>,
    },
    /// Source description: the first chunk's SSRC and CNAME.
    Sdes {
        /// The first chunk's source.
        ssrc: Option<u32>,
        /// Its CNAME, when the chunk has one.
        cname: Option<&'a [u8]>,
    },
    /// Goodbye.
    Bye {
        /// The first source leaving.
        ssrc: Option<u32>,
    },
    /// Any other packet type (APP, feedback …), skipped.
    Other {
        /// The packet type.
        pt: u8,
    },
}

/// Iterates over the packets of a compound RTCP packet. After the first error it stops.
#[derive(Clone, Debug)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

/// Reads a compound RTCP packet.
pub fn parse_compound(buf: &[u8]) -> Compound<'_> {
    Compound { rest: buf }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = parse_one(self.rest);
        match r {
            Ok((packet, len)) => {
                self.rest = &self.rest[len..];
                Some(Ok(packet))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    if buf.len() < 4 {
        return Err(RtcpError::Truncated);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let count = usize::from(buf[0] & 0x1F);
    let pt = buf[1];
    let len = (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1) * 4;
    let packet = buf.get(..len).ok_or(RtcpError::Truncated)?;
    let mut body = &packet[4..];
    if buf[0] & 0x20 != 0 {
        let pad = usize::from(packet[len - 1]);
        if pad == 0 || pad > body.len() {
            return Err(RtcpError::Truncated);
        }
        body = &body[..body.len() - pad];
    }
    let blocks = |from: usize| -> Result<ReportBlocks<'_>, RtcpError> {
        let bytes = body
            .get(from..from + count * REPORT_BLOCK_LEN)
            .ok_or(RtcpError::BadCount)?;
        Ok(ReportBlocks { bytes })
    };
    let parsed = match pt {
        PT_SR => {
            if body.len() < 24 {
                return Err(RtcpError::Truncated);
            }
            RtcpPacket::SenderReport {
                ssrc: be32(&body[0..4]),
                info: SenderInfo {
                    ntp: (u64::from(be32(&body[4..8])) << 32) | u64::from(be32(&body[8..12])),
                    rtp_ts: be32(&body[12..16]),
                    packets: be32(&body[16..20]),
                    octets: be32(&body[20..24]),
                },
                blocks: blocks(24)?,
            }
        }
        PT_RR => {
            if body.len() < 4 {
                return Err(RtcpError::Truncated);
            }
            RtcpPacket::ReceiverReport {
                ssrc: be32(&body[0..4]),
                blocks: blocks(4)?,
            }
        }
        PT_SDES => {
            let ssrc = (count > 0 && body.len() >= 4).then(|| be32(&body[0..4]));
            let mut cname = None;
            if ssrc.is_some() {
                let mut items = &body[4..];
                while let [kind, n, rest @ ..] = items {
                    if *kind == 0 {
                        break;
                    }
                    let text = rest.get(..usize::from(*n)).ok_or(RtcpError::Truncated)?;
                    if *kind == SDES_CNAME {
                        cname = Some(text);
                        break;
                    }
                    items = &rest[usize::from(*n)..];
                }
            }
            RtcpPacket::Sdes { ssrc, cname }
        }
        PT_BYE => RtcpPacket::Bye {
            ssrc: (count > 0 && body.len() >= 4).then(|| be32(&body[0..4])),
        },
        pt => RtcpPacket::Other { pt },
    };
    Ok((parsed, len))
}

fn header(out: &mut [u8], count: usize, pt: u8, len: usize) {
    out[0] = 0x80 | (count as u8 & 0x1F);
    out[1] = pt;
    out[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

/// Writes an SR with up to 31 report blocks; returns its length.
pub fn write_sender_report(
    out: &mut [u8],
    ssrc: u32,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let blocks = &blocks[..blocks.len().min(31)];
    let len = 28 + blocks.len() * REPORT_BLOCK_LEN;
    let out = out.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    header(out, blocks.len(), PT_SR, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8..16].copy_from_slice(&info.ntp.to_be_bytes());
    out[16..20].copy_from_slice(&info.rtp_ts.to_be_bytes());
    out[20..24].copy_from_slice(&info.packets.to_be_bytes());
    out[24..28].copy_from_slice(&info.octets.to_be_bytes());
    for (b, chunk) in blocks
        .iter()
        .zip(out[28..].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(chunk);
    }
    Ok(len)
}

/// Writes an RR with up to 31 report blocks; returns its length.
pub fn write_receiver_report(
    out: &mut [u8],
    ssrc: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let blocks = &blocks[..blocks.len().min(31)];
    let len = 8 + blocks.len() * REPORT_BLOCK_LEN;
    let out = out.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    header(out, blocks.len(), PT_RR, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    for (b, chunk) in blocks
        .iter()
        .zip(out[8..].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        b.write(chunk);
    }
    Ok(len)
}

/// Writes an SDES packet with one chunk carrying a CNAME (at most 255 bytes); returns its
/// length.
pub fn write_sdes_cname(out: &mut [u8], ssrc: u32, cname: &[u8]) -> Result<usize, RtcpError> {
    let cname = &cname[..cname.len().min(255)];
    // SSRC, CNAME item, then at least one zero byte ending the item list, padded to 32 bits.
    let len = (4 + 4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let out = out.get_mut(..len).ok_or(RtcpError::BufferTooSmall)?;
    header(out, 1, PT_SDES, len);
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8] = SDES_CNAME;
    out[9] = cname.len() as u8;
    out[10..10 + cname.len()].copy_from_slice(cname);
    out[10 + cname.len()..].fill(0);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0x1111,
            fraction_lost: 26,
            cumulative_lost: -3,
            highest_seq: 70_000,
            jitter: 42,
            lsr: 0xABCD_0000,
            dlsr: 65536,
        }
    }

    #[test]
    fn sr_sdes_round_trip() {
        let mut buf = [0u8; 200];
        let info = SenderInfo {
            ntp: 0x0102_0304_0506_0708,
            rtp_ts: 9,
            packets: 10,
            octets: 1600,
        };
        let n = write_sender_report(&mut buf, 0x2222, &info, &[block()]).unwrap();
        assert_eq!(n, 52);
        let m = write_sdes_cname(&mut buf[n..], 0x2222, b"masterz").unwrap();
        assert_eq!(m, 20);
        let mut it = parse_compound(&buf[..n + m]);
        match it.next() {
            Some(Ok(RtcpPacket::SenderReport {
                ssrc,
                info: i,
                mut blocks,
            })) => {
                assert_eq!(ssrc, 0x2222);
                assert_eq!(i, info);
                assert_eq!(blocks.next(), Some(block()));
                assert_eq!(blocks.next(), None);
            }
            other => panic!("{other:?}"),
        }
        match it.next() {
            Some(Ok(RtcpPacket::Sdes { ssrc, cname })) => {
                assert_eq!(ssrc, Some(0x2222));
                assert_eq!(cname, Some(&b"masterz"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert!(it.next().is_none());
    }

    #[test]
    fn rr_and_bye() {
        let mut buf = [0u8; 64];
        let n = write_receiver_report(&mut buf, 7, &[]).unwrap();
        assert_eq!(n, 8);
        buf[n..n + 8].copy_from_slice(&[0x81, PT_BYE, 0, 1, 0, 0, 0, 7]);
        let got: Vec<_> = parse_compound(&buf[..n + 8]).collect();
        assert!(matches!(
            got[0],
            Ok(RtcpPacket::ReceiverReport { ssrc: 7, .. })
        ));
        assert!(matches!(got[1], Ok(RtcpPacket::Bye { ssrc: Some(7) })));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let cases: [&[u8]; 5] = [
            &[0x80],
            &[0x40, 200, 0, 0],
            &[0x80, 200, 0, 9],
            &[0x81, 201, 0, 1, 0, 0, 0, 1], // one block announced, none present
            &[0xA0, 201, 0, 1, 0, 0, 0, 0], // padding count 0
        ];
        for c in cases {
            let r: Vec<_> = parse_compound(c).collect();
            assert_eq!(r.len(), 1, "{c:?}");
            assert!(r[0].is_err(), "{c:?}");
        }
        assert_eq!(
            write_sender_report(&mut [0u8; 20], 1, &SenderInfo::default(), &[]),
            Err(RtcpError::BufferTooSmall)
        );
    }

    #[test]
    fn negative_loss_is_sign_extended() {
        let mut raw = [0u8; 24];
        block().write(&mut raw);
        assert_eq!(&raw[5..8], &[0xFF, 0xFF, 0xFD]);
        assert_eq!(ReportBlock::read(&raw).cumulative_lost, -3);
        assert_eq!(ntp_middle(0x0102_0304_0506_0708), 0x0304_0506);
    }
}
