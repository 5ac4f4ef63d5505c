//! A server with a tenant and one channel account of each messaging kind, created through the API
//! as an admin would, and helpers to post signed webhooks and read what they did.
#![allow(dead_code, unreachable_pub)]

use masterz::messaging::signature::{meta_header, waha_header};
use masterz::store::CompanyId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, Tenant, TestServer, seed_tenant};

pub const APP_SECRET: &str = "app-secret-for-tests-5f1c";
pub const VERIFY_TOKEN: &str = "verify-token-for-tests-9a2e";
pub const PAGE_ID: &str = "104857600000001";
pub const IG_ID: &str = "17841400000000001";
pub const WABA_ID: &str = "102290129340398";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const WA_PHONE: &str = "+4915112345678";
pub const WAHA_API_KEY: &str = "waha-api-key-for-tests-77c1";
pub const WAHA_HMAC_KEY: &str = "waha-hmac-key-for-tests-0d3b";
pub const PAGE_TOKEN: &str = "EAAB-page-token-for-tests-4b8d";
pub const WA_TOKEN: &str = "EAAB-wa-token-for-tests-e21f";

pub struct Bridge {
    pub s: TestServer,
    pub t: Tenant,
    pub messenger: i64,
    pub instagram: i64,
    pub whatsapp: i64,
    pub waha: i64,
}

pub fn fixture(path: &str) -> Vec<u8> {
    let file = format!(
        "{}/tests/fixtures/messaging/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

impl Bridge {
    /// A server whose Graph and WAHA calls go to `provider` (a base URL), if given.
    pub async fn start(backend: Backend, provider: Option<String>) -> Option<Self> {
        let graph = provider.clone();
        let s = TestServer::start_with(backend, |c| {
            c.meta_app_secret = Some(masterz::secrets::Secret::new(APP_SECRET.into()));
            c.meta_verify_token = Some(masterz::secrets::Secret::new(VERIFY_TOKEN.into()));
            // Never the real Graph API: without a fake, a closed local port.
            c.meta_graph_url = graph.unwrap_or_else(|| "http://127.0.0.1:9".into());
            c.outbox_max_attempts = 4;
        })
        .await?;
        let t = seed_tenant(s.store(), "chat").await;
        let waha_base = provider.unwrap_or_else(|| "http://127.0.0.1:9".into());
        let mut b = Self {
            s,
            t,
            messenger: 0,
            instagram: 0,
            whatsapp: 0,
            waha: 0,
        };
        b.messenger = b
            .channel(
                json!({"kind": "messenger", "name": "Page", "external_id": PAGE_ID,
                "credentials": {"access_token": PAGE_TOKEN}}),
            )
            .await;
        b.instagram = b
            .channel(
                json!({"kind": "instagram", "name": "IG", "external_id": IG_ID,
                "credentials": {"access_token": PAGE_TOKEN}}),
            )
            .await;
        b.whatsapp = b
            .channel(
                json!({"kind": "whatsapp_cloud", "name": "WA", "external_id": PHONE_NUMBER_ID,
                "settings": {"waba_id": WABA_ID}, "credentials": {"access_token": WA_TOKEN}}),
            )
            .await;
        b.waha = b
            .channel(
                json!({"kind": "waha", "name": "WAHA", "external_id": "default",
                "settings": {"base_url": waha_base, "session": "default"},
                "credentials": {"api_key": WAHA_API_KEY, "hmac_key": WAHA_HMAC_KEY}}),
            )
            .await;
        Some(b)
    }

    pub async fn channel(&self, body: Value) -> i64 {
        let r = self
            .s
            .req(
                Method::POST,
                "/api/v1/channel-accounts",
                &self.t.admin_token,
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        v["id"].as_i64().unwrap()
    }

    pub fn company(&self) -> CompanyId {
        self.t.company
    }

    pub fn state(&self) -> &masterz::http::AppState {
        &self.s.server.as_ref().unwrap().state
    }

    /// Posts `body` to `/webhooks/meta` signed with the app secret.
    pub async fn meta(&self, body: &[u8]) -> StatusCode {
        self.meta_signed(body, &meta_header(APP_SECRET.as_bytes(), body))
            .await
    }

    pub async fn meta_signed(&self, body: &[u8], signature: &str) -> StatusCode {
        self.s
            .http
            .post(self.s.url("/webhooks/meta"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Posts `body` to the WAHA channel's webhook with a valid HMAC.
    pub async fn waha(&self, body: &[u8]) -> StatusCode {
        self.s
            .http
            .post(self.s.url(&format!("/webhooks/waha/{}", self.waha)))
            .header("content-type", "application/json")
            .header(
                "x-webhook-hmac",
                waha_header(WAHA_HMAC_KEY.as_bytes(), body),
            )
            .header("x-webhook-hmac-algorithm", "sha512")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Applies every stored event now (the processor's single step).
    pub async fn settle(&self) {
        masterz::messaging::process::run_once(self.state())
            .await
            .unwrap();
    }

    /// Sends what the outbox has due now.
    pub async fn send_due(&self) -> usize {
        masterz::messaging::outbox::step(self.state())
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .s
            .req(Method::GET, path, &self.t.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// The customer with the identity `(kind, account, external id)`.
    pub async fn customer(&self, kind: &str, account: Option<i64>, external: &str) -> Option<i64> {
        let mut conn = self.s.store().conn().await.unwrap();
        masterz::store::customers::find_identity(
            &mut conn.ex(),
            self.company(),
            kind,
            account,
            external,
        )
        .await
        .unwrap()
        .map(|i| i.customer_id)
    }

    /// The customer's timeline items, newest first.
    pub async fn timeline(&self, customer: i64) -> Vec<Value> {
        let v = self
            .get(&format!("/api/v1/customers/{customer}/timeline?limit=200"))
            .await;
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Every message of the company (id order).
    pub async fn messages(&self) -> Vec<masterz::store::messages::Message> {
        let mut conn = self.s.store().conn().await.unwrap();
        let ids: Vec<i64> = sqlx_ids(&mut conn, self.company()).await;
        let mut out = Vec::new();
        for id in ids {
            out.push(
                masterz::store::messages::get(&mut conn.ex(), self.company(), id)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        out
    }

    pub async fn message_by_external(
        &self,
        account: i64,
        external: &str,
    ) -> Option<masterz::store::messages::Message> {
        let mut conn = self.s.store().conn().await.unwrap();
        masterz::store::messages::by_external(&mut conn.ex(), self.company(), account, external)
            .await
            .unwrap()
    }

    /// Integration log rows of every company and none (id order): `(state, status, error)`.
    pub async fn log_states(&self) -> Vec<(String, Option<i32>, Option<String>)> {
        let mut conn = self.s.store().conn().await.unwrap();
        match conn.ex() {
            masterz::store::Ex::Sqlite(c) => {
                sqlx::query_as("SELECT state, status, error FROM integration_logs ORDER BY id")
                    .fetch_all(&mut *c)
                    .await
                    .unwrap()
            }
            masterz::store::Ex::Postgres(c) => {
                sqlx::query_as("SELECT state, status, error FROM integration_logs ORDER BY id")
                    .fetch_all(&mut *c)
                    .await
                    .unwrap()
            }
        }
    }

    /// Stores an outbound message with a provider id, as if sent earlier (for receipts).
    pub async fn sent_message(&self, account: i64, customer: i64, external: &str) -> i64 {
        let mut tx = self.s.store().begin().await.unwrap();
        let conv = masterz::store::messages::conversation_for(
            &mut tx.ex(),
            self.company(),
            customer,
            account,
            false,
        )
        .await
        .unwrap();
        let id = masterz::store::messages::insert(
            &mut tx.ex(),
            self.company(),
            &masterz::store::messages::ChannelMessageNew {
                conversation_id: conv,
                customer_id: customer,
                channel_account_id: account,
                direction: "out",
                kind: "message",
                sender_user_id: Some(self.t.agent),
                body: Some("Ihr Termin ist bestätigt."),
                attachments: None,
                reply_to: None,
                thread: None,
                status: "sent",
                external_id: Some(external),
                at: masterz::store::now_ms() - 60_000,
            },
        )
        .await
        .unwrap()
        .unwrap();
        tx.commit().await.unwrap();
        id
    }
}

async fn sqlx_ids(conn: &mut masterz::store::Conn, company: CompanyId) -> Vec<i64> {
    match conn.ex() {
        masterz::store::Ex::Sqlite(c) => {
            sqlx::query_scalar("SELECT id FROM messages WHERE company_id = $1 ORDER BY id")
                .bind(company)
                .fetch_all(&mut *c)
                .await
                .unwrap()
        }
        masterz::store::Ex::Postgres(c) => {
            sqlx::query_scalar("SELECT id FROM messages WHERE company_id = $1 ORDER BY id")
                .bind(company)
                .fetch_all(&mut *c)
                .await
                .unwrap()
        }
    }
}
