//! The data lifecycle in SQL: erasing one customer with everything that names them, deletion
//! requests (looked up by an opaque code, no personal data in them), closing a company and
//! deleting a closed company whose period has passed. The orchestration (transactions, audit,
//! files) is in [`crate::lifecycle`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, q};
use crate::domain::Timestamp;

/// What an erasure deleted: counts only (they are stored in `deletion_requests.deleted` and shown
/// on the public status page, so nothing in here may identify anyone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Counts {
    /// Customers (a merged customer's tombstones count too).
    pub customers: u64,
    /// Ways to reach them: phone numbers, Messenger/Instagram/WhatsApp/WAHA ids, SIP URIs.
    pub identities: u64,
    /// Conversations.
    pub conversations: u64,
    /// Messages, in and out.
    pub messages: u64,
    /// Calls.
    pub calls: u64,
    /// Call recordings (their files are removed too).
    pub recordings: u64,
    /// Internal notes about them.
    pub notes: u64,
    /// AI reply suggestions made for their messages.
    pub ai_suggestions: u64,
    /// Provider exchanges that named them (`integration_logs` rows).
    pub integration_logs: u64,
    /// Queued provider calls about them (profile look-ups, read receipts).
    pub outbox: u64,
    /// Delivery and read receipts of their messages.
    pub receipts: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counts) {
        self.customers += other.customers;
        self.identities += other.identities;
        self.conversations += other.conversations;
        self.messages += other.messages;
        self.calls += other.calls;
        self.recordings += other.recordings;
        self.notes += other.notes;
        self.ai_suggestions += other.ai_suggestions;
        self.integration_logs += other.integration_logs;
        self.outbox += other.outbox;
        self.receipts += other.receipts;
    }

    /// Whether nothing was deleted.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

/// The customer that holds `id`'s data: `id` itself, or the customer it was merged into.
pub async fn surviving_customer(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
) -> Result<Option<i64>> {
    let merged: Option<Option<i64>> = q!(ex, scalar_opt Option<i64>,
        "SELECT merged_into_id FROM customers WHERE company_id = $1 AND id = $2", company, id)?;
    // A merge points every earlier tombstone at the survivor, so one step is enough.
    Ok(merged.map(|m| m.unwrap_or(id)))
}

/// `text` with `%`, `_` and `\\` escaped for a `LIKE … ESCAPE '\\'` pattern (case kept: the
/// ids matched here are compared as the database compares text).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The patterns that find an external id in a logged exchange: `(body, endpoint end, endpoint
/// segment)`. In a body, the id as a whole JSON string (`"<id>"`, how every provider payload
/// carries ids, so `"123"` does not match `"1234"`); in an endpoint, a whole path segment
/// (`…/<id>` or `…/<id>?…`, the Graph profile look-up).
fn id_patterns(external_id: &str) -> (String, String, String) {
    let json = serde_json::to_string(external_id).unwrap_or_default();
    let id = escape_like(external_id);
    (
        format!("%{}%", escape_like(&json)),
        format!("%/{id}"),
        format!("%/{id}?%"),
    )
}

/// Deletes customer `root` of `company` (already resolved with [`surviving_customer`]), its
/// merged tombstones, and everything that names them; returns what went. Run it in a
/// transaction. Cascades remove identities, conversations, messages, calls (and their events and
/// recording rows, whose files the `recordings` trigger queues), notes and AI suggestions; the
/// rest is matched here:
/// - `integration_logs` of the company (or of no company) whose `message_id` is one of their
///   messages, or whose request or response body holds one of their identities' external ids as
///   a whole JSON string (`"<id>"`), or whose endpoint ends in `/<id>` or has `/<id>?`;
/// - `outbox` rows without a message whose payload holds such a JSON string;
/// - `message_receipts` of their messages; `customer_merges` rows of their tombstones.
pub async fn erase_customer(ex: &mut Ex<'_>, company: CompanyId, root: i64) -> Result<Counts> {
    let mut n = Counts {
        customers: q!(ex, scalar i64,
            "SELECT COUNT(*) FROM customers WHERE company_id = $1 AND (id = $2 OR merged_into_id = $2)",
            company, root)? as u64,
        ..Counts::default()
    };
    if n.customers == 0 {
        return Ok(n);
    }
    // Every count below is over the customer and its tombstones.
    const WHO: &str =
        "(SELECT id FROM customers WHERE company_id = $1 AND (id = $2 OR merged_into_id = $2))";
    let count = |table: &str| {
        format!("SELECT COUNT(*) FROM {table} WHERE company_id = $1 AND customer_id IN {WHO}")
    };
    // The table names are fixed here, never input.
    n.identities = q!(ex, scalar i64, sqlx::AssertSqlSafe(count("customer_identities")), company, root)?
        as u64;
    n.conversations =
        q!(ex, scalar i64, sqlx::AssertSqlSafe(count("conversations")), company, root)? as u64;
    n.messages = q!(ex, scalar i64, sqlx::AssertSqlSafe(count("messages")), company, root)? as u64;
    n.calls = q!(ex, scalar i64, sqlx::AssertSqlSafe(count("calls")), company, root)? as u64;
    n.notes = q!(ex, scalar i64, sqlx::AssertSqlSafe(count("notes")), company, root)? as u64;
    n.ai_suggestions =
        q!(ex, scalar i64, sqlx::AssertSqlSafe(count("ai_suggestions")), company, root)? as u64;
    let recordings = format!(
        "SELECT COUNT(*) FROM recordings WHERE company_id = $1 AND call_id IN \
         (SELECT id FROM calls WHERE company_id = $1 AND customer_id IN {WHO})"
    );
    n.recordings = q!(ex, scalar i64, sqlx::AssertSqlSafe(recordings), company, root)? as u64;

    let external_ids: Vec<String> = q!(ex, scalars String, sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT external_id FROM customer_identities WHERE company_id = $1 AND customer_id IN {WHO}")),
        company, root)?;

    let by_message = format!(
        "DELETE FROM integration_logs WHERE company_id = $1 AND message_id IN \
         (SELECT id FROM messages WHERE company_id = $1 AND customer_id IN {WHO})"
    );
    n.integration_logs += q!(ex, exec, sqlx::AssertSqlSafe(by_message), company, root)?;
    for ext in external_ids.iter().filter(|e| !e.trim().is_empty()) {
        let (body, tail, query) = id_patterns(ext);
        n.integration_logs += q!(
            ex,
            exec,
            "DELETE FROM integration_logs WHERE (company_id = $1 OR company_id IS NULL) AND ( \
               request_body LIKE $2 ESCAPE '\\' OR response_body LIKE $2 ESCAPE '\\' \
               OR endpoint LIKE $3 ESCAPE '\\' OR endpoint LIKE $4 ESCAPE '\\')",
            company,
            &body,
            &tail,
            &query
        )?;
        n.outbox += q!(
            ex,
            exec,
            "DELETE FROM outbox WHERE company_id = $1 AND message_id IS NULL AND payload LIKE $2 ESCAPE '\\'",
            company,
            &body
        )?;
    }
    let receipts = format!(
        "DELETE FROM message_receipts WHERE company_id = $1 AND EXISTS (SELECT 1 FROM messages m \
         WHERE m.company_id = $1 AND m.customer_id IN {WHO} \
           AND m.channel_account_id = message_receipts.channel_account_id \
           AND m.external_id = message_receipts.external_id)"
    );
    n.receipts = q!(ex, exec, sqlx::AssertSqlSafe(receipts), company, root)?;
    // Queued sends of their messages go with the messages (cascade); count them first.
    let outbox = format!(
        "SELECT COUNT(*) FROM outbox WHERE company_id = $1 AND message_id IN \
         (SELECT id FROM messages WHERE company_id = $1 AND customer_id IN {WHO})"
    );
    n.outbox += q!(ex, scalar i64, sqlx::AssertSqlSafe(outbox), company, root)? as u64;
    let merges = format!(
        "DELETE FROM customer_merges WHERE company_id = $1 AND source_customer_id IN {WHO}"
    );
    q!(ex, exec, sqlx::AssertSqlSafe(merges), company, root)?;
    q!(
        ex,
        exec,
        "DELETE FROM customers WHERE company_id = $1 AND (id = $2 OR merged_into_id = $2)",
        company,
        root
    )?;
    Ok(n)
}

/// A deletion request as its status page and the API show it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct DeletionRequest {
    /// The opaque confirmation code.
    pub code: String,
    /// `api`, `page` or `meta`.
    pub source: String,
    /// `pending`, `completed` or `refused`.
    pub state: String,
    /// Why it was refused.
    pub reason: Option<String>,
    /// When it was asked for.
    pub requested_at: Timestamp,
    /// When it was carried out.
    pub completed_at: Option<Timestamp>,
    /// The company, while it exists (not shown).
    #[serde(skip)]
    pub company_id: Option<CompanyId>,
    /// The counts, as stored (JSON).
    #[serde(skip)]
    pub deleted: Option<String>,
}

impl DeletionRequest {
    /// What was deleted.
    pub fn counts(&self) -> Counts {
        self.deleted
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default()
    }
}

macro_rules! request_columns {
    () => {
        "code, source, state, reason, requested_at, completed_at, company_id, deleted \
         FROM deletion_requests"
    };
}

/// A request to write.
#[derive(Debug)]
pub struct NewRequest<'a> {
    /// The code.
    pub code: &'a str,
    /// The company (none when it spans several, or none matched).
    pub company_id: Option<CompanyId>,
    /// `api`, `page` or `meta`.
    pub source: &'a str,
    /// `pending`, `completed` or `refused`.
    pub state: &'a str,
    /// Why it was refused.
    pub reason: Option<&'a str>,
    /// What was deleted.
    pub deleted: &'a Counts,
    /// Unix ms.
    pub requested_at: i64,
    /// Unix ms, when finished.
    pub completed_at: Option<i64>,
}

/// Writes a deletion request.
pub async fn insert_request(ex: &mut Ex<'_>, r: &NewRequest<'_>) -> Result<()> {
    let deleted = serde_json::to_string(r.deleted).unwrap_or_else(|_| "{}".into());
    q!(
        ex,
        exec,
        "INSERT INTO deletion_requests (code, company_id, source, state, reason, deleted, \
           requested_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        r.code,
        r.company_id,
        r.source,
        r.state,
        r.reason,
        deleted,
        r.requested_at,
        r.completed_at
    )?;
    Ok(())
}

/// The request with `code`, whichever company (for the public status page).
pub async fn request_by_code(ex: &mut Ex<'_>, code: &str) -> Result<Option<DeletionRequest>> {
    let sql = concat!("SELECT ", request_columns!(), " WHERE code = $1");
    Ok(q!(ex, opt DeletionRequest, sql, code)?)
}

/// The request with `code` of `company`.
pub async fn company_request(
    ex: &mut Ex<'_>,
    company: CompanyId,
    code: &str,
) -> Result<Option<DeletionRequest>> {
    let sql = concat!(
        "SELECT ",
        request_columns!(),
        " WHERE code = $1 AND company_id = $2"
    );
    Ok(q!(ex, opt DeletionRequest, sql, code, company)?)
}

/// A Meta channel account (Messenger, Instagram, WhatsApp Cloud API) with its sealed credentials,
/// for matching a data-deletion callback to the app that signed it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MetaAccount {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// Sealed credentials.
    pub credentials: Option<String>,
}

/// Every Meta channel account of every company that is not yet deleted (closed ones included:
/// their data is still here until the purge).
pub async fn meta_accounts(ex: &mut Ex<'_>) -> Result<Vec<MetaAccount>> {
    Ok(q!(ex, all MetaAccount,
        "SELECT id, company_id, credentials FROM channel_accounts \
         WHERE kind IN ('messenger', 'instagram', 'whatsapp_cloud') ORDER BY id")?)
}

/// The customers (company, id) with an identity `external_id` on one of `accounts`.
pub async fn customers_by_external_id(
    ex: &mut Ex<'_>,
    accounts: &[i64],
    external_id: &str,
) -> Result<Vec<(CompanyId, i64)>> {
    let mut out = Vec::new();
    for account in accounts {
        let rows: Vec<(CompanyId, i64)> = q!(
            ex,
            all(CompanyId, i64),
            "SELECT company_id, customer_id FROM customer_identities \
             WHERE channel_account_id = $1 AND external_id = $2",
            account,
            external_id
        )?;
        for r in rows {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Marks `company` closed now, its data to be deleted at `delete_after`; false if it was not
/// active.
pub async fn close_company(
    ex: &mut Ex<'_>,
    company: CompanyId,
    now: i64,
    delete_after: i64,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "UPDATE companies SET status = 'closed', closed_at = $2, delete_after = $3, updated_at = $2 \
         WHERE id = $1 AND status = 'active'",
        company,
        now,
        delete_after
    )?;
    Ok(n == 1)
}

/// What ending a closed company's access removed.
#[derive(Clone, Copy, Debug, Default, Serialize, ToSchema)]
pub struct AccessEnded {
    /// Login sessions.
    pub sessions: u64,
    /// API tokens.
    pub api_tokens: u64,
    /// Open invitations.
    pub invitations: u64,
    /// SIP registrations of its users.
    pub sip_registrations: u64,
}

/// Deletes every session, API token, open invitation and SIP registration of `company`.
pub async fn end_access(ex: &mut Ex<'_>, company: CompanyId) -> Result<AccessEnded> {
    Ok(AccessEnded {
        sessions: q!(
            ex,
            exec,
            "DELETE FROM sessions WHERE company_id = $1",
            company
        )?,
        api_tokens: q!(
            ex,
            exec,
            "DELETE FROM api_tokens WHERE company_id = $1",
            company
        )?,
        invitations: q!(
            ex,
            exec,
            "DELETE FROM invitations WHERE company_id = $1 AND accepted_at IS NULL",
            company
        )?,
        sip_registrations: q!(
            ex,
            exec,
            "DELETE FROM sip_registrations WHERE company_id = $1",
            company
        )?,
    })
}

/// When a company's data is deleted: `(status, closed_at, delete_after)`.
pub async fn closure_of(
    ex: &mut Ex<'_>,
    company: CompanyId,
) -> Result<Option<(String, Option<i64>, Option<i64>)>> {
    Ok(q!(
        ex,
        opt(String, Option<i64>, Option<i64>),
        "SELECT status, closed_at, delete_after FROM companies WHERE id = $1",
        company
    )?)
}

/// Closed companies whose deletion is due at `now`.
pub async fn due_companies(ex: &mut Ex<'_>, now: i64) -> Result<Vec<CompanyId>> {
    Ok(q!(ex, scalars CompanyId,
        "SELECT id FROM companies WHERE status = 'closed' AND delete_after IS NOT NULL \
         AND delete_after <= $1 ORDER BY id", now)?)
}

/// What a company's deletion removed, for the log: counts only.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Purged {
    /// Users.
    pub users: u64,
    /// Customers.
    pub customers: u64,
    /// Messages.
    pub messages: u64,
    /// Calls.
    pub calls: u64,
    /// Recordings.
    pub recordings: u64,
    /// Channel accounts.
    pub channel_accounts: u64,
    /// Audit log entries.
    pub audit_logs: u64,
}

/// Deletes closed company `company` and, by cascade, everything of it (every table's
/// `company_id` references `companies` with `ON DELETE CASCADE`, except `deletion_requests`, which
/// keeps its row with no company so that a confirmation code still answers). Run it in a
/// transaction; `None` if the company is not closed (reopened, or already gone).
pub async fn delete_company(ex: &mut Ex<'_>, company: CompanyId) -> Result<Option<Purged>> {
    let closed = q!(ex, scalar_opt i64,
        "SELECT id FROM companies WHERE id = $1 AND status = 'closed'", company)?;
    if closed.is_none() {
        return Ok(None);
    }
    let mut p = Purged::default();
    for (table, slot) in [
        ("users", &mut p.users),
        ("customers", &mut p.customers),
        ("messages", &mut p.messages),
        ("calls", &mut p.calls),
        ("recordings", &mut p.recordings),
        ("channel_accounts", &mut p.channel_accounts),
        ("audit_logs", &mut p.audit_logs),
    ] {
        // The table names come from the fixed list above.
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE company_id = $1");
        *slot = q!(ex, scalar i64, sqlx::AssertSqlSafe(sql), company)? as u64;
    }
    q!(
        ex,
        exec,
        "DELETE FROM companies WHERE id = $1 AND status = 'closed'",
        company
    )?;
    Ok(Some(p))
}

/// SQLite: rewrites the knowledge-base full-text index without the entries of deleted passages
/// (an FTS5 delete only marks them, and their terms would stay in the index's pages until a
/// merge). PostgreSQL keeps its index in the row itself: nothing to do there.
pub async fn compact_search_index(ex: &mut Ex<'_>) -> Result<()> {
    if let Ex::Sqlite(c) = ex {
        sqlx::query("INSERT INTO kb_chunks_fts (kb_chunks_fts) VALUES ('optimize')")
            .execute(&mut **c)
            .await?;
    }
    Ok(())
}
