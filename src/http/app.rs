//! The agent web app, served by masterz itself at `/app/`.
//!
//! Plain HTML, CSS and JavaScript modules compiled into the binary: no build step, no CDN, no
//! external fonts, so the app works on a LAN without internet. Every file is answered with
//! `Cache-Control: no-cache` and a strong ETag (a hash of its content, computed once), so a browser
//! revalidates on each load and gets a 304 until the binary changes; a new release is picked up at
//! once, without stale modules mixed with fresh ones.
//!
//! The answers carry a Content-Security-Policy that allows only this origin's scripts and styles
//! (no inline code, no `eval`), the WebSocket, same-origin media (recordings) and `data:` images,
//! and forbids framing.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use super::ApiError;

/// What the app's pages may load and where they may connect.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; \
                   img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One file of the app.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The files, `index.html` first (it is also `/app/`).
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: HTML,
        body: include_bytes!("app/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: CSS,
        body: include_bytes!("app/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("app/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_bytes!("app/api.js"),
    },
    Asset {
        name: "ui.js",
        content_type: JS,
        body: include_bytes!("app/ui.js"),
    },
    Asset {
        name: "phone.js",
        content_type: JS,
        body: include_bytes!("app/phone.js"),
    },
    Asset {
        name: "callpanel.js",
        content_type: JS,
        body: include_bytes!("app/callpanel.js"),
    },
    Asset {
        name: "inbox.js",
        content_type: JS,
        body: include_bytes!("app/inbox.js"),
    },
    Asset {
        name: "timeline.js",
        content_type: JS,
        body: include_bytes!("app/timeline.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: SVG,
        body: include_bytes!("app/favicon.svg"),
    },
];

/// The strong ETag of each asset, in the order of [`ASSETS`]: 128 bits of the SHA-256 of its
/// content, which is fixed for the life of the process.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let tag = format!("\"{}\"", hex::encode(&digest[..16]));
            // Quotes and hex digits only: always a valid header value.
            HeaderValue::from_str(&tag).expect("an ETag of hex digits is a valid header value")
        })
        .collect()
});

/// `GET /` and `/app` redirect to the app, `/app/` and `/app/{file}` serve it.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/app/") }))
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route("/app/", get(index))
        .route("/app/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(i, &headers),
        None => ApiError::not_found("file").into_response(),
    }
}

/// Answers asset `i`: 304 when `If-None-Match` names its ETag, else the file.
fn serve(i: usize, request: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = ETAGS[i].clone();
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| none_match_hits(v, &etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Whether an `If-None-Match` value matches `etag`: `*`, or a list of entity tags compared weakly
/// (RFC 9110 §13.1.2: `W/"x"` matches `"x"`).
fn none_match_hits(value: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let ours = etag.as_bytes();
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt as _;

    use super::{ASSETS, routes};

    async fn get(path: &str, headers: &[(&str, &str)]) -> axum::response::Response {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        routes::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: axum::response::Response) -> String {
        let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header(r: &axum::response::Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(&name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn root_and_app_redirect_to_the_app() {
        for path in ["/", "/app"] {
            let r = get(path, &[]).await;
            assert!(r.status().is_redirection(), "{path}: {}", r.status());
            assert_eq!(header(&r, header::LOCATION), "/app/");
        }
    }

    #[tokio::test]
    async fn index_is_html_with_the_security_headers() {
        let r = get("/app/", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
        let csp = header(&r, header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'self'",
            "connect-src 'self' ws: wss:",
            "media-src 'self' blob:",
            "img-src 'self' data:",
            "style-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header(&r, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(&r, header::REFERRER_POLICY), "same-origin");
        assert!(text(r).await.starts_with("<!doctype html>"));
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        for (path, ty) in [
            ("/app/index.html", "text/html; charset=utf-8"),
            ("/app/app.css", "text/css; charset=utf-8"),
            ("/app/app.js", "text/javascript; charset=utf-8"),
            ("/app/phone.js", "text/javascript; charset=utf-8"),
            ("/app/favicon.svg", "image/svg+xml"),
        ] {
            let r = get(path, &[]).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, header::CONTENT_TYPE), ty, "{path}");
            assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        }
    }

    #[tokio::test]
    async fn etag_answers_304_and_a_changed_one_200() {
        let r = get("/app/app.js", &[]).await;
        let etag = header(&r, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34);
        let body = text(r).await;

        for sent in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"other\", {etag}"),
            "*".to_owned(),
        ] {
            let r = get("/app/app.js", &[("if-none-match", &sent)]).await;
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(header(&r, header::ETAG), etag);
            assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
            assert!(text(r).await.is_empty());
        }

        let r = get("/app/app.js", &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(text(r).await, body);

        // Another file has another tag; `/app/` and `/app/index.html` are one file.
        let css = get("/app/app.css", &[]).await;
        assert_ne!(header(&css, header::ETAG), etag);
        let a = get("/app/", &[]).await;
        let b = get("/app/index.html", &[]).await;
        assert_eq!(header(&a, header::ETAG), header(&b, header::ETAG));
    }

    #[tokio::test]
    async fn unknown_file_is_the_json_404() {
        for path in ["/app/nope.js", "/app/..%2Fapp.rs", "/app/app.js.map"] {
            let r = get(path, &[]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(header(&r, header::CONTENT_TYPE), "application/json");
            let body: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
            assert_eq!(body["error"]["code"], "not_found");
        }
    }

    #[tokio::test]
    async fn head_answers_without_a_body() {
        let r = routes::<()>()
            .oneshot(Request::head("/app/app.css").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().contains_key(header::ETAG));
        assert!(text(r).await.is_empty());
    }

    /// Every file the page or a module refers to is served: a typo in an import would otherwise
    /// only show as a blank page.
    #[test]
    fn every_referenced_file_is_served() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for asset in ASSETS {
            let Ok(source) = std::str::from_utf8(asset.body) else {
                continue;
            };
            for pattern in ["src=\"", "href=\"", "from \"./", "import(\"./"] {
                for piece in source.split(pattern).skip(1) {
                    let target = piece.split('"').next().unwrap_or("");
                    let target = target.trim_start_matches("./");
                    if target.is_empty()
                        || target.starts_with('#')
                        || target.starts_with('/')
                        || target.contains("${")
                    {
                        continue;
                    }
                    assert!(
                        served.contains(&target),
                        "{} refers to {target}, which is not served",
                        asset.name
                    );
                }
            }
        }
    }

    /// The ids the end-to-end tests use are in the page.
    #[test]
    fn the_page_has_the_stable_ids() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        for id in [
            "login-form",
            "login-email",
            "login-password",
            "login-submit",
            "login-error",
            "logout",
            "ws-status",
            "presence",
            "presence-status",
            "dial-number",
            "dial-submit",
            "call-panel",
            "call-number",
            "call-name",
            "call-customer",
            "call-timeline",
            "call-answer",
            "call-decline",
            "call-hangup",
            "call-mute",
            "call-hold",
            "call-keypad",
            "transfer-target",
            "transfer-submit",
            "call-timer",
            "call-error",
            "remote-audio",
            "conversations",
            "filter-open",
            "filter-mine",
            "filter-unassigned",
            "timeline",
            "customer-card",
            "reply-text",
            "reply-send",
        ] {
            assert_eq!(
                html.matches(&format!("id=\"{id}\"")).count(),
                1,
                "id {id} must appear exactly once"
            );
        }
        for digit in ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"] {
            assert!(
                html.contains(&format!("data-digit=\"{digit}\"")),
                "keypad lacks {digit}"
            );
        }
        assert!(html.contains("<option value=\"available\""));
        assert!(html.contains("<option value=\"away\""));
    }
}
