//! Applying stored webhook events: each pending inbound `integration_logs` row is parsed and its
//! events applied in one transaction — customer identities and profiles, the conversation,
//! messages (idempotent on the provider's id), receipts, reactions, removals, WAHA session
//! states — then marked `processed` (or `ignored` when nothing in it concerned masterz). Agents
//! get the changes over their WebSocket after the commit.
//!
//! A row whose processing fails on the database stays pending and is retried (every
//! [`RETRY_EVERY`], up to [`MAX_ATTEMPTS`] times); a row that does not parse is `failed` at once.
//! Processing the same row again changes nothing: that is what `masterz replay` relies on.

use std::sync::Arc;
use std::time::Duration;

use super::event::{Contact, Direction, EventKind, InboundEvent, InboundMessage};
use crate::agents::ServerFrame;
use crate::domain::{ChannelKind, CompanyId, IdentityKind};
use crate::http::AppState;
use crate::store::integration_logs::{self, Inbound};
use crate::store::messages::{self as msgs, ChannelMessageNew, ChannelProfile};
use crate::store::{self, Ex, StoreError};

/// Rows fetched per query.
const BATCH: i64 = 200;
/// Database failures tolerated per row before it is marked `failed`.
pub const MAX_ATTEMPTS: i32 = 5;
/// How often pending rows are looked for without a wake-up (and failed ones retried).
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

/// What processing one row did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events in the row.
    pub events: usize,
    /// Messages added.
    pub added: usize,
    /// Messages changed (status, edit, reaction, removal).
    pub changed: usize,
    /// Events skipped, with why.
    pub skipped: Vec<String>,
    /// The row's final state: `processed`, `ignored` or `failed`.
    pub state: &'static str,
}

#[derive(Debug)]
enum Change {
    Message(i64),
    Channel(i64),
}

/// Starts the processor task.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            match run_once(&state).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "webhook processing failed"),
            }
            tokio::select! {
                () = state.messaging.inbound.notified() => {}
                () = tokio::time::sleep(RETRY_EVERY) => {}
            }
        }
    });
}

/// Processes every pending row once; returns how many rows were handled.
pub async fn run_once(state: &AppState) -> store::Result<usize> {
    let mut after = 0;
    let mut handled = 0;
    loop {
        let rows = {
            let mut conn = state.db.conn().await?;
            integration_logs::pending(&mut conn.ex(), after, BATCH).await?
        };
        let Some(last) = rows.last() else {
            return Ok(handled);
        };
        after = last.id;
        let mut i = 0;
        while i < rows.len() {
            match apply_group(state, &rows[i..]).await {
                Ok(n) => i += n,
                Err(e) => {
                    // One row of the group failed: the group rolled back; this row alone
                    // records its failure, the others go again in the next group.
                    tracing::debug!(error = %e, "group rolled back; applying row by row");
                    let _ = process_row(state, &rows[i], false).await;
                    i += 1;
                }
            }
        }
        handled += rows.len();
    }
}

/// How long one group transaction may keep applying rows: long enough to share a commit among
/// many rows, short enough that the webhook committer never waits long for the write lock.
const GROUP_BUDGET: Duration = Duration::from_millis(5);
/// When the committer waits, a group stops after this long: a webhook waits for about this much
/// background work, and the group still shares its commit among a few rows.
const YIELD_AFTER: Duration = Duration::from_millis(2);

/// Applies rows from the front of `rows` in one transaction (at least one; returns how many) until
/// [`GROUP_BUDGET`] is spent or the webhook committer waits for the write lock. On an error
/// nothing of the group is kept.
async fn apply_group(state: &AppState, rows: &[Inbound]) -> store::Result<usize> {
    let gate = &state.messaging.gate;
    let turn = gate.background_turn(&state.db).await;
    let started = std::time::Instant::now();
    let mut tx = state.messaging.relaxed.begin().await?;
    let mut done = 0;
    let mut news = Vec::new();
    let mut profiles = 0;
    let mut accounts = Accounts::default();
    for row in rows {
        let spent = started.elapsed();
        if done > 0 && (spent > GROUP_BUDGET || (spent > YIELD_AFTER && gate.urgent())) {
            break;
        }
        done += 1;
        let (company, account_id, events) = match prepare(row) {
            Ok(p) => p,
            Err((state_name, why)) => {
                integration_logs::finish(&mut tx.ex(), row.id, state_name, Some(&why)).await?;
                continue;
            }
        };
        let (_, changes, queued) = apply_in(
            &mut tx.ex(),
            &mut accounts,
            company,
            account_id,
            row.id,
            &events,
            false,
        )
        .await?;
        profiles += queued;
        news.push((company, changes));
    }
    tx.commit().await?;
    drop(turn);
    if profiles > 0 {
        state.messaging.outbound.notify_one();
    }
    if news.iter().any(|(_, changes)| !changes.is_empty()) {
        state.ai.queued.notify_one();
    }
    for (company, changes) in news {
        announce(state, company, &changes).await;
    }
    Ok(done)
}

/// A row's company, channel account and events; or the state and reason to mark it with.
fn prepare(row: &Inbound) -> Result<(CompanyId, i64, Vec<InboundEvent>), (&'static str, String)> {
    let (Some(company), Some(account_id)) = (row.company_id, row.channel_account_id) else {
        return Err(("ignored", "no channel account".into()));
    };
    let body = row.request_body.as_deref().unwrap_or_default().as_bytes();
    let parsed = match row.provider.as_str() {
        "meta" => super::meta::parse(body),
        "waha" => super::waha::parse(body),
        other => Err(super::event::ParseError(format!(
            "unknown provider {other}"
        ))),
    };
    parsed
        .map(|events| (company, account_id, events))
        .map_err(|e| ("failed", e.to_string()))
}

/// Processes one inbound row and records the outcome on it. Unless `again` (a replay), a row
/// that another worker finished meanwhile is left alone.
pub async fn process_row(state: &AppState, row: &Inbound, again: bool) -> store::Result<Report> {
    let (company, account_id, events) = match prepare(row) {
        Ok(p) => p,
        Err((state_name, why)) => {
            let mut conn = state.db.conn().await?;
            integration_logs::finish(&mut conn.ex(), row.id, state_name, Some(&why)).await?;
            return Ok(Report {
                state: state_name,
                ..Report::default()
            });
        }
    };
    match apply_all(state, company, account_id, row.id, &events, again).await {
        Ok((report, changes)) => {
            announce(state, company, &changes).await;
            Ok(report)
        }
        Err(e) => {
            let mut conn = state.db.conn().await?;
            let attempts =
                integration_logs::failed_attempt(&mut conn.ex(), row.id, &e.to_string()).await?;
            tracing::warn!(row = row.id, attempts, error = %e, "webhook event not applied");
            if attempts >= MAX_ATTEMPTS {
                integration_logs::finish(&mut conn.ex(), row.id, "failed", Some(&e.to_string()))
                    .await?;
            }
            Err(e)
        }
    }
}

async fn apply_all(
    state: &AppState,
    company: CompanyId,
    account_id: i64,
    row: i64,
    events: &[InboundEvent],
    again: bool,
) -> store::Result<(Report, Vec<Change>)> {
    let turn = state.messaging.gate.background_turn(&state.db).await;
    let mut tx = state.db.begin().await?;
    let mut accounts = Accounts::default();
    let (report, changes, profiles) = apply_in(
        &mut tx.ex(),
        &mut accounts,
        company,
        account_id,
        row,
        events,
        again,
    )
    .await?;
    tx.commit().await?;
    drop(turn);
    if profiles > 0 {
        state.messaging.outbound.notify_one();
    }
    if !changes.is_empty() {
        state.ai.queued.notify_one();
    }
    Ok((report, changes))
}

/// What a transaction knows of the channel accounts it applied rows for: their kind and whether
/// they have AI suggestions on (`None`: deleted). Read once per account and transaction.
#[derive(Default)]
struct Accounts(Vec<((CompanyId, i64), Option<Account>)>);

/// A channel account's kind and whether it has AI suggestions on.
type Account = (ChannelKind, bool);

impl Accounts {
    async fn get(
        &mut self,
        ex: &mut Ex<'_>,
        company: CompanyId,
        id: i64,
    ) -> store::Result<Option<Account>> {
        if let Some((_, known)) = self.0.iter().find(|(key, _)| *key == (company, id)) {
            return Ok(*known);
        }
        let known = store::channels::get(ex, company, id)
            .await?
            .and_then(|a| Some((ChannelKind::parse(&a.kind)?, a.ai_suggestions)));
        self.0.push(((company, id), known));
        Ok(known)
    }
}

/// Applies one row's events in the caller's transaction and marks the row; returns the report,
/// the changes to announce and how many profile look-ups were queued.
async fn apply_in(
    ex: &mut Ex<'_>,
    accounts: &mut Accounts,
    company: CompanyId,
    account_id: i64,
    row: i64,
    events: &[InboundEvent],
    again: bool,
) -> store::Result<(Report, Vec<Change>, usize)> {
    // Takes the row: a concurrent worker on the same row waits here (PostgreSQL row lock, SQLite
    // write lock) and then finds it no longer pending.
    if !again && !integration_logs::take(ex, row).await? {
        let report = Report {
            state: "processed",
            ..Report::default()
        };
        return Ok((report, Vec::new(), 0));
    }
    let account = accounts.get(ex, company, account_id).await?;
    let mut report = Report {
        events: events.len(),
        ..Report::default()
    };
    let mut changes = Vec::new();
    let mut queued_profiles = 0;
    match account {
        None => report
            .skipped
            .push("the channel account was deleted".into()),
        Some((kind, ai)) => {
            let mut ctx = Ctx {
                company,
                account: account_id,
                kind,
                ai,
                report: &mut report,
                changes: &mut changes,
                profiles: 0,
            };
            for event in events {
                ctx.apply(ex, event).await?;
            }
            queued_profiles = ctx.profiles;
        }
    }
    report.state = if report.added + report.changed == 0
        && !report.skipped.is_empty()
        && report.skipped.len() >= report.events
    {
        "ignored"
    } else {
        "processed"
    };
    let note = (!report.skipped.is_empty()).then(|| report.skipped.join("; "));
    integration_logs::finish(ex, row, report.state, note.as_deref()).await?;
    Ok((report, changes, queued_profiles))
}

struct Ctx<'a> {
    company: CompanyId,
    account: i64,
    kind: ChannelKind,
    /// The channel has AI reply suggestions on.
    ai: bool,
    report: &'a mut Report,
    changes: &'a mut Vec<Change>,
    /// Profile look-ups queued.
    profiles: usize,
}

impl Ctx<'_> {
    async fn apply(&mut self, ex: &mut Ex<'_>, event: &InboundEvent) -> store::Result<()> {
        let (company, account) = (self.company, self.account);
        match &event.kind {
            EventKind::Message(m) => self.message(ex, m).await?,
            EventKind::Removed { external_id } => {
                self.changed(msgs::remove(ex, company, account, external_id).await?);
            }
            EventKind::Status(s) => {
                let error = s
                    .error
                    .as_ref()
                    .map(|e| format!("{}: {}", e.code, e.message));
                msgs::add_receipt(
                    ex,
                    company,
                    account,
                    &s.message_id,
                    s.status.as_str(),
                    error.as_deref(),
                    s.at_ms,
                )
                .await?;
                self.changed(
                    msgs::advance(
                        ex,
                        company,
                        account,
                        &s.message_id,
                        s.status.as_str(),
                        error.as_deref(),
                    )
                    .await?,
                );
            }
            EventKind::Watermark {
                contact,
                status,
                watermark_ms,
                mids,
            } => {
                for mid in mids {
                    msgs::add_receipt(
                        ex,
                        company,
                        account,
                        mid,
                        status.as_str(),
                        None,
                        *watermark_ms,
                    )
                    .await?;
                    self.changed(
                        msgs::advance(ex, company, account, mid, status.as_str(), None).await?,
                    );
                }
                let kind = self.contact_kind();
                if let Some(customer) = msgs::customer_by_identities(
                    ex,
                    company,
                    &[(kind.as_str(), Some(account), contact)],
                )
                .await?
                {
                    for id in msgs::advance_until(
                        ex,
                        company,
                        account,
                        customer,
                        status.as_str(),
                        *watermark_ms,
                    )
                    .await?
                    {
                        self.changed(Some(id));
                    }
                }
            }
            EventKind::Reaction {
                message_id, emoji, ..
            } => {
                self.changed(
                    msgs::react(ex, company, account, message_id, emoji.as_deref()).await?,
                );
            }
            EventKind::SessionStatus { status } => {
                let (to, reason) = match status.as_str() {
                    "WORKING" => ("connected", None),
                    "SCAN_QR_CODE" => (
                        "needs_reconnection",
                        Some("the WAHA session waits for its QR code to be scanned"),
                    ),
                    "STARTING" => return Ok(()),
                    _ => ("disconnected", Some("the WAHA session stopped or failed")),
                };
                let reason = reason.map(|r| format!("{r} ({status})"));
                if store::channels::set_status(ex, company, account, to, reason.as_deref()).await? {
                    self.changes.push(Change::Channel(account));
                    self.report.changed += 1;
                }
            }
            EventKind::Ignored { reason } => self.report.skipped.push(reason.clone()),
            EventKind::Unknown { what } => {
                self.report.skipped.push(format!("unknown event {what}"));
            }
        }
        Ok(())
    }

    fn changed(&mut self, id: Option<i64>) {
        if let Some(id) = id {
            self.report.changed += 1;
            self.changes.push(Change::Message(id));
        }
    }

    /// The identity kind of this channel's customers when an event names them by a bare id.
    fn contact_kind(&self) -> IdentityKind {
        match self.kind {
            ChannelKind::Instagram => IdentityKind::Igsid,
            ChannelKind::WhatsappCloud => IdentityKind::WaId,
            ChannelKind::Waha => IdentityKind::WahaChatId,
            _ => IdentityKind::Psid,
        }
    }

    async fn message(&mut self, ex: &mut Ex<'_>, m: &InboundMessage) -> store::Result<()> {
        let (company, account) = (self.company, self.account);
        if m.edited
            && let Some(id) =
                msgs::edit(ex, company, account, &m.external_id, m.text.as_deref()).await?
        {
            self.changed(Some(id));
            return Ok(());
        }
        let direct = m.kind != super::event::MessageKind::Comment && m.direction == Direction::In;
        let customer = self.customer(ex, &m.contact, direct).await?;
        let inbound = m.direction == Direction::In;
        let conversation = msgs::conversation_for(ex, company, customer, account, inbound).await?;
        let attachments = (!m.attachments.is_empty())
            .then(|| serde_json::to_string(&m.attachments).unwrap_or_default());
        let thread = m
            .thread
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_default());
        let new = ChannelMessageNew {
            conversation_id: conversation,
            customer_id: customer,
            channel_account_id: account,
            direction: m.direction.as_str(),
            kind: m.kind.as_str(),
            sender_user_id: None,
            body: m.text.as_deref(),
            attachments,
            reply_to: m.reply_to.as_deref(),
            thread,
            status: if inbound { "received" } else { "sent" },
            external_id: Some(&m.external_id),
            at: m.at_ms,
        };
        match msgs::insert(ex, company, &new).await? {
            Some(id) => {
                self.report.added += 1;
                if !inbound {
                    msgs::apply_receipts(ex, company, account, &m.external_id).await?;
                } else if self.ai {
                    // A reply suggestion, as the channel has them on (P17), with the message.
                    store::ai::enqueue_if_enabled(ex, company, account, conversation, customer, id)
                        .await?;
                }
                self.changes.push(Change::Message(id));
            }
            None => self
                .report
                .skipped
                .push(format!("duplicate message {}", m.external_id)),
        }
        Ok(())
    }

    /// The customer behind a contact: found by any of its identities on this account, or by its
    /// phone number (which is how a caller and a WhatsApp contact meet), else created; every
    /// identity is then linked and the profile refreshed.
    async fn customer(&mut self, ex: &mut Ex<'_>, c: &Contact, direct: bool) -> store::Result<i64> {
        let (company, account) = (self.company, self.account);
        let primary = c.kind.unwrap_or_else(|| self.contact_kind());
        let mut keys: Vec<(&str, Option<i64>, &str)> =
            vec![(primary.as_str(), Some(account), c.external_id.as_str())];
        for (kind, id) in &c.aliases {
            keys.push((kind.as_str(), Some(account), id.as_str()));
        }
        if let Some(phone) = &c.phone {
            keys.push((IdentityKind::Phone.as_str(), None, phone.as_str()));
        }
        let profile = ChannelProfile {
            name: c.name.as_deref(),
            username: c.username.as_deref(),
            avatar_url: c.avatar_url.as_deref(),
            locale: c.locale.as_deref(),
        };
        let customer = match msgs::customer_by_identities(ex, company, &keys).await? {
            Some(id) => id,
            None => {
                let name = c
                    .name
                    .as_deref()
                    .or(c.username.as_deref())
                    .or(c.phone.as_deref())
                    .unwrap_or(&c.external_id);
                msgs::new_customer(ex, company, Some(name)).await?
            }
        };
        let mut owner = customer;
        for (i, (kind, acc, id)) in keys.iter().enumerate() {
            let p = if i == 0 {
                profile.clone()
            } else {
                ChannelProfile::default()
            };
            let (linked, new) =
                msgs::link_identity(ex, company, customer, kind, *acc, id, &p).await?;
            if i == 0 {
                owner = linked;
                // Messenger and Instagram webhooks carry no name: ask the Graph API once, when
                // a person first writes (P6). Comment authors are not PSIDs and are not asked.
                if new
                    && direct
                    && c.name.is_none()
                    && matches!(primary, IdentityKind::Psid | IdentityKind::Igsid)
                {
                    let fetch = super::outbox::Outgoing::Profile {
                        id: c.external_id.clone(),
                        instagram: primary == IdentityKind::Igsid,
                    };
                    let payload = serde_json::to_value(fetch).unwrap_or_default();
                    store::outbox::enqueue(ex, company, account, None, "profile", &payload).await?;
                    self.profiles += 1;
                }
            }
        }
        msgs::refresh_customer(ex, company, owner, &profile).await?;
        Ok(owner)
    }
}

/// Pushes the changed messages and channels to the company's agents.
async fn announce(state: &AppState, company: CompanyId, changes: &[Change]) {
    // Reading the messages back is for open tabs only (a drained backlog reads nothing).
    if changes.is_empty() || !state.agents.has_inbox_tabs(company) {
        return;
    }
    let Ok(mut conn) = state.db.conn().await else {
        return;
    };
    for change in changes {
        let frame = match change {
            Change::Message(id) => match msgs::get(&mut conn.ex(), company, *id).await {
                Ok(Some(m)) => ServerFrame::Message {
                    message: serde_json::to_value(m).unwrap_or_default(),
                },
                _ => continue,
            },
            Change::Channel(id) => match store::channels::get(&mut conn.ex(), company, *id).await {
                Ok(Some(a)) => ServerFrame::Channel {
                    account: serde_json::to_value(a).unwrap_or_default(),
                },
                _ => continue,
            },
        };
        state.agents.broadcast(company, &frame);
    }
}

/// Why a row could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No inbound row with that id.
    #[error("no inbound integration log row {0}")]
    NotFound(i64),
    /// The row was a rejected request (forged, malformed): it is never processed.
    #[error("row {0} is a rejected request ({1}); it is not replayed")]
    Rejected(i64, String),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Processes the inbound row `id` again (`masterz replay`): idempotent, so events already applied
/// change nothing and ones that failed before are applied now.
pub async fn replay(state: &AppState, id: i64) -> Result<Report, ReplayError> {
    let row = {
        let mut conn = state.db.conn().await?;
        integration_logs::inbound(&mut conn.ex(), id)
            .await?
            .ok_or(ReplayError::NotFound(id))?
    };
    if row.state == "rejected" {
        return Err(ReplayError::Rejected(id, row.state));
    }
    Ok(process_row(state, &row, true).await?)
}
