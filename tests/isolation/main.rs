//! Tenancy and permissions from outside: another company's resources, every route's permission, pagination.

#[path = "../common/mod.rs"]
mod common;

mod cross_company;
mod permissions;

use common::TestServer;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A response: status, headers and the body as JSON (`Null` when it is empty or not JSON).
pub(crate) struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// Sends `method path` with an optional bearer token and an optional JSON body.
pub(crate) async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let mut req = match token {
        Some(t) => server.req(method.clone(), path, t),
        None => server.http.request(method.clone(), server.url(path)),
    };
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

pub(crate) async fn get(server: &TestServer, path: &str, token: &str) -> Value {
    let r = send(server, Method::GET, path, Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
    r.body
}

pub(crate) async fn post(server: &TestServer, path: &str, token: &str, body: Value) -> Value {
    let r = send(server, Method::POST, path, Some(token), Some(&body)).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "POST {path} {body}: {}",
        r.body
    );
    r.body
}

/// Asserts an error status and `{"error": {"code": code, "message": "…"}}`.
pub(crate) fn assert_error(r: &Resp, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{what}: {}", r.body);
    assert!(r.body["error"]["message"].is_string(), "{what}: {}", r.body);
}

pub(crate) fn id_of(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

/// The ids of a JSON array, or of a page's `items`.
pub(crate) fn ids(v: &Value) -> Vec<i64> {
    let items = if v.is_array() { v } else { &v["items"] };
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(id_of)
        .collect()
}
