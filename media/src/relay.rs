//! The media relay of one call: two sides, `A` and `B`, each a remote RTP endpoint that sends to
//! one of our ports, and the packets between them.
//!
//! # Drive loop
//!
//! - inputs: [`Relay::handle_rtp`] (a datagram on a side's RTP port; returns at once whether
//!   and where to forward it — the buffer is rewritten in place; [`Relay::handle_rtp_tapped`]
//!   also hands each forwarded audio frame to a recording tap), [`Relay::handle_rtcp`] (a
//!   datagram on a side's RTCP port), [`Relay::handle_timeout`] (the deadline of
//!   [`Relay::poll_timeout`] passed);
//! - commands: [`Relay::configure`] (a side's SDP, at answer, re-INVITE or transfer),
//!   [`Relay::send_dtmf`], [`Relay::play`] and [`Relay::stop_playing`] (a prompt);
//! - outputs, drained after every input: [`Relay::poll_transmit`] (generated packets: DTMF,
//!   prompts and RTCP reports, written into the caller's buffer), [`Relay::poll_event`], and
//!   [`Relay::poll_timeout`].
//!
//! # What it does
//!
//! - **Symmetric RTP** (RFC 4961) and latching: the first valid RTP packet on a side's port
//!   latches that side to its real source (which NAT may have rewritten); afterwards packets
//!   from anywhere else are dropped and counted. `configure` re-arms latching.
//! - **One continuous stream per side**: we send each side our own SSRC; sequence numbers and
//!   timestamps continue across a change of source ([`crate::rewrite`]).
//! - **Payload types and codecs are mapped**: PCMU ↔ PCMA transcoding only where the two
//!   sides' codecs differ; telephone events are relayed with their payload type mapped and
//!   reported as [`Event::Dtmf`].
//! - **Prompts**: a recording played to one side in place of the relayed audio, paced by the
//!   timer ([`Relay::play`]).
//! - **Hold**: nothing goes to a side whose SDP says it does not receive.
//! - **RTCP** terminates here: the peer's reports are read; we send each side our own SR/RR.
//! - **Media timeout**: a side silent for `media_timeout` while both are `sendrecv` → an event.
//!
//! One [`Relay::handle_rtp`] step allocates nothing; every queue is a fixed array.

mod forward;
mod inject;
mod leg;
mod playback;
mod report;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use forward::TapFrame;
use leg::{Leg, Ring};
pub use leg::{LegCounters, PeerReport};
pub use playback::PlayError;

use crate::codec::{Codec, Direction};
use crate::dtmf;
use crate::rewrite::Rewriter;
use crate::stats::ReceiveStats;

/// One side of a relayed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first leg (by convention the caller's).
    A,
    /// The second leg.
    B,
}

impl Side {
    /// The opposite side.
    pub const fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for `A`, 1 for `B`.
    pub const fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// What a side's SDP says about its media stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegConfig {
    /// Where it receives RTP; `None` when not known or on old-style hold (`c=0.0.0.0`).
    pub remote_rtp: Option<SocketAddr>,
    /// Where it receives RTCP; `None`: RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// The codec negotiated with it.
    pub codec: Codec,
    /// The payload type of that codec on this leg.
    pub payload_type: u8,
    /// The payload type of telephone-event on this leg, if negotiated.
    pub telephone_event: Option<u8>,
    /// Packetisation time, in ms.
    pub ptime_ms: u32,
    /// The direction attribute as written in its SDP.
    pub direction: Direction,
}

/// Fixed parameters of a relay, chosen by the driver (randomness and wall clock are inputs).
#[derive(Clone, Copy, Debug)]
pub struct RelayConfig {
    /// Our SSRC on the stream sent to side A and to side B.
    pub ssrc: [u32; 2],
    /// Initial sequence numbers of those streams (random, RFC 3550 §5.1).
    pub initial_seq: [u16; 2],
    /// Initial timestamps of those streams (random).
    pub initial_ts: [u32; 2],
    /// Silence from a `sendrecv` side after which [`Event::Timeout`] is raised.
    pub media_timeout: Duration,
    /// Interval between our RTCP reports to each side.
    pub rtcp_interval: Duration,
    /// The NTP time (RFC 3550 §4) at the `now` given to [`Relay::new`], for sender reports.
    pub ntp_at_start: u64,
}

/// Why a received packet was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a valid RTP (or telephone-event) packet.
    Malformed,
    /// RTCP that arrived on the RTP port; it was read as RTCP.
    Rtcp,
    /// The side has not been configured (no SDP yet).
    NotConfigured,
    /// From an address other than the one the side latched to.
    ForeignSource,
    /// A payload type that the side did not negotiate.
    UnknownPayloadType,
    /// The other side has no address yet.
    NoDestination,
    /// The other side does not receive (hold, inactive).
    OnHold,
    /// The other side is receiving a DTMF train or a prompt generated here.
    Suppressed,
    /// A telephone event, and the other side did not negotiate telephone-event.
    DtmfUnsupported,
}

impl DropReason {
    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::Rtcp,
        DropReason::NotConfigured,
        DropReason::ForeignSource,
        DropReason::UnknownPayloadType,
        DropReason::NoDestination,
        DropReason::OnHold,
        DropReason::Suppressed,
        DropReason::DtmfUnsupported,
    ];

    /// The position of this reason in [`DropReason::ALL`] (and in counter arrays).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name, for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Rtcp => "rtcp_on_rtp_port",
            DropReason::NotConfigured => "not_configured",
            DropReason::ForeignSource => "foreign_source",
            DropReason::UnknownPayloadType => "unknown_payload_type",
            DropReason::NoDestination => "no_destination",
            DropReason::OnHold => "on_hold",
            DropReason::Suppressed => "suppressed",
            DropReason::DtmfUnsupported => "dtmf_unsupported",
        }
    }
}

/// What to do with a received RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the first `len` bytes of the (rewritten) buffer to `to`, from the other side's
    /// RTP socket.
    Forward {
        /// Destination.
        to: SocketAddr,
        /// Length of the packet.
        len: usize,
    },
    /// Do not forward.
    Drop(DropReason),
}

/// Something call control should hear about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A side has sent no RTP for the media timeout while both sides were `sendrecv`.
    Timeout {
        /// The silent side.
        side: Side,
    },
    /// A DTMF digit received from a side (reported once, at its end).
    Dtmf {
        /// The side that sent it.
        from: Side,
        /// The digit.
        digit: char,
        /// Its duration.
        duration_ms: u32,
    },
    /// A prompt started with [`Relay::play`] has been sent to a side in full (not raised
    /// when it was stopped or replaced).
    PlaybackDone {
        /// The side it was played to.
        side: Side,
    },
}

/// Which socket of a side a generated packet leaves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The side's RTP port.
    Rtp,
    /// The side's RTCP port.
    Rtcp,
}

/// A generated packet, written into the buffer given to [`Relay::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The side it goes to (and whose socket sends it).
    pub side: Side,
    /// RTP or RTCP.
    pub port: Port,
    /// Destination.
    pub to: SocketAddr,
    /// Length written.
    pub len: usize,
}

/// Why a DTMF digit could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectError {
    /// Not one of 0-9, *, #, A-D.
    NotADigit,
    /// The side did not negotiate telephone-event.
    NoTelephoneEvent,
    /// Too many digits waiting.
    QueueFull,
}

/// The relay of one call. See the module documentation for the drive loop.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    epoch: Instant,
    now: Instant,
    legs: [Leg; 2],
    events: Ring<Option<Event>, 16>,
    next_timeout_check: Option<Instant>,
}

impl Relay {
    /// A relay created at `now`; both sides unconfigured.
    pub fn new(now: Instant, config: RelayConfig) -> Self {
        let leg = |i: usize| {
            let tx = Rewriter::new(
                config.ssrc[i],
                config.initial_seq[i],
                config.initial_ts[i],
                dtmf::CLOCK_RATE,
            );
            Leg::new(now, tx)
        };
        Self {
            config,
            epoch: now,
            now,
            legs: [leg(0), leg(1)],
            events: Ring::default(),
            next_timeout_check: None,
        }
    }

    // ---- getters ----

    /// The configuration of a side, if any.
    pub fn leg_config(&self, side: Side) -> Option<&LegConfig> {
        self.legs[side.index()].params.as_ref()
    }

    /// The address a side is latched to.
    pub fn latched(&self, side: Side) -> Option<SocketAddr> {
        self.legs[side.index()].latched
    }

    /// The counters of a side.
    pub fn counters(&self, side: Side) -> &LegCounters {
        &self.legs[side.index()].counters
    }

    /// Receive statistics of the stream from a side (empty before its first packet).
    pub fn receive_stats(&self, side: Side) -> &ReceiveStats {
        &self.legs[side.index()].rx_stats
    }

    /// What a side last reported (RTCP) about the stream we send it.
    pub fn peer_report(&self, side: Side) -> Option<PeerReport> {
        self.legs[side.index()].peer_report
    }

    /// Our SSRC on the stream toward a side.
    pub fn ssrc(&self, side: Side) -> u32 {
        self.config.ssrc[side.index()]
    }

    // ---- commands ----

    /// Sets a side's SDP parameters (answer, re-INVITE, transfer). Latching is re-armed; the
    /// stream we send to it continues.
    pub fn configure(&mut self, now: Instant, side: Side, params: LegConfig) {
        self.now = now;
        let leg = &mut self.legs[side.index()];
        leg.params = Some(params);
        leg.latched = None;
        leg.rtcp_latched = None;
        if leg.next_rtcp.is_none() {
            leg.next_rtcp = Some(now + self.config.rtcp_interval);
        }
        // A new offer/answer may end a hold: both sides start their silence count afresh.
        for leg in &mut self.legs {
            leg.last_rx = now;
            leg.timed_out = false;
        }
        self.schedule_timeout_check(now + self.config.media_timeout);
    }

    /// Queues DTMF `digit` of `duration_ms` toward side `to`, sent as telephone events in the
    /// stream we send it (audio relayed to it pauses meanwhile).
    pub fn send_dtmf(
        &mut self,
        now: Instant,
        to: Side,
        digit: char,
        duration_ms: u32,
    ) -> Result<(), InjectError> {
        self.now = now;
        let event = dtmf::digit_to_event(digit).ok_or(InjectError::NotADigit)?;
        let leg = &mut self.legs[to.index()];
        if leg.params.and_then(|p| p.telephone_event).is_none() {
            return Err(InjectError::NoTelephoneEvent);
        }
        if !leg.inject.queue.push((event, duration_ms)) {
            return Err(InjectError::QueueFull);
        }
        if leg.inject.active.is_none() && leg.inject.next_start.is_none() {
            leg.inject.next_start = Some(now);
        }
        Ok(())
    }

    // ---- inputs ----

    /// The deadline of [`Relay::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        for leg in &mut self.legs {
            if let Some(at) = leg.next_rtcp
                && now >= at
            {
                leg.rtcp_due = true;
                let mut next = at + self.config.rtcp_interval;
                if next <= now {
                    next = now + self.config.rtcp_interval;
                }
                leg.next_rtcp = Some(next);
            }
        }
        if self.next_timeout_check.is_some_and(|at| now >= at) {
            self.next_timeout_check = None;
            self.check_media_timeout(now);
        }
        self.finish_playback(now);
    }

    fn check_media_timeout(&mut self, now: Instant) {
        let active = self
            .legs
            .iter()
            .all(|l| l.params.is_some_and(|p| p.direction == Direction::SendRecv));
        if !active {
            // Suspended (hold, or not yet answered); configure schedules the next check.
            return;
        }
        let timeout = self.config.media_timeout;
        for side in [Side::A, Side::B] {
            let leg = &mut self.legs[side.index()];
            if leg.timed_out {
                continue;
            }
            let deadline = leg.last_rx + timeout;
            if now >= deadline {
                leg.timed_out = true;
                self.events.push(Some(Event::Timeout { side }));
            } else {
                self.schedule_timeout_check(deadline);
            }
        }
    }

    fn schedule_timeout_check(&mut self, at: Instant) {
        self.next_timeout_check = Some(match self.next_timeout_check {
            Some(t) => t.min(at),
            None => at,
        });
    }

    // ---- outputs ----

    /// The next event for call control.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop().flatten()
    }

    /// When [`Relay::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut at = self.next_timeout_check;
        let mut earliest = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        for side in [Side::A, Side::B] {
            let leg = &self.legs[side.index()];
            earliest(leg.next_rtcp);
            earliest(leg.inject.active.as_ref().and_then(|g| g.poll_timeout()));
            // Queued digits wait for the end of a prompt.
            if leg.inject.active.is_none() && !leg.inject.queue.is_empty() && leg.playback.is_none()
            {
                earliest(leg.inject.next_start);
            }
            earliest(self.playback_timeout(side));
        }
        at
    }

    /// Writes the next generated packet (DTMF, prompt, then RTCP) that is due into `buf` (at
    /// least 1500 bytes is safe) and says where it goes.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        for side in [Side::A, Side::B] {
            if let Some(t) = self.poll_dtmf(side, buf) {
                return Some(t);
            }
            if let Some(t) = self.poll_playback(side, buf) {
                return Some(t);
            }
        }
        for side in [Side::A, Side::B] {
            if self.legs[side.index()].rtcp_due {
                self.legs[side.index()].rtcp_due = false;
                if let Some(t) = self.write_report(side, buf) {
                    return Some(t);
                }
            }
        }
        None
    }

    /// `now` on the 8 kHz media clock, from the relay's start (wraps, as RTP time does).
    fn clock_units(&self, now: Instant) -> u32 {
        let micros = now.saturating_duration_since(self.epoch).as_micros();
        (micros * u128::from(dtmf::CLOCK_RATE) / 1_000_000) as u32
    }
}
