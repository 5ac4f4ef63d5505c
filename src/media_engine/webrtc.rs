//! WebRTC legs: an agent's browser, bridged to a call's plain-RTP media session.
//!
//! Each leg is one task that owns one UDP socket toward the browser (ICE-lite with a host
//! candidate, DTLS-SRTP, rtcp-mux; [`str0m`] does the protocol work, sans-IO) and one loopback
//! socket toward the call's [`super::MediaSession`]. Audio crosses untouched: the browser is
//! offered PCMU and PCMA, the other side's codec first, so a G.711 trunk call reaches the
//! browser without transcoding; only the RTP framing and the SRTP keys differ.
//!
//! ```text
//!   browser ──SRTP/DTLS/ICE──▶ [ WebRTC leg task ] ──RTP (loopback)──▶ media session side
//! ```
//!
//! The leg reports [`WebRtcEvent`]s to call control: connected (ICE and DTLS done), failed (not
//! connected within the timeout, or a bad SDP answer), closed (the browser went away).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use masterz_media::codec::Codec;
use masterz_media::sdp::SessionDescription;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::{MediaEngine, MediaError};

/// Largest datagram read.
const MTU: usize = 2048;
/// Packets str0m holds back to put audio in order (3 × 20 ms).
const REORDER_PACKETS: usize = 3;

/// What a WebRTC leg reports to the call that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebRtcEvent {
    /// ICE and DTLS are up: audio can flow, in this codec with this payload type.
    Connected {
        /// The codec the browser chose.
        codec: Codec,
        /// Its payload type.
        payload_type: u8,
    },
    /// The leg could not be set up; the reason is for the agent and the logs.
    Failed(String),
    /// The browser closed the connection or stopped answering.
    Closed,
}

/// A [`WebRtcEvent`] with the `owner` given at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebRtcNotice {
    /// Identifies the leg for its owner.
    pub owner: u64,
    /// What happened.
    pub event: WebRtcEvent,
}

enum Command {
    Answer(String),
    Bridge(SocketAddr),
    Hold(bool),
}

/// One browser leg. Dropping it closes the connection and frees its port.
#[derive(Debug)]
pub struct WebRtcLeg {
    commands: UnboundedSender<Command>,
    offer: String,
    internal: SocketAddr,
}

impl WebRtcLeg {
    /// Our SDP offer for the browser.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// The loopback address the leg exchanges plain RTP from: the remote address of the media
    /// session's side it is bridged to.
    pub fn rtp_addr(&self) -> SocketAddr {
        self.internal
    }

    /// The browser's SDP answer. A bad one ends in [`WebRtcEvent::Failed`].
    pub fn accept_answer(&self, sdp: String) {
        let _ = self.commands.send(Command::Answer(sdp));
    }

    /// While `held`, the browser's audio is not passed on: the agent put the other party on
    /// hold, and the other party must not hear the agent meanwhile.
    pub fn hold(&self, held: bool) {
        let _ = self.commands.send(Command::Hold(held));
    }

    /// Sends the browser's audio, as plain RTP, to `to` (a media session's local RTP port), and
    /// relays what comes back from there to the browser.
    pub fn bridge(&self, to: SocketAddr) {
        let _ = self.commands.send(Command::Bridge(to));
    }
}

impl MediaEngine {
    /// A new browser leg: binds a port from the pool for the browser and a loopback one for
    /// the bridge, and makes the SDP offer (codecs in `codecs` order). Reports come on `notices`
    /// tagged with `owner`. ICE and DTLS must complete within `connect_timeout` of the answer.
    pub fn webrtc(
        self: &Arc<Self>,
        owner: u64,
        codecs: &[Codec],
        connect_timeout: Duration,
        notices: UnboundedSender<WebRtcNotice>,
    ) -> Result<WebRtcLeg, MediaError> {
        let pair = self
            .pool
            .bind(self.config.bind_ip)?
            .ok_or(MediaError::PortsExhausted)?;
        let port = pair.port;
        let engine = self.clone();
        let release = move || engine.pool.release(port);
        // Only the even socket carries traffic (rtcp-mux); the odd one stays reserved.
        drop(pair.rtcp);
        let external = match UdpSocket::from_std(pair.rtp) {
            Ok(s) => s,
            Err(e) => {
                release();
                return Err(e.into());
            }
        };
        let loopback = loopback_of(self.config.bind_ip);
        let internal = match bind_nonblocking(SocketAddr::new(loopback, 0)) {
            Ok(s) => s,
            Err(e) => {
                release();
                return Err(e.into());
            }
        };
        let (internal_addr, external_addr) = match (internal.local_addr(), external.local_addr()) {
            (Ok(i), Ok(e)) => (i, e),
            (Err(e), _) | (_, Err(e)) => {
                release();
                return Err(e.into());
            }
        };
        let public = SocketAddr::new(self.config.webrtc_public_ip, port);
        let now = Instant::now();
        let setup = match Setup::new(now, codecs, public) {
            Ok(s) => s,
            Err(e) => {
                release();
                return Err(MediaError::Io(std::io::Error::other(e)));
            }
        };
        let offer = setup.offer.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = LegTask {
            rtc: setup.rtc,
            mid: setup.mid,
            pending: Some(setup.pending),
            external,
            external_addr,
            internal,
            bridge_to: None,
            commands: rx,
            notices,
            owner,
            connect_timeout,
            connect_deadline: None,
            connected: false,
            sending: None,
            rx_seq: 0,
            rx_ssrc: u32::from_be_bytes(random4()),
            held: false,
            done: false,
        };
        tokio::spawn(async move {
            task.run().await;
            release();
        });
        Ok(WebRtcLeg {
            commands: tx,
            offer,
            internal: internal_addr,
        })
    }
}

fn bind_nonblocking(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// The address to reach sockets bound to `bind` from this host.
pub(super) fn loopback_of(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    }
}

fn random4() -> [u8; 4] {
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    r
}

/// An `Rtc` with its offer made.
struct Setup {
    rtc: Rtc,
    mid: Mid,
    pending: SdpPendingOffer,
    offer: String,
}

impl Setup {
    fn new(now: Instant, codecs: &[Codec], public: SocketAddr) -> Result<Self, String> {
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .clear_codecs()
            .set_reordering_size_audio(REORDER_PACKETS);
        for c in codecs {
            config = match c {
                Codec::Pcmu => config.enable_pcmu(true, false),
                Codec::Pcma => config.enable_pcma(true, false),
            };
        }
        let mut rtc = config.build(now);
        let candidate = Candidate::host(public, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(candidate);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or("no SDP change to apply")?;
        Ok(Self {
            rtc,
            mid,
            pending,
            offer: offer.to_sdp_string(),
        })
    }
}

/// The codec and payload type the browser put first in its answer, among ours.
fn answered_codec(sdp: &str) -> Option<(Codec, u8)> {
    let parsed = SessionDescription::parse(sdp).ok()?;
    let audio = parsed.media.iter().find(|m| m.kind == "audio")?;
    audio.formats.iter().find_map(|pt| match pt.as_str() {
        "0" => Some((Codec::Pcmu, 0)),
        "8" => Some((Codec::Pcma, 8)),
        _ => None,
    })
}

struct LegTask {
    rtc: Rtc,
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    external: UdpSocket,
    external_addr: SocketAddr,
    internal: UdpSocket,
    bridge_to: Option<SocketAddr>,
    commands: UnboundedReceiver<Command>,
    notices: UnboundedSender<WebRtcNotice>,
    owner: u64,
    connect_timeout: Duration,
    connect_deadline: Option<Instant>,
    connected: bool,
    /// The codec and payload type the browser answered with.
    sending: Option<(Codec, u8)>,
    /// Sequence number and SSRC of the plain RTP stream toward the media session.
    rx_seq: u16,
    rx_ssrc: u32,
    /// The browser's audio is not passed on (hold).
    held: bool,
    done: bool,
}

impl LegTask {
    async fn run(mut self) {
        let mut ext = [0u8; MTU];
        let mut int = [0u8; MTU];
        let mut timeout = self.drain();
        while !self.done {
            let wait = timeout.saturating_duration_since(Instant::now());
            let deadline = self
                .connect_deadline
                .filter(|_| !self.connected)
                .map(|d| d.saturating_duration_since(Instant::now()));
            let wait = deadline.map_or(wait, |d| d.min(wait));
            tokio::select! {
                c = self.commands.recv() => match c {
                    None => {
                        self.rtc.disconnect();
                        break;
                    }
                    Some(c) => self.command(c),
                },
                r = self.external.recv_from(&mut ext) => {
                    if let Ok((n, from)) = r {
                        self.on_browser_datagram(from, &ext[..n]);
                    }
                }
                r = self.internal.recv_from(&mut int) => {
                    if let Ok((n, from)) = r {
                        self.on_session_datagram(from, &int[..n]);
                    }
                }
                () = tokio::time::sleep(wait) => {
                    let now = Instant::now();
                    if !self.connected && self.connect_deadline.is_some_and(|d| now >= d) {
                        let secs = self.connect_timeout.as_secs();
                        self.fail(format!("ICE/DTLS did not complete within {secs} s"));
                        break;
                    }
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                        self.fail(format!("WebRTC: {e}"));
                    }
                }
            }
            timeout = self.drain();
        }
    }

    fn notify(&self, event: WebRtcEvent) {
        let _ = self.notices.send(WebRtcNotice {
            owner: self.owner,
            event,
        });
    }

    fn fail(&mut self, reason: String) {
        if !self.done {
            self.done = true;
            let event = if self.connected {
                WebRtcEvent::Closed
            } else {
                WebRtcEvent::Failed(reason)
            };
            self.notify(event);
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Answer(sdp) => {
                let Some(pending) = self.pending.take() else {
                    return self.fail("a second SDP answer".into());
                };
                let Some(codec) = answered_codec(&sdp) else {
                    return self.fail("the browser's answer has no PCMU or PCMA audio".into());
                };
                let answer = match SdpAnswer::from_sdp_string(&sdp) {
                    Ok(a) => a,
                    Err(e) => return self.fail(format!("bad SDP answer: {e}")),
                };
                if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
                    return self.fail(format!("SDP answer refused: {e}"));
                }
                self.sending = Some(codec);
                self.connect_deadline = Some(Instant::now() + self.connect_timeout);
            }
            Command::Bridge(to) => self.bridge_to = Some(to),
            Command::Hold(held) => self.held = held,
        }
    }

    fn on_browser_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Ok(contents) = bytes.try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.external_addr,
                contents,
            },
        );
        if self.rtc.accepts(&input)
            && let Err(e) = self.rtc.handle_input(input)
        {
            self.fail(format!("WebRTC: {e}"));
        }
    }

    /// Plain RTP from the media session: its payload goes to the browser as it is.
    fn on_session_datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        if self.bridge_to.is_none_or(|b| b != from) || !self.connected {
            return;
        }
        let Ok(p) = masterz_media::rtp::RtpPacket::parse(bytes) else {
            // RTCP from the session's reports: str0m makes its own toward the browser.
            return;
        };
        let Some((_, pt)) = self.sending else {
            return;
        };
        if p.payload_type() != pt {
            // Telephone events and comfort noise are not offered to the browser.
            return;
        }
        let time = MediaTime::new(u64::from(p.timestamp()), str0m::media::Frequency::EIGHT_KHZ);
        let payload = p.payload().to_vec();
        let Some(pt) = self.rtc.writer(self.mid).and_then(|w| {
            w.payload_params()
                .find(|pp| *pp.pt() == pt)
                .map(|pp| pp.pt())
        }) else {
            return;
        };
        if let Some(w) = self.rtc.writer(self.mid) {
            let _ = w.write(pt, Instant::now(), time, payload);
        }
    }

    /// Runs str0m's outputs until it asks to wait; returns until when.
    fn drain(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return t,
                Ok(Output::Transmit(t)) => {
                    let _ = self.external.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => self.event(e),
                Err(e) => {
                    self.fail(format!("WebRTC: {e}"));
                    return Instant::now() + Duration::from_secs(1);
                }
            }
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                if let Some((codec, payload_type)) = self.sending
                    && !self.connected
                {
                    self.connected = true;
                    self.notify(WebRtcEvent::Connected {
                        codec,
                        payload_type,
                    });
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) | Event::Closed => {
                self.fail("the browser closed the connection".into());
            }
            Event::MediaData(m) => self.send_to_session(&m),
            _ => {}
        }
    }

    /// Audio from the browser: sent to the media session as plain RTP.
    fn send_to_session(&mut self, m: &str0m::media::MediaData) {
        let Some(to) = self.bridge_to.filter(|_| !self.held) else {
            return;
        };
        let mut buf = [0u8; MTU];
        let len = 12 + m.data.len();
        if len > MTU {
            return;
        }
        self.rx_seq = self.rx_seq.wrapping_add(1);
        buf[0] = 0x80;
        buf[1] = *m.pt & 0x7f;
        buf[2..4].copy_from_slice(&self.rx_seq.to_be_bytes());
        // Media time is in the codec's clock (8 kHz for G.711); the low 32 bits are the RTP
        // timestamp as sent.
        buf[4..8].copy_from_slice(&(m.time.numer() as u32).to_be_bytes());
        buf[8..12].copy_from_slice(&self.rx_ssrc.to_be_bytes());
        buf[12..len].copy_from_slice(&m.data);
        let _ = self.internal.try_send_to(&buf[..len], to);
    }
}
