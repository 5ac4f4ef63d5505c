//! What the transaction layer knows of transports (RFC 3261 §18): which one a message used,
//! whether it is reliable, and where bytes go. The sockets themselves belong to the driver.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// A SIP transport, as named in the Via header (§18, RFC 7118 for WebSocket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP: unreliable, so transactions retransmit (Timers A, E, G) and linger (D, I, J, K).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (`sips:`).
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// The Via token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WS",
            Self::Wss => "WSS",
        }
    }

    /// Whether the transport delivers in order and without loss, so that the transaction layer
    /// neither retransmits nor waits for retransmissions (§17.1.1.2, §17.1.2.2, §17.2.1).
    pub const fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// Whether one message is delimited by the transport itself (a datagram, a WebSocket
    /// message) rather than by Content-Length on a byte stream (§18.3).
    pub const fn is_message_oriented(self) -> bool {
        matches!(self, Self::Udp | Self::Ws | Self::Wss)
    }

    /// The transport named by a Via token (case-insensitive); `None` for SCTP and the unknown.
    pub fn from_token(token: &str) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Tls, Self::Ws, Self::Wss]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(token))
    }

    /// The port a Via sent-by without a port means (§18.2.2: 5060, 5061 for TLS; RFC 7118 §5.3
    /// leaves WebSocket ports to the URI, so 80/443 as for HTTP).
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Udp | Self::Tcp => 5060,
            Self::Tls => 5061,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The driver's name for one stream connection (TCP, TLS, WebSocket), so that a response goes
/// back over the connection its request came on (§18.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// The other end of a message: the source of one received, the destination of one to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: Transport,
    /// The remote address.
    pub addr: SocketAddr,
    /// The stream connection, when there is one; `None` on an outgoing stream message asks the
    /// driver to use (or open) any connection to `addr`.
    pub connection: Option<ConnectionId>,
}

impl Peer {
    /// A peer reached without a particular connection.
    pub const fn new(transport: Transport, addr: SocketAddr) -> Self {
        Self {
            transport,
            addr,
            connection: None,
        }
    }
}

/// Bytes the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where.
    pub to: Peer,
    /// One whole message (on a stream, written as is: every message carries Content-Length).
    pub bytes: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_tokens_round_trip() {
        for t in [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ] {
            assert_eq!(Transport::from_token(t.as_str()), Some(t));
            assert_eq!(
                Transport::from_token(&t.as_str().to_ascii_lowercase()),
                Some(t)
            );
            assert_eq!(t.is_reliable(), t != Transport::Udp);
        }
        assert_eq!(Transport::from_token("SCTP"), None);
    }
}
