//! Helpers the conformance tests share: API calls that return status and JSON, raw reads of a
//! table on either database, the `masterz` binary on a test's database, waiting.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{TestDb, TestServer};

/// Runs `$body` with `$c` bound to the raw connection of whichever database `$db` is.
macro_rules! on_db {
    ($db:expr, |$c:ident| $body:expr) => {{
        let mut conn = $db.conn().await.expect("a database connection");
        match conn.ex() {
            masterz::store::Ex::Sqlite($c) => $body,
            masterz::store::Ex::Postgres($c) => $body,
        }
    }};
}
pub(crate) use on_db;

/// A request's status and its body as JSON (`Null` when empty or not JSON), with the raw text.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

/// Sends `method path` with a bearer token (if any), a JSON body (if any) and extra headers.
pub(crate) async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut rb = match token {
        Some(t) => s.req(method.clone(), path, t),
        None => s.http.request(method.clone(), s.url(path)),
    };
    if let Some(b) = body {
        rb = rb.json(b);
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// `call` that must answer `want`; returns the JSON body.
pub(crate) async fn expect(
    s: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    want: StatusCode,
) -> Value {
    let r = call(s, method.clone(), path, Some(token), body.as_ref(), &[]).await;
    assert_eq!(r.status, want, "{method} {path}: {}", r.text);
    r.body
}

/// The items of a list answer: the array itself, or a page's `items`.
pub(crate) fn items(v: &Value) -> Vec<Value> {
    v.as_array()
        .or_else(|| v["items"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("not a list: {v}"))
}

/// The column names of `table`, sorted.
pub(crate) async fn columns(db: &masterz::store::Db, table: &str) -> Vec<String> {
    let mut cols: Vec<String> = on_db!(db, |c| {
        match db.backend() {
            masterz::store::Backend::Sqlite => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                    .bind(table)
                    .fetch_all(&mut *c)
                    .await
            }
            masterz::store::Backend::Postgres => {
                sqlx::query_scalar(
                    "SELECT column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1",
                )
                .bind(table)
                .fetch_all(&mut *c)
                .await
            }
        }
    })
    .unwrap_or_else(|e| panic!("columns of {table}: {e}"));
    cols.sort();
    cols
}

/// Every value of every column of `table` as text, one string per value (NULLs left out).
pub(crate) async fn table_text(db: &masterz::store::Db, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    for col in columns(db, table).await {
        let sql = format!("SELECT CAST({col} AS TEXT) FROM {table}");
        let values: Vec<Option<String>> = on_db!(db, |c| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&mut *c)
                .await
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        out.extend(
            values
                .into_iter()
                .flatten()
                .map(|v| format!("{table}.{col}: {v}")),
        );
    }
    out
}

/// One integer from `sql` (no parameters).
pub(crate) async fn scalar(db: &masterz::store::Db, sql: &str) -> i64 {
    on_db!(db, |c| {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut *c)
            .await
    })
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `masterz <args>` on the database and data directory of `db`; returns (success, stdout,
/// stderr). Nothing of the caller's `MASTERZ_*` environment is inherited.
pub(crate) fn masterz(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_masterz"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MASTERZ_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("MASTERZ_DATA_DIR", db.dir.path())
        .env("MASTERZ_DATABASE_URL", &db.url)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run masterz");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `check` every 50 ms until it is true, for at most `secs` seconds.
pub(crate) async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {secs} s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
