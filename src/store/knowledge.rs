//! The knowledge base of a company: documents, cut into passages ([`crate::ai::knowledge::chunk`]),
//! and full-text retrieval over the passages (SQLite FTS5 with BM25; PostgreSQL `tsvector` with
//! `ts_rank`). Reply suggestions send the best few passages for the customer's message (P17).

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, UserId, now_ms, q};
use crate::domain::Timestamp;

/// A knowledge-base document.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Document {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// The text.
    pub body: String,
    /// Passages it was cut into.
    pub chunks: i64,
    /// Who added it.
    pub created_by: Option<UserId>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A passage found for a query.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, sqlx::FromRow, ToSchema)]
pub struct Passage {
    /// Id of the passage.
    pub id: i64,
    /// The document it is from.
    pub document_id: i64,
    /// The text.
    pub content: String,
}

macro_rules! document_columns {
    () => {
        "d.id, d.title, d.body, (SELECT COUNT(*) FROM kb_chunks c WHERE c.document_id = d.id) AS chunks, \
         d.created_by, d.created_at, d.updated_at"
    };
}

/// Adds a document and its passages.
pub async fn create(
    ex: &mut Ex<'_>,
    company: CompanyId,
    author: Option<UserId>,
    title: &str,
    body: &str,
    chunks: &[String],
) -> Result<Document> {
    let now = now_ms();
    let id = q!(ex, scalar i64,
        "INSERT INTO kb_documents (company_id, title, body, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        company, title, body, author, now)?;
    insert_chunks(ex, company, id, chunks).await?;
    get(ex, company, id)
        .await?
        .ok_or(super::StoreError::Database(sqlx::Error::RowNotFound))
}

async fn insert_chunks(
    ex: &mut Ex<'_>,
    company: CompanyId,
    document: i64,
    chunks: &[String],
) -> Result<()> {
    for (position, content) in chunks.iter().enumerate() {
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        q!(
            ex,
            exec,
            "INSERT INTO kb_chunks (company_id, document_id, position, content) VALUES ($1, $2, $3, $4)",
            company,
            document,
            position,
            content
        )?;
    }
    Ok(())
}

/// One document of `company`.
pub async fn get(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<Option<Document>> {
    let sql = concat!(
        "SELECT ",
        document_columns!(),
        " FROM kb_documents d WHERE d.company_id = $1 AND d.id = $2"
    );
    Ok(q!(ex, opt Document, sql, company, id)?)
}

/// Documents of `company`, newest first, before `before_id`.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Document>> {
    let sql = concat!(
        "SELECT ",
        document_columns!(),
        " FROM kb_documents d WHERE d.company_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR d.id < $2) \
         ORDER BY d.id DESC LIMIT $3"
    );
    Ok(q!(ex, all Document, sql, company, before_id, limit)?)
}

/// Replaces a document's title and text, and its passages; `None` when it does not exist.
pub async fn update(
    ex: &mut Ex<'_>,
    company: CompanyId,
    id: i64,
    title: &str,
    body: &str,
    chunks: &[String],
) -> Result<Option<Document>> {
    let n = q!(
        ex,
        exec,
        "UPDATE kb_documents SET title = $3, body = $4, updated_at = $5 WHERE company_id = $1 AND id = $2",
        company,
        id,
        title,
        body,
        now_ms()
    )?;
    if n == 0 {
        return Ok(None);
    }
    q!(
        ex,
        exec,
        "DELETE FROM kb_chunks WHERE company_id = $1 AND document_id = $2",
        company,
        id
    )?;
    insert_chunks(ex, company, id, chunks).await?;
    get(ex, company, id).await
}

/// Deletes a document with its passages.
pub async fn delete(ex: &mut Ex<'_>, company: CompanyId, id: i64) -> Result<bool> {
    // Passages first: their delete trigger keeps the SQLite full-text index in step.
    q!(
        ex,
        exec,
        "DELETE FROM kb_chunks WHERE company_id = $1 AND document_id = $2",
        company,
        id
    )?;
    let n = q!(
        ex,
        exec,
        "DELETE FROM kb_documents WHERE company_id = $1 AND id = $2",
        company,
        id
    )?;
    Ok(n > 0)
}

/// The `limit` passages of `company` that best match any of `terms` (plain words, as made by
/// [`crate::ai::knowledge::query_terms`]); best first.
pub async fn search(
    ex: &mut Ex<'_>,
    company: CompanyId,
    terms: &[String],
    limit: i64,
) -> Result<Vec<Passage>> {
    if terms.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    match ex {
        Ex::Sqlite(c) => {
            // Each term quoted: FTS5 reads it as a string, never as query syntax.
            let query = terms
                .iter()
                .map(|t| format!("\"{}\"", t.replace('"', "")))
                .collect::<Vec<_>>()
                .join(" OR ");
            Ok(sqlx::query_as::<_, Passage>(
                "SELECT c.id, c.document_id, c.content FROM kb_chunks_fts f \
                 JOIN kb_chunks c ON c.id = f.rowid \
                 WHERE kb_chunks_fts MATCH $1 AND c.company_id = $2 \
                 ORDER BY bm25(kb_chunks_fts), c.id LIMIT $3",
            )
            .bind(query)
            .bind(company)
            .bind(limit)
            .fetch_all(&mut **c)
            .await?)
        }
        Ex::Postgres(c) => {
            // Terms are letters and digits only (query_terms), so `|` joins them safely.
            let query = terms.join(" | ");
            Ok(sqlx::query_as::<_, Passage>(
                "SELECT c.id, c.document_id, c.content FROM kb_chunks c, to_tsquery('simple', $1) q \
                 WHERE c.company_id = $2 AND c.tsv @@ q \
                 ORDER BY ts_rank_cd(c.tsv, q) DESC, c.id LIMIT $3",
            )
            .bind(query)
            .bind(company)
            .bind(limit)
            .fetch_all(&mut **c)
            .await?)
        }
    }
}
