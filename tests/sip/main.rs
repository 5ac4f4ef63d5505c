//! The SIP service against real peers and raw datagrams: the registrar with SIPp (digest auth,
//! bindings in the API, wrong passwords, rate limiting), malformed requests, OPTIONS, 423,
//! `Contact: *`, bindings surviving a restart, and trunk registration against a SIPp registrar.

#[path = "../common/mod.rs"]
mod common;
#[path = "../peers/mod.rs"]
mod peers;

mod baresip;
mod raw;
mod registrar;
mod trunks;
mod websocket;
