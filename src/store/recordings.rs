//! Call recordings: the company's policy (off unless switched on, per company with a per-trunk
//! override), one row per recorded call, the queue of files to remove, and the consent prompts
//! that trunks play before a recorded call rings.
//!
//! A row is written before its file is created (status `recording`), so every file the recorder
//! writes has a row that start-up recovery can find after a crash. Rows go away by retention or
//! with their call, customer or company (cascades); a trigger queues each file's path in
//! `recording_deletions`, where the reaper finds it, whatever deleted the row.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, StoreError, q};
use crate::domain::Timestamp;

/// The statuses of a recording.
pub const STATUSES: &[&str] = &["recording", "complete", "repaired", "failed"];
/// The format of every recording written today: RIFF WAVE, 8 kHz, 16-bit PCM, two channels.
pub const FORMAT_WAV: &str = "wav";

/// One recorded call.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Recording {
    /// Id.
    pub id: i64,
    /// The call recorded.
    pub call_id: i64,
    /// The customer of the call, if any.
    pub customer_id: Option<i64>,
    /// `wav` (8 kHz, 16-bit, stereo: left the customer, right the agent).
    pub format: String,
    /// `recording` (the call goes on), `complete`, `repaired` (closed after a server crash) or
    /// `failed`.
    pub status: String,
    /// When recording started (the answer).
    pub started_at: Timestamp,
    /// When it stopped.
    pub ended_at: Option<Timestamp>,
    /// Audio length in milliseconds.
    pub duration_ms: Option<i64>,
    /// File size in bytes.
    pub size_bytes: Option<i64>,
    /// SHA-256 of the file, hex.
    pub sha256: Option<String>,
    /// Audio frames dropped because the recorder fell behind (each became silence).
    pub frames_dropped: i64,
    /// The file, relative to the data directory (not shown by the API).
    #[serde(skip)]
    pub path: String,
}

macro_rules! columns {
    () => {
        "r.id, r.call_id, c.customer_id, r.format, r.status, r.started_at, r.ended_at, \
         r.duration_ms, r.size_bytes, r.sha256, r.frames_dropped, r.path \
         FROM recordings r JOIN calls c ON c.id = r.call_id"
    };
}

/// Whether the company records calls by default (a trunk's own setting wins).
pub async fn company_enabled(ex: &mut Ex<'_>, company: CompanyId) -> Result<bool> {
    Ok(q!(ex, scalar_opt bool,
        "SELECT recording_enabled FROM companies WHERE id = $1 AND status = 'active'", company)?
    .unwrap_or(false))
}

/// Starts the recording of call `call_id` of `company` into `path`; returns its id. A call not
/// of `company` (or already recorded) is [`StoreError::Reference`] / [`StoreError::Conflict`].
pub async fn start(
    ex: &mut Ex<'_>,
    company: CompanyId,
    call_id: i64,
    path: &str,
    started_at: i64,
) -> Result<i64> {
    let id = q!(ex, scalar_opt i64,
        "INSERT INTO recordings (company_id, call_id, path, format, status, started_at) \
         SELECT company_id, id, $3, $4, 'recording', $5 FROM calls \
         WHERE company_id = $1 AND id = $2 RETURNING id",
        company, call_id, path, FORMAT_WAV, started_at)?;
    id.ok_or_else(|| StoreError::Reference(format!("call {call_id} is not of company {company}")))
}

/// How a recording ended.
#[derive(Clone, Debug)]
pub struct Finished<'a> {
    /// `complete`, `repaired` or `failed`.
    pub status: &'a str,
    /// Unix milliseconds.
    pub ended_at: i64,
    /// Audio length.
    pub duration_ms: i64,
    /// File size.
    pub size_bytes: i64,
    /// SHA-256 of the file, hex; none when the file is missing.
    pub sha256: Option<&'a str>,
    /// Frames the tap dropped.
    pub frames_dropped: i64,
}

/// Closes recording `id`. Only a recording still `recording` is changed. A `complete` or
/// `repaired` one adds its length to the company's `recorded_seconds` (a `failed` one has no
/// usable audio and is not counted).
pub async fn finish(ex: &mut Ex<'_>, id: i64, f: &Finished<'_>) -> Result<bool> {
    debug_assert!(STATUSES.contains(&f.status), "{}", f.status);
    let company = q!(
        ex,
        scalar_opt CompanyId,
        "UPDATE recordings SET status = $2, ended_at = $3, duration_ms = $4, size_bytes = $5, \
           sha256 = $6, frames_dropped = $7 WHERE id = $1 AND status = 'recording' \
         RETURNING company_id",
        id,
        f.status,
        f.ended_at,
        f.duration_ms,
        f.size_bytes,
        f.sha256,
        f.frames_dropped
    )?;
    if let Some(company) = company
        && f.status != "failed"
    {
        let seconds = super::usage::seconds_ceil(f.duration_ms);
        super::usage::add(
            ex,
            company,
            super::usage::RECORDED_SECONDS,
            seconds,
            f.ended_at,
        )
        .await?;
    }
    Ok(company.is_some())
}

/// A recording left `recording` by a server that stopped without closing it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Unfinished {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: CompanyId,
    /// The call.
    pub call_id: i64,
    /// Relative path of the file.
    pub path: String,
    /// Unix milliseconds.
    pub started_at: i64,
}

/// Every recording still marked `recording` (at start-up: the ones a crash interrupted).
pub async fn unfinished(ex: &mut Ex<'_>) -> Result<Vec<Unfinished>> {
    Ok(q!(ex, all Unfinished,
        "SELECT id, company_id, call_id, path, started_at FROM recordings \
         WHERE status = 'recording' ORDER BY id")?)
}

/// Recording `id` of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Recording>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " WHERE r.company_id = $1 AND r.id = $2"
    );
    Ok(q!(ex, opt Recording, sql, company, id)?)
}

/// Filters for [`list`].
#[derive(Clone, Debug)]
pub struct RecordingFilter {
    /// Only the recording of this call.
    pub call_id: Option<i64>,
    /// Only recordings of this customer's calls.
    pub customer_id: Option<i64>,
    /// Cursor: only ids below this.
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

impl Default for RecordingFilter {
    fn default() -> Self {
        Self {
            call_id: None,
            customer_id: None,
            before_id: None,
            limit: 50,
        }
    }
}

/// The recordings of `company`, newest first.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    f: &RecordingFilter,
) -> Result<Vec<Recording>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " WHERE r.company_id = $1 \
         AND (CAST($2 AS BIGINT) IS NULL OR r.call_id = $2) \
         AND (CAST($3 AS BIGINT) IS NULL OR c.customer_id = $3) \
         AND (CAST($4 AS BIGINT) IS NULL OR r.id < $4) \
         ORDER BY r.id DESC LIMIT $5"
    );
    Ok(q!(ex, all Recording, sql, company, f.call_id, f.customer_id, f.before_id, f.limit)?)
}

/// Deletes the finished recordings older than their company's retention at `now` (Unix ms);
/// their files are queued for the reaper. Returns how many.
pub async fn delete_expired(ex: &mut Ex<'_>, now: i64) -> Result<u64> {
    Ok(q!(
        ex,
        exec,
        "DELETE FROM recordings WHERE status <> 'recording' AND EXISTS \
           (SELECT 1 FROM companies co WHERE co.id = recordings.company_id \
              AND co.recording_retention_days IS NOT NULL \
              AND recordings.started_at < $1 - co.recording_retention_days * 86400000)",
        now
    )?)
}

/// Deletes recording `id` of `company` (its file is queued for the reaper).
pub async fn delete(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM recordings WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// A file waiting to be removed.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Deletion {
    /// Queue id.
    pub id: i64,
    /// Relative path of the file.
    pub path: String,
}

/// Up to `limit` files waiting to be removed, oldest first.
pub async fn pending_deletions(ex: &mut Ex<'_>, limit: i64) -> Result<Vec<Deletion>> {
    Ok(q!(ex, all Deletion,
        "SELECT id, path FROM recording_deletions ORDER BY id LIMIT $1", limit)?)
}

/// The file of queue entry `id` is gone.
pub async fn deletion_done(ex: &mut Ex<'_>, id: i64) -> Result<()> {
    q!(
        ex,
        exec,
        "DELETE FROM recording_deletions WHERE id = $1",
        id
    )?;
    Ok(())
}

/// A trunk's consent prompt as uploaded.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Prompt {
    /// The file name it was uploaded as (its extension hints the format).
    pub filename: String,
    /// The file.
    pub content: Vec<u8>,
    /// SHA-256 of `content`, hex: the cache key.
    pub sha256: String,
    /// Length of the decoded audio.
    pub duration_ms: i64,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A prompt to store.
#[derive(Clone, Debug)]
pub struct NewPrompt<'a> {
    /// The file name it was uploaded as.
    pub filename: &'a str,
    /// The file.
    pub content: &'a [u8],
    /// SHA-256 of `content`, hex.
    pub sha256: &'a str,
    /// Length of the decoded audio.
    pub duration_ms: i64,
    /// Unix milliseconds.
    pub at: i64,
}

/// Sets (or replaces) the prompt of trunk `trunk` of `company`. `false` when there is no such
/// trunk.
pub async fn set_prompt(
    ex: &mut Ex<'_>,
    company: CompanyId,
    trunk: i64,
    p: &NewPrompt<'_>,
) -> Result<bool> {
    q!(
        ex,
        exec,
        "DELETE FROM trunk_prompts WHERE company_id = $1 AND channel_account_id = $2",
        company,
        trunk
    )?;
    let n = q!(
        ex,
        exec,
        "INSERT INTO trunk_prompts (channel_account_id, company_id, filename, content, sha256, \
           duration_ms, updated_at) \
         SELECT id, company_id, $3, $4, $5, $6, $7 FROM channel_accounts \
         WHERE company_id = $1 AND id = $2 AND kind = 'sip_trunk'",
        company,
        trunk,
        p.filename,
        p.content,
        p.sha256,
        p.duration_ms,
        p.at
    )?;
    Ok(n > 0)
}

/// The prompt of trunk `trunk` (any company: call control looks it up by the trunk it routed).
pub async fn prompt(ex: &mut Ex<'_>, trunk: i64) -> Result<Option<Prompt>> {
    Ok(q!(ex, opt Prompt,
        "SELECT filename, content, sha256, duration_ms, updated_at FROM trunk_prompts \
         WHERE channel_account_id = $1", trunk)?)
}

/// The SHA-256 of trunk `trunk`'s prompt, if it has one (cheap: the cache checks it per call).
pub async fn prompt_sha256(ex: &mut Ex<'_>, trunk: i64) -> Result<Option<String>> {
    Ok(q!(ex, scalar_opt String,
        "SELECT sha256 FROM trunk_prompts WHERE channel_account_id = $1", trunk)?)
}

/// Removes the prompt of trunk `trunk` of `company`.
pub async fn delete_prompt(ex: &mut Ex<'_>, company: CompanyId, trunk: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "DELETE FROM trunk_prompts WHERE company_id = $1 AND channel_account_id = $2",
        company,
        trunk
    )?;
    Ok(n > 0)
}
