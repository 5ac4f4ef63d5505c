//! Call recordings: the company's list, playback of one file, and deletion.
//!
//! Playback is what a browser's `<audio>` element needs: `HEAD` for the size, `GET` with one byte
//! range (RFC 9110 §14) to seek. Choices, each permitted by the RFC:
//!
//! - One range only. Several ranges, a malformed value, a unit other than `bytes`, an `If-Range`
//!   that is not our strong ETag, or an empty file: the `Range` is ignored and the whole file is
//!   sent with 200 (§14.2: a server MAY ignore `Range`). `HEAD` always ignores it (§14.2: MUST).
//! - Every `GET` that sends audio (200 or 206) writes one `play` audit row, range requests
//!   included. Auditing only requests that start at byte 0 would let anyone fetch `bytes=44-`
//!   (all the audio, minus a header anyone can rebuild) unaudited; a seek costs one row instead.
//!   The row names the range, so a reader can fold one listening into one entry.
//! - The bytes are streamed from the file in 64 KiB reads (a one-hour call is 115 MB): memory per
//!   playback stays small and the first byte leaves at once.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Component, Path};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Page, PageParams};
use crate::domain::CompanyId;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use crate::http::extract::{Authz, perm};
use crate::store::{
    self, audit,
    recordings::{Recording, RecordingFilter},
};

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_recordings))
        .routes(routes!(play_recording, head_recording, delete_recording))
}

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// Recording list filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecordingQuery {
    /// Only the recording of this call.
    call_id: Option<i64>,
    /// Only recordings of this customer's calls.
    customer_id: Option<i64>,
    /// Only recordings with a smaller id: the `next_cursor` of the previous page.
    before_id: Option<i64>,
    /// The same as `before_id`, under the name the other paged lists use.
    cursor: Option<String>,
    /// Items per page (1–500, default 50).
    limit: Option<i64>,
}

/// A recording as listed: its figures and where to play it (never the file's location).
#[derive(Serialize, ToSchema)]
pub(super) struct RecordingItem {
    /// The recording.
    #[serde(flatten)]
    recording: Recording,
    /// The audio: `GET` (with `Range` to seek) or `HEAD`, with the same credentials.
    #[schema(example = "/api/v1/recordings/7")]
    url: String,
}

/// The company's recordings, newest first.
#[utoipa::path(get, path = "/recordings", tag = "recordings", params(RecordingQuery),
    responses((status = 200, body = Page<RecordingItem>, description = "`next_cursor` is the `before_id` (or `cursor`) of the next page"),
        (status = 400, body = ErrorBody, description = "a filter is not an integer, a cursor not one this server made, or both `before_id` and `cursor` were given")))]
async fn list_recordings(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RecordingsRead>,
    ApiQuery(q): ApiQuery<RecordingQuery>,
) -> Result<Json<Page<RecordingItem>>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let cursor = PageParams {
        limit: None,
        cursor: q.cursor,
    }
    .before_id()?;
    let before_id = match (q.before_id, cursor) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "give before_id or cursor, not both",
            ));
        }
        (id, cursor) => id.or(cursor),
    };
    let filter = RecordingFilter {
        call_id: q.call_id,
        customer_id: q.customer_id,
        before_id,
        // One more than the page, to know whether another follows.
        limit: limit + 1,
    };
    let mut conn = state.db.conn().await?;
    let rows = store::recordings::list(&mut conn.ex(), auth.company(), &filter).await?;
    let items = rows
        .into_iter()
        .map(|recording| RecordingItem {
            url: format!("/api/v1/recordings/{}", recording.id),
            recording,
        })
        .collect();
    Ok(Json(Page::by_id(items, limit, |r| r.recording.id)))
}

/// Plays a recording: the WAV file, whole (200) or one byte range (206). Each request that sends
/// audio is audited (`play`, `recording`), range requests included.
#[utoipa::path(get, path = "/recordings/{id}", tag = "recordings",
    params(("id" = i64, Path, description = "recording id"),
        ("Range" = Option<String>, Header, nullable = false, description = "one byte range: `bytes=0-1023`, `bytes=1000-` or `bytes=-500`. Several ranges or a malformed value are ignored (200, the whole file)."),
        ("If-Range" = Option<String>, Header, nullable = false, description = "the ETag of a previous answer: the range is served only if the file is unchanged, else the whole file")),
    responses(
        (status = 200, description = "the whole file (`audio/wav`, 8 kHz 16-bit stereo: left the customer, right the agent); a recording still in progress is served as it is on disk",
            content_type = "audio/wav",
            headers(("Content-Length" = u64), ("Accept-Ranges" = String, description = "`bytes`"),
                ("ETag" = String, description = "the file's SHA-256, once the recording is finished"),
                ("Content-Disposition" = String, description = "`inline; filename=\"call-<call_id>.wav\"`"))),
        (status = 206, description = "the requested range", content_type = "audio/wav",
            headers(("Content-Range" = String, description = "`bytes <first>-<last>/<size>`"), ("Content-Length" = u64))),
        (status = 404, body = ErrorBody, description = "no such recording in the caller's company, or its file is missing (`recording_file_missing`)"),
        (status = 416, body = ErrorBody, description = "the range starts past the end of the file",
            headers(("Content-Range" = String, description = "`bytes */<size>`")))))]
async fn play_recording(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RecordingsRead>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = recording(&state, auth.company(), id).await?;
    let (file, size) = open(&state, &rec).await?;
    let etag = etag(&rec);
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_holds(headers.get(header::IF_RANGE), etag.as_ref()))
        .map_or(Ranged::Whole, |v| Ranged::of(v, size));
    let (status, start, len) = match range {
        Ranged::Whole => (StatusCode::OK, 0, size),
        Ranged::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        Ranged::Unsatisfiable => {
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the range starts past the end of the file ({size} bytes)"),
            )
            .into_response();
            res.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(format!("bytes */{size}")),
            );
            return Ok(res);
        }
    };
    let body = read(file, start, len, rec.id).await?;
    let changes = match range {
        Ranged::Part { first, last } => serde_json::json!({"range": format!("{first}-{last}")}),
        _ => serde_json::json!({}),
    };
    // Written before the audio leaves: a playback that cannot be audited does not happen.
    let mut conn = state.db.conn().await?;
    audit::record(
        &mut conn.ex(),
        auth.company(),
        &auth.actor(),
        "play",
        "recording",
        Some(rec.id),
        &changes,
    )
    .await?;
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    file_headers(h, &rec, etag, len);
    if let Ranged::Part { first, last } = range {
        h.insert(
            header::CONTENT_RANGE,
            header_value(format!("bytes {first}-{last}/{size}")),
        );
    }
    Ok(res)
}

/// The headers of a playback without the audio: size, type, ETag. Not audited. `Range` is
/// ignored, as RFC 9110 §14.2 requires for methods other than GET.
#[utoipa::path(head, path = "/recordings/{id}", tag = "recordings",
    params(("id" = i64, Path, description = "recording id")),
    responses(
        (status = 200, description = "the headers `GET` would send for the whole file, no body", content_type = "audio/wav",
            headers(("Content-Length" = u64), ("Accept-Ranges" = String), ("ETag" = String))),
        // The shared error statuses are added to GET, POST, PATCH, PUT and DELETE only.
        (status = 400, body = ErrorBody, description = "malformed id"),
        (status = 401, body = ErrorBody, description = "no valid session cookie or bearer token"),
        (status = 403, body = ErrorBody, description = "the role lacks `recordings:read`"),
        (status = 404, body = ErrorBody, description = "no such recording in the caller's company, or its file is missing"),
        (status = 500, body = ErrorBody, description = "internal error (details are logged, not sent)")))]
async fn head_recording(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RecordingsRead>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let rec = recording(&state, auth.company(), id).await?;
    let (_, size) = open(&state, &rec).await?;
    // The router drops the body of a HEAD answer and keeps the Content-Length set here.
    let mut res = StatusCode::OK.into_response();
    file_headers(res.headers_mut(), &rec, etag(&rec), size);
    Ok(res)
}

/// Deletes a recording. Its file is queued for removal (the reaper deletes it shortly after).
/// A recording still in progress cannot be deleted (409): end the call first. Audited.
#[utoipa::path(delete, path = "/recordings/{id}", tag = "recordings",
    params(("id" = i64, Path, description = "recording id")),
    responses((status = 204, description = "deleted"),
        (status = 404, body = ErrorBody, description = "no such recording in the caller's company"),
        (status = 409, body = ErrorBody, description = "the call is still being recorded")))]
async fn delete_recording(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::RecordingsDelete>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin().await?;
    let rec = store::recordings::get(&mut tx.ex(), auth.company(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))?;
    // The recorder still writes the file; the reaper would remove it under its feet.
    if rec.status == "recording" {
        return Err(ApiError::conflict(
            "the call is still being recorded; delete the recording after it ends",
        ));
    }
    if !store::recordings::delete(&mut tx.ex(), auth.company(), id).await? {
        return Err(ApiError::not_found("recording"));
    }
    audit::record(
        &mut tx.ex(),
        auth.company(),
        &auth.actor(),
        "delete",
        "recording",
        Some(id),
        &serde_json::json!({"call_id": rec.call_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Recording `id` of the caller's company, or 404.
async fn recording(state: &AppState, company: CompanyId, id: i64) -> Result<Recording, ApiError> {
    let mut conn = state.db.conn().await?;
    store::recordings::get(&mut conn.ex(), company, id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))
}

/// Opens the file of `rec` and tells its current size (a recording in progress grows).
async fn open(state: &AppState, rec: &Recording) -> Result<(tokio::fs::File, u64), ApiError> {
    let relative = Path::new(&rec.path);
    // The recorder writes `recordings/<company>/…`; anything else in the row is a bug or
    // tampering, and must not reach outside the data directory.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(ApiError::internal(format!(
            "recording {} has a path outside the data directory",
            rec.id
        )));
    }
    let missing = || {
        tracing::warn!(recording = rec.id, "recording file missing");
        ApiError::new(
            StatusCode::NOT_FOUND,
            "recording_file_missing",
            "recording file missing",
        )
    };
    let file = match tokio::fs::File::open(state.config.data_dir.join(relative)).await {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(ApiError::internal(format!(
                "opening recording {}: {e}",
                rec.id
            )));
        }
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("reading recording {}: {e}", rec.id)))?;
    if !meta.is_file() {
        return Err(missing());
    }
    Ok((file, meta.len()))
}

/// Streams `len` bytes of `file` from `start`.
async fn read(mut file: tokio::fs::File, start: u64, len: u64, id: i64) -> Result<Body, ApiError> {
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::internal(format!("reading recording {id}: {e}")))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024);
    Ok(Body::from_stream(stream))
}

/// The strong ETag of a finished recording: its SHA-256. None while it is written.
fn etag(rec: &Recording) -> Option<HeaderValue> {
    let sha = rec.sha256.as_deref()?;
    let hex = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| header_value(format!("\"{sha}\"")))
}

/// Whether `If-Range` (RFC 9110 §13.1.5), if sent, lets the `Range` apply: only a strong ETag
/// equal to ours does. A date cannot, as no `Last-Modified` is sent.
fn if_range_holds(if_range: Option<&HeaderValue>, etag: Option<&HeaderValue>) -> bool {
    match (if_range, etag) {
        (None, _) => true,
        (Some(sent), Some(ours)) => sent.as_bytes() == ours.as_bytes(),
        (Some(_), None) => false,
    }
}

fn file_headers(h: &mut HeaderMap, rec: &Recording, etag: Option<HeaderValue>, len: u64) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        header_value(format!("inline; filename=\"call-{}.wav\"", rec.call_id)),
    );
    if let Some(etag) = etag {
        h.insert(header::ETAG, etag);
    }
}

/// A header value from text this module formats from digits, hex and ASCII punctuation.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("digits, hex and ASCII punctuation make a valid header")
}

/// What a `Range` header (RFC 9110 §14.1.2) asks of a file of a given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ranged {
    /// 200 with the whole file: what this server answers to a header it ignores.
    Whole,
    /// 206 with bytes `first..=last`, both within the file.
    Part { first: u64, last: u64 },
    /// 416: one well-formed range that misses the file.
    Unsatisfiable,
}

impl Ranged {
    /// Evaluates `value` against a file of `size` bytes.
    fn of(value: &str, size: u64) -> Self {
        let Some((unit, set)) = value.split_once('=') else {
            return Self::Whole;
        };
        if !unit.eq_ignore_ascii_case("bytes") {
            return Self::Whole;
        }
        // `1#range-spec`: a list, where empty elements and spaces around commas are allowed.
        let specs: Vec<&str> = set
            .split(',')
            .map(|s| s.trim_matches([' ', '\t']))
            .filter(|s| !s.is_empty())
            .collect();
        let [spec] = specs[..] else {
            return Self::Whole;
        };
        let Some((first, last)) = spec.split_once('-') else {
            return Self::Whole;
        };
        // An empty file has no byte to point at; the RFC's one satisfiable form (a suffix)
        // would select nothing, so it is answered whole (and empty).
        if size == 0 {
            return Self::Whole;
        }
        if first.is_empty() {
            // `-<suffix-length>`: the last bytes, all of them if the file is shorter.
            return match digits(last) {
                None => Self::Whole,
                Some(0) => Self::Unsatisfiable,
                Some(n) => Self::Part {
                    first: size.saturating_sub(n),
                    last: size - 1,
                },
            };
        }
        let Some(first) = digits(first) else {
            return Self::Whole;
        };
        let last = match last {
            "" => None,
            l => match digits(l) {
                // A last-pos before the first-pos makes the range invalid, not unsatisfiable.
                Some(l) if l >= first => Some(l),
                _ => return Self::Whole,
            },
        };
        if first >= size {
            return Self::Unsatisfiable;
        }
        Self::Part {
            first,
            last: last.map_or(size - 1, |l| l.min(size - 1)),
        }
    }
}

/// `1*DIGIT`, saturating: a position past `u64::MAX` is past any file just the same.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::{HeaderValue, Ranged, if_range_holds};

    fn part(first: u64, last: u64) -> Ranged {
        Ranged::Part { first, last }
    }

    #[test]
    fn single_ranges_as_rfc_9110_defines_them() {
        let size = 48_044;
        for (value, want) in [
            ("bytes=1000-1999", part(1000, 1999)),
            ("bytes=0-0", part(0, 0)),
            ("bytes=0-", part(0, 48_043)),
            ("bytes=47000-", part(47_000, 48_043)),
            ("bytes=47000-99999", part(47_000, 48_043)),
            ("bytes=48043-48043", part(48_043, 48_043)),
            ("bytes=-500", part(47_544, 48_043)),
            ("bytes=-99999", part(0, 48_043)),
            ("bytes=-99999999999999999999999", part(0, 48_043)),
            ("BYTES=5-9", part(5, 9)),
            ("bytes= 5-9 ,", part(5, 9)),
            ("bytes=5-99999999999999999999999", part(5, 48_043)),
        ] {
            assert_eq!(Ranged::of(value, size), want, "{value}");
        }
    }

    #[test]
    fn unsatisfiable_ranges_answer_416() {
        for value in [
            "bytes=48044-",
            "bytes=99999-",
            "bytes=48044-48050",
            "bytes=-0",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(Ranged::of(value, 48_044), Ranged::Unsatisfiable, "{value}");
        }
    }

    #[test]
    fn malformed_and_multiple_ranges_are_ignored() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=5",
            "bytes=a-b",
            "bytes=+5-9",
            "bytes=9-5",
            "bytes=0-1,5-9",
            "bytes=0-1, 99999-",
            "items=0-9",
            "bytes =0-9",
        ] {
            assert_eq!(Ranged::of(value, 48_044), Ranged::Whole, "{value:?}");
        }
        // An empty file has no byte to name.
        assert_eq!(Ranged::of("bytes=-5", 0), Ranged::Whole);
        assert_eq!(Ranged::of("bytes=0-", 0), Ranged::Whole);
    }

    #[test]
    fn if_range_needs_our_strong_etag() {
        let ours = HeaderValue::from_static("\"ab\"");
        assert!(if_range_holds(None, Some(&ours)));
        assert!(if_range_holds(None, None));
        assert!(if_range_holds(Some(&ours), Some(&ours)));
        let weak = HeaderValue::from_static("W/\"ab\"");
        assert!(!if_range_holds(Some(&weak), Some(&ours)));
        let date = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert!(!if_range_holds(Some(&date), Some(&ours)));
        assert!(!if_range_holds(Some(&ours), None));
    }
}
