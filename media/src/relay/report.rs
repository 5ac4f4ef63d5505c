//! RTCP of the relay: reading what the peers report, writing our own reports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{DropReason, PeerReport, Port, Relay, Side, Transmit};
use crate::rtcp::{self, ReportBlock, RtcpPacket, SenderInfo};

impl Relay {
    /// A datagram arrived on `side`'s RTCP port from `from`: the peer's reports are read for
    /// statistics; nothing is forwarded.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &[u8],
    ) -> Result<(), DropReason> {
        self.now = now;
        let now_ntp = self.ntp_at(now);
        let leg = &mut self.legs[side.index()];
        let mut packets = rtcp::parse_compound(buf);
        // Validate the first packet before latching, so garbage cannot take the latch.
        let first = match packets.next() {
            Some(Ok(p)) => p,
            _ => {
                leg.drop(DropReason::Malformed);
                return Err(DropReason::Malformed);
            }
        };
        match leg.rtcp_latched {
            Some(a) if a != from => {
                leg.drop(DropReason::ForeignSource);
                return Err(DropReason::ForeignSource);
            }
            Some(_) => {}
            None => leg.rtcp_latched = Some(from),
        }
        leg.counters.rtcp_in += 1;
        let our_ssrc = leg.tx.ssrc();
        for packet in std::iter::once(first).chain(packets.map_while(Result::ok)) {
            let blocks = match packet {
                RtcpPacket::SenderReport { info, blocks, .. } => {
                    leg.last_sr = Some((rtcp::ntp_middle(info.ntp), now));
                    blocks
                }
                RtcpPacket::ReceiverReport { blocks, .. } => blocks,
                _ => continue,
            };
            for block in blocks.filter(|b| b.ssrc == our_ssrc) {
                let rtt = (block.lsr != 0).then(|| {
                    let a = rtcp::ntp_middle(now_ntp);
                    let units = a.wrapping_sub(block.lsr).wrapping_sub(block.dlsr);
                    Duration::from_micros(u64::from(units) * 1_000_000 / 65536)
                });
                leg.peer_report = Some(PeerReport {
                    fraction_lost: block.fraction_lost,
                    cumulative_lost: block.cumulative_lost,
                    jitter: block.jitter,
                    rtt,
                });
            }
        }
        Ok(())
    }

    /// Our compound report to `side`: SR (or RR if we have sent nothing) with a block about
    /// what we receive from it, then SDES CNAME.
    pub(super) fn write_report(&mut self, side: Side, buf: &mut [u8]) -> Option<Transmit> {
        let now = self.now;
        let ntp = self.ntp_at(now);
        let leg = &mut self.legs[side.index()];
        let to = leg.rtcp_destination()?;
        let ssrc = leg.tx.ssrc();
        let mut blocks = [ReportBlock::default(); 1];
        let n_blocks = match leg.rx_ssrc {
            Some(rx_ssrc) if leg.rx_stats.started() => {
                let s = &mut leg.rx_stats;
                let (lsr, dlsr) = match leg.last_sr {
                    Some((lsr, at)) => {
                        let d = now.saturating_duration_since(at);
                        (lsr, (d.as_micros() * 65536 / 1_000_000) as u32)
                    }
                    None => (0, 0),
                };
                blocks[0] = ReportBlock {
                    ssrc: rx_ssrc,
                    fraction_lost: s.take_fraction_lost(),
                    cumulative_lost: s.lost_24bit(),
                    highest_seq: s.extended_max(),
                    jitter: s.jitter(),
                    lsr,
                    dlsr,
                };
                1
            }
            _ => 0,
        };
        let blocks = &blocks[..n_blocks];
        let mut len = if leg.counters.packets_out > 0 {
            let info = SenderInfo {
                ntp,
                rtp_ts: leg.tx.timestamp_at(now),
                packets: leg.counters.packets_out as u32,
                octets: leg.counters.payload_out as u32,
            };
            rtcp::write_sender_report(buf, ssrc, &info, blocks).ok()?
        } else {
            rtcp::write_receiver_report(buf, ssrc, blocks).ok()?
        };
        len += rtcp::write_sdes_cname(buf.get_mut(len..)?, ssrc, &cname(ssrc)).ok()?;
        leg.counters.rtcp_out += 1;
        Some(Transmit {
            side,
            port: Port::Rtcp,
            to,
            len,
        })
    }

    pub(super) fn ntp_at(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.epoch);
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        self.config
            .ntp_at_start
            .wrapping_add((d.as_secs() << 32) | frac)
    }
}

/// Our CNAME on a stream: `masterz-` and the SSRC in hex (unique enough per RFC 3550 §6.5.1,
/// and no allocation).
fn cname(ssrc: u32) -> [u8; 16] {
    let mut out = *b"masterz-00000000";
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in 0..8 {
        out[8 + i] = HEX[((ssrc >> (28 - 4 * i)) & 0xF) as usize];
    }
    out
}
