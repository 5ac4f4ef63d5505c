//! `[redacted]` wherever request and response bodies are persisted (§5), and nothing secret in
//! the server's own output: the real `masterz serve` with debug logs, against the fake Graph API.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::common::{Backend, TestDb, seed_tenant};
use crate::fake_provider::{FakeProvider, graph_error};
use crate::harness::{PAGE_ID, fixture};
use crate::support::{eventually, table_text};

both_backends!(p25_secrets_are_redacted_wherever_bodies_are_persisted);

/// `masterz serve` on a test database, its stderr (JSON logs) kept line by line.
struct Serve {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    base: String,
}

impl Serve {
    fn start(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_masterz"));
        for (k, _) in std::env::vars() {
            if k.starts_with("MASTERZ_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.arg("serve")
            .env("MASTERZ_DATA_DIR", db.dir.path())
            .env("MASTERZ_DATABASE_URL", &db.url)
            .env("MASTERZ_HTTP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_SIP_LISTEN", "127.0.0.1:0")
            .env("MASTERZ_RTP_PORTS", "33300-33399")
            .env("MASTERZ_LOG_FORMAT", "json")
            .env("MASTERZ_LOG_LEVEL", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn masterz serve");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let kept = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let base = loop {
            let found = lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains("HTTP listening"))
                .cloned();
            if let Some(l) = found {
                let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let addr = v["fields"]["http_addr"]
                    .as_str()
                    .or_else(|| v["http_addr"].as_str())
                    .unwrap_or_else(|| panic!("no http_addr in {l}"))
                    .to_owned();
                break format!("http://{addr}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "masterz did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, lines, base }
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// P25: with planted tokens, keys, an app secret, an API token and a password in play — channel
// set-up, signed webhooks carrying an access_token, WAHA's key headers, a reply the provider
// refuses quoting the token, a password change — none of them is in integration_logs, audit_logs
// or the server's debug output; `[redacted]` stands in their place.
async fn p25_secrets_are_redacted_wherever_bodies_are_persisted(backend: Backend) {
    const APP_SECRET: &str = "p25-planted-app-secret-Jq4";
    const PAGE_TOKEN: &str = "EAABp25plantedPageTokenXr7";
    const BODY_TOKEN: &str = "p25-planted-body-token-Vm2";
    const WAHA_KEY: &str = "p25-planted-waha-key-Lw9";
    const WAHA_HMAC: &str = "p25-planted-waha-hmac-Tz3";
    const NEW_PASSWORD: &str = "p25-planted-password-Ks8";
    let fake = FakeProvider::start().await;
    fake.push(
        &format!("/{PAGE_ID}/messages"),
        400,
        graph_error(190, None, &format!("Malformed access token {PAGE_TOKEN}")),
    );
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let t = {
        let pool = db.open().await;
        let t = seed_tenant(&pool, "p25").await;
        pool.close().await;
        t
    };
    let graph = fake.url();
    let server = Serve::start(
        &db,
        &[
            ("MASTERZ_META_APP_SECRET", APP_SECRET),
            ("MASTERZ_META_GRAPH_URL", graph.as_str()),
        ],
    );
    let http = reqwest::Client::new();
    let api = |m: Method, path: &str, body: Value| {
        http.request(m, format!("{}{path}", server.base))
            .bearer_auth(&t.admin_token)
            .json(&body)
            .send()
    };
    let r = api(
        Method::POST,
        "/api/v1/channel-accounts",
        json!({"kind": "messenger",
        "name": "Page", "external_id": PAGE_ID, "credentials": {"access_token": PAGE_TOKEN}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = api(
        Method::POST,
        "/api/v1/channel-accounts",
        json!({"kind": "waha", "name": "WAHA",
        "external_id": "default", "settings": {"base_url": graph, "session": "default"},
        "credentials": {"api_key": WAHA_KEY, "hmac_key": WAHA_HMAC}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let waha: i64 = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let r = api(
        Method::PATCH,
        &format!("/api/v1/users/{}", t.agent),
        json!({"password": NEW_PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A Messenger event with an access_token in it, signed; a WAHA event with key and HMAC.
    let mut event: Value = serde_json::from_slice(&fixture("meta/messenger_text.json")).unwrap();
    event["entry"][0]["messaging"][0]["access_token"] = json!(BODY_TOKEN);
    let body = event.to_string().into_bytes();
    let r = http
        .post(format!("{}/webhooks/meta", server.base))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            masterz::messaging::signature::meta_header(APP_SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = fixture("waha/message_text.json");
    let r = http
        .post(format!("{}/webhooks/waha/{waha}", server.base))
        .header("content-type", "application/json")
        .header(
            "x-webhook-hmac",
            masterz::messaging::signature::waha_header(WAHA_HMAC.as_bytes(), &h),
        )
        .header("x-webhook-hmac-algorithm", "sha512")
        .header("x-api-key", WAHA_KEY)
        .body(h)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A reply the Graph API refuses with a message that quotes the token.
    let db_handle = db.open().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let conv = loop {
        let v: Value = http
            .get(format!("{}/api/v1/conversations?limit=50", server.base))
            .bearer_auth(&t.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = crate::support::items(&v)
            .iter()
            .find(|c| c["channel_account_id"] != json!(waha))
            .and_then(|c| c["id"].as_i64());
        if let Some(id) = found {
            break id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Messenger conversation: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let r = http
        .post(format!(
            "{}/api/v1/conversations/{}/messages",
            server.base, conv
        ))
        .bearer_auth(&t.agent_token)
        .json(&json!({"text": "Danke!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(15, "the refused send is logged", || async {
        table_text(&db_handle, "integration_logs")
            .await
            .iter()
            .any(|v| v.contains("Malformed access token"))
    })
    .await;
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {PAGE_TOKEN}"))),
        "the provider did get the real token"
    );

    let logs = table_text(&db_handle, "integration_logs").await;
    let audit = table_text(&db_handle, "audit_logs").await;
    db_handle.close().await;
    let output = server.output();
    drop(server);
    let planted = [
        APP_SECRET,
        PAGE_TOKEN,
        BODY_TOKEN,
        WAHA_KEY,
        WAHA_HMAC,
        NEW_PASSWORD,
        t.admin_token.as_str(),
        t.agent_token.as_str(),
    ];
    let mut found = Vec::new();
    for (place, text) in [
        ("integration_logs", logs.join("\n")),
        ("audit_logs", audit.join("\n")),
        ("server output", output.clone()),
    ] {
        for p in planted {
            if let Some(at) = text.find(p) {
                let from = text.floor_char_boundary(at.saturating_sub(100));
                found.push(format!("{p} in {place}: …{}…", &text[from..at + p.len()]));
            }
        }
    }
    assert!(
        found.is_empty(),
        "planted secrets leaked:\n{}",
        found.join("\n")
    );
    let redacted = |values: &[String], col: &str| {
        values
            .iter()
            .any(|v| v.starts_with(col) && v.contains(masterz::secrets::REDACTED))
    };
    assert!(
        redacted(&logs, "integration_logs.request_body"),
        "the event's access_token redacted: {logs:#?}"
    );
    assert!(
        redacted(&logs, "integration_logs.request_headers"),
        "Authorization and the WAHA key headers redacted: {logs:#?}"
    );
    assert!(
        redacted(&logs, "integration_logs.response_body")
            || redacted(&logs, "integration_logs.error"),
        "the token quoted by the provider redacted: {logs:#?}"
    );
    assert!(
        redacted(&audit, "audit_logs.changes"),
        "credentials and password redacted in the audit log: {audit:#?}"
    );
    assert!(
        output.lines().count() > 10,
        "debug output was captured: {output}"
    );
}
