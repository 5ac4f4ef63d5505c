//! One customer's data as a JSON document: what the business hands an end user who asks for
//! their data (P26). The same columns as the company export ([`super::entities`]), selected by
//! customer and nested: conversations with their messages, calls with their events and
//! recording (metadata and where to download the audio).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::entities::{ENTITIES, Entity};
use super::rows::{Pager, to_object};
use super::{ExportError, snapshot};
use crate::store::companies::Company;
use crate::store::{Db, Ex, now_ms};

/// The format name of the document.
pub const FORMAT: &str = "masterz-customer-export";

/// One customer's data. Timestamps are Unix milliseconds (UTC); ids are the server's.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerExport {
    /// `masterz-customer-export`.
    pub format: &'static str,
    /// The format version (1).
    pub format_version: u32,
    /// When the document was made.
    pub exported_at: i64,
    /// The company holding the data: `id`, `slug`, `name`.
    #[schema(value_type = Object)]
    pub company: Value,
    /// The profile: `id`, `display_name`, `avatar_url`, `locale`, `merged_into_id`, times.
    #[schema(value_type = Object)]
    pub customer: Map<String, Value>,
    /// The identities that reach the customer: phone numbers, channel ids, SIP URIs.
    #[schema(value_type = Vec<Object>)]
    pub identities: Vec<Map<String, Value>>,
    /// Customers merged into this one (their data is here now).
    #[schema(value_type = Vec<Object>)]
    pub merges: Vec<Map<String, Value>>,
    /// Conversations, each with its `messages` in order.
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<Map<String, Value>>,
    /// Calls, each with its `events` and its `recording` (or `null`): the recording's metadata
    /// and `url`, where the audio is downloaded with the same credentials.
    #[schema(value_type = Vec<Object>)]
    pub calls: Vec<Map<String, Value>>,
    /// Internal notes about the customer.
    #[schema(value_type = Vec<Object>)]
    pub notes: Vec<Map<String, Value>>,
    /// AI reply suggestions for the customer's messages, each with its `context`: exactly the
    /// messages and knowledge-base passages that were sent to the model.
    #[schema(value_type = Vec<Object>)]
    pub ai_suggestions: Vec<Map<String, Value>>,
}

fn entity(name: &str) -> &'static Entity {
    ENTITIES
        .iter()
        .find(|e| e.name == name)
        // The names below are entities of the static list; a test exports a customer.
        .unwrap_or_else(|| unreachable!("no export entity {name}"))
}

/// Every row of entity `name` of the company that meets `condition` on `$2` = `value`.
async fn all(
    ex: &mut Ex<'_>,
    company: &Company,
    name: &str,
    condition: &'static str,
    value: i64,
) -> Result<Vec<Map<String, Value>>, ExportError> {
    let mut pager = Pager::filtered(entity(name), condition, value);
    let mut out = Vec::new();
    loop {
        let page = pager.next(ex, company.id).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page.into_iter().map(to_object));
    }
}

/// Groups `rows` by their integer field `field`.
fn by(rows: Vec<Map<String, Value>>, field: &str) -> BTreeMap<i64, Vec<Map<String, Value>>> {
    let mut out: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    for row in rows {
        let key = row.get(field).and_then(Value::as_i64).unwrap_or_default();
        out.entry(key).or_default().push(row);
    }
    out
}

/// The export of customer `id` of `company`, read in one snapshot; `None` if the company has no
/// such customer. `recording_url` makes the download URL of a recording from its id.
pub async fn customer_export(
    db: &Db,
    company: &Company,
    id: i64,
    recording_url: impl Fn(i64) -> String,
) -> Result<Option<CustomerExport>, ExportError> {
    let mut tx = snapshot(db).await?;
    let ex = &mut tx.ex();
    let Some(customer) = all(ex, company, "customers", "id = $2", id)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let identities = all(ex, company, "customer_identities", "customer_id = $2", id).await?;
    let merges = all(
        ex,
        company,
        "customer_merges",
        "target_customer_id = $2",
        id,
    )
    .await?;
    let mut messages = by(
        all(ex, company, "messages", "customer_id = $2", id).await?,
        "conversation_id",
    );
    let conversations = all(ex, company, "conversations", "customer_id = $2", id)
        .await?
        .into_iter()
        .map(|mut c| {
            let key = c.get("id").and_then(Value::as_i64).unwrap_or_default();
            let list = messages.remove(&key).unwrap_or_default();
            c.insert(
                "messages".into(),
                list.into_iter().map(Value::Object).collect(),
            );
            c
        })
        .collect();
    const OF_CALLS: &str =
        "call_id IN (SELECT id FROM calls WHERE company_id = $1 AND customer_id = $2)";
    let mut events = by(
        all(ex, company, "call_events", OF_CALLS, id).await?,
        "call_id",
    );
    let mut recordings = by(
        all(ex, company, "recordings", OF_CALLS, id).await?,
        "call_id",
    );
    let calls = all(ex, company, "calls", "customer_id = $2", id)
        .await?
        .into_iter()
        .map(|mut c| {
            let key = c.get("id").and_then(Value::as_i64).unwrap_or_default();
            let list = events.remove(&key).unwrap_or_default();
            c.insert(
                "events".into(),
                list.into_iter().map(Value::Object).collect(),
            );
            // One recording per call (a unique column).
            let recording = recordings
                .remove(&key)
                .and_then(|r| r.into_iter().next())
                .map(|mut r| {
                    // Where the file lies on the server is not the customer's business.
                    r.remove("path");
                    let rid = r.get("id").and_then(Value::as_i64).unwrap_or_default();
                    r.insert("url".into(), recording_url(rid).into());
                    Value::Object(r)
                });
            c.insert("recording".into(), recording.unwrap_or(Value::Null));
            c
        })
        .collect();
    let notes = all(ex, company, "notes", "customer_id = $2", id).await?;
    let ai_suggestions = all(ex, company, "ai_suggestions", "customer_id = $2", id).await?;
    Ok(Some(CustomerExport {
        format: FORMAT,
        format_version: super::FORMAT_VERSION,
        exported_at: now_ms(),
        company: serde_json::json!({"id": company.id, "slug": company.slug, "name": company.name}),
        customer,
        identities,
        merges,
        conversations,
        calls,
        notes,
        ai_suggestions,
    }))
}
