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
//! What exists today: the identifiers that RFC 3261 asks every element to generate
//! ([`ident`]). The parser, transactions, dialogs and digest auth follow in the SIP stack work.

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
