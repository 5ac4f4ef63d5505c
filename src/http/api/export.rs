//! Data export (P26): the company's archive, and one customer's data as JSON. Both need
//! `data:export` and are audited (`export`).
//!
//! The archive is built into a temporary file under `<data dir>/exports/`, then streamed: the
//! file is unlinked as soon as it is opened, so it goes away when the answer ends, however it
//! ends (finished, client gone, server stopped). Files left by a crash are swept by later exports.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::export::{self, customer::CustomerExport};
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::store::{self, audit};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(company_export))
        .routes(routes!(customer_export))
}

/// The directory of archives being built or sent, under the data directory.
const EXPORTS_DIR: &str = "exports";

/// Leftovers older than this are a crashed export's, not a running one's.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The company's data as one archive (`.tar.gz`): `manifest.json`, a JSON Lines file per entity,
/// the recording files under `recordings/` and consent prompts under `prompts/`. Never a secret:
/// no password or token hashes, no credentials (see docs/export.md). Audited (`export`).
#[utoipa::path(get, path = "/export", tag = "export",
    responses(
        (status = 200, description = "the archive, streamed", content_type = "application/gzip",
            headers(("Content-Length" = u64),
                ("Content-Disposition" = String, description = "`attachment; filename=\"masterz-export-<slug>-<yyyymmdd-hhmmss>.tar.gz\"`"))),
        (status = 401, body = ErrorBody, description = "no valid session cookie or bearer token"),
        (status = 403, body = ErrorBody, description = "the role lacks `data:export`")))]
async fn company_export(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::DataExport>,
) -> Result<Response, ApiError> {
    let company = {
        let mut conn = state.db.conn().await?;
        store::companies::get(&mut conn.ex(), auth.company()).await?
    };
    let dir = state.config.data_dir.join(EXPORTS_DIR);
    prepare(&dir).await?;
    let name = format!(
        "masterz-export-{}-{}.tar.gz",
        company.slug,
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).map_err(ApiError::internal)?;
    let path = dir.join(format!("export-{}-{}.tar.gz", company.id, hex::encode(tag)));
    let summary = export::write_company_archive(
        &state.db,
        &state.config.data_dir,
        &company,
        &path,
        Arc::new(|_| {}),
    )
    .await
    .map_err(ApiError::internal)?;
    let file = tokio::fs::File::open(&path).await;
    // Unlinked at once: the open file stays readable until the answer drops it.
    let _ = tokio::fs::remove_file(&path).await;
    let file = file.map_err(|e| ApiError::internal(format!("opening the export: {e}")))?;
    // Written before the data leaves: an export that cannot be audited does not happen.
    let mut conn = state.db.conn().await?;
    audit::record(
        &mut conn.ex(),
        company.id,
        &auth.actor(),
        "export",
        "company",
        Some(company.id.0),
        &serde_json::json!({"rows": summary.rows, "files": summary.files, "bytes": summary.bytes}),
    )
    .await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(summary.bytes));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // The slug is a-z, 0-9 and -, and the date digits: a valid header value.
    if let Ok(v) = HeaderValue::try_from(format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Creates the exports directory (private) and removes what crashed exports left in it.
async fn prepare(dir: &Path) -> Result<(), ApiError> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder
        .create(dir)
        .await
        .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return Ok(());
    };
    let now = SystemTime::now();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let Ok(meta) = entry.metadata().await else {
            continue;
        };
        let stale = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if stale {
            let _ = if meta.is_dir() {
                tokio::fs::remove_dir_all(entry.path()).await
            } else {
                tokio::fs::remove_file(entry.path()).await
            };
        }
    }
    Ok(())
}

/// One customer's data as JSON: profile, identities, conversations with their messages, calls
/// with their events and recording (metadata and download URL), notes, AI suggestions with the
/// context sent to the model. Audited (`export`).
#[utoipa::path(get, path = "/customers/{id}/export", tag = "export",
    params(("id" = i64, Path, description = "customer id")),
    responses((status = 200, body = CustomerExport, description = "the customer's data"),
        (status = 403, body = ErrorBody, description = "the role lacks `data:export`"),
        (status = 404, body = ErrorBody, description = "no such customer in the caller's company")))]
async fn customer_export(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::DataExport>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let company = {
        let mut conn = state.db.conn().await?;
        store::companies::get(&mut conn.ex(), auth.company()).await?
    };
    let base = state.public_base.trim_end_matches('/').to_owned();
    let doc = export::customer::customer_export(&state.db, &company, id, |rid| {
        format!("{base}/api/v1/recordings/{rid}")
    })
    .await
    .map_err(ApiError::internal)?
    .ok_or_else(|| ApiError::not_found("customer"))?;
    let mut conn = state.db.conn().await?;
    audit::record(
        &mut conn.ex(),
        company.id,
        &auth.actor(),
        "export",
        "customer",
        Some(id),
        &serde_json::json!({}),
    )
    .await?;
    let mut res = Json(doc).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}
