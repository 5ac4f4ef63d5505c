//! Simulation tests of the transaction layer (RFC 3261 §17, RFC 6026) through the sans-IO
//! endpoint: two endpoints (or one and a scripted peer) on a virtual clock, with a link that
//! loses, duplicates and delays chosen packets. See `sim/mod.rs` for the harness.

mod sim;
