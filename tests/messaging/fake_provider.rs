//! A scriptable fake of Meta's Graph API and of WAHA, on 127.0.0.1 port 0.
//!
//! Every request is recorded (method, path, query, headers, body). Answers come from a script:
//! [`FakeProvider::push`] queues a canned response for requests whose path ends with a pattern,
//! consumed in order; without one, each path gets a default success in the provider's shape:
//! - `POST /{id}/messages`: WhatsApp `{messaging_product, contacts[{input, wa_id}],
//!   messages[{id:"wamid.<n>"}]}` when the body has `messaging_product` (`{success:true}` for a
//!   read receipt), else Messenger `{recipient_id, message_id:"m_<n>"}`;
//! - `POST /{id}/comments`, `/{id}/replies`: `{id:"<id>_<n>"}`;
//! - `GET /{id}`: a profile, Instagram fields when `fields` asks for `username`;
//! - `POST /api/sendText`: `{id:"true_<chatId>_<n>"}`; `POST /api/sendSeen`: `{}`.
//!
//! The Graph version prefix (`/v23.0`) may be part of the base URL or not; patterns match path
//! suffixes either way.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`…
    pub method: String,
    /// The path, e.g. `/v23.0/111/messages`.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Headers, names lowercased (the last value of a repeated header).
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, `Null` when it is not JSON.
    pub body: Value,
    /// The body as text.
    pub raw_body: String,
}

impl Recorded {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A canned answer.
#[derive(Clone, Debug)]
struct Canned {
    pattern: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: CannedBody,
    delay: Duration,
}

#[derive(Clone, Debug)]
enum CannedBody {
    Json(Value),
    Text(String),
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    script: Vec<Canned>,
    counter: u64,
}

type Shared = Arc<Mutex<Inner>>;

/// The running fake; the server task ends with the test's runtime.
pub struct FakeProvider {
    addr: SocketAddr,
    inner: Shared,
}

impl FakeProvider {
    /// Starts the server on 127.0.0.1, port 0.
    pub async fn start() -> Self {
        let inner = Shared::default();
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    /// The base URL, `http://127.0.0.1:PORT` (use it as the Graph base and as WAHA's URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a JSON answer for the next request whose path ends with `pattern` (e.g.
    /// `/messages`, `/111/messages`, `/api/sendText`, `/comments`; `""` matches every path).
    pub fn push(&self, pattern: &str, status: u16, body: Value) {
        self.push_with_headers(pattern, status, &[], body);
    }

    /// Like [`FakeProvider::push`], with response headers (e.g. `Retry-After`).
    pub fn push_with_headers(
        &self,
        pattern: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: Value,
    ) {
        self.queue(
            pattern,
            status,
            headers,
            CannedBody::Json(body),
            Duration::ZERO,
        );
    }

    /// Queues a plain-text answer (a proxy's error page, WAHA's text errors).
    pub fn push_text(&self, pattern: &str, status: u16, text: &str) {
        self.queue(
            pattern,
            status,
            &[],
            CannedBody::Text(text.to_owned()),
            Duration::ZERO,
        );
    }

    /// Queues a JSON answer sent only after `delay` (for client timeouts).
    pub fn push_delayed(&self, pattern: &str, delay: Duration, status: u16, body: Value) {
        self.queue(pattern, status, &[], CannedBody::Json(body), delay);
    }

    fn queue(
        &self,
        pattern: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: CannedBody,
        delay: Duration,
    ) {
        self.lock().script.push(Canned {
            pattern: pattern.to_owned(),
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
            delay,
        });
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Waits until at least `n` requests arrived and returns them all.
    ///
    /// # Panics
    /// When fewer came within `timeout`.
    pub async fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {timeout:?} for {n} requests, got {}: {requests:#?}",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A Graph error body: `{error{message, type, code, error_subcode?, fbtrace_id}}`.
pub fn graph_error(code: i64, subcode: Option<i64>, message: &str) -> Value {
    let mut body = json!({"error": {
        "message": message,
        "type": if code == 190 { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "fbtrace_id": "AFakeTrace",
    }});
    if let Some(sub) = subcode {
        body["error"]["error_subcode"] = json!(sub);
    }
    body
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let recorded = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw_body,
    };
    let (canned, n) = {
        let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.counter += 1;
        let n = inner.counter;
        let found = inner
            .script
            .iter()
            .position(|c| recorded.path.ends_with(&c.pattern));
        let canned = found.map(|i| inner.script.remove(i));
        inner.requests.push(recorded.clone());
        (canned, n)
    };
    match canned {
        Some(c) => {
            if !c.delay.is_zero() {
                tokio::time::sleep(c.delay).await;
            }
            let status =
                StatusCode::from_u16(c.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = match c.body {
                CannedBody::Json(v) => (status, axum::Json(v)).into_response(),
                CannedBody::Text(t) => (status, t).into_response(),
            };
            for (k, v) in c.headers {
                if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                    response.headers_mut().insert(k, v);
                }
            }
            response
        }
        None => default_answer(&recorded, n),
    }
}

/// The provider's success answer for a request nobody scripted.
fn default_answer(req: &Recorded, n: u64) -> Response {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let body = &req.body;
    // NestJS (WAHA) answers a POST with 201.
    let created = |v: Value| (StatusCode::CREATED, axum::Json(v)).into_response();
    let answer = match (req.method.as_str(), segments.as_slice()) {
        ("POST", [.., "api", "sendText"]) => {
            let chat = body["chatId"].as_str().unwrap_or("unknown@c.us");
            return created(json!({"id": format!("true_{chat}_{n}")}));
        }
        ("POST", [.., "api", "sendSeen"]) => return created(json!({})),
        ("POST", [.., _, "messages"]) if body.get("messaging_product").is_some() => {
            if body["status"] == "read" {
                json!({"success": true})
            } else {
                let to = body["to"].clone();
                json!({"messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": format!("wamid.{n}")}]})
            }
        }
        ("POST", [.., _, "messages"]) => {
            let recipient = body["recipient"]["id"].clone();
            if body.get("sender_action").is_some() {
                json!({"recipient_id": recipient})
            } else {
                json!({"recipient_id": recipient, "message_id": format!("m_{n}")})
            }
        }
        ("POST", [.., id, "comments" | "replies"]) => json!({"id": format!("{id}_{n}")}),
        ("GET", [.., id]) => {
            if req.query.as_deref().is_some_and(|q| q.contains("username")) {
                json!({"id": id, "name": "Fake User", "username": "fake.user",
                    "profile_pic": "https://cdn.example/ig.jpg"})
            } else {
                json!({"id": id, "first_name": "Fake", "last_name": "User",
                    "profile_pic": "https://cdn.example/fb.jpg", "locale": "en_US"})
            }
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(graph_error(803, None, "unknown path in the fake provider")),
            )
                .into_response();
        }
    };
    axum::Json(answer).into_response()
}
