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
//! What exists today: the G.711 codec ([`g711`]). RTP, SDP, DTMF and bridging follow in the calls
//! work.

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
