//! The committer alone (`MASTERZ_LOAD_PROBE=committer`): no HTTP, no processor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::load::event_body;
use crate::server::{Backend, admin_sql};
use crate::sys::cpu_ms;
use crate::{OTHER_PAGE_ID, Opts, percentile, round, whole};

/// `conns` tasks on a two-worker runtime (as the server's) each hand one inbound row at a time to
/// masterz's group committer on a fresh database, as the webhook handler does after its checks:
/// what the write path alone sustains, without HTTP, signatures or the processor.
pub(crate) fn probe_committer(opts: &Opts, backend: &Backend, conns: usize) -> serde_json::Value {
    use masterz::messaging::ingest::{Committer, WriteGate};
    use masterz::store::integration_logs::NewLog;

    let dir = tempfile::Builder::new()
        .prefix("masterz-webhooks-probe.")
        .tempdir()
        .expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("probe.db").display()),
        Backend::Postgres { url, admin, name } => {
            rt.block_on(admin_sql(admin, format!("CREATE DATABASE \"{name}\"")));
            url.clone()
        }
    };
    let headers = format!(
        r#"{{"content-type":"application/json","user-agent":"facebookexternalua","x-hub-signature-256":"{}"}}"#,
        masterz::messaging::signature::meta_header(b"k", b"{}")
    );
    let (ok, lat, cpu, secs) = rt.block_on(async {
        let db = masterz::store::Db::connect(&url, 16)
            .await
            .expect("database");
        db.migrate().await.expect("migrate");
        let committer = Arc::new(Committer::default());
        committer.spawn(
            db.clone(),
            Arc::new(tokio::sync::Notify::new()),
            WriteGate::default(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (committer, stop, next, headers) = (
                    committer.clone(),
                    stop.clone(),
                    next.clone(),
                    headers.clone(),
                );
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut ok = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let idx = next.fetch_add(1, Ordering::Relaxed);
                        let row = NewLog {
                            company_id: None,
                            channel_account_id: None,
                            direction: "in",
                            provider: "meta",
                            method: "POST",
                            endpoint: "/webhooks/meta".into(),
                            status: Some(200),
                            duration_ms: None,
                            request_headers: Some(headers.clone()),
                            request_body: Some(event_body(idx, OTHER_PAGE_ID)),
                            response_body: None,
                            error: None,
                            state: "ignored",
                            message_id: None,
                            created_at: 1_770_031_204_871,
                        };
                        let started = Instant::now();
                        if committer.commit(vec![row]).await {
                            ok += 1;
                        }
                        lat.push(started.elapsed().as_micros() as u32);
                    }
                    (ok, lat)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(opts.warmup)).await;
        let (c0, n0, started) = (cpu_ms("self"), next.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs_f64(opts.secs)).await;
        let (c1, n1, secs) = (
            cpu_ms("self"),
            next.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64(),
        );
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        for t in tasks {
            let (_, l) = t.await.expect("probe task");
            lat.extend(l);
        }
        db.close().await;
        (n1 - n0, lat, c1 - c0, secs)
    });
    if let Backend::Postgres { admin, name, .. } = backend {
        rt.block_on(admin_sql(
            admin,
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        ));
    }
    let mut lat = lat;
    lat.sort_unstable();
    json!({
        "bench": "webhooks_committer_probe",
        "backend": backend.label(),
        "conns": conns,
        "rows_per_s": whole(ok as f64 / secs),
        "p50_ms": round(percentile(&lat, 0.50), 2),
        "p99_ms": round(percentile(&lat, 0.99), 2),
        "cpu_pct": whole(cpu as f64 / secs / 10.0),
        "cpu_ms_per_1000": if ok > 0 { round(cpu as f64 / ok as f64 * 1000.0, 1) } else { 0.0 },
    })
}
