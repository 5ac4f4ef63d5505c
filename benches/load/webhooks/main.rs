//! Signed webhook ingestion under load: a release `masterz serve` on a fresh data directory (SQLite,
//! or a fresh PostgreSQL database when `MASTERZ_BENCH_POSTGRES_URL` is set), one company with a
//! Messenger channel made with the CLI, then `POST /webhooks/meta` with unique, correctly signed
//! Messenger message events (one per request, ~600 bytes, a unique `mid` each) from C keep-alive
//! connections for T seconds after a warm-up. Then the server is killed with SIGKILL while the load
//! is still running, and the database is opened to check that every event answered 200 is there.
//! Last, the server is started again on the same database for a few seconds, to see the processor
//! work through the backlog on its own.
//!
//! The client is a minimal HTTP/1.1 one on tokio (one thread): each request is prebuilt (headers,
//! signature and body in one buffer, one `write` per request) before the timed phase, so the
//! generator takes as little as possible of the two cores it shares with the server.
//!
//! ```text
//! cargo bench --bench webhooks                                   # SQLite, 64 connections, 10 s
//! MASTERZ_LOAD_CONNS="16 64 256" cargo bench --bench webhooks    # one fresh server per count
//! MASTERZ_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:55432/postgres cargo bench --bench webhooks
//! ```
//!
//! Environment: `MASTERZ_LOAD_CONNS` (64; a list runs each), `MASTERZ_LOAD_SECS` (10),
//! `MASTERZ_LOAD_WARMUP_SECS` (2), `MASTERZ_LOAD_DRAIN_SECS` (5; 0 skips the restart),
//! `MASTERZ_LOAD_MAX_RATE` (30000: requests prebuilt per second of load; past them requests are
//! built on the fly), `MASTERZ_LOAD_UNROUTED=1` (entries for a Page no channel has: stored as
//! `ignored`, so the processor has nothing to do; log level `error`, since each such request logs a
//! warning — to measure ingestion alone), `MASTERZ_LOAD_PROBE=committer` (no server: tasks hand
//! rows straight to masterz's group committer, in-process — the write path alone),
//! `MASTERZ_LOAD_KEEP=1` (keep the data directory).
//!
//! Prints one `RESULT {json}` line per run and a table.

mod load;
mod probe;
mod server;
mod sys;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use load::{Load, Rec, build_request, event_body, generate, mid_index};
use probe::probe_committer;
use server::{Backend, Server, Store, admin_sql, with_database};
use sys::{cpu_ms, host_jiffies, loadavg};

/// The server under test: the one built with this benchmark, or `MASTERZ_LOAD_BIN` (another build,
/// to compare two versions on the same machine in one sitting).
fn bin() -> String {
    std::env::var("MASTERZ_LOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_masterz").to_owned())
}
/// The Page the channel account is for.
const PAGE_ID: &str = "104857600000001";
/// A Page no channel account has (`MASTERZ_LOAD_UNROUTED=1`).
const OTHER_PAGE_ID: &str = "104857600000999";
const APP_SECRET: &str = "bench-meta-app-secret-5f1c2a9e";
/// Distinct senders (customers) the events come from.
const SENDERS: usize = 5000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

struct Opts {
    secs: f64,
    warmup: f64,
    drain: f64,
    unrouted: bool,
    keep: bool,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// `x` as a whole number (rates, percentages).
fn whole(x: f64) -> i64 {
    x.round() as i64
}

fn run(
    rt: &tokio::runtime::Runtime,
    opts: &Opts,
    backend: Backend,
    conns: usize,
    requests: Arc<Vec<Vec<u8>>>,
) -> serde_json::Value {
    let dir = tempfile::Builder::new()
        .prefix("masterz-webhooks.")
        .tempdir()
        .expect("temp dir");
    let server = Server {
        data: dir.path().join("data"),
        backend: backend.clone(),
        log_level: if opts.unrouted { "error" } else { "warn" },
    };
    std::fs::create_dir_all(&server.data).expect("data dir");
    if let Backend::Postgres { admin, name, .. } = &backend {
        rt.block_on(admin_sql(admin, format!("CREATE DATABASE \"{name}\"")));
    }
    server.cli(&[
        "admin",
        "create-company",
        "--name",
        "Bench",
        "--slug",
        "bench",
    ]);
    let channel = server.cli(&[
        "admin",
        "create-channel",
        "--company",
        "bench",
        "--kind",
        "messenger",
        "--external-id",
        PAGE_ID,
        "--access-token",
        "bench-page-access-token",
    ]);
    let channel_id = channel.lines().next().unwrap_or_default().trim().to_owned();
    let (mut child, port) = server.start("serve.log");
    let pid = child.id().to_string();
    let loadavg_before = loadavg();

    let load = Arc::new(Load {
        addr: format!("127.0.0.1:{port}"),
        requests,
        page: if opts.unrouted {
            OTHER_PAGE_ID
        } else {
            PAGE_ID
        },
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        epoch: Instant::now(),
        built_on_the_fly: AtomicUsize::new(0),
    });
    let generator = {
        let load = load.clone();
        std::thread::spawn(move || generate(load, conns))
    };

    std::thread::sleep(Duration::from_secs_f64(opts.warmup));
    let t0 = load.epoch.elapsed();
    let (mz0, gen0, host0) = (cpu_ms(&pid), cpu_ms("self"), host_jiffies());
    std::thread::sleep(Duration::from_secs_f64(opts.secs));
    let t1 = load.epoch.elapsed();
    let (mz1, gen1, host1) = (cpu_ms(&pid), cpu_ms("self"), host_jiffies());
    // Crash the server under full load: whatever was answered 200 must be in the database.
    child.kill().expect("SIGKILL masterz");
    let killed_at = load.epoch.elapsed();
    let _ = child.wait();
    load.stop.store(true, Ordering::Relaxed);
    let recs = generator.join().expect("generator thread");

    // The timed window: requests that completed in [t0, t1].
    let (w0, w1) = (t0.as_micros() as u64, t1.as_micros() as u64);
    let window: Vec<&Rec> = recs
        .iter()
        .filter(|r| r.end_us >= w0 && r.end_us <= w1)
        .collect();
    let ok = window.iter().filter(|r| r.status == 200).count();
    let non200 = window
        .iter()
        .filter(|r| r.status != 200 && r.status != 0)
        .count();
    let transport_errors = window.iter().filter(|r| r.status == 0).count();
    let mut lat: Vec<u32> = window
        .iter()
        .filter(|r| r.status != 0)
        .map(|r| r.lat_us)
        .collect();
    lat.sort_unstable();
    let over_10ms = lat.iter().filter(|&&l| l > 10_000).count();
    let secs = (t1 - t0).as_secs_f64();
    let rps = ok as f64 / secs;

    // Durability: every event answered 200 (warm-up, window and the tail before the kill).
    let acked: Vec<usize> = recs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.idx as usize)
        .collect();
    let acked_total = acked.len();
    let after_kill = recs
        .iter()
        .filter(|r| r.status == 200 && r.end_us > killed_at.as_micros() as u64)
        .count();
    let sent_max = recs
        .iter()
        .filter(|r| r.idx != u32::MAX)
        .map(|r| r.idx as usize + 1)
        .max()
        .unwrap_or(0);
    let (rows_in, pending, processed, mids) = rt.block_on(async {
        let store = Store::open(&server).await;
        let rows = store.count("").await;
        let pending = store.count("AND state = 'pending'").await;
        let processed = store.count("AND state IN ('processed', 'failed')").await;
        let mids = store.mids().await;
        store.close().await;
        (rows, pending, processed, mids)
    });
    let mut stored = vec![false; sent_max.max(1)];
    let mut foreign = 0usize;
    for m in mids.iter().flatten() {
        match mid_index(m) {
            Some(i) if i < stored.len() => stored[i] = true,
            _ => foreign += 1,
        }
    }
    let missing = acked.iter().filter(|&&i| !stored[i]).count();
    let durable = rows_in >= acked_total as i64 && missing == 0;
    let load_secs = killed_at.as_secs_f64();

    // The backlog after the crash, with the server started again and no load.
    let mut drain = json!(null);
    if opts.drain > 0.0 && !opts.unrouted {
        let (mut child, _) = server.start("restart.log");
        let pid = child.id().to_string();
        let (p0, c0, started) = (
            rt.block_on(async {
                let s = Store::open(&server).await;
                let n = s.count("AND state = 'pending'").await;
                s.close().await;
                n
            }),
            cpu_ms(&pid),
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs_f64(opts.drain));
        let (c1, took) = (cpu_ms(&pid), started.elapsed().as_secs_f64());
        let p1 = rt.block_on(async {
            let s = Store::open(&server).await;
            let n = s.count("AND state = 'pending'").await;
            s.close().await;
            n
        });
        let _ = child.kill();
        let _ = child.wait();
        let done = (p0 - p1).max(0);
        drain = json!({
            "secs": round(took, 2),
            "pending_before": p0,
            "pending_after": p1,
            "processed_per_s": whole(done as f64 / took),
            "mz_cpu_ms_per_1000_processed": if done > 0 { round((c1 - c0) as f64 / done as f64 * 1000.0, 1) } else { 0.0 },
            "mz_cpu_pct": whole((c1 - c0) as f64 / took / 10.0),
        });
    }

    if let Backend::Postgres { admin, name, .. } = &backend {
        rt.block_on(admin_sql(
            admin,
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        ));
    }
    if opts.keep || !durable || non200 > 0 {
        let kept = dir.keep();
        eprintln!("# kept {}", kept.display());
    }

    let host_busy = (host1.0 - host0.0) as f64 / (host1.1 - host0.1).max(1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mz_cpu = (mz1 - mz0) as f64;
    let gen_cpu = (gen1 - gen0) as f64;
    let per_1000 = |cpu: f64| {
        if ok > 0 {
            round(cpu / ok as f64 * 1000.0, 1)
        } else {
            0.0
        }
    };
    json!({
        "bench": "webhooks",
        "backend": backend.label(),
        "unrouted": opts.unrouted,
        "conns": conns,
        "secs": round(secs, 2),
        "warmup_secs": opts.warmup,
        "channel_id": channel_id,
        "body_bytes": event_body(0, PAGE_ID).len(),
        "acked_in_window": ok,
        "events_per_s": whole(rps),
        "p50_ms": round(percentile(&lat, 0.50), 2),
        "p90_ms": round(percentile(&lat, 0.90), 2),
        "p99_ms": round(percentile(&lat, 0.99), 2),
        "max_ms": round(lat.last().copied().map_or(0.0, |l| f64::from(l) / 1000.0), 2),
        "over_10ms": over_10ms,
        "non200": non200,
        "transport_errors": transport_errors,
        "mz_cpu_pct": whole(mz_cpu / secs / 10.0),
        "mz_cpu_ms_per_1000": per_1000(mz_cpu),
        "gen_cpu_pct": whole(gen_cpu / secs / 10.0),
        "gen_cpu_ms_per_1000": per_1000(gen_cpu),
        "host_busy_pct": whole(host_busy * 100.0),
        // Every other process, in % of one core: other work on the machine (and PostgreSQL).
        "others_cpu_pct": whole(host_busy * 100.0 * cores - (mz_cpu + gen_cpu) / secs / 10.0),
        "loadavg_before": loadavg_before,
        "built_on_the_fly": load.built_on_the_fly.load(Ordering::Relaxed),
        "acked_total": acked_total,
        "acked_after_kill": after_kill,
        "rows_in": rows_in,
        "missing_acked": missing,
        "unparsed_rows": foreign,
        "durable": durable,
        "pending_at_kill": pending,
        "processed_at_kill": processed,
        "processed_per_s": whole(processed as f64 / load_secs),
        "ingested_per_s": whole(rows_in as f64 / load_secs),
        "drain": drain,
    })
}

fn main() {
    let conns: Vec<usize> = std::env::var("MASTERZ_LOAD_CONNS")
        .unwrap_or_else(|_| "64".into())
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|s| s.parse().ok())
        .filter(|&c| c > 0)
        .collect();
    let opts = Opts {
        secs: env_f64("MASTERZ_LOAD_SECS", 10.0),
        warmup: env_f64("MASTERZ_LOAD_WARMUP_SECS", 2.0),
        drain: env_f64("MASTERZ_LOAD_DRAIN_SECS", 5.0),
        unrouted: std::env::var("MASTERZ_LOAD_UNROUTED").is_ok_and(|v| v == "1"),
        keep: std::env::var("MASTERZ_LOAD_KEEP").is_ok_and(|v| v == "1"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut backend = Backend::Sqlite;
    if let Ok(admin) = std::env::var("MASTERZ_BENCH_POSTGRES_URL")
        && !admin.is_empty()
    {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = format!("mz_bench_{}_{stamp}", std::process::id());
        backend = Backend::Postgres {
            url: with_database(&admin, &name),
            admin,
            name,
        };
    }

    if std::env::var("MASTERZ_LOAD_PROBE").is_ok_and(|v| v == "committer") {
        for (i, &c) in conns.iter().enumerate() {
            let mut backend = backend.clone();
            if let Backend::Postgres { url, admin, name } = &mut backend {
                *name = format!("{name}_{i}");
                *url = with_database(admin, name);
            }
            println!("RESULT {}", probe_committer(&opts, &backend, c));
        }
        return;
    }

    let page = if opts.unrouted {
        OTHER_PAGE_ID
    } else {
        PAGE_ID
    };
    let count = (env_u64("MASTERZ_LOAD_MAX_RATE", 30_000) as f64 * (opts.secs + opts.warmup + 1.0))
        as usize;
    let started = Instant::now();
    let requests: Vec<Vec<u8>> = (0..count).map(|i| build_request(i, page)).collect();
    println!(
        "# {} requests prebuilt in {:.2} s ({} body bytes each); {} cores, load average {}",
        count,
        started.elapsed().as_secs_f64(),
        event_body(0, page).len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let requests = Arc::new(requests);

    let mut results = Vec::new();
    for (i, &c) in conns.iter().enumerate() {
        let mut backend = backend.clone();
        if let Backend::Postgres { url, admin, name } = &mut backend {
            *name = format!("{name}_{i}");
            *url = with_database(admin, name);
        }
        let result = run(&rt, &opts, backend, c, requests.clone());
        println!("RESULT {result}");
        results.push(result);
    }

    println!(
        "\n| backend | conns | events/s (200) | p50 ms | p90 ms | p99 ms | max ms | non-200 | masterz CPU % | masterz CPU ms/1000 | generator CPU ms/1000 | others CPU % | acked | rows | durable | pending at kill | processed/s | processed/s alone |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r["backend"].as_str().unwrap_or_default(),
            r["conns"],
            r["events_per_s"],
            r["p50_ms"],
            r["p90_ms"],
            r["p99_ms"],
            r["max_ms"],
            r["non200"],
            r["mz_cpu_pct"],
            r["mz_cpu_ms_per_1000"],
            r["gen_cpu_ms_per_1000"],
            r["others_cpu_pct"],
            r["acked_total"],
            r["rows_in"],
            r["durable"],
            r["pending_at_kill"],
            r["processed_per_s"],
            r["drain"]["processed_per_s"],
        );
    }
    let failed = results.iter().any(|r| r["durable"] != json!(true));
    if failed {
        eprintln!("DURABILITY CHECK FAILED: an event answered 200 is not in the database");
        std::process::exit(1);
    }
}
