//! The messaging bridge: Meta (Messenger, Instagram, Facebook Page comments, WhatsApp Cloud API)
//! and WAHA webhooks into the customer timeline, agents' replies back out.
//!
//! The flow (see `docs/messaging.md`):
//! 1. [`ingest`]: the webhook handler checks the signature on the raw bytes and hands the body to
//!    the group committer, which writes it as an inbound `integration_logs` row; the 200 goes out
//!    only after that row is committed. Many concurrent requests share one commit.
//! 2. [`process`]: a worker parses each unprocessed row ([`meta`], [`waha`] → [`event`]) and
//!    applies it idempotently: identities, conversations, messages, receipts. `masterz replay`
//!    runs the same step on one row.
//! 3. [`outbox`]: an agent's reply is a `queued` message plus an outbox row; a worker sends it
//!    through [`clients`], retrying transient failures with backoff, and logs every call.

pub mod clients;
pub mod committer;
pub mod directory;
pub mod event;
pub mod gate;
pub mod ingest;
pub mod meta;
pub mod outbox;
pub mod process;
pub mod redact;
pub mod reply;
pub mod signature;
pub mod waha;
pub mod wire;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::secrets::Keyring;
use crate::store::Db;

/// The bridge's shared parts, in [`crate::http::AppState`].
#[derive(Debug)]
pub struct Messaging {
    /// Writes inbound webhook rows in group commits.
    pub committer: ingest::Committer,
    /// Routes webhooks to channel accounts.
    pub directory: directory::Directory,
    /// Sends to Meta and WAHA.
    pub clients: clients::Clients,
    /// Woken after inbound rows were committed.
    pub inbound: Arc<Notify>,
    /// Woken when a reply was queued.
    pub outbound: Arc<Notify>,
    /// Turns at SQLite's write lock for the committer and the processor.
    pub gate: ingest::WriteGate,
    /// The processor's group transactions: [`Db::relaxed`] (they are derived from inbound rows
    /// that are already durable, and are applied again if a power cut loses them).
    pub relaxed: Db,
}

impl Messaging {
    /// The bridge for `db`; its tasks start with [`spawn`].
    pub fn new(db: &Db, keyring: &Keyring, config: &Config) -> Self {
        Self {
            committer: ingest::Committer::default(),
            directory: directory::Directory::new(db.clone(), keyring.clone()),
            clients: clients::Clients::new(&config.meta_graph_url),
            inbound: Arc::new(Notify::new()),
            outbound: Arc::new(Notify::new()),
            gate: ingest::WriteGate::default(),
            relaxed: db.relaxed(2),
        }
    }
}

/// Starts the committer, the inbound processor, the outbox worker and the log pruning job.
pub fn spawn(state: &Arc<crate::http::AppState>) {
    let m = &state.messaging;
    m.committer
        .spawn(state.db.clone(), m.inbound.clone(), m.gate.clone());
    process::spawn(state.clone());
    outbox::spawn(state.clone());
}

/// Deletes `integration_logs` rows older than `integration_log_retention_days` (P18); returns how
/// many. Runs hourly and at start-up.
pub async fn prune_logs(state: &crate::http::AppState) -> crate::store::Result<u64> {
    let days = i64::try_from(state.config.integration_log_retention_days).unwrap_or(i64::MAX / 2);
    let before = crate::store::now_ms().saturating_sub(days.saturating_mul(86_400_000));
    let mut conn = state.db.conn().await?;
    crate::store::integration_logs::prune(&mut conn.ex(), before).await
}

/// The webhook URL a provider must call for a channel account of `kind`.
pub fn webhook_url(base: &str, kind: &str, account: i64) -> Option<String> {
    match kind {
        "messenger" | "instagram" | "whatsapp_cloud" => Some(format!("{base}/webhooks/meta")),
        "waha" => Some(format!("{base}/webhooks/waha/{account}")),
        _ => None,
    }
}
