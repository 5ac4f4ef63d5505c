//! The task that drives one session's [`Relay`]: it owns the four sockets (RTP and RTCP of each
//! side), waits for readiness, drains each socket into a stack buffer until it would block,
//! feeds every datagram to the relay, sends what the relay returns, and publishes counters to
//! the atomics that [`super::MediaSession::stats`] reads. Nothing is allocated and nothing is
//! logged per packet.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use masterz_media::relay::{Port, Relay, Side, Verdict};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::stats::SessionShared;
use super::{Command, MediaEvent, MediaNotice};

/// Socket index: A RTP, A RTCP, B RTP, B RTCP.
const SOCKETS: usize = 4;
/// Datagrams read from one socket before the others get a turn.
const BATCH: usize = 64;
/// Largest datagram accepted (larger ones are truncated by the kernel and fail to parse).
const MTU: usize = 2048;

fn socket_index(side: Side, port: Port) -> usize {
    side.index() * 2
        + match port {
            Port::Rtp => 0,
            Port::Rtcp => 1,
        }
}

fn socket_role(i: usize) -> (Side, Port) {
    let side = if i < 2 { Side::A } else { Side::B };
    let port = if i.is_multiple_of(2) {
        Port::Rtp
    } else {
        Port::Rtcp
    };
    (side, port)
}

enum Wake {
    Ready(u8),
    Command(Command),
    Stop,
}

pub(crate) struct SessionTask {
    pub(crate) relay: Relay,
    pub(crate) sockets: [UdpSocket; SOCKETS],
    pub(crate) commands: UnboundedReceiver<Command>,
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) notices: UnboundedSender<MediaNotice>,
    pub(crate) owner: u64,
    /// Where relayed audio is copied while the call is recorded.
    pub(crate) tap: Option<Box<crate::recording::Tap>>,
}

impl SessionTask {
    /// Runs until the session's command sender is dropped.
    pub(crate) async fn run(mut self) {
        let mut buf = [0u8; MTU];
        let mut out = [0u8; MTU];
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365);
        let mut sleep = Box::pin(tokio::time::sleep_until(far));
        let mut deadline: Option<Instant> = None;
        // Sockets that still had data when their batch ended.
        let mut pending: u8 = 0;
        loop {
            let wake = if pending != 0 {
                tokio::task::yield_now().await;
                Wake::Ready(pending)
            } else {
                self.wait(sleep.as_mut(), deadline.is_some()).await
            };
            pending = 0;
            match wake {
                Wake::Stop => break,
                Wake::Command(c) => self.command(c),
                Wake::Ready(mask) => {
                    for i in 0..SOCKETS {
                        if mask & (1 << i) != 0 && self.drain(i, &mut buf) {
                            pending |= 1 << i;
                        }
                    }
                    if mask & TIMER != 0 {
                        self.relay.handle_timeout(Instant::now());
                    }
                }
            }
            self.flush(&mut out);
            self.shared.publish(&self.relay);
            let next = self.relay.poll_timeout();
            if next != deadline {
                deadline = next;
                let at = next.map_or(far, tokio::time::Instant::from_std);
                sleep.as_mut().reset(at);
            }
        }
    }

    /// Waits until a socket is readable, a command arrives or the timer fires.
    async fn wait(&mut self, mut sleep: Pin<&mut tokio::time::Sleep>, armed: bool) -> Wake {
        poll_fn(|cx| {
            match self.commands.poll_recv(cx) {
                Poll::Ready(Some(c)) => return Poll::Ready(Wake::Command(c)),
                Poll::Ready(None) => return Poll::Ready(Wake::Stop),
                Poll::Pending => {}
            }
            let mut mask = 0u8;
            for (i, s) in self.sockets.iter().enumerate() {
                // An error (rare: ICMP reported on the socket) also counts as ready; the read
                // will see it and go on.
                if s.poll_recv_ready(cx).is_ready() {
                    mask |= 1 << i;
                }
            }
            if armed && sleep.as_mut().poll(cx).is_ready() {
                mask |= TIMER;
            }
            if mask != 0 {
                Poll::Ready(Wake::Ready(mask))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::Configure(side, params) => self.relay.configure(now, side, params.into()),
            Command::SendDtmf(side, digit, ms) => {
                // A digit that cannot be sent (no telephone-event on that leg) is dropped; call
                // control knows the negotiated payload types and can check beforehand.
                let _ = self.relay.send_dtmf(now, side, digit, ms);
            }
            Command::Record(tap) => self.tap = Some(tap),
            Command::Play(side, audio, codec) => {
                if self.relay.play(now, side, audio, codec).is_err() {
                    // Nowhere to play it (the side has no address): say it is done, so the
                    // call does not wait for it.
                    let _ = self.notices.send(MediaNotice {
                        owner: self.owner,
                        event: MediaEvent::PlaybackDone { side },
                    });
                }
            }
        }
    }

    /// Reads up to [`BATCH`] datagrams from socket `i`; returns whether more may be waiting.
    fn drain(&mut self, i: usize, buf: &mut [u8; MTU]) -> bool {
        let (side, port) = socket_role(i);
        for _ in 0..BATCH {
            let (len, from) = match self.sockets[i].try_recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                // ICMP port unreachable from an earlier send, reported here on Linux: ignore.
                Err(_) => continue,
            };
            let now = Instant::now();
            match port {
                Port::Rtp => {
                    let verdict = match &self.tap {
                        None => self.relay.handle_rtp(now, side, from, buf, len),
                        Some(tap) => {
                            self.relay
                                .handle_rtp_tapped(now, side, from, buf, len, &mut |f| {
                                    tap.push(now, &f)
                                })
                        }
                    };
                    if let Verdict::Forward { to, len } = verdict {
                        let out = &self.sockets[socket_index(side.other(), Port::Rtp)];
                        send(out, &buf[..len], to, &self.shared);
                    }
                }
                Port::Rtcp => {
                    let _ = self.relay.handle_rtcp(now, side, from, &buf[..len]);
                }
            }
        }
        true
    }

    /// Sends what the relay generated and hands its events to call control.
    fn flush(&mut self, out: &mut [u8; MTU]) {
        while let Some(t) = self.relay.poll_transmit(out) {
            let s = &self.sockets[socket_index(t.side, t.port)];
            send(s, &out[..t.len], t.to, &self.shared);
        }
        while let Some(e) = self.relay.poll_event() {
            let event = match e {
                masterz_media::relay::Event::Timeout { side } => {
                    self.shared.timed_out();
                    MediaEvent::Timeout { side }
                }
                masterz_media::relay::Event::Dtmf {
                    from,
                    digit,
                    duration_ms,
                } => MediaEvent::Dtmf {
                    from,
                    digit,
                    duration_ms,
                },
                masterz_media::relay::Event::PlaybackDone { side } => {
                    MediaEvent::PlaybackDone { side }
                }
            };
            // The call may be gone already; then nobody needs the event.
            let _ = self.notices.send(MediaNotice {
                owner: self.owner,
                event,
            });
        }
    }
}

const TIMER: u8 = 1 << 7;

fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr, shared: &SessionShared) {
    // A full send buffer drops the packet, as the network would: never wait on the relay path.
    if socket.try_send_to(bytes, to).is_err() {
        shared.send_failed();
    }
}
