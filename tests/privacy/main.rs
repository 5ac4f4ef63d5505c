//! The policy conformance suite: one test per promise of the privacy policy
//! (`shared/contracts/privacy-promises.md`, P1–P26), each named after its promise (`p17_…`).
//! `docs/privacy.md` points every promise at its test here; the suite runs in CI with the rest.

#[path = "../common/mod.rs"]
mod common;

mod ai;
mod billing;
mod export;
mod foundation;
