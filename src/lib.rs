//! masterz: a telephony-first communications server.
//!
//! The layers, bottom up (see `docs/architecture.md`):
//! - the pure protocol crates `masterz-sip`, `masterz-media`, `masterz-recordings`;
//! - [`store`]: the database (SQLite or PostgreSQL), one module per aggregate, company-scoped;
//! - [`domain`], [`auth`], [`secrets`]: the vocabulary, passwords and sessions, encryption at rest;
//! - [`http`]: the JSON API and operations endpoints;
//! - [`app`]: wiring a [`config::Config`] into a running [`app::Server`]; [`cli`]: the commands.

#![warn(missing_docs)]

pub mod agents;
pub mod ai;
pub mod app;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod export;
pub mod http;
pub mod lifecycle;
pub mod media_engine;
pub mod messaging;
pub mod metrics;
pub mod pii;
pub mod recording;
pub mod secrets;
pub mod store;
pub mod telephony;
