//! The messaging bridge from outside: webhooks in (signed fixtures for every event kind), replies
//! out against a fake Graph API and WAHA, the provider clients, crash safety and redaction.

#[path = "../common/mod.rs"]
mod common;

mod clients;
mod crash;
mod fake_provider;
mod harness;
mod inbound;
mod outbound;
mod realtime;
mod secrets;
