//! The RTP media engine: the port pool, and one relay task per call that owns that call's four
//! UDP sockets and drives the pure [`masterz_media::relay::Relay`].
//!
//! Call control asks for a session ([`MediaEngine::allocate`]), writes [`MediaSession::local_rtp`]
//! into its SDP, and tells the session what each side's SDP said ([`MediaSession::configure`]) at
//! the answer, at every re-INVITE and at a transfer. Timeouts and DTMF come back as
//! [`MediaNotice`]s on the channel given at allocation. Dropping the session stops the relay and
//! returns its ports to the pool.
//!
//! Hot path rules (docs/architecture): no allocation, no lock shared across calls, no logging per
//! packet. Each session's counters are its own atomics; metrics sum them when rendered.

mod ports;
mod stats;
mod task;
#[cfg(test)]
mod tests;
mod webrtc;
#[cfg(test)]
mod webrtc_tests;

pub use webrtc::{WebRtcEvent, WebRtcLeg, WebRtcNotice};

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use masterz_media::codec::{Codec, Direction};
pub use masterz_media::relay::Side;
use masterz_media::relay::{LegConfig, Relay, RelayConfig};
pub use stats::{LegStats, SessionStats};
use tokio::sync::mpsc::{self, UnboundedSender};

use ports::PortPool;
use stats::{SessionShared, Totals};
use task::SessionTask;

/// Interval between our RTCP reports to each side.
const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Seconds between 1900 (NTP era 0) and 1970 (Unix epoch).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Settings of the media engine.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// The UDP ports to use (even ports carry RTP, the next odd one RTCP).
    pub ports: crate::config::PortRange,
    /// Address the sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into SDP (a NAT's public address).
    pub public_ip: IpAddr,
    /// Silence from a `sendrecv` leg after which [`MediaEvent::Timeout`] is sent.
    pub media_timeout: Duration,
    /// Address offered to browsers as the ICE host candidate of WebRTC legs.
    pub webrtc_public_ip: IpAddr,
}

/// Why a session could not be allocated.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Every port pair of the range is in use.
    #[error("no free RTP ports")]
    PortsExhausted,
    /// A socket could not be created.
    #[error("RTP socket: {0}")]
    Io(#[from] std::io::Error),
}

/// What a leg's SDP says about its audio stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegParams {
    /// Where it receives RTP; `None`: not known yet, port 0, or `c=0.0.0.0` (old-style hold).
    pub remote_rtp: Option<SocketAddr>,
    /// Where it receives RTCP; `None`: RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// The negotiated codec.
    pub codec: Codec,
    /// Its payload type on that leg.
    pub payload_type: u8,
    /// The payload type of telephone-event on that leg.
    pub telephone_event: Option<u8>,
    /// Packetisation time in ms.
    pub ptime_ms: u32,
    /// The direction as written in that leg's SDP.
    pub direction: Direction,
}

impl From<LegParams> for LegConfig {
    fn from(p: LegParams) -> Self {
        LegConfig {
            remote_rtp: p.remote_rtp,
            remote_rtcp: p.remote_rtcp,
            codec: p.codec,
            payload_type: p.payload_type,
            telephone_event: p.telephone_event,
            ptime_ms: p.ptime_ms,
            direction: p.direction,
        }
    }
}

/// A notice for the call that owns a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaNotice {
    /// The `owner` given to [`MediaEngine::allocate`].
    pub owner: u64,
    /// What happened.
    pub event: MediaEvent,
}

/// What a session reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// A leg sent no RTP for the media timeout while both legs were `sendrecv`.
    Timeout {
        /// The silent leg.
        side: Side,
    },
    /// A DTMF digit from a leg (RFC 4733 telephone event, reported at its end).
    Dtmf {
        /// The leg that sent it.
        from: Side,
        /// The digit: 0-9, *, #, A-D.
        digit: char,
        /// Its duration.
        duration_ms: u32,
    },
    /// An announcement started with [`MediaSession::play`] has been sent in full.
    PlaybackDone {
        /// The side it was played to.
        side: Side,
    },
}

pub(crate) enum Command {
    Configure(Side, LegParams),
    SendDtmf(Side, char, u32),
    Record(Box<crate::recording::Tap>),
    Play(Side, Arc<[u8]>, Codec),
}

#[derive(Default)]
struct Registry {
    live: HashMap<u64, Arc<SessionShared>>,
    finished: Totals,
}

/// The media engine: port pool, live sessions and their metrics.
pub struct MediaEngine {
    config: MediaConfig,
    pool: PortPool,
    registry: Mutex<Registry>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("config", &self.config)
            .field("sessions", &self.active_sessions())
            .finish()
    }
}

impl MediaEngine {
    /// An engine over the configured port range; binds nothing yet.
    pub fn new(config: MediaConfig) -> Arc<Self> {
        Arc::new(Self {
            pool: PortPool::new(config.ports),
            config,
            registry: Mutex::new(Registry::default()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Binds an RTP/RTCP port pair (even, even+1, from the configured range) for each side and
    /// starts relaying. Must be called within a tokio runtime.
    pub async fn allocate(
        self: &Arc<Self>,
        owner: u64,
        events: UnboundedSender<MediaNotice>,
    ) -> Result<MediaSession, MediaError> {
        let ip = self.config.bind_ip;
        let a = self.pool.bind(ip)?.ok_or(MediaError::PortsExhausted)?;
        let b = match self.pool.bind(ip) {
            Ok(Some(b)) => b,
            other => {
                let port = a.port;
                drop(a);
                self.pool.release(port);
                return Err(other.err().map_or(MediaError::PortsExhausted, Into::into));
            }
        };
        let ports = [a.port, b.port];
        let sockets = match [a.rtp, a.rtcp, b.rtp, b.rtcp].map(tokio::net::UdpSocket::from_std) {
            [Ok(w), Ok(x), Ok(y), Ok(z)] => [w, x, y, z],
            results => {
                drop(results);
                ports.iter().for_each(|p| self.pool.release(*p));
                return Err(MediaError::Io(std::io::Error::other(
                    "registering RTP sockets with the runtime failed",
                )));
            }
        };
        let now = Instant::now();
        let relay = Relay::new(now, relay_config(self.config.media_timeout));
        let shared = Arc::new(SessionShared::default());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.registry().live.insert(id, shared.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = SessionTask {
            relay,
            sockets,
            commands: rx,
            shared: shared.clone(),
            notices: events,
            owner,
            tap: None,
        };
        let engine = self.clone();
        tokio::spawn(async move {
            task.run().await;
            // The sockets are closed now: the ports can be bound again.
            engine.finish(id, ports);
        });
        let reach = webrtc::loopback_of(self.config.bind_ip);
        Ok(MediaSession {
            commands: tx,
            shared,
            local: [
                SocketAddr::new(self.config.public_ip, ports[0]),
                SocketAddr::new(self.config.public_ip, ports[1]),
            ],
            internal: [
                SocketAddr::new(reach, ports[0]),
                SocketAddr::new(reach, ports[1]),
            ],
        })
    }

    fn finish(&self, id: u64, ports: [u16; 2]) {
        let mut reg = self.registry();
        if let Some(s) = reg.live.remove(&id) {
            reg.finished.add(&s);
        }
        drop(reg);
        for p in ports {
            self.pool.release(p);
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // Sums and a map: consistent even after a panic elsewhere.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions relaying now.
    pub fn active_sessions(&self) -> usize {
        self.registry().live.len()
    }

    /// Appends the engine's metrics in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let reg = self.registry();
        let mut totals = reg.finished.clone();
        for s in reg.live.values() {
            totals.add(s);
        }
        let sessions = reg.live.len();
        drop(reg);
        let _ = writeln!(
            out,
            "# HELP masterz_media_sessions Media sessions relaying now.\n\
             # TYPE masterz_media_sessions gauge\n\
             masterz_media_sessions {sessions}\n\
             # HELP masterz_media_port_pairs_free RTP/RTCP port pairs free in the pool.\n\
             # TYPE masterz_media_port_pairs_free gauge\n\
             masterz_media_port_pairs_free {}",
            self.pool.free()
        );
        totals.render(out);
    }
}

fn relay_config(media_timeout: Duration) -> RelayConfig {
    let mut r = [0u8; 20];
    // Without an OS RNG the streams still work; only their SSRCs become predictable.
    let _ = getrandom::fill(&mut r);
    let u32_at = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    RelayConfig {
        ssrc: [u32_at(0), u32_at(4)],
        initial_seq: [
            u16::from_be_bytes([r[8], r[9]]),
            u16::from_be_bytes([r[10], r[11]]),
        ],
        initial_ts: [u32_at(12), u32_at(16)],
        media_timeout,
        rtcp_interval: RTCP_INTERVAL,
        ntp_at_start: ((since_unix.as_secs() + NTP_UNIX_OFFSET) << 32) | frac,
    }
}

/// The media of one call, owned by it. Dropping it stops relaying and frees the ports.
#[derive(Debug)]
pub struct MediaSession {
    commands: UnboundedSender<Command>,
    shared: Arc<SessionShared>,
    local: [SocketAddr; 2],
    internal: [SocketAddr; 2],
}

impl MediaSession {
    /// Our RTP address for a side, as written into the SDP sent to that side.
    pub fn local_rtp(&self, side: Side) -> SocketAddr {
        self.local[side.index()]
    }

    /// Our RTP address for a side as reached from this host (a WebRTC leg's bridge).
    pub fn internal_rtp(&self, side: Side) -> SocketAddr {
        self.internal[side.index()]
    }

    /// Sets what a side's SDP says (answer, re-INVITE, transfer); latching is re-armed.
    pub fn configure(&self, side: Side, params: LegParams) {
        // The task only ends when this session is dropped, so the send cannot fail here.
        let _ = self.commands.send(Command::Configure(side, params));
    }

    /// Sends a DTMF digit to a side as RFC 4733 telephone events. Ignored when that side did
    /// not negotiate telephone-event or `digit` is not one of 0-9, *, #, A-D.
    pub fn send_dtmf(&self, to: Side, digit: char, duration_ms: u32) {
        let _ = self
            .commands
            .send(Command::SendDtmf(to, digit, duration_ms));
    }

    /// Copies the audio this session relays into a recording from now on (until the session
    /// ends, which closes the recording).
    pub fn record(&self, tap: crate::recording::Tap) {
        let _ = self.commands.send(Command::Record(Box::new(tap)));
    }

    /// Plays 8 kHz G.711 `audio` (in `codec`) to a side, paced in real time; audio relayed to
    /// that side waits meanwhile. [`MediaEvent::PlaybackDone`] follows when it has all been sent.
    pub fn play(&self, to: Side, audio: Arc<[u8]>, codec: Codec) {
        let _ = self.commands.send(Command::Play(to, audio, codec));
    }

    /// The counters of both legs, as of the last packet handled.
    pub fn stats(&self) -> SessionStats {
        self.shared.snapshot()
    }
}
