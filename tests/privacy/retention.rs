//! Retention (§4): integration logs go after the configured number of days, by the job the
//! server runs at start-up and hourly; audit logs stay for the lifetime of the account.

use masterz::app::Server;
use masterz::config::Config;
use masterz::store::{self, integration_logs::NewLog};
use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::common::{Backend, Tenant, TestDb, TestServer, seed_tenant};
use crate::support::{eventually, expect, items, on_db, scalar};

both_backends!(
    p18_integration_logs_are_pruned_after_the_configured_days,
    p19_audit_logs_outlive_every_pruning_job,
);

const DAY: i64 = 86_400_000;

/// An inbound log row of `t`'s company `days_old` days old, in `state`, its body naming `tag`.
fn log_row(t: &Tenant, days_old: i64, state: &'static str, tag: &str) -> NewLog {
    NewLog {
        company_id: Some(t.company),
        channel_account_id: None,
        direction: if state == "done" { "out" } else { "in" },
        provider: "meta",
        method: "POST",
        endpoint: "/webhooks/meta".into(),
        status: Some(200),
        duration_ms: Some(3),
        request_headers: None,
        request_body: Some(format!("{{\"tag\":\"{tag}\"}}")),
        response_body: None,
        error: None,
        state,
        message_id: None,
        created_at: store::now_ms() - days_old * DAY,
    }
}

/// A database with a tenant, filled by `fill` before any server runs on it.
async fn prepared<F, Fut>(backend: Backend, fill: F) -> Option<(TestDb, Tenant)>
where
    F: FnOnce(store::Db, Tenant) -> Fut,
    Fut: std::future::Future<Output = Tenant>,
{
    let db = TestDb::new(backend).await?;
    let pool = db.open().await;
    let t = seed_tenant(&pool, "keep").await;
    let t = fill(pool.clone(), t).await;
    pool.close().await;
    Some((db, t))
}

/// A server on `db` whose configuration `adjust` changed.
async fn serve(db: TestDb, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = db.config();
    adjust(&mut config);
    let server = Server::start(config).await.expect("server starts");
    TestServer {
        base: format!("http://{}", server.http_addr),
        server: Some(server),
        http: reqwest::Client::builder()
            .user_agent("masterz-tests/1")
            .build()
            .unwrap(),
        db,
    }
}

/// The `tag`s of the integration log rows left, in id order.
async fn tags_left(s: &TestServer) -> Vec<String> {
    let bodies: Vec<Option<String>> = on_db!(s.store(), |c| {
        sqlx::query_scalar("SELECT request_body FROM integration_logs ORDER BY id")
            .fetch_all(&mut *c)
            .await
            .unwrap()
    });
    bodies
        .into_iter()
        .flatten()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .filter_map(|v| v["tag"].as_str().map(str::to_owned))
        .collect()
}

// P18: with `integration_log_retention_days = 7` (the default is 30), the server's pruning job
// deletes the rows older than 7 days — inbound and outbound — at start-up; younger rows stay.
async fn p18_integration_logs_are_pruned_after_the_configured_days(backend: Backend) {
    let Some((db, _)) = prepared(backend, |pool, t| async move {
        let mut tx = pool.begin().await.unwrap();
        store::integration_logs::insert_many(
            &mut tx.ex(),
            &[
                log_row(&t, 40, "processed", "40 days"),
                log_row(&t, 8, "processed", "8 days in"),
                log_row(&t, 8, "done", "8 days out"),
                log_row(&t, 6, "processed", "6 days in"),
                log_row(&t, 6, "done", "6 days out"),
                log_row(&t, 0, "processed", "today"),
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        t
    })
    .await
    else {
        return;
    };
    let s = serve(db, |c| c.integration_log_retention_days = 7).await;
    eventually(10, "the start-up pruning", || async {
        !tags_left(&s).await.iter().any(|t| t == "8 days in")
    })
    .await;
    assert_eq!(tags_left(&s).await, ["6 days in", "6 days out", "today"]);
}

// P19: audit rows are never pruned: ten-year-old entries are still there, through the API, after
// the pruning job (which does delete old integration logs) ran with a one-day retention.
async fn p19_audit_logs_outlive_every_pruning_job(backend: Backend) {
    let Some((db, t)) = prepared(backend, |pool, t| async move {
        let mut tx = pool.begin().await.unwrap();
        for (i, days) in [3650_i64, 400, 31, 2].into_iter().enumerate() {
            let at = store::now_ms() - days * DAY;
            let mut ex = tx.ex();
            let sql = "INSERT INTO audit_logs (company_id, actor_id, actor_label, action, \
                 entity_type, entity_id, ip, user_agent, changes, created_at) \
                 VALUES ($1, $2, 'admin', 'update', 'role', $3, '192.0.2.19', 'ua/19', '{}', $4)";
            match &mut ex {
                store::Ex::Sqlite(c) => sqlx::query(sql)
                    .bind(t.company)
                    .bind(t.admin)
                    .bind(i as i64)
                    .bind(at)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected()),
                store::Ex::Postgres(c) => sqlx::query(sql)
                    .bind(t.company)
                    .bind(t.admin)
                    .bind(i as i64)
                    .bind(at)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected()),
            }
            .unwrap();
        }
        store::integration_logs::insert_many(
            &mut tx.ex(),
            &[log_row(&t, 3, "processed", "3 days")],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        t
    })
    .await
    else {
        return;
    };
    let s = serve(db, |c| c.integration_log_retention_days = 1).await;
    eventually(10, "the start-up pruning", || async {
        tags_left(&s).await.is_empty()
    })
    .await;
    // Once more, as the hourly run would.
    masterz::messaging::prune_logs(&s.server.as_ref().unwrap().state)
        .await
        .unwrap();
    let n = scalar(
        s.store(),
        &format!(
            "SELECT COUNT(*) FROM audit_logs WHERE company_id = {}",
            t.company.0
        ),
    )
    .await;
    assert_eq!(n, 4, "every audit row is still there");
    let log = expect(
        &s,
        Method::GET,
        "/api/v1/audit-logs?limit=200",
        &t.admin_token,
        None,
        StatusCode::OK,
    )
    .await;
    let oldest = items(&log)
        .into_iter()
        .filter(|r| r["ip"] == "192.0.2.19")
        .count();
    assert_eq!(oldest, 4, "{log}");
}
