//! Planted secrets appear nowhere: the real `masterz` binary runs with a planted app secret and
//! verify token, channels are created with the CLI with planted access tokens, an app secret and
//! verify token of the business's own, and WAHA keys. Signed and forged webhooks, the verification
//! handshake, replies that succeed, are rate limited and are refused with 190 (whose message
//! quotes the token, as Graph does for a malformed one), and read receipts all run against the
//! in-process fake provider. Then no planted secret may be in any column of any table, in any
//! file of the data directory, in the server's or the CLI's output (debug logs, sqlx included),
//! or in the API's views of channels, logs, audit entries and messages, while the fake provider
//! did get the real token and API key.

use std::path::Path;
use std::time::{Duration, Instant};

use masterz::messaging::signature::{meta_header, waha_header};
use masterz::store::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::crash::Bin;
use crate::fake_provider::{FakeProvider, graph_error};
use crate::harness::{PAGE_ID, PHONE_NUMBER_ID, WABA_ID, fixture};

const APP_SECRET: &str = "planted-app-secret-Q7f3Kx9w";
const GLOBAL_VERIFY: &str = "planted-verify-global-V2m8Rk";
const PAGE_TOKEN: &str = "EAABplantedPageToken7Rt5YwLq";
const WA_TOKEN: &str = "EAABplantedWaToken3Hc9LpMz";
const OWN_APP_SECRET: &str = "planted-own-app-secret-Z4n1Fd";
const OWN_VERIFY: &str = "planted-own-verify-J8d2Sx";
const WAHA_API_KEY: &str = "planted-waha-api-key-B6s4Tg";
const WAHA_HMAC_KEY: &str = "planted-waha-hmac-key-N5q7Wc";
const ADMIN_PASSWORD: &str = "planted-admin-password-T3vH";
const ADMIN: &str = "admin@sec.example.com";

/// Adds to `found` each planted secret in `text`, with where and its context.
fn find_in(secrets: &[(&str, &str)], text: &[u8], place: &str, found: &mut Vec<String>) {
    for (name, secret) in secrets {
        if let Some(at) = text
            .windows(secret.len())
            .position(|w| w == secret.as_bytes())
        {
            let from = at.saturating_sub(120);
            let to = (at + secret.len() + 120).min(text.len());
            found.push(format!(
                "{name} in {place}: …{}…",
                String::from_utf8_lossy(&text[from..to])
            ));
        }
    }
}

/// `masterz admin` commands, with everything they printed.
struct Cli<'a> {
    bin: &'a Bin,
    output: Vec<(String, String)>,
}

impl Cli<'_> {
    fn admin(&mut self, args: &[&str]) -> String {
        let (stdout, stderr) = self.bin.admin(args);
        let what = args.iter().take(3).copied().collect::<Vec<_>>().join(" ");
        self.output
            .push((format!("stdout of masterz admin {what}"), stdout.clone()));
        self.output
            .push((format!("stderr of masterz admin {what}"), stderr));
        stdout
    }

    /// `create-channel` in the company; returns the id it prints.
    fn channel(&mut self, args: &[&str]) -> i64 {
        let mut all = vec!["create-channel", "--company", "sec"];
        all.extend_from_slice(args);
        let out = self.admin(&all);
        out.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("create-channel printed no id: {out:?}"))
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn get(&self, path: &str) -> (String, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"));
        (text, v)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status();
        let text = r
            .text()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Polls a message of a conversation until `done`, 30 s at most.
    async fn wait_message(
        &self,
        conversation: i64,
        id: i64,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, page) = self
                .get(&format!(
                    "/api/v1/conversations/{conversation}/messages?limit=200"
                ))
                .await;
            if let Some(m) = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["id"] == id)
                && done(m)
            {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "message {id} never got there: {page:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every value of every column of every table, as bytes, with where it came from.
async fn dump_database(path: &Path) -> Vec<(String, Vec<u8>)> {
    let db = Db::connect(&format!("sqlite://{}", path.display()), 1)
        .await
        .expect("open the server's SQLite file");
    let Db::Sqlite(pool) = db else {
        unreachable!("a sqlite:// URL")
    };
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&pool)
            .await
            .expect("list tables");
    let mut out = Vec::new();
    for table in &tables {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(table)
            .fetch_all(&pool)
            .await
            .expect("list columns");
        for column in &columns {
            let sql = format!(
                "SELECT CAST(\"{}\" AS BLOB) FROM \"{}\"",
                column.replace('"', "\"\""),
                table.replace('"', "\"\"")
            );
            let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("read {table}.{column}: {e}"));
            for (i, v) in values.into_iter().enumerate() {
                if let Some(v) = v {
                    out.push((format!("{table}.{column} (row {i})"), v));
                }
            }
        }
    }
    pool.close().await;
    out
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)
            .expect("read the data directory")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_appear_nowhere() {
    let started = Instant::now();
    let fake = FakeProvider::start().await;
    // The first Messenger send is rate limited, the first WhatsApp send refused with 190 and a
    // message that quotes the token; everything else succeeds.
    fake.push_with_headers(
        &format!("/{PAGE_ID}/messages"),
        429,
        &[("retry-after", "1")],
        graph_error(613, None, "Calls to this api have exceeded the rate limit."),
    );
    fake.push(
        &format!("/{PHONE_NUMBER_ID}/messages"),
        400,
        graph_error(190, None, &format!("Malformed access token {WA_TOKEN}")),
    );

    let tmp = tempfile::tempdir().expect("temp dir");
    let d = tmp.path();
    let graph = fake.url();
    let bin = Bin::new(
        d,
        &[
            ("MASTERZ_META_APP_SECRET", APP_SECRET),
            ("MASTERZ_META_VERIFY_TOKEN", GLOBAL_VERIFY),
            ("MASTERZ_META_GRAPH_URL", &graph),
            ("MASTERZ_LOG_LEVEL", "debug"),
            ("MASTERZ_OUTBOX_MAX_ATTEMPTS", "4"),
            ("MASTERZ_RTP_PORTS", "32500-32599"),
        ],
    );
    let mut cli = Cli {
        bin: &bin,
        output: Vec::new(),
    };
    cli.admin(&["create-company", "--name", "Secrets", "--slug", "sec"]);
    cli.admin(&[
        "create-user",
        "--company",
        "sec",
        "--email",
        ADMIN,
        "--password",
        ADMIN_PASSWORD,
        "--role",
        "admin",
    ]);
    // The token is the one thing a command prints on purpose: not kept with the output.
    let token = bin
        .admin(&["create-token", "--company", "sec", "--email", ADMIN])
        .0
        .trim()
        .to_owned();
    assert!(token.len() >= 20, "create-token printed {token:?}");
    let messenger = cli.channel(&[
        "--kind",
        "messenger",
        "--external-id",
        PAGE_ID,
        "--access-token",
        PAGE_TOKEN,
    ]);
    let whatsapp = cli.channel(&[
        "--kind",
        "whatsapp-cloud",
        "--external-id",
        PHONE_NUMBER_ID,
        "--waba-id",
        WABA_ID,
        "--access-token",
        WA_TOKEN,
        "--app-secret",
        OWN_APP_SECRET,
        "--verify-token",
        OWN_VERIFY,
    ]);
    let waha = cli.channel(&[
        "--kind",
        "waha",
        "--external-id",
        "default",
        "--base-url",
        &graph,
        "--api-key",
        WAHA_API_KEY,
        "--hmac-key",
        WAHA_HMAC_KEY,
    ]);
    let cli_output = cli.output;

    let server = bin.serve();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client");
    let api = Api {
        http: http.clone(),
        base: server.url(""),
        token: token.clone(),
    };
    let post = |path: &str, body: &[u8], headers: &[(&str, String)]| {
        let mut r = http
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        async move { r.send().await.expect("POST a webhook").status() }
    };

    // Signed webhooks: Messenger with the app's secret, WhatsApp with the business's own app
    // secret, WAHA with HMAC and API key.
    let m = fixture("meta/messenger_text.json");
    let w = fixture("meta/whatsapp_text.json");
    let h = fixture("waha/message_text.json");
    let waha_path = format!("/webhooks/waha/{waha}");
    let sig = |secret: &str, body: &[u8]| meta_header(secret.as_bytes(), body);
    let hmac = waha_header(WAHA_HMAC_KEY.as_bytes(), &h);
    assert_eq!(
        post(
            "/webhooks/meta",
            &m,
            &[("x-hub-signature-256", sig(APP_SECRET, &m))]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post(
            "/webhooks/meta",
            &w,
            &[("x-hub-signature-256", sig(OWN_APP_SECRET, &w))]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post(
            &waha_path,
            &h,
            &[
                ("x-webhook-hmac", hmac.clone()),
                ("x-webhook-hmac-algorithm", "sha512".into()),
                ("x-api-key", WAHA_API_KEY.into()),
            ]
        )
        .await,
        StatusCode::OK
    );
    // Forged: another secret, no signature, a wrong HMAC, a right HMAC with a wrong API key.
    assert_eq!(
        post(
            "/webhooks/meta",
            &m,
            &[("x-hub-signature-256", sig("not-the-secret", &m))]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post("/webhooks/meta", &w, &[]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(
            &waha_path,
            &h,
            &[("x-webhook-hmac", waha_header(b"not-the-key", &h))]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            &waha_path,
            &h,
            &[
                ("x-webhook-hmac", hmac),
                ("x-api-key", "a-wrong-api-key".into())
            ]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // The verification handshake with the server's and the business's verify token.
    for (token, expect) in [
        (GLOBAL_VERIFY, StatusCode::OK),
        (OWN_VERIFY, StatusCode::OK),
        ("a-wrong-verify-token", StatusCode::FORBIDDEN),
    ] {
        let r = http
            .get(server.url("/webhooks/meta"))
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.challenge", "1158201444"),
                ("hub.verify_token", token),
            ])
            .send()
            .await
            .expect("GET /webhooks/meta");
        assert_eq!(r.status(), expect, "handshake with {token}");
        if expect == StatusCode::OK {
            assert_eq!(r.text().await.expect("challenge"), "1158201444");
        }
    }
    // A login with the planted password.
    let r = http
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": ADMIN, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("POST /api/v1/auth/login");
    assert_eq!(r.status(), StatusCode::OK, "login");

    // The three conversations, once the processor has run.
    let deadline = Instant::now() + Duration::from_secs(20);
    let conversations = loop {
        let (_, page) = api.get("/api/v1/conversations?limit=50").await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= 3 {
            break items;
        }
        assert!(
            Instant::now() < deadline,
            "three conversations within 20 s: {page:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let conversation = |account: i64| -> i64 {
        conversations
            .iter()
            .find(|c| c["channel_account_id"] == account)
            .and_then(|c| c["id"].as_i64())
            .unwrap_or_else(|| panic!("no conversation on channel {account}: {conversations:#?}"))
    };
    let (c_messenger, c_whatsapp, c_waha) = (
        conversation(messenger),
        conversation(whatsapp),
        conversation(waha),
    );

    // Replies: Messenger (429, then sent), WhatsApp (190: failed), WAHA (sent).
    let mut replies = Vec::new();
    for (conv, text) in [
        (c_messenger, "Danke, wir melden uns!"),
        (c_whatsapp, "Wir rufen Sie zurück."),
        (c_waha, "Ihr Rad ist fertig."),
    ] {
        let (status, m) = api
            .post(
                &format!("/api/v1/conversations/{conv}/messages"),
                json!({"text": text}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "reply in {conv}: {m}");
        replies.push((conv, m["id"].as_i64().expect("message id")));
    }
    let sent = api
        .wait_message(replies[0].0, replies[0].1, |m| m["status"] == "sent")
        .await;
    assert!(sent["external_id"].is_string(), "{sent}");
    let failed = api
        .wait_message(replies[1].0, replies[1].1, |m| m["status"] == "failed")
        .await;
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("190")),
        "{failed}"
    );
    api.wait_message(replies[2].0, replies[2].1, |m| m["status"] == "sent")
        .await;
    // Read receipts on Messenger and WAHA.
    for conv in [c_messenger, c_waha] {
        let (status, v) = api
            .post(&format!("/api/v1/conversations/{conv}/read"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "read {conv}: {v}");
        assert_eq!(v["queued"], true, "read {conv}: {v}");
    }
    // The outbox is done: three sends and two read receipts (at least).
    let db_path = d.join("masterz.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let db = Db::connect(&format!("sqlite://{}", db_path.display()), 1)
            .await
            .expect("open the server's SQLite file");
        let Db::Sqlite(pool) = db else {
            unreachable!("a sqlite:// URL")
        };
        let states: Vec<String> = sqlx::query_scalar("SELECT state FROM outbox")
            .fetch_all(&pool)
            .await
            .expect("read the outbox");
        pool.close().await;
        // (A new Messenger contact's profile lookup may be queued as well.)
        if states.len() >= 5 && states.iter().all(|s| s != "pending") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox was not done within 30 s: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The provider got the real credentials: the test cannot pass by sending nothing.
    let requests = fake.requests();
    let bearer = |token: &str| format!("Bearer {token}");
    let to = |suffix: &str| {
        requests
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect::<Vec<_>>()
    };
    let page_calls = to(&format!("/{PAGE_ID}/messages"));
    assert!(
        page_calls.len() >= 3
            && page_calls
                .iter()
                .all(|r| r.header("authorization") == Some(bearer(PAGE_TOKEN).as_str())),
        "Messenger: the 429, the retry and mark_seen, with the Page token: {page_calls:#?}"
    );
    let wa_calls = to(&format!("/{PHONE_NUMBER_ID}/messages"));
    assert!(
        !wa_calls.is_empty()
            && wa_calls
                .iter()
                .all(|r| r.header("authorization") == Some(bearer(WA_TOKEN).as_str())),
        "WhatsApp with its token: {wa_calls:#?}"
    );
    for path in ["/api/sendText", "/api/sendSeen"] {
        let calls = to(path);
        assert!(
            !calls.is_empty()
                && calls
                    .iter()
                    .all(|r| r.header("x-api-key") == Some(WAHA_API_KEY)),
            "WAHA {path} with the API key: {calls:#?}"
        );
    }

    // The API's views.
    let mut api_views = Vec::new();
    for path in [
        "/api/v1/channel-accounts?limit=200".to_owned(),
        "/api/v1/integration-logs?limit=200".to_owned(),
        "/api/v1/integration-logs?direction=out&limit=200".to_owned(),
        "/api/v1/audit-logs?limit=200".to_owned(),
        "/api/v1/conversations?limit=200".to_owned(),
        "/api/v1/customers?limit=200".to_owned(),
        format!("/api/v1/channel-accounts/{whatsapp}"),
        format!("/api/v1/conversations/{c_messenger}/messages?limit=200"),
        format!("/api/v1/conversations/{c_whatsapp}/messages?limit=200"),
        format!("/api/v1/conversations/{c_waha}/messages?limit=200"),
    ] {
        let (text, _) = api.get(&path).await;
        api_views.push((format!("GET {path}"), text));
    }
    let (_, logs) = api.get("/api/v1/integration-logs?limit=200").await;
    let logged = logs["items"].as_array().map_or(0, Vec::len);
    assert!(
        logged >= 10,
        "the log has the webhooks and the calls: {logs:#}"
    );
    let (_, account) = api
        .get(&format!("/api/v1/channel-accounts/{whatsapp}"))
        .await;
    assert_eq!(account["status"], "needs_reconnection", "{account}");

    // Stop the server gracefully: its whole stderr, and a checkpointed database.
    let stderr = server.terminate();
    let joined = stderr.join("\n");
    for expected in ["webhook rejected", "send will be retried", "send failed"] {
        assert!(
            joined.contains(expected),
            "the server's log has {expected:?} (so it was captured):\n{joined}"
        );
    }

    let secrets: Vec<(&str, &str)> = vec![
        ("the app secret", APP_SECRET),
        ("the server's verify token", GLOBAL_VERIFY),
        ("the Page token", PAGE_TOKEN),
        ("the WhatsApp token", WA_TOKEN),
        ("the business's app secret", OWN_APP_SECRET),
        ("the business's verify token", OWN_VERIFY),
        ("the WAHA API key", WAHA_API_KEY),
        ("the WAHA HMAC key", WAHA_HMAC_KEY),
        ("the admin's password", ADMIN_PASSWORD),
        ("the API token", token.as_str()),
    ];
    // The search itself works: it finds the credentials where they belong, in what the
    // provider received.
    let mut control = Vec::new();
    for r in &requests {
        let headers = format!("{:?}", r.headers);
        find_in(
            &secrets,
            headers.as_bytes(),
            "a provider request",
            &mut control,
        );
    }
    for name in ["the Page token", "the WhatsApp token", "the WAHA API key"] {
        assert!(
            control.iter().any(|c| c.starts_with(name)),
            "{name} not found in the provider's requests: {control:#?}"
        );
    }
    let mut found = Vec::new();
    for (i, line) in stderr.iter().enumerate() {
        find_in(
            &secrets,
            line.as_bytes(),
            &format!("server stderr line {i}"),
            &mut found,
        );
    }
    for (place, text) in &cli_output {
        find_in(&secrets, text.as_bytes(), place, &mut found);
    }
    for (place, text) in &api_views {
        find_in(&secrets, text.as_bytes(), place, &mut found);
    }
    let rows = dump_database(&db_path).await;
    let log_values = rows
        .iter()
        .filter(|(p, _)| p.starts_with("integration_logs."))
        .count();
    assert!(
        log_values > 50,
        "integration_logs has rows: {log_values} values"
    );
    for (place, bytes) in &rows {
        find_in(&secrets, bytes, place, &mut found);
    }
    for (place, bytes) in files(d) {
        find_in(&secrets, &bytes, &place, &mut found);
    }
    assert!(
        found.is_empty(),
        "planted secrets found:\n{}",
        found.join("\n")
    );
    eprintln!(
        "planted secrets: {} stderr lines ({} from sqlx), {} database values, {} provider calls checked; {:.1} s",
        stderr.len(),
        stderr.iter().filter(|l| l.contains("sqlx")).count(),
        rows.len(),
        requests.len(),
        started.elapsed().as_secs_f64()
    );
}
