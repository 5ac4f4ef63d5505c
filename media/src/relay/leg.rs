//! The state the relay keeps per side: what that side's SDP said, where it really sends from,
//! what we received from it, the stream we send to it, and its counters.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::playback::Playback;
use super::{DropReason, LegConfig};
use crate::dtmf::DtmfGenerator;
use crate::rewrite::Rewriter;
use crate::stats::ReceiveStats;

/// Counters of one side. Plain fields: the relay is owned by one task, which publishes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegCounters {
    /// Valid RTP packets received from this side (accepted from its latched source).
    pub packets_in: u64,
    /// Bytes of those packets (RTP header included).
    pub bytes_in: u64,
    /// RTP packets sent to this side (relayed and generated).
    pub packets_out: u64,
    /// Bytes of those packets.
    pub bytes_out: u64,
    /// Payload octets sent to this side (for the SR octet count).
    pub payload_out: u64,
    /// RTCP packets received from this side.
    pub rtcp_in: u64,
    /// RTCP packets sent to this side.
    pub rtcp_out: u64,
    /// DTMF events (end of event, once each) received from this side.
    pub dtmf_in: u64,
    /// DTMF packets generated toward this side.
    pub dtmf_injected: u64,
    /// Prompt packets ([`super::Relay::play`]) sent to this side.
    pub prompt_packets: u64,
    /// Packets received on this side's ports and not relayed, by [`DropReason::index`].
    pub dropped: [u64; DropReason::ALL.len()],
}

impl LegCounters {
    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }
}

/// What the far end reported about the stream we send it (from its RTCP report block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerReport {
    /// Fraction lost in its last interval, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative loss it saw.
    pub cumulative_lost: i32,
    /// Jitter it saw, in timestamp units.
    pub jitter: u32,
    /// Round-trip time computed from LSR/DLSR, when it echoed one of our SRs.
    pub rtt: Option<Duration>,
}

/// A fixed-capacity FIFO: queues that must not allocate on the packet path.
#[derive(Clone, Debug)]
pub(crate) struct Ring<T: Copy + Default, const N: usize> {
    items: [T; N],
    head: usize,
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self {
            items: [T::default(); N],
            head: 0,
            len: 0,
        }
    }
}

impl<T: Copy + Default, const N: usize> Ring<T, N> {
    /// Appends `item`; returns `false` (and keeps the queue as it was) when full.
    pub(crate) fn push(&mut self, item: T) -> bool {
        if self.len == N {
            return false;
        }
        self.items[(self.head + self.len) % N] = item;
        self.len += 1;
        true
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(item)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// DTMF injection toward one side: the train being sent and the digits waiting.
#[derive(Clone, Debug, Default)]
pub(crate) struct Injection {
    pub(crate) active: Option<DtmfGenerator>,
    /// (event code, duration in ms) of digits not yet started.
    pub(crate) queue: Ring<(u8, u32), 32>,
    /// Earliest start of the next queued digit (a pause between digits).
    pub(crate) next_start: Option<Instant>,
    /// Trains and prompts started so far: each is its own source for the rewriter.
    pub(crate) trains: u32,
}

/// Everything the relay knows about one side.
#[derive(Clone, Debug)]
pub(crate) struct Leg {
    pub(crate) params: Option<LegConfig>,
    /// The source address of this side's RTP, learnt from its first packet (symmetric RTP).
    pub(crate) latched: Option<SocketAddr>,
    pub(crate) rtcp_latched: Option<SocketAddr>,
    /// SSRC of the stream received from this side and its statistics.
    pub(crate) rx_ssrc: Option<u32>,
    pub(crate) rx_stats: ReceiveStats,
    /// The stream we send to this side.
    pub(crate) tx: Rewriter,
    pub(crate) counters: LegCounters,
    /// Last valid RTP from this side (or the last configure), for the media timeout.
    pub(crate) last_rx: Instant,
    pub(crate) timed_out: bool,
    /// RTP timestamp of the last telephone event reported, so that its three end packets
    /// make one event.
    pub(crate) last_event_ts: Option<u32>,
    /// The last SR from this side: middle 32 bits of its NTP time, and when it arrived.
    pub(crate) last_sr: Option<(u32, Instant)>,
    pub(crate) peer_report: Option<PeerReport>,
    pub(crate) next_rtcp: Option<Instant>,
    pub(crate) rtcp_due: bool,
    pub(crate) inject: Injection,
    /// The prompt playing to this side.
    pub(crate) playback: Option<Playback>,
}

impl Leg {
    pub(crate) fn new(now: Instant, tx: Rewriter) -> Self {
        Self {
            params: None,
            latched: None,
            rtcp_latched: None,
            rx_ssrc: None,
            rx_stats: ReceiveStats::default(),
            tx,
            counters: LegCounters::default(),
            last_rx: now,
            timed_out: false,
            last_event_ts: None,
            last_sr: None,
            peer_report: None,
            next_rtcp: None,
            rtcp_due: false,
            inject: Injection::default(),
            playback: None,
        }
    }

    /// Where RTP for this side goes: its latched source, else the address in its SDP.
    pub(crate) fn rtp_destination(&self) -> Option<SocketAddr> {
        self.latched
            .or_else(|| self.params.as_ref().and_then(|p| p.remote_rtp))
    }

    /// Where RTCP for this side goes: its latched RTCP source, else `a=rtcp`, else RTP + 1.
    pub(crate) fn rtcp_destination(&self) -> Option<SocketAddr> {
        if let Some(a) = self.rtcp_latched {
            return Some(a);
        }
        let p = self.params.as_ref()?;
        p.remote_rtcp.or_else(|| {
            let mut a = p.remote_rtp?;
            a.set_port(a.port().checked_add(1)?);
            Some(a)
        })
    }

    /// Whether this side wants to receive media (not holding us, not inactive).
    pub(crate) fn receives(&self) -> bool {
        self.params.as_ref().is_some_and(|p| p.direction.receives())
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.counters.dropped[reason.index()] += 1;
    }
}
