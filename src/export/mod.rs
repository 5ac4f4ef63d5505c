//! Data export (privacy promise P26): a company's data as one `.tar.gz` archive, and one
//! customer's data as a JSON document.
//!
//! The archive holds one JSON Lines file per entity ([`entities::ENTITIES`]), the recording files
//! under `recordings/`, the consent prompts under `prompts/`, and `manifest.json` (format version,
//! company, time, rows per entity, every file with its size and SHA-256). Secrets never leave:
//! encrypted columns, password hashes and token hashes are not read at all (see `docs/export.md`).
//!
//! Rows are read a page at a time inside one read-only snapshot, so the archive is consistent and
//! memory stays flat however large the company; the archive is written to a temporary file beside
//! the destination and renamed into place once complete and synced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod archive;
pub mod customer;
pub mod entities;
mod rows;

pub use archive::FORMAT_VERSION;

use crate::store::companies::Company;
use crate::store::{Db, StoreError, Tx, now_ms};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot write`, …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A recording file got shorter while it was being archived.
    #[error("recording file {0} changed while it was being archived")]
    Changed(String),
    /// The worker thread that packs the archive stopped.
    #[error("the archive writer stopped: {0}")]
    Worker(String),
}

impl ExportError {
    fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

impl From<sqlx::Error> for ExportError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// How far an export is.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// `rows` rows of `entity` (number `index` of `of`, from 0) written so far.
    Rows {
        /// The entity.
        entity: &'a str,
        /// Its position.
        index: usize,
        /// How many entities there are.
        of: usize,
        /// Rows so far.
        rows: u64,
        /// Whether every row of the entity is written.
        finished: bool,
    },
    /// `done` of `of` files are in the archive, `bytes` bytes of content (before compression).
    Packing {
        /// Files packed.
        done: usize,
        /// Files to pack, the manifest included.
        of: usize,
        /// Content bytes so far.
        bytes: u64,
    },
}

/// Receives [`Progress`] reports; called from the task and the thread that build the archive.
pub type ProgressFn = dyn Fn(Progress<'_>) + Send + Sync;

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Entities (JSON Lines files).
    pub entities: usize,
    /// Rows over all entities.
    pub rows: u64,
    /// Files in the archive: entity files, audio files and the manifest.
    pub files: usize,
    /// Size of the archive (compressed).
    pub bytes: u64,
    /// Where it is.
    pub path: PathBuf,
}

/// Writes the export of `company` to `out`, atomically: a temporary file beside `out` is renamed
/// over it once complete and synced. `data_dir` is where the recording files are. Staging files go
/// into a temporary directory beside `out` and are removed whatever happens.
pub async fn write_company_archive(
    db: &Db,
    data_dir: &Path,
    company: &Company,
    out: &Path,
    progress: Arc<ProgressFn>,
) -> Result<Summary, ExportError> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            ExportError::io(
                "cannot write",
                out,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tag = random_tag();
    let temp = Temporary {
        stage: dir.join(format!(".{name}.{tag}.staging")),
        partial: dir.join(format!(".{name}.{tag}.partial")),
    };
    // The staging directory is created first: an unwritable destination fails here, at once.
    create_private_dir(&temp.stage)?;
    let created_at = now_ms();
    let staged = {
        let mut snapshot = snapshot(db).await?;
        archive::dump(
            &mut snapshot.ex(),
            company,
            data_dir,
            &temp.stage,
            &*progress,
        )
        .await?
        // Dropped: the read-only transaction ends (a rollback changes nothing).
    };
    let job = archive::PackJob {
        company: company.clone(),
        created_at,
        stage: temp.stage.clone(),
        data_dir: data_dir.to_owned(),
        partial: temp.partial.clone(),
        staged,
        progress,
    };
    let (job, packed) = tokio::task::spawn_blocking(move || {
        let packed = archive::pack(&job);
        (job, packed)
    })
    .await
    .map_err(|e| ExportError::Worker(e.to_string()))?;
    let packed = packed?;
    std::fs::rename(&temp.partial, out).map_err(|e| ExportError::io("cannot write", out, e))?;
    // The rename is durable once the directory is synced (best effort: not every filesystem
    // lets a directory be opened).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(Summary {
        entities: job.staged.entities.len(),
        rows: job.staged.entities.iter().map(|e| e.rows).sum(),
        files: packed.files,
        bytes: packed.bytes,
        path: out.to_owned(),
    })
}

/// A read-only transaction that sees one state of the database throughout.
///
/// SQLite: a deferred transaction holds its WAL snapshot from the first read and blocks no
/// writer. PostgreSQL: `REPEATABLE READ` sees the state at the first statement.
async fn snapshot(db: &Db) -> Result<Tx, ExportError> {
    Ok(match db {
        Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN DEFERRED").await?),
        Db::Postgres(p) => Tx::Postgres(
            p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?,
        ),
    })
}

/// The temporary files of one export, removed when it ends (the archive is renamed away first
/// when it succeeds).
struct Temporary {
    stage: PathBuf,
    partial: PathBuf,
}

impl Drop for Temporary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.stage);
        let _ = std::fs::remove_file(&self.partial);
    }
}

fn create_private_dir(path: &Path) -> Result<(), ExportError> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|e| ExportError::io("cannot write to", path.parent().unwrap_or(path), e))
}

/// A random name part, so two exports to the same place do not meet.
fn random_tag() -> String {
    let mut b = [0u8; 6];
    // Without randomness the process id still tells concurrent processes apart.
    if getrandom::fill(&mut b).is_err() {
        b[..4].copy_from_slice(&std::process::id().to_le_bytes());
    }
    hex::encode(b)
}
