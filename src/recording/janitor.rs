//! Retention and removal: deletes recordings older than their company's
//! `recording_retention_days`, and removes the files of every deleted recording (queued by the
//! database trigger, whatever deleted the row: retention, the API, a customer's or company's
//! deletion).

use std::path::Path;
use std::time::Duration;

use crate::store::{self, Db};

/// How often the removal queue is looked at.
const REAP_EVERY: Duration = Duration::from_secs(2);

pub(super) async fn run(db: Db, data_dir: std::path::PathBuf, retention_every: Duration) {
    let mut next_retention = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_retention {
            next_retention += retention_every.max(Duration::from_secs(1));
            if let Err(e) = retention(&db).await {
                tracing::warn!(error = %e, "recording retention failed; retrying later");
            }
        }
        if let Err(e) = reap(&db, &data_dir).await {
            tracing::warn!(error = %e, "removing deleted recordings failed; retrying later");
        }
        tokio::time::sleep(REAP_EVERY).await;
    }
}

async fn retention(db: &Db) -> store::Result<()> {
    let mut conn = db.conn().await?;
    let n = store::recordings::delete_expired(&mut conn.ex(), store::now_ms()).await?;
    if n > 0 {
        tracing::info!(recordings = n, "deleted recordings past their retention");
    }
    Ok(())
}

/// Removes the queued files; a file already gone counts as removed.
pub(crate) async fn reap(db: &Db, data_dir: &Path) -> store::Result<usize> {
    let mut removed = 0;
    loop {
        let mut conn = db.conn().await?;
        let batch = store::recordings::pending_deletions(&mut conn.ex(), 100).await?;
        drop(conn);
        if batch.is_empty() {
            return Ok(removed);
        }
        for d in batch {
            let path = data_dir.join(&d.path);
            // Only paths under recordings/ are ever queued; refuse anything else.
            if !is_recording_path(&d.path) {
                tracing::error!(
                    path = d.path,
                    "refusing to remove a file outside recordings/"
                );
            } else {
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "cannot remove a deleted recording");
                        return Ok(removed);
                    }
                }
            }
            let mut conn = db.conn().await?;
            store::recordings::deletion_done(&mut conn.ex(), d.id).await?;
        }
    }
}

fn is_recording_path(p: &str) -> bool {
    let path = Path::new(p);
    path.starts_with("recordings")
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::is_recording_path;

    #[test]
    fn only_relative_paths_under_recordings_are_removed() {
        assert!(is_recording_path("recordings/1/2026/11/25/call-3.wav"));
        assert!(!is_recording_path("recordings/../app.key"));
        assert!(!is_recording_path("/etc/passwd"));
        assert!(!is_recording_path("masterz.db"));
    }
}
