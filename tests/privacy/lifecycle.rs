//! P20 (closing an account deletes all its company-scoped data) and P21 (end-user deletion via
//! the API, the Data Deletion page and Meta's data-deletion callback). Shared helpers here; the
//! tests are in `lifecycle_p20.rs` and `lifecycle_p21.rs`.
#![allow(dead_code)]

#[path = "lifecycle_p20.rs"]
mod p20;
#[path = "lifecycle_p21.rs"]
mod p21;

use std::path::{Path, PathBuf};
use std::time::Duration;

use masterz::domain::CompanyId;
use masterz::messaging::signature::meta_header;
use masterz::store::{self, Db, Ex};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{Backend, TestServer};

/// The server's Meta app secret in these tests.
pub(crate) const APP_SECRET: &str = "lifecycle-app-secret-31d7";

/// A server that deletes closed companies at once, with Meta's secret set and no real Graph API.
pub(crate) async fn start(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |c| {
        c.meta_app_secret = Some(masterz::secrets::Secret::new(APP_SECRET.into()));
        c.meta_graph_url = "http://127.0.0.1:9".into();
        c.outbox_max_attempts = 1;
        c.company_deletion_days = 0;
    })
    .await
}

pub(crate) fn state(s: &TestServer) -> &masterz::http::AppState {
    &s.server.as_ref().expect("server running").state
}

/// `method path` with a bearer token and an optional JSON body: status and JSON (Null if none).
pub(crate) async fn api(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = s.req(method, path, token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates a channel account through the API; returns its id.
pub(crate) async fn channel(s: &TestServer, token: &str, body: Value) -> i64 {
    let (st, v) = api(
        s,
        Method::POST,
        "/api/v1/channel-accounts",
        token,
        Some(body),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["id"].as_i64().expect("channel id")
}

/// Posts a Messenger text from `psid` to `page` signed with `secret`.
pub(crate) async fn messenger_text(
    s: &TestServer,
    secret: &str,
    page: &str,
    psid: &str,
    mid: &str,
    text: &str,
) {
    let body = json!({"object": "page", "entry": [{"id": page, "time": 1_770_031_205_123_i64,
        "messaging": [{"sender": {"id": psid}, "recipient": {"id": page},
        "timestamp": 1_770_031_204_871_i64, "message": {"mid": mid, "text": text}}]}]})
    .to_string();
    let st = s
        .http
        .post(s.url("/webhooks/meta"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            meta_header(secret.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::OK, "messenger webhook");
}

/// Posts a WhatsApp text from `wa_id` (digits) named `name` to phone number `phone_id`.
pub(crate) async fn whatsapp_text(
    s: &TestServer,
    phone_id: &str,
    wa_id: &str,
    name: &str,
    wamid: &str,
    text: &str,
) {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1029",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_id},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": "1770033204", "type": "text",
            "text": {"body": text}}]}}]}]})
    .to_string();
    let st = s
        .http
        .post(s.url("/webhooks/meta"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            meta_header(APP_SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(st, StatusCode::OK, "whatsapp webhook");
}

/// Applies every stored webhook now, then tries every outbound call due (profile look-ups and
/// replies fail against the closed Graph port, and are logged).
pub(crate) async fn settle(s: &TestServer) {
    masterz::messaging::process::run_once(state(s))
        .await
        .unwrap();
    masterz::messaging::outbox::step(state(s)).await.unwrap();
}

/// The customer with identity `(kind, account, external)` of `company`.
pub(crate) async fn customer_of(
    s: &TestServer,
    company: CompanyId,
    kind: &str,
    account: Option<i64>,
    external: &str,
) -> Option<i64> {
    let mut conn = s.store().conn().await.unwrap();
    store::customers::find_identity(&mut conn.ex(), company, kind, account, external)
        .await
        .unwrap()
        .map(|i| i.customer_id)
}

/// A finished call of `customer` from `number` with a recording whose file is written where the
/// recorder writes it; returns the file.
pub(crate) async fn recorded_call(
    s: &TestServer,
    company: CompanyId,
    customer: i64,
    number: &str,
) -> PathBuf {
    let mut tx = s.store().begin().await.unwrap();
    let from = format!("sip:{number}@trunk.example.net");
    let call = store::calls::create(
        &mut tx.ex(),
        company,
        &store::calls::NewCall {
            customer_id: Some(customer),
            direction: "in",
            from_uri: &from,
            to_uri: "sip:+4930901820000@masterz.example.net",
            trunk_id: None,
            group_id: None,
            sip_call_id: "lifecycle-call",
            agent_user_id: None,
            started_at: store::now_ms(),
        },
    )
    .await
    .unwrap();
    let rel = format!("recordings/{}/2026/01/02/call-{call}.wav", company.0);
    let rec = store::recordings::start(&mut tx.ex(), company, call, &rel, store::now_ms())
        .await
        .unwrap();
    store::recordings::finish(
        &mut tx.ex(),
        rec,
        &store::recordings::Finished {
            status: "complete",
            ended_at: store::now_ms(),
            duration_ms: 1000,
            size_bytes: 44,
            sha256: None,
            frames_dropped: 0,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let file = s.data_dir().join(&rel);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"RIFF-test-recording").unwrap();
    file
}

/// One value of a one-row query, on either database.
pub(crate) async fn scalar(db: &Db, sql: &str, binds: &[&str]) -> i64 {
    let mut conn = db.conn().await.unwrap();
    match conn.ex() {
        Ex::Sqlite(c) => {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_one(&mut *c).await.unwrap()
        }
        Ex::Postgres(c) => {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_one(&mut *c).await.unwrap()
        }
    }
}

/// Runs a statement with text parameters, on either database.
pub(crate) async fn exec(db: &Db, sql: &str, binds: &[&str]) {
    let mut conn = db.conn().await.unwrap();
    match conn.ex() {
        Ex::Sqlite(c) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            q.execute(&mut *c).await.unwrap();
        }
        Ex::Postgres(c) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            q.execute(&mut *c).await.unwrap();
        }
    }
}

/// Every table of the database with its columns, read from the catalog (not a fixed list).
pub(crate) async fn schema(db: &Db) -> Vec<(String, Vec<String>)> {
    let mut conn = db.conn().await.unwrap();
    let pairs: Vec<(String, String)> = match conn.ex() {
        Ex::Sqlite(c) => sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap(),
        Ex::Postgres(c) => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap(),
    };
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for (t, c) in pairs {
        match tables.last_mut() {
            Some((name, cols)) if *name == t => cols.push(c),
            _ => tables.push((t, vec![c])),
        }
    }
    assert!(
        tables.len() > 30,
        "the catalog lists every table: {tables:?}"
    );
    tables
}

/// `(table, marker)` for every table with a row whose any column, as text, contains a marker.
pub(crate) async fn rows_naming(db: &Db, markers: &[&str]) -> Vec<(String, String)> {
    let mut hits = Vec::new();
    for (table, cols) in schema(db).await {
        let cond: Vec<String> = cols
            .iter()
            .map(|c| format!("CAST(\"{c}\" AS TEXT) LIKE $1"))
            .collect();
        let sql = format!(
            "SELECT COUNT(*) FROM \"{table}\" WHERE {}",
            cond.join(" OR ")
        );
        for m in markers {
            if scalar(db, &sql, &[&format!("%{m}%")]).await > 0 {
                hits.push((table.clone(), (*m).to_owned()));
            }
        }
    }
    hits
}

/// `(table, rows)` for every table with a `company_id` column that has rows of `company`.
pub(crate) async fn rows_of_company(db: &Db, company: CompanyId) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let id = company.0.to_string();
    for (table, cols) in schema(db).await {
        if !cols.iter().any(|c| c == "company_id") {
            continue;
        }
        let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE CAST(company_id AS TEXT) = $1");
        let n = scalar(db, &sql, &[&id]).await;
        if n > 0 {
            out.push((table, n));
        }
    }
    out
}

/// Every file under `dir`, recursively (none if it does not exist).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Waits until `check` holds, for up to `secs` seconds.
pub(crate) async fn wait_for<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
