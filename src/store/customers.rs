//! Customers and their identities; search; merge.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, UserId, like_pattern, now_ms, q};
use crate::domain::Timestamp;

/// A customer of a company: a person who calls or writes.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Customer {
    /// Id.
    pub id: i64,
    /// Display name.
    pub display_name: Option<String>,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// Locale, e.g. `de_DE`.
    pub locale: Option<String>,
    /// Set when this customer was merged into another; follow it.
    pub merged_into_id: Option<i64>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

macro_rules! customer_columns {
    () => {
        "id, display_name, avatar_url, locale, merged_into_id, created_at, updated_at"
    };
}

/// One way to reach a customer: an id on a channel.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Identity {
    /// Id.
    pub id: i64,
    /// Customer.
    pub customer_id: i64,
    /// Kind: `psid`, `igsid`, `wa_id`, `whatsapp_bsuid`, `waha_chat_id`, `sip_uri` or `phone`.
    pub kind: String,
    /// The channel account it belongs to (none for phone numbers).
    pub channel_account_id: Option<i64>,
    /// The id on the channel (E.164 for phones).
    pub external_id: String,
    /// Name as the channel gave it.
    pub display_name: Option<String>,
    /// Picture as the channel gave it.
    pub avatar_url: Option<String>,
    /// Locale as the channel gave it.
    pub locale: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last refreshed.
    pub updated_at: Timestamp,
}

macro_rules! identity_columns {
    () => {
        "id, customer_id, kind, channel_account_id, external_id, \
     display_name, avatar_url, locale, created_at, updated_at"
    };
}

/// Profile fields of a customer or identity.
#[derive(Debug, Default, Clone)]
pub struct Profile {
    /// Display name.
    pub display_name: Option<String>,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// Locale.
    pub locale: Option<String>,
}

/// Creates a customer.
pub async fn create(ex: &mut Ex<'_>, company: CompanyId, profile: &Profile) -> Result<Customer> {
    let now = now_ms();
    let id = q!(ex, scalar i64,
        "INSERT INTO customers (company_id, display_name, avatar_url, locale, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        company, profile.display_name.as_deref(), profile.avatar_url.as_deref(),
        profile.locale.as_deref(), now)?;
    get(ex, company, id)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

/// The customer `id` of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Customer>> {
    let sql = concat!(
        "SELECT ",
        customer_columns!(),
        " FROM customers WHERE company_id = $1 AND id = $2"
    );
    Ok(q!(ex, opt Customer, sql, company, id)?)
}

/// Lists the company's customers (merged ones excluded), newest first, `limit` at a time after
/// the cursor `before_id`; `search` matches the name or any identity's external id.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    search: Option<&str>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Customer>> {
    let pattern = search.map(like_pattern);
    let sql = concat!(
        "SELECT ",
        customer_columns!(),
        " FROM customers c WHERE c.company_id = $1 AND c.merged_into_id IS NULL \
         AND (CAST($2 AS BIGINT) IS NULL OR c.id < $2) \
         AND (CAST($3 AS TEXT) IS NULL OR LOWER(COALESCE(c.display_name, '')) LIKE $3 ESCAPE '\\' OR EXISTS ( \
             SELECT 1 FROM customer_identities i WHERE i.customer_id = c.id AND i.company_id = $1 \
             AND (LOWER(i.external_id) LIKE $3 ESCAPE '\\' OR LOWER(COALESCE(i.display_name, '')) LIKE $3 ESCAPE '\\'))) \
         ORDER BY c.id DESC LIMIT $4"
    );
    Ok(q!(ex, all Customer, sql, company, before_id, pattern, limit)?)
}

/// Changes profile fields: `Some(None)` clears one, `None` keeps it.
pub async fn update(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    display_name: Option<Option<String>>,
    avatar_url: Option<Option<String>>,
    locale: Option<Option<String>>,
) -> Result<Option<Customer>> {
    let n = q!(
        ex,
        exec,
        "UPDATE customers SET \
           display_name = CASE WHEN $3 THEN $4 ELSE display_name END, \
           avatar_url = CASE WHEN $5 THEN $6 ELSE avatar_url END, \
           locale = CASE WHEN $7 THEN $8 ELSE locale END, updated_at = $9 \
         WHERE company_id = $1 AND id = $2",
        company,
        id,
        display_name.is_some(),
        display_name.flatten(),
        avatar_url.is_some(),
        avatar_url.flatten(),
        locale.is_some(),
        locale.flatten(),
        now_ms()
    )?;
    if n == 0 {
        return Ok(None);
    }
    get(ex, company, id).await
}

/// Deletes a customer with everything that hangs on it (identities, conversations, messages,
/// calls, notes go by cascade).
pub async fn delete(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<bool> {
    // Customers merged into this one point at it; they are tombstones of the same person.
    q!(
        ex,
        exec,
        "DELETE FROM customers WHERE company_id = $1 AND merged_into_id = $2",
        company,
        id
    )?;
    let n = q!(
        ex,
        exec,
        "DELETE FROM customers WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// The identities of a customer.
pub async fn identities(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
) -> Result<Vec<Identity>> {
    let sql = concat!(
        "SELECT ",
        identity_columns!(),
        " FROM customer_identities WHERE company_id = $1 AND customer_id = $2 ORDER BY id"
    );
    Ok(q!(ex, all Identity, sql, company, customer)?)
}

/// The identity `(kind, channel account, external id)` of `company`, if known.
pub async fn find_identity(
    ex: &mut Ex<'_>,
    company: CompanyId,
    kind: &str,
    channel_account: Option<i64>,
    external_id: &str,
) -> Result<Option<Identity>> {
    let sql = concat!(
        "SELECT ",
        identity_columns!(),
        " FROM customer_identities WHERE company_id = $1 AND kind = $2 \
         AND COALESCE(channel_account_id, 0) = COALESCE(CAST($3 AS BIGINT), 0) AND external_id = $4"
    );
    Ok(q!(ex, opt Identity, sql, company, kind, channel_account, external_id)?)
}

/// Adds an identity to a customer. A duplicate `(kind, account, external id)` is a conflict.
pub async fn add_identity(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    kind: &str,
    channel_account: Option<i64>,
    external_id: &str,
    profile: &Profile,
) -> Result<Identity> {
    let now = now_ms();
    let id = q!(ex, scalar i64,
        "INSERT INTO customer_identities (company_id, customer_id, kind, channel_account_id, external_id, \
           display_name, avatar_url, locale, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
        company, customer, kind, channel_account, external_id, profile.display_name.as_deref(),
        profile.avatar_url.as_deref(), profile.locale.as_deref(), now)?;
    let sql = concat!(
        "SELECT ",
        identity_columns!(),
        " FROM customer_identities WHERE id = $1"
    );
    Ok(q!(ex, one Identity, sql, id)?)
}

/// Removes an identity of a customer.
pub async fn delete_identity(
    ex: &mut Ex<'_>,
    company: CompanyId,
    customer: i64,
    identity: i64,
) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM customer_identities WHERE company_id = $1 AND customer_id = $2 AND id = $3",
        company,
        customer,
        identity
    )?;
    Ok(n > 0)
}

/// What a merge moved, remembered in `customer_merges`.
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct MergeCounts {
    /// Identities moved.
    pub identities: u64,
    /// Conversations moved.
    pub conversations: u64,
    /// Messages moved.
    pub messages: u64,
    /// Calls moved.
    pub calls: u64,
    /// Notes moved.
    pub notes: u64,
}

/// Merges `source` into `target` (both of `company`): moves identities, conversations, messages,
/// calls and notes, fills the target's empty profile fields from the source, marks the source as
/// merged and records the merge. Run it in a transaction.
pub async fn merge(
    ex: &mut Ex<'_>,
    company: CompanyId,
    target: i64,
    source: i64,
    by: Option<UserId>,
) -> Result<MergeCounts> {
    let mut moved = MergeCounts::default();
    for (table, slot) in [
        ("customer_identities", &mut moved.identities),
        ("conversations", &mut moved.conversations),
        ("messages", &mut moved.messages),
        ("calls", &mut moved.calls),
        ("notes", &mut moved.notes),
    ] {
        let sql = format!(
            "UPDATE {table} SET customer_id = $3 WHERE company_id = $1 AND customer_id = $2"
        );
        // The table names come from the fixed list above, never from input.
        *slot = q!(
            ex,
            exec,
            sqlx::AssertSqlSafe(sql.clone()),
            company,
            source,
            target
        )?;
    }
    let now = now_ms();
    q!(
        ex,
        exec,
        "UPDATE customers SET \
           display_name = COALESCE(display_name, (SELECT display_name FROM customers WHERE id = $3)), \
           avatar_url = COALESCE(avatar_url, (SELECT avatar_url FROM customers WHERE id = $3)), \
           locale = COALESCE(locale, (SELECT locale FROM customers WHERE id = $3)), updated_at = $4 \
         WHERE company_id = $1 AND id = $2",
        company,
        target,
        source,
        now
    )?;
    // Earlier merges into the source now point at the target.
    q!(
        ex,
        exec,
        "UPDATE customers SET merged_into_id = $2, updated_at = $4 WHERE company_id = $1 AND (id = $3 OR merged_into_id = $3)",
        company,
        target,
        source,
        now
    )?;
    let moved_json = serde_json::to_string(&moved).unwrap_or_else(|_| "{}".into());
    q!(
        ex,
        exec,
        "INSERT INTO customer_merges (company_id, source_customer_id, target_customer_id, merged_by, moved, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        company,
        source,
        target,
        by,
        moved_json,
        now
    )?;
    Ok(moved)
}

/// The customer with the phone number `e164` (an identity of kind `phone`, no channel account),
/// created with the number as display name if there is none; returns its id.
///
/// Safe against a concurrent caller creating the same number: the identity insert does nothing
/// on the unique key `customer_identities_key`, and then the winner's customer is read back and
/// the customer made here is removed. Run it in a transaction, so that customer and identity
/// appear together.
pub async fn find_or_create_by_phone(
    ex: &mut Ex<'_>,
    company: CompanyId,
    e164: &str,
) -> Result<i64> {
    let kind = crate::domain::IdentityKind::Phone.as_str();
    if let Some(found) = find_identity(ex, company, kind, None, e164).await? {
        return Ok(found.customer_id);
    }
    let now = now_ms();
    let customer = q!(ex, scalar i64,
        "INSERT INTO customers (company_id, display_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $3) RETURNING id",
        company, e164, now)?;
    // `DO NOTHING` rather than catching the violation: in PostgreSQL a failed statement aborts
    // the transaction, and the re-read below must still run.
    let inserted = q!(ex, scalar_opt i64,
        "INSERT INTO customer_identities (company_id, customer_id, kind, channel_account_id, \
           external_id, created_at, updated_at) VALUES ($1, $2, $3, NULL, $4, $5, $5) \
         ON CONFLICT DO NOTHING RETURNING id",
        company, customer, kind, e164, now)?;
    if inserted.is_some() {
        return Ok(customer);
    }
    q!(
        ex,
        exec,
        "DELETE FROM customers WHERE company_id = $1 AND id = $2",
        company,
        customer
    )?;
    find_identity(ex, company, kind, None, e164)
        .await?
        .map(|i| i.customer_id)
        .ok_or_else(|| {
            StoreError::Conflict(format!("phone identity of company {company} vanished"))
        })
}
