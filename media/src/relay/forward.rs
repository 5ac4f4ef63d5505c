//! The relay path: one received RTP packet checked, rewritten in place and forwarded (or
//! dropped), optionally copied to a recording tap on the way.

use std::net::SocketAddr;
use std::time::Instant;

use super::{DropReason, Event, Relay, Side, Verdict};
use crate::codec::Codec;
use crate::dtmf::{self, TelephoneEvent};
use crate::rewrite::Source;
use crate::rtp::{self, RtpPacketMut};
use crate::stats::ReceiveStats;
use crate::transcode;

/// Audio relayed from a side, as received (before payload-type rewriting or transcoding).
///
/// Given to the tap of [`Relay::handle_rtp_tapped`] for every audio packet that is forwarded:
/// what the call carried. Nothing while the other side is on hold or hears a prompt or DTMF
/// generated here, no telephone events, nothing dropped for any other reason.
#[derive(Clone, Copy, Debug)]
pub struct TapFrame<'a> {
    /// The side that sent it.
    pub from: Side,
    /// The codec of `payload`: the sending side's.
    pub codec: Codec,
    /// The sender's SSRC (it changes on a transfer or a restart of the sender's RTP).
    pub ssrc: u32,
    /// The sender's sequence number.
    pub sequence: u16,
    /// The sender's RTP timestamp (8 kHz).
    pub timestamp: u32,
    /// The audio, one byte per sample, in `codec`.
    pub payload: &'a [u8],
}

impl Relay {
    /// A datagram of `len` bytes arrived on `side`'s RTP port from `from`. On
    /// [`Verdict::Forward`] the buffer holds the packet to send, rewritten in place.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Verdict {
        // The tap is compiled out, not merely a no-op: building a `TapFrame` slices the
        // payload, whose bounds check the optimiser must keep (it could panic), so a no-op
        // closure alone cost instructions (measured with callgrind).
        self.relay_step::<false>(now, side, from, buf, len, &mut |_| {})
    }

    /// As [`Relay::handle_rtp`], and calls `tap` with every audio packet that is forwarded,
    /// before it is rewritten (see [`TapFrame`]). `tap` runs on the relay path: it should copy
    /// and return (into a preallocated buffer or a bounded channel), not block.
    pub fn handle_rtp_tapped(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        tap: &mut impl FnMut(TapFrame<'_>),
    ) -> Verdict {
        self.relay_step::<true>(now, side, from, buf, len, tap)
    }

    fn relay_step<const TAPPED: bool>(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        tap: &mut impl FnMut(TapFrame<'_>),
    ) -> Verdict {
        self.now = now;
        let Some(packet) = buf.get_mut(..len) else {
            self.legs[side.index()].drop(DropReason::Malformed);
            return Verdict::Drop(DropReason::Malformed);
        };
        if rtp::is_rtcp(packet) {
            // rtcp-mux was not negotiated, but read it anyway rather than relay it.
            let _ = self.handle_rtcp(now, side, from, packet);
            self.legs[side.index()].drop(DropReason::Rtcp);
            return Verdict::Drop(DropReason::Rtcp);
        }
        match self.relay_rtp::<TAPPED>(now, side, from, packet, tap) {
            Ok(to) => Verdict::Forward { to, len },
            Err(reason) => {
                self.legs[side.index()].drop(reason);
                Verdict::Drop(reason)
            }
        }
    }

    fn relay_rtp<const TAPPED: bool>(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        packet: &mut [u8],
        tap: &mut impl FnMut(TapFrame<'_>),
    ) -> Result<SocketAddr, DropReason> {
        let arrival = self.clock_units(now);
        let len = packet.len() as u64;
        let [a, b] = &mut self.legs;
        let (src, dst) = match side {
            Side::A => (a, b),
            Side::B => (b, a),
        };
        let mut rtp = RtpPacketMut::parse(packet).map_err(|_| DropReason::Malformed)?;
        let Some(src_params) = src.params else {
            return Err(DropReason::NotConfigured);
        };
        match src.latched {
            Some(addr) if addr != from => return Err(DropReason::ForeignSource),
            Some(_) => {}
            None => src.latched = Some(from),
        }
        let view = rtp.view();
        let (pt, seq, ts, ssrc) = (
            view.payload_type(),
            view.sequence(),
            view.timestamp(),
            view.ssrc(),
        );
        let is_event = src_params.telephone_event == Some(pt);
        if pt != src_params.payload_type && !is_event {
            return Err(DropReason::UnknownPayloadType);
        }
        let event = if is_event {
            Some(TelephoneEvent::parse(view.payload()).map_err(|_| DropReason::Malformed)?)
        } else {
            None
        };

        // Accepted from this side: count, time and statistics.
        src.counters.packets_in += 1;
        src.counters.bytes_in += len;
        src.last_rx = now;
        if src.timed_out {
            src.timed_out = false;
            if self.next_timeout_check.is_none() {
                self.next_timeout_check = Some(now + self.config.media_timeout);
            }
        }
        if src.rx_ssrc != Some(ssrc) {
            src.rx_ssrc = Some(ssrc);
            src.rx_stats = ReceiveStats::new(seq);
        }
        src.rx_stats.update_seq(seq);
        src.rx_stats.update_jitter(arrival, ts);
        if let Some(e) = event
            && e.end
            && src.last_event_ts != Some(ts)
        {
            src.last_event_ts = Some(ts);
            src.counters.dtmf_in += 1;
            if let Some(digit) = e.digit() {
                let duration_ms = u32::from(e.duration) * 1000 / dtmf::CLOCK_RATE;
                self.events.push(Some(Event::Dtmf {
                    from: side,
                    digit,
                    duration_ms,
                }));
            }
        }

        // Toward the other side.
        let Some(dst_params) = dst.params else {
            return Err(DropReason::NoDestination);
        };
        if !dst_params.direction.receives() {
            return Err(DropReason::OnHold);
        }
        let to = dst.rtp_destination().ok_or(DropReason::NoDestination)?;
        if dst.inject.active.is_some() || dst.playback.is_some() {
            return Err(DropReason::Suppressed);
        }
        if is_event {
            let out_pt = dst_params
                .telephone_event
                .ok_or(DropReason::DtmfUnsupported)?;
            rtp.set_payload_type(out_pt);
        } else {
            // Every check has passed: this packet is forwarded, so the tap sees it, as received.
            if TAPPED {
                tap(TapFrame {
                    from: side,
                    codec: src_params.codec,
                    ssrc,
                    sequence: seq,
                    timestamp: ts,
                    payload: rtp.view().payload(),
                });
            }
            rtp.set_payload_type(dst_params.payload_type);
            if src_params.codec != dst_params.codec {
                transcode::transcode(src_params.codec, dst_params.codec, rtp.payload_mut());
            }
        }
        let (out_seq, out_ts) = dst.tx.map(now, Source::Relayed(ssrc), seq, ts);
        rtp.set_sequence(out_seq);
        rtp.set_timestamp(out_ts);
        rtp.set_ssrc(dst.tx.ssrc());
        dst.counters.packets_out += 1;
        dst.counters.bytes_out += len;
        dst.counters.payload_out += rtp.view().payload().len() as u64;
        Ok(to)
    }
}
