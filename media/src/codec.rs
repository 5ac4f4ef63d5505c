//! The audio codecs masterz speaks and the SDP direction attribute, shared by SDP negotiation and
//! the relay.

use std::fmt;

/// An audio codec with a static RTP payload type (RFC 3551), 8 kHz, one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// Every codec, in masterz's default order of preference.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// The static payload type (RFC 3551 table 4).
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name of `a=rtpmap`.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Samples per second (also the RTP clock rate).
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// The codec with encoding name `name` (case-insensitive) at `clock_rate`.
    pub fn from_name(name: &str, clock_rate: u32) -> Option<Self> {
        if clock_rate != 8000 {
            return None;
        }
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The codec of a static payload type.
    pub const fn from_static_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The direction attribute of a media stream (RFC 3264 §5.1, §6.1), from the point of view of
/// the party that wrote the SDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv` (also the default when absent).
    #[default]
    SendRecv,
    /// `a=sendonly`: the writer sends and does not want to receive (it holds the other side).
    SendOnly,
    /// `a=recvonly`: the writer receives only.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    /// The attribute name, without `a=`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name.
    pub fn parse(attribute: &str) -> Option<Self> {
        match attribute {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether the writer sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: `sendonly` ↔ `recvonly` (the answer to an
    /// offer, RFC 3264 §6.1).
    pub const fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// The direction that both `self` and `other` allow: what one writer may do given what the
    /// other side permits, e.g. `SendRecv.intersect(SendOnly) == SendOnly`.
    pub const fn intersect(self, other: Self) -> Self {
        let send = self.sends() && other.sends();
        let recv = self.receives() && other.receives();
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_and_types() {
        assert_eq!(Codec::from_name("pcmu", 8000), Some(Codec::Pcmu));
        assert_eq!(Codec::from_name("PCMA", 16000), None);
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::Pcmu.static_payload_type(), 0);
    }

    #[test]
    fn directions() {
        assert_eq!(Direction::SendOnly.reverse(), Direction::RecvOnly);
        assert_eq!(Direction::Inactive.reverse(), Direction::Inactive);
        assert_eq!(
            Direction::SendRecv.intersect(Direction::SendOnly),
            Direction::SendOnly
        );
        assert_eq!(Direction::parse("inactive"), Some(Direction::Inactive));
        assert!(!Direction::RecvOnly.sends());
    }
}
