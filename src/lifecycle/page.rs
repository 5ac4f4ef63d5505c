//! The public Data Deletion page (P21), no login: `GET /data-deletion` explains how a person gets
//! their data deleted and looks a confirmation code up; `GET /data-deletion/{code}` shows that
//! request's status. The pages show no personal data (a request row holds none) and are served
//! without scripts, under a Content-Security-Policy that allows only their own stylesheet (by
//! hash), forbids framing, and lets the form submit to this origin only.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::erase::plausible_code;
use crate::domain::Timestamp;
use crate::http::AppState;
use crate::store::deletion::{self, Counts, DeletionRequest};

/// The path of the page.
pub const PATH: &str = "/data-deletion";

const TEMPLATE: &str = include_str!("../http/pages/data-deletion.html");

/// The policy, with the hash of the template's one `<style>` element.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let style = TEMPLATE
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map_or("", |(css, _)| css);
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    // ASCII only (base64 and fixed text): always a valid header value.
    HeaderValue::from_str(&policy).expect("a CSP of ASCII text is a valid header value")
});

/// The page routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(PATH, get(index))
        .route("/data-deletion/{code}", get(status))
}

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page; `body` is already HTML.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = TEMPLATE
        .replacen("{{title}}", &esc(title), 1)
        .replacen("{{body}}", body, 1);
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, CSP.clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        html,
    )
        .into_response()
}

const LOOKUP_FORM: &str = r#"<form method="get" action="/data-deletion">
  <label for="code">Confirmation code</label>
  <input id="code" name="code" autocomplete="off" spellcheck="false" maxlength="64" required>
  <button type="submit">Look up</button>
</form>"#;

/// `?code=` of the look-up form.
#[derive(Deserialize)]
struct Lookup {
    code: Option<String>,
}

async fn index(Query(q): Query<Lookup>) -> Response {
    if let Some(code) = q.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        if !plausible_code(code) {
            return not_found();
        }
        // The code is hex (checked above): safe in a path.
        return Redirect::to(&format!("{PATH}/{code}")).into_response();
    }
    let body = format!(
        r#"<h1>Deleting your data</h1>
<p>Businesses use masterz to answer the calls and messages of their customers: phone calls,
Facebook Messenger, Instagram and WhatsApp. If you called or wrote to such a business, it holds
what you said to it here, and you can have all of it deleted.</p>
<h2>How to ask for deletion</h2>
<ul>
  <li><strong>Ask the business</strong> you called or wrote to. It deletes everything about you
  with one action and gives you a confirmation code.</li>
  <li><strong>Through Facebook or Instagram:</strong> in your Facebook settings, under
  <em>Apps and websites</em>, remove the business's app and ask for your data to be deleted. Meta
  tells us, we delete your data at once, and Meta shows you a confirmation code and a link to
  this page.</li>
</ul>
<h2>What is deleted</h2>
<p>Your customer record with every way to reach you (phone numbers, Messenger, Instagram and
WhatsApp ids), your conversations and messages, your calls with their recordings, the notes the
business wrote about you, reply suggestions made for your messages, and our logs of the
exchanges with Meta and WhatsApp that name you.</p>
<h2>Look up a request</h2>
<p>Enter the confirmation code you were given to see what became of your request.</p>
{LOOKUP_FORM}"#
    );
    page(StatusCode::OK, "Data deletion", &body)
}

fn not_found() -> Response {
    let body = format!(
        "<h1>Unknown confirmation code</h1>\n<p>No deletion request has this code. Check that \
         you copied all of it.</p>\n{LOOKUP_FORM}"
    );
    page(StatusCode::NOT_FOUND, "Unknown confirmation code", &body)
}

fn date(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// The kinds of data a request deleted, with counts, in the order a person thinks of them.
fn kinds(c: &Counts) -> Vec<(&'static str, u64)> {
    [
        ("Customer records", c.customers),
        (
            "Ways to reach you (phone numbers, channel ids)",
            c.identities,
        ),
        ("Conversations", c.conversations),
        ("Messages", c.messages),
        ("Calls", c.calls),
        ("Call recordings", c.recordings),
        ("Notes about you", c.notes),
        ("Reply suggestions", c.ai_suggestions),
        ("Logged exchanges with Meta or WhatsApp", c.integration_logs),
        ("Queued requests to Meta or WhatsApp", c.outbox),
        ("Delivery and read receipts", c.receipts),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .collect()
}

/// The status section of a request.
pub(super) fn render(r: &DeletionRequest) -> String {
    let (class, headline) = match r.state.as_str() {
        "completed" => ("completed", "Completed"),
        "refused" => ("refused", "Refused"),
        _ => ("pending", "Pending"),
    };
    let source = match r.source.as_str() {
        "meta" => "Facebook or Instagram (Meta's data-deletion request)",
        "api" => "the business you contacted",
        _ => "this page",
    };
    let mut out = format!(
        "<h1>Deletion request</h1>\n<p class=\"state {class}\">{headline}</p>\n<dl>\n\
         <dt>Confirmation code</dt><dd><code>{}</code></dd>\n\
         <dt>Requested through</dt><dd>{source}</dd>\n\
         <dt>Received</dt><dd>{}</dd>\n",
        esc(&r.code),
        date(r.requested_at)
    );
    if let Some(done) = r.completed_at {
        let label = if r.state == "refused" {
            "Decided"
        } else {
            "Carried out"
        };
        out.push_str(&format!("<dt>{label}</dt><dd>{}</dd>\n", date(done)));
    }
    out.push_str("</dl>\n");
    match r.state.as_str() {
        "completed" => {
            let kinds = kinds(&r.counts());
            if kinds.is_empty() {
                out.push_str(
                    "<p>We found no data about you, so nothing needed to be deleted. Nothing \
                     about you is kept.</p>\n",
                );
            } else {
                out.push_str("<h2>What was deleted</h2>\n<ul>\n");
                for (kind, n) in kinds {
                    out.push_str(&format!("  <li>{kind}: {n}</li>\n"));
                }
                out.push_str(
                    "</ul>\n<p>All of it was deleted for good, recording files included. \
                     Nothing about you is kept.</p>\n",
                );
            }
        }
        "refused" => {
            let reason = r.reason.as_deref().unwrap_or("no reason was recorded");
            out.push_str(&format!(
                "<h2>Why it was refused</h2>\n<p>{}</p>\n<p>Contact the business you called or \
                 wrote to if you disagree.</p>\n",
                esc(reason)
            ));
        }
        _ => out.push_str(
            "<p>The request was received and will be carried out shortly. Look again \
             later.</p>\n",
        ),
    }
    out
}

async fn status(State(state): State<Arc<AppState>>, Path(code): Path<String>) -> Response {
    if !plausible_code(&code) {
        return not_found();
    }
    let found = async {
        let mut conn = state.db.conn().await?;
        deletion::request_by_code(&mut conn.ex(), &code).await
    }
    .await;
    match found {
        Ok(Some(r)) => page(StatusCode::OK, "Deletion request", &render(&r)),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a deletion request");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "<h1>Try again later</h1>\n<p>The status cannot be shown right now.</p>",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(state: &str, deleted: &str) -> DeletionRequest {
        DeletionRequest {
            code: "00ff".repeat(6),
            source: "meta".into(),
            state: state.into(),
            reason: Some("<b>legal hold</b>".into()),
            requested_at: Timestamp(1_770_000_000_000),
            completed_at: Some(Timestamp(1_770_000_060_000)),
            company_id: None,
            deleted: Some(deleted.into()),
        }
    }

    #[test]
    fn completed_requests_list_what_went_or_say_nothing_was_found() {
        let html = render(&request("completed", r#"{"customers":1,"messages":3}"#));
        assert!(html.contains("Completed"));
        assert!(html.contains("Messages: 3"));
        assert!(html.contains("2026-02-02 02:40 UTC"), "{html}");
        assert!(!html.contains("Calls:"));
        let none = render(&request("completed", "{}"));
        assert!(none.contains("We found no data about you"));
    }

    #[test]
    fn a_refusal_shows_its_reason_escaped() {
        let html = render(&request("refused", "{}"));
        assert!(html.contains("&lt;b&gt;legal hold&lt;/b&gt;"));
        assert!(!html.contains("<b>legal"));
    }

    #[test]
    fn the_policy_hashes_the_stylesheet_and_allows_no_script() {
        let csp = CSP.to_str().expect("the policy is ASCII");
        assert!(csp.contains("style-src 'sha256-"));
        assert!(!csp.contains("script-src"));
        assert!(csp.starts_with("default-src 'none'"));
        assert!(!TEMPLATE.contains("<script"));
    }
}
