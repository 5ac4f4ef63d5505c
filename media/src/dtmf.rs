//! DTMF as RTP telephone events (RFC 4733 §2.3): the 4-byte payload, digits ↔ event codes, and
//! a generator of the packet train that carries one digit.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! All packets of one event carry the same RTP timestamp (its start); the duration grows with
//! each update, and the end is sent three times (§2.5.1.4) in case one is lost.

use std::fmt;
use std::time::{Duration, Instant};

/// Length of a telephone-event payload.
pub const PAYLOAD_LEN: usize = 4;
/// Interval between the packets of a generated event.
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// Interval between the three end packets of a generated event.
pub const END_INTERVAL: Duration = Duration::from_millis(20);
/// Volume of generated events: −10 dBm0.
pub const VOLUME: u8 = 10;
/// Clock rate of telephone events as masterz negotiates them.
pub const CLOCK_RATE: u32 = 8000;
/// Longest event the 16-bit duration field can carry at 8 kHz (8.19 s); longer ones are cut.
pub const MAX_DURATION_MS: u32 = 8191;

/// Why bytes are not a telephone event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtmfError {
    /// Fewer than 4 bytes.
    TooShort,
}

impl fmt::Display for DtmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtmfError::TooShort => f.write_str("telephone-event payload shorter than 4 bytes"),
        }
    }
}

impl std::error::Error for DtmfError {}

/// One telephone-event payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 for DTMF).
    pub event: u8,
    /// The E bit: the event has ended.
    pub end: bool,
    /// Power level, 0 to −63 dBm0, as a positive number.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads a payload (trailing bytes, as with several events per packet, are ignored).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let b = payload.get(..PAYLOAD_LEN).ok_or(DtmfError::TooShort)?;
        Ok(Self {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Writes the payload.
    pub fn write(&self) -> [u8; PAYLOAD_LEN] {
        let d = self.duration.to_be_bytes();
        let e = if self.end { 0x80 } else { 0 };
        [self.event, e | (self.volume & 0x3F), d[0], d[1]]
    }

    /// The DTMF digit of this event, if it is one.
    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// The event code of a DTMF digit: `0`–`9` → 0–9, `*` → 10, `#` → 11, `A`–`D` → 12–15.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// The DTMF digit of an event code.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// One packet of a generated event train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfPacket {
    /// Index in the train (0, 1, …): the sequence offset from the first packet.
    pub index: u16,
    /// Marker bit: set on the first packet only.
    pub marker: bool,
    /// The payload.
    pub event: TelephoneEvent,
}

/// Generates the packets of one event: the first (with marker) at the start, an update every
/// [`UPDATE_INTERVAL`] with the duration so far, then three end packets with the E bit.
#[derive(Clone, Debug)]
pub struct DtmfGenerator {
    event: u8,
    total: u16,
    start: Instant,
    next_at: Instant,
    index: u16,
    ends_sent: u8,
}

impl DtmfGenerator {
    /// A train for `digit` lasting `duration_ms` (at least one update interval, at most
    /// [`MAX_DURATION_MS`]), starting at `now`. `None` for a character that is not a digit.
    pub fn new(digit: char, duration_ms: u32, now: Instant) -> Option<Self> {
        Self::for_event(digit_to_event(digit)?, duration_ms, now)
    }

    /// A train for an event code.
    pub fn for_event(event: u8, duration_ms: u32, now: Instant) -> Option<Self> {
        let ms = duration_ms.clamp(UPDATE_INTERVAL.as_millis() as u32, MAX_DURATION_MS);
        Some(Self {
            event,
            total: (ms * CLOCK_RATE / 1000) as u16,
            start: now,
            next_at: now,
            index: 0,
            ends_sent: 0,
        })
    }

    /// When the next packet is due; `None` once the train is complete.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.is_done()).then_some(self.next_at)
    }

    /// Whether all packets, the three end packets included, have been produced.
    pub fn is_done(&self) -> bool {
        self.ends_sent >= 3
    }

    /// The next packet if it is due at `now`.
    pub fn poll_packet(&mut self, now: Instant) -> Option<DtmfPacket> {
        if self.is_done() || now < self.next_at {
            return None;
        }
        let index = self.index;
        self.index = self.index.wrapping_add(1);
        let first = index == 0;
        // Duration covered by the packet scheduled at next_at (the train runs on its own
        // schedule, so a late poll does not stretch the event).
        let elapsed = self.next_at.saturating_duration_since(self.start);
        let units = (elapsed.as_millis() as u64 * u64::from(CLOCK_RATE) / 1000)
            + u64::from(CLOCK_RATE) * UPDATE_INTERVAL.as_millis() as u64 / 1000;
        let mut duration = units.min(u64::from(self.total)) as u16;
        let end = self.ends_sent > 0 || duration >= self.total;
        if end {
            duration = self.total;
            self.ends_sent += 1;
            self.next_at += END_INTERVAL;
        } else {
            self.next_at += UPDATE_INTERVAL;
        }
        Some(DtmfPacket {
            index,
            marker: first,
            event: TelephoneEvent {
                event: self.event,
                end,
                volume: VOLUME,
                duration,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The origin of the virtual clock: the one wall-clock read in these tests.
    #[allow(clippy::disallowed_methods)]
    fn origin() -> Instant {
        Instant::now()
    }

    #[test]
    fn digits_and_events() {
        for (d, e) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('D', 15),
        ] {
            assert_eq!(digit_to_event(d), Some(e));
            assert_eq!(event_to_digit(e), Some(d));
        }
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn payload_round_trip() {
        let e = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        };
        let b = e.write();
        assert_eq!(b, [5, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&b), Ok(e));
        assert_eq!(TelephoneEvent::parse(&b[..3]), Err(DtmfError::TooShort));
        // The R bit is ignored.
        assert!(!TelephoneEvent::parse(&[1, 0x40, 0, 0]).unwrap().end);
    }

    #[test]
    fn a_train_of_160_ms() {
        let t0 = origin();
        let mut g = DtmfGenerator::new('#', 160, t0).unwrap();
        assert_eq!(g.poll_timeout(), Some(t0));
        let mut got = Vec::new();
        let mut now = t0;
        while let Some(at) = g.poll_timeout() {
            now = now.max(at);
            assert!(g.poll_packet(now).is_some_and(|p| {
                got.push((at - t0, p));
                true
            }));
            assert!(g.poll_packet(now).is_none() || g.is_done());
        }
        let summary: Vec<(u128, bool, bool, u16)> = got
            .iter()
            .map(|(t, p)| (t.as_millis(), p.marker, p.event.end, p.event.duration))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, true, false, 400),
                (50, false, false, 800),
                (100, false, false, 1200),
                (150, false, true, 1280),
                (170, false, true, 1280),
                (190, false, true, 1280),
            ]
        );
        assert!(got.iter().all(|(_, p)| p.event.event == 11));
        assert_eq!(got.last().map(|(_, p)| p.index), Some(5));
        assert!(g.is_done());
        assert!(g.poll_packet(now + Duration::from_secs(1)).is_none());
    }
}
