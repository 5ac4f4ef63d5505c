//! Calls end to end (issue 4): masterz between a SIP trunk and agents' phones, with real peers
//! on 127.0.0.1 — SIPp playing trunks and phones (signalling, pcap RTP, RTP echo) and baresip
//! as an agent that really decodes audio.
//!
//! - [`inbound`]: 50 trunk calls to a DID answered by a SIPp agent with RTP both ways; a caller
//!   who hangs up while two agents ring;
//! - [`audio`]: a 1 kHz tone from the trunk reaches baresip at 1 kHz;
//! - [`outbound`]: an agent dials out through a trunk that challenges with 407, and an
//!   extension;
//! - [`midcall`]: hold and resume, blind and attended transfer, DTMF, session refresh, media
//!   timeout;
//! - [`bad_input`]: unknown source (403), G.729 only (488), garbage and spoofed RTP;
//! - [`recording`] (issue 5): caller left and agent right in a WAV as long as the call, nothing
//!   without the switch, the consent prompt before ringing; [`crash`]: `kill -9` mid-call.
//! - [`webrtc_agent`] (issue 6): agents over the agent WebSocket with str0m as their WebRTC
//!   stack: answering, a second tab, a failed leg, dialling out, presence; [`browser`]: the
//!   agent web app in headless Chromium (through [`webdriver`]): answering a trunk call with
//!   audio both ways and its recording, dialling out, a dropped WebSocket, a second tab.
//!
//! Every test starts its own server (SQLite, ports 0, a distinct RTP port range) and its own
//! peers on free ports, so they run in parallel; each is bounded by the peers' timeouts.
//! `MASTERZ_TEST_LOG=masterz=debug` prints the server's logs (they are off otherwise). SIPp's
//! `play_pcap_audio` sends through a raw socket: the tests that play audio need root (or
//! CAP_NET_RAW for sipp), as CI has.

#[path = "../common/mod.rs"]
mod common;
#[path = "../peers/mod.rs"]
mod peers;

mod pbx;
mod rtp;

mod attended;
mod audio;
mod bad_input;
mod browser;
mod browser_inbox;
mod click;
mod crash;
mod inbound;
mod midcall;
mod outbound;
mod recording;
mod recording_midcall;
mod recording_retention;
mod webdriver;
mod webrtc_agent;
mod whatsapp_timeline;
