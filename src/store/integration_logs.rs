//! `integration_logs`: one row per inbound webhook (per channel account it concerns) and per
//! outbound provider call, bodies and headers already redacted (P11, P12, P25). Inbound rows are
//! also the durable inbox: written before the webhook is answered, `pending` until processed.

use serde::Serialize;
use utoipa::ToSchema;

use super::{CompanyId, Ex, Result, q};
use crate::domain::Timestamp;

/// A row to write.
#[derive(Clone, Debug)]
pub struct NewLog {
    /// The company, when the event was routed to one.
    pub company_id: Option<CompanyId>,
    /// The channel account.
    pub channel_account_id: Option<i64>,
    /// `in` or `out`.
    pub direction: &'static str,
    /// `meta`, `waha` or `openai`.
    pub provider: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path (inbound) or URL (outbound), redacted.
    pub endpoint: String,
    /// HTTP status answered (inbound) or received (outbound).
    pub status: Option<i32>,
    /// How long the exchange took.
    pub duration_ms: Option<i64>,
    /// Headers as a JSON object, redacted.
    pub request_headers: Option<String>,
    /// Request body, redacted.
    pub request_body: Option<String>,
    /// Response body, redacted.
    pub response_body: Option<String>,
    /// Why it failed or was rejected.
    pub error: Option<String>,
    /// `pending`, `rejected`, `ignored` (inbound) or `done` (outbound).
    pub state: &'static str,
    /// Outbound: the message the call was for.
    pub message_id: Option<i64>,
    /// Unix ms.
    pub created_at: i64,
}

const COLUMNS: &str = "company_id, channel_account_id, direction, provider, method, endpoint, status, \
    duration_ms, request_headers, request_body, response_body, error, state, message_id, created_at";
const PER_ROW: usize = 15;
/// Rows per INSERT statement: well under SQLite's limit of bound parameters.
const CHUNK: usize = 64;

/// The INSERT for `rows` rows. SQLite gets anonymous `?` parameters: it looks a numbered
/// parameter up by scanning its whole list, which made binding 960 of them quadratic.
fn insert_sql(rows: usize, numbered: bool) -> String {
    let mut sql = format!("INSERT INTO integration_logs ({COLUMNS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..PER_ROW {
            if c > 0 {
                sql.push_str(", ");
            }
            if numbered {
                sql.push('$');
                sql.push_str(&(r * PER_ROW + c + 1).to_string());
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// Splits `n` rows into statements of a few fixed sizes (64, 16, 4, 1), so that a connection's
/// statement cache holds four INSERTs instead of one per batch size.
fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    for size in [CHUNK, 16, 4, 1] {
        while n >= size {
            sizes.push(size);
            n -= size;
        }
    }
    sizes
}

macro_rules! bind_rows {
    ($query:expr, $rows:expr) => {{
        let mut query = $query;
        for r in $rows {
            query = query
                .bind(r.company_id)
                .bind(r.channel_account_id)
                .bind(r.direction)
                .bind(r.provider)
                .bind(r.method)
                .bind(r.endpoint.as_str())
                .bind(r.status)
                .bind(r.duration_ms)
                .bind(r.request_headers.as_deref())
                .bind(r.request_body.as_deref())
                .bind(r.response_body.as_deref())
                .bind(r.error.as_deref())
                .bind(r.state)
                .bind(r.message_id)
                .bind(r.created_at);
        }
        query
    }};
}

/// Writes rows with multi-row INSERTs (the group committer's batch; run it in a transaction).
pub async fn insert_many(ex: &mut Ex<'_>, rows: &[NewLog]) -> Result<()> {
    let mut rest = rows;
    for size in chunk_sizes(rows.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        match ex {
            Ex::Sqlite(c) => {
                let sql = insert_sql(chunk.len(), false);
                bind_rows!(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk)
                    .execute(&mut **c)
                    .await?;
            }
            Ex::Postgres(c) => {
                let sql = insert_sql(chunk.len(), true);
                bind_rows!(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk)
                    .execute(&mut **c)
                    .await?;
            }
        }
    }
    Ok(())
}

/// Writes one row and returns its id.
pub async fn insert(ex: &mut Ex<'_>, row: &NewLog) -> Result<i64> {
    let sql = format!(
        "{} RETURNING id",
        insert_sql(1, matches!(ex, Ex::Postgres(_)))
    );
    let id = match ex {
        Ex::Sqlite(c) => {
            bind_rows!(
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)),
                std::slice::from_ref(row)
            )
            .fetch_one(&mut **c)
            .await?
        }
        Ex::Postgres(c) => {
            bind_rows!(
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)),
                std::slice::from_ref(row)
            )
            .fetch_one(&mut **c)
            .await?
        }
    };
    Ok(id)
}

/// An inbound row to process.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Inbound {
    /// Id.
    pub id: i64,
    /// Company.
    pub company_id: Option<CompanyId>,
    /// Channel account.
    pub channel_account_id: Option<i64>,
    /// `meta` or `waha`.
    pub provider: String,
    /// The (redacted) body.
    pub request_body: Option<String>,
    /// Failed processing attempts so far.
    pub attempts: i32,
    /// Its state.
    pub state: String,
}

const INBOUND: &str = "SELECT id, company_id, channel_account_id, provider, request_body, attempts, state \
     FROM integration_logs";

/// Inbound rows waiting to be processed, oldest first, with ids above `after`.
pub async fn pending(ex: &mut Ex<'_>, after: i64, limit: i64) -> Result<Vec<Inbound>> {
    let sql = format!("{INBOUND} WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2");
    Ok(q!(ex, all Inbound, sqlx::AssertSqlSafe(sql), after, limit)?)
}

/// One inbound row, whatever its state (for `masterz replay`).
pub async fn inbound(ex: &mut Ex<'_>, id: i64) -> Result<Option<Inbound>> {
    let sql = format!("{INBOUND} WHERE id = $1 AND direction = 'in'");
    Ok(q!(ex, opt Inbound, sqlx::AssertSqlSafe(sql), id)?)
}

/// Locks a pending inbound row for processing in the caller's transaction; false when it is no
/// longer pending (another worker finished it).
pub async fn take(ex: &mut Ex<'_>, id: i64) -> Result<bool> {
    let n = q!(
        ex,
        exec,
        "UPDATE integration_logs SET attempts = attempts WHERE id = $1 AND state = 'pending'",
        id
    )?;
    Ok(n == 1)
}

/// Records the outcome of processing an inbound row.
pub async fn finish(ex: &mut Ex<'_>, id: i64, state: &str, error: Option<&str>) -> Result<()> {
    q!(
        ex,
        exec,
        "UPDATE integration_logs SET state = $2, error = $3, processed_at = $4 WHERE id = $1",
        id,
        state,
        error,
        super::now_ms()
    )?;
    Ok(())
}

/// Counts a failed attempt at processing; returns the attempts so far.
pub async fn failed_attempt(ex: &mut Ex<'_>, id: i64, error: &str) -> Result<i32> {
    Ok(q!(ex, scalar i32,
        "UPDATE integration_logs SET attempts = attempts + 1, error = $2 WHERE id = $1 RETURNING attempts",
        id, error)?)
}

/// Deletes rows older than `before` (Unix ms), except inbound rows not yet processed (P18).
pub async fn prune(ex: &mut Ex<'_>, before: i64) -> Result<u64> {
    Ok(q!(
        ex,
        exec,
        "DELETE FROM integration_logs WHERE created_at < $1 AND state <> 'pending'",
        before
    )?)
}

/// A row as the API shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct LogEntry {
    /// Id.
    pub id: i64,
    /// Channel account.
    pub channel_account_id: Option<i64>,
    /// `in` or `out`.
    pub direction: String,
    /// `meta`, `waha`, `openai`.
    pub provider: String,
    /// HTTP method.
    pub method: String,
    /// Path or URL (redacted).
    pub endpoint: String,
    /// HTTP status.
    pub status: Option<i32>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// Headers (redacted JSON).
    pub request_headers: Option<String>,
    /// Request body (redacted).
    pub request_body: Option<String>,
    /// Response body (redacted).
    pub response_body: Option<String>,
    /// Error.
    pub error: Option<String>,
    /// `pending`, `processed`, `ignored`, `failed`, `rejected`, `done`.
    pub state: String,
    /// Message (outbound).
    pub message_id: Option<i64>,
    /// When.
    pub created_at: Timestamp,
}

/// The company's log rows, newest first, with ids below `before`.
pub async fn list(
    ex: &mut Ex<'_>,
    company: CompanyId,
    direction: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LogEntry>> {
    Ok(q!(ex, all LogEntry,
        "SELECT id, channel_account_id, direction, provider, method, endpoint, status, duration_ms, \
           request_headers, request_body, response_body, error, state, message_id, created_at \
         FROM integration_logs WHERE company_id = $1 \
           AND (CAST($2 AS TEXT) IS NULL OR direction = $2) \
           AND (CAST($3 AS BIGINT) IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4",
        company, direction, before, limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_use_four_statement_shapes() {
        assert_eq!(chunk_sizes(0), Vec::<usize>::new());
        assert_eq!(chunk_sizes(1), [1]);
        assert_eq!(chunk_sizes(87), [64, 16, 4, 1, 1, 1]);
        assert_eq!(chunk_sizes(200).iter().sum::<usize>(), 200);
        assert_eq!(insert_sql(2, false).matches('?').count(), 2 * PER_ROW);
        assert!(insert_sql(2, true).contains(&format!("${}", 2 * PER_ROW)));
    }
}
