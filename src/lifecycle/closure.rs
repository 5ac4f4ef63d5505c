//! Closing a company (P20), and the purge job that deletes a closed company once its
//! `company_deletion_days` have passed.
//!
//! Closing stops every way in at once: the company is marked `closed` (logins, sessions, API
//! tokens and SIP REGISTERs of a closed company are refused by their queries), and its sessions,
//! API tokens, open invitations and SIP registrations are deleted in the same transaction. The
//! server then drops its agents' WebSockets and reloads the webhook routing map; the trunk
//! supervisor drops its trunks' registrations at its next poll (`sip_trunk_poll_secs`).
//!
//! The purge deletes the `companies` row: every table's `company_id` cascades (checked table by
//! table by the P20 test, which walks the whole schema), `deletion_requests` keeps its rows with
//! no company. Then the recording files queued by the `recordings` trigger are removed, and the
//! company's recordings directory with anything left in it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::erase::{Place, remove_files};
use crate::domain::CompanyId;
use crate::http::AppState;
use crate::store::deletion::{self, AccessEnded, Purged};
use crate::store::{self, Db, audit, audit::Actor};

/// How often the purge job looks for companies due.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// What closing a company did.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Closure {
    /// When it was closed (Unix ms).
    pub closed_at: i64,
    /// When its data will be deleted (Unix ms); the purge job runs hourly.
    pub delete_after: i64,
    /// The access that ended at once.
    pub access_ended: AccessEnded,
}

/// Closes `company` with its data to be deleted `days` days from now. `None` if it is not
/// active. Audited as `actor`. Run [`after_close`] next when inside the server.
pub async fn close(
    db: &Db,
    company: CompanyId,
    days: u64,
    actor: &Actor,
) -> store::Result<Option<Closure>> {
    let closed_at = store::now_ms();
    let period = i64::try_from(days)
        .unwrap_or(i64::MAX)
        .saturating_mul(86_400_000);
    let delete_after = closed_at.saturating_add(period);
    let mut tx = db.begin().await?;
    if !deletion::close_company(&mut tx.ex(), company, closed_at, delete_after).await? {
        return Ok(None);
    }
    let access_ended = deletion::end_access(&mut tx.ex(), company).await?;
    audit::record(
        &mut tx.ex(),
        company,
        actor,
        "close",
        "company",
        Some(company.0),
        &serde_json::json!({
            "delete_after": delete_after,
            "deletion_days": days,
            "access_ended": access_ended,
        }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%company, days, "company closed");
    Ok(Some(Closure {
        closed_at,
        delete_after,
        access_ended,
    }))
}

/// The in-memory side of a closure: the company's agent WebSockets are closed, the webhook
/// routing map reloads without its channels, and the purge runs now if it is already due.
pub fn after_close(state: &Arc<AppState>, company: CompanyId, closure: &Closure) {
    state.agents.disconnect_company(company);
    state.messaging.directory.invalidate();
    if closure.delete_after <= store::now_ms() {
        kick(state.clone());
    }
}

/// One purge at a time per process: the hourly job and a kick must not both delete a company's
/// directory while the other is still reaping it.
static PURGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Deletes every closed company whose deletion is due; returns what each purge removed.
pub async fn purge_due(place: Place<'_>) -> store::Result<Vec<(CompanyId, Purged)>> {
    let _one = PURGING.lock().await;
    let due = {
        let mut conn = place.db.conn().await?;
        deletion::due_companies(&mut conn.ex(), store::now_ms()).await?
    };
    let mut out = Vec::with_capacity(due.len());
    for company in due {
        let purged = {
            let _turn = match place.gate {
                Some(g) => Some(g.background_turn(place.db).await),
                None => None,
            };
            let mut tx = place.db.begin().await?;
            let purged = deletion::delete_company(&mut tx.ex(), company).await?;
            tx.commit().await?;
            purged
        };
        let Some(purged) = purged else { continue };
        {
            let mut conn = place.db.conn().await?;
            deletion::compact_search_index(&mut conn.ex()).await?;
        }
        remove_files(place).await;
        remove_company_dir(place.data_dir, company).await;
        tracing::info!(
            %company,
            users = purged.users,
            customers = purged.customers,
            messages = purged.messages,
            calls = purged.calls,
            recordings = purged.recordings,
            channel_accounts = purged.channel_accounts,
            audit_logs = purged.audit_logs,
            "closed company deleted"
        );
        out.push((company, purged));
    }
    Ok(out)
}

/// Removes `<data_dir>/recordings/<company id>` with whatever is left in it (a file whose row
/// never made it, an empty day directory), and any export archive of the company that a crash
/// left in `<data_dir>/exports/` (`export-<company id>-<random>.tar.gz`).
async fn remove_company_dir(data_dir: &Path, company: CompanyId) {
    let prefix = format!("export-{}-", company.0);
    if let Ok(mut entries) = tokio::fs::read_dir(data_dir.join("exports")).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.file_name().to_string_lossy().starts_with(&prefix)
                && let Err(e) = tokio::fs::remove_file(entry.path()).await
            {
                tracing::warn!(%company, file = %entry.path().display(), error = %e, "cannot remove a left-over export");
            }
        }
    }
    let dir = data_dir.join("recordings").join(company.0.to_string());
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => tracing::info!(%company, "removed the company's recordings directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(%company, dir = %dir.display(), error = %e, "cannot remove the recordings directory")
        }
    }
}

fn place(state: &AppState) -> Place<'_> {
    Place {
        db: &state.db,
        data_dir: &state.config.data_dir,
        gate: Some(&state.messaging.gate),
    }
}

async fn purge_logged(state: &AppState) {
    if let Err(e) = purge_due(place(state)).await {
        tracing::warn!(error = %e, "deleting closed companies failed; retrying at the next run");
    }
}

/// Runs a purge now, in the background.
pub fn kick(state: Arc<AppState>) {
    tokio::spawn(async move { purge_logged(&state).await });
}

/// Starts the purge job: at start-up, then hourly.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            purge_logged(&state).await;
        }
    });
}
