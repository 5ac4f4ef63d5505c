//! The server, tenants, signed Messenger webhooks and API helpers the AI tests share.
#![allow(dead_code)]

use std::time::Duration;

use masterz::messaging::signature::meta_header;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, Tenant, TestServer, seed_tenant};

pub(crate) const APP_SECRET: &str = "app-secret-for-ai-tests-41d9";
pub(crate) const KEY_A: &str = "sk-test-company-a-key-7f3e91";
pub(crate) const KEY_B: &str = "sk-test-company-b-key-0c55d2";

pub(crate) struct Ai {
    pub(crate) s: TestServer,
    pub(crate) a: Tenant,
    pub(crate) b: Tenant,
}

impl Ai {
    /// A server whose default OpenAI URL is `openai` (as `MASTERZ_OPENAI_URL` would set it),
    /// sending the 3 newest messages and 2 passages.
    pub(crate) async fn start(
        backend: Backend,
        openai: &str,
        adjust: impl FnOnce(&mut masterz::config::Config),
    ) -> Option<Self> {
        let url = openai.to_owned();
        let s = TestServer::start_with(backend, |c| {
            c.meta_app_secret = Some(masterz::secrets::Secret::new(APP_SECRET.into()));
            c.meta_graph_url = "http://127.0.0.1:9".into();
            c.openai_url = url;
            c.ai_context_messages = 3;
            c.ai_knowledge_chunks = 2;
            adjust(c);
        })
        .await?;
        let a = seed_tenant(s.store(), "ai-a").await;
        let b = seed_tenant(s.store(), "ai-b").await;
        Some(Self { s, a, b })
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.s.req(method, path, token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, v) = self.call(method.clone(), path, token, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v:#}");
        v
    }

    pub(crate) async fn page(&self, t: &Tenant, page_id: &str) -> i64 {
        let v = self
            .ok(Method::POST, "/api/v1/channel-accounts", &t.admin_token,
                Some(json!({"kind": "messenger", "name": format!("Page {page_id}"), "external_id": page_id,
                    "credentials": {"access_token": format!("EAAB-{page_id}")}})))
            .await;
        v["id"].as_i64().unwrap()
    }

    /// Posts a signed Messenger webhook with `texts` from `psid` to `page_id`.
    pub(crate) async fn inbound(&self, page_id: &str, psid: &str, texts: &[&str]) {
        let base = 1_764_100_000_000_i64 + i64::from(rand_u16()) * 1000;
        let messaging: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({"sender": {"id": psid}, "recipient": {"id": page_id}, "timestamp": base + i as i64,
                    "message": {"mid": format!("m_{psid}_{base}_{i}"), "text": t}})
            })
            .collect();
        let body = json!({"object": "page", "entry": [{"id": page_id, "time": base, "messaging": messaging}]})
            .to_string();
        let r = self
            .s
            .http
            .post(self.s.url("/webhooks/meta"))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                meta_header(APP_SECRET.as_bytes(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// The conversation of `t` on channel `account` whose messages include `marker`, once it has
    /// `count` messages.
    pub(crate) async fn conversation(
        &self,
        t: &Tenant,
        account: i64,
        marker: &str,
        count: usize,
    ) -> i64 {
        for _ in 0..200 {
            let list = self
                .ok(
                    Method::GET,
                    "/api/v1/conversations?limit=200",
                    &t.admin_token,
                    None,
                )
                .await;
            for c in list["items"].as_array().unwrap() {
                if c["channel_account_id"] != account {
                    continue;
                }
                let id = c["id"].as_i64().unwrap();
                let msgs = self
                    .ok(
                        Method::GET,
                        &format!("/api/v1/conversations/{id}/messages?limit=200"),
                        &t.admin_token,
                        None,
                    )
                    .await;
                let items = msgs["items"].as_array().unwrap();
                if items.len() >= count
                    && items
                        .iter()
                        .any(|m| m["body"].as_str().is_some_and(|b| b.contains(marker)))
                {
                    return id;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no conversation with {count} messages and {marker:?} on channel {account}");
    }

    /// The conversation's suggestions once `n` of them have left `pending`.
    pub(crate) async fn settled(&self, t: &Tenant, conversation: i64, n: usize) -> Vec<Value> {
        let mut last = Value::Null;
        for _ in 0..300 {
            last = self
                .ok(
                    Method::GET,
                    &format!("/api/v1/conversations/{conversation}/suggestions"),
                    &t.agent_token,
                    None,
                )
                .await;
            let items = last.as_array().unwrap();
            if items.len() >= n && items.iter().all(|s| s["state"] != "pending") {
                return items.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("suggestions of conversation {conversation} did not settle: {last:#}");
    }

    pub(crate) async fn opt_in(&self, t: &Tenant, account: i64, auto_reply: bool) {
        self.ok(
            Method::PUT,
            &format!("/api/v1/channel-accounts/{account}/ai"),
            &t.admin_token,
            Some(json!({"suggestions": true, "auto_reply": auto_reply})),
        )
        .await;
    }

    pub(crate) async fn knowledge(&self, t: &Tenant, title: &str, body: &str) -> i64 {
        self.ok(
            Method::POST,
            "/api/v1/knowledge",
            &t.admin_token,
            Some(json!({"title": title, "body": body})),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    }

    pub(crate) async fn logs(&self, t: &Tenant) -> Vec<Value> {
        let v = self
            .ok(
                Method::GET,
                "/api/v1/integration-logs?limit=200",
                &t.admin_token,
                None,
            )
            .await;
        v["items"].as_array().unwrap().clone()
    }
}

pub(crate) fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).unwrap();
    u16::from_le_bytes(b)
}

/// The chat messages of a request, as (role, content).
pub(crate) fn chat(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}
