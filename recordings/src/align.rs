//! The aligner: two channels of timestamped 8 kHz mono frames in, one interleaved stereo stream
//! out (left: customer, right: agent), as long as the time that passed.
//!
//! # Placement
//!
//! The output is a timeline of sample positions counted from the start of the recording, on the
//! driver's clock (`arrival`, `now`). Each channel maps the RTP timestamps of one stream onto it:
//!
//! * The first frame of a stream (a new SSRC: the call starts, a transfer brings a new agent)
//!   **anchors** `(ssrc, timestamp)` at its arrival position — or just after what the channel has
//!   already placed, so that a new stream never overlaps the tail of the old one.
//! * A following frame of the same SSRC goes at `anchor_pos + (timestamp − anchor_ts)`, the
//!   difference taken in wrapping 32-bit arithmetic, so a reordered packet lands in its place and
//!   the timestamp may wrap around. The anchor moves along with the newest frame, so the
//!   difference never grows past one packet interval however long the call.
//! * The stream is **re-anchored** at the arrival position (a resync) when that computed position
//!   is more than `max_jump` away from the arrival position — a timestamp discontinuity, or a hold
//!   after which the sender's clock did not run on — and when the *newest* frame of the stream
//!   would land where the output has already been written, or more than `reorder_window` before
//!   its arrival position: the sender's clock is slower than
//!   ours (drift) or paused during silence, or the path got slower. Without that rule such a
//!   stream would lose every frame from then on; with it the channel loses nothing and slips
//!   later by at most the reorder window.
//! * An *older* frame (reordered or duplicated) whose place was already written loses the part
//!   that is too late (counted in [`ChannelStats::late_frames`]).
//! * A sample position that already holds a sample keeps it: duplicates never double the audio
//!   and never change what was written (counted in [`ChannelStats::duplicate_samples`]).
//! * Positions nobody sent are silence (0); time with no frames at all (hold, silence
//!   suppression) is silence too, so the output is exactly as long as the elapsed time.
//!
//! # Drive loop
//!
//! ```text
//! on each decoded frame:     aligner.push(Frame { channel, ssrc, timestamp, arrival, samples })
//! at least every ~20–100 ms: aligner.drain(now, &mut buf); wav.append(&buf); buf.clear()
//! at the end of the call:    aligner.finish(now, &mut buf); wav.append(&buf)
//! ```
//!
//! `arrival` and `now` are in samples (8 kHz) since the recording started, both from the same
//! driver clock, and a frame must be pushed before `now` passes `arrival + reorder_window` or its
//! place is already written. Drain regularly: a channel holds back at most about
//! `reorder_window + max_jump +` a frame plus the time since the last drain, and frames more
//! than [`MAX_HOLD_SLACK`] beyond that are taken as a driver clock error and dropped (counted in
//! [`ChannelStats::overflow_samples`]).
//!
//! # Cost
//!
//! Each channel is a ring ([`VecDeque`]) of sample slots starting at the first position not yet
//! written; in steady state `push` and `drain` copy samples and never allocate.

use std::collections::VecDeque;

/// Which side of the call a frame belongs to, and so which stereo channel it is recorded on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The customer: the left channel.
    Customer,
    /// The agent: the right channel.
    Agent,
}

impl Channel {
    fn index(self) -> usize {
        match self {
            Channel::Customer => 0,
            Channel::Agent => 1,
        }
    }
}

/// One decoded RTP packet, as the driver hands it to the [`Aligner`].
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The channel it is recorded on.
    pub channel: Channel,
    /// The RTP SSRC of the stream the frame came from.
    pub ssrc: u32,
    /// Its RTP timestamp (8 kHz clock, wraps around).
    pub timestamp: u32,
    /// When it arrived, in samples (8 kHz) since the recording started, on the driver's clock.
    pub arrival: u64,
    /// Decoded linear PCM, 8 kHz mono (typically 160 samples = 20 ms; up to 960).
    pub samples: &'a [i16],
}

/// Tuning of the [`Aligner`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlignConfig {
    /// Samples held back for late packets before a position is written (default 480 = 60 ms).
    pub reorder_window: u32,
    /// How far (in samples) a frame's computed position may be from its arrival position before
    /// the stream is re-anchored (default 8000 = 1 s).
    pub max_jump: u32,
}

impl Default for AlignConfig {
    fn default() -> Self {
        AlignConfig {
            reorder_window: 480,
            max_jump: 8000,
        }
    }
}

/// How far beyond `reorder_window + max_jump` a channel may hold samples ahead of the written
/// output (10 s at 8 kHz): room for a driver that drains every few seconds, and a bound on the
/// memory a wrong `arrival` can claim.
pub const MAX_HOLD_SLACK: u32 = 10 * 8000;

/// What happened to one channel's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Frames pushed (empty frames are ignored and not counted).
    pub frames: u64,
    /// Frames that arrived after (part of) their place was written; that part was dropped.
    pub late_frames: u64,
    /// Samples dropped because they were late.
    pub late_samples: u64,
    /// Samples that fell on a position already holding one (duplicates, overlaps); dropped.
    pub duplicate_samples: u64,
    /// Re-anchorings of the same SSRC (timestamp jump, drift, a paused sender clock).
    pub resyncs: u64,
    /// Re-anchorings because the SSRC changed (a transfer, a re-INVITE to another source).
    pub ssrc_changes: u64,
    /// Positions written as silence because nobody sent a sample for them.
    pub silence_samples: u64,
    /// Samples held beyond `now` when [`Aligner::finish`] was called; dropped.
    pub truncated_samples: u64,
    /// Samples dropped because they lay further ahead than the channel may hold (see the module
    /// docs).
    pub overflow_samples: u64,
}

/// What happened to the frames of both channels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlignStats {
    /// The customer (left) channel.
    pub customer: ChannelStats,
    /// The agent (right) channel.
    pub agent: ChannelStats,
}

/// Turns two channels of timestamped frames into one interleaved stereo stream; see the
/// [module docs](self) for the placement rules and the drive loop.
#[derive(Debug)]
pub struct Aligner {
    config: AlignConfig,
    /// Sample positions emitted so far; `Lane::slots[0]` is position `written`.
    written: u64,
    lanes: [Lane; 2],
}

impl Aligner {
    /// An aligner at position 0 with nothing pushed.
    pub fn new(config: AlignConfig) -> Self {
        Aligner {
            config,
            written: 0,
            lanes: [Lane::default(), Lane::default()],
        }
    }

    /// Places one frame on its channel's timeline (see the [module docs](self)).
    pub fn push(&mut self, frame: Frame<'_>) {
        let written = to_pos(self.written);
        self.lanes[frame.channel.index()].push(&self.config, written, &frame);
    }

    /// Appends interleaved L/R samples for every position up to `now − reorder_window` to `out`;
    /// positions nobody sent are silence (0).
    pub fn drain(&mut self, now: u64, out: &mut Vec<i16>) {
        self.emit_until(
            now.saturating_sub(u64::from(self.config.reorder_window)),
            out,
        );
    }

    /// Appends everything up to `now`, including what is still held back for late packets, and
    /// drops what lies beyond `now` (call at the end of the recording). Afterwards
    /// [`written`](Self::written) is `now` (if `now` is not before it).
    pub fn finish(&mut self, now: u64, out: &mut Vec<i16>) {
        self.emit_until(now, out);
        for lane in &mut self.lanes {
            let held = lane.slots.iter().filter(|s| s.filled).count();
            lane.stats.truncated_samples += held as u64;
            lane.slots.clear();
        }
    }

    /// Stereo frames (sample positions) emitted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Counters of what happened to the frames of each channel.
    pub fn stats(&self) -> AlignStats {
        AlignStats {
            customer: self.lanes[0].stats,
            agent: self.lanes[1].stats,
        }
    }

    /// Samples a channel holds for positions not yet written (for tests and memory accounting).
    pub fn held(&self, channel: Channel) -> usize {
        self.lanes[channel.index()].slots.len()
    }

    fn emit_until(&mut self, upto: u64, out: &mut Vec<i16>) {
        if upto <= self.written {
            return;
        }
        let n = upto - self.written;
        // A `now` whose output cannot even be counted in memory is a driver bug; nothing is
        // emitted for it.
        let start = out.len();
        let Some((n_usize, total)) = usize::try_from(n)
            .ok()
            .and_then(|n| Some((n, n.checked_mul(2)?.checked_add(start)?)))
        else {
            return;
        };
        out.resize(total, 0);
        for (side, lane) in self.lanes.iter_mut().enumerate() {
            let k = n_usize.min(lane.slots.len());
            let mut silence = (n_usize - k) as u64;
            for (pair, slot) in out[start..].chunks_exact_mut(2).zip(lane.slots.drain(..k)) {
                if slot.filled {
                    pair[side] = slot.sample;
                } else {
                    silence += 1;
                }
            }
            lane.stats.silence_samples += silence;
        }
        self.written = upto;
    }
}

/// Positions are kept as `i64` so that a reordered frame before its anchor may compute a
/// negative one; inputs are clamped far below `i64::MAX` so that adding 32-bit offsets cannot
/// overflow.
fn to_pos(x: u64) -> i64 {
    const LIMIT: u64 = 1 << 62;
    x.min(LIMIT) as i64
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    sample: i16,
    filled: bool,
}

impl Slot {
    const EMPTY: Slot = Slot {
        sample: 0,
        filled: false,
    };
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    ssrc: u32,
    /// The timestamp and position of the newest frame placed (one mapping: `pos − ts` is fixed
    /// until the next re-anchoring).
    ts: u32,
    pos: i64,
    /// The timestamp just past the newest frame: frames at or after it are "newest".
    next_ts: u32,
}

#[derive(Debug, Default)]
struct Lane {
    /// `slots[i]` is position `written + i`.
    slots: VecDeque<Slot>,
    anchor: Option<Anchor>,
    /// One past the last position this channel has placed a sample at.
    end: i64,
    stats: ChannelStats,
}

impl Lane {
    fn push(&mut self, config: &AlignConfig, written: i64, frame: &Frame<'_>) {
        let len = frame.samples.len();
        if len == 0 {
            return;
        }
        self.stats.frames += 1;
        let arrival = to_pos(frame.arrival);
        let max_jump = i64::from(config.max_jump);
        let ts = frame.timestamp;

        let (pos, moves_anchor) = match self.anchor {
            Some(a) if a.ssrc == frame.ssrc => {
                // Reinterpreting the wrapped difference as signed puts a packet from just before
                // the anchor before it, also across the 2^32 wrap.
                let pos = a.pos + i64::from(ts.wrapping_sub(a.ts) as i32);
                let newest = ts.wrapping_sub(a.next_ts) as i32 >= 0;
                // The newest frame behind the written output, or further behind its arrival than
                // the reorder window (also when the driver drained late): the sender fell behind.
                let behind = pos < written.max(arrival - i64::from(config.reorder_window));
                if (pos - arrival).abs() > max_jump || (newest && behind) {
                    self.stats.resyncs += 1;
                    (self.anchor_pos(arrival, written, max_jump), true)
                } else {
                    (pos, newest)
                }
            }
            Some(_) => {
                self.stats.ssrc_changes += 1;
                (self.anchor_pos(arrival, written, max_jump), true)
            }
            None => (self.anchor_pos(arrival, written, max_jump), true),
        };

        // A frame is at most a few hundred samples; the length cannot come near 2^31.
        let frame_end_ts = ts.wrapping_add(len as u32);
        match &mut self.anchor {
            Some(a) if !moves_anchor => {
                if frame_end_ts.wrapping_sub(a.next_ts) as i32 > 0 {
                    a.next_ts = frame_end_ts;
                }
            }
            _ => {
                self.anchor = Some(Anchor {
                    ssrc: frame.ssrc,
                    ts,
                    pos,
                    next_ts: frame_end_ts,
                });
            }
        }

        let limit = u64::from(config.reorder_window) + u64::from(config.max_jump);
        let limit = (limit + u64::from(MAX_HOLD_SLACK)) as usize;
        self.place(pos, frame.samples, written, limit);
    }

    /// Where a (new) anchor goes: at the arrival position, never before what is written, and
    /// after what this channel already placed unless that lies implausibly far ahead (a sender
    /// clock that ran fast for hours; its excess is then dropped as overlap).
    fn anchor_pos(&self, arrival: i64, written: i64, max_jump: i64) -> i64 {
        let base = arrival.max(written);
        if self.end > base && self.end <= arrival + max_jump {
            self.end
        } else {
            base
        }
    }

    fn place(&mut self, pos: i64, samples: &[i16], written: i64, limit: usize) {
        let mut start = pos;
        let mut src = samples;
        if pos < written {
            let late = usize::try_from(written - pos).map_or(src.len(), |l| l.min(src.len()));
            self.stats.late_frames += 1;
            self.stats.late_samples += late as u64;
            src = &src[late..];
            start = written;
        }
        if src.is_empty() {
            return;
        }
        // `start >= written` here, and both are below 2^62.
        let offset = usize::try_from(start - written).unwrap_or(usize::MAX);
        let fit = limit.saturating_sub(offset).min(src.len());
        self.stats.overflow_samples += (src.len() - fit) as u64;
        if fit == 0 {
            return;
        }
        let src = &src[..fit];
        let needed = offset + fit;
        if self.slots.len() < needed {
            self.slots.resize(needed, Slot::EMPTY);
        }
        let mut duplicates = 0u64;
        for (slot, &sample) in self.slots.range_mut(offset..needed).zip(src) {
            if slot.filled {
                duplicates += 1;
            } else {
                *slot = Slot {
                    sample,
                    filled: true,
                };
            }
        }
        self.stats.duplicate_samples += duplicates;
        self.end = self.end.max(start + fit as i64);
    }
}

#[cfg(test)]
mod tests;
