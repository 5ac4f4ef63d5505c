//! `masterz-sip`: SIP (RFC 3261) for masterz — messages, transactions, dialogs and digest auth.
//!
//! # Contract
//!
//! This crate is **pure**: it never touches a socket, a clock, a random number generator or a
//! database. It is a set of state machines driven from outside (by `src/telephony/` in the server):
//!
//! - inputs arrive through `handle_*(now, …)` methods: a datagram or stream bytes with its source,
//!   a timer that fired, a command from call control;
//! - outputs leave through `poll_transmit()`, `poll_event()` and `poll_timeout()`; after every input
//!   the driver drains all three until each returns `None`;
//! - time (`std::time::Instant`) and randomness (tags, branches, Call-IDs) are passed in, so tests
//!   run on a virtual clock with a seeded generator and can simulate loss, duplication and
//!   reordering deterministically.
//!
//! `clippy.toml` in this crate forbids `Instant::now`, `SystemTime::now` and thread RNGs.
//!
//! # Layers, bottom up
//!
//! - [`message`]: parse (zero-copy on [`bytes::Bytes`]) and print messages, frame them on streams
//!   by Content-Length, and [`message::validate_request`] the headers every element needs;
//!   [`uri`] and [`headers`] give typed views on demand.
//! - [`auth`]: digest authentication, MD5 and SHA-256, server (stateless nonces) and client.
//! - [`transaction`]: the four RFC 3261 §17 machines (with RFC 6026), each an enum of its states.
//! - [`endpoint`]: the transaction user's interface — the one object a driver feeds and drains.
//! - [`dialog`]: dialogs (§12–14) on top of the endpoint: route sets, CSeq, target refresh, glare.
//! - [`ident`]: Call-IDs, tags and branches from the caller's [`ident::RandomSource`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod headers;
pub mod ident;
pub mod message;
pub mod transaction;
pub mod transport;
pub mod uri;
