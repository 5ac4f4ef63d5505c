//! Prompts played by the relay: a prerecorded G.711 recording sent to one side as RTP, one
//! packet per `ptime`, in the stream we send that side (as DTMF injection is).
//!
//! - **Pacing**: packet `k` is due at `start + k·ptime`, where `start` is when the first packet
//!   goes out; a late timer sends what is due at once (the timestamps keep the schedule), so the
//!   prompt never stretches.
//! - **Stream**: each prompt is its own [`Source::Injected`] for the rewriter (numbered with the
//!   DTMF trains, so that no two generated runs share one): sequence numbers continue from the
//!   relayed audio, the timestamp jumps by the time elapsed, then advances by the samples per
//!   packet; when the relayed audio comes back it is re-anchored the same way.
//! - **Suppression**: audio relayed toward the side is dropped ([`DropReason::Suppressed`])
//!   until the prompt ends, one `ptime` after its last packet (that packet's duration).
//! - **DTMF**: the prompt and generated DTMF toward the same side never interleave (a phone
//!   would hear a digit cut into the words, and the two would fight over the stream's
//!   timestamps). Digits queued during a prompt wait for its end; a prompt started during a
//!   digit's train begins when that train is complete, before any further queued digits.
//! - **Hold**: as for DTMF, a prompt toward a side that does not receive runs its course
//!   unheard; [`Event::PlaybackDone`] still comes at its end.
//!
//! Nothing is allocated per packet: the recording is shared (`Arc<[u8]>`), each packet is a
//! slice of it copied into the caller's buffer and transcoded there when the codecs differ.
//!
//! [`DropReason::Suppressed`]: super::DropReason::Suppressed

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Event, Port, Relay, Side, Transmit};
use crate::codec::Codec;
use crate::rewrite::Source;
use crate::{rtp, transcode};

/// The packetisation used when a leg's `ptime_ms` is outside these bounds (0 from a broken
/// SDP, or more than fits an Ethernet frame): 10–120 ms.
const PTIME_MS: std::ops::RangeInclusive<u32> = 10..=120;

/// Why a prompt could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayError {
    /// The side has no SDP yet, or no address to send to.
    NotConfigured,
    /// The recording has no samples.
    Empty,
}

impl fmt::Display for PlayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlayError::NotConfigured => "the side has no SDP or no RTP destination yet",
            PlayError::Empty => "the recording is empty",
        })
    }
}

impl std::error::Error for PlayError {}

/// A prompt being played toward one side.
#[derive(Clone)]
pub(crate) struct Playback {
    audio: Arc<[u8]>,
    codec: Codec,
    /// Samples (= bytes) per packet and the interval between packets, fixed at the start so
    /// that a re-INVITE changing `ptime` does not tear the schedule.
    samples: usize,
    interval: Duration,
    /// When packet 0 is due (it may wait for a DTMF train) or went out.
    start: Instant,
    /// The next packet to send, and how many there are.
    next: u32,
    packets: u32,
    /// The rewriter source of this prompt.
    source: Source,
    /// The next packet heard starts a talkspurt (RFC 3551 §4.1): the first, or the first
    /// after packets went unheard.
    marker: bool,
}

impl fmt::Debug for Playback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the recording itself: a relay's debug output would be kilobytes of audio.
        f.debug_struct("Playback")
            .field("bytes", &self.audio.len())
            .field("codec", &self.codec)
            .field("samples", &self.samples)
            .field("next", &self.next)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

impl Playback {
    fn due(&self, k: u32) -> Instant {
        self.start + self.interval * k
    }

    /// When the prompt has been heard in full: one interval after its last packet.
    fn end(&self) -> Instant {
        self.due(self.packets)
    }

    /// When something is due: the next packet, or, all sent, the end.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.due(self.next)
    }
}

impl Relay {
    /// Plays `audio` (8 kHz G.711 in `codec`, one byte per sample) to side `to`, starting at
    /// `now`: sent as RTP in the stream we send that side, in its codec and payload type, one
    /// packet per `ptime`; audio relayed to it pauses meanwhile. [`Event::PlaybackDone`] is
    /// raised when the whole prompt has been sent and its last packet's duration has passed.
    ///
    /// A prompt already playing to that side is replaced (without its `PlaybackDone`). A side
    /// on hold hears nothing and the prompt still runs its course. A prompt and DTMF from
    /// [`Relay::send_dtmf`] toward the same side never interleave: digits queued during a
    /// prompt wait for its end; a prompt started during a digit's train begins when that train
    /// is complete. `ptime` outside 10–120 ms is taken as 20 ms.
    pub fn play(
        &mut self,
        now: Instant,
        to: Side,
        audio: Arc<[u8]>,
        codec: Codec,
    ) -> Result<(), PlayError> {
        self.now = now;
        let leg = &mut self.legs[to.index()];
        let Some(params) = leg.params else {
            return Err(PlayError::NotConfigured);
        };
        if leg.rtp_destination().is_none() {
            return Err(PlayError::NotConfigured);
        }
        if audio.is_empty() {
            return Err(PlayError::Empty);
        }
        let ptime_ms = if PTIME_MS.contains(&params.ptime_ms) {
            params.ptime_ms
        } else {
            20
        };
        let samples = (ptime_ms * params.codec.clock_rate() / 1000) as usize;
        // Numbered with the DTMF trains: a distinct source, so the stream re-anchors on it.
        leg.inject.trains = leg.inject.trains.wrapping_add(1);
        leg.playback = Some(Playback {
            packets: u32::try_from(audio.len().div_ceil(samples)).unwrap_or(u32::MAX),
            audio,
            codec,
            samples,
            interval: Duration::from_millis(u64::from(ptime_ms)),
            start: now,
            next: 0,
            source: Source::Injected(leg.inject.trains),
            marker: true,
        });
        Ok(())
    }

    /// Stops the prompt playing to `side`, if any; no [`Event::PlaybackDone`] is raised.
    /// Relayed audio to that side resumes with its next packet.
    pub fn stop_playing(&mut self, side: Side) {
        self.legs[side.index()].playback = None;
    }

    /// Whether a prompt is playing to `side` (until its end, or until stopped).
    pub fn is_playing(&self, side: Side) -> bool {
        self.legs[side.index()].playback.is_some()
    }

    /// The next prompt deadline of a side, for [`Relay::poll_timeout`].
    pub(super) fn playback_timeout(&self, side: Side) -> Option<Instant> {
        let leg = &self.legs[side.index()];
        // Waiting for a DTMF train: its own deadlines drive the clock meanwhile.
        if leg.inject.active.is_some() {
            return None;
        }
        leg.playback.as_ref().map(Playback::poll_timeout)
    }

    /// At a timeout: a prompt whose packets have all gone out ends once the last one has
    /// been heard.
    pub(super) fn finish_playback(&mut self, now: Instant) {
        for side in [Side::A, Side::B] {
            let leg = &mut self.legs[side.index()];
            if leg
                .playback
                .as_ref()
                .is_some_and(|p| p.next >= p.packets && now >= p.end())
            {
                leg.playback = None;
                self.events.push(Some(Event::PlaybackDone { side }));
            }
        }
    }

    /// Writes the next due prompt packet toward `side` into `buf`.
    pub(super) fn poll_playback(&mut self, side: Side, buf: &mut [u8]) -> Option<Transmit> {
        let now = self.now;
        let leg = &mut self.legs[side.index()];
        if leg.inject.active.is_some() {
            return None;
        }
        let params = leg.params?;
        let to = leg.rtp_destination();
        let receives = leg.receives();
        loop {
            let p = leg.playback.as_mut()?;
            if p.next >= p.packets || now < p.due(p.next) {
                return None;
            }
            if p.next == 0 {
                // The prompt's clock starts with its first packet (later than `play` when a
                // DTMF train was still running, or the timer was late).
                p.start = now;
            }
            let k = p.next;
            // Advanced first: a packet that cannot be written is lost, not retried for ever.
            p.next += 1;
            let at = p.due(k);
            let first = k as usize * p.samples;
            let chunk = p
                .audio
                .get(first..(first + p.samples).min(p.audio.len()))
                .unwrap_or_default();
            let (Some(to), true) = (to, receives) else {
                // Unheard (hold, or no address any more): time passes. The stream is
                // re-anchored so that what is heard next follows without a sequence gap.
                leg.tx.reanchor();
                p.marker = true;
                continue;
            };
            // Input numbering of the prompt: packet k, its first sample; the rewriter adds
            // this stream's offsets (both wrap, as RTP numbers do).
            let (seq, ts) = leg.tx.map(at, p.source, k as u16, first as u32);
            let marker = std::mem::take(&mut p.marker);
            let header =
                rtp::write_header(buf, marker, params.payload_type, seq, ts, leg.tx.ssrc())?;
            let payload = buf.get_mut(header..header + chunk.len())?;
            payload.copy_from_slice(chunk);
            transcode::transcode(p.codec, params.codec, payload);
            let len = header + chunk.len();
            leg.counters.packets_out += 1;
            leg.counters.bytes_out += len as u64;
            leg.counters.payload_out += chunk.len() as u64;
            leg.counters.prompt_packets += 1;
            return Some(Transmit {
                side,
                port: Port::Rtp,
                to,
                len,
            });
        }
    }
}
