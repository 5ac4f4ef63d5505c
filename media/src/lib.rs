//! `masterz-media`: RTP/RTCP, SDP offer/answer, G.711, DTMF (RFC 4733), jitter and bridging.
//!
//! # Contract
//!
//! This crate is **pure**: no sockets, no clock, no random numbers, no database. The media engine
//! in `src/media_engine/` owns the UDP sockets and timers and drives the state machines here:
//! inputs through `handle_*(now, …)` (a received packet with its source address, a timer), outputs
//! through `poll_transmit()`, `poll_event()` and `poll_timeout()`, drained after every input. SSRCs
//! and initial sequence numbers are passed in. The relay path allocates nothing per packet.
//!
//! `clippy.toml` in this crate forbids `Instant::now`, `SystemTime::now` and thread RNGs.
//!
//! The layers, bottom up:
//!
//! - [`g711`] (µ-law, A-law) and [`transcode`] (PCMU ↔ PCMA in place, by table);
//! - [`rtp`] (zero-copy packet view, RTP/RTCP demux), [`rtcp`] (compound parse; SR, RR, SDES
//!   write), [`stats`] (RFC 3550 A.1/A.8 receive statistics), [`rewrite`] (one continuous
//!   outgoing stream across source changes), [`dtmf`] (RFC 4733 events and their generator);
//! - [`sdp`] (audio-only SDP and RFC 3264 offer/answer), [`codec`] (shared by SDP and relay);
//! - [`relay`]: the per-call media relay (latching, payload-type mapping, hold, DTMF, prompts,
//!   a recording tap, RTCP, media timeout), driven by `src/media_engine/`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod relay;
pub mod rewrite;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod stats;
pub mod transcode;
