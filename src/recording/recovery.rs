//! Start-up recovery: after a crash (`kill -9`, power loss) the recordings that were being
//! written are repaired (their WAV header made to match the audio on disk) and closed, and the
//! calls that were in progress are ended with the reason "server restart".

use std::path::Path;

use crate::store::{self, Db};

/// Repairs and closes interrupted recordings, then ends interrupted calls. Runs before the SIP
/// stack starts, so nothing is in progress yet.
pub(crate) async fn recover(db: &Db, data_dir: &Path) -> anyhow::Result<()> {
    let mut conn = db.conn().await?;
    let unfinished = store::recordings::unfinished(&mut conn.ex()).await?;
    drop(conn);
    for r in unfinished {
        let path = data_dir.join(&r.path);
        let repaired = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || repair_file(&path)).await?
        };
        let (status, duration_ms, facts) = match repaired {
            Ok(duration_ms) => ("repaired", duration_ms, super::file_facts(&path)),
            Err(e) => {
                tracing::error!(recording = r.id, file = %path.display(), error = %e,
                    "an interrupted recording could not be repaired");
                ("failed", 0, None)
            }
        };
        let (size, sha) = facts.unzip();
        let mut conn = db.conn().await?;
        store::recordings::finish(
            &mut conn.ex(),
            r.id,
            &store::recordings::Finished {
                status,
                ended_at: store::now_ms(),
                duration_ms: i64::try_from(duration_ms).unwrap_or(i64::MAX),
                size_bytes: size.unwrap_or(0),
                sha256: sha.as_deref(),
                frames_dropped: 0,
            },
        )
        .await?;
        tracing::warn!(
            recording = r.id,
            call = r.call_id,
            status,
            duration_ms,
            "closed a recording interrupted by a restart"
        );
    }
    let mut conn = db.conn().await?;
    let ended = store::calls::end_interrupted(&mut conn.ex(), store::now_ms()).await?;
    if ended > 0 {
        tracing::warn!(
            calls = ended,
            "ended calls interrupted by a restart (reason \"server restart\")"
        );
    }
    Ok(())
}

/// Repairs the WAV at `path` in place; returns its audio length in ms.
fn repair_file(path: &Path) -> anyhow::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let r = masterz_recordings::repair(&mut f, len)?;
    if r.valid_len < len {
        f.set_len(r.valid_len)?;
    }
    f.sync_all()?;
    Ok(r.duration_ms)
}
