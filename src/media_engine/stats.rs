//! Counters shared between a session's task (the only writer) and readers: the call's
//! [`super::MediaSession::stats`] and the engine's Prometheus metrics. Relaxed atomics, one set
//! per session, so no two calls share a cache line on the packet path.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use masterz_media::relay::{DropReason, Relay, Side};
use serde::Serialize;

/// A snapshot of both legs of a session.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionStats {
    /// Leg A.
    pub a: LegStats,
    /// Leg B.
    pub b: LegStats,
}

/// A snapshot of one leg: what we received from it and sent to it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LegStats {
    /// RTP packets accepted from the leg.
    pub packets_in: u64,
    /// RTP packets sent to the leg.
    pub packets_out: u64,
    /// Bytes accepted from the leg.
    pub bytes_in: u64,
    /// Bytes sent to the leg.
    pub bytes_out: u64,
    /// Packets lost on the way from the leg (RFC 3550 cumulative loss of its current stream).
    pub lost: u64,
    /// Interarrival jitter of its stream, in µs.
    pub jitter_us: u64,
    /// Packets from an address other than the latched one.
    pub dropped_foreign: u64,
    /// Datagrams that were not RTP.
    pub dropped_malformed: u64,
    /// RTCP packets received from the leg.
    pub rtcp_in: u64,
    /// RTCP packets sent to the leg.
    pub rtcp_out: u64,
    /// DTMF digits received from the leg.
    pub dtmf_in: u64,
    /// The address the leg sends from, once latched.
    pub latched: Option<SocketAddr>,
}

const REASONS: usize = DropReason::ALL.len();

#[derive(Debug, Default)]
pub(crate) struct LegAtomics {
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    lost: AtomicU64,
    jitter_us: AtomicU64,
    rtcp_in: AtomicU64,
    rtcp_out: AtomicU64,
    dtmf_in: AtomicU64,
    dtmf_injected: AtomicU64,
    dropped: [AtomicU64; REASONS],
    latched: Mutex<Option<SocketAddr>>,
}

/// The counters of one session.
#[derive(Debug, Default)]
pub(crate) struct SessionShared {
    legs: [LegAtomics; 2],
    send_failures: AtomicU64,
    timeouts: AtomicU64,
}

impl SessionShared {
    /// Copies the relay's counters (called by the session task after each wake-up).
    pub(crate) fn publish(&self, relay: &Relay) {
        for side in [Side::A, Side::B] {
            let c = relay.counters(side);
            let l = &self.legs[side.index()];
            l.packets_in.store(c.packets_in, Relaxed);
            l.packets_out.store(c.packets_out, Relaxed);
            l.bytes_in.store(c.bytes_in, Relaxed);
            l.bytes_out.store(c.bytes_out, Relaxed);
            l.rtcp_in.store(c.rtcp_in, Relaxed);
            l.rtcp_out.store(c.rtcp_out, Relaxed);
            l.dtmf_in.store(c.dtmf_in, Relaxed);
            l.dtmf_injected.store(c.dtmf_injected, Relaxed);
            for (a, v) in l.dropped.iter().zip(c.dropped) {
                a.store(v, Relaxed);
            }
            let rx = relay.receive_stats(side);
            l.lost.store(rx.lost().max(0) as u64, Relaxed);
            // 8 kHz clock: one unit is 125 µs.
            l.jitter_us.store(u64::from(rx.jitter()) * 125, Relaxed);
            let latched = relay.latched(side);
            let mut slot = l.latched.lock().unwrap_or_else(|e| e.into_inner());
            if *slot != latched {
                *slot = latched;
            }
        }
    }

    pub(crate) fn send_failed(&self) {
        self.send_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SessionStats {
        SessionStats {
            a: self.leg(Side::A),
            b: self.leg(Side::B),
        }
    }

    fn leg(&self, side: Side) -> LegStats {
        let l = &self.legs[side.index()];
        LegStats {
            packets_in: l.packets_in.load(Relaxed),
            packets_out: l.packets_out.load(Relaxed),
            bytes_in: l.bytes_in.load(Relaxed),
            bytes_out: l.bytes_out.load(Relaxed),
            lost: l.lost.load(Relaxed),
            jitter_us: l.jitter_us.load(Relaxed),
            dropped_foreign: l.dropped[DropReason::ForeignSource.index()].load(Relaxed),
            dropped_malformed: l.dropped[DropReason::Malformed.index()].load(Relaxed),
            rtcp_in: l.rtcp_in.load(Relaxed),
            rtcp_out: l.rtcp_out.load(Relaxed),
            dtmf_in: l.dtmf_in.load(Relaxed),
            latched: *l.latched.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Engine-wide sums, for metrics: live sessions are added at render time, finished ones are
/// folded in when they end.
#[derive(Clone, Debug, Default)]
pub(crate) struct Totals {
    packets_in: u64,
    packets_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    rtcp_in: u64,
    rtcp_out: u64,
    dtmf_in: u64,
    dtmf_injected: u64,
    dropped: [u64; REASONS],
    send_failures: u64,
    timeouts: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, s: &SessionShared) {
        for l in &s.legs {
            self.packets_in += l.packets_in.load(Relaxed);
            self.packets_out += l.packets_out.load(Relaxed);
            self.bytes_in += l.bytes_in.load(Relaxed);
            self.bytes_out += l.bytes_out.load(Relaxed);
            self.rtcp_in += l.rtcp_in.load(Relaxed);
            self.rtcp_out += l.rtcp_out.load(Relaxed);
            self.dtmf_in += l.dtmf_in.load(Relaxed);
            self.dtmf_injected += l.dtmf_injected.load(Relaxed);
            for (t, d) in self.dropped.iter_mut().zip(&l.dropped) {
                *t += d.load(Relaxed);
            }
        }
        self.send_failures += s.send_failures.load(Relaxed);
        self.timeouts += s.timeouts.load(Relaxed);
    }

    /// Prometheus text for these totals.
    pub(crate) fn render(&self, out: &mut String) {
        let mut counter = |name: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "masterz_media_rtp_packets_total",
            "RTP packets accepted from phones (in) and sent to them (out).",
            &[
                ("{direction=\"in\"}", self.packets_in),
                ("{direction=\"out\"}", self.packets_out),
            ],
        );
        counter(
            "masterz_media_rtp_bytes_total",
            "RTP bytes accepted from phones (in) and sent to them (out).",
            &[
                ("{direction=\"in\"}", self.bytes_in),
                ("{direction=\"out\"}", self.bytes_out),
            ],
        );
        counter(
            "masterz_media_rtcp_packets_total",
            "RTCP packets read from phones (in) and sent to them (out).",
            &[
                ("{direction=\"in\"}", self.rtcp_in),
                ("{direction=\"out\"}", self.rtcp_out),
            ],
        );
        counter(
            "masterz_media_dtmf_total",
            "DTMF digits received (in) and telephone-event packets generated (injected).",
            &[
                ("{direction=\"in\"}", self.dtmf_in),
                ("{direction=\"injected\"}", self.dtmf_injected),
            ],
        );
        counter(
            "masterz_media_send_failures_total",
            "Datagrams the kernel refused to send (full buffer, unreachable).",
            &[("", self.send_failures)],
        );
        counter(
            "masterz_media_timeouts_total",
            "Media timeouts reported to call control.",
            &[("", self.timeouts)],
        );
        let _ = writeln!(
            out,
            "# HELP masterz_media_rtp_dropped_total Datagrams received and not relayed, by reason.\n\
             # TYPE masterz_media_rtp_dropped_total counter"
        );
        for (reason, v) in DropReason::ALL.iter().zip(self.dropped) {
            let _ = writeln!(
                out,
                "masterz_media_rtp_dropped_total{{reason=\"{}\"}} {v}",
                reason.as_str()
            );
        }
    }
}
