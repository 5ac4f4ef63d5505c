//! Building the archive in two steps.
//!
//! 1. **Dump** (async, on the database): inside one read-only snapshot, every entity is paged
//!    into a JSON Lines file of a staging directory, hashed as it is written. The recording files
//!    and consent prompts the rows name are listed in a staging file, not held in memory.
//! 2. **Pack** (blocking, on a worker thread): the staged files, then the listed audio files,
//!    then `manifest.json` go into a gzip-compressed tar. A tar header states its entry's size
//!    before the data, which is why the JSON Lines files are staged first: their size is known
//!    only once written. The manifest comes last because it holds the audio files' digests,
//!    computed while they are packed (one read per file).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::entities::{ENTITIES, EXCLUDED_TABLES, Entity, PROMPTS, RECORDINGS};
use super::rows::{Pager, write_line};
use super::{ExportError, Progress, ProgressFn};
use crate::store::companies::Company;
use crate::store::{Ex, q};

/// The archive format this code writes; a reader checks it before anything else.
pub const FORMAT_VERSION: u32 = 1;

/// The list of audio files to pack, in the staging directory (not part of the archive).
const FILE_LIST: &str = "files.list";

/// One staged entity file.
#[derive(Debug, Serialize)]
pub(super) struct EntityFile {
    name: &'static str,
    file: String,
    pub(super) rows: u64,
    #[serde(skip)]
    size: u64,
    #[serde(skip)]
    sha256: String,
}

/// What the dump staged.
#[derive(Debug)]
pub(super) struct Staged {
    pub(super) entities: Vec<EntityFile>,
    /// Audio files listed in [`FILE_LIST`].
    pub(super) audio_files: usize,
}

/// Where each listed audio file is read from.
#[derive(Clone, Copy)]
enum Source {
    /// The data directory (recordings).
    DataDir,
    /// The staging directory (consent prompts, copied out of the database).
    Staging,
}

/// Step 1: every entity into `stage`, read inside the snapshot `ex`.
pub(super) async fn dump(
    ex: &mut Ex<'_>,
    company: &Company,
    data_dir: &Path,
    stage: &Path,
    progress: &ProgressFn,
) -> Result<Staged, ExportError> {
    let mut list = open_write(&stage.join(FILE_LIST)).await?;
    let mut audio_files = 0;
    let mut entities = Vec::with_capacity(ENTITIES.len());
    for (index, entity) in ENTITIES.iter().enumerate() {
        let path = stage.join(entity.file());
        let mut out = open_write(&path).await?;
        let mut hash = Sha256::new();
        let (mut rows, mut size) = (0u64, 0u64);
        let mut pager = Pager::new(entity);
        loop {
            let page = pager.next(ex, company.id).await?;
            if page.is_empty() {
                break;
            }
            let mut buf = Vec::with_capacity(page.len() * 256);
            let mut listed = Vec::new();
            for mut row in page {
                match entity.name {
                    RECORDINGS => {
                        let file = recording_file(&row, data_dir).await;
                        if let Some(f) = &file {
                            listed.extend_from_slice(format!("R {f}\n").as_bytes());
                            audio_files += 1;
                        }
                        row.push(("file", file.into()));
                    }
                    PROMPTS => {
                        let file = stage_prompt(ex, company, &row, stage).await?;
                        listed.extend_from_slice(format!("S {file}\n").as_bytes());
                        audio_files += 1;
                        row.push(("file", file.into()));
                    }
                    _ => {}
                }
                write_line(&mut buf, &row);
                rows += 1;
            }
            hash.update(&buf);
            size += buf.len() as u64;
            write_all(&mut out, &buf, &path).await?;
            write_all(&mut list, &listed, &stage.join(FILE_LIST)).await?;
            progress(Progress::Rows {
                entity: entity.name,
                index,
                of: ENTITIES.len(),
                rows,
                finished: false,
            });
        }
        flush(&mut out, &path).await?;
        progress(Progress::Rows {
            entity: entity.name,
            index,
            of: ENTITIES.len(),
            rows,
            finished: true,
        });
        entities.push(EntityFile {
            name: entity.name,
            file: entity.file(),
            rows,
            size,
            sha256: hex::encode(hash.finalize()),
        });
    }
    flush(&mut list, &stage.join(FILE_LIST)).await?;
    Ok(Staged {
        entities,
        audio_files,
    })
}

/// The archive path of a recording's file, if it goes in: the row's path (relative to the data
/// directory, `recordings/<company>/…`) when it stays inside the data directory, names a file
/// that exists, and the call is over (a file still being written would be caught half-way).
async fn recording_file(row: &[(&str, serde_json::Value)], data_dir: &Path) -> Option<String> {
    let field = |name: &str| row.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    let path = field("path")?.as_str()?;
    // A control character would also break the one-path-per-line file list.
    if field("status")?.as_str()? == "recording"
        || !safe_relative(path)
        || path.contains(char::is_control)
    {
        return None;
    }
    let meta = tokio::fs::metadata(data_dir.join(path)).await.ok()?;
    meta.is_file().then(|| path.to_owned())
}

/// Whether `path` is relative and has only normal components (no `..`, no root).
fn safe_relative(path: &str) -> bool {
    let p = Path::new(path);
    p.components().count() > 0 && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Copies a consent prompt's audio out of the database into the staging directory; returns its
/// archive path, `prompts/<trunk>-<filename>` with the filename reduced to safe characters.
async fn stage_prompt(
    ex: &mut Ex<'_>,
    company: &Company,
    row: &[(&str, serde_json::Value)],
    stage: &Path,
) -> Result<String, ExportError> {
    let field = |name: &str| row.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    let trunk = field("channel_account_id")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_default();
    let name: String = field("filename")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("prompt")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let file = format!("prompts/{trunk}-{}", name.trim_start_matches('.'));
    // One prompt at a time: at most 10 MB each (the upload limit).
    let content = q!(ex, scalar Vec<u8>,
        "SELECT content FROM trunk_prompts WHERE company_id = $1 AND channel_account_id = $2",
        company.id, trunk)?;
    let path = stage.join(&file);
    let dir = stage.join("prompts");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ExportError::io("cannot create", &dir, e))?;
    tokio::fs::write(&path, content)
        .await
        .map_err(|e| ExportError::io("cannot write", &path, e))?;
    Ok(file)
}

async fn open_write(path: &Path) -> Result<tokio::io::BufWriter<tokio::fs::File>, ExportError> {
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|e| ExportError::io("cannot create", path, e))?;
    Ok(tokio::io::BufWriter::with_capacity(64 * 1024, file))
}

async fn write_all(
    out: &mut tokio::io::BufWriter<tokio::fs::File>,
    buf: &[u8],
    path: &Path,
) -> Result<(), ExportError> {
    out.write_all(buf)
        .await
        .map_err(|e| ExportError::io("cannot write", path, e))
}

async fn flush(
    out: &mut tokio::io::BufWriter<tokio::fs::File>,
    path: &Path,
) -> Result<(), ExportError> {
    out.flush()
        .await
        .map_err(|e| ExportError::io("cannot write", path, e))
}

/// A file of the archive, as the manifest lists it.
#[derive(Debug, Serialize)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
}

/// What step 2 needs besides the staged files.
pub(super) struct PackJob {
    pub(super) company: Company,
    pub(super) created_at: i64,
    pub(super) staged: Staged,
    pub(super) stage: PathBuf,
    pub(super) data_dir: PathBuf,
    /// The archive being written (renamed into place by the caller).
    pub(super) partial: PathBuf,
    pub(super) progress: Arc<ProgressFn>,
}

/// What step 2 wrote.
pub(super) struct Packed {
    pub(super) files: usize,
    pub(super) bytes: u64,
}

/// Step 2 (blocking): the staged entity files, the audio files, then the manifest, into a
/// gzip-compressed tar at `job.partial`, synced to disk.
pub(super) fn pack(job: &PackJob) -> Result<Packed, ExportError> {
    let partial = &job.partial;
    let file = create_private(partial)?;
    let gz = flate2::write::GzEncoder::new(
        BufWriter::with_capacity(256 * 1024, file),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    let mtime = u64::try_from(job.created_at / 1000).unwrap_or_default();
    let write_err = |e| ExportError::io("cannot write", partial, e);
    let steps = job.staged.entities.len() + job.staged.audio_files + 1;
    let mut files = Vec::with_capacity(job.staged.entities.len());
    let mut written = 0u64;
    for e in &job.staged.entities {
        let path = job.stage.join(&e.file);
        let src =
            std::fs::File::open(&path).map_err(|err| ExportError::io("cannot read", &path, err))?;
        append(&mut tar, &e.file, e.size, mtime, src).map_err(write_err)?;
        written += e.size;
        files.push(FileEntry {
            path: e.file.clone(),
            size: e.size,
            sha256: e.sha256.clone(),
        });
        (job.progress)(Progress::Packing {
            done: files.len(),
            of: steps,
            bytes: written,
        });
    }
    let list_path = job.stage.join(FILE_LIST);
    let list = std::fs::File::open(&list_path)
        .map_err(|e| ExportError::io("cannot read", &list_path, e))?;
    let mut missing = Vec::new();
    for line in BufReader::new(list).lines() {
        let line = line.map_err(|e| ExportError::io("cannot read", &list_path, e))?;
        let (source, rel) = match line.split_once(' ') {
            Some(("R", rel)) => (Source::DataDir, rel),
            Some(("S", rel)) => (Source::Staging, rel),
            // Written a few lines above by `dump`, in one of the two forms.
            _ => unreachable!("file list line {line:?}"),
        };
        let path = match source {
            Source::DataDir => job.data_dir.join(rel),
            Source::Staging => job.stage.join(rel),
        };
        let src = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Removed by retention since the dump looked: the row stays, the manifest says so.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(rel.to_owned());
                continue;
            }
            Err(e) => return Err(ExportError::io("cannot read", &path, e)),
        };
        let size = src
            .metadata()
            .map_err(|e| ExportError::io("cannot read", &path, e))?
            .len();
        let mut hashing = Hashing::new(src, size);
        append(&mut tar, rel, size, mtime, &mut hashing).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ExportError::Changed(rel.to_owned())
            } else {
                ExportError::io("cannot write", partial, e)
            }
        })?;
        written += size;
        files.push(FileEntry {
            path: rel.to_owned(),
            size,
            sha256: hex::encode(hashing.hash.finalize()),
        });
        (job.progress)(Progress::Packing {
            done: files.len(),
            of: steps,
            bytes: written,
        });
    }
    let manifest = manifest(job, &files, &missing);
    append(
        &mut tar,
        "manifest.json",
        manifest.len() as u64,
        mtime,
        manifest.as_slice(),
    )
    .map_err(write_err)?;
    let count = files.len() + 1;
    let gz = tar.into_inner().map_err(write_err)?;
    let out = gz.finish().map_err(write_err)?;
    let file = out.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    let bytes = file.metadata().map_err(write_err)?.len();
    (job.progress)(Progress::Packing {
        done: steps,
        of: steps,
        bytes: written + manifest.len() as u64,
    });
    Ok(Packed {
        files: count,
        bytes,
    })
}

/// The archive's table of contents.
fn manifest(job: &PackJob, files: &[FileEntry], missing: &[String]) -> Vec<u8> {
    let excluded: Vec<_> = EXCLUDED_TABLES
        .iter()
        .map(|(table, reason)| serde_json::json!({"table": table, "reason": reason}))
        .collect();
    let omitted: Vec<_> = ENTITIES
        .iter()
        .flat_map(|e: &Entity| {
            e.omitted.iter().map(|(column, reason)| {
                serde_json::json!({"entity": e.name, "column": column, "reason": reason})
            })
        })
        .collect();
    let value = serde_json::json!({
        "format": "masterz-export",
        "format_version": FORMAT_VERSION,
        "company": {"id": job.company.id, "slug": job.company.slug, "name": job.company.name},
        "created_at": job.created_at,
        "entities": job.staged.entities,
        "files": files,
        "missing_files": missing,
        "excluded_tables": excluded,
        "omitted_columns": omitted,
    });
    // A `Value` always serialises.
    let mut out = serde_json::to_vec_pretty(&value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Appends one regular file entry: owner root, mode 0644, the export's time.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    mtime: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, path, data)
}

/// The archive file, readable by the server's user only (it holds personal data).
fn create_private(path: &Path) -> Result<std::fs::File, ExportError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| ExportError::io("cannot create", path, e))
}

/// Reads exactly `size` bytes of a file, hashing them. A file that ends early is an
/// `UnexpectedEof` error: the tar header already promised `size` bytes.
struct Hashing<R> {
    inner: std::io::Take<R>,
    left: u64,
    hash: Sha256,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R, size: u64) -> Self {
        Self {
            inner: inner.take(size),
            left: size,
            hash: Sha256::new(),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}
