//! Erasing customers: the one path behind `DELETE /api/v1/customers/{id}`,
//! `POST /api/v1/customers/{id}/deletion` and Meta's data-deletion callback.
//!
//! One transaction deletes every customer asked for (see [`store::deletion::erase_customer`] for
//! what goes with each), writes one audit entry per company and the `deletion_requests` row with
//! its confirmation code; after the commit the queued recording files are removed at once
//! (instead of at the reaper's next round).

use std::path::Path;

use crate::domain::CompanyId;
use crate::messaging::ingest::WriteGate;
use crate::store::deletion::{self, Counts, DeletionRequest, NewRequest};
use crate::store::{self, Db, audit, audit::Actor};

/// Who asked for a deletion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A user of the company through the API.
    Api,
    /// Meta's data-deletion callback.
    Meta,
}

impl Source {
    /// As stored in `deletion_requests.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Meta => "meta",
        }
    }
}

/// A new confirmation code: 96 random bits, hex. Opaque: it says nothing about the company or
/// the person, and cannot be guessed.
pub fn new_code() -> store::Result<String> {
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|_| crate::secrets::SecretError::Rng)?;
    Ok(hex::encode(raw))
}

/// Whether `code` could be one of ours (hex, as [`new_code`] makes); anything else is not looked
/// up at all.
pub fn plausible_code(code: &str) -> bool {
    (8..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where erasure runs: the database, the data directory (recording files), and the messaging
/// write gate (SQLite: take turns with the webhook committer instead of meeting it in the busy
/// handler).
#[derive(Clone, Copy)]
pub struct Place<'a> {
    /// The database.
    pub db: &'a Db,
    /// The data directory.
    pub data_dir: &'a Path,
    /// The messaging bridge's write gate, when running inside the server.
    pub gate: Option<&'a WriteGate>,
}

/// Erases `customers` (pairs of company and customer id; merged customers are followed to the
/// survivor) and records the request; returns it. `request_company` is the company the request
/// belongs to (`None`: it spans several companies, or matched none). Audited in each company as
/// `actor`.
pub async fn erase(
    place: Place<'_>,
    customers: &[(CompanyId, i64)],
    request_company: Option<CompanyId>,
    source: Source,
    actor: &Actor,
) -> store::Result<DeletionRequest> {
    let code = new_code()?;
    let requested_at = store::now_ms();
    let mut total = Counts::default();
    {
        let _turn = match place.gate {
            Some(g) => Some(g.background_turn(place.db).await),
            None => None,
        };
        let mut tx = place.db.begin().await?;
        let mut done: Vec<(CompanyId, i64)> = Vec::new();
        for &(company, id) in customers {
            let Some(root) = deletion::surviving_customer(&mut tx.ex(), company, id).await? else {
                continue;
            };
            if done.contains(&(company, root)) {
                continue;
            }
            done.push((company, root));
            let counts = deletion::erase_customer(&mut tx.ex(), company, root).await?;
            total.add(&counts);
            audit::record(
                &mut tx.ex(),
                company,
                actor,
                "erase",
                "customer",
                Some(root),
                &serde_json::json!({
                    "source": source.as_str(),
                    "confirmation_code": code,
                    "deleted": counts,
                }),
            )
            .await?;
        }
        deletion::insert_request(
            &mut tx.ex(),
            &NewRequest {
                code: &code,
                company_id: request_company,
                source: source.as_str(),
                state: "completed",
                reason: None,
                deleted: &total,
                requested_at,
                completed_at: Some(store::now_ms()),
            },
        )
        .await?;
        tx.commit().await?;
    }
    if total.recordings > 0 {
        remove_files(place).await;
    }
    tracing::info!(
        source = source.as_str(),
        customers = total.customers,
        messages = total.messages,
        calls = total.calls,
        recordings = total.recordings,
        integration_logs = total.integration_logs,
        "customer data erased"
    );
    let mut conn = place.db.conn().await?;
    deletion::request_by_code(&mut conn.ex(), &code)
        .await?
        .ok_or_else(|| store::StoreError::Database(sqlx::Error::RowNotFound))
}

/// Removes the files of deleted recordings now. A failure is logged; the reaper retries.
pub(super) async fn remove_files(place: Place<'_>) {
    match crate::recording::janitor::reap(place.db, place.data_dir).await {
        Ok(n) if n > 0 => tracing::info!(files = n, "removed deleted recording files"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "removing recording files failed; the reaper retries"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_opaque_and_recognised() {
        let a = new_code().expect("a random code");
        let b = new_code().expect("a random code");
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(plausible_code(&a));
        assert!(!plausible_code("../etc"));
        assert!(!plausible_code("abc"));
        assert!(!plausible_code(&"a".repeat(65)));
    }
}
