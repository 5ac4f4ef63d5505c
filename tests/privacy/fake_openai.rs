//! A scriptable fake of an OpenAI-compatible Chat Completions API on 127.0.0.1 port 0: every
//! request is recorded; answers come from a queue of canned responses, else a success whose text
//! names the request's number (`Suggested reply 3`).
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// `Authorization` as sent.
    pub authorization: Option<String>,
    /// The body as JSON.
    pub body: Value,
    /// The body as text.
    pub raw: String,
}

/// A canned answer: status, headers, JSON body.
type Canned = (u16, Vec<(String, String)>, Value);

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    script: Vec<Canned>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeOpenAi {
    /// Base URL to configure (`http://127.0.0.1:<port>/v1`).
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeOpenAi {
    /// Starts the fake.
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base: format!("http://{addr}/v1"),
            inner,
        }
    }

    /// Queues an answer for the next request.
    pub fn push(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.inner
            .lock()
            .unwrap()
            .script
            .push((status, headers, body));
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Waits until at least `n` requests came (at most 20 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Seen> {
        for _ in 0..200 {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the fake OpenAI got {} requests, not {n}",
            self.seen().len()
        );
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let (n, canned) = {
        let mut inner = inner.lock().unwrap();
        inner.seen.push(Seen {
            path: uri.path().to_owned(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
        });
        let canned = (!inner.script.is_empty()).then(|| inner.script.remove(0));
        (inner.seen.len(), canned)
    };
    match canned {
        Some((status, headers, body)) => {
            let mut response =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (k, v) in headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            response
        }
        None => axum::Json(json!({
            "id": format!("chatcmpl-{n}"),
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": "fake-model-1",
            "choices": [{"index": 0, "message": {"role": "assistant",
                "content": format!("Suggested reply {n}"), "refusal": null},
                "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        }))
        .into_response(),
    }
}
