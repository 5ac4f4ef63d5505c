//! The HTTP API from outside: sessions, the login limit, grants, auditing, secrets, bad input,
//! SIP credentials, registrations and trunks.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod calls;
mod data;
mod sip;
mod trunks;

use common::TestServer;
use serde_json::{Value, json};

pub(crate) async fn login(s: &TestServer, email: &str, password: &str) -> reqwest::Response {
    s.http
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

pub(crate) fn session_cookie(resp: &reqwest::Response) -> String {
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .unwrap()
        .to_owned();
    set.split(';').next().unwrap().to_owned()
}

pub(crate) async fn error_code(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.expect("JSON error body");
    body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned()
}
