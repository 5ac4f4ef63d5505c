//! The policy conformance suite: one test per promise of the privacy policy
//! (`shared/contracts/privacy-promises.md`, P1–P26), each named after its promise (`p17_…`).
//! `docs/privacy.md` points every promise at its test here; the suite runs in CI with the rest.

#[path = "../common/mod.rs"]
mod common;

mod ai;
mod ai_harness;
mod billing;
mod export;
mod fake_openai;
mod foundation;
mod lifecycle;

// The conformance tests of P1–P9, P11–P14, P18, P19, P22–P25 and their helpers; the SIP test
// UA and the messaging harness (signed webhooks, the fake Graph/WAHA) are the other suites'.
mod access;
mod channels;
#[path = "../messaging/fake_provider.rs"]
mod fake_provider;
#[path = "../messaging/harness.rs"]
mod harness;
#[path = "../peers/mod.rs"]
mod peers;
mod protection;
#[allow(dead_code)]
#[path = "../sip/raw.rs"]
mod raw;
mod redaction;
mod retention;
mod support;
mod telephony;
